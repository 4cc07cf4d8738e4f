"""`/api/audit`: the audit log of changes to calendars, configurations, jobs and action items."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from legacy_flask.api import api_login_required, paginated, services
from shared import bridge
from shared.auth import Actor
from shared.inputs.audit import parse_audit_query

bp = Blueprint("audit", __name__)


@bp.get("/api/audit", endpoint="list")
@api_login_required
def list_audit(actor: Actor) -> Any:
    query = parse_audit_query(request.args)
    return paginated(bridge.run(services().audit.list(actor, query)))
