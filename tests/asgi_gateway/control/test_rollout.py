"""Progressive rollout decisions (pure): where a rollout starts and what each analysis leads to."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from asgi_gateway.control.analysis import Analysis
from asgi_gateway.control.rollout import (
    MAX_HISTORY,
    RECHECK_S,
    Progress,
    Target,
    decide,
    history_entry,
    start_index,
    target_of,
    with_entry,
)
from asgi_gateway.flag_policy import Rollout
from asgi_gateway.flags import Flag

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PLAN = Rollout(steps=(1, 5, 25, 50, 100), interval_s=600)
SHADOW_PLAN = replace(PLAN, start_from="shadow", shadow_for_s=300)


def analysis(verdict: str, reason: str = "figures", mode: str = "canary") -> Analysis:
    return Analysis(at=NOW, window_s=600, mode=mode, verdict=verdict, reason=reason)  # type: ignore[arg-type]


def running(step_index: int | None, plan: Rollout = PLAN, **fields: object) -> Progress:
    return Progress(
        "a.b",
        state="running",
        plan=plan,
        step_index=step_index,
        step_started_at=NOW - timedelta(seconds=600),
        next_step_at=NOW,
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("plan", "index", "target"),
    [
        (PLAN, None, Target("shadow")),
        (PLAN, 0, Target("canary", 1)),
        (PLAN, 3, Target("canary", 50)),
        (PLAN, 4, Target("async")),
        (Rollout(steps=(100,)), 0, Target("async")),
    ],
)
def test_each_position_is_a_flag(plan: Rollout, index: int | None, target: Target) -> None:
    assert target_of(plan, index) == target


@pytest.mark.parametrize(
    ("plan", "flag", "index"),
    [
        (PLAN, Flag("a.b"), 0),
        (PLAN, Flag("a.b", mode="shadow"), 0),
        (PLAN, Flag("a.b", mode="canary", percent=5), 1),
        # Never lower a canary: 30% starts at 50, not back at 1.
        (PLAN, Flag("a.b", mode="canary", percent=30), 3),
        (SHADOW_PLAN, Flag("a.b"), None),
        (SHADOW_PLAN, Flag("a.b", mode="canary", percent=30), None),
    ],
)
def test_where_a_rollout_starts(plan: Rollout, flag: Flag, index: int | None) -> None:
    assert start_index(plan, flag) == index


def test_a_healthy_step_moves_to_the_next_one() -> None:
    decision = decide(running(1), analysis("healthy", "async error rate 0.0% (0/80)"), NOW)
    assert decision is not None
    assert (decision.action, decision.step_index, decision.target) == (
        "advance",
        2,
        Target("canary", 25),
    )
    assert decision.next_step_at == NOW + timedelta(seconds=600)
    assert decision.reason == "step 3/5: canary 25% (healthy: async error rate 0.0% (0/80))"


def test_the_last_step_ends_in_async_and_finishes() -> None:
    decision = decide(running(3), analysis("healthy"), NOW)
    assert decision is not None
    assert (decision.action, decision.target, decision.next_step_at) == (
        "finish",
        Target("async"),
        None,
    )
    assert decision.reason.startswith("step 5/5: async, done")


def test_too_little_traffic_waits_and_looks_again_soon() -> None:
    decision = decide(running(0), analysis("insufficient", "too little traffic: 3 of 50"), NOW)
    assert decision is not None
    assert (decision.action, decision.step_index) == ("wait", 0)
    assert decision.reason == "waiting: too little traffic: 3 of 50"
    assert decision.next_step_at == NOW + timedelta(seconds=RECHECK_S)


def test_a_short_interval_is_looked_at_no_later_than_itself() -> None:
    quick = replace(PLAN, interval_s=2)
    decision = decide(running(0, quick), analysis("insufficient"), NOW)
    assert decision is not None and decision.next_step_at == NOW + timedelta(seconds=2)


def test_a_breach_aborts() -> None:
    decision = decide(running(2), analysis("breach", "async error rate 9.0% (9/100) > 2.0%"), NOW)
    assert decision is not None
    assert (decision.action, decision.reason) == ("abort", "async error rate 9.0% (9/100) > 2.0%")


def test_the_shadow_phase_promotes_to_the_first_step_when_shadow_agreed() -> None:
    decision = decide(running(None, SHADOW_PLAN), analysis("healthy", "mismatch rate 0.0%"), NOW)
    assert decision is not None
    assert (decision.action, decision.step_index, decision.target) == (
        "advance",
        0,
        Target("canary", 1),
    )


def test_a_disagreeing_shadow_phase_stays_in_shadow_and_starts_over() -> None:
    decision = decide(
        running(None, SHADOW_PLAN), analysis("breach", "mismatch rate 30.0% (3/10) > 1.0%"), NOW
    )
    assert decision is not None
    assert (decision.action, decision.target) == ("stay", None)
    assert decision.reason == (
        "not promotable: mismatch rate 30.0% (3/10) > 1.0%; staying in shadow for another 5m"
    )
    assert decision.next_step_at == NOW + timedelta(seconds=300)


def test_an_endpoint_marked_not_promotable_never_leaves_shadow() -> None:
    progress = running(None, SHADOW_PLAN, promotable=False, promotable_reason="mismatch 5%")
    decision = decide(progress, analysis("healthy"), NOW)
    assert decision is not None and decision.action == "stay"
    assert "not promotable: mismatch 5%" in decision.reason


@pytest.mark.parametrize("state", ["none", "paused", "done", "aborted"])
def test_only_running_and_waiting_rollouts_move(state: str) -> None:
    assert decide(replace(running(1), state=state), analysis("healthy"), NOW) is None  # type: ignore[arg-type]


def test_nothing_moves_before_its_time() -> None:
    early = replace(running(1), next_step_at=NOW + timedelta(seconds=1))
    assert decide(early, analysis("healthy"), NOW) is None
    assert decide(replace(running(1), state="waiting"), analysis("healthy"), NOW) is not None


def test_history_keeps_the_newest_entries() -> None:
    history: tuple[dict[str, object], ...] = ()
    for n in range(MAX_HISTORY + 5):
        history = with_entry(history, history_entry(NOW, "wait", actor="rollout", reason=str(n)))  # type: ignore[assignment]
    assert len(history) == MAX_HISTORY
    assert history[-1]["reason"] == str(MAX_HISTORY + 4)
    assert history[0]["reason"] == "5"
