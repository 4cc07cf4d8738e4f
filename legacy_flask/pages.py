"""Server-rendered pages: home, appointments (a list and a week), the action log; and
`login_required`, which every page uses."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from legacy_flask.api import current_actor, services
from legacy_flask.csrf import csrf_token
from legacy_flask.week import build_week, week_bounds
from legacy_flask.zones import display_zone
from shared import bridge
from shared.auth import Actor
from shared.errors import AppError
from shared.pagination import MAX_PER_PAGE, PageRequest
from shared.validation import (
    AppointmentQuery,
    Problems,
    parse_appointment_query,
    parse_optional_id,
    parse_page,
    query_int,
)

bp = Blueprint("pages", __name__)
# A week holds at most this many pages of appointments (of MAX_PER_PAGE each) on the page.
WEEK_MAX_PAGES = 5


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


@bp.get("/appointments")
@login_required
def appointments(actor: Actor) -> Any:
    args = request.args.to_dict()
    args.setdefault("tz", display_zone().name)
    try:
        query = parse_appointment_query(args)
    except AppError as exc:
        flash(
            f"{exc.message}: " + "; ".join(f"{d['field']} {d['message']}" for d in exc.details),
            "error",
        )
        return redirect(url_for("pages.appointments"))
    page = bridge.run(services().appointments.list(actor, query))
    calendar_list = bridge.run(services().calendars.list(actor, PageRequest(1, 200))).items
    return render_template("appointments.html", page=page, calendars=calendar_list, args=args)


@bp.get("/appointments/week")
@login_required
def week(actor: Actor) -> Any:
    """Monday to Sunday in the user's zone, overlapping appointments marked."""
    zone = display_zone().zone
    problems = Problems()
    calendar_id = query_int(request.args, "calendar_id", problems, minimum=1, default=None)
    raw_day = request.args.get("week", "")
    any_day = datetime.now(zone).date()
    if raw_day:
        try:
            any_day = date.fromisoformat(raw_day)
        except ValueError:
            problems.add("week", f"must be a date such as 2026-05-04, got {raw_day[:50]!r}")
    if problems.details:
        flash("; ".join(f"{d['field']} {d['message']}" for d in problems.details), "error")
        return redirect(url_for("pages.week"))
    monday, start, end = week_bounds(any_day, zone)
    found: list[dict[str, Any]] = []
    for number in range(1, WEEK_MAX_PAGES + 1):
        query = AppointmentQuery(calendar_id, start, end, zone, PageRequest(number, MAX_PER_PAGE))
        page = bridge.run(services().appointments.list(actor, query))
        found.extend(page.items)
        if number >= page.pages:
            break
    calendar_list = bridge.run(services().calendars.list(actor, PageRequest(1, 200))).items
    return render_template(
        "week.html",
        days=build_week(found, monday, zone),
        monday=monday,
        previous=monday - timedelta(days=7),
        following=monday + timedelta(days=7),
        today=datetime.now(zone).date(),
        calendars=calendar_list,
        calendar_id=calendar_id,
        is_cut=len(found) >= WEEK_MAX_PAGES * MAX_PER_PAGE,
    )


@bp.get("/action-log")
@login_required
def action_log(actor: Actor) -> Any:
    config_id = parse_optional_id(request.args, "config_id")
    page = bridge.run(services().archive.action_log(actor, config_id, parse_page(request.args)))
    return render_template("action_log.html", page=page, config_id=config_id)
