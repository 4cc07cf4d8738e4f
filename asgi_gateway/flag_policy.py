"""A flag's guard and rollout settings: when a rollout is unhealthy, and how it moves (pure).

`guard` is read by the guard (automatic rollback, "not promotable") and `rollout` by the
progressive rollout engine; both are parsed here for the flag file, the API and the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from asgi_gateway.errors import FlagError
from asgi_gateway.flag_values import check_fraction, check_percent, parse_duration_s

StartFrom = Literal["canary", "shadow"]
DEFAULT_STEPS: tuple[float, ...] = (1.0, 5.0, 25.0, 50.0, 100.0)
MAX_STEPS = 20
MIN_INTERVAL_S = 1.0
MAX_INTERVAL_S = 7 * 24 * 3600.0  # per-minute stats are kept at least a week


@dataclass(frozen=True, slots=True)
class Guard:
    """When an async rollout counts as unhealthy (read by the auto-rollback guard)."""

    max_error_rate: float = 0.02
    min_requests: int = 50
    window_s: float = 60.0
    max_latency_ratio: float = 2.0
    max_mismatch_rate: float = 0.01  # shadow: above it the endpoint is not promotable


@dataclass(frozen=True, slots=True)
class Rollout:
    """How a progressive rollout moves: canary steps (percents ending at 100), the interval
    between them, and an optional shadow phase first (`start_from` shadow, for `shadow_for_s`).
    """

    steps: tuple[float, ...] = DEFAULT_STEPS
    interval_s: float = 600.0
    start_from: StartFrom = "canary"
    shadow_for_s: float = 600.0


_GUARD_KEYS = ("max_error_rate", "min_requests", "window", "max_latency_ratio", "max_mismatch_rate")


def parse_guard(raw: Any, base: Guard) -> Guard:
    """A guard mapping (`max_error_rate`, `min_requests`, `window`, `max_latency_ratio`,
    `max_mismatch_rate`)."""
    if raw is None:
        return base
    if not isinstance(raw, Mapping):
        raise FlagError("guard must be a mapping", field="guard")
    unknown = sorted(set(raw) - set(_GUARD_KEYS))
    if unknown:
        raise FlagError(
            f"unknown guard key {unknown[0]!r} (expected {', '.join(_GUARD_KEYS)})", field="guard"
        )
    guard = base
    if "max_error_rate" in raw:
        rate = check_fraction(raw["max_error_rate"], "guard.max_error_rate", "guard")
        guard = replace(guard, max_error_rate=rate)
    if "min_requests" in raw:
        count = raw["min_requests"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise FlagError(
                f"guard.min_requests must be a whole number >= 1, got {count!r}", field="guard"
            )
        guard = replace(guard, min_requests=count)
    if "window" in raw:
        try:
            window_s = parse_duration_s(raw["window"])
        except FlagError as exc:
            # field "guard": the error line is the guard's, not its parent's
            raise FlagError(f"guard.window: {exc.message}", field="guard") from None
        guard = replace(guard, window_s=window_s)
    if "max_latency_ratio" in raw:
        ratio = raw["max_latency_ratio"]
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or ratio < 1:
            raise FlagError(f"guard.max_latency_ratio must be >= 1, got {ratio!r}", field="guard")
        guard = replace(guard, max_latency_ratio=float(ratio))
    if "max_mismatch_rate" in raw:
        rate = check_fraction(raw["max_mismatch_rate"], "guard.max_mismatch_rate", "guard")
        guard = replace(guard, max_mismatch_rate=rate)
    return guard


def check_steps(value: Any, *, field: str = "steps") -> tuple[float, ...]:
    """Rollout steps: canary percents, rising, ending at 100 (the endpoint then serves async)."""
    if not isinstance(value, list | tuple) or not value:
        raise FlagError(
            f"steps must be a list of percents ending at 100, such as [1, 5, 25, 50, 100], "
            f"got {value!r}",
            field=field,
        )
    if len(value) > MAX_STEPS:
        raise FlagError(f"steps: at most {MAX_STEPS} steps, got {len(value)}", field=field)
    steps: list[float] = []
    for step in value:
        try:
            percent = check_percent(step)
        except FlagError as exc:
            message = exc.message.replace("percent", "step", 1)
            raise FlagError(f"steps: {message}", field=field) from None
        if percent <= 0:
            raise FlagError("steps: every step must be above 0", field=field)
        if steps and percent <= steps[-1]:
            raise FlagError(f"steps must rise: {percent:g} comes after {steps[-1]:g}", field=field)
        steps.append(percent)
    if steps[-1] != 100:
        raise FlagError(
            f"steps must end at 100 (the endpoint then serves async), not {steps[-1]:g}",
            field=field,
        )
    return tuple(steps)


def check_interval(value: Any, *, field: str = "interval", name: str = "interval") -> float:
    """A rollout duration (`10m`, `30s`, `1h`) from 1 second to 7 days, in seconds."""
    try:
        seconds = parse_duration_s(value, field=field)
    except FlagError as exc:
        raise FlagError(f"{name}: {exc.message}", field=field) from None
    if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
        raise FlagError(f"{name} must be from 1s to 7d, got {value!r}", field=field)
    return seconds


_ROLLOUT_KEYS = ("steps", "interval", "from", "shadow_for")


def parse_rollout(raw: Any, base: Rollout) -> Rollout:
    """A rollout mapping: `steps`, `interval`, `from` (canary or shadow), `shadow_for`."""
    if raw is None:
        return base
    if not isinstance(raw, Mapping):
        raise FlagError(
            "rollout must be a mapping such as {steps: [1, 5, 25, 50, 100], interval: 10m}",
            field="rollout",
        )
    unknown = sorted(set(raw) - set(_ROLLOUT_KEYS))
    if unknown:
        raise FlagError(
            f"unknown rollout key {unknown[0]!r} (expected {', '.join(_ROLLOUT_KEYS)})",
            field="rollout",
        )
    rollout = base
    try:
        if "steps" in raw:
            rollout = replace(rollout, steps=check_steps(raw["steps"], field="rollout"))
        if "interval" in raw:
            interval_s = check_interval(raw["interval"], field="rollout")
            rollout = replace(rollout, interval_s=interval_s)
        if "shadow_for" in raw:
            shadow_for_s = check_interval(raw["shadow_for"], field="rollout", name="shadow_for")
            rollout = replace(rollout, shadow_for_s=shadow_for_s)
    except FlagError as exc:
        raise FlagError(f"rollout.{exc.message}", field="rollout") from None
    if "from" in raw:
        if raw["from"] not in ("canary", "shadow"):
            raise FlagError(
                f"rollout.from must be canary or shadow, got {raw['from']!r}", field="rollout"
            )
        rollout = replace(rollout, start_from=raw["from"])
    return rollout
