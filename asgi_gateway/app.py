"""admin-assistant's gateway: the legacy Flask app and its async twins behind the flags.

`uvicorn asgi_gateway.app:app` serves it; `create_gateway(settings)` builds one for tests.
This is admin-assistant's own wiring of the gateway machinery (which knows nothing of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request

from asgi_gateway.endpoints import routes
from asgi_gateway.endpoints._http import cookie_header, current_actor
from asgi_gateway.flags import EndpointRules
from asgi_gateway.serving.build import build_gateway
from asgi_gateway.serving.gateway import Gateway
from asgi_gateway.serving.identity import InvalidCredentials, Principal, bearer_key
from asgi_gateway.serving.options import FlagSource
from asgi_gateway.serving.routing import check_twins, endpoint_rules
from legacy_flask import create_app, install_runtime
from shared import bridge
from shared.config import Settings, load_settings
from shared.errors import ConfigError, DatabaseUnavailable, Unauthorized
from shared.runtime import Runtime
from shared.scheduler import Scheduler, SchedulerMetrics
from shared.sessions import SessionReader

_log = logging.getLogger(__name__)


def endpoint_rules_of(settings: Settings) -> EndpointRules:
    """What admin-assistant's endpoints allow in a flag (for the CLI, as the gateway checks)."""
    flask_app = create_app(settings=settings, defer_runtime=True)
    return endpoint_rules(check_twins(flask_app, routes), routes, has_dry_run=True)


def create_gateway(settings: Settings | None = None) -> Gateway:
    """The admin-assistant gateway for `settings` (default: from the environment)."""
    settings = settings or load_settings()
    flask_app = create_app(settings=settings, defer_runtime=True)
    running: dict[str, Runtime] = {}  # the Runtime of the current lifespan
    metrics: dict[str, SchedulerMetrics] = {}

    @contextlib.asynccontextmanager
    async def lifespan(gateway: Gateway, state: dict[str, Any]) -> AsyncIterator[None]:
        # The server's loop becomes the bridge loop: legacy views (in WSGI threads) run their
        # coroutines on it, next to the twins, over one engine and one pool created here.
        loop = asyncio.get_running_loop()
        bridge.register_loop(loop)
        try:
            runtime = Runtime(settings)
            try:
                # Fail start-up with one sentence naming the database, not on the first request.
                await runtime.db.ping()
            except BaseException:
                await runtime.aclose()
                raise
            install_runtime(flask_app, runtime)
            state["runtime"] = running["runtime"] = runtime
            scheduler = None
            try:
                if settings.scheduler_enabled:
                    # Jobs run on this same loop, beside the requests; AA_SCHEDULER=off
                    # leaves them to `admin-assistant scheduler` processes.
                    if "scheduler" not in metrics:  # once per gateway (and its registry)
                        metrics["scheduler"] = SchedulerMetrics(gateway.registry)
                    scheduler = Scheduler.for_runtime(
                        runtime, mode="gateway", metrics=metrics["scheduler"]
                    )
                    await scheduler.start()
                state["scheduler"] = scheduler
                yield
            finally:
                # The gateway has drained requests by now: stop jobs, then dispose the
                # engine on this loop.
                running.clear()
                try:
                    if scheduler is not None:
                        await scheduler.stop()
                finally:
                    await runtime.aclose()
                    await bridge.run_shutdown_hooks()
        finally:
            bridge.unregister_loop(loop)

    async def database_ready() -> None:
        runtime = running.get("runtime")
        if runtime is None:
            raise RuntimeError("not started")
        try:
            await runtime.db.ping()
        except DatabaseUnavailable as exc:
            # /readyz is answered to anyone: the log names the database, the answer does not.
            _log.warning("readiness: %s", exc.message)
            raise RuntimeError("unavailable (the server log says why)") from exc

    def dry_run(scope: dict[str, Any]) -> contextlib.AbstractAsyncContextManager[object]:
        # A shadowed write's twin runs in one transaction that is always rolled back, its
        # view of the data fixed before legacy runs (see shared.dry_run).
        return running["runtime"].db.dry_run()

    async def authenticate(scope: dict[str, Any]) -> Principal | None:
        try:
            actor = await current_actor(Request(scope))
        except Unauthorized as exc:
            raise InvalidCredentials(exc.message) from None
        return None if actor is None else Principal(actor.email, actor.is_admin)

    return build_gateway(
        flask_app,
        routes,
        FlagSource(
            settings.flags_file,
            settings.database_url,
            poll_interval_s=settings.flags_poll_s,
            notify=settings.flags_notify,
            fallback_poll_s=settings.flags_fallback_poll_s,
            notify_retry_s=settings.flags_notify_retry_s,
        ),
        authenticate=authenticate,
        user_key=sticky_user_key(SessionReader(settings.secret_key)),
        lifespan=lifespan,
        wsgi_threads=settings.wsgi_threads,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        max_header_bytes=settings.max_header_bytes,
        metrics_token=settings.metrics_token,
        readiness_checks={"database": database_ready},
        dry_run=dry_run,
        shadow_concurrency=settings.shadow_concurrency,
        # The legacy app's own /readyz serves it standalone; behind the gateway, the
        # gateway's answers for both (flags and the database).
        replaces={"health.readyz"},
        secret_key=settings.secret_key,
        retire_after_days=settings.retire_after_days,
        stats_retention_days=settings.stats_retention_days,
        stats_flush_s=settings.stats_flush_s,
        guard_tick_s=settings.guard_tick_s,
        rollout_webhook=settings.rollout_webhook,
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
