"""Run an archive configuration now, and read the action log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from legacy_flask.api import api_login_required, json_body, paginated, services
from shared import bridge
from shared.auth import Actor
from shared.inputs.archive import parse_archive_run
from shared.validation import parse_optional_id, parse_page

bp = Blueprint("archive", __name__)


@bp.post("/api/archive-configs/<int:config_id>/run", endpoint="run")
@api_login_required
def run(actor: Actor, config_id: int) -> Any:
    window = parse_archive_run(json_body(optional=True))
    entry = bridge.run(
        services().archive.run(
            actor, config_id, start=window["start"], end=window["end"], mode=window["mode"]
        )
    )
    return jsonify(entry), 201


@bp.get("/api/action-log", endpoint="log")
@api_login_required
def action_log(actor: Actor) -> Any:
    config_id = parse_optional_id(request.args, "config_id")
    page = parse_page(request.args)
    return paginated(bridge.run(services().archive.action_log(actor, config_id, page)))
