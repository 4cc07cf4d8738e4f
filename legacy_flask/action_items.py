"""`/api/action-items`: the decisions archive runs leave open; list, read and resolve them."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from legacy_flask.api import api_login_required, json_body, paginated, services
from shared import bridge
from shared.auth import Actor
from shared.inputs.archive import parse_action_item_query, parse_resolution

bp = Blueprint("action_items", __name__)


@bp.get("/api/action-items", endpoint="list")
@api_login_required
def list_items(actor: Actor) -> Any:
    query = parse_action_item_query(request.args)
    return paginated(bridge.run(services().action_items.list(actor, query)))


@bp.get("/api/action-items/<int:item_id>", endpoint="get")
@api_login_required
def get_item(actor: Actor, item_id: int) -> Any:
    return jsonify(bridge.run(services().action_items.get(actor, item_id)))


@bp.post("/api/action-items/<int:item_id>/resolve", endpoint="resolve")
@api_login_required
def resolve(actor: Actor, item_id: int) -> Any:
    choice = parse_resolution(json_body())
    return jsonify(bridge.run(services().action_items.resolve(actor, item_id, choice)))
