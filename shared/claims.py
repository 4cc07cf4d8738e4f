"""Claiming job runs in the database: exactly once per job and scheduled time, with leases.

Every process and machine sharing the database coordinates here, never in memory:

* A due job is claimed by moving its cursor (`jobs.next_run_at`) with a compare-and-set
  UPDATE; only the transaction that moves it inserts the runs, and the unique
  (job, scheduled time, attempt) key refuses a second row even if a stale process tried.
* A job has at most one run queued or running: a partial unique index enforces it, and every
  writer of runs first locks the job's row (PostgreSQL; SQLite has one writer at a time).
* A running run carries a lease: its owner renews `heartbeat_at`; a run whose heartbeat is
  older than the lease is marked `abandoned` by whichever scheduler sees it first (another
  compare-and-set), and retried once as a new attempt of the same scheduled time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database
from shared.models import ArchiveConfiguration, Job, JobRun, SchedulerInstance
from shared.repositories import JobRepository
from shared.schedules import parse_schedule, plan_due
from shared.validation import parse_timezone

__all__ = ["MAX_ATTEMPTS", "ClaimedRun", "DueResult", "JobClaims", "Outlook"]

MAX_ATTEMPTS = 2  # the first run and one retry
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A run this scheduler owns now, with what it needs to archive its window."""

    run_id: int
    job_id: int
    archive_config_id: int
    scheduled_for: datetime
    trigger: str
    timezone: str
    days_back: int
    days_forward: int
    # The job's owner: the run reaches Graph with this user's delegated token.
    owner_id: int | None = None


@dataclass(frozen=True, slots=True)
class Outlook:
    """What a tick has to do: is a run queued, and when the soonest enabled job is due."""

    has_queued: bool
    next_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class DueResult:
    """Runs claimed at one tick, and how many scheduled times were recorded as skipped."""

    runs: list[ClaimedRun]
    skipped: int


_Row = tuple[Job, ArchiveConfiguration]
_OUTLOOK = select(
    select(JobRun.id).where(JobRun.status == "queued").limit(1).scalar_subquery(),
    select(func.min(Job.next_run_at)).where(Job.enabled.is_(True)).scalar_subquery(),
)


class JobClaims:
    """The database operations of one scheduler, acting as `claimer` (host:pid)."""

    def __init__(self, db: Database, claimer: str, *, lease_s: float, grace_s: float) -> None:
        self.db = db
        self.claimer = claimer
        self.lease_s = lease_s
        self.grace_s = grace_s

    # -- due jobs and queued runs -------------------------------------------------------------

    async def claim_due(self, now: datetime, limit: int) -> DueResult:
        """Claim the runs of every enabled job whose next run is due, up to `limit` jobs."""
        async with self.db.read_session() as session:
            rows = (
                await session.execute(
                    select(Job, ArchiveConfiguration)
                    .join(ArchiveConfiguration, ArchiveConfiguration.id == Job.archive_config_id)
                    .where(Job.enabled.is_(True), Job.next_run_at <= now)
                    .order_by(Job.next_run_at, Job.id)
                    .limit(limit)
                )
            ).all()
        runs: list[ClaimedRun] = []
        skipped = 0
        for job, config in rows:
            try:
                claimed, job_skipped = await self._claim_job(job, config, now)
            except IntegrityError:
                # Only a process that lost the compare-and-set could get here; the unique
                # keys stopped it from writing a second row, which is what they are for.
                _log.info("job %s: another scheduler claimed it first", job.id)
                continue
            runs += claimed
            skipped += job_skipped
        return DueResult(runs, skipped)

    async def _claim_job(
        self, job: Job, config: ArchiveConfiguration, now: datetime
    ) -> tuple[list[ClaimedRun], int]:
        assert job.next_run_at is not None
        try:
            tz = parse_timezone(job.timezone, field="timezone")
            plan = plan_due(
                parse_schedule(job.schedule),
                tz,
                job.next_run_at,
                now,
                grace_s=self.grace_s,
                misfire=job.misfire,  # type: ignore[arg-type]
            )
        except Exception:
            _log.exception("job %s: cannot plan schedule %r", job.id, job.schedule)
            return [], 0
        claimed: list[ClaimedRun] = []
        skipped = 0
        async with self.db.session() as session:
            moved = await session.execute(
                update(Job)
                .where(
                    Job.id == job.id,
                    Job.enabled.is_(True),
                    Job.next_run_at == job.next_run_at,
                    Job.updated_at == job.updated_at,
                )
                # Moving the cursor is not an edit: keep updated_at as it was.
                .values(next_run_at=plan.next_run_at, updated_at=Job.updated_at)
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                return [], 0  # another scheduler moved it first, or the job was edited
            repo = JobRepository(session)
            active = await repo.active_run(job.id)
            if plan.missed is not None:
                await repo.add_run(
                    _skipped(job.id, plan.missed, now, _missed_reason(job, plan.missed))
                )
                skipped += 1
            for when in plan.runs:
                reason = None
                if not config.is_active:
                    reason = f"archive configuration {config.id} is paused (is_active is false)"
                elif active is not None:
                    reason = f"run {active.id} of this job was still {active.status}"
                if reason is not None:
                    await repo.add_run(_skipped(job.id, when, now, reason))
                    skipped += 1
                    continue
                active = await repo.add_run(
                    JobRun(
                        job_id=job.id,
                        scheduled_for=when,
                        attempt=1,
                        trigger="schedule",
                        status="running",
                        claimed_by=self.claimer,
                        started_at=now,
                        heartbeat_at=now,
                    )
                )
                claimed.append(_claimed(active, job, config))
        return claimed, skipped

    async def outlook(self) -> Outlook:
        """Is any run queued, and when is the soonest job due: one statement, two indexed
        lookups. An idle tick asks only this (claiming reads and locks rows)."""
        async with self.db.reading() as conn:
            row = (await conn.execute(_OUTLOOK)).one()
        return Outlook(row[0] is not None, row[1])

    async def next_due_at(self) -> datetime | None:
        """When the soonest enabled job is due (None when no job is enabled)."""
        async with self.db.read_session() as session:
            return await session.scalar(
                select(func.min(Job.next_run_at)).where(Job.enabled.is_(True))
            )

    async def claim_queued(self, now: datetime, limit: int) -> list[ClaimedRun]:
        """Claim queued runs (triggers, retries), oldest first; each goes to one scheduler."""
        async with self.db.read_session() as session:
            rows = (
                await session.execute(
                    select(JobRun.id, Job, ArchiveConfiguration)
                    .join(Job, Job.id == JobRun.job_id)
                    .join(ArchiveConfiguration, ArchiveConfiguration.id == Job.archive_config_id)
                    .where(JobRun.status == "queued")
                    .order_by(JobRun.id)
                    .limit(limit)
                )
            ).all()
        claimed = []
        for run_id, job, config in rows:
            async with self.db.session() as session:
                if not job.enabled or not config.is_active:
                    reason = (
                        f"job {job.id} was disabled before it ran"
                        if not job.enabled
                        else f"archive configuration {config.id} is paused (is_active is false)"
                    )
                    await session.execute(
                        update(JobRun)
                        .where(JobRun.id == run_id, JobRun.status == "queued")
                        .values(status="skipped", finished_at=now, error=reason)
                    )
                    continue
                result = await session.execute(
                    update(JobRun)
                    .where(JobRun.id == run_id, JobRun.status == "queued")
                    .values(
                        status="running",
                        claimed_by=self.claimer,
                        started_at=now,
                        heartbeat_at=now,
                    )
                    .returning(JobRun)
                )
                run = result.scalar_one_or_none()
                if run is not None:
                    claimed.append(_claimed(run, job, config))
        return claimed

    # -- leases -------------------------------------------------------------------------------

    async def heartbeat(self, run_ids: Sequence[int], now: datetime) -> set[int]:
        """Renew the leases of `run_ids`; returns those still running under this claimer."""
        if not run_ids:
            return set()
        async with self.db.session() as session:
            result = await session.execute(
                update(JobRun)
                .where(
                    JobRun.id.in_(run_ids),
                    JobRun.status == "running",
                    JobRun.claimed_by == self.claimer,
                )
                .values(heartbeat_at=now)
                .returning(JobRun.id)
            )
            return set(result.scalars())

    async def finish(
        self,
        run_id: int,
        status: str,
        now: datetime,
        *,
        action_log_id: int | None = None,
        error: str | None = None,
    ) -> bool:
        """Record the outcome of a run this claimer still holds; False if its lease was lost."""
        async with self.db.session() as session:
            result = await session.execute(
                update(JobRun)
                .where(
                    JobRun.id == run_id,
                    JobRun.status == "running",
                    JobRun.claimed_by == self.claimer,
                )
                .values(status=status, finished_at=now, action_log_id=action_log_id, error=error)
            )
            return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def reap(self, now: datetime) -> int:
        """Mark runs whose lease lapsed `abandoned` (retrying under run_once); returns how many."""
        cutoff = now - timedelta(seconds=self.lease_s)
        async with self.db.read_session() as session:
            rows = (
                await session.execute(
                    select(JobRun, Job.misfire)
                    .join(Job, Job.id == JobRun.job_id)
                    .where(JobRun.status == "running", JobRun.heartbeat_at < cutoff)
                )
            ).all()
        abandoned = 0
        for run, misfire in rows:
            error = (
                f"abandoned: no heartbeat from {run.claimed_by} for {self.lease_s:g} s "
                "(the process stopped or lost the database)"
            )
            if await self._abandon(
                run, now, error, retry=misfire == "run_once", stale_before=cutoff
            ):
                abandoned += 1
        return abandoned

    async def release(self, run_ids: Sequence[int], now: datetime) -> int:
        """Give up runs this claimer holds (graceful shutdown): abandoned, and queued again."""
        async with self.db.read_session() as session:
            runs = list(
                await session.scalars(
                    select(JobRun).where(
                        JobRun.id.in_(run_ids),
                        JobRun.status == "running",
                        JobRun.claimed_by == self.claimer,
                    )
                )
            )
        released = 0
        for run in runs:
            error = f"interrupted: {self.claimer} shut down before the run finished"
            released += await self._abandon(run, now, error, retry=True, stale_before=None)
        return released

    async def _abandon(
        self,
        run: JobRun,
        now: datetime,
        error: str,
        *,
        retry: bool,
        stale_before: datetime | None,
    ) -> bool:
        try:
            async with self.db.session() as session:
                conditions = [JobRun.id == run.id, JobRun.status == "running"]
                if stale_before is None:
                    conditions.append(JobRun.claimed_by == self.claimer)
                else:  # the lease may have been renewed since we read it
                    conditions.append(JobRun.heartbeat_at < stale_before)
                result = await session.execute(
                    update(JobRun)
                    .where(*conditions)
                    .values(status="abandoned", finished_at=now, error=error)
                )
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    return False
                if retry and run.attempt < MAX_ATTEMPTS:
                    await self._queue_retry(session, run)
        except IntegrityError:
            _log.info("run %s: a retry of it already exists", run.id)
            return False
        return True

    async def _queue_retry(self, session: AsyncSession, run: JobRun) -> None:
        repo = JobRepository(session)
        job = await repo.get(run.job_id, for_update=True)
        if job is None or not job.enabled or await repo.active_run(job.id) is not None:
            return  # deleted, disabled, or another run of it already covers the job
        await repo.add_run(
            JobRun(
                job_id=run.job_id,
                scheduled_for=run.scheduled_for,
                attempt=run.attempt + 1,
                trigger=run.trigger,
                status="queued",
            )
        )

    # -- the scheduler's own row (read by the health endpoint) --------------------------------

    async def register(self, host: str, pid: int, mode: str, now: datetime) -> None:
        async with self.db.session() as session:
            await session.execute(
                delete(SchedulerInstance).where(SchedulerInstance.id == self.claimer)
            )
            session.add(
                SchedulerInstance(
                    id=self.claimer,
                    host=host,
                    pid=pid,
                    mode=mode,
                    started_at=now,
                    last_tick_at=now,
                    running=0,
                )
            )

    async def report(self, last_tick_at: datetime, lag_s: float | None, running: int) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(SchedulerInstance)
                .where(SchedulerInstance.id == self.claimer)
                .values(last_tick_at=last_tick_at, lag_s=lag_s, running=running)
            )

    async def unregister(self) -> None:
        async with self.db.session() as session:
            await session.execute(
                delete(SchedulerInstance).where(SchedulerInstance.id == self.claimer)
            )

    async def forget_schedulers_before(self, moment: datetime) -> None:
        """Drop the rows of schedulers silent since `moment` (killed processes)."""
        async with self.db.session() as session:
            await session.execute(
                delete(SchedulerInstance).where(SchedulerInstance.last_tick_at < moment)
            )


def _claimed(run: JobRun, job: Job, config: ArchiveConfiguration) -> ClaimedRun:
    return ClaimedRun(
        run_id=run.id,
        job_id=job.id,
        archive_config_id=config.id,
        scheduled_for=run.scheduled_for,
        trigger=run.trigger,
        timezone=job.timezone,
        days_back=config.days_back if job.days_back is None else job.days_back,
        days_forward=config.days_forward if job.days_forward is None else job.days_forward,
        owner_id=job.owner_id,
    )


def _skipped(job_id: int, when: datetime, now: datetime, reason: str) -> JobRun:
    return JobRun(
        job_id=job_id,
        scheduled_for=when,
        attempt=1,
        trigger="schedule",
        status="skipped",
        finished_at=now,
        error=reason,
    )


def _missed_reason(job: Job, when: datetime) -> str:
    tz = ZoneInfo(job.timezone)
    local = when.astimezone(tz).isoformat(timespec="seconds")
    if job.misfire == "skip":
        return f"missed: no scheduler ran at {local} (misfire policy skip)"
    return f"missed: no scheduler ran at {local}; a later run covers it"
