"""Progressive rollouts: where a rollout stands and what it does next (pure, no I/O).

A rollout moves an endpoint through its plan (`flags.Rollout`): an optional shadow phase, then
each canary step in turn, the last (100) ending in mode async. After every interval the engine
analyses that interval (`analysis.analyse`) and `decide` says what follows: the next step,
waiting for traffic, staying in shadow, or an abort. `control/rollouts.py` does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from asgi_gateway.control.analysis import Analysis, format_duration
from asgi_gateway.flag_policy import Rollout
from asgi_gateway.flags import Flag, Mode

RolloutState = Literal["none", "running", "waiting", "paused", "done", "aborted"]
STATES: tuple[RolloutState, ...] = ("none", "running", "waiting", "paused", "done", "aborted")
# How often a waiting rollout looks again (at most; never more often than its interval).
RECHECK_S = 5.0
MAX_HISTORY = 200


@dataclass(frozen=True, slots=True)
class Target:
    """Where a step puts the endpoint: shadow, a canary percent, or async (the 100 step)."""

    mode: Mode
    percent: float | None = None

    def describe(self) -> str:
        return f"canary {self.percent:g}%" if self.mode == "canary" else self.mode


@dataclass(frozen=True, slots=True)
class Progress:
    """One endpoint's rollout as stored: its plan, its state and step, and its record.

    `step_index` None with state running/waiting/paused is the shadow phase; `revision` is
    bumped by every change, which is made only if the revision is still the one read.
    """

    endpoint: str
    state: RolloutState = "none"
    plan: Rollout = field(default_factory=Rollout)
    step_index: int | None = None
    step_started_at: datetime | None = None
    next_step_at: datetime | None = None
    reason: str = ""
    started_by: str | None = None
    started_at: datetime | None = None
    promotable: bool = True
    promotable_reason: str | None = None
    last_analysis: Mapping[str, Any] | None = None
    history: tuple[Mapping[str, Any], ...] = ()
    revision: int = 0

    @property
    def is_active(self) -> bool:
        """Running or waiting: the engine moves it on."""
        return self.state in ("running", "waiting")

    @property
    def is_open(self) -> bool:
        """Started and not finished: running, waiting or paused."""
        return self.state in ("running", "waiting", "paused")

    @property
    def in_shadow_phase(self) -> bool:
        return self.is_open and self.step_index is None

    def target(self) -> Target:
        """Where the rollout holds the endpoint now."""
        return target_of(self.plan, self.step_index)

    def period_s(self) -> float:
        """The length of the current phase: `shadow_for` in shadow, else `interval`."""
        return self.plan.shadow_for_s if self.step_index is None else self.plan.interval_s


@dataclass(frozen=True, slots=True)
class Decision:
    """What the engine does with an active rollout whose analysis is due.

    `wait`: too little traffic, look again at `next_step_at`; `stay`: shadow disagreed, start
    the shadow phase over; `advance`: flip to `target` (`finish` when that is the last step);
    `abort`: roll back.
    """

    action: Literal["wait", "stay", "advance", "finish", "abort"]
    reason: str
    next_step_at: datetime | None = None
    step_index: int | None = None
    target: Target | None = None


def target_of(plan: Rollout, step_index: int | None) -> Target:
    """The flag of a position in `plan`: None is the shadow phase; 100 is mode async."""
    if step_index is None:
        return Target("shadow")
    percent = plan.steps[step_index]
    return Target("async") if percent >= 100 else Target("canary", percent)


def start_index(plan: Rollout, flag: Flag) -> int | None:
    """Where a new rollout of an endpoint serving `flag` begins (None: its shadow phase).

    It never lowers a canary: on an endpoint already in canary it begins at the first step at
    or above the current percent, so no user goes back from async to legacy.
    """
    if plan.start_from == "shadow":
        return None
    if flag.mode == "canary":
        for index, percent in enumerate(plan.steps):
            if percent >= flag.percent:
                return index
    return 0


def recheck_s(progress: Progress) -> float:
    """How long a waiting rollout waits before it analyses again."""
    return min(progress.period_s(), RECHECK_S)


def decide(progress: Progress, analysis: Analysis, now: datetime) -> Decision | None:
    """What an active rollout does now, given the analysis of its current step; None: nothing yet.

    The analysis covers the step from its start to `now`; a step moves on only when it is
    healthy over at least `min_requests` requests (compared requests in the shadow phase).
    """
    if not progress.is_active or progress.next_step_at is None or now < progress.next_step_at:
        return None
    plan = progress.plan
    if analysis.verdict == "insufficient":
        return Decision(
            "wait",
            f"waiting: {analysis.reason}",
            next_step_at=now + timedelta(seconds=recheck_s(progress)),
            step_index=progress.step_index,
        )
    if progress.step_index is None:
        if analysis.is_breach or not progress.promotable:
            why = analysis.reason if analysis.is_breach else progress.promotable_reason
            return Decision(
                "stay",
                f"not promotable: {why}; staying in shadow for another "
                f"{format_duration(plan.shadow_for_s)}",
                next_step_at=now + timedelta(seconds=plan.shadow_for_s),
            )
        return _advance(plan, 0, f"shadow agreed: {analysis.reason}", now)
    if analysis.is_breach:
        return Decision("abort", analysis.reason, step_index=progress.step_index)
    return _advance(plan, progress.step_index + 1, f"healthy: {analysis.reason}", now)


def _advance(plan: Rollout, index: int, why: str, now: datetime) -> Decision:
    target = target_of(plan, index)
    step = f"step {index + 1}/{len(plan.steps)}: {target.describe()}"
    if target.mode == "async":
        return Decision("finish", f"{step}, done ({why})", step_index=index, target=target)
    return Decision(
        "advance",
        f"{step} ({why})",
        next_step_at=now + timedelta(seconds=plan.interval_s),
        step_index=index,
        target=target,
    )


def history_entry(
    at: datetime,
    event: str,
    *,
    actor: str,
    reason: str,
    before: str | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """One line of a rollout's history (the API's `history`)."""
    return {
        "at": at.isoformat(timespec="seconds"),
        "event": event,
        "actor": actor,
        "from": before,
        "to": after,
        "reason": reason,
    }


def with_entry(
    history: tuple[Mapping[str, Any], ...], entry: Mapping[str, Any]
) -> tuple[Mapping[str, Any], ...]:
    """`history` with `entry` added, keeping the newest MAX_HISTORY."""
    return (*history, entry)[-MAX_HISTORY:]
