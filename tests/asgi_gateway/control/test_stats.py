"""Window totals and 15-minute chart points read from the per-quarter rows (plus the minutes
before the first whole quarter of an hour) are exactly the sums of the per-minute rows, on
SQLite and PostgreSQL: after many persists, after an upgrade from a database without
quarters, and after pruning."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Iterable

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.control import stats
from asgi_gateway.control.database import ensure_schema
from asgi_gateway.serving.recorder import Recorder
from asgi_gateway.tables import (
    BUCKET_COLUMNS,
    COUNT_COLUMNS,
    quarter_stats_table,
    stats_table,
)
from shared.config import Settings, load_settings
from shared.db import engine_for_url

ENDPOINTS = ("res.list", "res.get", "other.create")
TOTAL_COLUMNS = ("requests", "errors", "disconnects", "latency_ms_sum", "s5xx")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, settings: Settings) -> str:
    if request.param == "sqlite":
        return settings.database_url
    environ = request.getfixturevalue("pg_environ")
    return load_settings(environ).database_url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = engine_for_url(database_url)
    await ensure_schema(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def record_traffic(engine: AsyncEngine, now: float, *, persists: int = 4) -> Recorder:
    """Random counts over the last eight days, persisted in several batches (upserts that sum
    into minutes and quarters already written, as a long-running recorder does)."""
    rng = random.Random(13)
    recorder = Recorder(CollectorRegistry(), retention_days=7)
    recorder.engine = engine
    for _ in range(persists):
        for _ in range(600):
            second = int(now) - rng.randint(0, 8 * 86400)
            key = (second, rng.choice(ENDPOINTS), rng.choice(("legacy", "async")))
            counts = recorder.pending.setdefault(key, [0] * len(COUNT_COLUMNS))
            for i in range(len(COUNT_COLUMNS)):
                counts[i] += rng.randint(0, 9)
        # A burst in the current minute, and one in the first minute of the current quarter.
        for second in (int(now), int(now // 900 * 900)):
            counts = recorder.pending.setdefault(
                (second, "res.get", "async"), [0] * len(COUNT_COLUMNS)
            )
            counts[0] += 5
        # And one in the first minute kept after pruning.
        first_kept = int(now // 60 - 7 * 1440) // 15 * 900
        recorder.pending.setdefault((first_kept, "res.list", "legacy"), [1] * len(COUNT_COLUMNS))
        await recorder.persist()
    return recorder


async def from_minutes(
    engine: AsyncEngine, since_minute: int, endpoints: Iterable[str] | None, columns: Iterable[str]
) -> dict[tuple[str, str], tuple[int, ...]]:
    """The plain sums of the per-minute rows since `since_minute`: what the board used to read."""
    names = list(columns)
    query = (
        select(
            stats_table.c.endpoint,
            stats_table.c.backend,
            *(func.sum(stats_table.c[c]) for c in names),
        )
        .where(stats_table.c.minute >= since_minute)
        .group_by(stats_table.c.endpoint, stats_table.c.backend)
    )
    if endpoints is not None:
        query = query.where(stats_table.c.endpoint.in_(list(endpoints)))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {(e, b): tuple(int(v) for v in values) for e, b, *values in rows}


async def points_from_minutes(
    engine: AsyncEngine, since_minute: int, step_minutes: int, endpoints: Iterable[str] | None
) -> list[dict[str, object]]:
    """Chart points summed from the per-minute rows alone, in `series`' shape."""
    query = select(
        stats_table.c.minute,
        stats_table.c.backend,
        stats_table.c.requests,
        stats_table.c.errors,
    ).where(stats_table.c.minute >= since_minute)
    if endpoints is not None:
        query = query.where(stats_table.c.endpoint.in_(list(endpoints)))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    points: dict[int, dict[str, object]] = {}
    for minute, backend, requests, errors in rows:
        t = minute // step_minutes * step_minutes
        point = points.setdefault(t, {"minute": t, "legacy": [0, 0], "async": [0, 0]})
        sums = point[backend]
        assert isinstance(sums, list)
        sums[0] += requests
        sums[1] += errors
    return [points[t] for t in sorted(points)]


def windows(now: float) -> list[int]:
    """Starts of the windows the dashboard and the guard read, and awkward ones around
    quarters of an hour."""
    now_minute = int(now // 60)
    quarter_start = now_minute // 15 * 15
    return [
        now_minute - 60,  # the board's hour
        now_minute - 1440,  # the endpoint page's day
        now_minute - 7 * 1440,  # the retirement hint's week
        now_minute - 6 * 1440 - 17,
        quarter_start,  # exactly on a quarter
        quarter_start - 15,
        quarter_start - 14,
        quarter_start + 1,
        now_minute,  # only the current minute
        now_minute + 5,  # nothing yet
        0,  # everything
    ]


async def assert_windows_match_the_minutes(engine: AsyncEngine, now: float) -> None:
    for since in windows(now):
        for endpoints in (None, ["res.get"], ["res.list", "other.create"], []):
            found = await stats.totals(engine, since, endpoints)
            expected = await from_minutes(
                engine, since, endpoints, (*TOTAL_COLUMNS, *BUCKET_COLUMNS)
            )
            assert {
                key: (t.requests, t.errors, t.disconnects, t.latency_ms_sum, t.s5xx, *t.buckets)
                for key, t in found.items()
            } == expected, (since, endpoints)
            for step in (15, 30):  # the endpoint page's day chart, and a coarser one
                assert await stats.series(engine, since, step, endpoints) == (
                    await points_from_minutes(engine, since, step, endpoints)
                ), (since, step, endpoints)
            if endpoints is not None:
                counts = await stats.request_counts(engine, since, endpoints)
                assert counts == await from_minutes(
                    engine, since, endpoints, ("requests", "errors")
                ), (since, endpoints)


async def test_windows_read_from_quarters_equal_the_sums_of_the_minutes(
    engine: AsyncEngine,
) -> None:
    now = time.time()
    await record_traffic(engine, now)
    async with engine.connect() as conn:
        quarters = await conn.scalar(select(func.count()).select_from(quarter_stats_table))
        minutes = await conn.scalar(select(func.count()).select_from(stats_table))
    assert 0 < quarters < minutes  # a week is read from far fewer rows
    await assert_windows_match_the_minutes(engine, now)


async def test_upgrading_a_database_without_quarters_fills_them_from_its_minutes(
    engine: AsyncEngine,
) -> None:
    now = time.time()
    await record_traffic(engine, now)
    async with engine.begin() as conn:
        # What a database of the previous version holds: minutes, no per-quarter table.
        await conn.execute(text(f"DROP TABLE {quarter_stats_table.name}"))
    await ensure_schema(engine)
    await assert_windows_match_the_minutes(engine, now)
    await ensure_schema(engine)  # a second start adds nothing twice
    await assert_windows_match_the_minutes(engine, now)


async def test_pruning_keeps_every_window_inside_the_retention_exact(
    engine: AsyncEngine,
) -> None:
    now = time.time()
    recorder = await record_traffic(engine, now)
    assert await recorder.prune(now) > 0
    async with engine.connect() as conn:
        oldest_quarter = await conn.scalar(select(func.min(quarter_stats_table.c.quarter)))
        oldest_minute = await conn.scalar(select(func.min(stats_table.c.minute)))
    # Pruned in whole quarters: the minutes and the quarters span the same time.
    assert oldest_quarter == oldest_minute // 15 == int(now // 60 - 7 * 1440) // 15
    assert oldest_minute % 15 == 0
    await assert_windows_match_the_minutes(engine, now)


async def test_mismatch_points_hold_the_minutes_of_their_step(engine: AsyncEngine) -> None:
    """Each 15-minute point sums its own minutes (PostgreSQL once rounded them into the next)."""
    now = time.time()
    recorder = Recorder(CollectorRegistry())
    recorder.engine = engine
    first = int(now // 900 * 900) - 3 * 900  # three whole quarters ago
    for offset_minutes, kind in ((0, "shadow_match"), (7, "shadow_mismatch"), (14, "shadow_noise")):
        recorder.findings.events[(first + offset_minutes * 60, "res.get", kind)] = 2
    recorder.findings.events[(first + 15 * 60, "res.get", "shadow_match")] = 1
    await recorder.persist()
    points = await stats.mismatch_series(engine, first // 60, 15, "res.get")
    assert points == [(first // 60, 6, 2), (first // 60 + 15, 1, 0)]
