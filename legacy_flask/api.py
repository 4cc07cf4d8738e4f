"""JSON API plumbing of the legacy app: services, identity, bodies, pagination and error shape."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, jsonify, request, session
from werkzeug.exceptions import HTTPException

from shared import bridge
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
from shared.services import Services
from shared.sessions import SessionIdentity, session_identity
from shared.validation import decode_json

F = TypeVar("F", bound=Callable[..., Any])
_log = logging.getLogger(__name__)
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def runtime() -> Runtime:
    return current_app.extensions["admin_assistant"]  # type: ignore[no-any-return]


def services() -> Services:
    return runtime().services


def current_session() -> SessionIdentity | None:
    """The signed-in identity the session cookie names (not yet checked against the database)."""
    return session_identity(session)


def current_actor() -> Actor | None:
    """The request's Actor (bearer token or live session), resolved once per request."""
    if "actor" not in g:
        g.actor = bridge.run(
            services().users.resolve(request.headers.get("Authorization"), current_session())
        )
    return g.actor  # type: ignore[no-any-return]


async def current_actor_async() -> Actor | None:
    """`current_actor` for `async def` views, which already run on the bridge loop."""
    if "actor" not in g:
        g.actor = await services().users.resolve(
            request.headers.get("Authorization"), current_session()
        )
    return g.actor  # type: ignore[no-any-return]


def require_actor(actor: Actor | None) -> Actor:
    if actor is None:
        raise Unauthorized(
            "authentication required: send 'Authorization: Bearer <token>' or log in at /login"
        )
    return actor


def api_login_required(view: F) -> F:
    """Run `view(actor, ...)` for an authenticated caller; 401 in the error shape otherwise."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return view(require_actor(current_actor()), *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def json_body(*, optional: bool = False) -> Any:
    """The request's JSON body; 415 when not JSON, 400 when malformed, 413 when too large."""
    if (
        optional
        and not request.content_length
        and not request.is_json
        and not request.get_data(cache=True)
    ):
        return None
    if not request.is_json:
        raise UnsupportedMediaType(
            f"request body must be JSON (send 'Content-Type: application/json', got "
            f"{request.mimetype or 'none'!r})"
        )
    raw = request.get_data(cache=True)
    if optional and not raw:
        return None
    return decode_json(raw)


def paginated(page: Page[dict[str, Any]]) -> Response:
    response = jsonify({"data": list(page.items), "meta": page.meta()})
    response.headers["Link"] = link_header(request.path, request.args.to_dict(), page)
    return response


def no_content() -> Response:
    """An empty 204; without a Content-Type, as the async twins send it (there is no content)."""
    response = current_app.response_class(status=204)
    del response.headers["Content-Type"]
    return response


def error_response(error: AppError) -> Response:
    response = jsonify(error.to_dict())
    response.status_code = error.status
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="admin-assistant"'
    if error.retry_after_s is not None:
        response.headers["Retry-After"] = str(error.retry_after_s)
    return response


def register_error_handlers(app: Flask) -> None:
    """Every error under /api/ leaves in the error shape (docs/http.md); never a traceback."""

    @app.errorhandler(AppError)
    def _app_error(error: AppError) -> Any:
        if request.path.startswith("/api/"):
            return error_response(error)
        return _page_error(error.status, error.message, error.retry_after_s)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        status = error.code or 500
        if status == 413:
            message = f"request body too large (limit {app.config['MAX_CONTENT_LENGTH']} bytes)"
            return _app_error(PayloadTooLarge(message))
        if not request.path.startswith("/api/"):
            return error
        body = AppError(error.description or error.name)
        body.status, body.code = status, _HTTP_CODES.get(status, "http_error")
        response = error_response(body)
        if status == 405 and getattr(error, "valid_methods", None):
            # Sorted: valid_methods comes from a set, whose order changes with each process's
            # hash seed, so two workers (or the two parity servers) sent different headers.
            methods = sorted(error.valid_methods)  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        unavailable = unavailable_error(error)
        if unavailable is not None:
            _log.error(
                "%s %s: %s",
                request.method,
                request.path,
                describe_outage(error, runtime().settings.database_url),
            )
            return _app_error(unavailable)
        _log.exception("unhandled error in %s %s", request.method, request.path)
        if request.path.startswith("/api/"):
            return error_response(AppError("internal server error; it has been logged"))
        return _page_error(500, "Something went wrong; it has been logged.")


def _page_error(status: int, message: str, retry_after_s: int | None = None) -> Any:
    from flask import render_template

    # When resolving the user is what failed (database down), the template's `actor` would
    # resolve it again and raise inside this handler: the visitor got a bare text 500.
    g.setdefault("actor", None)
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else {}
    return render_template("error.html", status=status, message=message), status, headers
