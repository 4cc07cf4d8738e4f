"""The `admin-assistant` command: async-native, one event loop per command.

Each command is a coroutine run by `_execute`, the CLI's single entry runner: it builds a
Runtime on that loop, awaits the command, and disposes the engine on the same loop before the
loop closes. Errors go to stderr with a non-zero exit status.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from shared.config import load_settings
from shared.errors import AppError
from shared.runtime import Runtime
from shared.validation import parse_instant

T = TypeVar("T")
_log = logging.getLogger("admin_assistant")


def _execute(command: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run one command's coroutine on a fresh loop with its own Runtime; exit 1 on a known error."""

    async def main() -> T:
        runtime = Runtime(load_settings())
        try:
            return await command(runtime)
        finally:
            await runtime.aclose()

    try:
        return asyncio.run(main())
    except AppError as exc:
        click.echo(f"error: {exc.message}", err=True)
        for detail in exc.details:
            click.echo(f"  {detail.get('field', '')}: {detail.get('message', '')}", err=True)
        sys.exit(1)


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
    import os
    import shutil

    import uvicorn

    settings = load_settings()  # fail fast, before starting workers, on a bad setting
    # Workers share Prometheus metrics through files in one directory, wiped per run
    # (prometheus_client's multiprocess mode); set before any worker imports the client.
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if metrics_dir is None:
        metrics_dir = str(settings.var_dir / "prometheus")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir, exist_ok=True)
    uvicorn.run(
        "asgi_gateway.app:app",
        host=host,
        port=port,
        workers=workers,
        lifespan="on",
        timeout_graceful_shutdown=30,
    )


def _register_subcommands() -> None:
    from admin_assistant.flags_cli import flags
    from admin_assistant.jobs_cli import jobs, scheduler

    main.add_command(flags)
    main.add_command(jobs)
    main.add_command(scheduler)


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

    _execute(command)


@db.command("seed")
@click.option("--demo", is_flag=True, required=True, help="Seed the demo data set.")
def db_seed(demo: bool) -> None:
    """Seed demo data (an admin, calendars, ~500 appointments, an archive configuration)."""
    from shared.seed import seed_demo

    async def command(runtime: Runtime) -> None:
        login = await seed_demo(runtime.db)
        state = "seeded demo data" if login.created else "demo data already present"
        click.echo(f"{state}; sign in as {login.email} / {login.password}")

    _execute(command)


# -- users and tokens --------------------------------------------------------------------------


@main.group()
def users() -> None:
    """User accounts."""


@users.command("create")
@click.argument("email")
@click.option("--password", required=True, help="At least 8 characters.")
@click.option("--name", default="")
@click.option("--admin", is_flag=True, help="Give the user admin rights.")
def users_create(email: str, password: str, name: str, admin: bool) -> None:
    """Create a user."""

    async def command(runtime: Runtime) -> None:
        user = await runtime.services.users.create(email, password, name=name, is_admin=admin)
        click.echo(f"created user {user['id']} {user['email']}{' (admin)' if admin else ''}")

    _execute(command)


@main.group()
def tokens() -> None:
    """API tokens."""


@tokens.command("create")
@click.option("--user", "email", required=True, help="Email of the token's owner.")
@click.option("--name", default="", help="A label for the token.")
def tokens_create(email: str, name: str) -> None:
    """Issue an API token; it is printed once, alone on the last line."""

    async def command(runtime: Runtime) -> str:
        return await runtime.services.users.create_token(email, name=name)

    token = _execute(command)
    click.echo("store this token now; it cannot be shown again:", err=True)
    click.echo(token)


# -- archive -----------------------------------------------------------------------------------


@main.group()
def archive() -> None:
    """Archive runs."""


@archive.command("run")
@click.argument("config_id", type=int)
@click.option("--start", help="Window start (ISO date or datetime, default: the config's window).")
@click.option("--end", help="Window end (ISO date or datetime; a date includes that whole day).")
def archive_run(config_id: int, start: str | None, end: str | None) -> None:
    """Run an archive configuration now, with a progress bar."""
    window = {"start": _instant(start, "--start", False), "end": _instant(end, "--end", True)}

    async def command(runtime: Runtime) -> dict[str, Any]:
        bar = _ProgressBar()
        try:
            return await runtime.services.archive.run(
                None, config_id, on_progress=bar.update, **window
            )
        finally:
            bar.close()

    entry = _execute(command)
    click.echo(
        f"run {entry['id']} {entry['status']}: archived {entry['archived']}, skipped "
        f"{entry['skipped']}, duplicate {entry['duplicate']}, overlap {entry['overlap']} "
        f"({entry['window_start']} .. {entry['window_end']}, {entry['duration_ms']} ms)"
    )
    for error in entry["errors"]:
        click.echo(f"  error: {error}", err=True)
    if entry["status"] == "failed":
        sys.exit(1)


def _instant(value: str | None, option: str, end_of_day: bool) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value, ZoneInfo("UTC"), end_of_day=end_of_day)
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
