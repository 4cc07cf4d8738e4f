"""`/api/calendars`: CRUD, the provider's events (`remote_events`), remote calendars (`remote`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, url_for

from legacy_flask.api import (
    api_login_required,
    current_actor_async,
    json_body,
    no_content,
    paginated,
    require_actor,
    services,
)
from shared import bridge
from shared.auth import Actor
from shared.inputs.calendars import parse_calendar, parse_remote_query
from shared.validation import parse_event_window, parse_page

bp = Blueprint("calendars", __name__)


@bp.get("/api/calendars", endpoint="list")
@api_login_required
def list_calendars(actor: Actor) -> Any:
    page = parse_page(request.args)
    return paginated(bridge.run(services().calendars.list(actor, page)))


@bp.post("/api/calendars", endpoint="create")
@api_login_required
def create_calendar(actor: Actor) -> Any:
    values = parse_calendar(json_body())
    calendar = bridge.run(services().calendars.create(actor, values))
    return (
        jsonify(calendar),
        201,
        {"Location": url_for("calendars.get", calendar_id=calendar["id"])},
    )


@bp.get("/api/calendars/remote", endpoint="remote")
async def remote_calendars() -> Any:
    # `async def`: the provider is read on the bridge loop (LegacyFlask.async_to_sync).
    actor = require_actor(await current_actor_async())
    mailbox = parse_remote_query(request.args)
    return jsonify(await services().calendars.remote(actor, mailbox))


@bp.get("/api/calendars/<int:calendar_id>", endpoint="get")
@api_login_required
def get_calendar(actor: Actor, calendar_id: int) -> Any:
    return jsonify(bridge.run(services().calendars.get(actor, calendar_id)))


@bp.patch("/api/calendars/<int:calendar_id>", endpoint="update")
@api_login_required
def update_calendar(actor: Actor, calendar_id: int) -> Any:
    values = parse_calendar(json_body(), partial=True)
    return jsonify(bridge.run(services().calendars.update(actor, calendar_id, values)))


@bp.delete("/api/calendars/<int:calendar_id>", endpoint="delete")
@api_login_required
def delete_calendar(actor: Actor, calendar_id: int) -> Any:
    bridge.run(services().calendars.delete(actor, calendar_id))
    return no_content()


@bp.get("/api/calendars/<int:calendar_id>/remote-events", endpoint="remote_events")
async def remote_events(calendar_id: int) -> Any:
    # `async def`: runs on the bridge loop (LegacyFlask.async_to_sync), awaiting the provider.
    actor = require_actor(await current_actor_async())
    start, end, tz = parse_event_window(request.args)
    events = await services().calendars.remote_events(actor, calendar_id, start, end, tz)
    return jsonify({"data": events, "meta": {"count": len(events)}})
