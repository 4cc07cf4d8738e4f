"""The gateway as a library for other apps: any WSGI app, fresh apps per test, movable paths."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask, Response, jsonify
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from asgi_gateway import FlagSource, Gateway, OwnPaths, RouteMismatch, build_gateway
from tests.conftest import LiveServer

FLAGS = """\
version: 1
routes:
  hello: {mode: async}
"""


def make_flask() -> Flask:
    app = Flask("library_test")

    @app.get("/hello", endpoint="hello")
    def hello() -> Any:
        return jsonify({"backend": "legacy"})

    @app.get("/plain")
    def plain() -> Any:
        return jsonify({"plain": True})

    @app.get("/metrics-export")
    def metrics_export() -> Any:
        return jsonify({"mine": "metrics-export"})

    @app.get("/readyz2")
    def readyz2() -> Any:
        return jsonify({"mine": "readyz2"})

    @app.get("/_rollout2")
    def rollout2() -> Any:
        return jsonify({"mine": "_rollout2"})

    @app.get("/stream")
    def stream() -> Response:
        return Response((b"x" * 100 for _ in range(5)), mimetype="application/octet-stream")

    return app


async def hello_async(request: Request) -> JSONResponse:
    return JSONResponse({"backend": "async"})


ROUTES = [Route("/hello", hello_async, methods=["GET"], name="hello")]


@pytest.fixture
def source(tmp_path: Path) -> Callable[[], FlagSource]:
    path = tmp_path / "flags.yaml"
    path.write_text(FLAGS)
    return lambda: FlagSource(path, f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")


def test_two_gateways_in_one_process_both_serve(
    source: Callable[[], FlagSource], serve: Callable[..., LiveServer]
) -> None:
    """Each gateway has its own metrics registry: the second no longer fails to start."""
    first = serve(build_gateway(make_flask(), ROUTES, source()))
    second = serve(build_gateway(make_flask(), ROUTES, source()))
    for server in (first, second):
        with server.client() as client:
            assert client.get("/hello").json() == {"backend": "async"}
            assert client.get("/readyz").status_code == 200
            assert "gateway_requests_total" in client.get("/metrics").text


def test_one_gateway_starts_again_after_it_stopped(
    source: Callable[[], FlagSource], serve: Callable[..., LiveServer]
) -> None:
    gateway = build_gateway(make_flask(), ROUTES, source())
    for _ in range(2):
        server = serve(gateway)
        with server.client() as client:
            assert client.get("/hello").headers["x-served-by"] == "async"
            assert client.get("/readyz").json()["status"] == "ready"
        server.stop()


def plain_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"plain wsgi at {environ['PATH_INFO']}".encode()]


@pytest.mark.parametrize("kind", ["callable", "proxy_fix", "dispatcher"])
def test_any_wsgi_app_is_served_with_its_twins(
    kind: str, source: Callable[[], FlagSource], serve: Callable[..., LiveServer]
) -> None:
    flask_app = make_flask()
    wsgi: Any
    if kind == "callable":
        wsgi, named = plain_wsgi, None
    elif kind == "proxy_fix":
        wsgi, named = ProxyFix(flask_app), flask_app
    else:
        wsgi, named = DispatcherMiddleware(plain_wsgi, {"/app": flask_app}), None
    server = serve(build_gateway(wsgi, ROUTES, source(), flask_app=named))
    with server.client() as client:
        twin = client.get("/hello")
        other = client.get("/plain")
    assert (twin.headers["x-served-by"], twin.json()) == ("async", {"backend": "async"})
    assert other.headers["x-served-by"] == "legacy"
    if kind == "callable":
        assert other.text == "plain wsgi at /plain"
    elif kind == "proxy_fix":
        assert other.json() == {"plain": True}


def test_twins_of_a_wrapped_flask_app_are_still_checked(source: Callable[[], FlagSource]) -> None:
    flask_app = make_flask()
    wrong = [Route("/hello/{x}", hello_async, methods=["GET"], name="hello")]
    with pytest.raises(RouteMismatch, match=r"hello: URL pattern differs"):
        build_gateway(ProxyFix(flask_app), wrong, source(), flask_app=flask_app)


def test_own_paths_match_whole_segments_only(
    source: Callable[[], FlagSource], serve: Callable[..., LiveServer]
) -> None:
    server = serve(build_gateway(make_flask(), ROUTES, source()))
    with server.client() as client:
        for path in ("/metrics-export", "/readyz2", "/_rollout2"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["x-served-by"] == "legacy"
            assert response.json() == {"mine": path[1:]}
        assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_a_flask_route_under_the_gateways_paths_is_named_at_start_up(
    source: Callable[[], FlagSource], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_flask()

    @app.get("/metrics")
    def own_metrics() -> Any:
        return "mine"

    @app.get("/_rollout/<name>")
    def own_rollout(name: str) -> Any:
        return name

    with caplog.at_level(logging.WARNING, logger="asgi_gateway"):
        build_gateway(app, ROUTES, source())
    messages = [r.getMessage() for r in caplog.records]
    assert any("/metrics (own_metrics) is hidden by the gateway's own paths" in m for m in messages)
    assert any("/_rollout/<name> (own_rollout) is hidden" in m for m in messages)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="asgi_gateway"):
        build_gateway(
            app, ROUTES, source(), paths=OwnPaths("/_gateway", "/_gateway-metrics", "/_ready")
        )
    assert not [r for r in caplog.records if "hidden" in r.getMessage()]


def test_moved_own_paths_serve_the_gateway_and_free_the_old_ones(
    source: Callable[[], FlagSource], serve: Callable[..., LiveServer]
) -> None:
    app = make_flask()

    @app.get("/metrics")
    def own_metrics() -> Any:
        return "the app's own metrics"

    paths = OwnPaths("/_gateway", "/_gateway/metrics-text", "/_gateway/ready")
    server = serve(build_gateway(app, ROUTES, source(), paths=paths))
    with server.client() as client:
        assert client.get("/metrics").text == "the app's own metrics"
        assert "gateway_requests_total" in client.get("/_gateway/metrics-text").text
        assert client.get("/_gateway/ready").json()["status"] == "ready"
        assert client.get("/readyz").status_code == 404  # the Flask app has none


@pytest.mark.parametrize("bad", ["metrics", "/metrics/", "/"])
def test_own_paths_must_be_absolute_without_a_trailing_slash(bad: str) -> None:
    with pytest.raises(ValueError, match="must start with '/' and not end with one"):
        OwnPaths(metrics=bad)


def test_only_streamed_responses_start_a_disconnect_watcher(
    source: Callable[[], FlagSource], serve: Callable[..., LiveServer]
) -> None:
    gateway: Gateway = build_gateway(make_flask(), ROUTES, source())
    server = serve(gateway)
    with server.client() as client:
        for _ in range(20):
            assert client.get("/plain").status_code == 200
        assert gateway.legacy.watchers_started == 0
        assert client.get("/stream").content == b"x" * 500
    deadline = time.monotonic() + 5  # counted once the mount's call has returned
    while gateway.legacy.watchers_started == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gateway.legacy.watchers_started == 1


def test_readiness_checks_of_the_app_are_named_when_they_fail(
    source: Callable[[], FlagSource], serve: Callable[..., LiveServer]
) -> None:
    healthy = {"cache": True}

    async def cache() -> None:
        if not healthy["cache"]:
            raise ConnectionError("cache at 127.0.0.1:6390 refused the connection")

    server = serve(build_gateway(make_flask(), ROUTES, source(), readiness_checks={"cache": cache}))
    with server.client() as client:
        ok = client.get("/readyz")
        healthy["cache"] = False
        failing = client.get("/readyz")
    assert (ok.status_code, ok.json()["checks"]["cache"]) == (200, "ok")
    assert failing.status_code == 503
    body = failing.json()
    assert (body["status"], body["failing"]) == ("degraded", ["cache"])
    assert body["checks"]["cache"] == "cache at 127.0.0.1:6390 refused the connection"
    assert body["checks"]["flags"] == "ok"


def test_metrics_can_require_a_token(
    source: Callable[[], FlagSource], serve: Callable[..., LiveServer]
) -> None:
    token = "m" * 24
    server = serve(build_gateway(make_flask(), ROUTES, source(), metrics_token=token))
    with server.client() as client:
        anonymous = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.json()["error"]["message"] == (
        "metrics need 'Authorization: Bearer <metrics token>'"
    )
    assert right.status_code == 200 and "gateway_requests_total" in right.text


def test_a_gateway_without_flask_knows_only_its_twins(
    source: Callable[[], FlagSource], serve: Callable[..., LiveServer]
) -> None:
    gateway = build_gateway(plain_wsgi, ROUTES, source())
    assert set(gateway.endpoints) == {"hello"}
    server = serve(gateway)
    assert httpx.get(server.url + "/hello").json() == {"backend": "async"}
