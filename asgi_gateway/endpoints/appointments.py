"""Async twins of the `appointments` blueprint."""

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
from shared.inputs.appointments import parse_appointment
from shared.validation import parse_appointment_query


@api_endpoint
async def list_appointments(request: Request, actor: Actor) -> Response:
    query = parse_appointment_query(query_params(request))
    return paginated(request, await runtime(request).services.appointments.list(actor, query))


@api_endpoint
async def create_appointment(request: Request, actor: Actor) -> Response:
    values = parse_appointment(await json_body(request))
    appointment = await runtime(request).services.appointments.create(actor, values)
    return JSON(
        appointment, status_code=201, headers={"Location": f"/api/appointments/{appointment['id']}"}
    )


@api_endpoint
async def get_appointment(request: Request, actor: Actor) -> Response:
    appointment_id = request.path_params["appointment_id"]
    return JSON(await runtime(request).services.appointments.get(actor, appointment_id))


@api_endpoint
async def update_appointment(request: Request, actor: Actor) -> Response:
    values = parse_appointment(await json_body(request), partial=True)
    appointment_id = request.path_params["appointment_id"]
    return JSON(await runtime(request).services.appointments.update(actor, appointment_id, values))


@api_endpoint
async def delete_appointment(request: Request, actor: Actor) -> Response:
    await runtime(request).services.appointments.delete(
        actor, request.path_params["appointment_id"]
    )
    return Response(status_code=204)


_ONE = "/api/appointments/{appointment_id:int}"
routes = [
    Route("/api/appointments", list_appointments, methods=["GET"], name="appointments.list"),
    Route("/api/appointments", create_appointment, methods=["POST"], name="appointments.create"),
    Route(_ONE, get_appointment, methods=["GET"], name="appointments.get"),
    Route(_ONE, update_appointment, methods=["PATCH"], name="appointments.update"),
    Route(_ONE, delete_appointment, methods=["DELETE"], name="appointments.delete"),
]
