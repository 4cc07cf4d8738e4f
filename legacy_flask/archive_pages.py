"""Pages for archiving decisions: open action items with one-click resolution, the run form
(dates as typed: `yesterday`, `last 7 days`), and the audit log for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from legacy_flask.api import services
from legacy_flask.csrf import check_csrf
from legacy_flask.forms import flash_error
from legacy_flask.pages import login_required
from shared import bridge
from shared.auth import Actor
from shared.date_phrases import resolve_window
from shared.errors import AppError, Forbidden, NotFound
from shared.inputs.archive import MODES, parse_action_item_query, parse_resolution
from shared.inputs.audit import parse_audit_query

bp = Blueprint("archive_pages", __name__)


@bp.get("/action-items")
@login_required
def action_items(actor: Actor) -> Any:
    args = request.args.to_dict()
    args.setdefault("state", "open")
    try:
        query = parse_action_item_query(args)
    except AppError as exc:
        flash_error(exc)
        return redirect(url_for("archive_pages.action_items"))
    page = bridge.run(services().action_items.list(actor, query))
    return render_template("action_items.html", page=page, state=query.state)


@bp.post("/action-items/<int:item_id>/resolve")
@login_required
def resolve_item(actor: Actor, item_id: int) -> Any:
    check_csrf()
    body: dict[str, Any] = (
        {"keep_all": True}
        if request.form.get("keep_all")
        else {"keep": request.form.getlist("keep")}
    )
    try:
        item = bridge.run(services().action_items.resolve(actor, item_id, parse_resolution(body)))
    except (NotFound, Forbidden):
        raise  # another user's item: the error page, as for any id that is not theirs
    except AppError as exc:
        flash_error(exc)
    else:
        kept = ", ".join(
            a["subject"]
            for a in item["appointments"]
            if a["event_id"] in item["resolution"]["keep"]
        )
        flash(f"Action item {item_id} resolved: kept {kept}; {item['archived']} archived.", "info")
    return redirect(url_for("archive_pages.action_items"))


@bp.get("/archive-configs/<int:config_id>/run")
@login_required
def run_form(actor: Actor, config_id: int) -> Any:
    config = bridge.run(services().archive.get_config(actor, config_id))
    return render_template("run_form.html", config=config, modes=MODES, form={})


@bp.post("/archive-configs/<int:config_id>/run")
@login_required
def run_archive(actor: Actor, config_id: int) -> Any:
    """Run now: the form's dates (ISO or phrases, in the configuration's zone) and mode."""
    check_csrf()
    svc = services()
    try:
        config = bridge.run(svc.archive.get_config(actor, config_id))
        zone = ZoneInfo(config["timezone"])
        today = datetime.now(zone).date()
        try:
            start, end = resolve_window(
                request.form.get("start", "").strip() or None,
                request.form.get("end", "").strip() or None,
                zone,
                today,
            )
            if start is not None and end is not None and end <= start:
                raise ValueError("the last day is before the first; swap From and To")
        except ValueError as exc:
            flash(f"Archive run not started: {exc}", "error")
            return render_template(
                "run_form.html", config=config, modes=MODES, form=request.form, error=str(exc)
            ), 422
        mode = request.form.get("mode") or None
        if mode is not None and mode not in MODES:
            abort(400, description=f"unknown mode {mode[:20]!r} (append or replace)")
        entry = bridge.run(svc.archive.run(actor, config_id, mode=mode, start=start, end=end))
    except AppError as exc:
        flash(f"Archive run failed: {exc.message}", "error")
    else:
        held = len(entry["details"].get("held", []))
        flash(
            f"{entry['mode'].capitalize()} run: added {entry['added']}, updated "
            f"{entry['updated']}, removed {entry['removed']}, unchanged {entry['unchanged']}, "
            f"skipped {entry['skipped']}, {entry['overlap']} overlapping"
            + (f", {held} waiting for a decision (see Action items)." if held else "."),
            "info",
        )
    return redirect(url_for("pages.action_log", config_id=config_id))


@bp.get("/audit")
@login_required
def audit(actor: Actor) -> Any:
    if not actor.is_admin:
        abort(403, description="the audit log is for admins only")
    try:
        query = parse_audit_query(request.args)
    except AppError as exc:
        flash_error(exc)
        return redirect(url_for("archive_pages.audit"))
    page = bridge.run(services().audit.list(actor, query))
    return render_template("audit.html", page=page, args=request.args)
