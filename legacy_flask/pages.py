"""Server-rendered pages: home, calendars, appointments, archive configurations, action log."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from legacy_flask.api import current_actor, services
from legacy_flask.csrf import csrf_token
from shared import bridge
from shared.auth import Actor
from shared.errors import AppError
from shared.pagination import PageRequest
from shared.validation import parse_appointment_query, parse_optional_id, parse_page

bp = Blueprint("pages", __name__)


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "actor": current_actor()}


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Pages redirect anonymous visitors to /login and bring them back afterwards."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        actor = current_actor()
        if actor is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(actor, *args, **kwargs)

    return wrapper


@bp.get("/")
@login_required
def index(actor: Actor) -> Any:
    svc = services()
    first = PageRequest(1, 1)
    counts = {
        "calendars": bridge.run(svc.calendars.list(actor, first)).total,
        "archive_configs": bridge.run(svc.archive.list_configs(actor, first)).total,
        "runs": bridge.run(svc.archive.action_log(actor, None, first)).total,
    }
    return render_template("index.html", counts=counts)


@bp.get("/calendars")
@login_required
def calendars(actor: Actor) -> Any:
    page = bridge.run(services().calendars.list(actor, parse_page(request.args)))
    return render_template("calendars.html", page=page)


@bp.get("/appointments")
@login_required
def appointments(actor: Actor) -> Any:
    try:
        query = parse_appointment_query(request.args)
    except AppError as exc:
        flash(
            f"{exc.message}: " + "; ".join(f"{d['field']} {d['message']}" for d in exc.details),
            "error",
        )
        return redirect(url_for("pages.appointments"))
    page = bridge.run(services().appointments.list(actor, query))
    calendar_list = bridge.run(services().calendars.list(actor, PageRequest(1, 200))).items
    return render_template(
        "appointments.html", page=page, calendars=calendar_list, args=request.args
    )


@bp.get("/archive-configs")
@login_required
def archive_configs(actor: Actor) -> Any:
    page = bridge.run(services().archive.list_configs(actor, parse_page(request.args)))
    return render_template("archive_configs.html", page=page)


@bp.get("/action-log")
@login_required
def action_log(actor: Actor) -> Any:
    config_id = parse_optional_id(request.args, "config_id")
    page = bridge.run(services().archive.action_log(actor, config_id, parse_page(request.args)))
    return render_template("action_log.html", page=page, config_id=config_id)
