"""An endpoint's rollout as the admin API, the CLI and the dashboard show it.

`last_analysis` is judged as the caller asks, from the merged stats: for a rollout under way,
its current step so far (what the engine will judge at `next_step_at`); otherwise, for an
endpoint in canary, async or shadow, the guard's window; otherwise the last one stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from asgi_gateway.control.analysis import analyse
from asgi_gateway.control.database import describe_error
from asgi_gateway.control.rollout import Progress
from asgi_gateway.control.rollouts import Rollouts
from asgi_gateway.control.stats import windows_figures
from asgi_gateway.control.store import FlagState
from asgi_gateway.errors import FlagStoreUnavailable
from asgi_gateway.flags import Flag, effective_flag

_JUDGED_MODES = ("canary", "async", "shadow")


async def rollout_views(
    rollouts: Rollouts, endpoints: Iterable[str], twins: Iterable[str]
) -> list[dict[str, Any]]:
    """The rollout view of each of `endpoints`, in their order (one read of flags and rows)."""
    endpoints = list(endpoints)
    for _ in range(5):
        # A step writes its flip and its progress in one transaction that moves the version:
        # when the version has not moved, the flags and the rows belong together.
        state = await rollouts.store.load()
        progress = await rollouts.read_all(endpoints)
        if await rollouts.store.version() == state.version:
            break
    twin_set = frozenset(twins)
    now = time.time()
    flags = {e: effective_flag(e, state.flags, rollouts.declared) for e in endpoints}
    rows = {e: progress.get(e) or Progress(e, plan=flags[e].rollout) for e in endpoints}
    windows = {e: _window(flags[e], state, rows[e], now) for e in endpoints}
    # Every judged window at once: a few statements for the page, not a few per endpoint.
    try:
        figures = await windows_figures(
            rollouts.store.engine,
            {e: window[1] for e, window in windows.items() if window is not None},
            now,
        )
    except (SQLAlchemyError, OSError) as exc:
        raise FlagStoreUnavailable(f"cannot read the stats: {describe_error(exc)}") from exc
    views = []
    for endpoint in endpoints:
        flag, row, window = flags[endpoint], rows[endpoint], windows[endpoint]
        if window is None:
            analysis = row.last_analysis
        else:
            mode, since = window
            analysis = analyse(
                mode, figures[endpoint], flag.guard, window_s=max(now - since, 0.0)
            ).to_dict()
        views.append(_view(endpoint, flag, row, analysis, endpoint in twin_set))
    return views


def _view(
    endpoint: str,
    flag: Flag,
    row: Progress,
    analysis: Mapping[str, Any] | None,
    has_twin: bool,
) -> dict[str, Any]:
    plan = row.plan if row.state != "none" else flag.rollout
    return {
        "endpoint": endpoint,
        "state": row.state,
        "steps": [_number(s) for s in plan.steps],
        "step_index": row.step_index if row.state != "none" else None,
        "phase": _phase(row),
        "percent": _number(_serving_percent(flag)),
        "mode": flag.mode,
        "interval_s": plan.interval_s,
        "from": plan.start_from,
        "shadow_for_s": plan.shadow_for_s,
        "next_step_at": _iso(row.next_step_at),
        "reason": row.reason,
        "promotable": row.promotable,
        "promotable_reason": row.promotable_reason,
        "started_by": row.started_by,
        "started_at": _iso(row.started_at),
        "has_twin": has_twin,
        "guard": {
            "max_error_rate": flag.guard.max_error_rate,
            "min_requests": flag.guard.min_requests,
            "window_s": flag.guard.window_s,
            "max_latency_ratio": flag.guard.max_latency_ratio,
            "max_mismatch_rate": flag.guard.max_mismatch_rate,
        },
        "last_analysis": analysis,
        "history": [dict(entry) for entry in reversed(row.history)],  # newest first
    }


def _window(flag: Flag, state: FlagState, row: Progress, now: float) -> tuple[str, float] | None:
    """(mode, since) of the window to judge for the view: the current step of a rollout under
    way, else the guard's window for an endpoint in canary, async or shadow; None for neither
    (the view shows the analysis stored last)."""
    if row.is_active and row.step_started_at is not None:
        mode = "shadow" if row.in_shadow_phase else flag.mode
        return mode, row.step_started_at.timestamp()
    if flag.mode in _JUDGED_MODES:
        since = now - flag.guard.window_s
        changed_at = state.changed_at.get(row.endpoint)
        if changed_at is not None:
            since = max(since, changed_at.timestamp())
        return flag.mode, since
    return None


def _phase(row: Progress) -> str | None:
    if row.state == "none":
        return None
    return "shadow" if row.step_index is None else "canary"


def _serving_percent(flag: Flag) -> float:
    return {"async": 100.0, "canary": flag.percent}.get(flag.mode, 0.0)


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None
