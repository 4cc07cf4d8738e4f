"""Date phrases people type (`yesterday`, `last 7 days`, `this month`) as ranges of days; pure.

One table, used by the command line and the run form alike. A phrase names a range of whole
days, both ends included, relative to `today` (in the configuration's time zone):

| phrase | days |
| --- | --- |
| `today`, `yesterday`, `tomorrow` | that day |
| `N days ago` | that day |
| `last N days`, `past N days` | the N days ending today (today included) |
| `next N days` | the N days starting today |
| `this week`, `last week`, `next week` | Monday to Sunday |
| `this month`, `last month`, `next month` | the first to the last day |
| `this year`, `last year` | 1 January to 31 December |
| `2026-05-04` | that day |

As a window's start a phrase gives its first day; as its end, its last day (included); given
alone as the start, it is the whole range.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

__all__ = ["PHRASES", "DayRange", "parse_date_phrase", "resolve_bound", "resolve_window"]

MAX_DAYS = 3660
_N_DAYS = re.compile(r"(last|past|next) (\d{1,4}) days?")
_DAYS_AGO = re.compile(r"(\d{1,4}) days? ago")


@dataclass(frozen=True, slots=True)
class DayRange:
    """Whole days from `first` to `last`, both included."""

    first: date
    last: date


def _week(today: date, weeks: int) -> DayRange:
    monday = today - timedelta(days=today.weekday()) + timedelta(weeks=weeks)
    return DayRange(monday, monday + timedelta(days=6))


def _month(today: date, months: int) -> DayRange:
    index = today.year * 12 + today.month - 1 + months
    first = date(index // 12, index % 12 + 1, 1)
    following = date((index + 1) // 12, (index + 1) % 12 + 1, 1)
    return DayRange(first, following - timedelta(days=1))


def _year(today: date, years: int) -> DayRange:
    return DayRange(date(today.year + years, 1, 1), date(today.year + years, 12, 31))


def _day(offset: int) -> Callable[[date], DayRange]:
    return lambda today: DayRange(today + timedelta(days=offset), today + timedelta(days=offset))


PHRASES: dict[str, Callable[[date], DayRange]] = {
    "today": _day(0),
    "yesterday": _day(-1),
    "tomorrow": _day(1),
    "this week": lambda today: _week(today, 0),
    "last week": lambda today: _week(today, -1),
    "next week": lambda today: _week(today, 1),
    "this month": lambda today: _month(today, 0),
    "last month": lambda today: _month(today, -1),
    "next month": lambda today: _month(today, 1),
    "this year": lambda today: _year(today, 0),
    "last year": lambda today: _year(today, -1),
}


def parse_date_phrase(text: str) -> Callable[[date], DayRange]:
    """The range a phrase names, as a function of today; ValueError naming the accepted forms."""
    phrase = " ".join(text.strip().lower().split())
    if phrase in PHRASES:
        return PHRASES[phrase]
    match = _N_DAYS.fullmatch(phrase)
    if match is not None:
        count = _count(match.group(2), text)
        if match.group(1) == "next":
            return lambda today: DayRange(today, today + timedelta(days=count - 1))
        return lambda today: DayRange(today - timedelta(days=count - 1), today)
    match = _DAYS_AGO.fullmatch(phrase)
    if match is not None:
        return _day(-_count(match.group(1), text, minimum=0))
    try:
        day = date.fromisoformat(phrase)
    except ValueError:
        raise ValueError(
            f"{text[:100]!r} is not a date or a date phrase (use 2026-05-04, today, yesterday, "
            "'last 7 days', 'next 3 days', '2 days ago', this/last/next week or month, "
            "this/last year)"
        ) from None
    return lambda today: DayRange(day, day)


def resolve_bound(text: str, tz: tzinfo, today: date, *, is_end: bool) -> datetime:
    """A window bound typed by a person: an ISO datetime with offset as is, else a date or phrase.

    A start is the first day's midnight in `tz`; an end is the midnight after its last day,
    so `--start "last 7 days"` and `--end yesterday` mean whole days. ValueError if unreadable.
    """
    stripped = text.strip()
    if "t" in stripped.lower() and len(stripped) > 10 and stripped[:4].isdigit():
        try:
            moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text[:100]!r} is not an ISO 8601 datetime") from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)
    days = parse_date_phrase(stripped)(today)
    if is_end:
        return datetime.combine(days.last + timedelta(days=1), time(), tz)
    return datetime.combine(days.first, time(), tz)


def resolve_window(
    start: str | None, end: str | None, tz: tzinfo, today: date
) -> tuple[datetime | None, datetime | None]:
    """A window typed by a person (the command line and the run form read it the same way).

    Each bound as `resolve_bound`; a phrase given as the start alone (`--start "last week"`)
    is the whole range it names, while an ISO start alone leaves the end to the caller.
    """
    first = resolve_bound(start, tz, today, is_end=False) if start else None
    if end:
        return first, resolve_bound(end, tz, today, is_end=True)
    if start and not _is_iso(start):
        return first, resolve_bound(start, tz, today, is_end=True)
    return first, None


def _is_iso(text: str) -> bool:
    stripped = text.strip()
    return stripped[:4].isdigit() and stripped[4:5] == "-"


def _count(raw: str, text: str, *, minimum: int = 1) -> int:
    count = int(raw)
    if not minimum <= count <= MAX_DAYS:
        raise ValueError(f"{text[:100]!r}: the number of days must be {minimum} to {MAX_DAYS}")
    return count
