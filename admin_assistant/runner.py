"""The CLI's single entry runner: one event loop per command, its engine disposed on that loop.

Every `admin-assistant` command that touches the database or a provider is a coroutine handed
to `run_command`: the only place outside `shared.bridge` that starts an event loop.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import click

from shared.config import Settings, load_settings
from shared.db import describe_outage, unavailable_error
from shared.errors import AppError, ConfigError
from shared.runtime import Runtime

T = TypeVar("T")


def run_command(command: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run one command's coroutine on a fresh loop with its own Runtime; exit 1 on a known error.

    The Runtime (engine, HTTP clients) is created and closed on that loop, so nothing outlives
    it. A bad setting, an AppError or an unreachable database ends the command with one
    sentence on stderr (naming the variable, or the database's host and port, never its
    password), never a traceback.
    """
    settings = command_settings()

    async def main() -> T:
        runtime = Runtime(settings)
        try:
            return await command(runtime)
        finally:
            await runtime.aclose()

    try:
        return asyncio.run(main())
    except AppError as exc:
        fail(exc)
    except Exception as exc:
        if unavailable_error(exc) is None:
            raise
        click.echo(f"error: {describe_outage(exc, settings.database_url)}", err=True)
        sys.exit(1)


def command_settings() -> Settings:
    """The process settings, or exit 1 with the variable's problem in one sentence."""
    try:
        return load_settings()
    except ConfigError as exc:
        fail(exc)


def fail(exc: AppError) -> NoReturn:
    """Print an AppError (and its details) to stderr and exit 1."""
    click.echo(f"error: {exc.message}", err=True)
    for detail in exc.details:
        click.echo(f"  {detail.get('field', '')}: {detail.get('message', '')}", err=True)
    sys.exit(1)
