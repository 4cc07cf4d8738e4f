"""A third-party test app behind `build_gateway` whose twins misbehave on demand.

Serve it with `uvicorn tests.asgi_gateway.lab_app:app` and LAB_FLAGS_FILE, LAB_DATABASE_URL
in the environment (one worker: the twins' behaviour is process state). Legacy-only control
routes set how each twin behaves (`POST /lab/behave` with `{"twin": name, "as": behaviour}`)
and release a blocked twin; `GET /lab/state` reports what the twins did.

Behaviours: `same` (answers like legacy), `field` (one JSON value differs), `status` (another
status), `header` (another Content-Type), `order` (a list in another order), `raise`, `hang`
(never answers), `block` (waits until `POST /lab/release`), `fail_5xx` (answers 503),
`fail_after_start` (starts a 200, then raises), `slow` (answers after `LAB_SLOW_MS`).
`GET /lab/hold` is a legacy request that stays in flight until `POST /lab/let-go`.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asgi_gateway import FlagSource, Gateway, Principal, build_gateway

FLAGS = """\
version: 1
routes:
  item: {mode: shadow, shadow: {timeout: 5s}, compare: {ignore: ["$.generated_at"]}}
  whoami: {mode: shadow}
  noisy: {mode: shadow, compare: {noise_sample: 1.0}}
  fallible: {mode: async, fallback: true, fallback_timeout: 1s}
  fallible_write: {mode: async}
"""

flask_app = Flask(__name__)
flask_app.config["SECRET_KEY"] = "lab-secret-key-0123456789"
_lock = threading.Lock()
_behaviour: dict[str, str] = {}
_state = {"calls": {}, "blocked": 0, "holding": 0, "writes": 0, "legacy_writes": 0}
_release = threading.Event()
_hold = threading.Event()
_counter = iter(range(1, 10**9))


def behaviour(twin: str) -> str:
    with _lock:
        _state["calls"][twin] = _state["calls"].get(twin, 0) + 1  # type: ignore[index]
        return _behaviour.get(twin, "same")


@flask_app.post("/lab/behave")
def behave() -> Any:
    body = request.get_json()
    with _lock:
        _behaviour[body["twin"]] = body["as"]
    _release.clear()
    return jsonify({"ok": True})


@flask_app.post("/lab/release")
def release() -> Any:
    _release.set()
    return jsonify({"ok": True})


@flask_app.get("/lab/hold")
def hold() -> Any:
    with _lock:
        _state["holding"] += 1  # type: ignore[operator]
    _hold.wait(30)
    with _lock:
        _state["holding"] -= 1  # type: ignore[operator]
    return jsonify({"held": True})


@flask_app.post("/lab/let-go")
def let_go() -> Any:
    _hold.set()
    return jsonify({"ok": True})


@flask_app.get("/lab/state")
def state() -> Any:
    with _lock:
        return jsonify({**_state, "calls": dict(_state["calls"])})  # type: ignore[call-overload]


ITEM = {"id": 7, "name": "widget", "tags": ["a", "b", "c"], "price": 10}


@flask_app.get("/lab/item", endpoint="item")
def item_legacy() -> Any:
    return jsonify({**ITEM, "generated_at": time.time()})


async def item_async(request: Request) -> Response:
    how = behaviour("item")
    body: dict[str, Any] = {**ITEM, "generated_at": time.time()}
    if how == "field":
        body["name"] = "gadget"
    elif how == "order":
        body["tags"] = ["c", "b", "a"]
    elif how == "status":
        return JSONResponse(body, status_code=202)
    elif how == "header":
        return Response(JSONResponse(body).body, media_type="application/vnd.lab+json")
    elif how == "number":
        body["price"] = 10.0  # 10 == 10.0: not a difference
    elif how == "raise":
        raise RuntimeError("twin failed on purpose")
    elif how == "hang":
        await asyncio.sleep(3600)
    elif how == "block":
        with _lock:
            _state["blocked"] += 1  # type: ignore[operator]
        await asyncio.get_running_loop().run_in_executor(None, _release.wait, 30)
        with _lock:
            _state["blocked"] -= 1  # type: ignore[operator]
    return JSONResponse(body)


@flask_app.get("/lab/noisy", endpoint="noisy")
def noisy_legacy() -> Any:
    return jsonify({"id": 1, "rows": [{"n": 1, "at_ns": time.time_ns()}]})


async def noisy_async(request: Request) -> Response:
    how = behaviour("noisy")
    return JSONResponse(
        {"id": 2 if how == "field" else 1, "rows": [{"n": 1, "at_ns": time.time_ns()}]}
    )


@flask_app.get("/lab/whoami", endpoint="whoami")
def whoami_legacy() -> Any:
    return jsonify(
        {
            "authorization": request.headers.get("Authorization"),
            "session": request.cookies.get("lab_session"),
            "query": request.args.get("q"),
        }
    )


async def whoami_async(request: Request) -> Response:
    behaviour("whoami")
    return JSONResponse(
        {
            "authorization": request.headers.get("authorization"),
            "session": request.cookies.get("lab_session"),
            "query": request.query_params.get("q"),
        }
    )


@flask_app.get("/lab/fallible", endpoint="fallible")
def fallible_legacy() -> Any:
    return jsonify({"served_by": "legacy"})


async def fallible_async(request: Request) -> Response:
    how = behaviour("fallible")
    if how == "raise":
        raise RuntimeError("twin failed on purpose")
    if how == "hang":
        await asyncio.sleep(3600)
    if how == "fail_5xx":
        return JSONResponse({"error": "unavailable"}, status_code=503)
    if how == "slow":
        await asyncio.sleep(int(os.environ.get("LAB_SLOW_MS", "300")) / 1000)
    if how == "fail_after_start":
        return _StartThenFail()
    return JSONResponse({"served_by": "async"})


class _StartThenFail(Response):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"partial":', "more_body": True})
        raise RuntimeError("twin failed after starting its answer")


@flask_app.post("/lab/fallible-write", endpoint="fallible_write")
def fallible_write_legacy() -> Any:
    with _lock:
        _state["legacy_writes"] += 1  # type: ignore[operator]
    return jsonify({"written": next(_counter)}), 201


async def fallible_write_async(request: Request) -> Response:
    how = behaviour("fallible_write")
    with _lock:
        _state["writes"] += 1  # type: ignore[operator]
    if how == "raise":
        raise RuntimeError("twin failed on purpose")
    return JSONResponse({"written": next(_counter)}, status_code=201)


routes = [
    Route("/lab/item", item_async, methods=["GET"], name="item"),
    Route("/lab/whoami", whoami_async, methods=["GET"], name="whoami"),
    Route("/lab/noisy", noisy_async, methods=["GET"], name="noisy"),
    Route("/lab/fallible", fallible_async, methods=["GET"], name="fallible"),
    Route("/lab/fallible-write", fallible_write_async, methods=["POST"], name="fallible_write"),
]

ADMIN_TOKEN = "lab-admin-token"


async def authenticate(scope: dict[str, Any]) -> Principal | None:
    for name, value in scope["headers"]:
        if name == b"authorization" and value == f"Bearer {ADMIN_TOKEN}".encode():
            return Principal("lab-admin", True)
    return None


def create_gateway() -> Gateway:
    """The gateway over this app, configured from the environment."""
    return build_gateway(
        flask_app,
        routes,
        FlagSource(Path(os.environ["LAB_FLAGS_FILE"]), os.environ["LAB_DATABASE_URL"], 0.1),
        authenticate=authenticate,
        wsgi_threads=4,
        shadow_concurrency=int(os.environ.get("LAB_SHADOW_CONCURRENCY", "8")),
        stats_flush_s=0.2,
    )


def __getattr__(name: str) -> Any:
    if name == "app":
        gateway = create_gateway()
        globals()["app"] = gateway
        return gateway
    raise AttributeError(name)
