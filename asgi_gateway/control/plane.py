"""The control plane's view of a gateway: what the admin API and the dashboard may use.

`build_gateway` hands them a `ControlPlane`, not the Gateway: the flags (store, declared file,
refresher), the endpoints and their twins, who is asking, and the legacy pool's health. Each
can be built and tested with just these.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from asgi_gateway.control.refresher import FlagRefresher
from asgi_gateway.control.rollouts import Rollouts
from asgi_gateway.control.store import Change, FlagState, FlagStore, etag
from asgi_gateway.errors import FlagStoreUnavailable, GatewayError
from asgi_gateway.flag_file import FlagFile
from asgi_gateway.flags import EndpointRules, Flag, drift, effective_flag
from asgi_gateway.serving.identity import Authenticate, InvalidCredentials, Principal

_log = logging.getLogger(__name__)
_READINESS_TIMEOUT_S = 2.0


class AccessDenied(GatewayError):
    """The caller may not use the control plane: `status` 401 (who are you?) or 403 (not admin)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class IdentityUnavailable(GatewayError):
    """Checking the caller's credentials failed (e.g. the app's database is down)."""


@dataclass(frozen=True, slots=True)
class PoolHealth:
    """The legacy WSGI pool right now: its size, threads busy, requests waiting for one."""

    threads: int
    busy: int
    queued: int


@dataclass
class ControlPlane:
    """Flags, endpoints, identity and pool health of one gateway, for its control surfaces.

    `store`, `declared` and `refresher` are set when the gateway starts (its lifespan).
    """

    rules: EndpointRules
    authenticate: Authenticate | None
    pool_health: Callable[[], PoolHealth]
    rollout_prefix: str = "/_rollout"
    login_path: str = "/login"
    session_cookie: str = "session"
    secret_key: bytes = b""
    retire_after_days: int = 7
    store: FlagStore | None = None
    declared: FlagFile | None = None
    refresher: FlagRefresher | None = None
    notify: Callable[[], None] | None = None  # wakes the webhook sender after a change
    cache: dict[str, Any] = field(default_factory=dict)  # per-gateway memo of slow reads

    @property
    def endpoints(self) -> frozenset[str]:
        """Every endpoint id of the app (Flask endpoints, or the twins without Flask)."""
        return frozenset(self.rules.known or ())

    @property
    def twins(self) -> frozenset[str]:
        """The endpoints with an async twin."""
        return frozenset(self.rules.twins or ())

    def require_store(self) -> FlagStore:
        """The flag store; FlagStoreUnavailable before the gateway has started."""
        if self.store is None:
            raise FlagStoreUnavailable("the gateway has not started")
        return self.store

    async def require_admin(self, request: Request) -> Principal:
        """The calling admin; AccessDenied (401/403) or IdentityUnavailable otherwise.

        A failure of the app's identity check is not "invalid credentials": it is reported
        as unavailable (503), so an operator is never told to sign in again during an outage.
        """
        if self.authenticate is None:
            raise AccessDenied(403, "this gateway has no admin authentication")
        try:
            principal = await self.authenticate(request.scope)
        except InvalidCredentials as exc:
            raise AccessDenied(401, str(exc) or "invalid credentials") from None
        except Exception as exc:
            _log.warning("admin authentication failed: %r", exc)
            raise IdentityUnavailable(
                "cannot check your credentials right now (the identity service failed); "
                "try again shortly"
            ) from exc
        if principal is None:
            raise AccessDenied(
                401,
                "authentication required: send 'Authorization: Bearer <admin token>' "
                "or sign in as an admin",
            )
        if not principal.is_admin:
            raise AccessDenied(403, f"{principal.name} is not an admin")
        return principal

    def effective(self, endpoint: str, state: FlagState) -> Flag:
        """The flag `endpoint` is served with at `state`."""
        return effective_flag(endpoint, state.flags, self.declared)

    def declared_flag(self, endpoint: str) -> Flag:
        """The endpoint's entry in the flag file (legacy with the defaults when absent)."""
        return self.declared.declared(endpoint) if self.declared else Flag(endpoint)

    def flag_view(self, endpoint: str, flag: Flag) -> dict[str, Any]:
        """One endpoint's rollout as the admin API shows it: flag, declared, twin, drift, etag."""
        declared = self.declared_flag(endpoint)
        drifted = drift(flag, declared)
        data = flag.to_dict()
        data.update(
            has_twin=endpoint in self.twins,
            declared=declared.to_dict(),
            drift=bool(drifted),
            drift_fields=list(drifted),
            etag=etag(flag),
        )
        return data

    async def flip(
        self,
        endpoint: str,
        change: Change,
        *,
        actor: str,
        reason: str,
        action: str = "set",
        expected_etag: str | None = None,
    ) -> tuple[Flag, Flag]:
        """The one audited path of a runtime flip; this worker serves the new flag at once."""
        before, after = await self.require_store().flip(
            endpoint,
            change,
            declared=self.declared,
            rules=self.rules,
            actor=actor,
            reason=reason,
            action=action,
            expected_etag=expected_etag,
        )
        await self.changed()
        return before, after

    def rollouts(self) -> Rollouts:
        """The rollout actions, on this gateway's store and declared flags."""
        return Rollouts(self.require_store(), self.declared, self.rules, on_change=self.changed)

    async def changed(self) -> None:
        """After a committed change: this worker serves it at once; its notices go out now."""
        if self.refresher is not None:
            await self.refresher.refresh()
        if self.notify is not None:
            self.notify()

    async def readiness(
        self, checks: Mapping[str, Callable[[], Awaitable[object]]]
    ) -> tuple[int, dict[str, Any]]:
        """(status, body) for /readyz: the flags and each of `checks`, every failure named."""
        refresher = self.refresher
        if refresher is None:
            return 503, {"status": "starting", "checks": {"flags": "not loaded"}, "failing": []}
        report: dict[str, Any] = {
            "flags": "ok" if refresher.problem is None else refresher.problem,
            "flags_version": refresher.snapshot.version,
            # Informative, never failing: while notifications are down, polling serves.
            "flags_push": refresher.push_state,
        }
        failing = [] if refresher.problem is None else ["flags"]
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), _READINESS_TIMEOUT_S)
            except Exception as exc:
                report[name] = str(exc)[:300] or type(exc).__name__
                failing.append(name)
            else:
                report[name] = "ok"
        if failing:
            return 503, {"status": "degraded", "checks": report, "failing": failing}
        return 200, {"status": "ready", "checks": report, "failing": []}

    def problems(self) -> Mapping[str, str]:
        """Dependencies failing right now (name -> why), for the dashboard's banner."""
        if self.refresher is not None and self.refresher.problem is not None:
            return {"flags": self.refresher.problem}
        return {}
