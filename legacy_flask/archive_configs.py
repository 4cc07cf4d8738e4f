"""`/api/archive-configs`: CRUD of archive configurations, and their timesheets."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for

from legacy_flask.api import api_login_required, json_body, no_content, paginated, services
from shared import bridge
from shared.auth import Actor
from shared.inputs.archive import parse_archive_config, parse_timesheet_query
from shared.validation import parse_page

bp = Blueprint("archive_configs", __name__)
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


@bp.get("/api/archive-configs", endpoint="list")
@api_login_required
def list_configs(actor: Actor) -> Any:
    return paginated(bridge.run(services().archive.list_configs(actor, parse_page(request.args))))


@bp.post("/api/archive-configs", endpoint="create")
@api_login_required
def create_config(actor: Actor) -> Any:
    values = parse_archive_config(json_body())
    config = bridge.run(services().archive.create_config(actor, values))
    return (
        jsonify(config),
        201,
        {"Location": url_for("archive_configs.get", config_id=config["id"])},
    )


@bp.get("/api/archive-configs/<int:config_id>", endpoint="get")
@api_login_required
def get_config(actor: Actor, config_id: int) -> Any:
    return jsonify(bridge.run(services().archive.get_config(actor, config_id)))


@bp.patch("/api/archive-configs/<int:config_id>", endpoint="update")
@api_login_required
def update_config(actor: Actor, config_id: int) -> Any:
    values = parse_archive_config(json_body(), partial=True)
    return jsonify(bridge.run(services().archive.update_config(actor, config_id, values)))


@bp.delete("/api/archive-configs/<int:config_id>", endpoint="delete")
@api_login_required
def delete_config(actor: Actor, config_id: int) -> Any:
    bridge.run(services().archive.delete_config(actor, config_id))
    return no_content()


@bp.get("/api/archive-configs/<int:config_id>/timesheet", endpoint="timesheet")
@api_login_required
def timesheet(actor: Actor, config_id: int) -> Any:
    query = parse_timesheet_query(request.args)
    timesheets = services().timesheets
    if query.format == "json":
        return jsonify(bridge.run(timesheets.summary(actor, config_id, query)))
    text, name = bridge.run(timesheets.csv(actor, config_id, query))
    response = current_app.response_class(text, content_type=CSV_CONTENT_TYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
