"""The runtime flag state in the database: flag rows, one version counter, and the audit trail.

Every change is one transaction that first bumps the version (which takes the write lock),
then reads the flag it changes, computes the new flag from that fresh state and writes it
with an audit row: concurrent changes apply one after the other, each from the state the
previous one left, and each audit row shows exactly what its caller changed. Each worker of
each machine sees a change by reading one small row.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, cast, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from asgi_gateway.control.database import describe_error, ensure_schema
from asgi_gateway.control.progress import Flipped, pause_for_flip
from asgi_gateway.errors import FlagConflict, FlagStoreUnavailable
from asgi_gateway.flag_file import FlagFile
from asgi_gateway.flags import EndpointRules, Flag, describe, make_flag
from asgi_gateway.tables import FLAGS_CHANNEL, audit_table, flags_table, state_table

# What a flip does besides changing the flag, in its transaction (raise to undo the flip).
Effect = Callable[[AsyncConnection, Flipped], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited flag change: who, when, why, and the flag before and after."""

    id: int
    endpoint: str
    actor: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "actor": self.actor,
            "action": self.action,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(timespec="seconds"),
        }


@dataclass(frozen=True, slots=True)
class FlagState:
    """All runtime flags at one version, and when each last changed."""

    version: int
    flags: Mapping[str, Flag]
    changed_at: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    """A requested change of one endpoint's flag: only the fields given (not None) change.

    Values are loose input (from JSON, a form or the command line), validated by `make_flag`.
    """

    mode: Any = None
    percent: Any = None
    sticky_by: Any = None
    shadow: Any = None
    compare: Any = None
    fallback: Any = None
    fallback_timeout: Any = None
    rollout: Any = None


class FlagStore:
    """Reads and changes the runtime flags through one async engine.

    Every failure to reach the database is raised as FlagStoreUnavailable with the driver's
    one-line reason, never as a raw SQLAlchemy error.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._loaded: FlagState | None = None

    async def ensure_schema(self) -> None:
        """Create the gateway's tables and the version row when missing (safe to race)."""
        await ensure_schema(self.engine)

    @asynccontextmanager
    async def _reading(self, what: str) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise FlagStoreUnavailable(f"cannot read {what}: {describe_error(exc)}") from exc

    @asynccontextmanager
    async def _writing(self, what: str, *, bump: bool = True) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.begin() as conn:
                if bump:
                    # First: takes the write lock (a row lock on PostgreSQL, the database lock
                    # on SQLite), so what the transaction reads next is what it changes.
                    await _bump(conn)
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise FlagStoreUnavailable(f"cannot store {what}: {describe_error(exc)}") from exc

    def reading(self, what: str) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads; database failures raise FlagStoreUnavailable naming `what`."""
        return self._reading(what)

    def transaction(
        self, what: str, *, bump: bool = True
    ) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """One writing transaction; with `bump`, it first moves the flag version (the write
        lock, and every worker reloads). Database failures raise FlagStoreUnavailable."""
        return self._writing(what, bump=bump)

    async def version(self) -> int:
        """The current flag version: one indexed row, cheap enough to poll."""
        async with self._reading("the flag version") as conn:
            return int(await conn.scalar(_VERSION) or 0)

    async def load(self) -> FlagState:
        """Every runtime flag and the version they belong to, read in one transaction.

        Every change of a flag moves the version (the refresher relies on it too), so at an
        unchanged version the state read last is returned without reading or parsing a row.
        """
        async with self._reading("the flags") as conn:
            version = int(await conn.scalar(_VERSION) or 0)
            loaded = self._loaded
            if loaded is not None and loaded.version == version:
                return loaded
            rows = (await conn.execute(select(flags_table))).mappings().all()
        loaded = FlagState(
            version,
            {row["endpoint"]: _flag_of(row) for row in rows},
            {row["endpoint"]: row["updated_at"] for row in rows},
        )
        self._loaded = loaded
        return loaded

    async def apply(self, declared: FlagFile, *, actor: str = "feature_flags.yaml") -> list[str]:
        """Take each YAML entry that changed since it was last applied; keep the others.

        Returns the endpoints whose runtime flag changed. One transaction, one version bump.
        """
        changed: list[str] = []
        async with self._writing("the applied flag file") as conn:
            current = {
                row["endpoint"]: row
                for row in (await conn.execute(select(flags_table))).mappings().all()
            }
            for endpoint, flag in declared.flags.items():
                fingerprint = flag.fingerprint()
                row = current.get(endpoint)
                if row is not None and row["declared_fingerprint"] == fingerprint:
                    continue
                before = _flag_of(row) if row is not None else None
                await _write(conn, flag, actor=actor, fingerprint=fingerprint, row=row)
                if before != flag:
                    reason = f"{declared.path.name} entry changed"
                    await _audit(conn, flag, before, actor, "apply", reason)
                    changed.append(endpoint)
                    flipped = Flipped(
                        endpoint,
                        before or declared.declared(endpoint),
                        flag,
                        actor,
                        "apply",
                        reason,
                        row["updated_at"] if row is not None else None,
                    )
                    await pause_for_flip(conn, flipped)
        return changed

    async def set_flag(
        self, flag: Flag, *, actor: str, reason: str, action: str = "set"
    ) -> tuple[Flag | None, Flag]:
        """Store `flag` as the endpoint's runtime flag, audited; returns (before, after).

        Like every flip by a person, it pauses a running rollout of the endpoint.
        """
        async with self._writing("the flag change") as conn:
            row = await _row(conn, flag.endpoint)
            before = _flag_of(row) if row is not None else None
            fingerprint = row["declared_fingerprint"] if row is not None else None
            await _write(conn, flag, actor=actor, fingerprint=fingerprint, row=row)
            await _audit(conn, flag, before, actor, action, reason)
            changed_at = row["updated_at"] if row is not None else None
            flipped = Flipped(
                flag.endpoint,
                before or Flag(flag.endpoint),
                flag,
                actor,
                action,
                reason,
                changed_at,
            )
            await pause_for_flip(conn, flipped)
        return before, flag

    async def flip(
        self,
        endpoint: str,
        change: Change,
        *,
        declared: FlagFile | None,
        rules: EndpointRules,
        actor: str,
        reason: str,
        action: str = "set",
        expected_etag: str | None = None,
        effect: Effect | None = None,
    ) -> tuple[Flag, Flag]:
        """Validate `change` against the endpoint's current flag and apply it: a compare-and-set.

        The one path of every runtime flip (CLI, admin API, dashboard, guard, rollouts). The
        current flag is read inside the writing transaction, so two concurrent flips apply
        in order, the second from what the first left. With `expected_etag` (the `etag` of
        the flag the caller saw), FlagConflict is raised when the flag changed since.
        `effect` runs in the same transaction after the write; by default (a person's flip)
        it pauses a running rollout of the endpoint. Raises FlagError for an invalid change;
        returns (before, after).
        """
        async with self._writing("the flag change") as conn:
            return await self.flip_in(
                conn,
                endpoint,
                change,
                declared=declared,
                rules=rules,
                actor=actor,
                reason=reason,
                action=action,
                expected_etag=expected_etag,
                effect=effect,
            )

    async def flip_in(
        self,
        conn: AsyncConnection,
        endpoint: str,
        change: Change,
        *,
        declared: FlagFile | None,
        rules: EndpointRules,
        actor: str,
        reason: str,
        action: str = "set",
        expected_etag: str | None = None,
        effect: Effect | None = None,
    ) -> tuple[Flag, Flag]:
        """`flip` inside a transaction of `transaction()` (which must have bumped the version)."""
        base, row = await self.current(conn, endpoint, declared=declared, rules=rules)
        if expected_etag is not None and etag(base) != expected_etag:
            raise FlagConflict(
                f"the flag of {endpoint} changed since it was read (now {describe(base)}); "
                "reload it and decide again"
            )
        flag = make_flag(
            endpoint,
            mode=change.mode,
            percent=change.percent,
            sticky_by=change.sticky_by,
            shadow=change.shadow,
            compare=change.compare,
            fallback=change.fallback,
            fallback_timeout=change.fallback_timeout,
            rollout=change.rollout,
            base=base,
            rules=rules,
        )
        fingerprint = row["declared_fingerprint"] if row is not None else None
        await _write(conn, flag, actor=actor, fingerprint=fingerprint, row=row)
        await _audit(conn, flag, base, actor, action, reason)
        changed_at = row["updated_at"] if row is not None else None
        flipped = Flipped(endpoint, base, flag, actor, action, reason, changed_at)
        await (effect or pause_for_flip)(conn, flipped)
        return base, flag

    async def current(
        self,
        conn: AsyncConnection,
        endpoint: str,
        *,
        declared: FlagFile | None,
        rules: EndpointRules,
    ) -> tuple[Flag, Mapping[str, Any] | None]:
        """The endpoint's flag as served (runtime row, else declared) and its row, in `conn`."""
        row = await _row(conn, endpoint)
        if row is not None:
            return _flag_of(row), row
        if declared is not None and (rules.known is None or endpoint in rules.known):
            return declared.declared(endpoint), None
        return Flag(endpoint), None

    async def audit_only(
        self, conn: AsyncConnection, flag: Flag, *, actor: str, action: str, reason: str
    ) -> None:
        """An audit row that changes nothing (a rollout paused or resumed), in `conn`."""
        await _audit(conn, flag, flag, actor, action, reason)

    async def mark_exported(self, fingerprints: Mapping[str, str]) -> None:
        """After `flags export` wrote runtime state into the YAML, record it as applied."""
        try:
            async with self.engine.begin() as conn:
                for endpoint, fingerprint in fingerprints.items():
                    await conn.execute(
                        update(flags_table)
                        .where(flags_table.c.endpoint == endpoint)
                        .values(declared_fingerprint=fingerprint)
                    )
        except (SQLAlchemyError, OSError) as exc:
            raise FlagStoreUnavailable(f"cannot record the export: {describe_error(exc)}") from exc

    async def last_changes(self) -> dict[str, AuditEntry]:
        """The newest audit row of each endpoint."""
        newest = select(func.max(audit_table.c.id)).group_by(audit_table.c.endpoint)
        async with self._reading("the audit trail") as conn:
            result = await conn.execute(select(audit_table).where(audit_table.c.id.in_(newest)))
            rows = result.mappings().all()
        return {row["endpoint"]: AuditEntry(**dict(row)) for row in rows}

    async def history(
        self,
        endpoint: str | None = None,
        *,
        limit: int = 100,
        actor: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        """Audit rows, newest first, optionally of one endpoint, one actor, or since a time."""
        query = select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(audit_table.c.created_at >= since)
        if endpoint is not None:
            query = query.where(audit_table.c.endpoint == endpoint)
        if actor is not None:
            query = query.where(audit_table.c.actor == actor)
        async with self._reading("the audit trail") as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [AuditEntry(**dict(row)) for row in rows]


def etag(flag: Flag) -> str:
    """The version tag of one flag's content (HTTP ETag, form field) for compare-and-set."""
    return flag.fingerprint()


_VERSION = select(state_table.c.version).where(state_table.c.id == 1)


async def _row(conn: AsyncConnection, endpoint: str) -> Mapping[str, Any] | None:
    query = select(flags_table).where(flags_table.c.endpoint == endpoint)
    return (await conn.execute(query)).mappings().first()


def _flag_of(row: Mapping[str, Any]) -> Flag:
    settings = row.get("settings")
    if isinstance(settings, dict):
        return Flag.from_dict({**settings, "endpoint": row["endpoint"]})
    # A row written before the settings column existed.
    return Flag.from_dict(
        {
            "endpoint": row["endpoint"],
            "mode": row["mode"],
            "percent": row["percent"],
            "sticky_by": row["sticky_by"],
            "compare_ignore": row["compare_ignore"],
            "guard": row["guard"],
        }
    )


async def _bump(conn: AsyncConnection) -> None:
    version = state_table.c.version
    bump = update(state_table).where(state_table.c.id == 1).values(version=version + 1)
    is_postgresql = conn.dialect.name == "postgresql"
    if is_postgresql:
        # The notice of the new version, in the same statement: PostgreSQL delivers it to
        # every listening worker at commit, and never if the transaction rolls back.
        bump = bump.returning(version, func.pg_notify(FLAGS_CHANNEL, cast(version, Text)))
    result = await conn.execute(bump)
    if result.rowcount == 0:
        await conn.execute(insert(state_table).values(id=1, version=1))
        if is_postgresql:
            await conn.execute(select(func.pg_notify(FLAGS_CHANNEL, "1")))


async def _write(
    conn: AsyncConnection,
    flag: Flag,
    *,
    actor: str,
    fingerprint: str | None,
    row: Mapping[str, Any] | None,
) -> None:
    data = flag.to_dict()
    values = {
        "mode": flag.mode,
        "percent": flag.percent,
        "sticky_by": flag.sticky_by,
        "compare_ignore": data["compare"]["ignore"],
        "guard": data["guard"],
        "settings": data,
        "declared_fingerprint": fingerprint,
        "updated_at": datetime.now(UTC),
        "updated_by": actor,
    }
    if row is not None:
        await conn.execute(
            update(flags_table).where(flags_table.c.endpoint == flag.endpoint).values(**values)
        )
    else:
        await conn.execute(insert(flags_table).values(endpoint=flag.endpoint, **values))


async def _audit(
    conn: AsyncConnection,
    flag: Flag,
    before: Flag | None,
    actor: str,
    action: str,
    reason: str,
) -> None:
    await conn.execute(
        insert(audit_table).values(
            endpoint=flag.endpoint,
            actor=actor,
            action=action,
            before=before.to_dict() if before is not None else None,
            after=flag.to_dict(),
            reason=reason,
            created_at=datetime.now(UTC),
        )
    )
