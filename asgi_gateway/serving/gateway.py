"""The strangler gateway: one ASGI app serving a WSGI (Flask) app and its async twins by flag."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.routing import Route

from asgi_gateway.control.guard import GuardConfig, RolloutMetrics
from asgi_gateway.control.plane import ControlPlane, PoolHealth
from asgi_gateway.control.refresher import FlagRefresher
from asgi_gateway.control.router import control_router
from asgi_gateway.control.startup import run_flags
from asgi_gateway.control.store import FlagStore
from asgi_gateway.flags import SAFE_METHODS
from asgi_gateway.serving.body import (
    Buffered,
    buffer_request,
    inspect_headers,
    replay,
    send_headers_too_large,
)
from asgi_gateway.serving.decision import Backend, CompiledFlag, decide_backend
from asgi_gateway.serving.exchange import Exchange
from asgi_gateway.serving.fallback import Failed, run_twin, with_fallback_header
from asgi_gateway.serving.identity import (
    FlaskSessionUser,
    UserKey,
    bearer_key,
    cookie,
    header,
)
from asgi_gateway.serving.mount import DEFAULT_MAX_BODY_BYTES, WSGIMount
from asgi_gateway.serving.options import FlagSource, GatewayOptions, secret_bytes
from asgi_gateway.serving.priority import ClientGate
from asgi_gateway.serving.recorder import Recorder, render_prometheus
from asgi_gateway.serving.routing import (
    Endpoint,
    RouteMatcher,
    check_twins,
    endpoint_rules,
    legacy_resolver,
    route_path,
    twin_endpoints,
)
from asgi_gateway.serving.shadow import ShadowRunner

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_log = logging.getLogger(__name__)
_INTERNAL_ERROR = json.dumps(
    {"error": {"code": "internal_error", "message": "internal server error; it has been logged"}}
).encode()
_DRAIN_TIMEOUT_S = 30.0


class Gateway:
    """ASGI app: routes each request to the legacy WSGI app or its async twin, per flag.

    Build it with `build_gateway`. Its lifespan runs the app's own lifespan, applies the YAML
    flags and keeps the snapshot fresh; at shutdown it drains in-flight requests, then closes
    everything on the same loop. It may be started (and stopped) more than once.
    """

    def __init__(
        self, wsgi_app: Any, routes: Sequence[Route], flags: FlagSource, options: GatewayOptions
    ) -> None:
        flask_app = options.flask_app
        if flask_app is None and hasattr(wsgi_app, "url_map"):
            flask_app = wsgi_app
        self.wsgi_app = wsgi_app
        self.flask_app = flask_app
        self.routes = tuple(routes)
        self.flag_source = flags
        self.options = options
        if flask_app is not None:
            self.endpoints: dict[str, Endpoint] = check_twins(flask_app, self.routes)
        else:
            self.endpoints = twin_endpoints(self.routes)
        self.twins = frozenset(r.name for r in self.routes)
        config = getattr(flask_app, "config", {})
        self.max_body_bytes = (
            options.max_body_bytes or config.get("MAX_CONTENT_LENGTH") or DEFAULT_MAX_BODY_BYTES
        )
        self.legacy = WSGIMount(
            wsgi_app,
            workers=options.wsgi_threads,
            max_body_bytes=self.max_body_bytes,
            body_timeout_s=options.body_timeout_s,
        )
        self.matcher = RouteMatcher(self.routes)
        self.paths = options.paths
        user_key = options.user_key
        if user_key is None and hasattr(flask_app, "session_interface"):
            user_key = FlaskSessionUser(flask_app)
        self.user_key: UserKey = user_key or bearer_key
        self.session_cookie = config.get("SESSION_COOKIE_NAME", "session")
        self.authenticate = options.authenticate
        self.clients = ClientGate()  # client requests in flight; shadow twins give way
        self.legacy_inflight = 0
        self.started_at = 0.0
        self.registry = options.registry or CollectorRegistry()
        self.recorder = Recorder(
            self.registry,
            resolve=legacy_resolver(flask_app),
            retention_days=options.stats_retention_days,
            persist_interval_s=options.stats_flush_s,
            flush_interval_s=min(1.0, options.stats_flush_s),
        )
        self.guard = GuardConfig(
            RolloutMetrics(self.registry),
            tick_s=options.guard_tick_s,
            webhook_url=options.rollout_webhook,
        )
        self.rules = endpoint_rules(
            self.endpoints, self.routes, has_dry_run=options.dry_run is not None
        )
        self.shadow = ShadowRunner(
            self.recorder.findings,
            self._ask_legacy,
            self.clients,
            concurrency=options.shadow_concurrency,
            dry_run=options.dry_run,
        )
        self.plane = ControlPlane(
            rules=self.rules,
            authenticate=options.authenticate,
            pool_health=self.pool_health,
            rollout_prefix=self.paths.rollout_prefix,
            login_path=options.login_path,
            session_cookie=self.session_cookie,
            secret_key=secret_bytes(options.secret_key, flask_app),
            retire_after_days=options.retire_after_days,
        )
        self.control = control_router(
            self.plane,
            readiness=self.readiness,
            scrape=self.scrape,
            readyz_path=self.paths.readyz,
            metrics_path=self.paths.metrics,
            metrics_token=options.metrics_token,
            extra_routes=options.extra_routes,
        )
        if flask_app is not None:
            for rule, endpoint in self.paths.shadowed(flask_app):
                if endpoint in options.replaces:
                    _log.info("the gateway's own path replaces the Flask route %s", rule)
                    continue
                _log.warning(
                    "the Flask route %s (%s) is hidden by the gateway's own paths; move them "
                    "with build_gateway(paths=OwnPaths(...)), or name the endpoint in "
                    "build_gateway(replaces=...) if that is intended",
                    rule,
                    endpoint,
                )

    @property
    def refresher(self) -> FlagRefresher | None:
        """The flag refresher of the running gateway (None before start-up)."""
        return self.plane.refresher

    @property
    def store(self) -> FlagStore | None:
        """The flag store of the running gateway (None before start-up)."""
        return self.plane.store

    # -- requests -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind != "http":
            # WSGI has no websockets, and no twin declares one: refuse the handshake cleanly.
            if kind == "websocket" and (await receive())["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 1003})
            return
        info = inspect_headers(scope)
        if info.header_bytes > self.options.max_header_bytes:
            await send_headers_too_large(send)
            return
        path = route_path(scope)  # without the root path the app may be mounted at
        if self.paths.owns(path):
            # Answered natively by the gateway (async), and tagged like every other response.
            await self.control(scope, receive, Exchange(receive, send, "async").send)
            return
        self.clients.enter()
        started = time.perf_counter()
        endpoint: str | None = None
        exchange: Exchange | None = None
        try:
            match = self.matcher.match(scope)
            if match is None:  # not migrated: the most common request while moving
                exchange = Exchange(receive, send, "legacy")
                self.legacy_inflight += 1
                try:
                    await self.legacy.serve(scope, exchange.receive, exchange.send, info)
                finally:
                    self.legacy_inflight -= 1
                return
            route, child = match
            endpoint = route.name
            backend, compiled = await self._choose(scope, endpoint, info.override)
            exchange = Exchange(receive, send, backend)
            if backend == "legacy":
                if compiled is not None and compiled.mode == "shadow":
                    await self._serve_shadowed(scope, child, route, compiled, exchange, info)
                else:
                    await self._serve_legacy(scope, exchange, info)
                return
            body = b""
            receive_twin, send_twin = exchange.receive, exchange.send
            if info.has_body:
                # Read on the loop with a deadline, as for legacy: a slow client gets a 408.
                buffered = await self._buffer(scope, exchange, info)
                if buffered is None:
                    return
                scope, receive_twin, send_twin = buffered.scope, buffered.receive, buffered.send
                body = buffered.body
            if compiled is not None and compiled.fallback and scope["method"] in SAFE_METHODS:
                await self._serve_with_fallback(
                    scope, child, route, compiled, exchange, body, receive_twin, send_twin, started
                )
                return
            scope.update(child)
            await route.handle(scope, receive_twin, send_twin)
        except Exception:
            if exchange is None or exchange.response_started:
                raise  # mid-response: only the server can end the connection now
            exchange.error = True
            _log.exception("unhandled error serving %s %s", scope["method"], path)
            await exchange.send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await exchange.send({"type": "http.response.body", "body": _INTERNAL_ERROR})
        finally:
            self.clients.leave()
            if exchange is not None:
                self.recorder.record(
                    endpoint,
                    path,
                    scope["method"],
                    exchange.backend,
                    exchange.status,
                    (time.perf_counter() - started) * 1000,
                    exchange.error,
                    exchange.disconnected,
                )

    async def _serve_legacy(self, scope: Scope, exchange: Exchange, info: Any) -> None:
        self.legacy_inflight += 1
        try:
            await self.legacy.serve(scope, exchange.receive, exchange.send, info)
        finally:
            self.legacy_inflight -= 1

    async def _ask_legacy(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Legacy's answer to a request whose body, if any, has been read already."""
        self.legacy_inflight += 1
        try:
            await self.legacy.serve(scope, receive, send, inspect_headers(scope))
        finally:
            self.legacy_inflight -= 1

    async def _buffer(self, scope: Scope, exchange: Exchange, info: Any) -> Buffered | None:
        return await buffer_request(
            scope,
            exchange.receive,
            exchange.send,
            info,
            limit=self.max_body_bytes,
            timeout_s=self.options.body_timeout_s,
        )

    async def _serve_shadowed(
        self,
        scope: Scope,
        child: Scope,
        route: Route,
        compiled: CompiledFlag,
        exchange: Exchange,
        info: Any,
    ) -> None:
        # The body is read once, for both answers.
        body, receive, send = b"", exchange.receive, exchange.send
        if info.has_body:
            buffered = await self._buffer(scope, exchange, info)
            if buffered is None:
                return
            scope, receive, send, body = (
                buffered.scope,
                buffered.receive,
                buffered.send,
                buffered.body,
            )
        await self.shadow.serve(
            scope, child, route, compiled, body, receive, send, self._ask_legacy
        )

    async def _serve_with_fallback(
        self,
        scope: Scope,
        child: Scope,
        route: Route,
        compiled: CompiledFlag,
        exchange: Exchange,
        body: bytes,
        receive: Receive,
        send: Send,
        started: float,
    ) -> None:
        legacy_scope = dict(scope)
        scope.update(child)
        try:
            await run_twin(
                lambda guarded: route.handle(scope, receive, guarded),
                send,
                compiled.flag.fallback_timeout_s,
            )
        except Failed as failure:
            endpoint = compiled.flag.endpoint
            # The twin's failure stays visible: an async error in every count.
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.recorder.record(
                endpoint,
                route_path(scope),
                scope["method"],
                "async",
                failure.status,
                elapsed_ms,
                True,
                False,
            )
            self.recorder.findings.fallback(endpoint)
            exchange.backend = "legacy"
            await self._ask_legacy(
                legacy_scope, replay(body, exchange.receive), with_fallback_header(send)
            )

    async def _choose(
        self, scope: Scope, endpoint: str, override: bytes | None = None
    ) -> tuple[Backend, CompiledFlag | None]:
        """The backend of this request, and its endpoint's flag (None when an admin forced it).

        `override` is the request's X-Backend-Override header (`inspect_headers` finds it)."""
        if override is not None:
            forced = await self._override(scope, override)
            if forced is not None:
                return forced, None
        refresher = self.plane.refresher
        compiled = refresher.snapshot.flags.get(endpoint) if refresher is not None else None
        if compiled is None or compiled.mode != "canary":
            return decide_backend(compiled, endpoint, None), compiled
        return decide_backend(compiled, endpoint, self.sticky_key(scope, compiled)), compiled

    def sticky_key(self, scope: Scope, compiled: CompiledFlag) -> str | None:
        """The canary key of a request: its sticky_by choice, falling back to session, then ip."""
        sticky = compiled.sticky_by
        if sticky == "random":
            return None
        key: str | None = None
        if sticky == "user":
            key = self.user_key(scope)
        elif compiled.header is not None:
            value = header(scope, compiled.header.encode("latin-1"))
            key = None if value is None else "h:" + value.decode("latin-1")
        if key is None and sticky != "ip":
            value = cookie(scope, self.session_cookie)
            key = None if value is None else "s:" + value
        if key is None:
            client = scope.get("client")
            key = None if not client else "ip:" + client[0]
        return key

    async def _override(self, scope: Scope, value: bytes) -> Backend | None:
        # Honoured for admins only, and only checked when the header is present: the
        # identity lookup may touch the database, which the normal path never does.
        if value not in (b"legacy", b"async") or self.authenticate is None:
            return None
        try:
            principal = await self.authenticate(scope)
        except Exception:
            return None
        if principal is None or not principal.is_admin:
            return None
        return "async" if value == b"async" else "legacy"

    # -- lifespan -----------------------------------------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        stack = contextlib.AsyncExitStack()
        # Lifespan state (ASGI 3 "state"): the server copies it into every request's scope,
        # which is how endpoints reach what the app's lifespan created.
        state = scope.get("state")
        if state is None:
            state = {}
        try:
            await stack.enter_async_context(self._running(state))
        except Exception as exc:
            _log.error("gateway start-up failed: %s", exc)
            await stack.aclose()
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        try:
            await stack.aclose()
        except Exception as exc:
            _log.exception("gateway shutdown failed")
            await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})

    @contextlib.asynccontextmanager
    async def _running(self, state: dict[str, Any]) -> AsyncIterator[None]:
        app_lifespan = self.options.lifespan
        async with contextlib.AsyncExitStack() as stack:
            if app_lifespan is not None:
                await stack.enter_async_context(app_lifespan(self, state))
            await stack.enter_async_context(
                run_flags(self.plane, self.flag_source, self.recorder, self.guard)
            )
            self.started_at = time.time()
            yield
            await self._drain()
            await self.shadow.drain()

    async def _drain(self) -> None:
        # uvicorn stops accepting and waits for open requests before the lifespan ends;
        # this covers servers that do not, so no legacy thread is cut off mid-request.
        deadline = time.monotonic() + _DRAIN_TIMEOUT_S
        # A polled counter, not an Event: signalling one would cost every request a check.
        while self.clients.busy > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    # -- reporting ------------------------------------------------------------------------------

    def pool_health(self) -> PoolHealth:
        """The legacy WSGI pool of this worker: threads, busy, queued."""
        threads = self.options.wsgi_threads
        inflight = self.legacy_inflight
        return PoolHealth(threads, min(inflight, threads), max(0, inflight - threads))

    def scrape(self) -> tuple[bytes, str]:
        """The /metrics body; this worker's requests up to now are included."""
        self.recorder.drain()
        return render_prometheus(self.registry)

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        """(status, body) for /readyz: each dependency named, 503 while any of them fails."""
        return await self.plane.readiness(self.options.readiness_checks)
