"""The Calendars page: add a calendar (from the remote calendars list, by URI, or a local one),
rename and delete calendars; inputs checked by the API's own parser (`parse_calendar`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from legacy_flask.api import runtime, services
from legacy_flask.csrf import check_csrf
from legacy_flask.forms import FormState, flash_error, form_errors
from legacy_flask.pages import login_required
from shared import bridge
from shared.auth import Actor
from shared.errors import AppError, Conflict, Forbidden, ProviderError, ValidationFailed
from shared.inputs.calendars import CALENDAR_ROLES, parse_calendar
from shared.validation import parse_page

bp = Blueprint("calendar_pages", __name__)
_FIELDS = ("name", "role", "uri")
# What a person can get wrong while adding: a bad field, a name taken, a remote calendar
# that is not in their mailbox or cannot be reached. Shown on the form, not as an error page.
_INPUT_ERRORS = (ValidationFailed, Conflict, Forbidden, ProviderError)


def _remote_calendars(actor: Actor) -> tuple[list[dict[str, Any]], str | None]:
    """The remote calendars of the actor's mailbox, or why they cannot be listed."""
    if not runtime().settings.graph_url:
        return [], None
    try:
        found = bridge.run(services().calendars.remote(actor, None))
    except AppError as exc:
        return [], exc.message
    return list(found["data"]), None


def _page(actor: Actor, form: FormState, status: int = 200, **extra: Any) -> Any:
    page = bridge.run(services().calendars.list(actor, parse_page(request.args)))
    remote, remote_error = _remote_calendars(actor)
    return (
        render_template(
            "calendars.html",
            page=page,
            form=form,
            roles=CALENDAR_ROLES,
            remote=remote,
            remote_error=remote_error,
            rename=extra.get("rename", {}),
        ),
        status,
    )


@bp.get("/calendars")
@login_required
def calendars(actor: Actor) -> Any:
    return _page(actor, FormState())


@bp.post("/calendars")
@login_required
def create_calendar(actor: Actor) -> Any:
    """Add a calendar: by `uri` (remote or local://name) with a role, or by name and role."""
    check_csrf()
    form = request.form
    body: dict[str, Any] = {"role": form.get("role", "")}
    name = form.get("name", "").strip()
    uri = form.get("uri", "").strip()
    if uri:
        body["uri"] = uri
        if name:
            body["name"] = name
    else:
        body["name"] = name
    try:
        created = bridge.run(services().calendars.create(actor, parse_calendar(body)))
    except _INPUT_ERRORS as exc:
        field = "uri" if uri else "name"
        errors = form_errors(exc, _FIELDS)
        if "" in errors and not isinstance(exc, ValidationFailed):
            errors[field] = errors.pop("")
        return _page(actor, FormState(form, errors), exc.status)
    flash(f"Calendar “{created['name']}” added as {created['role']} ({created['uri']}).", "info")
    return redirect(url_for("calendar_pages.calendars"))


@bp.post("/calendars/<int:calendar_id>/rename")
@login_required
def rename_calendar(actor: Actor, calendar_id: int) -> Any:
    check_csrf()
    body = {"name": request.form.get("name", "")}
    try:
        values = parse_calendar(body, partial=True)
        updated = bridge.run(services().calendars.update(actor, calendar_id, values))
    except ValidationFailed as exc:
        message = "; ".join(form_errors(exc, ["name"]).values())
        return _page(actor, FormState(), exc.status, rename={calendar_id: message})
    flash(f"Calendar {calendar_id} renamed to “{updated['name']}”.", "info")
    return redirect(url_for("calendar_pages.calendars"))


@bp.post("/calendars/<int:calendar_id>/delete")
@login_required
def delete_calendar(actor: Actor, calendar_id: int) -> Any:
    check_csrf()
    try:
        bridge.run(services().calendars.delete(actor, calendar_id))
    except Conflict as exc:
        flash_error(exc, "Not deleted: ")
    else:
        flash(f"Calendar {calendar_id} deleted.", "info")
    return redirect(url_for("calendar_pages.calendars"))
