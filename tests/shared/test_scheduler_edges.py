"""The Scheduler at its edges: started twice, a failing archive run, a lease taken over."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from shared.claims import JobClaims
from shared.config import load_settings
from shared.runtime import Runtime
from shared.scheduler import Scheduler
from tests.fakes.graph_server import FakeGraphServer
from tests.shared.test_jobs import make_actor, make_config, make_job, runs_of, set_cursor
from tests.shared.test_scheduler import _graph_called, scheduler, until


@pytest.fixture
async def domain(environ: dict[str, str]) -> AsyncIterator[Runtime]:
    runtime = Runtime(load_settings(environ))
    yield runtime
    await runtime.aclose()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_scheduler_starts_once_and_stopping_an_unstarted_one_is_harmless(
    domain: Runtime,
) -> None:
    jobs = Scheduler.for_runtime(domain, mode="standalone", registry=CollectorRegistry())
    assert (jobs.tick_s, jobs.lease_s) == (
        domain.settings.scheduler_tick_s,
        domain.settings.job_lease_s,
    )
    await jobs.stop()  # never started: nothing to stop
    await jobs.start()
    try:
        with pytest.raises(RuntimeError, match="already started; create one per process"):
            await jobs.start()
    finally:
        await jobs.stop()
    await jobs.stop()  # stopped twice: still harmless


async def test_a_run_whose_archive_fails_is_recorded_failed_with_the_reason(
    environ: dict[str, str],
) -> None:
    # The source calendar's provider cannot be reached: the archive run fails, the job run
    # is recorded as failed with that reason, and the scheduler goes on.
    runtime = Runtime(
        load_settings(
            {
                **environ,
                "AA_GRAPH_URL": f"http://127.0.0.1:{closed_port()}",
                "AA_GRAPH_MAX_RETRIES": "0",
                "AA_GRAPH_TIMEOUT_S": "2",
            }
        )
    )
    try:
        alice = await make_actor(runtime, "alice@example.com")
        config_id = await make_config(runtime, alice)
        async with runtime.db.session() as session:
            await session.execute(
                text(
                    "UPDATE calendars SET provider = 'graph', provider_id = 'gone' WHERE id = "
                    "(SELECT source_calendar_id FROM archive_configurations WHERE id = :id)"
                ),
                {"id": config_id},
            )
        job = await make_job(runtime, alice, config_id)
        jobs = scheduler(runtime)
        await jobs.start()
        try:
            run = await runtime.services.jobs.trigger(alice, job["id"])

            async def failed() -> list[object]:
                return [
                    r
                    for r in await runs_of(runtime, job["id"])
                    if r.id == run["id"] and r.status == "failed"
                ]

            (done,) = await until("the failed run", failed)
        finally:
            await jobs.stop()
        assert "calendars/gone/calendarView failed" in done.error
        assert done.finished_at is not None
        assert jobs.registry.get_sample_value("scheduler_runs_total", {"result": "failed"}) == 1
    finally:
        await runtime.aclose()


async def test_a_run_whose_lease_another_scheduler_took_is_stopped_and_not_recorded(
    environ: dict[str, str], caplog: pytest.LogCaptureFixture
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
            jobs = scheduler(runtime, lease_s=0.4)  # a beat every 0.1 s
            await jobs.start()
            try:
                before = graph.request_count
                run = await runtime.services.jobs.trigger(alice, job["id"])
                await until("the run to hang", _graph_called(graph, after=before))
                assert jobs.running_run_ids == [run["id"]]
                async with runtime.db.session() as session:
                    await session.execute(
                        text("UPDATE job_runs SET claimed_by = 'elsewhere:1' WHERE id = :id"),
                        {"id": run["id"]},
                    )
                with caplog.at_level(logging.WARNING, logger="shared.scheduler"):

                    async def stopped() -> bool:
                        return not jobs.running_run_ids

                    await until("the run to be stopped", stopped)
            finally:
                await jobs.stop()
            (row,) = [r for r in await runs_of(runtime, job["id"]) if r.id == run["id"]]
            # Never recorded by this scheduler: left to the lease (reaped once it lapses).
            assert row.status in ("running", "abandoned")
            assert (row.claimed_by, row.finished_at, row.error) == ("elsewhere:1", None, None)
            assert any(
                f"lost the lease of run {run['id']}" in r.getMessage() for r in caplog.records
            )
        finally:
            await runtime.aclose()


async def test_a_run_that_recorded_its_end_is_not_taken_for_a_lost_lease(
    domain: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    # The outcome is committed, then the run's last awaits take a while (closing its session,
    # say): lease renewals come meanwhile. The run is no longer `running` in the database,
    # which a renewal must not read as a lease another scheduler took.
    alice = await make_actor(domain, "alice@example.com")
    job = await make_job(domain, alice, await make_config(domain, alice))
    registry = CollectorRegistry()
    jobs = scheduler(domain, lease_s=0.4, registry=registry)  # a renewal every 0.1 s
    recorded = asyncio.Event()
    finish = jobs.claims.finish

    async def finish_then_linger(*args: Any, **kwargs: Any) -> bool:
        done = await finish(*args, **kwargs)
        recorded.set()
        await asyncio.sleep(0.6)  # several renewals pass before the run's task ends
        return done

    jobs.claims.finish = finish_then_linger  # type: ignore[method-assign]
    await jobs.start()
    try:
        with caplog.at_level(logging.WARNING, logger="shared.scheduler"):
            run = await domain.services.jobs.trigger(alice, job["id"])
            await asyncio.wait_for(recorded.wait(), 20)

            async def ended() -> bool:
                return not jobs.running_run_ids

            await until("the run's task to end", ended)
    finally:
        await jobs.stop()
    (row,) = [r for r in await runs_of(domain, job["id"]) if r.id == run["id"]]
    assert row.status == "succeeded"
    assert not [r.getMessage() for r in caplog.records if "lost the lease" in r.getMessage()]
    assert registry.get_sample_value("scheduler_runs_total", {"result": "succeeded"}) == 1


async def test_a_job_whose_schedule_cannot_be_planned_is_logged_and_the_others_still_run(
    domain: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await make_actor(domain, "alice@example.com")
    broken = await make_job(domain, alice, await make_config(domain, alice))
    healthy = await make_job(
        domain, alice, await make_config(domain, alice, name="Second"), schedule="every 1m"
    )
    now = datetime.now(UTC)
    due_at = now.replace(second=0, microsecond=0)  # a time `every 1m` fires at, just past
    for job in (broken, healthy):
        await set_cursor(domain, job["id"], due_at)
    async with domain.db.session() as session:
        # A zone this machine no longer knows (the tz database changed under a stored job).
        await session.execute(
            text("UPDATE jobs SET timezone = 'Mars/Olympus_Mons' WHERE id = :id"),
            {"id": broken["id"]},
        )
    claims = JobClaims(domain.db, "here:1", lease_s=60, grace_s=60)
    with caplog.at_level(logging.ERROR, logger="shared.claims"):
        due = await claims.claim_due(now, 10)
    assert [run.job_id for run in due.runs] == [healthy["id"]]
    assert f"job {broken['id']}: cannot plan schedule" in caplog.text
    assert await runs_of(domain, broken["id"]) == []
