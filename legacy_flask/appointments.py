"""`/api/appointments`: list by calendar and window in a timezone, paginated, and CRUD."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, url_for

from legacy_flask.api import api_login_required, json_body, no_content, paginated, services
from shared import bridge
from shared.auth import Actor
from shared.inputs.appointments import parse_appointment
from shared.validation import parse_appointment_query

bp = Blueprint("appointments", __name__)


@bp.get("/api/appointments", endpoint="list")
@api_login_required
def list_appointments(actor: Actor) -> Any:
    query = parse_appointment_query(request.args)
    return paginated(bridge.run(services().appointments.list(actor, query)))


@bp.post("/api/appointments", endpoint="create")
@api_login_required
def create_appointment(actor: Actor) -> Any:
    values = parse_appointment(json_body())
    appointment = bridge.run(services().appointments.create(actor, values))
    location = url_for("appointments.get", appointment_id=appointment["id"])
    return jsonify(appointment), 201, {"Location": location}


@bp.get("/api/appointments/<int:appointment_id>", endpoint="get")
@api_login_required
def get_appointment(actor: Actor, appointment_id: int) -> Any:
    return jsonify(bridge.run(services().appointments.get(actor, appointment_id)))


@bp.patch("/api/appointments/<int:appointment_id>", endpoint="update")
@api_login_required
def update_appointment(actor: Actor, appointment_id: int) -> Any:
    values = parse_appointment(json_body(), partial=True)
    return jsonify(bridge.run(services().appointments.update(actor, appointment_id, values)))


@bp.delete("/api/appointments/<int:appointment_id>", endpoint="delete")
@api_login_required
def delete_appointment(actor: Actor, appointment_id: int) -> Any:
    bridge.run(services().appointments.delete(actor, appointment_id))
    return no_content()
