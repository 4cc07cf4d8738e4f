"""`/api/jobs`: scheduled archive runs (CRUD), run now, run history and scheduler health."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, url_for

from legacy_flask.api import api_login_required, json_body, no_content, paginated, services
from shared import bridge
from shared.auth import Actor
from shared.validation import parse_job, parse_page

bp = Blueprint("jobs", __name__)


@bp.get("/api/jobs", endpoint="list")
@api_login_required
def list_jobs(actor: Actor) -> Any:
    return paginated(bridge.run(services().jobs.list(actor, parse_page(request.args))))


@bp.post("/api/jobs", endpoint="create")
@api_login_required
def create_job(actor: Actor) -> Any:
    job = bridge.run(services().jobs.create(actor, parse_job(json_body())))
    return jsonify(job), 201, {"Location": url_for("jobs.get", job_id=job["id"])}


@bp.get("/api/jobs/health", endpoint="health")
@api_login_required
def health(actor: Actor) -> Any:
    return jsonify(bridge.run(services().jobs.health(actor)))


@bp.get("/api/jobs/<int:job_id>", endpoint="get")
@api_login_required
def get_job(actor: Actor, job_id: int) -> Any:
    return jsonify(bridge.run(services().jobs.get(actor, job_id)))


@bp.patch("/api/jobs/<int:job_id>", endpoint="update")
@api_login_required
def update_job(actor: Actor, job_id: int) -> Any:
    values = parse_job(json_body(), partial=True)
    return jsonify(bridge.run(services().jobs.update(actor, job_id, values)))


@bp.delete("/api/jobs/<int:job_id>", endpoint="delete")
@api_login_required
def delete_job(actor: Actor, job_id: int) -> Any:
    bridge.run(services().jobs.delete(actor, job_id))
    return no_content()


@bp.post("/api/jobs/<int:job_id>/trigger", endpoint="trigger")
@api_login_required
def trigger(actor: Actor, job_id: int) -> Any:
    # Queues the run; the process's scheduler (or any live one) starts it on its own loop.
    return jsonify(bridge.run(services().jobs.trigger(actor, job_id))), 202


@bp.get("/api/jobs/<int:job_id>/runs", endpoint="runs")
@api_login_required
def runs(actor: Actor, job_id: int) -> Any:
    return paginated(bridge.run(services().jobs.runs(actor, job_id, parse_page(request.args))))
