"""`build_gateway`: the public way to make a Gateway, with every option spelled out."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute, Route

from asgi_gateway.serving.gateway import Gateway
from asgi_gateway.serving.identity import Authenticate, UserKey
from asgi_gateway.serving.options import (
    AppLifespan,
    FlagSource,
    GatewayOptions,
    ReadinessCheck,
)
from asgi_gateway.serving.routing import OwnPaths
from asgi_gateway.serving.shadow import DryRun


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
    dry_run: DryRun | None = None,
    shadow_concurrency: int = 8,
    stats_flush_s: float = 2.0,
    stats_retention_days: int = 7,
    retire_after_days: int = 7,
    extra_routes: Sequence[BaseRoute] = (),
    guard_tick_s: float = 1.0,
    rollout_webhook: str | None = None,
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
        dry_run=dry_run,
        shadow_concurrency=shadow_concurrency,
        stats_flush_s=stats_flush_s,
        stats_retention_days=stats_retention_days,
        retire_after_days=retire_after_days,
        extra_routes=tuple(extra_routes),
        guard_tick_s=guard_tick_s,
        rollout_webhook=rollout_webhook,
    )
    return Gateway(wsgi_app, routes, flags, options)
