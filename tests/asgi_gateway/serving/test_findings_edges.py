"""Shadow findings in the database: the per-minute cap holds across workers, and a failed
write keeps what it could not save for the next try."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.control.database import ensure_schema, open_engine
from asgi_gateway.serving.findings import Findings, Mismatch
from asgi_gateway.tables import (
    MAX_MISMATCHES_PER_MINUTE,
    events_table,
    mismatches_table,
    noise_table,
)
from shared.config import Settings


def mismatch(endpoint: str, at: datetime, n: int = 0) -> Mismatch:
    return Mismatch(
        endpoint=endpoint,
        at=at,
        method="GET",
        path=f"/items/{n}",
        query="",
        status_legacy=200,
        status_async=200,
        diffs=({"path": "$.name", "legacy": '"a"', "async": '"b"'},),
    )


async def count(engine: AsyncEngine, table: object) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


async def test_the_per_minute_cap_of_kept_mismatches_holds_across_workers(
    database_url: str,
) -> None:
    engine = open_engine(database_url)
    try:
        await ensure_schema(engine)
        at = datetime.now(UTC).replace(second=1)
        workers = [Findings(CollectorRegistry()), Findings(CollectorRegistry())]
        for findings in workers:
            for n in range(MAX_MISMATCHES_PER_MINUTE + 3):
                findings.mismatch(mismatch("item", at, n))
            # Each worker keeps its own share in memory, no more.
            assert len(findings.mismatches) == MAX_MISMATCHES_PER_MINUTE
        for findings in workers:
            async with engine.begin() as conn:
                await findings.persist(conn)
        assert await count(engine, mismatches_table) == MAX_MISMATCHES_PER_MINUTE
    finally:
        await engine.dispose()


async def test_a_failed_write_keeps_events_mismatches_and_noise_for_the_next_try(
    settings: Settings,
) -> None:
    engine = open_engine(settings.database_url)  # a fresh file: no gateway tables yet
    findings = Findings(CollectorRegistry())
    findings.shadow_result("item", "mismatch")
    findings.mismatch(mismatch("item", datetime.now(UTC)))
    findings.learn_noise("item", {"$.generated_at"})
    try:
        # The write fails, and nothing noted is lost.
        with pytest.raises(OperationalError, match="no such table"):
            async with engine.begin() as conn:
                await findings.persist(conn)
        assert sum(findings.events.values()) == 1
        assert len(findings.mismatches) == 1
        assert findings.noise == {("item", "$.generated_at"): 1}
        findings.shadow_result("item", "match")  # noted meanwhile

        await ensure_schema(engine)
        async with engine.begin() as conn:
            await findings.persist(conn)
        async with engine.connect() as conn:
            kinds = dict(
                (await conn.execute(select(events_table.c.kind, events_table.c["count"]))).all()
            )
        assert kinds == {"shadow_mismatch": 1, "shadow_match": 1}
        assert await count(engine, mismatches_table) == 1
        assert await count(engine, noise_table) == 1
        assert (findings.events, findings.mismatches, findings.noise) == ({}, [], {})
    finally:
        await engine.dispose()


def test_the_memory_of_kept_mismatches_is_bounded() -> None:
    findings = Findings(CollectorRegistry())
    at = datetime.now(UTC)
    for n in range(10_002):
        findings.mismatch(mismatch(f"endpoint-{n}", at))
    assert len(findings._kept) <= 10_001
    assert len(findings.mismatches) == 10_002  # every endpoint's first one of the minute
