"""`/healthz` (the process answers) and `/readyz` (the database answers)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify

from legacy_flask.api import runtime
from shared import bridge

bp = Blueprint("health", __name__)
_log = logging.getLogger(__name__)
READY_TIMEOUT_S = 2.0


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    try:
        bridge.run(runtime().db.ping(), timeout=READY_TIMEOUT_S)
    except Exception as exc:
        _log.warning("readiness check failed: %s", exc)
        return jsonify({"status": "unavailable", "checks": {"database": "unreachable"}}), 503
    return jsonify({"status": "ready", "checks": {"database": "ok"}})
