"""Async twin of `auth.me`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asgi_gateway.endpoints._http import JSON, api_endpoint, runtime
from shared.auth import Actor


@api_endpoint
async def me(request: Request, actor: Actor) -> Response:
    return JSON(await runtime(request).services.users.me(actor))


routes = [Route("/api/me", me, methods=["GET"], name="auth.me")]
