"""Rollout actions, the guard's rollback and shadow verdicts over a real SQLite file: each one
transaction with its flip, compare-and-set against a second process, and their notices."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.control.analysis import Analysis, Figures, Side, analyse
from asgi_gateway.control.guard import Guardian, RolloutMetrics, judge_shadow, roll_back
from asgi_gateway.control.progress import write_progress
from asgi_gateway.control.rollout import Decision, Target, decide
from asgi_gateway.control.rollouts import Rollouts
from asgi_gateway.control.stats import window_figures, windows_figures
from asgi_gateway.control.store import Change, FlagStore, etag
from asgi_gateway.errors import RolloutConflict
from asgi_gateway.flag_file import FlagFile, parse_flag_file
from asgi_gateway.flag_policy import Guard, Rollout
from asgi_gateway.flags import EndpointRules, Flag, drift
from asgi_gateway.tables import (
    BUCKET_COLUMNS,
    COUNT_COLUMNS,
    audit_table,
    events_table,
    notices_table,
    recent_events_table,
    recent_stats_table,
    stats_table,
)
from tests.asgi_gateway.control.conftest import applied_store

RULES = EndpointRules(
    known=frozenset({"appointments.list", "appointments.get", "pages.index"}),
    twins=frozenset({"appointments.list", "appointments.get"}),
)
YAML = """\
version: 1
routes:
  appointments.list: {mode: legacy, rollout: {steps: [10, 50, 100], interval: 2s}}
  appointments.get: {mode: shadow, rollout: {from: shadow, shadow_for: 1m}}
"""
EP = "appointments.list"
NOW = datetime.now(UTC)


def declared(text: str = YAML) -> FlagFile:
    return parse_flag_file(text, Path("feature_flags.yaml"), RULES)


@pytest.fixture
async def store(engine: AsyncEngine) -> FlagStore:
    return await applied_store(engine, declared())


@pytest.fixture
def rollouts(store: FlagStore) -> Rollouts:
    return Rollouts(store, declared(), RULES)


async def flag_of(store: FlagStore, endpoint: str = EP) -> Flag:
    return (await store.load()).flags[endpoint]


async def audit_rows(store: FlagStore) -> list[tuple[str, str, str]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(audit_table.c.endpoint, audit_table.c.actor, audit_table.c.action).order_by(
                audit_table.c.id
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def notices(store: FlagStore) -> list[dict[str, Any]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(select(notices_table.c.payload).order_by(notices_table.c.id))
        return [dict(payload) for (payload,) in rows]


def breach(reason: str = "async error rate 100.0% (60/60) > 2.0% over 6s") -> Analysis:
    return Analysis(at=NOW, window_s=6, mode="canary", verdict="breach", reason=reason)


def healthy(mode: str = "canary") -> Analysis:
    return Analysis(at=NOW, window_s=2, mode=mode, verdict="healthy", reason="fine")


# -- a person's actions --------------------------------------------------------------------------


async def test_start_flips_to_the_first_step_and_records_who_and_why(
    store: FlagStore, rollouts: Rollouts
) -> None:
    progress = await rollouts.start(EP, actor="ops@example.com", reason="ship it")
    flag = await flag_of(store)
    assert (flag.mode, flag.percent) == ("canary", 10)
    assert (progress.state, progress.step_index, progress.started_by) == (
        "running",
        0,
        "ops@example.com",
    )
    assert progress.next_step_at is not None and progress.step_started_at is not None
    assert (progress.next_step_at - progress.step_started_at).total_seconds() == 2
    assert (await audit_rows(store))[-1] == (EP, "ops@example.com", "rollout_start")
    (notice,) = await notices(store)
    assert (notice["event"], notice["from"]["mode"], notice["to"]["text"]) == (
        "start",
        "legacy",
        "canary 10%",
    )


async def test_start_with_steps_and_interval_changes_the_flags_plan(
    store: FlagStore, rollouts: Rollouts
) -> None:
    progress = await rollouts.start(
        EP, actor="ops", reason="faster", steps=(25.0, 100.0), interval_s=30.0
    )
    flag = await flag_of(store)
    assert flag.rollout == Rollout(steps=(25, 100), interval_s=30)
    assert progress.plan == flag.rollout
    assert (flag.mode, flag.percent) == ("canary", 25)
    assert drift(flag, declared().declared(EP)) == ("mode", "percent", "rollout")


async def test_a_rollout_never_lowers_a_canary(store: FlagStore, rollouts: Rollouts) -> None:
    await store.flip(
        EP, Change("canary", 30), declared=declared(), rules=RULES, actor="ops", reason="by hand"
    )
    progress = await rollouts.start(EP, actor="ops", reason="go on")
    assert progress.step_index == 1
    assert (await flag_of(store)).percent == 50


async def test_start_is_refused_when_it_cannot_start(store: FlagStore, rollouts: Rollouts) -> None:
    await rollouts.start(EP, actor="ops", reason="first")
    with pytest.raises(RolloutConflict, match="already running; resume or abort it first"):
        await rollouts.start(EP, actor="ops", reason="second")
    await rollouts.abort(EP, actor="ops", reason="stop")
    await store.flip(
        EP, Change("async"), declared=declared(), rules=RULES, actor="ops", reason="all in"
    )
    with pytest.raises(RolloutConflict, match="already serves async: nothing to roll out"):
        await rollouts.start(EP, actor="ops", reason="again")


async def test_pause_holds_the_flag_and_resume_puts_it_back_at_the_step(
    store: FlagStore, rollouts: Rollouts
) -> None:
    await rollouts.start(EP, actor="ops", reason="go")
    paused = await rollouts.pause(EP, actor="ops", reason="lunch")
    assert (paused.state, paused.next_step_at, paused.reason) == (
        "paused",
        None,
        "paused by ops: lunch",
    )
    assert (await flag_of(store)).percent == 10
    # A person moves the flag while paused; resume goes back to the rollout's step.
    await store.flip(
        EP, Change(percent=40), declared=declared(), rules=RULES, actor="ops", reason="peek"
    )
    resumed = await rollouts.resume(EP, actor="ops", reason="back")
    assert (resumed.state, resumed.step_index) == ("running", 0)
    assert (await flag_of(store)).percent == 10
    actions = [action for _, _, action in await audit_rows(store)]
    assert actions[-3:] == ["rollout_pause", "set", "rollout_resume"]
    assert [n["event"] for n in await notices(store)] == ["start", "pause", "resume"]


async def test_abort_goes_back_to_legacy(store: FlagStore, rollouts: Rollouts) -> None:
    await rollouts.start(EP, actor="ops", reason="go")
    aborted = await rollouts.abort(EP, actor="ops", reason="wrong day")
    assert (aborted.state, (await flag_of(store)).mode) == ("aborted", "legacy")
    with pytest.raises(RolloutConflict, match=r"cannot pause the rollout of .*: it is aborted"):
        await rollouts.pause(EP, actor="ops", reason="x")
    with pytest.raises(RolloutConflict, match=r"cannot resume .* it is none"):
        await rollouts.resume("appointments.get", actor="ops", reason="x")


@pytest.mark.parametrize("path", ["flip", "set_flag", "apply"])
async def test_every_flip_by_a_person_pauses_a_running_rollout(
    store: FlagStore, rollouts: Rollouts, path: str
) -> None:
    await rollouts.start(EP, actor="ops", reason="go")
    if path == "flip":  # the CLI's, the API's and the dashboard's path
        await store.flip(
            EP, Change(percent=20), declared=declared(), rules=RULES, actor="bob", reason="more"
        )
    elif path == "set_flag":
        await store.set_flag(Flag(EP, mode="canary", percent=20), actor="bob", reason="more")
    else:
        await store.apply(declared(YAML.replace("{mode: legacy,", "{mode: canary, percent: 20,")))
    progress = await rollouts.read(EP)
    assert progress is not None and progress.state == "paused"
    assert "changed the flag (canary 10% -> canary 20%)" in progress.reason
    assert [n["event"] for n in await notices(store)] == ["start", "pause"]


# -- the engine ------------------------------------------------------------------------------


async def test_a_step_is_taken_once_however_many_processes_try(
    store: FlagStore, rollouts: Rollouts, engine: AsyncEngine
) -> None:
    await rollouts.start(EP, actor="ops", reason="go")
    read = await rollouts.read(EP)
    assert read is not None
    flag = await flag_of(store)
    decision = decide(replace(read, next_step_at=NOW), healthy(), datetime.now(UTC))
    assert decision is not None and decision.target == Target("canary", 50)
    others = [Rollouts(FlagStore(engine), declared(), RULES) for _ in range(4)]
    done = await asyncio.gather(*(r.carry_out(read, flag, decision, healthy()) for r in others))
    assert sorted(done) == [False, False, False, True]
    assert (await flag_of(store)).percent == 50
    assert [row for row in await audit_rows(store) if row[2] == "rollout_step"] == [
        (EP, "rollout", "rollout_step")
    ]
    # A stale process that still holds the first read changes nothing.
    assert not await rollouts.carry_out(read, flag, decision, healthy())


async def test_the_last_step_ends_in_async_and_done(store: FlagStore, rollouts: Rollouts) -> None:
    await rollouts.start(EP, actor="ops", reason="go", steps=(50.0, 100.0))
    read = await rollouts.read(EP)
    assert read is not None
    decision = Decision("finish", "done", step_index=1, target=Target("async"))
    assert await rollouts.carry_out(read, await flag_of(store), decision, healthy())
    progress = await rollouts.read(EP)
    assert progress is not None and (progress.state, progress.next_step_at) == ("done", None)
    assert (await flag_of(store)).mode == "async"


async def test_waiting_notes_it_once(store: FlagStore, rollouts: Rollouts) -> None:
    await rollouts.start(EP, actor="ops", reason="go")
    for _ in range(3):
        read = await rollouts.read(EP)
        assert read is not None
        wait = Decision("wait", "waiting: too little traffic", next_step_at=NOW, step_index=0)
        assert await rollouts.carry_out(read, await flag_of(store), wait, healthy())
    progress = await rollouts.read(EP)
    assert progress is not None and progress.state == "waiting"
    assert [h["event"] for h in progress.history] == ["start", "wait"]


# -- the guard -------------------------------------------------------------------------------


async def test_one_rollback_per_breach_across_guards(store: FlagStore, engine: AsyncEngine) -> None:
    await store.flip(
        EP, Change("canary", 50), declared=declared(), rules=RULES, actor="ops", reason="half"
    )
    state = await store.load()
    flag, changed_at = state.flags[EP], state.changed_at[EP]
    guards = [Rollouts(FlagStore(engine), declared(), RULES) for _ in range(5)]
    done = await asyncio.gather(*(roll_back(g, EP, flag, changed_at, breach()) for g in guards))
    assert sorted(done) == [False] * 4 + [True]
    assert (await flag_of(store)).mode == "legacy"
    assert [row for row in await audit_rows(store) if row[1] == "guard"] == [
        (EP, "guard", "rollback")
    ]
    (notice,) = [n for n in await notices(store) if n["event"] == "rollback"]
    assert notice["reason"] == "async error rate 100.0% (60/60) > 2.0% over 6s"
    assert notice["figures"]["verdict"] == "breach"


async def test_an_analysis_of_an_older_flag_never_flips_a_newer_one(
    store: FlagStore, rollouts: Rollouts
) -> None:
    await store.flip(
        EP, Change("canary", 50), declared=declared(), rules=RULES, actor="ops", reason="half"
    )
    state = await store.load()
    # Rolled back, then a person turns the same canary on again: same content, new epoch.
    assert await roll_back(rollouts, EP, state.flags[EP], state.changed_at[EP], breach())
    await store.flip(
        EP, Change("canary", 50), declared=declared(), rules=RULES, actor="ops", reason="fixed"
    )
    assert etag(await flag_of(store)) == etag(state.flags[EP])
    assert not await roll_back(rollouts, EP, state.flags[EP], state.changed_at[EP], breach())
    assert (await flag_of(store)).mode == "canary"


async def test_a_rollback_aborts_the_rollout(store: FlagStore, rollouts: Rollouts) -> None:
    await rollouts.start(EP, actor="ops", reason="go")
    state = await store.load()
    assert await roll_back(rollouts, EP, state.flags[EP], state.changed_at[EP], breach())
    progress = await rollouts.read(EP)
    assert progress is not None
    assert (progress.state, progress.reason) == (
        "aborted",
        "aborted: async error rate 100.0% (60/60) > 2.0% over 6s",
    )
    assert [n["event"] for n in await notices(store)] == ["start", "abort", "rollback"]


async def test_shadow_disagreement_is_recorded_once_and_blocks_a_canary_start(
    store: FlagStore, rollouts: Rollouts
) -> None:
    bad = analyse("shadow", Figures(compared=100, mismatched=30), Guard(), window_s=60)
    for endpoint in (EP, "appointments.get"):
        flag = await flag_of(store, endpoint)
        assert await judge_shadow(rollouts, endpoint, flag, bad)
        assert not await judge_shadow(rollouts, endpoint, flag, bad)  # no change, no write
    progress = await rollouts.read("appointments.get")
    assert progress is not None
    assert (progress.state, progress.promotable) == ("none", False)
    assert progress.promotable_reason == "mismatch rate 30.0% (30/100) > 1.0% over 60s"
    # A plan that starts with a canary is refused; one that starts from shadow may start.
    with pytest.raises(RolloutConflict, match=r"is not promotable \(mismatch rate 30.0%"):
        await rollouts.start(EP, actor="ops", reason="canary first")
    started = await rollouts.start("appointments.get", actor="ops", reason="shadow first")
    assert (started.step_index, started.promotable) == (None, False)
    good = analyse("shadow", Figures(compared=100, mismatched=0), Guard(), window_s=60)
    assert await judge_shadow(rollouts, EP, await flag_of(store), good)
    progress = await rollouts.read(EP)
    assert progress is not None and progress.promotable and progress.promotable_reason is None
    assert (await rollouts.start(EP, actor="ops", reason="fixed")).state == "running"


# -- the figures of a window -------------------------------------------------------------------


def row(key: str, at: int, backend: str, requests: int, errors: int) -> dict[str, Any]:
    counts = dict.fromkeys(COUNT_COLUMNS, 0)
    counts.update(requests=requests, errors=errors, le_5=requests)
    return {key: at, "endpoint": EP, "backend": backend, **counts}


async def test_a_window_starts_at_its_second_and_reaches_back_through_whole_minutes(
    store: FlagStore,
) -> None:
    now = time.time()
    second = int(now)
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(recent_stats_table),
            [
                row("second", second - 30, "async", 10, 1),
                row("second", second - 5, "async", 20, 2),
                row("second", second - 5, "legacy", 7, 0),
            ],
        )
        await conn.execute(
            insert(recent_events_table),
            [
                {"second": second - 5, "endpoint": EP, "kind": kind, "count": n}
                for kind, n in (("shadow_match", 8), ("shadow_mismatch", 2), ("fallback", 1))
            ],
        )
        minute = int(now // 60)
        await conn.execute(
            insert(stats_table),
            [
                row("minute", minute - 30, "async", 100, 50),
                row("minute", minute - 90, "async", 1, 1),
            ],
        )
        await conn.execute(
            insert(events_table),
            [{"minute": minute - 30, "endpoint": EP, "kind": "shadow_mismatch", "count": 4}],
        )
    recent = await window_figures(store.engine, EP, now - 10, now)
    assert (recent.twin.requests, recent.twin.errors, recent.legacy.requests) == (20, 2, 7)
    assert (recent.compared, recent.mismatched, recent.fallbacks) == (10, 2, 1)
    assert recent.twin.buckets[BUCKET_COLUMNS.index("le_5")] == 20
    minute_back = await window_figures(store.engine, EP, now - 60, now)
    assert minute_back.twin.requests == 30
    # An hour back: the per-minute rows older than the per-second ones count, whole minutes.
    hour = await window_figures(store.engine, EP, now - 3600, now)
    assert (hour.twin.requests, hour.twin.errors, hour.mismatched) == (130, 53, 6)
    assert await window_figures(store.engine, "appointments.get", now - 60, now) == Figures(
        legacy=Side(), twin=Side()
    )


async def test_many_windows_read_at_once_are_each_what_it_reads_alone(store: FlagStore) -> None:
    now = time.time()
    second, minute = int(now), int(now // 60)
    other = "appointments.get"
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(recent_stats_table),
            [
                row("second", second - 30, "async", 10, 1),
                row("second", second - 5, "legacy", 7, 0),
                {**row("second", second - 20, "async", 3, 3), "endpoint": other},
                {**row("second", second - 2, "legacy", 4, 0), "endpoint": other},
            ],
        )
        await conn.execute(
            insert(recent_events_table),
            [
                {"second": second - 5, "endpoint": EP, "kind": "shadow_match", "count": 8},
                {"second": second - 25, "endpoint": other, "kind": "shadow_mismatch", "count": 2},
            ],
        )
        await conn.execute(
            insert(stats_table),
            [
                row("minute", minute - 30, "async", 100, 50),
                {**row("minute", minute - 40, "legacy", 9, 9), "endpoint": other},
            ],
        )
    # Windows of different lengths, two of them sharing a start, one with nothing in it.
    windows = {EP: now - 3600, other: now - 10, "calendars.list": now - 3600}
    together = await windows_figures(store.engine, windows, now)
    alone = {e: await window_figures(store.engine, e, since, now) for e, since in windows.items()}
    assert together == alone
    assert (together[EP].twin.requests, together[EP].legacy.requests) == (110, 7)
    assert (together[other].twin.requests, together[other].legacy.requests) == (0, 4)
    assert together[other].mismatched == 0  # its mismatches are older than its window
    assert together["calendars.list"] == Figures(legacy=Side(), twin=Side())
    assert await windows_figures(store.engine, {}, now) == {}


async def test_one_broken_endpoint_never_stops_the_guard_of_the_others(
    store: FlagStore, rollouts: Rollouts, caplog: pytest.LogCaptureFixture
) -> None:
    for endpoint in (EP, "appointments.get"):
        await rollouts.start(endpoint, actor="ops", reason="go", steps=(10.0, 50.0, 100.0))
        read = await rollouts.read(endpoint)
        assert read is not None
        async with store.transaction("test", bump=False) as conn:
            await write_progress(conn, replace(read, next_step_at=NOW), read=read)
    second = int(time.time())
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(recent_stats_table),
            [row("second", second, backend, 60, 0) for backend in ("async", "legacy")],
        )
        await conn.execute(  # appointments.get's shadow phase agreed: it is due to promote
            insert(recent_events_table),
            [
                {
                    "second": second,
                    "endpoint": "appointments.get",
                    "kind": "shadow_match",
                    "count": 60,
                }
            ],
        )
    # appointments.get has gone from the app since its rollout started: it cannot be flipped.
    rules = EndpointRules(known=frozenset({EP}), twins=frozenset({EP}))
    guardian = Guardian(
        lambda: Rollouts(store, declared(), rules),
        frozenset({EP}),
        RolloutMetrics(CollectorRegistry()),
    )
    await guardian.tick()
    assert (await flag_of(store)).percent == 50
    assert (await flag_of(store, "appointments.get")).mode == "shadow"
    assert "guarding appointments.get failed" in caplog.text
