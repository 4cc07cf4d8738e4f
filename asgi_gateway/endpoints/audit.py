"""Async twins of the `audit` blueprint."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asgi_gateway.endpoints._http import api_endpoint, paginated, query_params, runtime
from shared.auth import Actor
from shared.inputs.audit import parse_audit_query


@api_endpoint
async def list_audit(request: Request, actor: Actor) -> Response:
    query = parse_audit_query(query_params(request))
    return paginated(request, await runtime(request).services.audit.list(actor, query))


routes = [Route("/api/audit", list_audit, methods=["GET"], name="audit.list")]
