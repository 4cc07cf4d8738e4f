"""Async twins of the `action_items` blueprint."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asgi_gateway.endpoints._http import (
    JSON,
    api_endpoint,
    json_body,
    paginated,
    query_params,
    runtime,
)
from shared.auth import Actor
from shared.inputs.archive import parse_action_item_query, parse_resolution


@api_endpoint
async def list_items(request: Request, actor: Actor) -> Response:
    query = parse_action_item_query(query_params(request))
    return paginated(request, await runtime(request).services.action_items.list(actor, query))


@api_endpoint
async def get_item(request: Request, actor: Actor) -> Response:
    item_id = request.path_params["item_id"]
    return JSON(await runtime(request).services.action_items.get(actor, item_id))


@api_endpoint
async def resolve(request: Request, actor: Actor) -> Response:
    choice = parse_resolution(await json_body(request))
    item_id = request.path_params["item_id"]
    return JSON(await runtime(request).services.action_items.resolve(actor, item_id, choice))


_ONE = "/api/action-items/{item_id:int}"
routes = [
    Route("/api/action-items", list_items, methods=["GET"], name="action_items.list"),
    Route(_ONE, get_item, methods=["GET"], name="action_items.get"),
    Route(f"{_ONE}/resolve", resolve, methods=["POST"], name="action_items.resolve"),
]
