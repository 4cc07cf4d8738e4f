"""The Scheduler (shared/scheduler.py) on the test's own event loop, over a real SQLite file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from shared.config import load_settings
from shared.pagination import PageRequest
from shared.runtime import Runtime
from shared.scheduler import Scheduler
from tests.conftest import make_environ
from tests.fakes.graph_server import FakeGraphServer
from tests.shared.test_jobs import make_actor, make_config, make_job, runs_of


@pytest.fixture
async def domain(environ: dict[str, str]) -> AsyncIterator[Runtime]:
    runtime = Runtime(load_settings(environ))
    yield runtime
    await runtime.aclose()


def scheduler(runtime: Runtime, **options: Any) -> Scheduler:
    options = {"tick_s": 0.2, "registry": CollectorRegistry(), **options}
    return Scheduler(runtime.db, runtime.services.archive, runtime.services.jobs, **options)


async def until(what: str, check: Callable[[], Awaitable[Any]], timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := await check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return value


async def test_a_job_runs_on_schedule_and_its_metrics_land_in_the_given_registry(
    domain: Runtime,
) -> None:
    alice = await make_actor(domain, "alice@example.com")
    job = await make_job(domain, alice, await make_config(domain, alice), schedule="every 1s")
    registry = CollectorRegistry()
    jobs = scheduler(domain, registry=registry)
    # A second scheduler in the same process has its own metrics: no duplicated timeseries.
    other = scheduler(domain)
    assert other.registry is not registry
    await jobs.start()
    try:

        async def succeeded() -> list[Any]:
            return [r for r in await runs_of(domain, job["id"]) if r.status == "succeeded"]

        done = await until("two runs", lambda: _at_least(succeeded, 2))
    finally:
        await jobs.stop()
    assert all(r.claimed_by == jobs.claimer and r.action_log_id for r in done)
    assert registry.get_sample_value("scheduler_runs_total", {"result": "succeeded"}) >= 2
    assert registry.get_sample_value("scheduler_lag_seconds_count") >= 2
    assert registry.get_sample_value("scheduler_runs_in_progress") == 0
    log = await domain.services.archive.action_log(alice, None, PageRequest())
    assert log.items[0]["actor"] == f"job {job['id']}"
    health = await domain.services.jobs.health(alice)
    assert health["schedulers"] == []  # it said goodbye


async def test_a_trigger_wakes_the_scheduler_at_once(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    job = await make_job(domain, alice, await make_config(domain, alice))
    jobs = scheduler(domain, tick_s=3600)  # would never tick again on its own
    await jobs.start()
    try:
        run = await domain.services.jobs.trigger(alice, job["id"])

        async def finished() -> bool:
            return any(
                r.id == run["id"] and r.status == "succeeded"
                for r in await runs_of(domain, job["id"])
            )

        await until("the triggered run", finished)
    finally:
        await jobs.stop()


async def test_stop_hands_back_a_run_that_does_not_finish_within_the_grace(
    environ: dict[str, str],
) -> None:
    with FakeGraphServer() as graph:
        runtime = Runtime(load_settings({**environ, "AA_GRAPH_URL": graph.url}))
        try:
            alice = await make_actor(runtime, "alice@example.com")
            graph.add_calendar("c", mailbox=alice.email)
            source = await runtime.services.calendars.create(
                alice,
                {"name": "Remote", "role": "source", "provider": "graph", "provider_id": "c"},
            )
            config_id = await make_config(runtime, alice)
            await runtime.services.archive.update_config(
                alice, config_id, {"source_calendar_id": source["id"]}
            )
            job = await make_job(runtime, alice, config_id)
            graph.hang_next(1)
            jobs = scheduler(runtime, shutdown_grace_s=0.2)
            await jobs.start()
            before = graph.request_count
            await runtime.services.jobs.trigger(alice, job["id"])
            await until("the run to hang", _graph_called(graph, after=before))
            assert len(jobs.running_run_ids) == 1
            await jobs.stop()
            rows = await runs_of(runtime, job["id"])
            assert [(r.attempt, r.status) for r in rows] == [(1, "abandoned"), (2, "queued")]
            assert (
                jobs.registry.get_sample_value("scheduler_runs_total", {"result": "abandoned"}) == 1
            )
        finally:
            await runtime.aclose()


async def _at_least(read: Callable[[], Awaitable[list[Any]]], count: int) -> list[Any] | None:
    found = await read()
    return found if len(found) >= count else None


def _graph_called(graph: FakeGraphServer, *, after: int = 0) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return graph.request_count > after

    return check


async def test_a_database_never_migrated_is_one_clear_error_not_a_traceback(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway started on an empty database file: the scheduler says what to run."""
    environ = make_environ(tmp_path, AA_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    runtime = Runtime(load_settings(environ))
    jobs = scheduler(runtime, tick_s=0.05)
    try:
        with caplog.at_level("ERROR", logger="shared.scheduler"):
            await jobs.start()
            await until("the error", lambda: _has_record(caplog, "db upgrade"))
            await asyncio.sleep(0.2)  # further failed ticks say nothing more
    finally:
        await jobs.stop()
        await runtime.aclose()
    records = [r for r in caplog.records if r.name == "shared.scheduler"]
    assert len(records) == 1
    assert "no job tables yet (no such table: scheduler_instances)" in records[0].getMessage()
    assert records[0].exc_info is None


async def _has_record(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records)
