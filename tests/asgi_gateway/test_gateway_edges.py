"""Edges of the gateway for any Flask app: canary stickiness by header, session, ip and token;
the backend override when the identity check fails; websockets; a failing app shutdown."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_gateway import FlagSource, Gateway, Principal, build_gateway
from asgi_gateway.serving.decision import bucket
from tests.conftest import LiveServer

FLAGS = """\
version: 1
routes:
  by_header: {mode: canary, percent: 50, sticky_by: "header:X-Tenant"}
  by_session: {mode: canary, percent: 50, sticky_by: session}
  by_ip: {mode: canary, percent: 50, sticky_by: ip}
  by_user: {mode: canary, percent: 50, sticky_by: user}
  pinned: {mode: legacy}
"""
ENDPOINTS = ("by_header", "by_session", "by_ip", "by_user", "pinned")


class IdentityDown(Exception):
    """The app's identity store cannot be reached."""


async def authenticate(scope: dict[str, Any]) -> Principal | None:
    headers = dict(scope["headers"])
    value = headers.get(b"authorization", b"")
    if value == b"Bearer admin":
        return Principal("admin", True)
    if value == b"Bearer user":
        return Principal("user", False)
    if value == b"Bearer down":
        raise IdentityDown("identity store unreachable")
    return None


def make_gateway(tmp_path: Path, **options: Any) -> Gateway:
    flask_app = Flask(__name__)
    routes = []
    for name in ENDPOINTS:
        flask_app.add_url_rule(
            f"/{name}", name, lambda name=name: jsonify(backend="legacy", endpoint=name)
        )

        async def twin(request: Request, name: str = name) -> JSONResponse:
            return JSONResponse({"backend": "async", "endpoint": name})

        routes.append(Route(f"/{name}", twin, methods=["GET"], name=name))
    flags = tmp_path / "flags.yaml"
    flags.write_text(FLAGS)
    source = FlagSource(flags, f"sqlite+aiosqlite:///{tmp_path / 'flags.db'}", poll_interval_s=0.1)
    return build_gateway(flask_app, routes, source, authenticate=authenticate, **options)


@pytest.fixture
def gateway(tmp_path: Path, serve: Callable[..., LiveServer]) -> LiveServer:
    return serve(make_gateway(tmp_path))


def served_by(server: LiveServer, path: str, **headers: str) -> str:
    response = httpx.get(server.url + path, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["backend"] == response.headers["x-served-by"]
    return response.headers["x-served-by"]


def expected(endpoint: str, key: str) -> str:
    return "async" if bucket(endpoint, key) < 5000 else "legacy"


def test_a_header_sticky_canary_follows_the_header_and_falls_back_to_session_then_ip(
    gateway: LiveServer,
) -> None:
    seen = set()
    for n in range(24):
        tenant = f"tenant-{n}"
        first = served_by(gateway, "/by_header", **{"X-Tenant": tenant})
        assert served_by(gateway, "/by_header", **{"X-Tenant": tenant}) == first
        assert first == expected("by_header", "h:" + tenant)
        seen.add(first)
    assert seen == {"legacy", "async"}  # half and half: both sides were reached
    # No header: the session cookie decides; no cookie either: the client's address.
    for n in range(8):
        cookie = f"session=s{n}"
        assert served_by(gateway, "/by_header", Cookie=cookie) == expected("by_header", f"s:s{n}")
    assert served_by(gateway, "/by_header") == expected("by_header", "ip:127.0.0.1")


def test_a_session_sticky_canary_follows_the_cookie(gateway: LiveServer) -> None:
    for n in range(16):
        cookie = f"other=1; session=abc{n}"
        first = served_by(gateway, "/by_session", Cookie=cookie)
        assert served_by(gateway, "/by_session", Cookie=cookie) == first
        assert first == expected("by_session", f"s:abc{n}")


def test_an_ip_sticky_canary_ignores_headers_and_cookies(gateway: LiveServer) -> None:
    want = expected("by_ip", "ip:127.0.0.1")
    for n in range(8):
        headers = {"Cookie": f"session=x{n}", "Authorization": f"Bearer t{n}"}
        assert served_by(gateway, "/by_ip", **headers) == want


def test_a_user_sticky_canary_of_an_app_without_sessions_follows_the_bearer_token(
    gateway: LiveServer,
) -> None:
    for n in range(16):
        token = f"token-{n}"
        digest = "t:" + hashlib.sha256(token.encode()).hexdigest()[:24]
        first = served_by(gateway, "/by_user", Authorization=f"Bearer {token}")
        assert first == expected("by_user", digest)
        assert served_by(gateway, "/by_user", Authorization=f"Bearer {token}") == first


def test_the_override_is_honoured_for_admins_only_and_ignored_when_identity_fails(
    gateway: LiveServer,
) -> None:
    def pinned(who: str) -> str:
        return served_by(
            gateway, "/pinned", Authorization=f"Bearer {who}", **{"X-Backend-Override": "async"}
        )

    assert pinned("admin") == "async"
    assert pinned("user") == "legacy"
    assert pinned("nobody") == "legacy"
    # An identity check that raises must not fail the request: the flag decides.
    assert pinned("down") == "legacy"


async def test_a_websocket_handshake_is_refused_cleanly(tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/by_ip", "headers": [], "query_string": b""}
    await gateway(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1003}]


async def test_a_failing_app_shutdown_is_reported_to_the_server(tmp_path: Path) -> None:
    @contextlib.asynccontextmanager
    async def lifespan(gateway: Gateway, state: dict[str, Any]) -> AsyncIterator[None]:
        state["opened"] = True
        yield
        raise RuntimeError("could not close the app's pool")

    gateway = make_gateway(tmp_path, lifespan=lifespan)
    assert (gateway.store, gateway.refresher) == (None, None)  # nothing before start-up
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []
    state: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        if sent and sent[-1]["type"] == "lifespan.startup.complete":
            # Running: the flag store and its refresher are up.
            assert gateway.store is not None and gateway.refresher is not None
        return next(incoming)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await gateway({"type": "lifespan", "state": state}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    assert sent[-1]["message"] == "could not close the app's pool"
    assert state == {"opened": True}
