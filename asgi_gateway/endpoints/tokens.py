"""Async twins of the `tokens` blueprint: the caller's own API tokens."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asgi_gateway.endpoints._http import JSON, api_endpoint, json_body, runtime
from shared.auth import Actor
from shared.validation import parse_new_token


@api_endpoint
async def list_tokens(request: Request, actor: Actor) -> Response:
    tokens = await runtime(request).services.tokens.list_own(actor)
    return JSON({"data": tokens, "meta": {"count": len(tokens)}})


@api_endpoint
async def create_token(request: Request, actor: Actor) -> Response:
    values = parse_new_token(await json_body(request))
    token = await runtime(request).services.tokens.create_own(
        actor, name=values["name"], expires_in_days=values["expires_in_days"]
    )
    return JSON(token, status_code=201)


@api_endpoint
async def delete_token(request: Request, actor: Actor) -> Response:
    await runtime(request).services.tokens.revoke_own(actor, request.path_params["token_id"])
    return Response(status_code=204)


routes = [
    Route("/api/tokens", list_tokens, methods=["GET"], name="tokens.list"),
    Route("/api/tokens", create_token, methods=["POST"], name="tokens.create"),
    Route("/api/tokens/{token_id:int}", delete_token, methods=["DELETE"], name="tokens.delete"),
]
