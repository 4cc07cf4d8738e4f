"""The signed-in user's own pages: settings (the time zone pages show times in) and API tokens.

A user without a zone of their own sees times in their browser's zone: a small script posts
it once (`/settings/browser-zone`) and the session keeps it. Without JavaScript it is UTC.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for

from legacy_flask.api import services
from legacy_flask.csrf import check_csrf
from legacy_flask.forms import FormState, form_errors, whole_number
from legacy_flask.pages import login_required
from legacy_flask.zones import BROWSER_ZONE, ZONE_NAMES, forget_display_zone
from shared import bridge
from shared.auth import Actor
from shared.errors import ValidationFailed
from shared.validation import Problems, parse_new_token, parse_timezone

bp = Blueprint("account", __name__)


# -- settings ---------------------------------------------------------------------------------


@bp.get("/settings")
@login_required
def settings(actor: Actor) -> Any:
    zone = bridge.run(services().users.timezone_of(actor))
    return _settings_page(FormState({"timezone": zone or ""}))


def _settings_page(form: FormState, status: int = 200) -> Any:
    return render_template("settings.html", form=form, zones=ZONE_NAMES), status


@bp.post("/settings")
@login_required
def save_settings(actor: Actor) -> Any:
    check_csrf()
    typed = request.form.get("timezone", "").strip()
    try:
        zone = bridge.run(services().users.set_timezone(actor, typed))
    except ValidationFailed as exc:
        return _settings_page(FormState(request.form, form_errors(exc, ["timezone"])), 422)
    forget_display_zone()
    if zone is None:
        flash("Times now follow your browser's time zone (UTC without JavaScript).", "info")
    else:
        flash(f"Times are now shown in {zone}.", "info")
    return redirect(url_for("account.settings"))


@bp.post("/settings/browser-zone")
@login_required
def browser_zone(actor: Actor) -> Any:
    """The browser's zone, posted by the page's script: kept in the session for display."""
    check_csrf()
    name = request.form.get("timezone", "")
    problems = Problems()
    parse_timezone(name, problems, field="timezone")
    if problems.details:
        message = problems.details[0]["message"]
        return {"error": {"code": "validation_error", "message": message}}, 422
    session[BROWSER_ZONE] = name
    return "", 204


# -- API tokens -------------------------------------------------------------------------------


@bp.get("/tokens")
@login_required
def tokens(actor: Actor) -> Any:
    return _tokens_page(actor, FormState())


def _tokens_page(actor: Actor, form: FormState, created: dict[str, Any] | None = None) -> Any:
    listed = bridge.run(services().tokens.list_own(actor))
    return render_template("tokens.html", tokens=listed, form=form, created=created)


@bp.post("/tokens")
@login_required
def create_token(actor: Actor) -> Any:
    """A new token, shown on this response only (it is stored hashed and never shown again)."""
    check_csrf()
    body: dict[str, Any] = {"name": request.form.get("name", "")}
    days = request.form.get("expires_in_days", "").strip()
    if days:
        body["expires_in_days"] = whole_number(days)
    try:
        values = parse_new_token(body)
        created = bridge.run(
            services().tokens.create_own(
                actor, name=values["name"], expires_in_days=values["expires_in_days"]
            )
        )
    except ValidationFailed as exc:
        errors = form_errors(exc, ["name", "expires_in_days"])
        return _tokens_page(actor, FormState(request.form, errors)), 422
    page = _tokens_page(actor, FormState(), created)
    # The one response carrying the secret: never cached, never kept in history by proxies.
    return page, 201, {"Cache-Control": "no-store"}


@bp.post("/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(actor: Actor, token_id: int) -> Any:
    check_csrf()
    bridge.run(services().tokens.revoke_own(actor, token_id))
    flash(f"API token {token_id} revoked; it no longer works.", "info")
    return redirect(url_for("account.tokens"))
