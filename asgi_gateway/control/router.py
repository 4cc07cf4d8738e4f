"""The gateway's own pages and APIs in one router: admin API, dashboard, /readyz, /metrics."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, Router

from asgi_gateway.control.admin import admin_api_routes, error
from asgi_gateway.control.dashboard import dashboard_routes
from asgi_gateway.control.plane import ControlPlane
from asgi_gateway.control.rollout_api import rollout_api_routes

Readiness = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]
Scrape = Callable[[], tuple[bytes, str]]


def control_router(
    plane: ControlPlane,
    *,
    readiness: Readiness,
    scrape: Scrape,
    readyz_path: str = "/readyz",
    metrics_path: str = "/metrics",
    metrics_token: str | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Router:
    """The router answering every path the gateway owns; anything else under them is a 404.

    With `metrics_token`, the metrics path answers only `Authorization: Bearer <token>`.
    """
    expected = f"Bearer {metrics_token}".encode() if metrics_token else None

    async def readyz(request: Request) -> Response:
        status, body = await readiness()
        return JSONResponse(body, status_code=status)

    async def metrics(request: Request) -> Response:
        if expected is not None:
            sent = request.headers.get("authorization", "").encode("latin-1", "replace")
            if not hmac.compare_digest(sent, expected):
                return error(
                    401,
                    "unauthorized",
                    "metrics need 'Authorization: Bearer <metrics token>'",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        body, content_type = scrape()
        return Response(body, media_type=content_type)

    routes: list[BaseRoute] = [
        Route(readyz_path, readyz, methods=["GET"]),
        Route(metrics_path, metrics, methods=["GET"]),
        *admin_api_routes(plane),
        *rollout_api_routes(plane),
        *dashboard_routes(plane),
        *extra_routes,
    ]
    router = Router(routes)

    async def not_found(scope: Any, receive: Any, send: Any) -> None:
        await error(404, "not_found", f"no rollout page or API at {scope['path']}")(
            scope, receive, send
        )

    router.default = not_found  # type: ignore[assignment]
    return router
