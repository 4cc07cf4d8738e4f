"""`/api/tokens`: the caller's own API tokens (list, create, revoke)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from legacy_flask.api import api_login_required, json_body, no_content, services
from shared import bridge
from shared.auth import Actor
from shared.validation import parse_new_token

bp = Blueprint("tokens", __name__)


@bp.get("/api/tokens", endpoint="list")
@api_login_required
def list_tokens(actor: Actor) -> Any:
    tokens = bridge.run(services().tokens.list_own(actor))
    return jsonify({"data": tokens, "meta": {"count": len(tokens)}})


@bp.post("/api/tokens", endpoint="create")
@api_login_required
def create_token(actor: Actor) -> Any:
    values = parse_new_token(json_body())
    token = bridge.run(
        services().tokens.create_own(
            actor, name=values["name"], expires_in_days=values["expires_in_days"]
        )
    )
    return jsonify(token), 201


@bp.delete("/api/tokens/<int:token_id>", endpoint="delete")
@api_login_required
def delete_token(actor: Actor, token_id: int) -> Any:
    bridge.run(services().tokens.revoke_own(actor, token_id))
    return no_content()
