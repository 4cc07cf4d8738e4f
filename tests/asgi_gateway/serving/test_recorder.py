"""/metrics and the per-minute (and per-second) stats after known traffic, across two workers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from asgi_gateway.control.database import ensure_schema
from asgi_gateway.control.stats import Totals
from asgi_gateway.serving.recorder import Recorder
from asgi_gateway.tables import (
    BUCKETS_MS,
    COUNT_COLUMNS,
    RECENT_KEEP_S,
    recent_events_table,
    recent_stats_table,
    stats_table,
)
from shared.config import Settings
from shared.db import engine_for_url
from tests.conftest import Person, ServerProcess

FLAGS = """\
version: 1
routes:
  appointments.list: {mode: async}
  calendars.list: {mode: legacy}
"""


def counts(text: str) -> dict[tuple[str, str, str], float]:
    found = {}
    pattern = re.compile(
        r'^gateway_requests_total\{backend="(\w+)",endpoint="([\w.]+)",'
        r'status_class="(\w+)"\} ([\d.e+]+)$',
        re.M,
    )
    for backend, endpoint, status_class, value in pattern.findall(text):
        found[(endpoint, backend, status_class)] = float(value)
    return found


def test_metrics_count_every_request_exactly_across_two_workers(
    environ: dict[str, str],
    tmp_path: Path,
    spawn: Callable[..., ServerProcess],
    alice: Person,
) -> None:
    Path(environ["AA_FLAGS_FILE"]).write_text(FLAGS)
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    server = spawn({**environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, workers=2)
    paths = {
        ("appointments.list", "async", "2xx"): "/api/appointments",
        ("calendars.list", "legacy", "2xx"): "/api/calendars",
        ("appointments.get", "legacy", "4xx"): "/api/appointments/999999",
    }
    expected = dict.fromkeys(paths, 0)

    def counter_pids() -> set[str]:
        return {p.stem.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}

    # A fresh connection per request lets the kernel hand requests to both workers; keep
    # sending until both have written counters (bounded), counting what was sent.
    for round_ in range(40):
        for key, path in paths.items():
            for _ in range(3 + round_ % 4):
                response = httpx.get(server.url + path, headers=alice.headers, timeout=10)
                assert response.status_code in (200, 404)
                expected[key] += 1
        if round_ >= 4 and len(counter_pids()) >= 2:
            break
    deadline = time.monotonic() + 15
    while True:
        scrape = httpx.get(server.url + "/metrics", timeout=10)
        seen = counts(scrape.text)
        if all(seen.get(k) == v for k, v in expected.items()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert scrape.headers["content-type"].startswith("text/plain")
    for key, value in expected.items():
        assert seen.get(key) == value, (key, seen)
    assert len(counter_pids()) == 2, sorted(metrics_dir.iterdir())


def test_stats_are_merged_into_the_database_by_minute(
    environ: dict[str, str], spawn: Callable[..., ServerProcess], admin: Person
) -> None:
    Path(environ["AA_FLAGS_FILE"]).write_text(FLAGS)
    server = spawn(environ, workers=2)
    for _ in range(30):
        assert (
            httpx.get(
                server.url + "/api/appointments", headers=admin.headers, timeout=10
            ).status_code
            == 200
        )
    deadline = time.monotonic() + 15
    while True:
        board = httpx.get(
            server.url + "/_rollout/endpoints/appointments.list", headers=admin.headers, timeout=10
        ).text
        match = re.search(r"<tr><td>async</td><td>(\d+)</td>", board)
        if (match and int(match.group(1)) == 30) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert match is not None and int(match.group(1)) == 30


def test_recorder_buckets_latency_and_status_classes() -> None:
    recorder = Recorder(CollectorRegistry())
    recorder.record("a.b", "/x", "GET", "async", 200, 3.0, False, False)
    recorder.record("a.b", "/x", "GET", "async", 503, 700.0, False, False)
    recorder.record("a.b", "/x", "GET", "async", 200, 40.0, True, True)
    recorder.record(None, "/nowhere", "GET", "legacy", 404, 1.0, False, False)
    assert recorder.drain() == 4
    (counts,) = recorder.pending.values()  # the unresolvable legacy sample is dropped
    requests, s2xx, _, _, s5xx, errors, disconnects, _, *buckets = counts
    assert (requests, s2xx, s5xx, errors, disconnects) == (3, 2, 1, 2, 1)
    assert buckets[BUCKETS_MS.index(5)] == 1 and buckets[BUCKETS_MS.index(1000)] == 1


def test_percentiles_come_from_the_bucket_bounds() -> None:
    totals = Totals(requests=100, buckets=(50, 30, 10, 10, 0, 0, 0, 0, 0, 0))
    assert totals.percentile_ms(0.5) == 5
    assert totals.percentile_ms(0.95) == 50
    assert Totals().percentile_ms(0.5) is None


async def test_stats_older_than_the_retention_period_are_pruned(settings: Settings) -> None:
    engine = engine_for_url(settings.database_url)
    recorder = Recorder(CollectorRegistry(), retention_days=7)
    try:
        await ensure_schema(engine)
        await recorder.start(engine)
        now = time.time()
        for age_days in (0, 6, 8, 30):
            recorder.pending[(int(now - age_days * 86400), "a.b", "async")] = [1] + [0] * (
                len(COUNT_COLUMNS) - 1
            )
        await recorder.persist()
        assert await recorder.prune(now) == 2
        async with engine.connect() as conn:
            left = (await conn.execute(select(stats_table.c.minute))).scalars().all()
        assert sorted(now // 60 - m for m in left) == sorted(
            [now // 60 - int((now - d * 86400) // 60) for d in (0, 6)]
        )
    finally:
        await recorder.stop()
        await engine.dispose()


async def test_counts_are_kept_per_second_beside_the_minutes_and_pruned_sooner(
    settings: Settings,
) -> None:
    engine = engine_for_url(settings.database_url)
    recorder = Recorder(CollectorRegistry())
    try:
        await ensure_schema(engine)
        await recorder.start(engine)
        now = time.time()
        minute_start = int(now // 60) * 60
        for second, n in ((minute_start, 2), (minute_start + 1, 3), (minute_start - 3600, 1)):
            recorder.pending[(second, "a.b", "async")] = [n, n] + [0] * (len(COUNT_COLUMNS) - 2)
        recorder.findings.events[(minute_start + 1, "a.b", "shadow_mismatch")] = 4
        await recorder.persist()
        async with engine.connect() as conn:
            seconds = (
                await conn.execute(
                    select(recent_stats_table.c.second, recent_stats_table.c.requests).order_by(
                        recent_stats_table.c.second
                    )
                )
            ).all()
            minutes = (
                await conn.execute(
                    select(stats_table.c.minute, stats_table.c.requests).order_by(
                        stats_table.c.minute
                    )
                )
            ).all()
            events = (await conn.execute(select(recent_events_table.c.second))).scalars().all()
        assert [tuple(r) for r in seconds] == [
            (minute_start - 3600, 1),
            (minute_start, 2),
            (minute_start + 1, 3),
        ]
        assert [tuple(r) for r in minutes] == [
            (minute_start // 60 - 60, 1),
            (minute_start // 60, 5),
        ]
        assert events == [minute_start + 1]
        # The per-second rows go after RECENT_KEEP_S; the minutes stay for the retention.
        assert await recorder.prune_recent(now) == 1
        assert await recorder.prune_recent(minute_start + RECENT_KEEP_S + 3600) == 3
        async with engine.connect() as conn:
            assert (await conn.execute(select(stats_table.c.minute))).scalars().all()
    finally:
        await recorder.stop()
        await engine.dispose()
