"""Request and response plumbing of the async endpoints: identity, bodies, pages, error shape.

Mirrors legacy_flask/api.py so both backends answer alike; the logic itself lives in
`shared` and is awaited, never copied.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.auth import Actor
from shared.db import describe_outage, unavailable_error
from shared.errors import (
    AppError,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from shared.pagination import Page, link_header
from shared.runtime import Runtime
from shared.sessions import SessionIdentity
from shared.validation import decode_json

_log = logging.getLogger(__name__)
Handler = Callable[..., Awaitable[Response]]


class JSON(JSONResponse):
    """Compact JSON with a trailing newline and unescaped order, as Flask's jsonify sends it."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"


def runtime(request: Request) -> Runtime:
    return request.state.runtime  # type: ignore[no-any-return]


def cookie_header(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's Cookie headers as one string, joined with ',' as the WSGI side joins them."""
    values = [value.decode("latin-1") for key, value in headers if key == b"cookie"]
    return ",".join(values) if values else None


def current_session(request: Request) -> SessionIdentity | None:
    """The signed-in identity the session cookie names (not yet checked against the database)."""
    return runtime(request).sessions.identity(cookie_header(request.scope["headers"]))


async def current_actor(request: Request) -> Actor | None:
    """The caller: bearer token if sent, else the live session its cookie names."""
    rt = runtime(request)
    return await rt.services.users.resolve(
        request.headers.get("authorization"), current_session(request)
    )


def error_response(error: AppError) -> Response:
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="admin-assistant"'
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    return JSON(error.to_dict(), status_code=error.status, headers=headers or None)


def api_endpoint(
    handler: Callable[..., Awaitable[Any]],
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap `handler(request, actor)`: authenticate, and turn errors into the API error shape."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            actor = await current_actor(request)
            if actor is None:
                raise Unauthorized(
                    "authentication required: send 'Authorization: Bearer "
                    "<token>' or log in at /login"
                )
            response = await handler(request, actor)
        except AppError as exc:
            response = error_response(exc)
        except Exception as exc:
            unavailable = unavailable_error(exc)
            if unavailable is not None:
                _log.error(
                    "%s %s: %s",
                    request.method,
                    request.url.path,
                    describe_outage(exc, runtime(request).settings.database_url),
                )
                response = error_response(unavailable)
            else:
                _log.exception("unhandled error in %s %s", request.method, request.url.path)
                response = error_response(AppError("internal server error; it has been logged"))
        # The answer depends on the session cookie (it may name the caller): say so to
        # caches, as Flask does for every view that reads the session.
        response.headers.add_vary_header("Cookie")
        return response

    return endpoint


def paginated(request: Request, page: Page[dict[str, Any]]) -> Response:
    link = link_header(request.url.path, query_params(request), page)
    return JSON({"data": list(page.items), "meta": page.meta()}, headers={"Link": link})


def query_params(request: Request) -> dict[str, str]:
    """The query string, first value of a repeated key winning, as Flask's `request.args` reads it.

    Starlette's QueryParams answers the last one, so `?page=2&page=3` showed another page
    (and another Link header) than the legacy view did.
    """
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, value)
    return params


async def json_body(request: Request, *, optional: bool = False) -> Any:
    """The JSON body: 415 when not JSON, 400 when malformed, 413 over the size limit.

    The checks run in legacy_flask.api.json_body's order (content type before size), so an
    oversized non-JSON body is a 415 on both backends.
    """
    mimetype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )
    raw: bytes | None = None
    if optional and not is_json and not _declared_length(request):
        raw = await _read_body(request)
        if not raw:
            return None
    if not is_json:
        raise UnsupportedMediaType(
            f"request body must be JSON (send 'Content-Type: application/json', got "
            f"{mimetype or 'none'!r})"
        )
    if raw is None:
        raw = await _read_body(request)
    if optional and not raw:
        return None
    return decode_json(raw)


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


async def _read_body(request: Request) -> bytes:
    """The whole body, refusing (413) as soon as it is declared or found over the limit."""
    limit = runtime(request).settings.max_body_bytes
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"request body too large (limit {limit} bytes)")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise PayloadTooLarge(f"request body too large (limit {limit} bytes)")
    return bytes(raw)
