"""Async twins of the `archive_configs` blueprint, with the timesheet export."""

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
from shared.inputs.archive import parse_archive_config, parse_timesheet_query
from shared.validation import parse_page


@api_endpoint
async def list_configs(request: Request, actor: Actor) -> Response:
    page = parse_page(query_params(request))
    return paginated(request, await runtime(request).services.archive.list_configs(actor, page))


@api_endpoint
async def create_config(request: Request, actor: Actor) -> Response:
    values = parse_archive_config(await json_body(request))
    config = await runtime(request).services.archive.create_config(actor, values)
    return JSON(
        config, status_code=201, headers={"Location": f"/api/archive-configs/{config['id']}"}
    )


@api_endpoint
async def get_config(request: Request, actor: Actor) -> Response:
    config_id = request.path_params["config_id"]
    return JSON(await runtime(request).services.archive.get_config(actor, config_id))


@api_endpoint
async def update_config(request: Request, actor: Actor) -> Response:
    values = parse_archive_config(await json_body(request), partial=True)
    config_id = request.path_params["config_id"]
    return JSON(await runtime(request).services.archive.update_config(actor, config_id, values))


@api_endpoint
async def delete_config(request: Request, actor: Actor) -> Response:
    await runtime(request).services.archive.delete_config(actor, request.path_params["config_id"])
    return Response(status_code=204)


@api_endpoint
async def timesheet(request: Request, actor: Actor) -> Response:
    query = parse_timesheet_query(query_params(request))
    timesheets = runtime(request).services.timesheets
    config_id = request.path_params["config_id"]
    if query.format == "json":
        return JSON(await timesheets.summary(actor, config_id, query))
    text, name = await timesheets.csv(actor, config_id, query)
    return Response(
        text.encode(),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


_ONE = "/api/archive-configs/{config_id:int}"
routes = [
    Route("/api/archive-configs", list_configs, methods=["GET"], name="archive_configs.list"),
    Route("/api/archive-configs", create_config, methods=["POST"], name="archive_configs.create"),
    Route(_ONE, get_config, methods=["GET"], name="archive_configs.get"),
    Route(_ONE, update_config, methods=["PATCH"], name="archive_configs.update"),
    Route(_ONE, delete_config, methods=["DELETE"], name="archive_configs.delete"),
    Route(f"{_ONE}/timesheet", timesheet, methods=["GET"], name="archive_configs.timesheet"),
]
