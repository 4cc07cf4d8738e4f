"""Per endpoint x backend request metrics: recorded off the hot path, exported two ways.

A request only appends one tuple to a deque (atomic under the GIL: no lock, no I/O). A
background task on the server loop drains it about once a second into

* Prometheus metrics in the gateway's own registry (multiprocess mode when
  PROMETHEUS_MULTIPROC_DIR is set, so `/metrics` sums every worker), and
* per-minute buckets in the database (`rollout_stats`), merged by upsert across all workers
  and machines and pruned after the retention period: the dashboard's history; and the same
  counts per second (`rollout_recent_stats`, kept RECENT_KEEP_S) for the guard's windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.serving.findings import Findings
from asgi_gateway.tables import (
    BUCKETS_MS,
    COUNT_COLUMNS,
    QUARTER_MINUTES,
    RECENT_KEEP_S,
    events_table,
    mismatches_table,
    quarter_stats_table,
    recent_events_table,
    recent_stats_table,
    stats_table,
)

_log = logging.getLogger(__name__)

# endpoint (None: resolve from path and method later), path, method, backend, status, ms,
# error, client disconnected
Sample = tuple["str | None", str, str, str, int, float, bool, bool]
Resolve = Callable[[str, str], "str | None"]
_CLASS_INDEX = {2: 1, 3: 2, 4: 3, 5: 4}
_NOISE_RELOAD_S = 30.0
_RECENT_PRUNE_S = 60.0


class Recorder:
    """One per gateway: the request path calls `record`; a background task does the rest."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        resolve: Resolve | None = None,
        retention_days: int = 7,
        flush_interval_s: float = 1.0,
        persist_interval_s: float = 5.0,
    ) -> None:
        self.samples: deque[Sample] = deque()
        self.resolve = resolve
        self.retention_days = retention_days
        self.flush_interval_s = flush_interval_s
        self.persist_interval_s = persist_interval_s
        # (second, endpoint, backend) -> counts; summed per minute as well when persisted
        self.pending: dict[tuple[int, str, str], list[int]] = {}
        self.engine: AsyncEngine | None = None
        self.prometheus = _Prometheus(registry)
        self.findings = Findings(registry)
        self._last_noise_load = 0.0
        self._task: asyncio.Task[None] | None = None
        self._last_prune = time.monotonic() - 3600  # first prune on the first persist
        self._last_recent_prune = time.monotonic()

    def record(
        self,
        endpoint: str | None,
        path: str,
        method: str,
        backend: str,
        status: int,
        latency_ms: float,
        error: bool,
        disconnected: bool,
    ) -> None:
        """Note one finished request (hot path: one deque append).

        `endpoint` None means "not a migrated route": its id is resolved from path and
        method in the background, so the request path never matches the legacy URL map.
        """
        self.samples.append(
            (endpoint, path, method, backend, status, latency_ms, error, disconnected)
        )

    # -- background ---------------------------------------------------------------------------

    async def start(self, engine: AsyncEngine) -> None:
        """Start draining in the background, persisting into `engine` (tables must exist)."""
        self.engine = engine
        self._task = asyncio.get_running_loop().create_task(self._run(), name="metrics")

    async def stop(self) -> None:
        """Stop the background task, then drain and persist what is left."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.drain()
        await self.persist()

    async def _run(self) -> None:
        last_persist = time.monotonic()
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                self.drain()
                if time.monotonic() - last_persist >= self.persist_interval_s:
                    last_persist = time.monotonic()
                    await self.persist()
                    await self._prune_hourly()
                    await self._prune_recent()
            except Exception:  # a bad flush must not stop metrics for good
                _log.exception("metrics flush failed")

    def drain(self) -> int:
        """Move buffered samples into Prometheus and the per-second counts; returns how many."""
        samples = self.samples
        second = int(time.time())
        observe = self.prometheus.observe
        pending = self.pending
        resolve = self.resolve
        drained = 0
        while samples:
            (endpoint, path, method, backend, status, latency_ms, error, disconnected) = (
                samples.popleft()
            )
            drained += 1
            if endpoint is None:
                endpoint = resolve(path, method) if resolve is not None else None
                if endpoint is None:
                    continue  # no such endpoint (a 404): not an endpoint's traffic
            counts = pending.get((second, endpoint, backend))
            if counts is None:
                counts = pending[(second, endpoint, backend)] = [0] * len(COUNT_COLUMNS)
            is_error = error or status >= 500
            counts[0] += 1
            counts[_CLASS_INDEX.get(status // 100, 4)] += 1
            counts[5] += is_error
            counts[6] += disconnected
            counts[7] += round(latency_ms)
            for i, bound in enumerate(BUCKETS_MS):
                if latency_ms <= bound:
                    counts[8 + i] += 1
                    break
            observe(endpoint, backend, status, latency_ms, is_error)
        return drained

    async def persist(self) -> None:
        """Add the pending counts into rollout_stats and rollout_recent_stats (upserts that sum),
        and write the shadow findings; what cannot be written now is kept for the next try."""
        await self._persist_counts()
        if self.engine is None:
            return
        try:
            async with self.engine.begin() as conn:
                await self.findings.persist(conn)
                if time.monotonic() - self._last_noise_load > _NOISE_RELOAD_S:
                    self._last_noise_load = time.monotonic()
                    await self.findings.load_noise(conn)
        except (SQLAlchemyError, OSError) as exc:
            _log.warning("could not persist shadow findings (will retry): %s", exc)

    async def _persist_counts(self) -> None:
        if not self.pending or self.engine is None:
            return
        pending, self.pending = self.pending, {}
        minutes = _coarser(pending, 60)
        quarters = _coarser(minutes, QUARTER_MINUTES)
        try:
            async with self.engine.begin() as conn:
                # One transaction: a reader never sees a quarter disagree with its minutes.
                for table, key, counts_of in (
                    (stats_table, "minute", minutes),
                    (quarter_stats_table, "quarter", quarters),
                    (recent_stats_table, "second", pending),
                ):
                    await _add_counts(conn, table, key, counts_of)
        except (SQLAlchemyError, OSError) as exc:
            # Keep the counts for the next try rather than lose them.
            for key, counts in pending.items():
                mine = self.pending.setdefault(key, [0] * len(COUNT_COLUMNS))
                self.pending[key] = [a + b for a, b in zip(mine, counts, strict=True)]
            _log.warning("could not persist metrics (will retry): %s", exc)

    async def _prune_recent(self) -> None:
        if self.engine is None or time.monotonic() - self._last_recent_prune < _RECENT_PRUNE_S:
            return
        self._last_recent_prune = time.monotonic()
        await self.prune_recent()

    async def prune_recent(self, now_s: float | None = None) -> int:
        """Delete per-second rows past RECENT_KEEP_S (and a minute); returns how many."""
        if self.engine is None:
            return 0
        now_s = time.time() if now_s is None else now_s
        oldest = int(now_s) - RECENT_KEEP_S - int(_RECENT_PRUNE_S)
        deleted = 0
        async with self.engine.begin() as conn:
            for table in (recent_stats_table, recent_events_table):
                result = await conn.execute(delete(table).where(table.c.second < oldest))
                deleted += int(result.rowcount or 0)
        return deleted

    async def _prune_hourly(self) -> None:
        if self.engine is None or time.monotonic() - self._last_prune < 3600:
            return
        self._last_prune = time.monotonic()
        await self.prune()

    async def prune(self, now_s: float | None = None) -> int:
        """Delete per-minute (and per-quarter) rows older than the retention period, in whole
        quarters of an hour; returns how many minutes."""
        if self.engine is None:
            return 0
        oldest = int((now_s if now_s is not None else time.time()) // 60)
        oldest -= self.retention_days * 24 * 60
        # Up to 14 minutes more than the retention: the minutes and the quarters then span the
        # same time, so a window read from quarters and edge minutes sums what the minutes hold.
        oldest_quarter = oldest // QUARTER_MINUTES
        oldest = oldest_quarter * QUARTER_MINUTES
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(stats_table).where(stats_table.c.minute < oldest))
            await conn.execute(
                delete(quarter_stats_table).where(quarter_stats_table.c.quarter < oldest_quarter)
            )
            for table in (events_table, mismatches_table):
                await conn.execute(delete(table).where(table.c.minute < oldest))
        return int(result.rowcount or 0)


def _coarser(
    counts_of: dict[tuple[int, str, str], list[int]], factor: int
) -> dict[tuple[int, str, str], list[int]]:
    """`counts_of` summed into periods `factor` times longer (seconds into minutes, ...)."""
    summed: dict[tuple[int, str, str], list[int]] = {}
    for (t, e, b), counts in counts_of.items():
        key = (t // factor, e, b)
        into = summed.get(key)
        if into is None:
            summed[key] = list(counts)
        else:
            for i, n in enumerate(counts):
                into[i] += n
    return summed


async def _add_counts(
    conn: Any, table: Any, key: str, counts_of: dict[tuple[int, str, str], list[int]]
) -> None:
    """Upsert `counts_of` ((time, endpoint, backend) -> counts) into `table`, summing."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[key, "endpoint", "backend"],
        set_={c: table.c[c] + stmt.excluded[c] for c in COUNT_COLUMNS},
    )
    rows = [
        {key: t, "endpoint": e, "backend": b, **dict(zip(COUNT_COLUMNS, c, strict=True))}
        for (t, e, b), c in sorted(counts_of.items())  # one lock order in every worker
    ]
    await conn.execute(stmt, rows)


class _Prometheus:
    """The gateway's request metrics, registered in the registry it is given (never global)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "gateway_requests_total",
            "Requests by endpoint and backend",
            ["endpoint", "backend", "status_class"],
            registry=registry,
        )
        self.errors = Counter(
            "gateway_errors_total",
            "5xx responses and exceptions",
            ["endpoint", "backend"],
            registry=registry,
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "Request latency",
            ["endpoint", "backend"],
            buckets=[b / 1000 for b in BUCKETS_MS[:-1]],
            registry=registry,
        )
        # labels() costs a few microseconds per call; the label sets are few, keep them.
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def observe(
        self, endpoint: str, backend: str, status: int, latency_ms: float, is_error: bool
    ) -> None:
        key = (endpoint, backend, status // 100)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(endpoint, backend, f"{status // 100}xx"),
                self.errors.labels(endpoint, backend),
                self.latency.labels(endpoint, backend),
            )
        requests, errors, latency = children
        requests.inc()
        if is_error:
            errors.inc()
        latency.observe(latency_ms / 1000)


def render_prometheus(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The /metrics body: every worker's metrics in multiprocess mode, else `registry`'s."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged), CONTENT_TYPE_LATEST
    return generate_latest(registry), CONTENT_TYPE_LATEST
