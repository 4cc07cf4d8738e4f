"""Async twins of the `calendars` blueprint, including the provider reads `remote_events`
and `remote` (discovery)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asgi_gateway.endpoints._http import (
    JSON,
    api_endpoint,
    json_body,
    paginated,
    query_params,
    runtime,
)
from shared.auth import Actor
from shared.inputs.calendars import parse_calendar, parse_remote_query
from shared.validation import parse_event_window, parse_page


@api_endpoint
async def list_calendars(request: Request, actor: Actor) -> Response:
    page = parse_page(query_params(request))
    return paginated(request, await runtime(request).services.calendars.list(actor, page))


@api_endpoint
async def create_calendar(request: Request, actor: Actor) -> Response:
    values = parse_calendar(await json_body(request))
    calendar = await runtime(request).services.calendars.create(actor, values)
    return JSON(calendar, status_code=201, headers={"Location": f"/api/calendars/{calendar['id']}"})


@api_endpoint
async def remote_calendars(request: Request, actor: Actor) -> Response:
    mailbox = parse_remote_query(query_params(request))
    return JSON(await runtime(request).services.calendars.remote(actor, mailbox))


@api_endpoint
async def get_calendar(request: Request, actor: Actor) -> Response:
    calendar_id = request.path_params["calendar_id"]
    return JSON(await runtime(request).services.calendars.get(actor, calendar_id))


@api_endpoint
async def update_calendar(request: Request, actor: Actor) -> Response:
    values = parse_calendar(await json_body(request), partial=True)
    calendar_id = request.path_params["calendar_id"]
    return JSON(await runtime(request).services.calendars.update(actor, calendar_id, values))


@api_endpoint
async def delete_calendar(request: Request, actor: Actor) -> Response:
    await runtime(request).services.calendars.delete(actor, request.path_params["calendar_id"])
    return Response(status_code=204)


@api_endpoint
async def remote_events(request: Request, actor: Actor) -> Response:
    start, end, tz = parse_event_window(query_params(request))
    events = await runtime(request).services.calendars.remote_events(
        actor, request.path_params["calendar_id"], start, end, tz
    )
    return JSON({"data": events, "meta": {"count": len(events)}})


_ONE = "/api/calendars/{calendar_id:int}"
routes = [
    Route("/api/calendars", list_calendars, methods=["GET"], name="calendars.list"),
    Route("/api/calendars", create_calendar, methods=["POST"], name="calendars.create"),
    # Before the calendar routes (`remote` is no int, so it could never match them anyway).
    Route("/api/calendars/remote", remote_calendars, methods=["GET"], name="calendars.remote"),
    Route(_ONE, get_calendar, methods=["GET"], name="calendars.get"),
    Route(_ONE, update_calendar, methods=["PATCH"], name="calendars.update"),
    Route(_ONE, delete_calendar, methods=["DELETE"], name="calendars.delete"),
    Route(_ONE + "/remote-events", remote_events, methods=["GET"], name="calendars.remote_events"),
]
