"""Scheduled jobs across real processes: gateway workers and standalone schedulers on one database.

Exactly once per scheduled time on PostgreSQL (three processes) and SQLite (two), kill -9
during a run (abandoned, retried once, nothing archived twice), SIGTERM (finish, or hand the
run back for retry), 409 on a trigger while running, and the scheduler's Prometheus metrics.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from shared import bridge
from shared.auth import Actor
from shared.config import load_settings
from shared.inputs.appointments import parse_appointment
from shared.inputs.archive import parse_archive_config
from shared.inputs.calendars import parse_calendar
from shared.models import ActionLog, Appointment, JobRun
from shared.runtime import Runtime
from shared.schedules import fires_between, parse_schedule
from tests.conftest import Person, ServerProcess, create_person
from tests.fakes.graph_server import FakeGraphServer

CLI = Path(sys.executable).parent / "admin-assistant"
FLAGS = "version: 1\nroutes:\n  jobs.list: {mode: legacy}\n"
ROOT = Path(__file__).resolve().parents[2]


class SchedulerProcess:
    """`admin-assistant scheduler` in a child process, logging to a file."""

    def __init__(self, environ: dict[str, str], log_path: Path, *args: str) -> None:
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("AA_")}
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(CLI), "scheduler", *args],
            env={**env, **environ, "PYTHONUNBUFFERED": "1"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class World:
    """People and a configuration on one database, and the processes started on it."""

    environ: dict[str, str]
    runtime: Runtime
    alice: Person
    config_id: int
    tmp_path: Path
    processes: list[Any]

    def gateway(self, *, workers: int = 1, **extra: str) -> ServerProcess:
        log = self.tmp_path / f"gateway-{len(self.processes)}.log"
        server = ServerProcess({**self.environ, **extra}, log, workers=workers)
        self.processes.append(server)
        return server.start()

    def scheduler(self, *args: str, **extra: str) -> SchedulerProcess:
        log = self.tmp_path / f"scheduler-{len(self.processes)}.log"
        process = SchedulerProcess({**self.environ, **extra}, log, *args)
        self.processes.append(process)
        return process

    def runs(self, job_id: int) -> list[JobRun]:
        async def read() -> list[JobRun]:
            async with self.runtime.db.read_session() as session:
                rows = await session.scalars(
                    select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.id)
                )
                return list(rows)

        return bridge.run(read())

    def count(self, model: Any, **where: Any) -> int:
        async def read() -> int:
            async with self.runtime.db.read_session() as session:
                query = select(func.count()).select_from(model)
                for name, value in where.items():
                    query = query.where(getattr(model, name) == value)
                return (await session.scalar(query)) or 0

        return bridge.run(read())

    def state(self) -> str:
        async def read() -> list[JobRun]:
            async with self.runtime.db.read_session() as session:
                return list(await session.scalars(select(JobRun).order_by(JobRun.id)))

        return "runs:\n" + "\n".join(
            f"  {r.id} job {r.job_id} #{r.attempt} {r.scheduled_for} {r.status} by {r.claimed_by}: "
            f"{r.error}"
            for r in bridge.run(read())
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {getattr(p, 'log_path', '?')} ---\n{p.logs()[-3000:]}" for p in self.processes
        )


def wait_for(what: str, check: Callable[[], Any], world: World, timeout_s: float = 30) -> Any:
    """Poll `check` until it returns something truthy; fail with the servers' logs otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{world.state()}\n{world.logs()}")
        time.sleep(0.1)


def _world(
    environ: dict[str, str], tmp_path: Path, *, graph: FakeGraphServer | None = None
) -> World:
    Path(environ["AA_FLAGS_FILE"]).write_text(FLAGS)
    if graph is not None:
        environ = {**environ, "AA_GRAPH_URL": graph.url, "AA_GRAPH_TIMEOUT_S": "60"}
    runtime = Runtime(load_settings(environ))
    alice = create_person(runtime, "alice@example.com")
    actor = Actor(alice.id, alice.email, False)
    calendars = runtime.services.calendars
    source_body: dict[str, Any] = {"name": "Work", "role": "source"}
    if graph is not None:
        graph.add_calendar("cal-work", mailbox=alice.email)
        source_body.update(provider="graph", provider_id="cal-work")
    source = bridge.run(calendars.create(actor, parse_calendar(source_body)))
    archive = bridge.run(calendars.create(actor, parse_calendar({"name": "A", "role": "archive"})))
    today = datetime.now().astimezone()
    for n in range(3):
        start = (today - timedelta(days=n)).replace(hour=9, minute=0, second=0, microsecond=0)
        if graph is not None:
            graph.add_event(
                "cal-work", start=start, end=start + timedelta(hours=1), subject=f"E{n}"
            )
        else:
            body = {
                "calendar_id": source["id"],
                "subject": f"Event {n}",
                "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat(),
            }
            bridge.run(runtime.services.appointments.create(actor, parse_appointment(body)))
    config = bridge.run(
        runtime.services.archive.create_config(
            actor,
            parse_archive_config(
                {
                    "name": "Work archive",
                    "source_calendar_id": source["id"],
                    "archive_calendar_id": archive["id"],
                    "timezone": "UTC",
                    "days_back": 7,
                }
            ),
        )
    )
    return World(environ, runtime, alice, config["id"], tmp_path, [])


@pytest.fixture
def world(environ: dict[str, str], tmp_path: Path) -> Iterator[World]:
    yield from _run_world(_world(environ, tmp_path))


@pytest.fixture
def pg_world(pg_environ: dict[str, str], tmp_path: Path) -> Iterator[World]:
    yield from _run_world(_world(pg_environ, tmp_path))


@pytest.fixture
def graph() -> Iterator[FakeGraphServer]:
    with FakeGraphServer() as server:
        yield server


def _run_world(world: World) -> Iterator[World]:
    try:
        yield world
    finally:
        for process in reversed(world.processes):
            process.stop()
        bridge.run(world.runtime.aclose())


def create_job(client: httpx.Client, world: World, **body: Any) -> dict[str, Any]:
    response = client.post("/api/jobs", json={"archive_config_id": world.config_id, **body})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


# -- exactly once ---------------------------------------------------------------------------------


def _run_every_second_for_15_s(world: World, server: ServerProcess, schedulers: int) -> None:
    with server.client(headers=world.alice.headers) as client:
        wait_for(
            f"{schedulers} live schedulers",
            lambda: len(client.get("/api/jobs/health").json()["schedulers"]) == schedulers,
            world,
        )
        job = create_job(client, world, schedule="every 1s")
        end = time.monotonic() + 15
        while time.monotonic() < end:  # the 15 s under observation; check the servers live
            assert client.get("/api/jobs/health").status_code == 200
            time.sleep(0.5)
        assert client.patch(f"/api/jobs/{job['id']}", json={"enabled": False}).status_code == 200
        wait_for(
            "the last run to end",
            lambda: all(r.status not in ("queued", "running") for r in world.runs(job["id"])),
            world,
        )
    runs = world.runs(job["id"])
    first, last = runs[0].scheduled_for, runs[-1].scheduled_for
    expected = fires_between(parse_schedule("every 1s"), UTC, first, last, 100)
    assert [r.scheduled_for for r in runs] == expected, "a scheduled time ran twice or never"
    assert len(expected) >= 10
    assert {r.attempt for r in runs} == {1}
    statuses = {r.status for r in runs}
    assert statuses <= {"succeeded", "skipped"}, [(r.id, r.status, r.error) for r in runs]
    assert "succeeded" in statuses
    succeeded = [r for r in runs if r.status == "succeeded"]
    # Each succeeded run wrote one action log row; the archive itself ran once in all.
    assert world.count(ActionLog) == len(succeeded)
    assert world.count(Appointment) == 6  # three sources, three copies
    by = {r.claimed_by for r in succeeded}
    print(f"{len(runs)} scheduled times, {len(succeeded)} runs by {len(by)} processes: {by}")


@pytest.mark.postgres
@pytest.mark.slow
def test_three_processes_on_postgresql_run_every_second_exactly_once(pg_world: World) -> None:
    gateway = pg_world.gateway(workers=2)
    pg_world.scheduler()
    _run_every_second_for_15_s(pg_world, gateway, schedulers=3)


@pytest.mark.slow
def test_two_processes_on_sqlite_run_every_second_exactly_once(world: World) -> None:
    gateway = world.gateway()
    world.scheduler()
    _run_every_second_for_15_s(world, gateway, schedulers=2)


# -- a process dies, or is stopped, during a run -------------------------------------------------


@pytest.fixture
def graph_world(environ: dict[str, str], tmp_path: Path, graph: FakeGraphServer) -> Iterator[World]:
    """A world whose source calendar is remote: the fake Graph API can hold a run mid-way."""
    yield from _run_world(_world(environ, tmp_path, graph=graph))


def _running(world: World, job_id: int) -> JobRun | None:
    return next((r for r in world.runs(job_id) if r.status == "running"), None)


def _calendar_reads(graph: FakeGraphServer) -> int:
    """calendarView requests the fake received: runs' reads, not the set-up's calendar check."""
    return sum(r.path.endswith("/calendarView") for r in graph.requests)


def _stalled(world: World, job_id: int, graph: FakeGraphServer) -> JobRun:
    """The job's running run, once its read of the remote calendar reached the fake (and is
    held there after `hang_next`). Counting every request would not do: creating the source
    calendar asked the fake for it already, before the run started."""
    run = wait_for("the run to start", lambda: _running(world, job_id), world)
    wait_for("its calendarView request", lambda: _calendar_reads(graph) >= 1, world)
    return run  # type: ignore[no-any-return]


def test_a_killed_process_run_is_abandoned_then_retried_once_archiving_nothing_twice(
    graph_world: World, graph: FakeGraphServer
) -> None:
    world = graph_world
    lease = {"AA_JOB_LEASE_S": "2"}
    gateways = [world.gateway(**lease), world.gateway(**lease)]
    by_pid = {g.proc.pid: g for g in gateways if g.proc is not None}
    graph.hang_next(1)  # the first archive run stalls reading the source calendar
    with gateways[0].client(headers=world.alice.headers) as client:
        job = create_job(client, world, schedule="weekly@mon 02:00", misfire="run_once")
        assert client.post(f"/api/jobs/{job['id']}/trigger").status_code == 202
    first = _stalled(world, job["id"], graph)
    owner = by_pid[int((first.claimed_by or "").rsplit(":", 1)[1])]
    owner.stop(signal.SIGKILL)

    def retried() -> list[JobRun] | None:
        runs = world.runs(job["id"])
        return runs if len(runs) == 2 and runs[1].status == "succeeded" else None

    abandoned, retry = wait_for("the retry to succeed", retried, world)
    assert (abandoned.attempt, abandoned.status) == (1, "abandoned")
    assert (
        abandoned.error is not None and f"no heartbeat from {first.claimed_by}" in abandoned.error
    )
    assert (retry.attempt, retry.scheduled_for) == (2, abandoned.scheduled_for)
    assert retry.claimed_by != first.claimed_by and retry.action_log_id is not None
    # Two reads of the source: the killed run's, held, and the retry's, answered at once.
    assert _calendar_reads(graph) == 2
    # Three remote events, each archived once; one action log row: the retry's.
    assert world.count(Appointment) == 3
    assert world.count(ActionLog) == 1
    with gateways[1 - gateways.index(owner)].client(headers=world.alice.headers) as client:
        listed = client.get(f"/api/jobs/{job['id']}/runs").json()["data"]
    assert [r["status"] for r in listed] == ["succeeded", "abandoned"]


def test_sigterm_hands_an_unfinished_run_back_and_another_scheduler_finishes_it(
    graph_world: World, graph: FakeGraphServer
) -> None:
    world = graph_world
    gateway = world.gateway(AA_JOB_SHUTDOWN_GRACE_S="0.5")
    graph.hang_next(1)
    with gateway.client(headers=world.alice.headers) as client:
        job = create_job(client, world, schedule="daily@02:00", misfire="skip")
        run = client.post(f"/api/jobs/{job['id']}/trigger").json()
    _stalled(world, job["id"], graph)
    # uvicorn re-raises SIGTERM after its graceful shutdown (see test_resilience.py).
    assert gateway.stop(signal.SIGTERM) == -signal.SIGTERM
    assert "Application shutdown complete" in gateway.logs()
    interrupted, queued = world.runs(job["id"])
    assert (interrupted.id, interrupted.status) == (run["id"], "abandoned")
    assert "shut down before the run finished" in (interrupted.error or "")
    assert (queued.attempt, queued.status) == (2, "queued")
    assert world.count(ActionLog) == 0  # nothing half-done was recorded

    world.scheduler()
    done = wait_for(
        "the queued retry to succeed",
        lambda: world.runs(job["id"])[1].status == "succeeded" and world.runs(job["id"]),
        world,
    )
    assert done[1].action_log_id is not None
    assert world.count(Appointment) == 3


def test_sigterm_lets_a_run_that_finishes_in_time_succeed(
    graph_world: World, graph: FakeGraphServer
) -> None:
    world = graph_world
    graph.latency_ms = 1500  # each Graph request takes 1.5 s: the run is mid-way at SIGTERM
    scheduler = world.scheduler(AA_JOB_SHUTDOWN_GRACE_S="30")
    gateway = world.gateway(AA_SCHEDULER="off")
    with gateway.client(headers=world.alice.headers) as client:
        # AA_SCHEDULER=off: the gateway runs no scheduler; the standalone one is all there is.
        schedulers = wait_for(
            "the scheduler", lambda: client.get("/api/jobs/health").json()["schedulers"], world
        )
        assert [(s["mode"], s["pid"]) for s in schedulers] == [("standalone", scheduler.proc.pid)]
        job = create_job(client, world, schedule="daily@02:00")
        client.post(f"/api/jobs/{job['id']}/trigger")
    _stalled(world, job["id"], graph)
    assert scheduler.stop(signal.SIGTERM) == 0
    [run] = world.runs(job["id"])
    assert run.status == "succeeded", (run.status, run.error, scheduler.logs())
    assert run.claimed_by is not None and run.claimed_by.endswith(f":{scheduler.proc.pid}")
    assert world.count(Appointment) == 3


def test_a_trigger_while_the_job_runs_is_refused_on_both_backends(
    graph_world: World, graph: FakeGraphServer
) -> None:
    world = graph_world
    admin = create_person(world.runtime, "admin@example.com", is_admin=True)
    gateway = world.gateway()
    graph.hang_next(1)
    with gateway.client(headers=world.alice.headers) as client:
        job = create_job(client, world, schedule="daily@02:00")
        first = client.post(f"/api/jobs/{job['id']}/trigger")
        assert first.status_code == 202 and first.json()["status"] == "queued"
        _stalled(world, job["id"], graph)
        answers = {}
        for backend in ("legacy", "async"):
            response = client.post(
                f"/api/jobs/{job['id']}/trigger",
                headers={**admin.headers, "X-Backend-Override": backend},
            )
            assert response.headers["x-served-by"] == backend
            answers[backend] = (response.status_code, response.json())
    assert answers["legacy"] == answers["async"]
    status, body = answers["legacy"]
    assert status == 409 and body["error"]["code"] == "conflict"
    assert f"already has a run running (run {first.json()['id']})" in body["error"]["message"]


# -- metrics --------------------------------------------------------------------------------------


def test_scheduler_metrics_reach_metrics_of_a_live_server(world: World, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    gateway = world.gateway(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    with gateway.client(headers=world.alice.headers) as client:
        job = create_job(client, world, schedule="every 1s")
        wait_for(
            "two runs",
            lambda: sum(r.status == "succeeded" for r in world.runs(job["id"])) >= 2,
            world,
        )
        client.patch(f"/api/jobs/{job['id']}", json={"enabled": False})
        text = client.get("/metrics").text
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("scheduler_")
    }
    assert samples['scheduler_runs_total{result="succeeded"}'] >= 2
    assert samples["scheduler_lag_seconds_count"] >= 2
    assert "scheduler_runs_in_progress" in samples
