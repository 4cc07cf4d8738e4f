"""Jobs: the service (shared/services/jobs.py) and the claims (shared/claims.py), both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from shared.auth import Actor
from shared.claims import JobClaims, Outlook
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.inputs.archive import parse_archive_config
from shared.models import Job, JobRun, utcnow
from shared.pagination import PageRequest
from shared.runtime import Runtime
from shared.validation import parse_job


async def make_actor(runtime: Runtime, email: str, *, is_admin: bool = False) -> Actor:
    user = await runtime.services.users.create(email, f"pw-{email}", is_admin=is_admin)
    return Actor(user_id=user["id"], email=user["email"], is_admin=user["is_admin"])


async def make_config(runtime: Runtime, actor: Actor, **extra: Any) -> int:
    calendars = runtime.services.calendars
    source = await calendars.create(actor, {"name": "Work", "role": "source"})
    archive = await calendars.create(actor, {"name": "Archive", "role": "archive"})
    body = {
        "name": "Work archive",
        "source_calendar_id": source["id"],
        "archive_calendar_id": archive["id"],
        "timezone": "Europe/Berlin",
        **extra,
    }
    config = await runtime.services.archive.create_config(actor, parse_archive_config(body))
    return int(config["id"])


async def make_job(runtime: Runtime, actor: Actor, config_id: int, **extra: Any) -> dict[str, Any]:
    body = {"archive_config_id": config_id, "schedule": "daily@02:00", **extra}
    return await runtime.services.jobs.create(actor, parse_job(body))


async def runs_of(runtime: Runtime, job_id: int) -> list[JobRun]:
    async with runtime.db.read_session() as session:
        rows = await session.scalars(
            select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.id)
        )
        return list(rows)


async def set_cursor(runtime: Runtime, job_id: int, moment: datetime) -> None:
    """Put a job's next run in the past: as if no scheduler had run since `moment`."""
    async with runtime.db.session() as session:
        await session.execute(update(Job).where(Job.id == job_id).values(next_run_at=moment))


# -- the service ------------------------------------------------------------------------------


async def test_a_job_takes_the_configuration_time_zone_and_knows_its_next_run(
    domain: Runtime,
) -> None:
    alice = await make_actor(domain, "alice@example.com")
    config_id = await make_config(domain, alice)
    before = utcnow()
    job = await make_job(domain, alice, config_id, schedule="Daily@02:30")
    assert job["timezone"] == "Europe/Berlin"
    assert job["schedule"] == "daily@02:30"
    assert (job["enabled"], job["misfire"], job["last_run"]) == (True, "run_once", None)
    assert (job["days_back"], job["days_forward"]) == (None, None)
    next_run = datetime.fromisoformat(job["next_run_at"])
    assert before < next_run <= before + timedelta(days=1, hours=1)
    local = next_run.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) in ((2, 30), (3, 30))  # 03:30 only on spring-forward day


async def test_jobs_are_their_owners_and_admins_see_all(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    bob = await make_actor(domain, "bob@example.com")
    admin = await make_actor(domain, "admin@example.com", is_admin=True)
    config_id = await make_config(domain, alice)
    job = await make_job(domain, alice, config_id)
    jobs = domain.services.jobs
    with pytest.raises(NotFound, match=f"job {job['id']} not found"):
        await jobs.get(bob, job["id"])
    with pytest.raises(NotFound):
        await jobs.trigger(bob, job["id"])
    with pytest.raises(ValidationFailed, match="check archive_config_id") as raised:
        await make_job(domain, bob, config_id)
    assert raised.value.details == [
        {"field": "archive_config_id", "message": f"archive configuration {config_id} not found"}
    ]
    assert (await jobs.list(bob, PageRequest())).total == 0
    assert (await jobs.list(admin, PageRequest())).total == 1
    assert (await jobs.get(admin, job["id"]))["id"] == job["id"]


async def test_disabling_clears_the_next_run_and_enabling_computes_it_from_now(
    domain: Runtime,
) -> None:
    alice = await make_actor(domain, "alice@example.com")
    job = await make_job(domain, alice, await make_config(domain, alice))
    jobs = domain.services.jobs
    disabled = await jobs.update(alice, job["id"], {"enabled": False})
    assert disabled["next_run_at"] is None
    with pytest.raises(Conflict, match="is disabled"):
        await jobs.trigger(alice, job["id"])
    enabled = await jobs.update(alice, job["id"], {"enabled": True, "schedule": "every 15m"})
    next_run = datetime.fromisoformat(enabled["next_run_at"])
    assert next_run.minute % 15 == 0 and next_run.second == 0
    assert next_run - utcnow() <= timedelta(minutes=15)


async def test_trigger_queues_one_run_and_refuses_a_second_while_it_waits(
    domain: Runtime,
) -> None:
    alice = await make_actor(domain, "alice@example.com")
    job = await make_job(domain, alice, await make_config(domain, alice))
    woken: list[str] = []
    remove = domain.services.jobs.add_listener(lambda: woken.append("tick"))
    run = await domain.services.jobs.trigger(alice, job["id"])
    remove()
    assert (run["status"], run["claimed_by"], run["job_id"]) == ("queued", None, job["id"])
    assert woken == ["tick"]
    with pytest.raises(Conflict, match=f"already has a run queued \\(run {run['id']}\\)"):
        await domain.services.jobs.trigger(alice, job["id"])
    again = await domain.services.jobs.get(alice, job["id"])
    assert again["last_run"] == run


async def test_two_triggers_at_once_queue_exactly_one_run(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    job = await make_job(domain, alice, await make_config(domain, alice))
    results = await asyncio.gather(
        *(domain.services.jobs.trigger(alice, job["id"]) for _ in range(4)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, dict) for r in results) == 1, results
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, dict))
    assert len(await runs_of(domain, job["id"])) == 1


async def test_deleting_a_configuration_deletes_its_jobs_and_their_runs(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    config_id = await make_config(domain, alice)
    job = await make_job(domain, alice, config_id)
    await domain.services.jobs.trigger(alice, job["id"])
    await domain.services.archive.delete_config(alice, config_id)
    with pytest.raises(NotFound):
        await domain.services.jobs.get(alice, job["id"])
    assert await runs_of(domain, job["id"]) == []


# -- claims: exactly once, leases ----------------------------------------------------------------


def claims(runtime: Runtime, name: str, *, lease_s: float = 60) -> JobClaims:
    return JobClaims(runtime.db, name, lease_s=lease_s, grace_s=60)


async def test_many_schedulers_claiming_at_once_start_each_scheduled_time_once(
    domain: Runtime,
) -> None:
    alice = await make_actor(domain, "alice@example.com")
    job = await make_job(domain, alice, await make_config(domain, alice), schedule="every 1s")
    now = utcnow()
    first = now.replace(microsecond=0) - timedelta(seconds=2)
    await set_cursor(domain, job["id"], first)
    contenders = [claims(domain, f"host:{n}") for n in range(6)]
    results = await asyncio.gather(*(c.claim_due(now, 10) for c in contenders))
    started = [run for result in results for run in result.runs]
    rows = await runs_of(domain, job["id"])
    # Three scheduled times were due: the first runs, the next two find it still running.
    assert [r.scheduled_for for r in rows] == [first + timedelta(seconds=n) for n in range(3)]
    assert [r.status for r in rows] == ["running", "skipped", "skipped"]
    assert "still running" in (rows[1].error or "")
    assert [r.run_id for r in started] == [rows[0].id]
    assert sum(result.skipped for result in results) == 2
    # Nothing is due any more: the cursor moved past now, and only once.
    assert all(
        not r.runs for r in await asyncio.gather(*(c.claim_due(now, 10) for c in contenders))
    )


async def test_a_queued_run_goes_to_exactly_one_scheduler(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    job = await make_job(domain, alice, await make_config(domain, alice))
    run = await domain.services.jobs.trigger(alice, job["id"])
    contenders = [claims(domain, f"host:{n}") for n in range(5)]
    results = await asyncio.gather(*(c.claim_queued(utcnow(), 5) for c in contenders))
    winners = [(c.claimer, r) for c, rs in zip(contenders, results, strict=True) for r in rs]
    assert len(winners) == 1 and winners[0][1].run_id == run["id"]
    [row] = await runs_of(domain, job["id"])
    assert (row.status, row.claimed_by) == ("running", winners[0][0])


@pytest.mark.parametrize(("misfire", "retried"), [("run_once", True), ("skip", False)])
async def test_a_lapsed_lease_is_abandoned_and_retried_once_when_the_policy_allows(
    domain: Runtime, misfire: str, retried: bool
) -> None:
    alice = await make_actor(domain, "alice@example.com")
    job = await make_job(domain, alice, await make_config(domain, alice), misfire=misfire)
    await domain.services.jobs.trigger(alice, job["id"])
    dead, alive = claims(domain, "host:dead", lease_s=5), claims(domain, "host:alive", lease_s=5)
    [claimed] = await dead.claim_queued(utcnow(), 1)
    assert await alive.reap(utcnow()) == 0  # the lease holds
    later = utcnow() + timedelta(seconds=6)
    assert await alive.reap(later) == 1
    assert await alive.reap(later) == 0  # only once
    rows = await runs_of(domain, job["id"])
    assert rows[0].status == "abandoned" and "no heartbeat from host:dead" in (rows[0].error or "")
    if not retried:
        assert len(rows) == 1
        return
    assert [(r.attempt, r.status, r.scheduled_for) for r in rows[1:]] == [
        (2, "queued", rows[0].scheduled_for)
    ]
    # The dead owner cannot record anything any more.
    assert not await dead.finish(claimed.run_id, "succeeded", utcnow())
    assert await dead.heartbeat([claimed.run_id], utcnow()) == set()
    # The retry is abandoned too: no third attempt.
    [retry] = await alive.claim_queued(utcnow(), 1)
    assert await claims(domain, "host:other", lease_s=5).reap(utcnow() + timedelta(seconds=12)) == 1
    assert [r.status for r in await runs_of(domain, job["id"])] == ["abandoned", "abandoned"]
    assert retry.run_id == rows[1].id


async def test_a_released_run_is_queued_again_for_another_scheduler(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    job = await make_job(domain, alice, await make_config(domain, alice), misfire="skip")
    await domain.services.jobs.trigger(alice, job["id"])
    leaving = claims(domain, "host:leaving")
    [claimed] = await leaving.claim_queued(utcnow(), 1)
    assert await leaving.release([claimed.run_id], utcnow()) == 1
    rows = await runs_of(domain, job["id"])
    assert [(r.attempt, r.status) for r in rows] == [(1, "abandoned"), (2, "queued")]
    assert "shut down before the run finished" in (rows[0].error or "")


async def test_paused_configurations_and_disabled_jobs_do_not_run(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    config_id = await make_config(domain, alice, is_active=False)
    job = await make_job(domain, alice, config_id, schedule="every 1s")
    due = utcnow().replace(microsecond=0)
    await set_cursor(domain, job["id"], due)
    result = await claims(domain, "host:1").claim_due(due + timedelta(seconds=0.5), 10)
    assert result.runs == [] and result.skipped == 1
    [row] = await runs_of(domain, job["id"])
    assert row.status == "skipped" and "is paused" in (row.error or "")

    other = await make_job(domain, alice, await make_config(domain, alice), schedule="every 1s")
    await domain.services.jobs.trigger(alice, other["id"])
    await domain.services.jobs.update(alice, other["id"], {"enabled": False})
    await set_cursor(domain, other["id"], utcnow() - timedelta(seconds=5))
    assert await claims(domain, "host:1").claim_queued(utcnow(), 10) == []
    assert (await claims(domain, "host:1").claim_due(utcnow(), 10)).runs == []
    assert [(r.status, r.error) for r in await runs_of(domain, other["id"])] == [
        ("skipped", f"job {other['id']} was disabled before it ran")
    ]


@pytest.mark.parametrize(("misfire", "status"), [("skip", "skipped"), ("run_once", "running")])
async def test_after_a_stopped_period_skip_records_and_run_once_runs_the_latest_missed_time(
    domain: Runtime, misfire: str, status: str
) -> None:
    alice = await make_actor(domain, "alice@example.com")
    job = await make_job(domain, alice, await make_config(domain, alice), misfire=misfire)
    now = utcnow()
    await set_cursor(domain, job["id"], now - timedelta(days=3))
    result = await claims(domain, "host:1").claim_due(now, 10)
    [row] = await runs_of(domain, job["id"])
    assert row.status == status
    assert now - timedelta(days=1) <= row.scheduled_for <= now  # the latest missed 02:00
    assert len(result.runs) == (status == "running")
    refreshed = await domain.services.jobs.get(alice, job["id"])
    assert datetime.fromisoformat(refreshed["next_run_at"]) > now
    if misfire == "skip":
        assert row.error is not None and "misfire policy skip" in row.error


async def test_scheduler_rows_and_health(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    bob = await make_actor(domain, "bob@example.com")
    admin = await make_actor(domain, "admin@example.com", is_admin=True)
    await make_job(domain, alice, await make_config(domain, alice))
    await make_job(domain, bob, await make_config(domain, bob))
    health = await domain.services.jobs.health(alice)
    assert (health["status"], health["schedulers"]) == ("no_scheduler", [])
    scheduler = claims(domain, "host:42")
    await scheduler.register("host", 42, "standalone", utcnow())
    await scheduler.report(utcnow(), 0.25, 1)
    health = await domain.services.jobs.health(alice)
    assert health["status"] == "ok"
    [row] = health["schedulers"]
    assert (row["id"], row["mode"], row["lag_s"], row["running"]) == (
        "host:42",
        "standalone",
        0.25,
        1,
    )
    assert len(health["next_runs"]) == 1
    assert len((await domain.services.jobs.health(admin))["next_runs"]) == 2
    await scheduler.report(utcnow() - timedelta(minutes=5), None, 0)  # silent for a lease
    assert (await domain.services.jobs.health(alice))["status"] == "no_scheduler"
    await scheduler.forget_schedulers_before(utcnow() - timedelta(minutes=1))
    async with domain.db.read_session() as session:
        assert (await session.scalar(select(Job.id).limit(1))) is not None
    assert datetime.now(UTC) > datetime.fromisoformat(row["started_at"])


async def test_the_demo_data_has_a_nightly_job(domain: Runtime) -> None:
    from shared.seed import seed_demo

    login = await seed_demo(domain.db)
    admin = await domain.services.users.authenticate_password(login.email, login.password)
    [job] = (await domain.services.jobs.list(admin, PageRequest())).items
    assert (job["archive_config_id"], job["schedule"], job["enabled"]) == (
        login.config_id,
        "daily@02:00",
        True,
    )
    assert job["timezone"] == "Europe/London" and job["next_run_at"] is not None


async def test_the_outlook_tells_a_tick_whether_anything_is_queued_or_due(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    scheduler = claims(domain, "host:1")
    job = await make_job(domain, alice, await make_config(domain, alice), schedule="every 1s")
    later = await make_job(domain, alice, await make_config(domain, alice), schedule="every 1s")
    soon = utcnow().replace(microsecond=0) + timedelta(hours=1)
    await set_cursor(domain, job["id"], soon)
    await set_cursor(domain, later["id"], soon + timedelta(hours=1))
    assert await scheduler.outlook() == Outlook(False, soon)

    await domain.services.jobs.update(alice, job["id"], {"enabled": False})  # only enabled jobs
    await set_cursor(domain, later["id"], soon + timedelta(hours=2))
    assert await scheduler.outlook() == Outlook(False, soon + timedelta(hours=2))

    await domain.services.jobs.trigger(alice, later["id"])
    outlook = await scheduler.outlook()
    assert outlook.has_queued
    [claimed] = await scheduler.claim_queued(utcnow(), 10)
    assert claimed.job_id == later["id"]
    assert not (await scheduler.outlook()).has_queued

    await domain.services.jobs.update(alice, later["id"], {"enabled": False})
    assert await scheduler.outlook() == Outlook(False, None)
