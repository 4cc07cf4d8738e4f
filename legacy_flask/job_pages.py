"""The Jobs pages: list and create jobs, edit or disable one, run it now, see its run history."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from legacy_flask.api import services
from legacy_flask.csrf import check_csrf
from legacy_flask.forms import flash_error
from legacy_flask.pages import login_required
from shared import bridge
from shared.auth import Actor
from shared.errors import AppError
from shared.pagination import PageRequest
from shared.representation import local_clock
from shared.schedules import MISFIRE_POLICIES
from shared.validation import parse_job, parse_page

bp = Blueprint("job_pages", __name__)
_FORM_FIELDS = ("archive_config_id", "schedule", "timezone", "misfire", "days_back", "days_forward")


@bp.app_template_global()
def job_local_time(moment: str | None, zone: str) -> str:
    """An API instant as wall-clock time in the job's zone (templates)."""
    return local_clock(moment, zone)


def _form_body(form: MultiDict[str, str], *, partial: bool) -> dict[str, Any]:
    """The form as a JSON-like body, so the API's validation (and messages) apply unchanged."""
    body: dict[str, Any] = {}
    for name in _FORM_FIELDS:
        if name not in form:
            continue
        value = form[name].strip()
        if name in ("archive_config_id", "days_back", "days_forward"):
            body[name] = int(value) if value.isdigit() else (None if value == "" else value)
        elif name == "timezone" and value == "":
            if not partial:
                body[name] = None  # the configuration's
        else:
            body[name] = value
    body["enabled"] = form.get("enabled") == "on"
    return body


@bp.get("/jobs")
@login_required
def jobs(actor: Actor) -> Any:
    svc = services()
    page = bridge.run(svc.jobs.list(actor, parse_page(request.args)))
    configs = bridge.run(svc.archive.list_configs(actor, PageRequest(1, 200))).items
    health = bridge.run(svc.jobs.health(actor))
    return render_template(
        "jobs.html", page=page, configs=configs, health=health, misfires=MISFIRE_POLICIES
    )


@bp.post("/jobs")
@login_required
def create_job(actor: Actor) -> Any:
    check_csrf()
    try:
        job = bridge.run(
            services().jobs.create(actor, parse_job(_form_body(request.form, partial=False)))
        )
    except AppError as exc:
        flash_error(exc)
        return redirect(url_for("job_pages.jobs"))
    flash(
        f"Job {job['id']} created; next run {local_clock(job['next_run_at'], job['timezone'])}.",
        "info",
    )
    return redirect(url_for("job_pages.job", job_id=job["id"]))


@bp.get("/jobs/<int:job_id>")
@login_required
def job(actor: Actor, job_id: int) -> Any:
    svc = services()
    found = bridge.run(svc.jobs.get(actor, job_id))
    runs = bridge.run(svc.jobs.history(actor, job_id, parse_page(request.args)))
    configs = bridge.run(svc.archive.list_configs(actor, PageRequest(1, 200))).items
    is_busy = any(r["status"] in ("queued", "running") for r in runs.items)
    return render_template(
        "job.html",
        job=found,
        runs=runs,
        configs=configs,
        misfires=MISFIRE_POLICIES,
        is_busy=is_busy,
    )


@bp.post("/jobs/<int:job_id>")
@login_required
def update_job(actor: Actor, job_id: int) -> Any:
    check_csrf()
    try:
        values = parse_job(_form_body(request.form, partial=True), partial=True)
        bridge.run(services().jobs.update(actor, job_id, values))
    except AppError as exc:
        flash_error(exc)
    else:
        flash(f"Job {job_id} saved.", "info")
    return redirect(url_for("job_pages.job", job_id=job_id))


@bp.post("/jobs/<int:job_id>/trigger")
@login_required
def trigger_job(actor: Actor, job_id: int) -> Any:
    check_csrf()
    try:
        run = bridge.run(services().jobs.trigger(actor, job_id))
    except AppError as exc:
        flash_error(exc)
    else:
        flash(f"Run {run['id']} queued.", "info")
    return redirect(url_for("job_pages.job", job_id=job_id))


@bp.post("/jobs/<int:job_id>/delete")
@login_required
def delete_job(actor: Actor, job_id: int) -> Any:
    check_csrf()
    try:
        bridge.run(services().jobs.delete(actor, job_id))
    except AppError as exc:
        flash_error(exc)
        return redirect(url_for("job_pages.job", job_id=job_id))
    flash(f"Job {job_id} deleted.", "info")
    return redirect(url_for("job_pages.jobs"))
