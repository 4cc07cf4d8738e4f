"""Reading what the recorder wrote: request totals, latency percentiles, chart series,
shadow results, mismatches, noise and fallbacks, and the figures of one window for the guard.

The recorder (serving side) writes `rollout_stats`, `rollout_events`, `rollout_mismatches` and
`rollout_noise`; the dashboard, the admin API, the CLI and the guard read them here, all
workers and machines merged.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from sqlalchemy import ColumnElement, Select, Subquery, bindparam, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from asgi_gateway.control.analysis import Figures, Side
from asgi_gateway.serving.decision import Backend
from asgi_gateway.serving.findings import Mismatch, mismatch_of
from asgi_gateway.tables import (
    BUCKET_COLUMNS,
    BUCKETS_MS,
    QUARTER_MINUTES,
    RECENT_KEEP_S,
    events_table,
    mismatches_table,
    noise_table,
    quarter_stats_table,
    recent_events_table,
    recent_stats_table,
    stats_table,
)

# An engine, or a connection already open: a page that reads many figures runs them all on
# one connection (one pool checkout and one reset, and one view of the data).
Database = AsyncEngine | AsyncConnection


@contextlib.asynccontextmanager
async def _connection(database: Database) -> AsyncIterator[AsyncConnection]:
    if isinstance(database, AsyncConnection):
        yield database
    else:
        async with database.connect() as conn:
            yield conn


_TOTAL_COLUMNS = ("requests", "errors", "disconnects", "latency_ms_sum", "s5xx", *BUCKET_COLUMNS)
# Past any minute a row can hold (the columns are 32-bit on PostgreSQL).
_LAST_MINUTE = 2**31 - 1


def _step(minute: ColumnElement[int], step_minutes: int) -> ColumnElement[int]:
    """The first minute of the step holding `minute`.

    Integer division on both databases; the former `CAST(minute / 15.0 AS INTEGER)` rounded
    on PostgreSQL, moving the later half of each step's minutes into the next point.
    """
    return (minute // step_minutes) * step_minutes


def _since(column: ColumnElement[int], since_minute: Any) -> ColumnElement[bool]:
    """`column >= since_minute`, written as a closed range.

    The upper bound excludes no row. It tells SQLite's planner (which has no statistics
    unless ANALYZE ran) that this is a narrow range of the time key: with only a lower
    bound it guessed a quarter of the table and scanned the endpoint index in full to save
    a sort, 250 ms instead of 10 ms for the last hour of a week of 50 endpoints.
    """
    return column.between(since_minute, _LAST_MINUTE)


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
    engine: Database, since_minute: int, endpoints: Iterable[str] | None = None
) -> dict[tuple[str, str], Totals]:
    """(endpoint, backend) -> Totals since `since_minute`, all workers and machines merged."""
    query = _totals_query(_TOTAL_COLUMNS, endpoints is not None)
    async with _connection(engine) as conn:
        found = (await conn.execute(query, _window(since_minute, endpoints))).all()
    result = {}
    for endpoint, backend, *values in found:
        ints = [int(v or 0) for v in values]
        result[(endpoint, backend)] = Totals(*ints[:5], buckets=tuple(ints[5:]))
    return result


async def request_counts(
    engine: Database, since_minute: int, endpoints: Iterable[str]
) -> dict[tuple[str, str], tuple[int, int]]:
    """(endpoint, backend) -> (requests, errors) since `since_minute`."""
    query = _totals_query(("requests", "errors"), True)
    async with _connection(engine) as conn:
        found = (await conn.execute(query, _window(since_minute, endpoints))).all()
    return {(e, b): (int(r or 0), int(x or 0)) for e, b, r, x in found}


def _window(since_minute: int, endpoints: Iterable[str] | None) -> dict[str, Any]:
    """The parameters of `_since_summed`'s statement for one window."""
    first_quarter = -(-since_minute // QUARTER_MINUTES)
    params: dict[str, Any] = {
        "since": since_minute,
        "edge": first_quarter * QUARTER_MINUTES - 1,
        "first_quarter": first_quarter,
    }
    if endpoints is not None:
        params["names"] = list(endpoints)
    return params


@functools.cache
def _totals_query(columns: tuple[str, ...], by_endpoint: bool) -> Select[Any]:
    rows = _since_summed(columns, by_endpoint, with_minute=False)
    return select(
        rows.c.endpoint, rows.c.backend, *(func.sum(rows.c[c]) for c in columns)
    ).group_by(rows.c.endpoint, rows.c.backend)


def _since_summed(columns: tuple[str, ...], by_endpoint: bool, *, with_minute: bool) -> Subquery:
    """Count rows covering every minute from `since` on (parameters from `_window`), each
    minute exactly once.

    The minutes before the first whole quarter of an hour come from the per-minute rows, the
    rest from the per-quarter ones (the recorder writes both in one transaction): a week of
    one endpoint is 672 rows, not 10,080. `with_minute` adds each row's first minute.
    Statements are built once per shape and take the window as parameters.
    """
    minute, quarter = stats_table.c.minute, quarter_stats_table.c.quarter
    minutes = select(
        stats_table.c.endpoint,
        stats_table.c.backend,
        *([minute] if with_minute else []),
        *(stats_table.c[c] for c in columns),
    ).where(minute.between(bindparam("since"), bindparam("edge")))
    quarters = select(
        quarter_stats_table.c.endpoint,
        quarter_stats_table.c.backend,
        *([(quarter * QUARTER_MINUTES).label("minute")] if with_minute else []),
        *(quarter_stats_table.c[c] for c in columns),
    ).where(quarter.between(bindparam("first_quarter"), _LAST_MINUTE))
    if by_endpoint:
        names = bindparam("names", expanding=True)
        # Naming both backends (the only two the recorder writes) lets the per-endpoint
        # indexes (endpoint, backend, time) seek to the window instead of reading the
        # endpoint's whole week.
        backends = get_args(Backend)
        minutes = minutes.where(
            stats_table.c.endpoint.in_(names), stats_table.c.backend.in_(backends)
        )
        quarters = quarters.where(
            quarter_stats_table.c.endpoint.in_(names), quarter_stats_table.c.backend.in_(backends)
        )
    return union_all(minutes, quarters).subquery("counts")


async def series(
    engine: Database,
    since_minute: int,
    step_minutes: int,
    endpoints: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Per time step: requests and errors per backend (for the charts)."""
    query = _series_query(step_minutes, endpoints is not None)
    async with _connection(engine) as conn:
        found = (await conn.execute(query, _window(since_minute, endpoints))).all()
    points: dict[int, dict[str, Any]] = {}
    for t, backend, requests, errors in found:
        point = points.setdefault(int(t), {"minute": int(t), "legacy": [0, 0], "async": [0, 0]})
        point[backend] = [int(requests or 0), int(errors or 0)]
    return [points[t] for t in sorted(points)]


@functools.cache
def _series_query(step_minutes: int, by_endpoint: bool) -> Select[Any]:
    rows: Any
    if step_minutes % QUARTER_MINUTES == 0:
        # Steps of whole quarters: the quarters' rows are the points (or sum into them).
        rows = _since_summed(("requests", "errors"), by_endpoint, with_minute=True)
        where = []
    else:
        rows = stats_table
        where = [_since(stats_table.c.minute, bindparam("since"))]
        if by_endpoint:
            where.append(stats_table.c.endpoint.in_(bindparam("names", expanding=True)))
            where.append(stats_table.c.backend.in_(get_args(Backend)))  # see _since_summed
    step = _step(rows.c.minute, step_minutes) if step_minutes > 1 else rows.c.minute
    return (
        select(step.label("t"), rows.c.backend, func.sum(rows.c.requests), func.sum(rows.c.errors))
        .where(*where)
        .group_by("t", rows.c.backend)
        .order_by("t")
    )


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
    engine: Database, since_minute: int, endpoints: Iterable[str] | None = None
) -> dict[str, ShadowSummary]:
    """endpoint -> its shadow results and fallbacks since `since_minute`."""
    query = (
        select(events_table.c.endpoint, events_table.c.kind, func.sum(events_table.c["count"]))
        .where(_since(events_table.c.minute, since_minute))
        .group_by(events_table.c.endpoint, events_table.c.kind)
    )
    if endpoints is not None:
        query = query.where(events_table.c.endpoint.in_(list(endpoints)))
    async with _connection(engine) as conn:
        rows = (await conn.execute(query)).all()
    counts: dict[str, dict[str, int]] = {}
    for endpoint, kind, count in rows:
        if kind in _EVENT_FIELDS:
            counts.setdefault(endpoint, {})[_EVENT_FIELDS[kind]] = int(count or 0)
    return {endpoint: ShadowSummary(**values) for endpoint, values in counts.items()}


async def recent_mismatches(
    engine: Database, endpoint: str, since_minute: int, *, limit: int = 50
) -> list[Mismatch]:
    """The newest mismatch records of `endpoint` since `since_minute`, newest first."""
    query = (
        select(mismatches_table)
        .where(mismatches_table.c.endpoint == endpoint, mismatches_table.c.minute >= since_minute)
        .order_by(mismatches_table.c.id.desc())
        .limit(limit)
    )
    async with _connection(engine) as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [mismatch_of(row) for row in rows]


async def noise_paths(engine: Database, endpoint: str) -> list[str]:
    """The JSON paths that differ between two legacy answers of `endpoint` (noise)."""
    query = (
        select(noise_table.c.path)
        .where(noise_table.c.endpoint == endpoint)
        .order_by(noise_table.c.path)
    )
    async with _connection(engine) as conn:
        return list((await conn.execute(query)).scalars())


async def mismatch_series(
    engine: Database, since_minute: int, step_minutes: int, endpoint: str
) -> list[tuple[int, int, int]]:
    """Per time step: (minute, compared, mismatched) of one endpoint's shadow traffic."""
    step = _step(events_table.c.minute, step_minutes)
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
    async with _connection(engine) as conn:
        rows = (await conn.execute(query)).all()
    points: dict[int, list[int]] = {}
    for t, kind, count in rows:
        point = points.setdefault(int(t), [0, 0])
        point[0] += int(count or 0)
        if kind == "shadow_mismatch":
            point[1] += int(count or 0)
    return [(t, c, m) for t, (c, m) in sorted(points.items())]


async def shadow_report(engine: Database, endpoint: str, window_s: float) -> dict[str, Any]:
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


@functools.cache
def _window_queries(is_recent: bool, is_bounded: bool) -> tuple[Select[Any], Select[Any]]:
    """The two statements of one span of some endpoints' windows: request counts by endpoint
    and backend, shadow results by endpoint and kind. Built once: the guard runs them at every
    tick, for all the endpoints whose windows start at the same second at once."""
    stats, kinds, key = (
        (recent_stats_table, recent_events_table, "second")
        if is_recent
        else (stats_table, events_table, "minute")
    )
    names, low, high = bindparam("names", expanding=True), bindparam("low"), bindparam("high")
    query = (
        select(
            stats.c.endpoint,
            stats.c.backend,
            *(func.sum(stats.c[c]) for c in ("requests", "errors", *BUCKET_COLUMNS)),
        )
        .where(stats.c.endpoint.in_(names), stats.c[key] >= low)
        .group_by(stats.c.endpoint, stats.c.backend)
    )
    counted = (
        select(kinds.c.endpoint, kinds.c.kind, func.sum(kinds.c["count"]))
        .where(kinds.c.endpoint.in_(names), kinds.c[key] >= low, kinds.c.kind.in_(_WINDOW_EVENTS))
        .group_by(kinds.c.endpoint, kinds.c.kind)
    )
    if is_bounded:
        query = query.where(stats.c[key] < high)
        counted = counted.where(kinds.c[key] < high)
    return query, counted


async def window_figures(
    engine: Database, endpoint: str, since_s: float, now_s: float | None = None
) -> Figures:
    """`endpoint`'s requests and shadow results from `since_s` (Unix time) until now.

    The last RECENT_KEEP_S come from the per-second rows, so a window may start at any second
    (at a flip); older parts of a long window come from whole minutes of the per-minute rows.
    """
    return (await windows_figures(engine, {endpoint: since_s}, now_s))[endpoint]


async def windows_figures(
    engine: Database, since_by_endpoint: Mapping[str, float], now_s: float | None = None
) -> dict[str, Figures]:
    """The figures of many endpoints' windows, each from its own `since_s` until now, as
    `window_figures` gives them one by one, in two statements per distinct span: endpoints
    whose windows start at the same second (the same `window_s`, no flip within it) are read
    together."""
    if not since_by_endpoint:
        return {}
    now_s = time.time() if now_s is None else now_s
    # Per-second rows are kept at least RECENT_KEEP_S; from this minute boundary on, use them.
    recent_from = math.ceil((now_s - RECENT_KEEP_S) / 60) * 60
    spans: dict[tuple[bool, int, int | None], list[str]] = {}
    for endpoint, since_s in since_by_endpoint.items():
        start = int(since_s)
        boundary = max(start, recent_from)
        spans.setdefault((True, boundary, None), []).append(endpoint)
        if start < boundary:
            spans.setdefault((False, math.ceil(start / 60), boundary // 60), []).append(endpoint)
    sides: dict[tuple[str, str], list[int]] = {}
    events: dict[tuple[str, str], int] = {}
    async with _connection(engine) as conn:
        for (is_recent, low, high), names in spans.items():
            query, counted = _window_queries(is_recent, high is not None)
            params: dict[str, Any] = {"names": names, "low": low}
            if high is not None:
                params["high"] = high
            for endpoint, backend, *values in (await conn.execute(query, params)).all():
                summed = sides.setdefault((endpoint, backend), [0] * (2 + len(BUCKET_COLUMNS)))
                for i, value in enumerate(values):
                    summed[i] += int(value or 0)
            for endpoint, kind, count in (await conn.execute(counted, params)).all():
                events[(endpoint, kind)] = events.get((endpoint, kind), 0) + int(count or 0)

    def side(endpoint: str, backend: str) -> Side:
        values = sides.get((endpoint, backend))
        if values is None:
            return Side()
        return Side(values[0], values[1], tuple(values[2:]))

    def figures(endpoint: str) -> Figures:
        counts = {kind: events.get((endpoint, kind), 0) for kind in _WINDOW_EVENTS}
        return Figures(
            legacy=side(endpoint, "legacy"),
            twin=side(endpoint, "async"),
            compared=counts["shadow_match"] + counts["shadow_mismatch"] + counts["shadow_noise"],
            mismatched=counts["shadow_mismatch"],
            fallbacks=counts["fallback"],
        )

    return {endpoint: figures(endpoint) for endpoint in since_by_endpoint}
