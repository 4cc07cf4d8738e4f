"""`admin-assistant flags ...`: list, show, set, history, apply and export the rollout flags."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import click

from admin_assistant.runner import run_command
from asgi_gateway.control.export import export_flags
from asgi_gateway.control.store import Change, FlagStore, describe
from asgi_gateway.errors import FlagConflict, FlagError, FlagFileError, FlagStoreUnavailable
from asgi_gateway.flags import (
    FlagFile,
    decode_flag_text,
    drift,
    effective_flag,
    load_flag_file,
    parse_flag_file,
)
from asgi_gateway.serving.routing import flask_endpoints
from shared.runtime import Runtime


def _actor() -> str:
    return os.environ.get("AA_ACTOR") or f"cli:{getpass.getuser()}"


def _endpoints(runtime: Runtime) -> tuple[set[str], set[str]]:
    """(every Flask endpoint id, those with an async twin) of admin-assistant."""
    from asgi_gateway.endpoints import routes
    from legacy_flask import create_app

    flask_app = create_app(settings=runtime.settings, defer_runtime=True)
    return set(flask_endpoints(flask_app)), {r.name for r in routes}


def _declared(runtime: Runtime, known: set[str], twins: set[str]) -> FlagFile:
    try:
        return load_flag_file(runtime.settings.flags_file, known=known, twins=twins)
    except FlagFileError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _run(command: Callable[[Runtime, FlagStore], Awaitable[Any]]) -> Any:
    async def with_store(runtime: Runtime) -> Any:
        store = FlagStore(runtime.db.engine)
        try:
            await store.ensure_schema()
            return await command(runtime, store)
        except FlagStoreUnavailable as exc:
            raise_click(str(exc))

    return run_command(with_store)


@click.group()
def flags() -> None:
    """Per-endpoint rollout flags (runtime state in the database, declared in the YAML)."""


@flags.command("list")
def flags_list() -> None:
    """Every endpoint: twin, mode, percent, sticky key, drift from the YAML."""

    async def command(runtime: Runtime, store: FlagStore) -> None:
        known, twins = _endpoints(runtime)
        declared = _declared(runtime, known, twins)
        state = await store.load()
        click.echo(f"{'ENDPOINT':32} {'TWIN':5} {'MODE':7} {'PERCENT':>7} {'STICKY':12} DRIFT")
        for endpoint in sorted(known):
            flag = effective_flag(endpoint, state.flags, declared)
            drifted = ", ".join(drift(flag, declared.declared(endpoint)))
            percent = f"{flag.percent:g}" if flag.mode == "canary" else "-"
            click.echo(
                f"{endpoint:32} {'yes' if endpoint in twins else 'no':5} {flag.mode:7} "
                f"{percent:>7} {flag.sticky_by:12} {drifted}"
            )
        click.echo(f"(version {state.version})")

    _run(command)


@flags.command("show")
@click.argument("endpoint")
def flags_show(endpoint: str) -> None:
    """One endpoint's runtime and declared flag, as JSON."""

    async def command(runtime: Runtime, store: FlagStore) -> None:
        known, twins = _endpoints(runtime)
        if endpoint not in known:
            raise_click(f"unknown endpoint id {endpoint!r} (see 'admin-assistant flags list')")
        declared = _declared(runtime, known, twins)
        state = await store.load()
        flag = effective_flag(endpoint, state.flags, declared)
        click.echo(
            json.dumps(
                {
                    "runtime": flag.to_dict(),
                    "declared": declared.declared(endpoint).to_dict(),
                    "drift": list(drift(flag, declared.declared(endpoint))),
                    "has_twin": endpoint in twins,
                    "version": state.version,
                },
                indent=2,
            )
        )

    _run(command)


@flags.command("set")
@click.argument("endpoint")
@click.option("--mode", help="legacy | shadow | canary | async (default: unchanged)")
@click.option("--percent", type=float, help="Canary share 0-100 (two decimals).")
@click.option("--sticky-by", help="user | session | ip | header:<Name> | random")
@click.option("--reason", required=True, help="Why: kept in the audit trail.")
def flags_set(
    endpoint: str, mode: str | None, percent: float | None, sticky_by: str | None, reason: str
) -> None:
    """Flip one endpoint at runtime; every worker follows within a second."""
    if not reason.strip():
        raise_click("--reason must not be empty")

    async def command(runtime: Runtime, store: FlagStore) -> None:
        known, twins = _endpoints(runtime)
        declared = _declared(runtime, known, twins)
        try:
            before, after = await store.flip(
                endpoint,
                Change(mode, percent, sticky_by),
                declared=declared,
                known=known,
                twins=twins,
                actor=_actor(),
                reason=reason.strip(),
            )
        except FlagError as exc:
            raise_click(exc.message)
        except FlagConflict as exc:
            raise_click(str(exc))
        click.echo(
            f"{endpoint}: {describe(before)} -> {describe(after)} (sticky by {after.sticky_by})"
        )

    _run(command)


@flags.command("history")
@click.argument("endpoint", required=False)
@click.option("--limit", default=50, show_default=True, type=int)
def flags_history(endpoint: str | None, limit: int) -> None:
    """The audit trail of flag changes, newest first."""

    async def command(runtime: Runtime, store: FlagStore) -> None:
        for entry in await store.history(endpoint, limit=limit):
            before = entry.before or {}
            after = entry.after or {}
            click.echo(
                f"{entry.created_at:%Y-%m-%d %H:%M:%S} {entry.endpoint} {entry.action} by "
                f"{entry.actor}: {before.get('mode', '-')} {before.get('percent', '')} -> "
                f"{after.get('mode', '-')} {after.get('percent', '')} ({entry.reason})"
            )

    _run(command)


@flags.command("apply")
def flags_apply() -> None:
    """Apply YAML entries changed since they were last applied; a bad file changes nothing."""

    async def command(runtime: Runtime, store: FlagStore) -> None:
        known, twins = _endpoints(runtime)
        declared = _declared(runtime, known, twins)
        changed = await store.apply(declared, actor=f"{declared.path.name} ({_actor()})")
        click.echo(f"applied: {', '.join(changed)}" if changed else "nothing changed")

    _run(command)


@flags.command("export")
def flags_export() -> None:
    """Write the runtime state back into the YAML, keeping its comments."""

    async def command(runtime: Runtime, store: FlagStore) -> None:
        known, twins = _endpoints(runtime)
        declared = _declared(runtime, known, twins)
        path = runtime.settings.flags_file
        text = decode_flag_text(path.read_bytes(), path)
        state = await store.load()
        new_text = export_flags(text, declared, state.flags)
        if new_text == text:
            click.echo(f"{path} already matches the runtime state")
            return
        exported = parse_flag_file(new_text, path, known=known, twins=twins)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(new_text)
        os.replace(tmp, path)
        await store.mark_exported(
            {e: f.fingerprint() for e, f in exported.flags.items() if e in state.flags}
        )
        click.echo(f"wrote {path}")

    _run(command)


def raise_click(message: str) -> Any:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)
