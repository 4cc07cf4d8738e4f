"""Rollout progress rows and webhook notices, read and written inside the caller's transaction.

Every change of a progress row is a compare-and-set on its `revision`: a writer that read an
older revision raises RolloutConflict and its whole transaction (with any flip in it) is rolled
back, so two processes never both move one rollout. `pause_for_flip` is what every flip made
by a person does to a running rollout of its endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from asgi_gateway.control.rollout import Progress, history_entry, with_entry
from asgi_gateway.errors import RolloutConflict
from asgi_gateway.flag_policy import Rollout
from asgi_gateway.flags import Flag, describe
from asgi_gateway.tables import notices_table, progress_table

# Actors of the automatic flips; every other actor is a person (or the flag file).
GUARD = "guard"
ROLLOUT = "rollout"


@dataclass(frozen=True, slots=True)
class Flipped:
    """A flip just written, as an effect of it sees it inside the flip's transaction."""

    endpoint: str
    before: Flag
    after: Flag
    actor: str
    action: str
    reason: str
    changed_at: datetime | None  # when the flag had last changed before this flip


async def read_progress(conn: AsyncConnection, endpoint: str) -> Progress | None:
    """The endpoint's progress row, or None when it never had one."""
    query = select(progress_table).where(progress_table.c.endpoint == endpoint)
    row = (await conn.execute(query)).mappings().first()
    return _progress_of(row) if row is not None else None


async def read_all(
    conn: AsyncConnection, endpoints: Iterable[str] | None = None
) -> dict[str, Progress]:
    """Every progress row (or those of `endpoints`), by endpoint."""
    query = select(progress_table)
    if endpoints is not None:
        query = query.where(progress_table.c.endpoint.in_(list(endpoints)))
    rows = (await conn.execute(query)).mappings().all()
    return {row["endpoint"]: _progress_of(row) for row in rows}


async def write_progress(
    conn: AsyncConnection, progress: Progress, *, read: Progress | None
) -> Progress:
    """Store `progress` if the row is still as `read` (None: there was no row); bumps revision.

    Raises RolloutConflict when another process changed (or created) the row since.
    """
    now = datetime.now(UTC)
    stored = replace(progress, revision=(read.revision if read is not None else 0) + 1)
    values = _values_of(stored, now)
    if read is None:
        # ON CONFLICT DO NOTHING: losing the race must not spoil the caller's transaction.
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        result = await conn.execute(
            dialect.insert(progress_table)
            .values(endpoint=progress.endpoint, **values)
            .on_conflict_do_nothing(index_elements=["endpoint"])
        )
        if result.rowcount != 1:
            raise RolloutConflict(f"the rollout of {progress.endpoint} changed meanwhile")
        return stored
    result = await conn.execute(
        update(progress_table)
        .where(
            progress_table.c.endpoint == progress.endpoint,
            progress_table.c.revision == read.revision,
        )
        .values(**values)
    )
    if result.rowcount != 1:
        raise RolloutConflict(f"the rollout of {progress.endpoint} changed meanwhile")
    return stored


async def add_notice(
    conn: AsyncConnection,
    event: str,
    *,
    endpoint: str,
    actor: str,
    reason: str,
    before: Flag | None = None,
    after: Flag | None = None,
    figures: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> None:
    """Queue one webhook notice (delivered after commit by whichever worker claims it)."""
    now = datetime.now(UTC)
    payload = {
        "event": event,
        "endpoint": endpoint,
        "from": _routing(before),
        "to": _routing(after),
        "reason": reason,
        "figures": dict(figures) if figures is not None else None,
        "actor": actor,
        "time": now.isoformat(timespec="milliseconds"),
        "rollout": (
            {
                "state": progress.state,
                "steps": list(progress.plan.steps),
                "step_index": progress.step_index,
            }
            if progress is not None
            else None
        ),
    }
    await conn.execute(
        insert(notices_table).values(
            endpoint=endpoint,
            event=event,
            payload=payload,
            created_at=now,
            attempts=0,
            next_attempt_at=now,
            status="pending",
        )
    )


async def pause_for_flip(conn: AsyncConnection, flipped: Flipped) -> None:
    """A person (or the flag file) changed the flag: an active rollout of it pauses, saying why."""
    progress = await read_progress(conn, flipped.endpoint)
    if progress is None or not progress.is_active:
        return
    now = datetime.now(UTC)
    reason = (
        f"paused: {flipped.actor} changed the flag ({describe(flipped.before)} -> "
        f"{describe(flipped.after)}): {flipped.reason}"
    )
    paused = replace(
        progress,
        state="paused",
        reason=reason,
        next_step_at=None,
        history=with_entry(
            progress.history,
            history_entry(
                now,
                "pause",
                actor=flipped.actor,
                reason=reason,
                before=describe(flipped.before),
                after=describe(flipped.after),
            ),
        ),
    )
    stored = await write_progress(conn, paused, read=progress)
    await add_notice(
        conn,
        "pause",
        endpoint=flipped.endpoint,
        actor=flipped.actor,
        reason=reason,
        before=flipped.before,
        after=flipped.after,
        progress=stored,
    )


def _routing(flag: Flag | None) -> dict[str, Any] | None:
    if flag is None:
        return None
    return {"mode": flag.mode, "percent": flag.percent, "text": describe(flag)}


def _progress_of(row: Mapping[str, Any]) -> Progress:
    return Progress(
        endpoint=row["endpoint"],
        state=row["state"],
        plan=Rollout(
            steps=tuple(float(s) for s in row["steps"]),
            interval_s=float(row["interval_s"]),
            start_from=row["start_from"],
            shadow_for_s=float(row["shadow_for_s"]),
        ),
        step_index=row["step_index"],
        step_started_at=row["step_started_at"],
        next_step_at=row["next_step_at"],
        reason=row["reason"],
        started_by=row["started_by"],
        started_at=row["started_at"],
        promotable=bool(row["promotable"]),
        promotable_reason=row["promotable_reason"],
        last_analysis=row["last_analysis"],
        history=tuple(row["history"] or ()),
        revision=int(row["revision"]),
    )


def _values_of(progress: Progress, now: datetime) -> dict[str, Any]:
    return {
        "state": progress.state,
        "steps": list(progress.plan.steps),
        "interval_s": progress.plan.interval_s,
        "start_from": progress.plan.start_from,
        "shadow_for_s": progress.plan.shadow_for_s,
        "step_index": progress.step_index,
        "step_started_at": progress.step_started_at,
        "next_step_at": progress.next_step_at,
        "reason": progress.reason,
        "started_by": progress.started_by,
        "started_at": progress.started_at,
        "promotable": progress.promotable,
        "promotable_reason": progress.promotable_reason,
        "last_analysis": dict(progress.last_analysis) if progress.last_analysis else None,
        "history": [dict(entry) for entry in progress.history],
        "revision": progress.revision,
        "updated_at": now,
    }
