"""Archive configuration pages: list, create and edit (checked by `parse_archive_config`, as the
API checks them), activate or pause, and delete."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from legacy_flask.api import services
from legacy_flask.csrf import check_csrf
from legacy_flask.forms import FormState, form_errors, is_checked, whole_number, word_list
from legacy_flask.pages import login_required
from legacy_flask.zones import ZONE_NAMES, display_zone
from shared import bridge
from shared.auth import Actor
from shared.errors import Conflict, Forbidden, ValidationFailed
from shared.inputs.archive import MODES, PURPOSES, parse_archive_config
from shared.pagination import PageRequest
from shared.validation import Problems, parse_page

bp = Blueprint("config_pages", __name__)
FIELDS = (
    "name",
    "source_calendar_id",
    "archive_calendar_id",
    "timezone",
    "is_active",
    "days_back",
    "days_forward",
    "excluded_categories",
    "allow_overlaps",
    "mode",
    "purpose",
    "timesheet_categories",
)
_NUMBERS = ("source_calendar_id", "archive_calendar_id", "days_back", "days_forward")
_LISTS = ("excluded_categories", "timesheet_categories")
_CHECKBOXES = ("is_active", "allow_overlaps")


def config_body(form: MultiDict[str, str], *, partial: bool = False) -> dict[str, Any]:
    """The posted form as the JSON body of archive_configs.create (or .update with `partial`).

    Empty number fields are left out, so on create the API's defaults and "is required"
    apply; on an edit form, where every field is shown, emptying one is refused (422).
    An emptied name (or, on edit, time zone) is sent, and the API's own check refuses it.
    """
    body: dict[str, Any] = {}
    problems = Problems()
    for name in FIELDS:
        raw = form.get(name, "").strip()
        if name in _CHECKBOXES:
            body[name] = is_checked(form, name)
        elif name in _LISTS:
            body[name] = word_list(raw)
        elif name not in _NUMBERS:
            if raw or name == "name" or partial:
                body[name] = raw
        elif raw:
            body[name] = whole_number(raw)
        elif partial:
            problems.add(name, "is required")
    problems.raise_if_any("archive configuration")
    return body


def _as_form(config: dict[str, Any]) -> dict[str, Any]:
    values = dict(config)
    for name in _LISTS:
        values[name] = ", ".join(config.get(name) or [])
    return values


def _form_page(
    actor: Actor, form: FormState, config: dict[str, Any] | None = None, status: int = 200
) -> Any:
    calendars = bridge.run(services().calendars.list(actor, PageRequest(1, 200))).items
    page = render_template(
        "config_form.html",
        form=form,
        config=config,
        calendars=calendars,
        modes=MODES,
        purposes=PURPOSES,
        zones=ZONE_NAMES,
    )
    return page, status


@bp.get("/archive-configs")
@login_required
def archive_configs(actor: Actor) -> Any:
    svc = services()
    page = bridge.run(svc.archive.list_configs(actor, parse_page(request.args)))
    calendars = bridge.run(svc.calendars.list(actor, PageRequest(1, 1))).total
    return render_template("archive_configs.html", page=page, calendar_count=calendars)


@bp.get("/archive-configs/new")
@login_required
def new_config(actor: Actor) -> Any:
    defaults = {
        "timezone": display_zone().name,
        "is_active": True,
        "days_back": 7,
        "days_forward": 0,
        "mode": "append",
        "purpose": "general",
    }
    return _form_page(actor, FormState(defaults))


@bp.post("/archive-configs")
@login_required
def create_config(actor: Actor) -> Any:
    check_csrf()
    try:
        values = parse_archive_config(config_body(request.form))
        created = bridge.run(services().archive.create_config(actor, values))
    except (ValidationFailed, Conflict, Forbidden) as exc:
        return _form_page(actor, FormState(_typed(), form_errors(exc, FIELDS)), None, exc.status)
    flash(f"Archive configuration “{created['name']}” created.", "info")
    return redirect(url_for("config_pages.archive_configs"))


@bp.get("/archive-configs/<int:config_id>/edit")
@login_required
def edit_config(actor: Actor, config_id: int) -> Any:
    config = bridge.run(services().archive.get_config(actor, config_id))
    return _form_page(actor, FormState(_as_form(config)), config)


@bp.post("/archive-configs/<int:config_id>")
@login_required
def update_config(actor: Actor, config_id: int) -> Any:
    check_csrf()
    svc = services()
    config = bridge.run(svc.archive.get_config(actor, config_id))  # 404 before reading input
    try:
        values = parse_archive_config(config_body(request.form, partial=True), partial=True)
        updated = bridge.run(svc.archive.update_config(actor, config_id, values))
    except (ValidationFailed, Conflict) as exc:
        form = FormState(_typed(), form_errors(exc, FIELDS))
        return _form_page(actor, form, config, exc.status)
    flash(f"Archive configuration “{updated['name']}” saved.", "info")
    return redirect(url_for("config_pages.archive_configs"))


@bp.post("/archive-configs/<int:config_id>/active")
@login_required
def set_active(actor: Actor, config_id: int) -> Any:
    """Activate (`is_active=1`) or pause (`is_active=0`) a configuration's scheduled runs."""
    check_csrf()
    is_active = request.form.get("is_active") == "1"
    updated = bridge.run(
        services().archive.update_config(actor, config_id, {"is_active": is_active})
    )
    state = "active" if is_active else "paused: its jobs do not run"
    flash(f"Archive configuration “{updated['name']}” is {state}.", "info")
    return redirect(url_for("config_pages.archive_configs"))


@bp.post("/archive-configs/<int:config_id>/delete")
@login_required
def delete_config(actor: Actor, config_id: int) -> Any:
    check_csrf()
    config = bridge.run(services().archive.get_config(actor, config_id))
    bridge.run(services().archive.delete_config(actor, config_id))
    flash(f"Archive configuration “{config['name']}” deleted.", "info")
    return redirect(url_for("config_pages.archive_configs"))


def _typed() -> dict[str, Any]:
    """The form as typed, checkboxes as booleans, to show it again with its errors."""
    values: dict[str, Any] = dict(request.form.items())
    for name in _CHECKBOXES:
        values[name] = is_checked(request.form, name)
    return values
