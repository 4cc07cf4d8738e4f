"""Async twins of the `appointments` blueprint."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asgi_gateway.endpoints._http import api_endpoint, paginated, runtime
from shared.auth import Actor
from shared.validation import parse_appointment_query


@api_endpoint
async def list_appointments(request: Request, actor: Actor) -> Response:
    query = parse_appointment_query(request.query_params)
    return paginated(request, await runtime(request).services.appointments.list(actor, query))


routes = [
    Route("/api/appointments", list_appointments, methods=["GET"], name="appointments.list"),
]
