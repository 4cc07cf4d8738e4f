"""Per endpoint x backend request metrics: recorded off the hot path, exported two ways.

A request only appends one tuple to a deque (atomic under the GIL: no lock, no I/O). A
background task on the server loop drains it about once a second into

* Prometheus metrics (prometheus_client; multiprocess mode when PROMETHEUS_MULTIPROC_DIR is
  set, so `/metrics` sums every worker), and
* per-minute buckets in the database (`rollout_stats`), merged by upsert across all workers
  and machines and pruned after the retention period: the dashboard's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

_log = logging.getLogger(__name__)

# Upper bounds (ms) of the latency buckets kept per minute; the last is +Inf.
BUCKETS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, float("inf"))
_BUCKET_COLUMNS = tuple(f"le_{int(b)}" if b != float("inf") else "le_inf" for b in BUCKETS_MS)
_COUNT_COLUMNS = (
    "requests",
    "s2xx",
    "s3xx",
    "s4xx",
    "s5xx",
    "errors",
    "disconnects",
    "latency_ms_sum",
    *_BUCKET_COLUMNS,
)

metadata = MetaData()
stats_table = Table(
    "rollout_stats",
    metadata,
    Column("minute", Integer, primary_key=True),  # Unix time // 60
    Column("endpoint", String(200), primary_key=True),
    Column("backend", String(8), primary_key=True),
    *(Column(name, Integer, nullable=False, default=0) for name in _COUNT_COLUMNS),
    # Per-endpoint reads (endpoint pages, the retirement hint) would scan every endpoint's
    # rows through the (minute, ...) key; this one also covers the week-long hint query.
    Index("ix_rollout_stats_endpoint", "endpoint", "backend", "minute", "requests", "errors"),
)

# endpoint (None: resolve from path and method later), path, method, backend, status, ms,
# error, client disconnected
Sample = tuple["str | None", str, str, str, int, float, bool, bool]
Resolve = Callable[[str, str], "str | None"]


@dataclass(slots=True)
class _Bucket:
    counts: list[int] = field(default_factory=lambda: [0] * len(_COUNT_COLUMNS))


def _class_index(status: int) -> int:
    return {2: 1, 3: 2, 4: 3, 5: 4}.get(status // 100, 4)


class Recorder:
    """One per worker: the request path calls `record`; `run` drains and persists."""

    def __init__(
        self,
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
        self.pending: dict[tuple[int, str, str], _Bucket] = {}
        self.engine: AsyncEngine | None = None
        self._prom: _Prometheus | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_prune = time.monotonic() - 3600  # first prune on the first persist

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
        self.engine = engine
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all, checkfirst=True)
        self._prom = _Prometheus()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="metrics")

    async def stop(self) -> None:
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
            except Exception:  # a bad flush must not stop metrics for good
                _log.exception("metrics flush failed")

    def drain(self) -> int:
        """Move buffered samples into Prometheus and the per-minute buckets; returns how many."""
        samples = self.samples
        minute = int(time.time() // 60)
        prom = self._prom
        drained = 0
        resolve = self.resolve
        while samples:
            (endpoint, path, method, backend, status, latency_ms, error, disconnected) = (
                samples.popleft()
            )
            drained += 1
            if endpoint is None:
                endpoint = resolve(path, method) if resolve is not None else None
                if endpoint is None:
                    continue  # no such endpoint (a 404): not an endpoint's traffic
            bucket = self.pending.get((minute, endpoint, backend))
            if bucket is None:
                bucket = self.pending[(minute, endpoint, backend)] = _Bucket()
            counts = bucket.counts
            counts[0] += 1
            counts[_class_index(status)] += 1
            counts[5] += error or status >= 500
            counts[6] += disconnected
            counts[7] += round(latency_ms)
            for i, bound in enumerate(BUCKETS_MS):
                if latency_ms <= bound:
                    counts[8 + i] += 1
                    break
            if prom is not None:
                prom.observe(endpoint, backend, status, latency_ms, error or status >= 500)
        return drained

    async def persist(self) -> None:
        """Add the pending per-minute counts into rollout_stats (an upsert that sums)."""
        if not self.pending or self.engine is None:
            return
        pending, self.pending = self.pending, {}
        rows = [
            {
                "minute": m,
                "endpoint": e,
                "backend": b,
                **dict(zip(_COUNT_COLUMNS, bucket.counts, strict=True)),
            }
            for (m, e, b), bucket in pending.items()
        ]
        try:
            async with self.engine.begin() as conn:
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                stmt = dialect.insert(stats_table)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["minute", "endpoint", "backend"],
                    set_={c: stats_table.c[c] + stmt.excluded[c] for c in _COUNT_COLUMNS},
                )
                await conn.execute(stmt, rows)
        except (SQLAlchemyError, OSError) as exc:
            # Keep the counts for the next try rather than lose them.
            for key, bucket in pending.items():
                mine = self.pending.setdefault(key, _Bucket())
                mine.counts = [a + b for a, b in zip(mine.counts, bucket.counts, strict=True)]
            _log.warning("could not persist metrics (will retry): %s", exc)

    async def _prune_hourly(self) -> None:
        if self.engine is None or time.monotonic() - self._last_prune < 3600:
            return
        self._last_prune = time.monotonic()
        await self.prune()

    async def prune(self, now_s: float | None = None) -> int:
        """Delete per-minute rows older than the retention period; returns how many."""
        if self.engine is None:
            return 0
        oldest = int((now_s if now_s is not None else time.time()) // 60)
        oldest -= self.retention_days * 24 * 60
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(stats_table).where(stats_table.c.minute < oldest))
        return int(result.rowcount or 0)


class _Prometheus:
    """The Prometheus side; created lazily so the multiprocess directory is set first."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.requests = Counter(
            "gateway_requests_total",
            "Requests by endpoint and backend",
            ["endpoint", "backend", "status_class"],
        )
        self.errors = Counter(
            "gateway_errors_total", "5xx responses and exceptions", ["endpoint", "backend"]
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "Request latency",
            ["endpoint", "backend"],
            buckets=[b / 1000 for b in BUCKETS_MS[:-1]],
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


def render_prometheus() -> tuple[bytes, str]:
    """The /metrics body: every worker's metrics in multiprocess mode, else this process's."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# -- reading history (dashboard) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Totals:
    """Summed counts of one endpoint x backend over a period."""

    requests: int = 0
    errors: int = 0
    disconnects: int = 0
    latency_ms_sum: int = 0
    s5xx: int = 0
    buckets: tuple[int, ...] = (0,) * len(BUCKETS_MS)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def percentile_ms(self, q: float) -> float | None:
        """Upper bound of the bucket holding the q-quantile (None without traffic)."""
        if not self.requests:
            return None
        rank = q * self.requests
        seen = 0
        for bound, count in zip(BUCKETS_MS, self.buckets, strict=True):
            seen += count
            if seen >= rank:
                return bound if bound != float("inf") else BUCKETS_MS[-2] * 2
        return None


async def totals(
    engine: AsyncEngine, since_minute: int, endpoints: Iterable[str] | None = None
) -> dict[tuple[str, str], Totals]:
    """(endpoint, backend) -> Totals since `since_minute`, all workers and machines merged."""
    cols = [
        func.sum(stats_table.c[c])
        for c in ("requests", "errors", "disconnects", "latency_ms_sum", "s5xx", *_BUCKET_COLUMNS)
    ]
    query = (
        select(stats_table.c.endpoint, stats_table.c.backend, *cols)
        .where(stats_table.c.minute >= since_minute)
        .group_by(stats_table.c.endpoint, stats_table.c.backend)
    )
    if endpoints is not None:
        query = query.where(stats_table.c.endpoint.in_(list(endpoints)))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    result = {}
    for endpoint, backend, *values in rows:
        ints = [int(v or 0) for v in values]
        result[(endpoint, backend)] = Totals(*ints[:5], buckets=tuple(ints[5:]))
    return result


async def request_counts(
    engine: AsyncEngine, since_minute: int, endpoints: Iterable[str]
) -> dict[tuple[str, str], tuple[int, int]]:
    """(endpoint, backend) -> (requests, errors) since `since_minute`: a covering-index read."""
    query = (
        select(
            stats_table.c.endpoint,
            stats_table.c.backend,
            func.sum(stats_table.c.requests),
            func.sum(stats_table.c.errors),
        )
        .where(stats_table.c.endpoint.in_(list(endpoints)), stats_table.c.minute >= since_minute)
        .group_by(stats_table.c.endpoint, stats_table.c.backend)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {(e, b): (int(r or 0), int(x or 0)) for e, b, r, x in rows}


async def series(
    engine: AsyncEngine,
    since_minute: int,
    step_minutes: int,
    endpoints: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Per time step: requests and errors per backend (for the charts)."""
    step = (
        (stats_table.c.minute / step_minutes).cast(Integer) * step_minutes
        if step_minutes > 1
        else stats_table.c.minute
    )
    query = (
        select(
            step.label("t"),
            stats_table.c.backend,
            func.sum(stats_table.c.requests),
            func.sum(stats_table.c.errors),
        )
        .where(stats_table.c.minute >= since_minute)
        .group_by("t", stats_table.c.backend)
        .order_by("t")
    )
    if endpoints is not None:
        query = query.where(stats_table.c.endpoint.in_(list(endpoints)))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    points: dict[int, dict[str, Any]] = {}
    for t, backend, requests, errors in rows:
        point = points.setdefault(int(t), {"minute": int(t), "legacy": [0, 0], "async": [0, 0]})
        point[backend] = [int(requests or 0), int(errors or 0)]
    return [points[t] for t in sorted(points)]
