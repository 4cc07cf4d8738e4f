"""How a gateway is configured: where its flags come from, and every option of `build_gateway`."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import BaseRoute

from asgi_gateway.control.database import open_engine
from asgi_gateway.serving.identity import Authenticate, UserKey
from asgi_gateway.serving.routing import OwnPaths
from asgi_gateway.serving.shadow import DryRun

if TYPE_CHECKING:
    from asgi_gateway.serving.gateway import Gateway

ReadinessCheck = Callable[[], Awaitable[object]]
AppLifespan = Callable[["Gateway", dict[str, Any]], contextlib.AbstractAsyncContextManager[None]]
_log = logging.getLogger(__name__)


@dataclass
class FlagSource:
    """Where flags come from: the declared YAML file and the database holding runtime state.

    The gateway opens its own small engine on `database_url` (an async SQLAlchemy URL) on the
    server's loop. On PostgreSQL with `notify`, each worker hears of a flip at once (LISTEN/
    NOTIFY on its own connection) and polls the version only every `fallback_poll_s`; a lost
    connection is reopened every `notify_retry_s`. Otherwise (SQLite, or while that
    connection is down) workers poll every `poll_interval_s`, which then bounds how long a
    flip takes to reach every worker.
    """

    path: Path
    database_url: str
    poll_interval_s: float = 0.25
    notify: bool = True
    fallback_poll_s: float = 30.0
    notify_retry_s: float = 2.0
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
    dry_run: DryRun | None = None
    shadow_concurrency: int = 8
    stats_flush_s: float = 2.0
    stats_retention_days: int = 7
    retire_after_days: int = 7
    extra_routes: Sequence[BaseRoute] = ()
    guard_tick_s: float = 1.0
    rollout_webhook: str | None = None


def secret_bytes(secret: str | bytes | None, flask_app: Any) -> bytes:
    """The key signing the dashboard's forms: the option, else Flask's SECRET_KEY, else random."""
    if secret is None and flask_app is not None:
        secret = flask_app.config.get("SECRET_KEY")
    if secret:
        return secret if isinstance(secret, bytes) else secret.encode()
    _log.warning(
        "no secret_key for the gateway (and no Flask SECRET_KEY): dashboard forms are signed "
        "with a key of this process only; pass build_gateway(secret_key=...) for several workers"
    )
    return secrets.token_bytes(32)
