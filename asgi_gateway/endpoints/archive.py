"""Async twins of the `archive` blueprint: run a configuration now, read the action log."""

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
from shared.inputs.archive import parse_archive_run
from shared.validation import parse_optional_id, parse_page


@api_endpoint
async def run(request: Request, actor: Actor) -> Response:
    window = parse_archive_run(await json_body(request, optional=True))
    entry = await runtime(request).services.archive.run(
        actor,
        request.path_params["config_id"],
        start=window["start"],
        end=window["end"],
        mode=window["mode"],
    )
    return JSON(entry, status_code=201)


@api_endpoint
async def action_log(request: Request, actor: Actor) -> Response:
    config_id = parse_optional_id(query_params(request), "config_id")
    page = parse_page(query_params(request))
    return paginated(
        request, await runtime(request).services.archive.action_log(actor, config_id, page)
    )


routes = [
    Route("/api/archive-configs/{config_id:int}/run", run, methods=["POST"], name="archive.run"),
    Route("/api/action-log", action_log, methods=["GET"], name="archive.log"),
]
