"""The guard's tick on a real SQLite file: a rollout step that failed since it began is aborted
even when the last minute looks fine, and unreadable figures stop the tick instead of judging."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.control.guard import Guardian, RolloutMetrics
from asgi_gateway.control.progress import write_progress
from asgi_gateway.control.rollouts import Rollouts
from asgi_gateway.control.store import FlagStore
from asgi_gateway.errors import FlagStoreUnavailable
from asgi_gateway.flag_file import FlagFile, parse_flag_file
from asgi_gateway.flags import EndpointRules
from asgi_gateway.tables import COUNT_COLUMNS, recent_stats_table
from tests.asgi_gateway.control.conftest import applied_store

EP = "appointments.list"
RULES = EndpointRules(known=frozenset({EP}), twins=frozenset({EP}))
YAML = f"""\
version: 1
routes:
  {EP}: {{mode: legacy, rollout: {{steps: [10, 50, 100], interval: 2s}}}}
"""


def declared() -> FlagFile:
    return parse_flag_file(YAML, Path("feature_flags.yaml"), RULES)


@pytest.fixture
async def store(engine: AsyncEngine) -> FlagStore:
    return await applied_store(engine, declared())


def stats_row(second: int, backend: str, requests: int, errors: int) -> dict[str, Any]:
    counts = dict.fromkeys(COUNT_COLUMNS, 0)
    counts.update(requests=requests, errors=errors, le_5=requests)
    return {"second": second, "endpoint": EP, "backend": backend, **counts}


def guardian_of(store: FlagStore, registry: CollectorRegistry) -> Guardian:
    return Guardian(
        lambda: Rollouts(store, declared(), RULES), RULES.twins, RolloutMetrics(registry)
    )


async def test_a_step_that_failed_since_it_began_is_aborted_though_the_last_minute_is_quiet(
    store: FlagStore,
) -> None:
    rollouts = Rollouts(store, declared(), RULES)
    await rollouts.start(EP, actor="ops", reason="go")
    read = await rollouts.read(EP)
    assert read is not None
    now = datetime.now(UTC)
    # The step began 100 s ago and is due; its twin failed 90 s ago, outside the guard's
    # 60 s window, so only the step's own judgement sees it.
    async with store.transaction("test", bump=False) as conn:
        await write_progress(
            conn,
            replace(read, step_started_at=now - timedelta(seconds=100), next_step_at=now),
            read=read,
        )
    second = int(time.time()) - 90
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(recent_stats_table),
            [stats_row(second, "async", 60, 60), stats_row(second, "legacy", 60, 0)],
        )
    registry = CollectorRegistry()
    await guardian_of(store, registry).tick()

    flag = (await store.load()).flags[EP]
    progress = await rollouts.read(EP)
    assert progress is not None
    assert (flag.mode, progress.state) == ("legacy", "aborted")
    assert progress.reason is not None and "error rate" in progress.reason
    assert registry.get_sample_value("gateway_guard_rollbacks_total", {"endpoint": EP}) == 1


async def test_unreadable_figures_stop_the_tick_naming_the_endpoint(store: FlagStore) -> None:
    rollouts = Rollouts(store, declared(), RULES)
    await rollouts.start(EP, actor="ops", reason="go")
    async with store.engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE {recent_stats_table.name}"))
    with pytest.raises(FlagStoreUnavailable, match=f"cannot read the stats of {EP}"):
        await guardian_of(store, CollectorRegistry()).tick()
    # Nothing was judged on the missing figures: the rollout goes on where it was.
    flag = (await store.load()).flags[EP]
    assert (flag.mode, flag.percent) == ("canary", 10)
