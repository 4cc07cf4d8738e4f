"""admin-assistant's gateway: the legacy Flask app and its async twins behind the flags.

`uvicorn asgi_gateway.app:app` serves it; `create_gateway(settings)` builds one for tests.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request

from asgi_gateway.endpoints import routes
from asgi_gateway.endpoints._http import current_actor
from asgi_gateway.gateway import FlagSource, Gateway, Principal, build_gateway
from legacy_flask import create_app, install_runtime
from shared.config import Settings, load_settings
from shared.runtime import Runtime
from shared.scheduler import Scheduler

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
        install_runtime(flask_app, runtime)
        state["runtime"] = runtime
        scheduler = None
        try:
            if settings.scheduler_enabled:
                # Jobs run on this same loop, beside the requests; AA_SCHEDULER=off leaves
                # them to `admin-assistant scheduler` processes.
                scheduler = Scheduler.for_runtime(runtime, mode="gateway")
                await scheduler.start()
            state["scheduler"] = scheduler
            yield
        finally:
            # The gateway has drained requests by now: stop jobs, then dispose the engine.
            try:
                if scheduler is not None:
                    await scheduler.stop()
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
        lifespan=lifespan,
        wsgi_threads=settings.wsgi_threads,
        retire_after_days=settings.retire_after_days,
        stats_retention_days=settings.stats_retention_days,
    )


def __getattr__(name: str) -> Any:
    # `app` is built on first access, so importing this module reads no environment.
    if name == "app":
        gateway = create_gateway()
        globals()["app"] = gateway
        return gateway
    raise AttributeError(name)
