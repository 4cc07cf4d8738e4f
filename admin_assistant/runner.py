"""The CLI's single entry runner: one event loop per command, its engine disposed on that loop.

Every `admin-assistant` command that touches the database or a provider is a coroutine handed
to `run_command`: the only place outside `shared.bridge` that starts an event loop.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from shared.config import load_settings
from shared.errors import AppError
from shared.runtime import Runtime

T = TypeVar("T")


def run_command(command: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run one command's coroutine on a fresh loop with its own Runtime; exit 1 on a known error.

    The Runtime (engine, HTTP clients) is created and closed on that loop, so nothing outlives
    it; an AppError is printed to stderr with its details, never as a traceback.
    """

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
