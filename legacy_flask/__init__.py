"""The legacy admin-assistant Flask app: sync views reaching the async domain through the bridge."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, redirect
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect
from werkzeug.sansio.response import Response as BaseResponse

from shared import bridge
from shared.config import Settings, load_settings
from shared.runtime import Runtime
from shared.sessions import SESSION_COOKIE, SESSION_MAX_AGE_S

__all__ = ["LegacyFlask", "create_app", "install_runtime"]

_log = logging.getLogger(__name__)


class LegacyFlask(Flask):
    """Flask whose `async def` views run on the process's one bridge loop.

    Flask's default runs each async view in a fresh event loop (asgiref's async_to_sync),
    which is exactly the loop-per-call pattern that broke pooled connections.
    """

    def async_to_sync(self, func: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
        @functools.wraps(func)
        def run_on_bridge(*args: Any, **kwargs: Any) -> Any:
            return bridge.run(func(*args, **kwargs))

        return run_on_bridge

    def handle_http_exception(self, e: HTTPException) -> HTTPException | BaseResponse:
        """Routing redirects (merged slashes) point at a path of this site, never at `Host`.

        Werkzeug builds their Location from the request's Host header, which the client
        chooses: `GET //x` with `Host: evil.example` redirected to http://evil.example/x.
        """
        if isinstance(e, RequestRedirect):
            return same_site_redirect(e.new_url, e.code)
        return super().handle_http_exception(e)


def same_site_redirect(url: str, status: int) -> BaseResponse:
    """A redirect to the path and query of `url` only (scheme and host dropped)."""
    target = urlsplit(url)
    # A path starting with '//' would be read as another host ("scheme-relative").
    location = "/" + target.path.lstrip("/")
    if target.query:
        location += "?" + target.query
    return redirect(location, status)


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
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=SESSION_MAX_AGE_S),
        # The async side cannot re-sign the cookie on each request; a session lasts seven
        # days from sign-in on both backends, rather than sliding on one of them only.
        SESSION_REFRESH_EACH_REQUEST=False,
        JSON_SORT_KEYS=False,
        TESTING=settings.env == "testing",
    )
    if config:
        app.config.update(config)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    from legacy_flask.sessions import SharedSessionInterface

    app.session_interface = SharedSessionInterface()
    if runtime is not None:
        install_runtime(app, runtime)

    from legacy_flask import (
        account_pages,
        action_items,
        admin_pages,
        api,
        appointments,
        archive,
        archive_configs,
        archive_pages,
        audit,
        auth,
        calendar_pages,
        calendars,
        config_pages,
        health,
        job_pages,
        jobs,
        pages,
        tokens,
        zones,
    )

    api.register_error_handlers(app)
    for blueprint in (
        auth.bp,
        calendars.bp,
        appointments.bp,
        archive_configs.bp,
        archive.bp,
        tokens.bp,
        jobs.bp,
        action_items.bp,
        audit.bp,
        health.bp,
        pages.bp,
        job_pages.bp,
        archive_pages.bp,
        calendar_pages.bp,
        config_pages.bp,
        account_pages.bp,
        admin_pages.bp,
        zones.bp,
    ):
        app.register_blueprint(blueprint)
    return app


def install_runtime(app: Flask, runtime: Runtime) -> None:
    """Give the app the Runtime (engine, services) its views use."""
    app.extensions["admin_assistant"] = runtime
