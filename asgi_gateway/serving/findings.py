"""What shadow traffic and fallbacks find: result counts, mismatch records, noise paths.

Noted in memory by the shadow runner and the fallback path (no I/O), written to the database
by the recorder's background task, merged across workers and machines:

* per-minute counts in `rollout_events` (`shadow_match`, ..., `fallback`), and per second in
  `rollout_recent_events` (for the guard), also counted in Prometheus as
  `gateway_shadow_total{endpoint,result}` and `gateway_fallbacks_total{endpoint}`;
* mismatch records in `rollout_mismatches`, at most MAX_MISMATCHES_PER_MINUTE per endpoint
  and minute across every worker;
* noise paths in `rollout_noise`, read back so every worker ignores what any worker learnt.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from asgi_gateway.tables import (
    MAX_MISMATCHES_PER_MINUTE,
    events_table,
    mismatches_table,
    noise_table,
    recent_events_table,
)

_log = logging.getLogger(__name__)
SHADOW_RESULTS = ("match", "mismatch", "noise", "error", "timeout", "skipped")


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One shadowed request whose two answers differed."""

    endpoint: str
    at: datetime
    method: str
    path: str
    query: str
    status_legacy: int
    status_async: int
    diffs: tuple[dict[str, str], ...]
    bodies: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as the admin API shows it."""
        return {
            "at": self.at.isoformat(timespec="seconds"),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": {"legacy": self.status_legacy, "async": self.status_async},
            "diffs": list(self.diffs),
            **({"bodies": self.bodies} if self.bodies is not None else {}),
        }


class Findings:
    """In-memory findings of one gateway, drained to the database in the background."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events: dict[tuple[int, str, str], int] = {}  # (second, endpoint, kind) -> count
        self.mismatches: list[Mismatch] = []
        self.noise: dict[tuple[str, str], int] = {}
        # Noise known anywhere (this worker's and the database's), by endpoint.
        self.known_noise: dict[str, frozenset[str]] = {}
        self._kept: dict[tuple[str, int], int] = {}  # mismatches kept per (endpoint, minute)
        self._shadow = Counter(
            "gateway_shadow_total",
            "Shadow comparisons by endpoint and result",
            ["endpoint", "result"],
            registry=registry,
        )
        self._fallbacks = Counter(
            "gateway_fallbacks_total",
            "Async answers replaced by legacy's (fallback)",
            ["endpoint"],
            registry=registry,
        )

    def shadow_result(self, endpoint: str, result: str) -> None:
        """Count one shadow outcome (`match`, `mismatch`, `noise`, `error`, ...)."""
        self._count(endpoint, f"shadow_{result}")
        self._shadow.labels(endpoint, result).inc()

    def fallback(self, endpoint: str) -> None:
        """Count one fallback to legacy."""
        self._count(endpoint, "fallback")
        self._fallbacks.labels(endpoint).inc()

    def _count(self, endpoint: str, kind: str) -> None:
        key = (int(time.time()), endpoint, kind)
        self.events[key] = self.events.get(key, 0) + 1

    def mismatch(self, record: Mismatch) -> None:
        """Keep a mismatch record, unless this minute already has its share for the endpoint."""
        key = (record.endpoint, int(record.at.timestamp() // 60))
        if self._kept.get(key, 0) >= MAX_MISMATCHES_PER_MINUTE:
            return
        if len(self._kept) > 10_000:
            self._kept.clear()
        self._kept[key] = self._kept.get(key, 0) + 1
        self.mismatches.append(record)

    def learn_noise(self, endpoint: str, paths: set[str]) -> None:
        """Note paths that differed between two legacy answers of `endpoint`."""
        for path in paths:
            self.noise[(endpoint, path)] = self.noise.get((endpoint, path), 0) + 1
        known = self.known_noise.get(endpoint, frozenset())
        if not paths <= known:
            self.known_noise = {**self.known_noise, endpoint: known | paths}

    async def persist(self, conn: AsyncConnection) -> None:
        """Write what was noted since the last call, in the caller's transaction."""
        events, self.events = self.events, {}
        mismatches, self.mismatches = self.mismatches, []
        noise, self.noise = self.noise, {}
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        try:
            if events:
                minutes: dict[tuple[int, str, str], int] = {}
                for (second, e, k), n in events.items():
                    minutes[(second // 60, e, k)] = minutes.get((second // 60, e, k), 0) + n
                for table, key, counts in (
                    (events_table, "minute", minutes),
                    (recent_events_table, "second", events),
                ):
                    stmt = dialect.insert(table)
                    stmt = stmt.on_conflict_do_update(
                        index_elements=[key, "endpoint", "kind"],
                        set_={"count": table.c["count"] + stmt.excluded["count"]},
                    )
                    await conn.execute(
                        stmt,
                        [
                            {key: t, "endpoint": e, "kind": k, "count": n}
                            for (t, e, k), n in sorted(counts.items())
                        ],
                    )
            for record in mismatches:
                await _insert_mismatch(conn, record)
            if noise:
                stmt = dialect.insert(noise_table)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["endpoint", "path"],
                    set_={"seen": noise_table.c.seen + stmt.excluded.seen},
                )
                now = datetime.now(UTC)
                await conn.execute(
                    stmt,
                    [
                        {"endpoint": e, "path": p, "first_seen": now, "seen": n}
                        for (e, p), n in noise.items()
                    ],
                )
        except BaseException:
            # Keep them for the next try rather than lose them.
            for key, n in events.items():
                self.events[key] = self.events.get(key, 0) + n
            self.mismatches[:0] = mismatches
            for key, n in noise.items():
                self.noise[key] = self.noise.get(key, 0) + n
            raise

    async def load_noise(self, conn: AsyncConnection) -> None:
        """Take the noise every worker learnt (the database's) into `known_noise`."""
        rows = (await conn.execute(select(noise_table.c.endpoint, noise_table.c.path))).all()
        known: dict[str, set[str]] = {}
        for endpoint, path in rows:
            known.setdefault(endpoint, set()).add(path)
        merged = {e: frozenset(p) for e, p in known.items()}
        for endpoint, paths in self.known_noise.items():
            merged[endpoint] = merged.get(endpoint, frozenset()) | paths
        self.known_noise = merged


async def _insert_mismatch(conn: AsyncConnection, record: Mismatch) -> None:
    minute = int(record.at.timestamp() // 60)
    if conn.dialect.name == "postgresql":
        # Workers of several machines insert at once: one at a time per endpoint, so the
        # count below is exact. (SQLite has one writer already.)
        key = zlib.crc32(record.endpoint.encode()) & 0x7FFFFFFF
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    kept = await conn.scalar(
        select(func.count())
        .select_from(mismatches_table)
        .where(mismatches_table.c.endpoint == record.endpoint, mismatches_table.c.minute == minute)
    )
    if (kept or 0) >= MAX_MISMATCHES_PER_MINUTE:
        return
    await conn.execute(
        insert(mismatches_table).values(
            endpoint=record.endpoint,
            minute=minute,
            at=record.at,
            method=record.method,
            path=record.path,
            query=record.query,
            status_legacy=record.status_legacy,
            status_async=record.status_async,
            diffs=list(record.diffs),
            bodies=record.bodies,
        )
    )


def mismatch_of(row: Mapping[str, Any]) -> Mismatch:
    """A stored mismatch row as a record."""
    return Mismatch(
        endpoint=row["endpoint"],
        at=row["at"],
        method=row["method"],
        path=row["path"],
        query=row["query"],
        status_legacy=row["status_legacy"],
        status_async=row["status_async"],
        diffs=tuple(row["diffs"] or ()),
        bodies=row["bodies"],
    )
