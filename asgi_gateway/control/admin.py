"""The admin API under <rollout prefix>/api: flags and their audit trail (admins only)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asgi_gateway.control.database import describe_error
from asgi_gateway.control.plane import AccessDenied, ControlPlane, IdentityUnavailable
from asgi_gateway.control.stats import shadow_report
from asgi_gateway.control.store import Change
from asgi_gateway.errors import (
    FlagConflict,
    FlagError,
    FlagStoreUnavailable,
    RolloutConflict,
    UnknownEndpoint,
)
from asgi_gateway.flags import parse_duration_s
from asgi_gateway.serving.identity import Principal

MAX_ADMIN_BODY_BYTES = 64 * 1024
_PATCH_FIELDS = (
    "mode",
    "percent",
    "sticky_by",
    "shadow",
    "compare",
    "fallback",
    "fallback_timeout",
    "reason",
)
MAX_WINDOW_S = 7 * 24 * 3600
Handler = Callable[[Request, Principal], Awaitable[Response]]


def error(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON error in the project's shape: {"error": {"code", "message", "details"?}}."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


class BadBody(Exception):
    """The request body cannot be used; carries the response that says why."""

    def __init__(self, response: Response) -> None:
        self.response = response


def admin_endpoint(
    plane: ControlPlane, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """`handler` for admins only, every gateway error answered in the error shape."""

    async def endpoint(request: Request) -> Response:
        try:
            principal = await plane.require_admin(request)
            return await handler(request, principal)
        except AccessDenied as exc:
            code = "unauthorized" if exc.status == 401 else "forbidden"
            return error(exc.status, code, exc.message)
        except IdentityUnavailable as exc:
            return error(503, "identity_unavailable", str(exc), headers={"Retry-After": "5"})
        except FlagStoreUnavailable as exc:
            return error(503, "flag_store_unavailable", str(exc), headers={"Retry-After": "5"})
        except BadBody as exc:
            return exc.response
        except (FlagConflict, RolloutConflict) as exc:
            return error(409, "conflict", str(exc))
        except UnknownEndpoint as exc:
            return error(404, "not_found", exc.message)
        except FlagError as exc:
            return error(
                422,
                "validation_error",
                exc.message,
                [{"field": exc.field or "flag", "message": exc.message}],
            )

    return endpoint


def admin_api_routes(plane: ControlPlane) -> list[Route]:
    """Routes of the admin API: list, read and change flags; read the audit trail."""
    base = plane.rollout_prefix + "/api"

    def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return admin_endpoint(plane, handler)

    def known(endpoint: str) -> None:
        if endpoint not in plane.endpoints:
            raise UnknownEndpoint(f"unknown endpoint id {endpoint!r}")

    async def list_flags(request: Request, principal: Principal) -> Response:
        state = await plane.require_store().load()
        data = [
            plane.flag_view(endpoint, plane.effective(endpoint, state))
            for endpoint in sorted(plane.endpoints)
        ]
        return JSONResponse({"data": data, "meta": {"version": state.version, "total": len(data)}})

    async def get_flag(request: Request, principal: Principal) -> Response:
        endpoint = request.path_params["endpoint"]
        known(endpoint)
        state = await plane.require_store().load()
        view = plane.flag_view(endpoint, plane.effective(endpoint, state))
        return JSONResponse(view, headers={"ETag": f'"{view["etag"]}"'})

    async def patch_flag(request: Request, principal: Principal) -> Response:
        endpoint = request.path_params["endpoint"]
        known(endpoint)
        body = await json_object(request)
        unknown = sorted(set(body) - set(_PATCH_FIELDS))
        if unknown:
            return error(
                422,
                "validation_error",
                f"unknown field {unknown[0]!r} (expected {', '.join(_PATCH_FIELDS)})",
                [{"field": k, "message": "unknown field"} for k in unknown],
            )
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            return error(
                422,
                "validation_error",
                "a reason is required for every flag change",
                [{"field": "reason", "message": "is required"}],
            )
        if_match = request.headers.get("if-match")
        before, after = await plane.flip(
            endpoint,
            Change(
                body.get("mode"),
                body.get("percent"),
                body.get("sticky_by"),
                shadow=body.get("shadow"),
                compare=body.get("compare"),
                fallback=body.get("fallback"),
                fallback_timeout=body.get("fallback_timeout"),
            ),
            actor=principal.name,
            reason=reason.strip(),
            expected_etag=if_match.strip().strip('"') if if_match else None,
        )
        view = plane.flag_view(endpoint, after)
        return JSONResponse(
            {"before": before.to_dict(), "after": view}, headers={"ETag": f'"{view["etag"]}"'}
        )

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
        entries = await plane.require_store().history(
            params.get("endpoint") or None, limit=limit, actor=params.get("actor") or None
        )
        return JSONResponse({"data": [e.to_dict() for e in entries]})

    async def shadow(request: Request, principal: Principal) -> Response:
        endpoint = request.path_params["endpoint"]
        known(endpoint)
        try:
            window_s = parse_duration_s(request.query_params.get("window", "1h"))
        except FlagError as exc:
            return error(
                422,
                "validation_error",
                f"window: {exc.message}",
                [{"field": "window", "message": exc.message}],
            )
        if window_s > MAX_WINDOW_S:
            return error(
                422,
                "validation_error",
                "window: at most 7d (stats are kept for a week)",
                [{"field": "window", "message": "at most 7d"}],
            )
        store = plane.require_store()
        try:
            report = await shadow_report(store.engine, endpoint, window_s)
        except (SQLAlchemyError, OSError) as exc:
            raise FlagStoreUnavailable(
                f"cannot read the shadow results: {describe_error(exc)}"
            ) from exc
        return JSONResponse(report)

    return [
        Route(base + "/flags", guarded(list_flags), methods=["GET"]),
        Route(base + "/shadow/{endpoint}", guarded(shadow), methods=["GET"]),
        Route(base + "/flags/{endpoint}", guarded(get_flag), methods=["GET"]),
        Route(base + "/flags/{endpoint}", guarded(patch_flag), methods=["PATCH"]),
        Route(base + "/audit", guarded(audit), methods=["GET"]),
    ]


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; BadBody (415, 413 or 400) naming what is wrong otherwise."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadBody(
            error(
                415,
                "unsupported_media_type",
                "send the body as JSON with 'Content-Type: application/json'",
            )
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_ADMIN_BODY_BYTES:
            raise BadBody(
                error(
                    413,
                    "payload_too_large",
                    f"request body too large (limit {MAX_ADMIN_BODY_BYTES} bytes)",
                )
            )
    try:
        data = json.loads(body)
    except RecursionError:
        raise BadBody(
            error(400, "malformed_json", "request body is not valid JSON: nested too deeply")
        ) from None
    except ValueError as exc:
        raise BadBody(
            error(400, "malformed_json", f"request body is not valid JSON: {exc}")
        ) from None
    if not isinstance(data, dict):
        raise BadBody(error(400, "malformed_json", "request body must be a JSON object"))
    return data
