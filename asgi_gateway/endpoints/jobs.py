"""Async twins of the `jobs` blueprint."""

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
from shared.validation import parse_job, parse_page


@api_endpoint
async def list_jobs(request: Request, actor: Actor) -> Response:
    page = parse_page(query_params(request))
    return paginated(request, await runtime(request).services.jobs.list(actor, page))


@api_endpoint
async def create_job(request: Request, actor: Actor) -> Response:
    values = parse_job(await json_body(request))
    job = await runtime(request).services.jobs.create(actor, values)
    return JSON(job, status_code=201, headers={"Location": f"/api/jobs/{job['id']}"})


@api_endpoint
async def health(request: Request, actor: Actor) -> Response:
    return JSON(await runtime(request).services.jobs.health(actor))


@api_endpoint
async def get_job(request: Request, actor: Actor) -> Response:
    return JSON(await runtime(request).services.jobs.get(actor, request.path_params["job_id"]))


@api_endpoint
async def update_job(request: Request, actor: Actor) -> Response:
    values = parse_job(await json_body(request), partial=True)
    job_id = request.path_params["job_id"]
    return JSON(await runtime(request).services.jobs.update(actor, job_id, values))


@api_endpoint
async def delete_job(request: Request, actor: Actor) -> Response:
    await runtime(request).services.jobs.delete(actor, request.path_params["job_id"])
    return Response(status_code=204)


@api_endpoint
async def trigger(request: Request, actor: Actor) -> Response:
    run = await runtime(request).services.jobs.trigger(actor, request.path_params["job_id"])
    return JSON(run, status_code=202)


@api_endpoint
async def runs(request: Request, actor: Actor) -> Response:
    page = parse_page(query_params(request))
    job_id = request.path_params["job_id"]
    return paginated(request, await runtime(request).services.jobs.runs(actor, job_id, page))


_ONE = "/api/jobs/{job_id:int}"
routes = [
    Route("/api/jobs", list_jobs, methods=["GET"], name="jobs.list"),
    Route("/api/jobs", create_job, methods=["POST"], name="jobs.create"),
    # Before the job routes: `health` is not an int, but keep the literal path first anyway.
    Route("/api/jobs/health", health, methods=["GET"], name="jobs.health"),
    Route(_ONE, get_job, methods=["GET"], name="jobs.get"),
    Route(_ONE, update_job, methods=["PATCH"], name="jobs.update"),
    Route(_ONE, delete_job, methods=["DELETE"], name="jobs.delete"),
    Route(f"{_ONE}/trigger", trigger, methods=["POST"], name="jobs.trigger"),
    Route(f"{_ONE}/runs", runs, methods=["GET"], name="jobs.runs"),
]
