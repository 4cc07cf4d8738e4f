"""The process's job scheduler: ticks on the running event loop, runs claimed jobs, keeps leases.

One Scheduler per process, on the loop that already serves it (the gateway's server loop in
each worker, or the standalone `admin-assistant scheduler` command's): no threads, no loop of
its own, no loop per job. Every tick it claims due and queued runs through `JobClaims` (the
database decides which process gets a run), runs them as tasks it owns, renews their leases,
and marks other processes' lapsed runs abandoned. `stop()` stops claiming, lets running jobs
finish within the shutdown grace, and hands back the rest for retry: nothing half-done is
ever recorded as succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.claims import ClaimedRun, JobClaims
from shared.db import Database, is_missing_schema
from shared.delegation import acting_for
from shared.errors import AppError
from shared.models import utcnow
from shared.services.archive import ArchiveService, day_window
from shared.services.jobs import JobService

if TYPE_CHECKING:
    from shared.runtime import Runtime

__all__ = ["Scheduler"]

Mode = Literal["gateway", "standalone"]
_log = logging.getLogger(__name__)
_LAG_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600)
_FORGET_SCHEDULERS_AFTER = timedelta(days=1)
_WAKE_AFTER_DUE_S = 0.005


class SchedulerMetrics:
    """The scheduler's Prometheus metrics, in the registry it was given (never the global one).

    Create them once per registry: schedulers that come and go (one per gateway lifespan) share
    one set.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "scheduler_runs_total",
            "Job runs by result (succeeded, failed, abandoned, skipped)",
            ["result"],
            registry=registry,
        )
        self.lag = Histogram(
            "scheduler_lag_seconds",
            "Seconds between a run's scheduled time and its start",
            buckets=_LAG_BUCKETS_S,
            registry=registry,
        )
        self.in_progress = Gauge(
            "scheduler_runs_in_progress",
            "Job runs in progress",
            registry=registry,
            multiprocess_mode="livesum",
        )


class Scheduler:
    """Runs jobs on the current event loop, coordinated with every other scheduler by the database.

    `registry` receives the metrics (a fresh CollectorRegistry when not given; with
    PROMETHEUS_MULTIPROC_DIR set they also reach the shared files). At most `max_running`
    runs execute at once in this process; due jobs beyond that wait for the next tick or
    another process.
    """

    def __init__(
        self,
        db: Database,
        archive: ArchiveService,
        jobs: JobService,
        *,
        tick_s: float = 1.0,
        lease_s: float = 60.0,
        misfire_grace_s: float = 60.0,
        shutdown_grace_s: float = 10.0,
        mode: Mode = "gateway",
        registry: CollectorRegistry | None = None,
        metrics: SchedulerMetrics | None = None,
        max_running: int = 4,
    ) -> None:
        self.archive = archive
        self.jobs = jobs
        self.tick_s = tick_s
        self.lease_s = lease_s
        self.shutdown_grace_s = shutdown_grace_s
        self.mode = mode
        self.max_running = max_running
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.claimer = f"{self.host}:{self.pid}"
        self.claims = JobClaims(db, self.claimer, lease_s=lease_s, grace_s=misfire_grace_s)
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = metrics if metrics is not None else SchedulerMetrics(self.registry)
        # A beat (leases, own row, reaping) every quarter lease: three can fail in a row
        # before a healthy run's lease lapses.
        self.beat_s = min(lease_s / 4, 5.0)
        self.last_lag_s: float | None = None
        self._running: dict[int, asyncio.Task[None]] = {}
        self._finishing: set[int] = set()  # runs recording their outcome: no lease to renew
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tick_lock = asyncio.Lock()
        self._is_claiming = False
        self._is_registered = False
        self._last_beat = 0.0
        self._last_beat_ok = time.monotonic()
        self._is_failing = False
        self._next_due_at: datetime | None = None
        self._remove_listener: Callable[[], None] | None = None

    @classmethod
    def for_runtime(
        cls,
        runtime: Runtime,
        *,
        mode: Mode,
        registry: CollectorRegistry | None = None,
        metrics: SchedulerMetrics | None = None,
    ) -> Scheduler:
        """A scheduler over `runtime`'s database and services, tuned by its settings."""
        settings = runtime.settings
        return cls(
            runtime.db,
            runtime.services.archive,
            runtime.services.jobs,
            tick_s=settings.scheduler_tick_s,
            lease_s=settings.job_lease_s,
            misfire_grace_s=settings.job_misfire_grace_s,
            shutdown_grace_s=settings.job_shutdown_grace_s,
            mode=mode,
            registry=registry,
            metrics=metrics,
        )

    @property
    def running_run_ids(self) -> list[int]:
        return list(self._running)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start ticking on the running loop; returns at once (the first tick follows)."""
        if self._task is not None:
            raise RuntimeError("this scheduler is already started; create one per process")
        # Forked workers inherit the parent's pid in the object; take this process's own.
        self.pid = os.getpid()
        self.claimer = self.claims.claimer = f"{self.host}:{self.pid}"
        self._is_claiming = True
        self._remove_listener = self.jobs.add_listener(self.wake)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="scheduler")

    def wake(self) -> None:
        """Tick now (a run was queued in this process); call it on the scheduler's loop."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming; let runs finish within the shutdown grace; release the rest for retry."""
        if self._task is None:
            return
        self._is_claiming = False
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        async with self._tick_lock:
            pass  # a tick in progress may still start what it claimed; later ones only beat
        running = dict(self._running)
        interrupted: list[int] = []
        if running:
            _log.info(
                "scheduler: waiting up to %g s for %d run(s)", self.shutdown_grace_s, len(running)
            )
            _, pending = await asyncio.wait(running.values(), timeout=self.shutdown_grace_s)
            interrupted = [run_id for run_id, task in running.items() if task in pending]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        try:
            if interrupted:
                released = await self.claims.release(interrupted, utcnow())
                self.metrics.runs.labels("abandoned").inc(released)
                _log.warning("scheduler: %d run(s) interrupted by shutdown, queued again", released)
            if self._is_registered:  # never registered: nothing to take back
                await self.claims.unregister()
        except Exception:
            _log.exception("scheduler: could not record its shutdown (leases will lapse instead)")

    # -- ticking ------------------------------------------------------------------------------

    async def _loop(self) -> None:
        # The first tick waits a tick (or a wake-up): the start-up of the process (schema
        # checks, other workers starting beside it) goes first, without our writes.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.tick_s)
        self._wake.clear()
        while True:
            try:
                async with self._tick_lock:
                    await self.tick()
                if self._is_failing:
                    _log.warning("scheduler: the database answers again")
                    self._is_failing = False
            except Exception as error:
                if self._is_failing:
                    pass
                elif is_missing_schema(error):
                    # Not a bug to trace: the database was never migrated, or is behind.
                    _log.error(
                        "scheduler: the database has no job tables yet (%s); run "
                        "'admin-assistant db upgrade' (retrying every %g s)",
                        _first_line(error),
                        self.tick_s,
                    )
                else:
                    _log.exception("scheduler: tick failed (retrying every %g s)", self.tick_s)
                self._is_failing = True
                self._fence_if_lease_lost()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sleep_s())
            self._wake.clear()

    def _sleep_s(self) -> float:
        # Wake at the next due time when it comes before the next tick: runs start on time,
        # not up to a tick late (and every scheduler contends for them at once).
        if self._next_due_at is None:
            return self.tick_s
        until_due = (self._next_due_at - utcnow()).total_seconds()
        if until_due <= 0:  # due, yet not taken: at capacity, or its schedule cannot be planned
            return self.tick_s
        return min(self.tick_s, until_due + _WAKE_AFTER_DUE_S)

    async def tick(self) -> None:
        """One round: keep leases, reap lapsed runs, claim queued and due runs, start them."""
        now = utcnow()
        if not self._is_registered:
            await self.claims.register(self.host, self.pid, self.mode, now)
            self._is_registered = True
        if time.monotonic() - self._last_beat >= self.beat_s:
            await self._beat()
        if not self._is_claiming:
            return
        # One cheap read first: an idle tick (nothing queued, nothing due) ends with it.
        outlook = await self.claims.outlook()
        self._next_due_at = outlook.next_due_at
        capacity = self.max_running - len(self._running)
        if capacity > 0 and outlook.has_queued:
            for claimed in await self.claims.claim_queued(now, capacity):
                self._start(claimed)
        capacity = self.max_running - len(self._running)
        due_at = outlook.next_due_at
        if capacity > 0 and due_at is not None and due_at <= now:
            due = await self.claims.claim_due(now, capacity)
            if due.skipped:
                self.metrics.runs.labels("skipped").inc(due.skipped)
            for claimed in due.runs:
                self._start(claimed)
            self._next_due_at = await self.claims.next_due_at()

    async def _beat(self) -> None:
        now = utcnow()
        # A run recording its outcome is left out: once recorded it is no longer `running`, and
        # the renewal would take it for a lost lease and cancel the end of a finished run.
        held = [run_id for run_id in self._running if run_id not in self._finishing]
        kept = await self.claims.heartbeat(held, now)
        for run_id in set(held) - kept:
            # Another scheduler found our lease lapsed and may be retrying the run already:
            # stop this copy rather than run the job twice at once.
            _log.warning("scheduler: lost the lease of run %s; stopping it", run_id)
            task = self._running.get(run_id)
            if task is not None:
                task.cancel()
        await self.claims.report(now, self.last_lag_s, len(self._running))
        reaped = await self.claims.reap(now)
        if reaped:
            self.metrics.runs.labels("abandoned").inc(reaped)
            _log.warning("scheduler: marked %d run(s) of stopped processes abandoned", reaped)
        await self.claims.forget_schedulers_before(now - _FORGET_SCHEDULERS_AFTER)
        self._last_beat = self._last_beat_ok = time.monotonic()

    def _fence_if_lease_lost(self) -> None:
        # Without the database no lease is renewed: before another scheduler may take our
        # runs over (one lease later), stop them, so no job ever runs twice at once.
        if self._running and time.monotonic() - self._last_beat_ok > self.lease_s * 0.75:
            _log.error(
                "scheduler: leases not renewed for too long; stopping %d run(s)", len(self._running)
            )
            for task in self._running.values():
                task.cancel()

    # -- running ------------------------------------------------------------------------------

    def _start(self, claimed: ClaimedRun) -> None:
        now = utcnow()
        if claimed.trigger == "schedule":
            self.last_lag_s = max(0.0, (now - claimed.scheduled_for).total_seconds())
            self.metrics.lag.observe(self.last_lag_s)
        task = asyncio.get_running_loop().create_task(
            self._execute(claimed), name=f"job-run-{claimed.run_id}"
        )
        self._running[claimed.run_id] = task
        self.metrics.in_progress.inc()

        def forget(_: asyncio.Task[None]) -> None:
            self._running.pop(claimed.run_id, None)
            self._finishing.discard(claimed.run_id)
            self.metrics.in_progress.dec()

        task.add_done_callback(forget)

    async def _execute(self, claimed: ClaimedRun) -> None:
        """Archive the run's window and record the outcome; cancellation records nothing."""
        action_log_id: int | None = None
        error: str | None = None
        try:
            tz = ZoneInfo(claimed.timezone)
            start, end = day_window(
                tz,
                claimed.scheduled_for.astimezone(tz).date(),
                claimed.days_back,
                claimed.days_forward,
            )
            with acting_for(claimed.owner_id):
                entry = await self.archive.run(
                    None,
                    claimed.archive_config_id,
                    start=start,
                    end=end,
                    label=f"job {claimed.job_id}",
                )
            action_log_id = entry["id"]
            if entry["status"] != "success":
                error = f"archive run {entry['status']}: " + "; ".join(entry["errors"][:3])
        except AppError as exc:
            error = exc.message
        except Exception:
            _log.exception("run %s of job %s failed", claimed.run_id, claimed.job_id)
            error = "internal error; it has been logged"
        result = "succeeded" if error is None else "failed"
        self._finishing.add(claimed.run_id)
        try:
            recorded = await self.claims.finish(
                claimed.run_id, result, utcnow(), action_log_id=action_log_id, error=error
            )
        except Exception:
            _log.exception("run %s: could not record its end; its lease will lapse", claimed.run_id)
            return
        if recorded:
            self.metrics.runs.labels(result).inc()
        else:
            _log.warning(
                "run %s finished after losing its lease; result not recorded", claimed.run_id
            )


def _first_line(error: BaseException) -> str:
    inner = getattr(error, "orig", None) or error
    lines = str(inner).strip().splitlines()
    return lines[0] if lines else type(inner).__name__
