"""The runtime flag state in the database: flag rows, one version counter, and the audit trail.

Every change is one transaction that bumps the version and writes an audit row, so each
worker of each machine sees a flip by polling one small row. The tables belong to the gateway
(their own MetaData), so any app's database can hold them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from asgi_gateway.errors import FlagStoreUnavailable
from asgi_gateway.flags import Flag, FlagFile, Guard, make_flag
from shared.models import UTCDateTime

metadata = MetaData()

flags_table = Table(
    "rollout_flags",
    metadata,
    Column("endpoint", String(200), primary_key=True),
    Column("mode", String(16), nullable=False),
    Column("percent", Float, nullable=False, default=0.0),
    Column("sticky_by", String(120), nullable=False),
    Column("compare_ignore", JSON, nullable=False),
    Column("guard", JSON, nullable=False),
    # Fingerprint of the YAML entry last applied: a changed entry wins over runtime state.
    Column("declared_fingerprint", String(32), nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(320), nullable=False),
)

state_table = Table(
    "rollout_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

audit_table = Table(
    "rollout_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(200), nullable=False, index=True),
    Column("actor", String(320), nullable=False),
    Column("action", String(32), nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, index=True),
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
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
    """All runtime flags at one version."""

    version: int
    flags: Mapping[str, Flag]


class FlagStore:
    """Reads and changes the runtime flags through one async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def ensure_schema(self) -> None:
        """Create the gateway's tables and the version row when missing (safe to race)."""
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(metadata.create_all, checkfirst=True)
            async with self.engine.begin() as conn:
                if (
                    await conn.scalar(select(state_table.c.version).where(state_table.c.id == 1))
                    is None
                ):
                    await conn.execute(insert(state_table).values(id=1, version=0))
        except IntegrityError:
            pass  # another worker created the row first
        except SQLAlchemyError as exc:
            raise FlagStoreUnavailable(f"cannot create the flag tables: {_cause(exc)}") from exc

    async def version(self) -> int:
        """The current flag version: one indexed row, cheap enough to poll."""
        try:
            async with self.engine.connect() as conn:
                return int(
                    await conn.scalar(select(state_table.c.version).where(state_table.c.id == 1))
                    or 0
                )
        except (SQLAlchemyError, OSError) as exc:
            raise FlagStoreUnavailable(f"cannot read the flag version: {_cause(exc)}") from exc

    async def load(self) -> FlagState:
        """Every runtime flag and the version they belong to, read in one transaction."""
        try:
            async with self.engine.connect() as conn:
                version = await conn.scalar(
                    select(state_table.c.version).where(state_table.c.id == 1)
                )
                rows = (await conn.execute(select(flags_table))).mappings().all()
        except (SQLAlchemyError, OSError) as exc:
            raise FlagStoreUnavailable(f"cannot read the flags: {_cause(exc)}") from exc
        return FlagState(int(version or 0), {row["endpoint"]: _flag_of(row) for row in rows})

    async def apply(self, declared: FlagFile, *, actor: str = "feature_flags.yaml") -> list[str]:
        """Take each YAML entry that changed since it was last applied; keep the others.

        Returns the endpoints whose runtime flag changed. One transaction, one version bump.
        """
        changed: list[str] = []
        async with self.engine.begin() as conn:
            await _bump(conn)
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
                await _write(
                    conn, flag, actor=actor, fingerprint=fingerprint, exists=row is not None
                )
                if before != flag:
                    await _audit(
                        conn,
                        endpoint,
                        actor,
                        "apply",
                        before.to_dict() if before else None,
                        flag.to_dict(),
                        f"{declared.path.name} entry changed",
                    )
                    changed.append(endpoint)
        return changed

    async def set_flag(
        self, flag: Flag, *, actor: str, reason: str, action: str = "set"
    ) -> tuple[Flag | None, Flag]:
        """Change one endpoint's runtime flag, audited; returns (before, after)."""
        try:
            async with self.engine.begin() as conn:
                await _bump(conn)  # first: takes the write lock, so concurrent flips serialize
                row = (
                    (
                        await conn.execute(
                            select(flags_table).where(flags_table.c.endpoint == flag.endpoint)
                        )
                    )
                    .mappings()
                    .first()
                )
                before = _flag_of(row) if row is not None else None
                await _write(
                    conn,
                    flag,
                    actor=actor,
                    fingerprint=row["declared_fingerprint"] if row is not None else None,
                    exists=row is not None,
                )
                await _audit(
                    conn,
                    flag.endpoint,
                    actor,
                    action,
                    before.to_dict() if before else None,
                    flag.to_dict(),
                    reason,
                )
        except (SQLAlchemyError, OSError) as exc:
            raise FlagStoreUnavailable(f"cannot store the flag change: {_cause(exc)}") from exc
        return before, flag

    async def flip(
        self,
        endpoint: str,
        *,
        mode: Any,
        percent: Any,
        sticky_by: Any,
        declared: FlagFile | None,
        known: Collection[str],
        twins: Collection[str],
        actor: str,
        reason: str,
        action: str = "set",
    ) -> tuple[Flag | None, Flag]:
        """Validate a change against the current flag (or the declared one) and apply it.

        The one path of every runtime flip: CLI, admin API and dashboard. Raises FlagError
        for an invalid change; returns (before, after).
        """
        state = await self.load()
        base = state.flags.get(endpoint)
        if base is None and declared is not None and endpoint in known:
            base = declared.declared(endpoint)
        flag = make_flag(
            endpoint,
            mode=mode,
            percent=percent,
            sticky_by=sticky_by,
            base=base,
            known=known,
            twins=twins,
        )
        return await self.set_flag(flag, actor=actor, reason=reason, action=action)

    async def mark_exported(self, fingerprints: Mapping[str, str]) -> None:
        """After `flags export` wrote runtime state into the YAML, record it as applied."""
        async with self.engine.begin() as conn:
            for endpoint, fingerprint in fingerprints.items():
                await conn.execute(
                    update(flags_table)
                    .where(flags_table.c.endpoint == endpoint)
                    .values(declared_fingerprint=fingerprint)
                )

    async def last_changes(self) -> dict[str, AuditEntry]:
        """The newest audit row of each endpoint."""
        newest = select(func.max(audit_table.c.id)).group_by(audit_table.c.endpoint)
        try:
            async with self.engine.connect() as conn:
                rows = (
                    (await conn.execute(select(audit_table).where(audit_table.c.id.in_(newest))))
                    .mappings()
                    .all()
                )
        except (SQLAlchemyError, OSError) as exc:
            raise FlagStoreUnavailable(f"cannot read the audit trail: {_cause(exc)}") from exc
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
        try:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query)).mappings().all()
        except (SQLAlchemyError, OSError) as exc:
            raise FlagStoreUnavailable(f"cannot read the audit trail: {_cause(exc)}") from exc
        return [AuditEntry(**dict(row)) for row in rows]


def _cause(exc: BaseException) -> str:
    """The driver's one-line reason, without the SQL and parameters SQLAlchemy appends
    (the message reaches admin API clients)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _flag_of(row: Mapping[str, Any]) -> Flag:
    guard = row["guard"] or {}
    return Flag(
        endpoint=row["endpoint"],
        mode=row["mode"],
        percent=round(float(row["percent"]), 2),
        sticky_by=row["sticky_by"],
        compare_ignore=tuple(row["compare_ignore"] or ()),
        guard=replace(Guard(), **{k: v for k, v in guard.items() if k in Guard.__slots__}),
    )


async def _bump(conn: AsyncConnection) -> None:
    result = await conn.execute(
        update(state_table).where(state_table.c.id == 1).values(version=state_table.c.version + 1)
    )
    if result.rowcount == 0:
        await conn.execute(insert(state_table).values(id=1, version=1))


async def _write(
    conn: AsyncConnection, flag: Flag, *, actor: str, fingerprint: str | None, exists: bool
) -> None:
    values = {
        "mode": flag.mode,
        "percent": flag.percent,
        "sticky_by": flag.sticky_by,
        "compare_ignore": list(flag.compare_ignore),
        "guard": flag.to_dict()["guard"],
        "declared_fingerprint": fingerprint,
        "updated_at": datetime.now(UTC),
        "updated_by": actor,
    }
    if exists:
        await conn.execute(
            update(flags_table).where(flags_table.c.endpoint == flag.endpoint).values(**values)
        )
    else:
        await conn.execute(insert(flags_table).values(endpoint=flag.endpoint, **values))


async def _audit(
    conn: AsyncConnection,
    endpoint: str,
    actor: str,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str,
) -> None:
    await conn.execute(
        insert(audit_table).values(
            endpoint=endpoint,
            actor=actor,
            action=action,
            before=before,
            after=after,
            reason=reason,
            created_at=datetime.now(UTC),
        )
    )
