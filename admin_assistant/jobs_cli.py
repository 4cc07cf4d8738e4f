"""`admin-assistant jobs ...` (scheduled archive runs) and `admin-assistant scheduler`."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import click

from admin_assistant.runner import run_command
from shared.auth import Actor
from shared.pagination import PageRequest
from shared.representation import local_clock
from shared.runtime import Runtime
from shared.validation import parse_job

# The command line is an operator's tool: it sees every job, as an admin does.
_OPERATOR = Actor(user_id=0, email="cli", is_admin=True)


@click.group()
def jobs() -> None:
    """Scheduled archive runs: a configuration, a schedule and a time zone."""


@jobs.command("list")
def jobs_list() -> None:
    """Every job, with its next run in its own time zone."""

    async def command(runtime: Runtime) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            result = await runtime.services.jobs.list(_OPERATOR, PageRequest(page, 200))
            found += result.items
            if page >= result.pages:
                return found
            page += 1

    rows = run_command(command)
    click.echo(
        f"{'ID':>5} {'CONFIG':>6} {'SCHEDULE':20} {'TIME ZONE':20} {'ON':3} {'MISFIRE':8} "
        f"{'NEXT RUN':24} LAST RUN"
    )
    for job in rows:
        last = job["last_run"]
        click.echo(
            f"{job['id']:>5} {job['archive_config_id']:>6} {job['schedule']:20} "
            f"{job['timezone']:20} {'yes' if job['enabled'] else 'no':3} {job['misfire']:8} "
            f"{local_clock(job['next_run_at'], job['timezone']):24} "
            f"{'-' if last is None else last['status'] + ' ' + str(last['scheduled_for'])}"
        )


@jobs.command("create")
@click.argument("config_id", type=int)
@click.option("--schedule", required=True, help="'0 2 * * *', 'daily@02:00', 'every 15m', ...")
@click.option("--timezone", default=None, help="IANA zone (default: the configuration's).")
@click.option("--misfire", type=click.Choice(["skip", "run_once"]), default="run_once")
@click.option("--days-back", type=int, default=None, help="Override the configuration's.")
@click.option("--days-forward", type=int, default=None, help="Override the configuration's.")
@click.option("--disabled", is_flag=True, help="Create it disabled.")
def jobs_create(
    config_id: int,
    schedule: str,
    timezone: str | None,
    misfire: str,
    days_back: int | None,
    days_forward: int | None,
    disabled: bool,
) -> None:
    """Schedule archive configuration CONFIG_ID; the job belongs to the configuration's owner."""
    body = {
        "archive_config_id": config_id,
        "schedule": schedule,
        "timezone": timezone,
        "misfire": misfire,
        "days_back": days_back,
        "days_forward": days_forward,
        "enabled": not disabled,
    }

    async def command(runtime: Runtime) -> dict[str, Any]:
        values = parse_job(body)
        config = await runtime.services.archive.get_config(_OPERATOR, config_id)
        owner = Actor(user_id=config["owner_id"], email="cli", is_admin=False)
        return await runtime.services.jobs.create(owner, values)

    job = run_command(command)
    click.echo(
        f"created job {job['id']}: {job['schedule']} in {job['timezone']}, next run "
        f"{local_clock(job['next_run_at'], job['timezone'])}"
    )


@jobs.command("show")
@click.argument("job_id", type=int)
def jobs_show(job_id: int) -> None:
    """A job as JSON (the API's representation)."""

    async def command(runtime: Runtime) -> dict[str, Any]:
        return await runtime.services.jobs.get(_OPERATOR, job_id)

    click.echo(json.dumps(run_command(command), indent=2))


@jobs.command("trigger")
@click.argument("job_id", type=int)
def jobs_trigger(job_id: int) -> None:
    """Queue a run now; a live scheduler starts it (prints the run id on the last line)."""

    async def command(runtime: Runtime) -> dict[str, Any]:
        return await runtime.services.jobs.trigger(_OPERATOR, job_id)

    run = run_command(command)
    click.echo(f"queued run {run['id']} of job {job_id}; a live scheduler starts it", err=True)
    click.echo(run["id"])


@jobs.command("runs")
@click.argument("job_id", type=int)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 200))
def jobs_runs(job_id: int, limit: int) -> None:
    """The job's latest runs, newest first, with their archive counts."""

    async def command(runtime: Runtime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        job = await runtime.services.jobs.get(_OPERATOR, job_id)
        history = await runtime.services.jobs.history(_OPERATOR, job_id, PageRequest(1, limit))
        return job, list(history.items)

    job, runs = run_command(command)
    click.echo(f"{'RUN':>6} {'SCHEDULED FOR':24} {'STATUS':10} {'BY':24} {'ARCHIVED':>8} ERROR")
    for run in runs:
        counts = run["counts"]
        click.echo(
            f"{run['id']:>6} {local_clock(run['scheduled_for'], job['timezone']):24} "
            f"{run['status']:10} {run['claimed_by'] or '-':24} "
            f"{'-' if counts is None else counts['archived']:>8} {run['error'] or ''}"
        )


@jobs.command("delete")
@click.argument("job_id", type=int)
def jobs_delete(job_id: int) -> None:
    """Delete a job and its run history (the action log keeps the archive runs)."""

    async def command(runtime: Runtime) -> None:
        await runtime.services.jobs.delete(_OPERATOR, job_id)

    run_command(command)
    click.echo(f"deleted job {job_id}")


@click.command()
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics on this port (0: any free port, printed).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
def scheduler(metrics_port: int | None, metrics_host: str) -> None:
    """Run jobs in this process until SIGTERM/SIGINT (for web workers with AA_SCHEDULER=off).

    The same scheduler as the gateway's: any number of these and of gateway workers may run
    against one database; each scheduled time runs once.
    """
    from shared.scheduler import Scheduler

    async def command(runtime: Runtime) -> None:
        jobs_scheduler = Scheduler.for_runtime(runtime, mode="standalone")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = None
        if metrics_port is not None:
            server = _serve_metrics(jobs_scheduler.registry, metrics_host, metrics_port)
        await jobs_scheduler.start()
        click.echo(
            f"scheduler {jobs_scheduler.claimer} running (tick {jobs_scheduler.tick_s:g} s, "
            f"lease {jobs_scheduler.lease_s:g} s); SIGTERM stops it",
            err=True,
        )
        try:
            await stop.wait()
        finally:
            click.echo("scheduler stopping: letting running jobs finish", err=True)
            await jobs_scheduler.stop()
            if server is not None:
                server.shutdown()
                server.server_close()

    run_command(command)


def _serve_metrics(registry: Any, host: str, port: int) -> Any:
    import os

    from prometheus_client import start_http_server

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import CollectorRegistry, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    # prometheus_client serves from a thread of its own: plain HTTP, no event loop.
    server, _ = start_http_server(port, addr=host, registry=registry)
    click.echo(f"metrics on http://{host}:{server.server_port}/metrics", err=True)
    return server
