"""Recurring appointments: an RRULE on a series, expanded into occurrences for a window; pure.

A series master keeps its first occurrence's start and end, an RRULE (RFC 5545, without
DTSTART: the master's start is it) and the time zone whose wall clock the rule follows, so
a weekly 09:00 meeting stays at 09:00 across daylight saving. Cancelled occurrences are
listed in `exdates`; a changed occurrence is an exception: an appointment of its own naming
the series and the start it replaces (`original_start`), which suppresses that occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr

__all__ = [
    "MAX_OCCURRENCES",
    "Occurrence",
    "Recurrence",
    "expand",
    "is_occurrence",
    "parse_recurrence",
]

# Expanding a window never yields more than this per series (a daily rule over ten years).
MAX_OCCURRENCES = 5000
MAX_RULE_LENGTH = 500
MAX_EXDATES = 1000
_FREQUENCIES = {DAILY: "DAILY", WEEKLY: "WEEKLY", MONTHLY: "MONTHLY", YEARLY: "YEARLY"}
_UTC_UNTIL = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Recurrence:
    """A series' rule: the RRULE text, the zone it follows and its cancelled occurrences (UTC)."""

    rrule: str
    timezone: str = "UTC"
    exdates: tuple[datetime, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "rrule": self.rrule,
            "timezone": self.timezone,
            "exdates": [d.astimezone(UTC).isoformat(timespec="seconds") for d in self.exdates],
        }

    @classmethod
    def from_json(cls, value: dict[str, object]) -> Recurrence:
        exdates = value.get("exdates") or []
        assert isinstance(exdates, list)
        return cls(
            str(value["rrule"]),
            str(value.get("timezone") or "UTC"),
            tuple(datetime.fromisoformat(str(d)) for d in exdates),
        )


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of a series, in UTC."""

    start: datetime
    end: datetime


def parse_recurrence(
    rule_text: str, timezone: str, exdates: Iterable[datetime], start: datetime
) -> Recurrence:
    """A checked Recurrence for a series starting at `start`; ValueError saying what is wrong.

    Only DAILY, WEEKLY, MONTHLY and YEARLY rules (what calendar apps offer); no DTSTART (the
    series' start is it); UNTIL as a date, a local time or a UTC time (`...Z`).
    """
    text = rule_text.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if not text:
        raise ValueError("the rrule must not be empty (e.g. FREQ=WEEKLY;BYDAY=MO)")
    if len(text) > MAX_RULE_LENGTH:
        raise ValueError(f"the rrule must be at most {MAX_RULE_LENGTH} characters")
    if "\n" in text or "DTSTART" in text.upper():
        raise ValueError("give the RRULE alone: the appointment's start is the series' start")
    zone = ZoneInfo(timezone)
    rule = _rule(text, zone, start)
    if rule._freq not in _FREQUENCIES:  # dateutil keeps the frequency private
        raise ValueError("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY")
    cancelled = tuple(sorted({d.astimezone(UTC) for d in exdates}))
    if len(cancelled) > MAX_EXDATES:
        raise ValueError(f"at most {MAX_EXDATES} exdates")
    return Recurrence(text.upper(), timezone, cancelled)


def expand(
    start: datetime,
    end: datetime,
    recurrence: Recurrence,
    window_start: datetime,
    window_end: datetime,
    *,
    replaced: Iterable[datetime] = (),
) -> list[Occurrence]:
    """The series' occurrences overlapping [window_start, window_end), by start, in UTC.

    Exdates and the starts in `replaced` (those of exceptions) are left out. Raises
    ValueError when one window holds more than MAX_OCCURRENCES of the series.
    """
    zone = ZoneInfo(recurrence.timezone)
    # In UTC: two times of one zone object subtract by their wall clocks.
    duration = end.astimezone(UTC) - start.astimezone(UTC)
    rule = _rule(recurrence.rrule, zone, start)
    skipped = {d.astimezone(UTC) for d in (*recurrence.exdates, *replaced)}
    # Search a little wider in wall time (offsets move by at most a day), then filter in UTC.
    low = _wall(window_start - duration, zone) - timedelta(days=1)
    high = _wall(window_end, zone) + timedelta(days=1)
    found: list[datetime] = []
    for wall in rule.xafter(low, inc=True):
        if wall >= high:
            break
        found.append(wall)
        if len(found) > MAX_OCCURRENCES:
            raise ValueError(
                f"the series has more than {MAX_OCCURRENCES} occurrences in the window"
            )
    occurrences = []
    for wall in found:
        first = wall.replace(tzinfo=zone).astimezone(UTC)
        if first in skipped:
            continue
        last = first + duration
        if first < window_end and last > window_start:
            occurrences.append(Occurrence(first, last))
    return occurrences


def is_occurrence(start: datetime, recurrence: Recurrence, moment: datetime) -> bool:
    """True when the series starting at `start` has an occurrence starting at `moment`."""
    zone = ZoneInfo(recurrence.timezone)
    rule = _rule(recurrence.rrule, zone, start)
    wall = _wall(moment, zone)
    for candidate in rule.xafter(wall - timedelta(days=1), inc=True):
        if candidate.replace(tzinfo=zone).astimezone(UTC) == moment.astimezone(UTC):
            return True
        if candidate > wall + timedelta(days=1):
            return False
    return False


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _rule(text: str, zone: ZoneInfo, start: datetime) -> rrule:
    # Expanded in naive wall time of the series' zone; a UTC UNTIL is moved into it.
    local = _UTC_UNTIL.sub(
        lambda m: (
            "UNTIL="
            + _wall(
                datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC), zone
            ).strftime("%Y%m%dT%H%M%S")
        ),
        text,
    )
    try:
        rule = rrulestr(local, dtstart=_wall(start, zone))
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"invalid rrule {text[:100]!r}: {exc}") from None
    if not isinstance(rule, rrule):
        raise ValueError(f"invalid rrule {text[:100]!r}: give a single RRULE")
    return rule
