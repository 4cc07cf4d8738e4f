"""A week of appointments by day in one zone, each marked with those it overlaps; pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from shared.overlaps import overlapping_pairs
from shared.providers import ProviderEvent

__all__ = ["WeekDay", "WeekEntry", "build_week", "week_bounds"]


@dataclass(frozen=True, slots=True)
class WeekEntry:
    """One appointment on one day, with the subjects of the appointments it overlaps."""

    appointment: Mapping[str, Any]
    overlaps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WeekDay:
    day: date
    entries: tuple[WeekEntry, ...]


def week_bounds(any_day: date, zone: tzinfo) -> tuple[date, datetime, datetime]:
    """The Monday of `any_day`'s week, and the week's start and end instants in `zone`."""
    monday = any_day - timedelta(days=any_day.weekday())
    start = datetime.combine(monday, time(), zone)
    return monday, start, datetime.combine(monday + timedelta(days=7), time(), zone)


def build_week(
    appointments: Iterable[Mapping[str, Any]], monday: date, zone: tzinfo
) -> list[WeekDay]:
    """Seven days from `monday`, each with the appointments it holds in `zone` (one lasting
    past midnight is on each of its days), ordered by start; overlaps by `shared.overlaps`."""
    listed = list(appointments)
    events = [
        ProviderEvent(
            event_id=str(a["id"]),
            subject=a["subject"],
            start=datetime.fromisoformat(a["start"]),
            end=datetime.fromisoformat(a["end"]),
            is_all_day=bool(a.get("is_all_day")),
        )
        for a in listed
    ]
    overlaps: dict[str, list[str]] = {}
    for first, second in overlapping_pairs(events):
        overlaps.setdefault(first.event_id, []).append(second.subject)
        overlaps.setdefault(second.event_id, []).append(first.subject)
    by_day: dict[date, list[WeekEntry]] = {monday + timedelta(days=i): [] for i in range(7)}
    for appointment, event in sorted(zip(listed, events, strict=True), key=lambda p: p[1].start):
        entry = WeekEntry(appointment, tuple(overlaps.get(event.event_id, ())))
        first_day = event.start.astimezone(zone).date()
        # An end at midnight belongs to the day before.
        last_day = (event.end.astimezone(zone) - timedelta(microseconds=1)).date()
        day = max(first_day, monday)
        while day <= last_day and day in by_day:
            by_day[day].append(entry)
            day += timedelta(days=1)
    return [WeekDay(day, tuple(entries)) for day, entries in by_day.items()]
