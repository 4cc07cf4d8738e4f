"""Timesheets: which appointments are business time, under which category; hours per category
and per day, as JSON or CSV. Pure functions.

An appointment is business time when it carries one of the configuration's timesheet
categories (case-insensitive; the first in the configuration's order wins) and is neither
private, confidential nor personal (by sensitivity, or a `Personal` category). Hours are
counted per day in the configuration's time zone, an appointment across midnight split
between its days; all-day appointments mark a day and are counted apart, not in hours.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_CATEGORIES",
    "MAX_DAYS",
    "TimedEntry",
    "summarise",
    "timesheet_category",
    "to_csv",
]

DEFAULT_CATEGORIES = ("Billable", "Non-billable", "Travel")
MAX_DAYS = 366
_EXCLUDED_SENSITIVITIES = frozenset({"private", "confidential", "personal"})
_PERSONAL = "personal"


@dataclass(frozen=True, slots=True)
class TimedEntry:
    """One archived appointment as a timesheet sees it."""

    start: datetime
    end: datetime
    category: str
    is_all_day: bool = False


def timesheet_category(
    categories: Iterable[str], sensitivity: str, configured: Sequence[str]
) -> str | None:
    """The timesheet category of an appointment, or None when it is not business time."""
    if sensitivity in _EXCLUDED_SENSITIVITIES:
        return None
    carried = {c.casefold() for c in categories}
    if _PERSONAL in carried:
        return None
    for name in configured:
        if name.casefold() in carried:
            return name
    return None


def summarise(
    entries: Iterable[TimedEntry],
    categories: Sequence[str],
    zone: ZoneInfo,
    first_day: date,
    last_day: date,
) -> dict[str, Any]:
    """Hours per category and per day (in `zone`) from `first_day` to `last_day`, included."""
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    minutes = {day: dict.fromkeys(categories, 0.0) for day in days}
    # In UTC: Python subtracts two times of one zone object by their wall clocks, which
    # would count a daylight-saving day as 24 hours.
    window_start = datetime.combine(first_day, time(), zone).astimezone(UTC)
    window_end = datetime.combine(last_day + timedelta(days=1), time(), zone).astimezone(UTC)
    counted = all_day = 0
    for entry in entries:
        if entry.category not in categories:
            continue
        if entry.is_all_day:
            all_day += 1
            continue
        start = max(entry.start.astimezone(UTC), window_start)
        end = min(entry.end.astimezone(UTC), window_end)
        if end <= start:
            continue
        counted += 1
        for day, share in _split_by_day(start, end, zone):
            if day in minutes:
                minutes[day][entry.category] += share
    by_category = {c: _hours(sum(minutes[d][c] for d in days)) for c in categories}
    return {
        "timezone": zone.key,
        "start": first_day.isoformat(),
        "end": last_day.isoformat(),
        "categories": list(categories),
        "total_hours": _hours(sum(sum(m.values()) for m in minutes.values())),
        "by_category": by_category,
        "days": [
            {
                "date": day.isoformat(),
                "total_hours": _hours(sum(minutes[day].values())),
                "by_category": {c: _hours(minutes[day][c]) for c in categories},
            }
            for day in days
        ],
        "appointments": counted,
        "all_day": all_day,
    }


def to_csv(summary: dict[str, Any]) -> str:
    """The summary as CSV: a header row, one row per day, then a `total` row (hours, 2 places)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    categories = summary["categories"]
    writer.writerow(["date", *categories, "total"])
    for day in summary["days"]:
        writer.writerow(
            [
                day["date"],
                *(_fmt(day["by_category"][c]) for c in categories),
                _fmt(day["total_hours"]),
            ]
        )
    writer.writerow(
        [
            "total",
            *(_fmt(summary["by_category"][c]) for c in categories),
            _fmt(summary["total_hours"]),
        ]
    )
    return out.getvalue()


def _split_by_day(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[date, float]]:
    """Minutes of [start, end) falling on each local day of `zone`."""
    shares = []
    cursor = start
    while cursor < end:
        day = cursor.astimezone(zone).date()
        midnight = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
        stop = min(end, midnight)
        shares.append((day, (stop - cursor).total_seconds() / 60))
        cursor = stop
    return shares


def _hours(minutes: float) -> float:
    return round(minutes / 60, 2)


def _fmt(hours: float) -> str:
    return f"{hours:.2f}"
