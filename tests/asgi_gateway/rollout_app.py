"""A third-party test app behind `build_gateway` for the guard and rollouts: its twins fail, slow
down or differ on demand, in every worker and every process at once.

Serve it with `uvicorn tests.asgi_gateway.rollout_app:app` and in the environment:
ROLLOUT_FLAGS_FILE, ROLLOUT_DATABASE_URL, ROLLOUT_BEHAVIOUR_FILE (a JSON object twin ->
behaviour, written by the test with `behave`), and optionally ROLLOUT_WEBHOOK,
ROLLOUT_SLOW_MS (default 300), ROLLOUT_STATS_FLUSH_S, ROLLOUT_GUARD_TICK_S, ROLLOUT_POLL_S,
ROLLOUT_FALLBACK_POLL_S, ROLLOUT_FLAGS_NOTIFY (on|off) (each unset: the gateway's default).

Behaviours: `ok` (answers like legacy), `fail` (503), `raise` (an exception: 500), `slow`
(answers like legacy after ROLLOUT_SLOW_MS), `differ` (one JSON value differs). Every answer
carries the serving process's id, so a test can tell the workers apart.
`GET /_rollout/lab/flags` answers the worker's flag version and when it was installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from flask import Flask, jsonify
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asgi_gateway import FlagSource, Gateway, Principal, build_gateway

ADMIN_TOKEN = "rollout-admin-token"
BEHAVIOURS = ("ok", "fail", "raise", "slow", "differ")
TWINS = ("widget", "gizmo", "doohickey")

flask_app = Flask(__name__)
flask_app.config["SECRET_KEY"] = "rollout-secret-key-0123456789"


def behave(path: Path, twin: str, how: str) -> None:
    """Set how `twin` behaves in every worker (written whole, then renamed into place)."""
    assert twin in TWINS and how in BEHAVIOURS, (twin, how)
    current = json.loads(path.read_text()) if path.exists() else {}
    current[twin] = how
    draft = path.with_suffix(".tmp")
    draft.write_text(json.dumps(current))
    os.replace(draft, path)


class _Behaviour:
    """The behaviour file, read off the loop at most every 50 ms.

    A request that finds the last read stale waits for the next one, as do the requests that
    arrive while it runs: none is answered from a read older than the change it follows (the
    first twin requests after a change of behaviour all behave as the file says)."""

    def __init__(self) -> None:
        self.read_at = 0.0
        self.values: dict[str, str] = {}
        self._reading: asyncio.Task[None] | None = None

    async def of(self, twin: str) -> str:
        if self._reading is None and time.monotonic() - self.read_at > 0.05:
            self._reading = asyncio.get_running_loop().create_task(self._read())
        if self._reading is not None:
            await asyncio.shield(self._reading)
        return self.values.get(twin, "ok")

    async def _read(self) -> None:
        try:
            started = time.monotonic()
            self.values = await asyncio.to_thread(_load, Path(os.environ["ROLLOUT_BEHAVIOUR_FILE"]))
            self.read_at = started
        finally:
            self._reading = None


def _load(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (FileNotFoundError, ValueError):
        return {}


_behaviour = _Behaviour()


def _answer(twin: str) -> dict[str, Any]:
    return {"twin": twin, "name": "widget", "size": 3, "pid": os.getpid()}


def _legacy(twin: str) -> Any:
    return jsonify(_answer(twin))


async def _twin(twin: str) -> Response:
    how = await _behaviour.of(twin)
    if how == "fail":
        return JSONResponse({"error": {"code": "unavailable", "message": "down"}}, status_code=503)
    if how == "raise":
        raise RuntimeError("twin failed on purpose")
    if how == "slow":
        await asyncio.sleep(int(os.environ.get("ROLLOUT_SLOW_MS", "300")) / 1000)
    body = _answer(twin)
    if how == "differ":
        body["name"] = "gadget"
    return JSONResponse(body)


for _name in TWINS:
    flask_app.add_url_rule(
        f"/lab/{_name}", endpoint=_name, view_func=lambda _name=_name: _legacy(_name)
    )


def _endpoint(twin: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return await _twin(twin)

    return endpoint


routes = [Route(f"/lab/{name}", _endpoint(name), methods=["GET"], name=name) for name in TWINS]


async def authenticate(scope: dict[str, Any]) -> Principal | None:
    for name, value in scope["headers"]:
        if name == b"authorization" and value == f"Bearer {ADMIN_TOKEN}".encode():
            return Principal("rollout-admin", True)
    return None


def _flags_route(holder: list[Gateway]) -> Route:
    async def flags(request: Request) -> Response:
        refresher = holder[0].refresher
        if refresher is None:
            return JSONResponse({"error": "not started"}, status_code=503)
        return JSONResponse(
            {"version": refresher.snapshot.version, "installed_at": refresher.installed_at}
        )

    return Route("/_rollout/lab/flags", flags, methods=["GET"])


def create_gateway() -> Gateway:
    """The gateway over this app, configured from the environment (unset: the defaults)."""
    env = os.environ
    options: dict[str, Any] = {}
    for option, name in (
        ("stats_flush_s", "ROLLOUT_STATS_FLUSH_S"),
        ("guard_tick_s", "ROLLOUT_GUARD_TICK_S"),
    ):
        if env.get(name):
            options[option] = float(env[name])
    source = FlagSource(Path(env["ROLLOUT_FLAGS_FILE"]), env["ROLLOUT_DATABASE_URL"])
    if env.get("ROLLOUT_POLL_S"):
        source.poll_interval_s = float(env["ROLLOUT_POLL_S"])
    if env.get("ROLLOUT_FALLBACK_POLL_S"):
        source.fallback_poll_s = float(env["ROLLOUT_FALLBACK_POLL_S"])
    if env.get("ROLLOUT_FLAGS_NOTIFY"):
        source.notify = env["ROLLOUT_FLAGS_NOTIFY"] == "on"
    holder: list[Gateway] = []
    gateway = build_gateway(
        flask_app,
        routes,
        source,
        authenticate=authenticate,
        wsgi_threads=8,
        rollout_webhook=env.get("ROLLOUT_WEBHOOK") or None,
        extra_routes=[_flags_route(holder)],
        **options,
    )
    holder.append(gateway)
    return gateway


def __getattr__(name: str) -> Any:
    if name == "app":
        gateway = create_gateway()
        globals()["app"] = gateway
        return gateway
    raise AttributeError(name)
