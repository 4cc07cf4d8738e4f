"""Jobs: scheduled archive runs. CRUD with owner rules, run now, run history, scheduler health."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Actor
from shared.db import Database
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.models import ActionLog, ArchiveConfiguration, Job, JobRun, utcnow
from shared.pagination import Page, PageRequest
from shared.repositories import ArchiveConfigRepository, JobRepository
from shared.representation import instant, job_json, job_run_json
from shared.schedules import next_fire, parse_schedule
from shared.services.audit import record

__all__ = ["JobService"]

_HEALTH_NEXT_RUNS = 10
# Fields whose change moves the job's next run (recomputed from now).
_TIMING_FIELDS = frozenset({"schedule", "timezone", "enabled"})


def _owned_or_404(job: Job | None, job_id: int, actor: Actor) -> Job:
    if job is None or (job.owner_id != actor.user_id and not actor.is_admin):
        raise NotFound(f"job {job_id} not found")
    return job


def _next_run(job: Job, now: datetime) -> datetime | None:
    if not job.enabled:
        return None
    return next_fire(parse_schedule(job.schedule), ZoneInfo(job.timezone), now)


class JobService:
    """Jobs and their runs; every method is one transaction.

    `on_queued` listeners (the process's scheduler) are called on the loop when a run was
    queued, so a trigger starts at once instead of at the next tick.
    """

    def __init__(self, db: Database, *, lease_s: float = 60.0) -> None:
        self.db = db
        self.lease_s = lease_s
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after each queued run; returns a function removing it again."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- jobs ---------------------------------------------------------------------------------

    async def list(self, actor: Actor, page: PageRequest) -> Page[dict[str, Any]]:
        async with self.db.read_session() as session:
            repo = JobRepository(session)
            result = await repo.page(None if actor.is_admin else actor.user_id, page)
            last = await repo.last_runs([job.id for job in result.items])
        items = [job_json(job, last.get(job.id)) for job in result.items]
        return Page(items, result.page, result.per_page, result.total)

    async def get(self, actor: Actor, job_id: int) -> dict[str, Any]:
        async with self.db.read_session() as session:
            repo = JobRepository(session)
            job = _owned_or_404(await repo.get(job_id), job_id, actor)
            last = await repo.last_runs([job.id])
        return job_json(job, last.get(job.id))

    async def create(self, actor: Actor, values: dict[str, Any]) -> dict[str, Any]:
        """A new job; its time zone defaults to the configuration's."""
        async with self.db.session() as session:
            config = await self._owned_config(session, actor, values["archive_config_id"])
            job = Job(owner_id=actor.user_id, **values)
            if job.timezone is None:
                job.timezone = config.timezone
            job.next_run_at = _next_run(job, utcnow())
            await JobRepository(session).add(job)
            after = job_json(job, None)
            await record(session, actor.label, "job.create", f"job:{job.id}", after=after)
            return after

    async def update(self, actor: Actor, job_id: int, values: dict[str, Any]) -> dict[str, Any]:
        async with self.db.session() as session:
            repo = JobRepository(session)
            job = _owned_or_404(await repo.get(job_id, for_update=True), job_id, actor)
            if "archive_config_id" in values:
                await self._owned_config(session, actor, values["archive_config_id"])
            before = job_json(job, None)
            changed = {k for k, v in values.items() if getattr(job, k) != v}
            for key, value in values.items():
                setattr(job, key, value)
            if changed & _TIMING_FIELDS:
                job.next_run_at = _next_run(job, utcnow())
            await session.flush()
            if changed:
                await record(
                    session,
                    actor.label,
                    "job.update",
                    f"job:{job.id}",
                    before=before,
                    after=job_json(job, None),
                )
            last = await repo.last_runs([job.id])
            return job_json(job, last.get(job.id))

    async def delete(self, actor: Actor, job_id: int) -> None:
        """Delete the job and its run history (a run in progress finishes; its log stays)."""
        async with self.db.session() as session:
            repo = JobRepository(session)
            job = _owned_or_404(await repo.get(job_id), job_id, actor)
            before = job_json(job, None)
            await repo.delete(job)
            await record(session, actor.label, "job.delete", f"job:{job_id}", before=before)

    # -- runs ---------------------------------------------------------------------------------

    async def trigger(self, actor: Actor, job_id: int) -> dict[str, Any]:
        """Queue a run now (any live scheduler starts it); 409 while one is queued or running."""
        try:
            async with self.db.session() as session:
                repo = JobRepository(session)
                job = _owned_or_404(await repo.get(job_id, for_update=True), job_id, actor)
                if not job.enabled:
                    raise Conflict(f"job {job_id} is disabled; enable it to run it")
                active = await repo.active_run(job.id)
                if active is not None:
                    raise Conflict(
                        f"job {job_id} already has a run {active.status} (run {active.id})"
                    )
                run = await repo.add_run(
                    JobRun(
                        job_id=job.id,
                        scheduled_for=utcnow(),
                        attempt=1,
                        trigger="manual",
                        status="queued",
                    )
                )
                body = job_run_json(run)
                await record(
                    session, actor.label, "job.trigger", f"job:{job.id}", after={"run_id": run.id}
                )
        except IntegrityError:
            # SQLite reads without a lock: two triggers may both see no active run; the
            # one-active-run index refuses the second.
            raise Conflict(f"job {job_id} already has a run queued or running") from None
        for listener in list(self._listeners):
            listener()
        return body

    async def runs(self, actor: Actor, job_id: int, page: PageRequest) -> Page[dict[str, Any]]:
        """The job's runs, newest first."""
        async with self.db.read_session() as session:
            repo = JobRepository(session)
            _owned_or_404(await repo.get(job_id), job_id, actor)
            result = await repo.runs(job_id, page)
        return Page(
            [job_run_json(run) for run in result.items], result.page, result.per_page, result.total
        )

    async def history(self, actor: Actor, job_id: int, page: PageRequest) -> Page[dict[str, Any]]:
        """`runs` for people: each run with its attempt, heartbeat and its action log counts."""
        async with self.db.read_session() as session:
            repo = JobRepository(session)
            _owned_or_404(await repo.get(job_id), job_id, actor)
            result = await repo.runs(job_id, page)
            log_ids = [r.action_log_id for r in result.items if r.action_log_id is not None]
            logs = {
                entry.id: entry
                for entry in await session.scalars(
                    select(ActionLog).where(ActionLog.id.in_(log_ids))
                )
            }
        items = []
        for run in result.items:
            entry = logs.get(run.action_log_id) if run.action_log_id is not None else None
            items.append(
                {
                    **job_run_json(run),
                    "attempt": run.attempt,
                    "trigger": run.trigger,
                    "heartbeat_at": instant(run.heartbeat_at),
                    "counts": None
                    if entry is None
                    else {
                        "archived": entry.archived,
                        "skipped": entry.skipped,
                        "duplicate": entry.duplicate,
                        "overlap": entry.overlap,
                        "mode": entry.mode,
                        "added": entry.added,
                        "updated": entry.updated,
                        "removed": entry.removed,
                        "unchanged": entry.unchanged,
                        "held": len((entry.details or {}).get("held", [])),
                    },
                }
            )
        return Page(items, result.page, result.per_page, result.total)

    async def health(self, actor: Actor) -> dict[str, Any]:
        """Live schedulers (ticked within the lease), the next runs due and runs in progress.

        Users see their own jobs' runs; admins see every job's.
        """
        now = utcnow()
        owner = None if actor.is_admin else actor.user_id
        async with self.db.read_session() as session:
            repo = JobRepository(session)
            schedulers = await repo.schedulers_seen_since(now - timedelta(seconds=self.lease_s))
            due = await repo.next_due(owner, _HEALTH_NEXT_RUNS)
            running = await repo.count_runs(owner, "running")
            queued = await repo.count_runs(owner, "queued")
        return {
            "status": "ok" if schedulers else "no_scheduler",
            "schedulers": [
                {
                    "id": s.id,
                    "host": s.host,
                    "pid": s.pid,
                    "mode": s.mode,
                    "started_at": instant(s.started_at),
                    "last_tick_at": instant(s.last_tick_at),
                    "lag_s": None if s.lag_s is None else round(s.lag_s, 3),
                    "running": s.running,
                }
                for s in schedulers
            ],
            "next_runs": [
                {
                    "job_id": job.id,
                    "archive_config_id": job.archive_config_id,
                    "schedule": job.schedule,
                    "timezone": job.timezone,
                    "next_run_at": instant(job.next_run_at),
                    "next_run_local": instant(job.next_run_at, ZoneInfo(job.timezone)),
                }
                for job in due
            ],
            "runs_in_progress": running,
            "runs_queued": queued,
        }

    # -- rules --------------------------------------------------------------------------------

    async def _owned_config(
        self, session: AsyncSession, actor: Actor, config_id: int
    ) -> ArchiveConfiguration:
        config = await ArchiveConfigRepository(session).get(config_id)
        if config is None or (config.owner_id != actor.user_id and not actor.is_admin):
            message = f"archive configuration {config_id} not found"
            raise ValidationFailed(
                "invalid job: check archive_config_id",
                details=[{"field": "archive_config_id", "message": message}],
            )
        return config
