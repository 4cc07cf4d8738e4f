"""Baselines of bench/gateway.py: the async routes and the Flask app, served without the gateway
(the Flask app both under plain a2wsgi and under the gateway's own WSGI mount).

`uvicorn bench._apps:async_app` (or `legacy_app`, `mount_app`) builds them from the AA_*
environment on first access, like `asgi_gateway.app:app`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from a2wsgi import WSGIMiddleware
from starlette.applications import Starlette

from asgi_gateway.endpoints import routes
from asgi_gateway.serving.mount import WSGIMount
from legacy_flask import create_app
from shared import bridge
from shared.config import Settings, load_settings
from shared.runtime import Runtime


def create_async_app(settings: Settings | None = None) -> Starlette:
    """The async twins on a plain Starlette app whose lifespan provides the Runtime."""
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        # As in the gateway: the engine is created on the server's loop and the bridge runs
        # there too, so the only difference measured is the gateway's own routing.
        loop = asyncio.get_running_loop()
        bridge.register_loop(loop)
        runtime = Runtime(settings)
        try:
            yield {"runtime": runtime}
        finally:
            await runtime.aclose()
            bridge.unregister_loop(loop)

    return Starlette(routes=routes, lifespan=lifespan)


def create_legacy_app(settings: Settings | None = None) -> WSGIMiddleware:
    """The Flask app behind a2wsgi alone (standalone legacy: the bridge owns a loop thread)."""
    settings = settings or load_settings()
    runtime = Runtime(settings)
    bridge.on_shutdown(runtime.aclose)
    # The same number of WSGI threads as the gateway's WSGIMiddleware, for a like-for-like pool.
    return WSGIMiddleware(create_app(runtime=runtime), workers=settings.wsgi_threads)


def create_mount_app(settings: Settings | None = None) -> WSGIMount:
    """The Flask app behind the gateway's own WSGI mount alone (no routing, no flags)."""
    settings = settings or load_settings()
    runtime = Runtime(settings)
    bridge.on_shutdown(runtime.aclose)
    return WSGIMount(create_app(runtime=runtime), workers=settings.wsgi_threads)


_FACTORIES = {
    "async_app": create_async_app,
    "legacy_app": create_legacy_app,
    "mount_app": create_mount_app,
}


def __getattr__(name: str) -> Any:
    # Built on first access, so importing this module reads no environment.
    factory = _FACTORIES.get(name)
    if factory is None:
        raise AttributeError(name)
    app = factory()
    globals()[name] = app
    return app
