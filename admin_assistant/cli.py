"""The `admin-assistant` command: async-native, one event loop per command.

Each command is a coroutine run by `admin_assistant.runner.run_command`, the CLI's single
entry runner: it builds a Runtime on that loop, awaits the command, and disposes the engine on
the same loop before the loop closes. Errors go to stderr with a non-zero exit status.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from admin_assistant.runner import command_settings, run_command
from shared.auth import Actor
from shared.date_phrases import resolve_bound, resolve_window
from shared.errors import NotFound, ValidationFailed
from shared.pagination import PageRequest
from shared.runtime import Runtime

T = TypeVar("T")
_log = logging.getLogger("admin_assistant")
# The command line is an operator's tool: it reaches every configuration, as an admin does.
_OPERATOR = Actor(user_id=0, email="cli", is_admin=True)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """Archive calendar appointments; operate the gateway and its rollout flags."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the gateway (legacy Flask app plus async endpoints) with uvicorn."""
    import uvicorn

    from admin_assistant.metrics_dir import MetricsDirError, prepare_metrics_dir

    # Fail fast, before starting workers: a bad setting or an unreachable database is one
    # sentence on stderr, not a traceback per worker.
    settings = command_settings()
    run_command(lambda runtime: runtime.db.ping())
    try:
        prepare_metrics_dir(os.environ, settings.var_dir)
    except MetricsDirError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    from asgi_gateway.serving.http_limits import HTTP_PROTOCOL

    uvicorn.run(
        "asgi_gateway.app:app",
        host=host,
        port=port,
        workers=workers,
        lifespan="on",
        timeout_graceful_shutdown=30,
        # httptools with a cap on the request head (uvicorn's own has none).
        http=HTTP_PROTOCOL,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )


def _register_subcommands() -> None:
    from admin_assistant.calendars_cli import calendars, timesheet
    from admin_assistant.flags_cli import flags
    from admin_assistant.jobs_cli import jobs, scheduler
    from admin_assistant.users_cli import tokens, users

    main.add_command(flags)
    main.add_command(users)
    main.add_command(tokens)
    main.add_command(jobs)
    main.add_command(scheduler)
    main.add_command(calendars)
    main.add_command(timesheet)


# -- db ----------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Schema and demo data."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations."""
    from shared.migrate import current_revision, upgrade

    async def command(runtime: Runtime) -> None:
        await upgrade(runtime.db.engine)
        click.echo(f"database at revision {await current_revision(runtime.db.engine)}")

    run_command(command)


@db.command("seed")
@click.option("--demo", is_flag=True, required=True, help="Seed the demo data set.")
def db_seed(demo: bool) -> None:
    """Seed demo data: an admin, calendars, ~500 appointments with overlaps and a recurring
    meeting, an archive and a timesheet configuration, each archived once."""
    from shared.seed import seed_demo

    async def command(runtime: Runtime) -> None:
        login = await seed_demo(runtime.db)
        if login.created:
            for config_id in login.config_ids:
                await runtime.services.archive.run(None, config_id, label="demo seed")
        state = "seeded demo data" if login.created else "demo data already present"
        click.echo(f"{state}; sign in as {login.email} / {login.password}")

    run_command(command)


# -- archive -----------------------------------------------------------------------------------


@main.group()
def archive() -> None:
    """Archive runs."""


@archive.command("run")
@click.argument("config_id", type=int, required=False)
@click.option(
    "--user",
    "email",
    help="Without CONFIG_ID: run this user's default configuration (may be left out when "
    "the database has one user).",
)
@click.option(
    "--start",
    help="Window start: a date, a datetime with offset, or a phrase ('last 7 days', "
    "yesterday, 'this month'); days are the configuration's (default: its window).",
)
@click.option("--end", help="Window end, included: a date, a datetime or a phrase.")
@click.option(
    "--replace", is_flag=True, help="Replace mode: the archive's window equals the source's."
)
def archive_run(
    config_id: int | None, email: str | None, start: str | None, end: str | None, replace: bool
) -> None:
    """Run archive configuration CONFIG_ID now, with a progress bar.

    Without CONFIG_ID it runs the user's default configuration.
    """
    if config_id is not None and email is not None:
        raise click.UsageError(
            "give CONFIG_ID or --user (to run that user's default configuration), not both"
        )
    for option, value in (("--start", start), ("--end", end)):
        if value is not None:
            _check_bound(value, option)

    async def command(runtime: Runtime) -> dict[str, Any]:
        if config_id is None:
            config = await _default_config(runtime, email)
        else:
            config = await runtime.services.archive.get_config(_OPERATOR, config_id)
        zone = ZoneInfo(config["timezone"])
        today = datetime.now(zone).date()
        first, last = resolve_window(start, end, zone, today)
        bar = _ProgressBar()
        try:
            return await runtime.services.archive.run(
                None,
                config["id"],
                on_progress=bar.update,
                mode="replace" if replace else None,
                start=first,
                end=last,
            )
        finally:
            bar.close()

    entry = run_command(command)
    held = len(entry["details"].get("held", []))
    click.echo(
        f"run {entry['id']} {entry['status']} ({entry['mode']}): added {entry['added']}, "
        f"updated {entry['updated']}, removed {entry['removed']}, unchanged "
        f"{entry['unchanged']}, skipped {entry['skipped']}, overlap {entry['overlap']}, "
        f"waiting for a decision {held} "
        f"({entry['window_start']} .. {entry['window_end']}, {entry['duration_ms']} ms)"
    )
    for error in entry["errors"]:
        click.echo(f"  error: {error}", err=True)
    if entry["status"] == "failed":
        sys.exit(1)


async def _default_config(runtime: Runtime, email: str | None) -> dict[str, Any]:
    """The default configuration of the user `email` (or of the only user there is)."""
    users = runtime.services.users
    if email is None:
        listed = await users.listing(PageRequest(1, 2))
        if listed.total != 1:
            raise ValidationFailed(
                f"no CONFIG_ID, and the database has {listed.total} users: pass CONFIG_ID, "
                "or --user EMAIL to run that user's default configuration"
            )
        email = str(listed.items[0]["email"])
    actor = await users.actor_for(email)
    config = await runtime.services.archive.default_config(actor)
    if config is None:
        raise NotFound(
            f"no default configuration for {actor.email}; pass CONFIG_ID or set one "
            "('Make default' on the Archive configurations page, or PATCH "
            '/api/archive-configs/ID with {"is_default": true})'
        )
    return config


def _check_bound(value: str, option: str) -> None:
    """Refuse an unreadable --start/--end before anything runs (the zone is not needed yet)."""
    try:
        resolve_bound(value, ZoneInfo("UTC"), datetime.now(ZoneInfo("UTC")).date(), is_end=False)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


class _ProgressBar:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, width: int = 30) -> None:
        self.width = width
        self.is_tty = sys.stderr.isatty()
        self.drawn = False

    def update(self, done: int, total: int) -> None:
        if not self.is_tty or total == 0:
            return
        filled = self.width * done // total
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}")
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")


_register_subcommands()
