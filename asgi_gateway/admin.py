"""The admin API under /_rollout/api (flags and audit) and the gateway's /readyz."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from asgi_gateway.errors import FlagError, FlagStoreUnavailable, UnknownEndpoint
from asgi_gateway.flags import Flag
from asgi_gateway.metrics import render_prometheus

if TYPE_CHECKING:
    from asgi_gateway.gateway import Gateway, Principal

MAX_ADMIN_BODY_BYTES = 64 * 1024


def error(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> JSONResponse:
    """The error shape of DESIGN.md."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


class AdminError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def require_admin(gateway: Gateway, request: Request) -> Principal:
    """The calling admin; 401 for anonymous or bad credentials, 403 for non-admins."""
    if gateway.authenticate is None:
        raise AdminError(error(403, "forbidden", "this gateway has no admin authentication"))
    try:
        principal = await gateway.authenticate(request.scope)
    except Exception:
        principal = None
        raise AdminError(error(401, "unauthorized", "invalid credentials")) from None
    if principal is None:
        raise AdminError(
            error(
                401,
                "unauthorized",
                "authentication required: send "
                "'Authorization: Bearer <admin token>' or sign in as an admin",
            )
        )
    if not principal.is_admin:
        raise AdminError(error(403, "forbidden", f"{principal.name} is not an admin"))
    return principal


def flag_view(gateway: Gateway, endpoint: str, runtime: Flag | None) -> dict[str, Any]:
    """One endpoint's rollout: runtime flag, declared flag, twin and drift."""
    declared = gateway.declared.declared(endpoint) if gateway.declared else Flag(endpoint)
    current = runtime or declared
    data = current.to_dict()
    data.update(
        has_twin=endpoint in gateway.twins,
        declared=declared.to_dict(),
        drift=(current.mode, current.percent, current.sticky_by)
        != (declared.mode, declared.percent, declared.sticky_by),
    )
    return data


def admin_router(gateway: Gateway, *, extra_routes: Sequence[Route] = ()) -> Router:
    """The Starlette router behind /_rollout, /metrics and /readyz for `gateway`."""
    from asgi_gateway.dashboard import dashboard_routes

    async def guarded(request: Request, handler: Any) -> Response:
        try:
            principal = await require_admin(gateway, request)
            return await handler(request, principal)
        except AdminError as exc:
            return exc.response
        except FlagStoreUnavailable as exc:
            return error(503, "flag_store_unavailable", str(exc))

    async def list_flags(request: Request, principal: Principal) -> Response:
        state = await _store(gateway).load()
        data = [
            flag_view(gateway, endpoint, state.flags.get(endpoint))
            for endpoint in sorted(gateway.endpoints)
        ]
        return JSONResponse({"data": data, "meta": {"version": state.version, "total": len(data)}})

    async def get_flag(request: Request, principal: Principal) -> Response:
        endpoint = request.path_params["endpoint"]
        if endpoint not in gateway.endpoints:
            return error(404, "not_found", f"unknown endpoint id {endpoint!r}")
        state = await _store(gateway).load()
        return JSONResponse(flag_view(gateway, endpoint, state.flags.get(endpoint)))

    async def patch_flag(request: Request, principal: Principal) -> Response:
        endpoint = request.path_params["endpoint"]
        if endpoint not in gateway.endpoints:
            return error(404, "not_found", f"unknown endpoint id {endpoint!r}")
        body = await _json_object(request)
        unknown = set(body) - {"mode", "percent", "sticky_by", "reason"}
        if unknown:
            return error(
                422,
                "validation_error",
                f"unknown field {sorted(unknown)[0]!r}",
                [{"field": k, "message": "unknown field"} for k in sorted(unknown)],
            )
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            return error(
                422,
                "validation_error",
                "a reason is required for every flag change",
                [{"field": "reason", "message": "is required"}],
            )
        flip = await change_flag(
            gateway,
            endpoint,
            body.get("mode"),
            body.get("percent"),
            body.get("sticky_by"),
            actor=principal.name,
            reason=reason.strip(),
        )
        return JSONResponse(flip)

    async def audit(request: Request, principal: Principal) -> Response:
        params = request.query_params
        try:
            limit = min(max(int(params.get("limit", "100")), 1), 1000)
        except ValueError:
            return error(
                422,
                "validation_error",
                "limit must be a whole number",
                [{"field": "limit", "message": "must be a whole number"}],
            )
        entries = await _store(gateway).history(
            params.get("endpoint") or None, limit=limit, actor=params.get("actor") or None
        )
        return JSONResponse({"data": [e.to_dict() for e in entries]})

    async def readyz(request: Request) -> Response:
        status, body = gateway.readiness()
        return JSONResponse(body, status_code=status)

    async def metrics(request: Request) -> Response:
        gateway.recorder.drain()  # a scrape sees this worker's requests up to now
        body, content_type = render_prometheus()
        return Response(body, media_type=content_type)

    def wrap(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await guarded(request, handler)
            except AdminError as exc:
                return exc.response
            except FlagError as exc:
                status = 404 if isinstance(exc, UnknownEndpoint) else 422
                return error(
                    status,
                    "validation_error" if status == 422 else "not_found",
                    exc.message,
                    [{"field": exc.field or "flag", "message": exc.message}],
                )

        return endpoint

    routes = [
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/_rollout/api/flags", wrap(list_flags), methods=["GET"]),
        Route("/_rollout/api/flags/{endpoint}", wrap(get_flag), methods=["GET"]),
        Route("/_rollout/api/flags/{endpoint}", wrap(patch_flag), methods=["PATCH"]),
        Route("/_rollout/api/audit", wrap(audit), methods=["GET"]),
        *dashboard_routes(gateway, retire_after_days=gateway.retire_after_days),
        *extra_routes,
    ]
    router = Router(routes)

    async def not_found(scope: Any, receive: Any, send: Any) -> None:
        await error(404, "not_found", f"no rollout page or API at {scope['path']}")(
            scope, receive, send
        )

    router.default = not_found  # type: ignore[assignment]
    return router


async def change_flag(
    gateway: Gateway,
    endpoint: str,
    mode: Any,
    percent: Any,
    sticky_by: Any,
    *,
    actor: str,
    reason: str,
    action: str = "set",
) -> dict[str, Any]:
    """The one audited path for a runtime flip (admin API, dashboard, guard)."""
    before, after = await _store(gateway).flip(
        endpoint,
        mode=mode,
        percent=percent,
        sticky_by=sticky_by,
        declared=gateway.declared,
        known=gateway.endpoints.keys(),
        twins=gateway.twins,
        actor=actor,
        reason=reason,
        action=action,
    )
    if gateway.refresher is not None:
        await gateway.refresher.refresh()  # this worker sees its own flip at once
    return {
        "before": before.to_dict() if before else None,
        "after": flag_view(gateway, endpoint, after),
    }


def _store(gateway: Gateway) -> Any:
    if gateway.store is None:
        raise FlagStoreUnavailable("the gateway has not started")
    return gateway.store


async def _json_object(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise AdminError(
            error(
                415,
                "unsupported_media_type",
                "send the body as JSON with 'Content-Type: application/json'",
            )
        )
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_ADMIN_BODY_BYTES:
            raise AdminError(
                error(
                    413,
                    "payload_too_large",
                    f"request body too large (limit {MAX_ADMIN_BODY_BYTES} bytes)",
                )
            )
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise AdminError(
            error(400, "malformed_json", f"request body is not valid JSON: {exc}")
        ) from None
    if not isinstance(data, dict):
        raise AdminError(error(400, "malformed_json", "request body must be a JSON object"))
    return data
