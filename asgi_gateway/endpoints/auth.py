"""Async twins of the `auth` blueprint's JSON endpoints (the sign-in pages stay legacy)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asgi_gateway.endpoints._http import JSON, api_endpoint, current_session, json_body, runtime
from shared.auth import Actor
from shared.validation import parse_password_change


@api_endpoint
async def me(request: Request, actor: Actor) -> Response:
    return JSON(await runtime(request).services.users.me(actor))


@api_endpoint
async def change_password(request: Request, actor: Actor) -> Response:
    values = parse_password_change(await json_body(request))
    await runtime(request).services.users.change_password(
        actor, values["current_password"], values["new_password"], keep=current_session(request)
    )
    return Response(status_code=204)


@api_endpoint
async def sign_out_everywhere(request: Request, actor: Actor) -> Response:
    await runtime(request).services.users.sign_out_everywhere(actor)
    return Response(status_code=204)


routes = [
    Route("/api/me", me, methods=["GET"], name="auth.me"),
    Route("/api/me/password", change_password, methods=["POST"], name="auth.change_password"),
    Route(
        "/api/me/sign-out-everywhere",
        sign_out_everywhere,
        methods=["POST"],
        name="auth.sign_out_everywhere",
    ),
]
