"""Job schedules: parse cron and the shorthands, and compute fire times in a zone; pure functions.

Two kinds of schedule exist. Wall-clock schedules (cron, `daily@HH:MM`, `weekly@mon HH:MM`)
fire at local times in the job's time zone; `every N[s|m|h]` fires every N of elapsed time,
at multiples of N since 1970-01-01 UTC, whatever the zone. Daylight saving rules for the
wall-clock kind:

* A local time the spring-forward jump skips is read with the offset in force before the jump:
  `daily@02:30` in Europe/Berlin fires at 03:30 CEST (01:30 UTC) on that day, once.
* A local time the fall-back repeats fires at its first occurrence only, once, unless the cron
  fires in every hour (`*/15 * * * *`), which fires in both: it is a clock, not a time of day.

Cron parsing and matching come from croniter, run on naive local wall times; turning those
into instants (and the rules above) is done here with zoneinfo.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

from croniter import CroniterError, croniter

__all__ = [
    "MISFIRE_POLICIES",
    "DuePlan",
    "Misfire",
    "Schedule",
    "fires_between",
    "last_fire",
    "next_fire",
    "parse_schedule",
    "plan_due",
]

Misfire = Literal["skip", "run_once"]
MISFIRE_POLICIES: tuple[Misfire, ...] = ("skip", "run_once")

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAILY = re.compile(r"daily@(\d{1,2}):(\d{2})")
_WEEKLY = re.compile(r"weekly@([a-z]{3}) (\d{1,2}):(\d{2})")
_EVERY = re.compile(r"every (\d{1,6}) ?([smh])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600}
_MAX_INTERVAL_S = 7 * 24 * 3600
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Local wall time and UTC differ by less than a day, and one offset by at most a few hours
# from the next; searching this far around a wall time finds every instant that maps to it.
_SLACK = timedelta(hours=3)
_MAX_STEPS = 100_000
_TINY = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule: its normalized text, and either a cron expression or an interval."""

    text: str
    cron: str | None = None
    interval_s: int | None = None
    every_hour: bool = False  # a cron firing in all 24 hours (fires in a repeated hour too)


def parse_schedule(text: str) -> Schedule:
    """Parse `0 2 * * *`, `daily@02:00`, `weekly@mon 02:00` or `every 15m`; ValueError if bad."""
    normalized = " ".join(text.strip().lower().split())
    if not normalized:
        raise ValueError("must not be empty (e.g. '0 2 * * *', 'daily@02:00', 'every 15m')")
    if match := _DAILY.fullmatch(normalized):
        hour, minute = _clock(match.group(1), match.group(2), text)
        return _cron(f"{minute} {hour} * * *", normalized)
    if match := _WEEKLY.fullmatch(normalized):
        day = match.group(1)
        if day not in _DAYS:
            raise ValueError(f"{text!r}: unknown day {day!r} (use one of {', '.join(_DAYS)})")
        hour, minute = _clock(match.group(2), match.group(3), text)
        return _cron(f"{minute} {hour} * * {(_DAYS.index(day) + 1) % 7}", normalized)
    if match := _EVERY.fullmatch(normalized):
        seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
        if not 1 <= seconds <= _MAX_INTERVAL_S:
            raise ValueError(f"{text!r}: the interval must be between 1s and 168h")
        return Schedule(f"every {match.group(1)}{match.group(2)}", interval_s=seconds)
    if normalized.startswith(("daily", "weekly", "every")):
        raise ValueError(
            f"{text!r} is not a schedule (expected 'daily@HH:MM', 'weekly@mon HH:MM' "
            "or 'every N' with s, m or h, e.g. 'every 15m')"
        )
    fields = normalized.split(" ")
    if len(fields) != 5:
        raise ValueError(
            f"{text!r} is not a schedule: a cron expression has 5 fields (minute hour "
            f"day-of-month month day-of-week), got {len(fields)}"
        )
    return _cron(normalized, normalized)


def _clock(hour: str, minute: str, text: str) -> tuple[int, int]:
    if int(hour) > 23 or int(minute) > 59:
        raise ValueError(f"{text!r}: {hour}:{minute} is not a time of day (00:00 to 23:59)")
    return int(hour), int(minute)


def _cron(expression: str, text: str) -> Schedule:
    try:
        expanded, _ = croniter.expand(expression)
        # A date that never comes (`0 0 31 2 *`) is only found by looking for it.
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError as exc:
        raise ValueError(f"{text!r} is not a valid cron expression ({exc})") from None
    hours = expanded[1]
    return Schedule(text, cron=expression, every_hour=hours == ["*"] or len(hours) == 24)


def next_fire(schedule: Schedule, tz: tzinfo, after: datetime) -> datetime:
    """The first fire time strictly after `after` (an aware datetime), in UTC."""
    after = after.astimezone(UTC)
    if schedule.interval_s is not None:
        step = timedelta(seconds=schedule.interval_s)
        return _EPOCH + ((after - _EPOCH) // step + 1) * step
    assert schedule.cron is not None
    wall = after.astimezone(tz).replace(tzinfo=None)
    best: datetime | None = None
    for naive in _walk(schedule.cron, wall - _SLACK, forward=True):
        instants = _instants(naive, tz, schedule.every_hour)
        # Read with the offset before any change, instants never go back as wall times go
        # forward: once the first is past the best found, nothing later can beat it.
        if best is not None and instants[0] >= best:
            return best
        for instant in instants:
            if instant > after and (best is None or instant < best):
                best = instant
    raise ValueError(f"schedule {schedule.text!r} has no fire time after {after.isoformat()}")


def last_fire(schedule: Schedule, tz: tzinfo, at: datetime) -> datetime | None:
    """The latest fire time at or before `at`, in UTC (None if there is none)."""
    at = at.astimezone(UTC)
    if schedule.interval_s is not None:
        step = timedelta(seconds=schedule.interval_s)
        return _EPOCH + ((at - _EPOCH) // step) * step
    assert schedule.cron is not None
    wall = at.astimezone(tz).replace(tzinfo=None)
    best: datetime | None = None
    for naive in _walk(schedule.cron, wall + _SLACK, forward=False):
        instants = _instants(naive, tz, schedule.every_hour)
        if best is not None and instants[-1] <= best:
            return best
        for instant in instants:
            if instant <= at and (best is None or instant > best):
                best = instant
    return best


def fires_between(
    schedule: Schedule, tz: tzinfo, start: datetime, end: datetime, limit: int
) -> list[datetime]:
    """Fire times in [start, end], oldest first, at most `limit` of them."""
    fires: list[datetime] = []
    moment = start.astimezone(UTC) - _TINY
    while len(fires) < limit:
        moment = next_fire(schedule, tz, moment)
        if moment > end:
            break
        fires.append(moment)
    return fires


@dataclass(frozen=True, slots=True)
class DuePlan:
    """What a scheduler does for one job at one tick.

    `runs`: scheduled times to start now, oldest first. `missed`: a scheduled time no
    scheduler claimed in time and that is not run, to record as skipped. `next_run_at`:
    the job's cursor afterwards (the first scheduled time not yet handled).
    """

    runs: tuple[datetime, ...]
    missed: datetime | None
    next_run_at: datetime


def plan_due(
    schedule: Schedule,
    tz: tzinfo,
    cursor: datetime,
    now: datetime,
    *,
    grace_s: float,
    misfire: Misfire,
    limit: int = 100,
) -> DuePlan:
    """Which scheduled times from `cursor` up to `now` to run, and which missed one to record.

    A time within `grace_s` of `now` is on time and runs. Older ones were missed (no
    scheduler ran): they collapse into the latest of them, which runs under `run_once` when
    nothing on time runs anyway, and is recorded as skipped otherwise. At most `limit` times
    are handled per call; the cursor then stops after the last one handled.
    """
    if cursor > now:
        return DuePlan((), None, cursor)
    horizon = now - timedelta(seconds=grace_s)
    on_time = fires_between(schedule, tz, max(cursor, horizon), now, limit)
    missed = None
    if cursor < horizon:
        latest = last_fire(schedule, tz, horizon - _TINY)
        if latest is not None and latest >= cursor:
            missed = latest
    runs = tuple(on_time)
    if missed is not None and misfire == "run_once" and not runs:
        runs, missed = (missed,), None
    after = on_time[-1] if len(on_time) == limit else now
    return DuePlan(runs, missed, next_fire(schedule, tz, after))


def _walk(expression: str, start: datetime, *, forward: bool) -> Iterator[datetime]:
    """Naive wall times matching `expression` from `start` on (or back), exclusive."""
    cron = croniter(expression, start)
    step = cron.get_next if forward else cron.get_prev
    for _ in range(_MAX_STEPS):
        try:
            yield step(datetime)
        except CroniterError:
            return


def _instants(naive: datetime, tz: tzinfo, both_folds: bool) -> tuple[datetime, ...]:
    """The instants a local wall time names: one, or two in a repeated hour (oldest first)."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if not both_folds:
        return (first,)
    second = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    # fold=1 comes later only in a repeated hour; in a skipped one it would come earlier
    # (the offset after the jump), and that reading is not used.
    return (first, second) if second > first else (first,)
