"""The strangler gateway: one ASGI app serving a WSGI (Flask) app and its async twins by flag."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import BaseRoute, Route

from asgi_gateway.control.database import open_engine
from asgi_gateway.control.plane import ControlPlane, PoolHealth
from asgi_gateway.control.refresher import FlagRefresher
from asgi_gateway.control.router import control_router
from asgi_gateway.control.store import FlagStore
from asgi_gateway.errors import FlagStoreUnavailable
from asgi_gateway.flags import load_flag_file
from asgi_gateway.serving.body import buffer_request, inspect_headers, send_headers_too_large
from asgi_gateway.serving.decision import Backend, CompiledFlag, decide_backend
from asgi_gateway.serving.identity import (
    Authenticate,
    FlaskSessionUser,
    UserKey,
    bearer_key,
    cookie,
    header,
)
from asgi_gateway.serving.mount import DEFAULT_MAX_BODY_BYTES, WSGIMount
from asgi_gateway.serving.recorder import Recorder, render_prometheus
from asgi_gateway.serving.routing import (
    Endpoint,
    OwnPaths,
    RouteMatcher,
    check_twins,
    route_path,
    twin_endpoints,
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ReadinessCheck = Callable[[], Awaitable[object]]
AppLifespan = Callable[["Gateway", dict[str, Any]], contextlib.AbstractAsyncContextManager[None]]

_log = logging.getLogger(__name__)
_SERVED_BY = {"legacy": (b"x-served-by", b"legacy"), "async": (b"x-served-by", b"async")}
_OVERRIDE = b"x-backend-override"
_INTERNAL_ERROR = json.dumps(
    {"error": {"code": "internal_error", "message": "internal server error; it has been logged"}}
).encode()
_DRAIN_TIMEOUT_S = 30.0
_READINESS_TIMEOUT_S = 2.0


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
        """The engine of the flag tables, created on first use (on the server's loop)."""
        if self.engine is None:
            self.engine = open_engine(self.database_url)
        return self.engine


@dataclass(frozen=True)
class GatewayOptions:
    """How a gateway serves; every field is a keyword argument of `build_gateway`."""

    flask_app: Any = None
    authenticate: Authenticate | None = None
    user_key: UserKey | None = None
    lifespan: AppLifespan | None = None
    wsgi_threads: int = 10
    max_body_bytes: int | None = None
    body_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024
    paths: OwnPaths = field(default_factory=OwnPaths)
    replaces: frozenset[str] = frozenset()  # Flask endpoint ids the own paths replace knowingly
    login_path: str = "/login"
    secret_key: str | bytes | None = None
    metrics_token: str | None = None
    readiness_checks: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    registry: CollectorRegistry | None = None
    stats_retention_days: int = 7
    retire_after_days: int = 7
    extra_routes: Sequence[BaseRoute] = ()


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
        self.inflight = 0
        self.legacy_inflight = 0
        self.started_at = 0.0
        self.registry = options.registry or CollectorRegistry()
        self.recorder = Recorder(
            self.registry,
            resolve=_legacy_resolver(flask_app),
            retention_days=options.stats_retention_days,
        )
        self.plane = ControlPlane(
            endpoints=frozenset(self.endpoints),
            twins=self.twins,
            authenticate=options.authenticate,
            pool_health=self.pool_health,
            rollout_prefix=self.paths.rollout_prefix,
            login_path=options.login_path,
            session_cookie=self.session_cookie,
            secret_key=_secret_bytes(options.secret_key, flask_app),
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
            await self.control(scope, receive, _Exchange(receive, send, "async").send)
            return
        self.inflight += 1
        started = time.perf_counter()
        endpoint: str | None = None
        exchange: _Exchange | None = None
        try:
            match = self.matcher.match(scope)
            if match is None:
                exchange = _Exchange(receive, send, "legacy")
                await self._serve_legacy(scope, exchange, info)
                return
            route, child = match
            endpoint = route.name
            backend = await self._choose(scope, endpoint)
            exchange = _Exchange(receive, send, backend)
            if backend == "legacy":
                await self._serve_legacy(scope, exchange, info)
                return
            receive_twin, send_twin = exchange.receive, exchange.send
            if info.has_body:
                # Read on the loop with a deadline, as for legacy: a slow client gets a 408.
                buffered = await buffer_request(
                    scope,
                    exchange.receive,
                    exchange.send,
                    info,
                    limit=self.max_body_bytes,
                    timeout_s=self.options.body_timeout_s,
                )
                if buffered is None:
                    return
                scope, receive_twin, send_twin = buffered
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

    async def _serve_legacy(self, scope: Scope, exchange: _Exchange, info: Any) -> None:
        self.legacy_inflight += 1
        try:
            await self.legacy.serve(scope, exchange.receive, exchange.send, info)
        finally:
            self.legacy_inflight -= 1

    async def _choose(self, scope: Scope, endpoint: str) -> Backend:
        if header(scope, _OVERRIDE) is not None:
            forced = await self._override(scope)
            if forced is not None:
                return forced
        refresher = self.plane.refresher
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
        app_lifespan = self.options.lifespan
        async with contextlib.AsyncExitStack() as stack:
            if app_lifespan is not None:
                await stack.enter_async_context(app_lifespan(self, state))
            await stack.enter_async_context(self._flags())
            self.started_at = time.time()
            yield
            await self._drain()

    @contextlib.asynccontextmanager
    async def _flags(self) -> AsyncIterator[None]:
        source = self.flag_source
        plane = self.plane
        plane.declared = load_flag_file(source.path, known=self.endpoints.keys(), twins=self.twins)
        engine = source.open()
        store = plane.store = FlagStore(engine)
        refresher: FlagRefresher | None = None
        try:
            await store.ensure_schema()
            changed = await store.apply(plane.declared)
            if changed:
                _log.warning("applied changed flag file entries: %s", ", ".join(changed))
            refresher = FlagRefresher(store, interval_s=source.poll_interval_s)
            await refresher.refresh()
            if refresher.problem is not None:
                raise FlagStoreUnavailable(refresher.problem)
            plane.refresher = refresher
            refresher.start()
            await self.recorder.start(engine)
            yield
        finally:
            plane.refresher = None
            if refresher is not None:
                await refresher.stop()
            try:
                await self.recorder.stop()
            finally:
                plane.store = None
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
        refresher = self.plane.refresher
        if refresher is None:
            return 503, {"status": "starting", "checks": {"flags": "not loaded"}, "failing": []}
        checks: dict[str, Any] = {
            "flags": "ok" if refresher.problem is None else refresher.problem,
            "flags_version": refresher.snapshot.version,
        }
        failing = [] if refresher.problem is None else ["flags"]
        for name, check in self.options.readiness_checks.items():
            try:
                await asyncio.wait_for(check(), _READINESS_TIMEOUT_S)
            except Exception as exc:
                checks[name] = str(exc)[:300] or type(exc).__name__
                failing.append(name)
            else:
                checks[name] = "ok"
        if failing:
            return 503, {"status": "degraded", "checks": checks, "failing": failing}
        return 200, {"status": "ready", "checks": checks, "failing": []}


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
            if not self.response_started:
                self.status = 499  # the client left first: not a server error
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


def _secret_bytes(secret: str | bytes | None, flask_app: Any) -> bytes:
    if secret is None and flask_app is not None:
        secret = flask_app.config.get("SECRET_KEY")
    if secret:
        return secret if isinstance(secret, bytes) else secret.encode()
    _log.warning(
        "no secret_key for the gateway (and no Flask SECRET_KEY): dashboard forms are signed "
        "with a key of this process only; pass build_gateway(secret_key=...) for several workers"
    )
    return secrets.token_bytes(32)


def _legacy_resolver(flask_app: Any) -> Callable[[str, str], str | None] | None:
    """Path and method to a Flask endpoint id, for metrics (runs in the background only)."""
    url_map = getattr(flask_app, "url_map", None)
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
    *,
    flask_app: Any = None,
    authenticate: Authenticate | None = None,
    user_key: UserKey | None = None,
    lifespan: AppLifespan | None = None,
    wsgi_threads: int = 10,
    max_body_bytes: int | None = None,
    body_timeout_s: float = 10.0,
    max_header_bytes: int = 64 * 1024,
    paths: OwnPaths | None = None,
    replaces: Collection[str] = (),
    login_path: str = "/login",
    secret_key: str | bytes | None = None,
    metrics_token: str | None = None,
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    registry: CollectorRegistry | None = None,
    stats_retention_days: int = 7,
    retire_after_days: int = 7,
    extra_routes: Sequence[BaseRoute] = (),
) -> Gateway:
    """The ASGI app serving `wsgi_app` (any WSGI app) with `routes` as its async twins.

    Each route's `name` is its Flask twin's endpoint id. When there is a Flask app (`wsgi_app`
    itself, or `flask_app` for one wrapped in middleware), each route's path and methods must
    match its twin's or this raises RouteMismatch. `flags` gives the YAML file and the database
    of the runtime flag state. Every option is described in docs/gateway.md.
    """
    options = GatewayOptions(
        flask_app=flask_app,
        authenticate=authenticate,
        user_key=user_key,
        lifespan=lifespan,
        wsgi_threads=wsgi_threads,
        max_body_bytes=max_body_bytes,
        body_timeout_s=body_timeout_s,
        max_header_bytes=max_header_bytes,
        paths=paths or OwnPaths(),
        replaces=frozenset(replaces),
        login_path=login_path,
        secret_key=secret_key,
        metrics_token=metrics_token,
        readiness_checks=dict(readiness_checks or {}),
        registry=registry,
        stats_retention_days=stats_retention_days,
        retire_after_days=retire_after_days,
        extra_routes=tuple(extra_routes),
    )
    return Gateway(wsgi_app, routes, flags, options)
