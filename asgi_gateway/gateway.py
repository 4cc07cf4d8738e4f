"""The strangler gateway: one ASGI app serving a WSGI (Flask) app and its async twins by flag."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import Route

from asgi_gateway.decision import Backend, CompiledFlag, decide_backend
from asgi_gateway.errors import FlagStoreUnavailable, GatewayError
from asgi_gateway.flags import FlagFile, load_flag_file
from asgi_gateway.identity import FlaskSessionUser, UserKey, bearer_key, cookie, header
from asgi_gateway.metrics import Recorder
from asgi_gateway.refresher import FlagRefresher
from asgi_gateway.routing import Endpoint, RouteMatcher, check_twins, route_path
from asgi_gateway.store import FlagStore
from asgi_gateway.wsgi import WSGIMount
from shared import bridge
from shared.db import engine_for_url

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = logging.getLogger(__name__)
_SERVED_BY = {"legacy": (b"x-served-by", b"legacy"), "async": (b"x-served-by", b"async")}
_OVERRIDE = b"x-backend-override"
# Paths the gateway answers itself: admin API, dashboard, metrics, readiness.
_INTERNAL_ERROR = json.dumps(
    {"error": {"code": "internal_error", "message": "internal server error; it has been logged"}}
).encode()
_OWN_PREFIXES = ("/_rollout", "/readyz", "/metrics")
_DRAIN_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller as the gateway sees it: a name for audit rows, and admin or not."""

    name: str
    is_admin: bool


Authenticate = Callable[[Scope], Awaitable["Principal | None"]]
AppLifespan = Callable[["Gateway", dict[str, Any]], contextlib.AbstractAsyncContextManager[None]]


@dataclass
class FlagSource:
    """Where flags come from: the declared YAML file and the database holding runtime state.

    The gateway opens its own small engine on `database_url` (an async SQLAlchemy URL) on the
    server's loop; `poll_interval_s` bounds how long a flip takes to reach every worker.
    """

    path: Path
    database_url: str
    poll_interval_s: float = 0.25
    engine: AsyncEngine | None = field(default=None, repr=False)

    def open(self) -> AsyncEngine:
        if self.engine is None:
            # No pre-ping: the refresher polls several times a second and already treats a
            # failed read as "keep the last snapshot"; a ping per checkout doubles its cost.
            self.engine = engine_for_url(
                self.database_url, pool_size=2, max_overflow=2, pool_pre_ping=False
            )
        return self.engine


class Gateway:
    """ASGI app: routes each request to the legacy WSGI app or its async twin, per flag.

    Build it with `build_gateway`. Its lifespan registers the server loop with the bridge,
    runs the app's own lifespan, applies the YAML flags and keeps the snapshot fresh; at
    shutdown it drains in-flight requests, then closes everything on the same loop.
    """

    def __init__(
        self,
        wsgi_app: Any,
        routes: Sequence[Route],
        flags: FlagSource,
        *,
        user_key: UserKey | None = None,
        authenticate: Authenticate | None = None,
        lifespan: AppLifespan | None = None,
        wsgi_threads: int = 10,
        admin_routes: Sequence[Route] = (),
        stats_retention_days: int = 7,
        retire_after_days: int = 7,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.routes = tuple(routes)
        self.flag_source = flags
        self.endpoints: dict[str, Endpoint] = check_twins(wsgi_app, self.routes)
        self.twins = frozenset(r.name for r in self.routes)
        self.legacy = WSGIMount(wsgi_app, workers=wsgi_threads)
        self.matcher = RouteMatcher(self.routes)
        if user_key is None and hasattr(wsgi_app, "session_interface"):
            user_key = FlaskSessionUser(wsgi_app)
        self.user_key: UserKey = user_key or bearer_key
        self.session_cookie = getattr(wsgi_app, "config", {}).get("SESSION_COOKIE_NAME", "session")
        self.authenticate = authenticate
        self.app_lifespan = lifespan
        self.store: FlagStore | None = None
        self.refresher: FlagRefresher | None = None
        self.declared: FlagFile | None = None
        self.inflight = 0
        self.legacy_inflight = 0
        self.wsgi_threads = wsgi_threads
        self.retire_after_days = retire_after_days
        self.started_at = 0.0
        self.recorder = Recorder(
            resolve=_legacy_resolver(wsgi_app), retention_days=stats_retention_days
        )
        from asgi_gateway.admin import admin_router

        self.admin = admin_router(self, extra_routes=admin_routes)

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
        path = route_path(scope)  # without the root path the app may be mounted at
        if path.startswith(_OWN_PREFIXES):
            # Answered natively by the gateway (async), and tagged like every other response.
            await self.admin(scope, receive, _Exchange(receive, send, "async").send)
            return
        self.inflight += 1
        started = time.perf_counter()
        endpoint: str | None = None
        exchange: _Exchange | None = None
        try:
            match = self.matcher.match(scope)
            if match is None:
                exchange = _Exchange(receive, send, "legacy")
                await self._serve_legacy(scope, exchange)
                return
            route, child = match
            endpoint = route.name
            backend = await self._choose(scope, endpoint)
            exchange = _Exchange(receive, send, backend)
            if backend == "async":
                scope.update(child)
                await route.handle(scope, exchange.receive, exchange.send)
            else:
                await self._serve_legacy(scope, exchange)
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
            self.inflight -= 1
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

    async def _serve_legacy(self, scope: Scope, exchange: _Exchange) -> None:
        self.legacy_inflight += 1
        try:
            await self.legacy(scope, exchange.receive, exchange.send)
        finally:
            self.legacy_inflight -= 1

    async def _choose(self, scope: Scope, endpoint: str) -> Backend:
        if header(scope, _OVERRIDE) is not None:
            forced = await self._override(scope)
            if forced is not None:
                return forced
        refresher = self.refresher
        compiled = refresher.snapshot.flags.get(endpoint) if refresher is not None else None
        if compiled is None or compiled.mode != "canary":
            return decide_backend(compiled, endpoint, None)
        return decide_backend(compiled, endpoint, self.sticky_key(scope, compiled))

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

    async def _override(self, scope: Scope) -> Backend | None:
        # Honoured for admins only, and only checked when the header is present: the
        # identity lookup may touch the database, which the normal path never does.
        value = header(scope, _OVERRIDE)
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
        loop = asyncio.get_running_loop()
        bridge.register_loop(loop)
        try:
            if self.app_lifespan is not None:
                async with self.app_lifespan(self, state), self._flags():
                    self.started_at = time.time()
                    yield
                    await self._drain()
            else:
                async with self._flags():
                    self.started_at = time.time()
                    yield
                    await self._drain()
            await bridge.run_shutdown_hooks()
        finally:
            bridge.unregister_loop(loop)

    @contextlib.asynccontextmanager
    async def _flags(self) -> AsyncIterator[None]:
        source = self.flag_source
        self.declared = load_flag_file(source.path, known=self.endpoints.keys(), twins=self.twins)
        engine = source.open()
        self.store = FlagStore(engine)
        try:
            await self.store.ensure_schema()
            changed = await self.store.apply(self.declared)
            if changed:
                _log.warning("applied changed flag file entries: %s", ", ".join(changed))
            self.refresher = FlagRefresher(self.store, interval_s=source.poll_interval_s)
            await self.refresher.refresh()
            if self.refresher.problem is not None:
                raise FlagStoreUnavailable(self.refresher.problem)
            self.refresher.start()
            await self.recorder.start(engine)
            yield
        finally:
            if self.refresher is not None:
                await self.refresher.stop()
            try:
                await self.recorder.stop()
            finally:
                await engine.dispose()
            source.engine = None

    async def _drain(self) -> None:
        # uvicorn stops accepting and waits for open requests before the lifespan ends;
        # this covers servers that do not, so no legacy thread is cut off mid-request.
        deadline = time.monotonic() + _DRAIN_TIMEOUT_S
        # A polled counter, not an Event: signalling one would cost every request a check.
        while self.inflight > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    # -- reporting ------------------------------------------------------------------------------

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """(status, body) for /readyz: flags fresh, and which version each worker serves."""
        refresher = self.refresher
        if refresher is None:
            return 503, {"status": "starting", "checks": {"flags": "not loaded"}}
        checks = {
            "flags": "ok" if refresher.problem is None else refresher.problem,
            "flags_version": refresher.snapshot.version,
        }
        if refresher.problem is not None:
            return 503, {"status": "degraded", "checks": checks}
        return 200, {"status": "ready", "checks": checks}


class _Exchange:
    """One request's channel: tags the response, and notes status, errors and disconnects."""

    __slots__ = (
        "_receive",
        "_send",
        "backend",
        "disconnected",
        "done",
        "error",
        "response_started",
        "status",
    )

    def __init__(self, receive: Receive, send: Send, backend: Backend) -> None:
        self._receive = receive
        self._send = send
        self.backend = backend
        self.status = 500  # until the app starts a response
        self.error = False
        self.disconnected = False
        self.done = False
        self.response_started = False

    async def receive(self) -> dict[str, Any]:
        message = await self._receive()
        if message["type"] == "http.disconnect" and not self.done:
            self.disconnected = True
        return message

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.response_started = True
            message["headers"] = [*message.get("headers", ()), _SERVED_BY[self.backend]]
        elif kind == "http.response.body" and not message.get("more_body", False):
            self.done = True
        try:
            await self._send(message)
        except OSError:
            self.disconnected = True
            raise


def _legacy_resolver(wsgi_app: Any) -> Callable[[str, str], str | None] | None:
    """Path and method to a Flask endpoint id, for metrics (runs in the background only)."""
    url_map = getattr(wsgi_app, "url_map", None)
    if url_map is None:
        return None
    adapter = url_map.bind("gateway.invalid")
    cache: dict[tuple[str, str], str | None] = {}

    def resolve(path: str, method: str) -> str | None:
        key = (path, method)
        if key in cache:
            return cache[key]
        try:
            endpoint, _ = adapter.match(path, method)
        except Exception:  # NotFound, MethodNotAllowed, RequestRedirect
            endpoint = None
        if not isinstance(endpoint, str) or endpoint == "static":
            endpoint = None
        if len(cache) >= 10_000:  # paths carry ids: bound the cache
            cache.clear()
        cache[key] = endpoint
        return endpoint

    return resolve


def build_gateway(
    wsgi_app: Any,
    routes: Sequence[Route],
    flags: FlagSource,
    **options: Any,
) -> Gateway:
    """The ASGI app serving `wsgi_app` (any Flask app) with `routes` as its async twins.

    Each route's `name` is its Flask twin's endpoint id; its path and methods must match the
    twin's or this raises RouteMismatch. `flags` gives the YAML file and the database of the
    runtime flag state. Options: `user_key` (sticky user key from a scope, no I/O; default:
    the Flask session's `user_id`), `authenticate` (async scope -> Principal, for admin
    overrides and the admin API), `lifespan` (the app's own async context manager),
    `wsgi_threads`, `admin_routes`.
    """
    return Gateway(wsgi_app, routes, flags, **options)


__all__ = ["FlagSource", "Gateway", "GatewayError", "Principal", "build_gateway"]
