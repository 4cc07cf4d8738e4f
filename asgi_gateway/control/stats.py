"""Reading the merged per-minute request stats: totals, latency percentiles and chart series.

The recorder (serving side) writes `rollout_stats`; the dashboard, the admin API and the
guard read it here, all workers and machines merged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.tables import BUCKET_COLUMNS, BUCKETS_MS, stats_table

_TOTAL_COLUMNS = ("requests", "errors", "disconnects", "latency_ms_sum", "s5xx", *BUCKET_COLUMNS)


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
    query = (
        select(
            stats_table.c.endpoint,
            stats_table.c.backend,
            *(func.sum(stats_table.c[c]) for c in _TOTAL_COLUMNS),
        )
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
