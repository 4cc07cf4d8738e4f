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

from shared.auth import Actor, read_flask_session
from shared.errors import (
    AppError,
    MalformedJSON,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from shared.pagination import Page, link_header
from shared.runtime import Runtime

SESSION_COOKIE = "aa_session"
SESSION_MAX_AGE_S = 7 * 24 * 3600
_log = logging.getLogger(__name__)
Handler = Callable[..., Awaitable[Response]]


class JSON(JSONResponse):
    """Compact JSON with a trailing newline and unescaped order, as Flask's jsonify sends it."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"


def runtime(request: Request) -> Runtime:
    return request.state.runtime  # type: ignore[no-any-return]


async def current_actor(request: Request) -> Actor | None:
    """The caller: bearer token if sent, else the Flask session cookie's user (same secret)."""
    rt = runtime(request)
    session_user = None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        session_user = read_flask_session(
            cookie, rt.settings.secret_key, max_age_s=SESSION_MAX_AGE_S
        ).get("user_id")
    return await rt.services.users.resolve(request.headers.get("authorization"), session_user)


def error_response(error: AppError) -> Response:
    headers = (
        {"WWW-Authenticate": 'Bearer realm="admin-assistant"'} if error.status == 401 else None
    )
    return JSON(error.to_dict(), status_code=error.status, headers=headers)


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
        except Exception:
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
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None


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
