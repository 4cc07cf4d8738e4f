"""The legacy admin-assistant Flask app: sync views reaching the async domain through the bridge."""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
from typing import Any

from flask import Flask

from shared import bridge
from shared.config import Settings, load_settings
from shared.runtime import Runtime

__all__ = ["LegacyFlask", "create_app", "install_runtime"]

_log = logging.getLogger(__name__)


class LegacyFlask(Flask):
    """Flask whose `async def` views run on the process's one bridge loop (and which reads
    chunked request bodies under the gateway's a2wsgi adapter).

    Flask's default runs each async view in a fresh event loop (asgiref's async_to_sync),
    which is exactly the loop-per-call pattern that broke pooled connections.
    """

    def async_to_sync(self, func: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
        @functools.wraps(func)
        def run_on_bridge(*args: Any, **kwargs: Any) -> Any:
            return bridge.run(func(*args, **kwargs))

        return run_on_bridge

    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        encoding = environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if "asgi.scope" in environ and "chunked" in encoding:
            _buffer_chunked_body(environ, self.config.get("MAX_CONTENT_LENGTH"))
        return super().wsgi_app(environ, start_response)


def _buffer_chunked_body(environ: dict[str, Any], limit: int | None) -> None:
    """Hand a chunked body under a2wsgi to Flask with a Content-Length, as a buffering proxy would.

    a2wsgi's wsgi.input does end with the body but does not declare it (no
    `wsgi.input_terminated`), so Werkzeug read a chunked body as empty: the POST lost its
    JSON and 400'd, and archive.run silently ran its default window. Declaring it is not
    enough either: Werkzeug then truncates a body over MAX_CONTENT_LENGTH instead of refusing
    it. Reading at most limit + 1 bytes and stating the length makes an oversized body the
    usual 413, as on the async twins.
    """
    stream = environ["wsgi.input"]
    body = stream.read(limit + 1) if limit is not None else stream.read()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    del environ["HTTP_TRANSFER_ENCODING"]  # Werkzeug ignores Content-Length beside chunked


def create_app(
    config: Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    defer_runtime: bool = False,
) -> LegacyFlask:
    """Build the Flask app; `config` overrides Flask config, `runtime` shares a gateway's engine.

    Without a runtime the app creates its own, closed by `shared.bridge.shutdown()`. With
    `defer_runtime` the caller installs one later with `install_runtime` (the gateway does,
    in its lifespan, so the engine is created on the server's loop).
    """
    if runtime is None and not defer_runtime:
        settings = settings or load_settings()
        runtime = Runtime(settings)
        bridge.on_shutdown(runtime.aclose)
    elif runtime is not None:
        settings = runtime.settings
    settings = settings or load_settings()
    app = LegacyFlask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_NAME="aa_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        PERMANENT_SESSION_LIFETIME=timedelta(days=7),
        # The async side cannot re-sign the cookie on each request; a session lasts seven
        # days from sign-in on both backends, rather than sliding on one of them only.
        SESSION_REFRESH_EACH_REQUEST=False,
        JSON_SORT_KEYS=False,
        TESTING=settings.env == "testing",
    )
    if config:
        app.config.update(config)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if runtime is not None:
        install_runtime(app, runtime)

    from legacy_flask import (
        api,
        appointments,
        archive,
        archive_configs,
        auth,
        calendars,
        health,
        pages,
    )

    api.register_error_handlers(app)
    for blueprint in (
        auth.bp,
        calendars.bp,
        appointments.bp,
        archive_configs.bp,
        archive.bp,
        health.bp,
        pages.bp,
    ):
        app.register_blueprint(blueprint)
    return app


def install_runtime(app: Flask, runtime: Runtime) -> None:
    """Give the app the Runtime (engine, services) its views use."""
    app.extensions["admin_assistant"] = runtime
