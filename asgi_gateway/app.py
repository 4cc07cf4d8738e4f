"""admin-assistant's gateway: the legacy Flask app and its async twins behind the flags.

`uvicorn asgi_gateway.app:app` serves it; `create_gateway(settings)` builds one for tests.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request

from asgi_gateway.endpoints import routes
from asgi_gateway.endpoints._http import cookie_header, current_actor
from asgi_gateway.gateway import FlagSource, Gateway, Principal, build_gateway
from asgi_gateway.identity import bearer_key
from legacy_flask import create_app, install_runtime
from shared.config import Settings, load_settings
from shared.errors import ConfigError
from shared.runtime import Runtime
from shared.sessions import SessionReader

_log = logging.getLogger(__name__)


def create_gateway(settings: Settings | None = None) -> Gateway:
    """The admin-assistant gateway for `settings` (default: from the environment)."""
    settings = settings or load_settings()
    flask_app = create_app(settings=settings, defer_runtime=True)

    @contextlib.asynccontextmanager
    async def lifespan(gateway: Gateway, state: dict[str, Any]) -> AsyncIterator[None]:
        # Created here, on the server's loop: the pool's connections belong to this loop,
        # and the legacy views reach it through the bridge registered on the same loop.
        runtime = Runtime(settings)
        try:
            # Fail start-up with one sentence naming the database, not on the first request.
            await runtime.db.ping()
        except BaseException:
            await runtime.aclose()
            raise
        install_runtime(flask_app, runtime)
        state["runtime"] = runtime
        try:
            yield
        finally:
            await runtime.aclose()

    async def authenticate(scope: dict[str, Any]) -> Principal | None:
        actor = await current_actor(Request(scope))
        return None if actor is None else Principal(actor.email, actor.is_admin)

    return build_gateway(
        flask_app,
        routes,
        FlagSource(
            settings.flags_file, settings.database_url, poll_interval_s=settings.flags_poll_s
        ),
        authenticate=authenticate,
        user_key=sticky_user_key(SessionReader(settings.secret_key)),
        lifespan=lifespan,
        wsgi_threads=settings.wsgi_threads,
        retire_after_days=settings.retire_after_days,
        stats_retention_days=settings.stats_retention_days,
    )


def sticky_user_key(reader: SessionReader) -> Callable[[dict[str, Any]], str | None]:
    """The canary's sticky key: the session cookie's user (the one shared reader), else the token.

    Pure and cached by the raw Cookie header, as routing needs: no I/O per request.
    """

    def user_key(scope: dict[str, Any]) -> str | None:
        return reader.user_key(cookie_header(scope["headers"])) or bearer_key(scope)

    return user_key


def __getattr__(name: str) -> Any:
    # `app` is built on first access, so importing this module reads no environment.
    if name == "app":
        try:
            gateway = create_gateway()
        except ConfigError as exc:
            # `uvicorn asgi_gateway.app:app` with a bad setting: one sentence, no traceback.
            print(f"error: {exc.message}", file=sys.stderr)
            raise SystemExit(1) from None
        globals()["app"] = gateway
        return gateway
    raise AttributeError(name)
