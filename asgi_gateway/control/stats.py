"""Reading what the recorder wrote: request totals, latency percentiles, chart series,
shadow results, mismatches, noise and fallbacks, and the figures of one window for the guard.

The recorder (serving side) writes `rollout_stats`, `rollout_events`, `rollout_mismatches` and
`rollout_noise`; the dashboard, the admin API, the CLI and the guard read them here, all
workers and machines merged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.control.analysis import Figures, Side
from asgi_gateway.serving.findings import Mismatch, mismatch_of
from asgi_gateway.tables import (
    BUCKET_COLUMNS,
    BUCKETS_MS,
    RECENT_KEEP_S,
    events_table,
    mismatches_table,
    noise_table,
    recent_events_table,
    recent_stats_table,
    stats_table,
)

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


# -- shadow and fallbacks ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShadowSummary:
    """Shadow results of one endpoint over a window, all workers and machines merged."""

    matched: int = 0
    mismatched: int = 0
    noise: int = 0
    errors: int = 0
    timeouts: int = 0
    skipped: int = 0
    fallbacks: int = 0

    @property
    def compared(self) -> int:
        """Requests whose two answers were compared (match, mismatch or noise)."""
        return self.matched + self.mismatched + self.noise

    @property
    def mismatch_rate(self) -> float | None:
        return self.mismatched / self.compared if self.compared else None


_EVENT_FIELDS = {
    "shadow_match": "matched",
    "shadow_mismatch": "mismatched",
    "shadow_noise": "noise",
    "shadow_error": "errors",
    "shadow_timeout": "timeouts",
    "shadow_skipped": "skipped",
    "fallback": "fallbacks",
}


async def shadow_summaries(
    engine: AsyncEngine, since_minute: int, endpoints: Iterable[str] | None = None
) -> dict[str, ShadowSummary]:
    """endpoint -> its shadow results and fallbacks since `since_minute`."""
    query = (
        select(events_table.c.endpoint, events_table.c.kind, func.sum(events_table.c["count"]))
        .where(events_table.c.minute >= since_minute)
        .group_by(events_table.c.endpoint, events_table.c.kind)
    )
    if endpoints is not None:
        query = query.where(events_table.c.endpoint.in_(list(endpoints)))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    counts: dict[str, dict[str, int]] = {}
    for endpoint, kind, count in rows:
        if kind in _EVENT_FIELDS:
            counts.setdefault(endpoint, {})[_EVENT_FIELDS[kind]] = int(count or 0)
    return {endpoint: ShadowSummary(**values) for endpoint, values in counts.items()}


async def recent_mismatches(
    engine: AsyncEngine, endpoint: str, since_minute: int, *, limit: int = 50
) -> list[Mismatch]:
    """The newest mismatch records of `endpoint` since `since_minute`, newest first."""
    query = (
        select(mismatches_table)
        .where(mismatches_table.c.endpoint == endpoint, mismatches_table.c.minute >= since_minute)
        .order_by(mismatches_table.c.id.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [mismatch_of(row) for row in rows]


async def noise_paths(engine: AsyncEngine, endpoint: str) -> list[str]:
    """The JSON paths that differ between two legacy answers of `endpoint` (noise)."""
    query = (
        select(noise_table.c.path)
        .where(noise_table.c.endpoint == endpoint)
        .order_by(noise_table.c.path)
    )
    async with engine.connect() as conn:
        return list((await conn.execute(query)).scalars())


async def mismatch_series(
    engine: AsyncEngine, since_minute: int, step_minutes: int, endpoint: str
) -> list[tuple[int, int, int]]:
    """Per time step: (minute, compared, mismatched) of one endpoint's shadow traffic."""
    step = (events_table.c.minute / step_minutes).cast(Integer) * step_minutes
    query = (
        select(step.label("t"), events_table.c.kind, func.sum(events_table.c["count"]))
        .where(
            events_table.c.endpoint == endpoint,
            events_table.c.minute >= since_minute,
            events_table.c.kind.in_(("shadow_match", "shadow_mismatch", "shadow_noise")),
        )
        .group_by("t", events_table.c.kind)
        .order_by("t")
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    points: dict[int, list[int]] = {}
    for t, kind, count in rows:
        point = points.setdefault(int(t), [0, 0])
        point[0] += int(count or 0)
        if kind == "shadow_mismatch":
            point[1] += int(count or 0)
    return [(t, c, m) for t, (c, m) in sorted(points.items())]


async def shadow_report(engine: AsyncEngine, endpoint: str, window_s: float) -> dict[str, Any]:
    """The shadow summary of `endpoint` over the last `window_s` seconds (API and CLI shape)."""
    since = int((time.time() - window_s) // 60)
    summary = (await shadow_summaries(engine, since, [endpoint])).get(endpoint, ShadowSummary())
    rate = summary.mismatch_rate
    return {
        "endpoint": endpoint,
        "window_s": int(window_s),
        "compared": summary.compared,
        "matched": summary.matched,
        "mismatched": summary.mismatched,
        "errors": summary.errors,
        "timeouts": summary.timeouts,
        "skipped": summary.skipped,
        "mismatch_rate": round(rate, 4) if rate is not None else None,
        "noise": await noise_paths(engine, endpoint),
        "recent": [m.to_dict() for m in await recent_mismatches(engine, endpoint, since)],
    }


# -- one window, for the guard and the rollout engine ----------------------------------------------

_WINDOW_EVENTS = ("shadow_match", "shadow_mismatch", "shadow_noise", "fallback")


async def window_figures(
    engine: AsyncEngine, endpoint: str, since_s: float, now_s: float | None = None
) -> Figures:
    """`endpoint`'s requests and shadow results from `since_s` (Unix time) until now.

    The last RECENT_KEEP_S come from the per-second rows, so a window may start at any second
    (at a flip); older parts of a long window come from whole minutes of the per-minute rows.
    """
    now_s = time.time() if now_s is None else now_s
    start = int(since_s)
    # Per-second rows are kept at least RECENT_KEEP_S; from this minute boundary on, use them.
    boundary = max(start, math.ceil((now_s - RECENT_KEEP_S) / 60) * 60)
    spans = [(recent_stats_table, recent_events_table, "second", boundary, None)]
    if start < boundary:
        first_minute = math.ceil(start / 60)
        spans.append((stats_table, events_table, "minute", first_minute, boundary // 60))
    sides: dict[str, list[int]] = {}
    events: dict[str, int] = {}
    async with engine.connect() as conn:
        for stats, kinds, key, low, high in spans:
            query = (
                select(
                    stats.c.backend,
                    *(func.sum(stats.c[c]) for c in ("requests", "errors", *BUCKET_COLUMNS)),
                )
                .where(stats.c.endpoint == endpoint, stats.c[key] >= low)
                .group_by(stats.c.backend)
            )
            counted = (
                select(kinds.c.kind, func.sum(kinds.c["count"]))
                .where(
                    kinds.c.endpoint == endpoint,
                    kinds.c[key] >= low,
                    kinds.c.kind.in_(_WINDOW_EVENTS),
                )
                .group_by(kinds.c.kind)
            )
            if high is not None:
                query = query.where(stats.c[key] < high)
                counted = counted.where(kinds.c[key] < high)
            for backend, *values in (await conn.execute(query)).all():
                summed = sides.setdefault(backend, [0] * (2 + len(BUCKET_COLUMNS)))
                for i, value in enumerate(values):
                    summed[i] += int(value or 0)
            for kind, count in (await conn.execute(counted)).all():
                events[kind] = events.get(kind, 0) + int(count or 0)

    def side(backend: str) -> Side:
        values = sides.get(backend)
        if values is None:
            return Side()
        return Side(values[0], values[1], tuple(values[2:]))

    compared = sum(events.get(k, 0) for k in ("shadow_match", "shadow_mismatch", "shadow_noise"))
    return Figures(
        legacy=side("legacy"),
        twin=side("async"),
        compared=compared,
        mismatched=events.get("shadow_mismatch", 0),
        fallbacks=events.get("fallback", 0),
    )
