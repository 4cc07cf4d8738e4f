"""`admin-assistant flags ...`: list, show, set, history, apply and export the rollout flags;
shadow results; and progressive rollouts (`flags rollout start|pause|resume|abort|status`)."""

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
from asgi_gateway.control.rollout_view import rollout_views
from asgi_gateway.control.rollouts import Rollouts
from asgi_gateway.control.stats import shadow_report
from asgi_gateway.control.store import Change, FlagStore, describe
from asgi_gateway.errors import (
    FlagConflict,
    FlagError,
    FlagFileError,
    FlagStoreUnavailable,
    RolloutConflict,
)
from asgi_gateway.flag_file import FlagFile, decode_flag_text, load_flag_file, parse_flag_file
from asgi_gateway.flag_policy import check_interval, check_steps
from asgi_gateway.flags import EndpointRules, Flag, drift, effective_flag, parse_duration_s
from shared.runtime import Runtime


def _actor() -> str:
    return os.environ.get("AA_ACTOR") or f"cli:{getpass.getuser()}"


def _rules(runtime: Runtime) -> EndpointRules:
    """admin-assistant's endpoints, twins and methods, as the gateway validates flags."""
    from asgi_gateway.app import endpoint_rules_of

    return endpoint_rules_of(runtime.settings)


def _declared(runtime: Runtime, rules: EndpointRules) -> FlagFile:
    try:
        return load_flag_file(runtime.settings.flags_file, rules)
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
        rules = _rules(runtime)
        known, twins = rules.known or (), rules.twins or ()
        declared = _declared(runtime, rules)
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
        rules = _rules(runtime)
        if endpoint not in (rules.known or ()):
            raise_click(f"unknown endpoint id {endpoint!r} (see 'admin-assistant flags list')")
        declared = _declared(runtime, rules)
        twins = rules.twins or ()
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
@click.option("--shadow-sample", type=float, help="Shadow: share of requests compared (0-1).")
@click.option("--shadow-writes", help="Shadow a write endpoint: dry_run (rolled back).")
@click.option("--fallback/--no-fallback", default=None, help="Fall back to legacy on failure.")
@click.option("--reason", required=True, help="Why: kept in the audit trail.")
def flags_set(
    endpoint: str,
    mode: str | None,
    percent: float | None,
    sticky_by: str | None,
    shadow_sample: float | None,
    shadow_writes: str | None,
    fallback: bool | None,
    reason: str,
) -> None:
    """Flip one endpoint at runtime; every worker follows within a second."""
    if not reason.strip():
        raise_click("--reason must not be empty")

    async def command(runtime: Runtime, store: FlagStore) -> None:
        rules = _rules(runtime)
        declared = _declared(runtime, rules)
        shadow = {
            key: value
            for key, value in (("sample", shadow_sample), ("writes", shadow_writes))
            if value is not None
        }
        try:
            before, after = await store.flip(
                endpoint,
                Change(mode, percent, sticky_by, shadow=shadow or None, fallback=fallback),
                declared=declared,
                rules=rules,
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
            before = describe(Flag.from_dict(entry.before)) if entry.before else "-"
            after = describe(Flag.from_dict(entry.after)) if entry.after else "-"
            click.echo(
                f"{entry.created_at:%Y-%m-%d %H:%M:%S} {entry.endpoint} {entry.action} by "
                f"{entry.actor}: {before} -> {after} ({entry.reason})"
            )

    _run(command)


@flags.command("apply")
def flags_apply() -> None:
    """Apply YAML entries changed since they were last applied; a bad file changes nothing."""

    async def command(runtime: Runtime, store: FlagStore) -> None:
        declared = _declared(runtime, _rules(runtime))
        changed = await store.apply(declared, actor=f"{declared.path.name} ({_actor()})")
        click.echo(f"applied: {', '.join(changed)}" if changed else "nothing changed")

    _run(command)


@flags.command("export")
def flags_export() -> None:
    """Write the runtime state back into the YAML, keeping its comments."""

    async def command(runtime: Runtime, store: FlagStore) -> None:
        rules = _rules(runtime)
        declared = _declared(runtime, rules)
        path = runtime.settings.flags_file
        text = decode_flag_text(path.read_bytes(), path)
        state = await store.load()
        new_text = export_flags(text, declared, state.flags)
        if new_text == text:
            click.echo(f"{path} already matches the runtime state")
            return
        exported = parse_flag_file(new_text, path, rules)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(new_text)
        os.replace(tmp, path)
        await store.mark_exported(
            {e: f.fingerprint() for e, f in exported.flags.items() if e in state.flags}
        )
        click.echo(f"wrote {path}")

    _run(command)


@flags.command("shadow")
@click.argument("endpoint")
@click.option("--window", default="1h", show_default=True, help="e.g. 15m, 1h, 24h, 7d.")
def flags_shadow(endpoint: str, window: str) -> None:
    """Shadow results of one endpoint over the window, and its last mismatches."""
    try:
        window_s = parse_duration_s(window)
    except FlagError as exc:
        raise_click(f"--window: {exc.message}")

    async def command(runtime: Runtime, store: FlagStore) -> None:
        if endpoint not in (_rules(runtime).known or ()):
            raise_click(f"unknown endpoint id {endpoint!r} (see 'admin-assistant flags list')")
        report = await shadow_report(store.engine, endpoint, window_s)
        rate = report["mismatch_rate"]
        click.echo(
            f"{endpoint} over {window}: {report['compared']} compared, {report['matched']} "
            f"matched, {report['mismatched']} mismatched"
            f"{f' ({rate:.1%})' if rate is not None else ''}, {report['errors']} errors, "
            f"{report['timeouts']} timeouts, {report['skipped']} skipped"
        )
        if report["noise"]:
            click.echo(f"noise (differs between two legacy answers): {', '.join(report['noise'])}")
        for record in report["recent"][:10]:
            query = f"?{record['query']}" if record["query"] else ""
            status = record["status"]
            click.echo(
                f"{record['at']} {record['method']} {record['path']}{query} "
                f"legacy {status['legacy']} / async {status['async']}"
            )
            for diff in record["diffs"]:
                click.echo(f"  {diff['path']}: legacy {diff['legacy']} | async {diff['async']}")

    _run(command)


@flags.command("rollout")
@click.argument("action", type=click.Choice(["start", "pause", "resume", "abort", "status"]))
@click.argument("endpoint")
@click.option("--steps", help="start: canary percents ending at 100, e.g. 1,5,25,50,100.")
@click.option("--interval", help="start: time between steps, e.g. 10m.")
@click.option("--reason", help="Why: kept in the audit trail (required but for status).")
@click.option("--json", "as_json", is_flag=True, help="status: print the rollout as JSON.")
def flags_rollout(
    action: str,
    endpoint: str,
    steps: str | None,
    interval: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Start, pause, resume or abort an endpoint's progressive rollout, or show its status."""
    if action != "status" and not (reason or "").strip():
        raise_click("--reason is required (it is kept in the audit trail)")
    if action != "start" and (steps or interval):
        raise_click("--steps and --interval are only used with start")
    try:
        step_values = (
            check_steps([float(s) for s in steps.split(",")], field="steps") if steps else None
        )
        interval_s = check_interval(interval, field="interval") if interval else None
    except ValueError:
        raise_click(f"--steps: {steps!r} is not a list of numbers such as 1,5,25,50,100")
    except FlagError as exc:
        raise_click(f"--{exc.field}: {exc.message}")

    async def command(runtime: Runtime, store: FlagStore) -> None:
        rules = _rules(runtime)
        if endpoint not in (rules.known or ()):
            raise_click(f"unknown endpoint id {endpoint!r} (see 'admin-assistant flags list')")
        rollouts = Rollouts(store, _declared(runtime, rules), rules)
        why = (reason or "").strip()
        try:
            if action == "start":
                await rollouts.start(
                    endpoint, actor=_actor(), reason=why, steps=step_values, interval_s=interval_s
                )
            elif action == "pause":
                await rollouts.pause(endpoint, actor=_actor(), reason=why)
            elif action == "resume":
                await rollouts.resume(endpoint, actor=_actor(), reason=why)
            elif action == "abort":
                await rollouts.abort(endpoint, actor=_actor(), reason=why)
        except FlagError as exc:
            raise_click(exc.message)
        except (FlagConflict, RolloutConflict) as exc:
            raise_click(str(exc))
        (view,) = await rollout_views(rollouts, [endpoint], rules.twins or ())
        if as_json:
            click.echo(json.dumps(view, indent=2))
        else:
            _echo_rollout(view)

    _run(command)


def _echo_rollout(view: dict[str, Any]) -> None:
    state, steps, index = view["state"], view["steps"], view["step_index"]
    where = ""
    if state in ("running", "waiting", "paused", "done", "aborted"):
        where = (
            " (shadow phase)"
            if index is None
            else f", step {index + 1} of {len(steps)} ({steps[index]}%)"
        )
    click.echo(f"{view['endpoint']}: {state}{where}; serving {view['mode']} {view['percent']}%")
    marks = [f"[{s}]" if i == index and state != "none" else str(s) for i, s in enumerate(steps)]
    shadow = f", after {view['shadow_for_s']:g}s in shadow" if view["from"] == "shadow" else ""
    click.echo(f"steps: {' '.join(marks)} every {view['interval_s']:g}s{shadow}")
    if view["next_step_at"]:
        click.echo(f"next step at: {view['next_step_at']}")
    if view["reason"]:
        click.echo(f"why: {view['reason']}")
    promotable = "yes" if view["promotable"] else f"NO ({view['promotable_reason']})"
    click.echo(f"promotable: {promotable}")
    analysis = view["last_analysis"]
    if analysis:
        click.echo(
            f"last analysis ({analysis['mode']}): {analysis['verdict']}: {analysis['reason']}"
        )
    for entry in view["history"][:20]:
        moved = f": {entry['from'] or '-'} -> {entry['to'] or '-'}" if entry["to"] else ""
        click.echo(
            f"  {entry['at']} {entry['event']} by {entry['actor']}{moved} ({entry['reason']})"
        )


def raise_click(message: str) -> Any:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)
