"""Recurring series expanded for a window: wall-clock times across DST, exdates, exceptions."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from shared.recurrence import Recurrence, expand, is_occurrence, parse_recurrence

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 3, 16, 9, 0, tzinfo=BERLIN)  # a Monday, before the spring change
END = datetime(2026, 3, 16, 9, 30, tzinfo=BERLIN)
WINDOW = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))


def starts(rule: Recurrence, **options: object) -> list[str]:
    return [o.start.isoformat() for o in expand(START, END, rule, *WINDOW, **options)]  # type: ignore[arg-type]


def test_a_weekly_series_keeps_its_wall_clock_across_daylight_saving() -> None:
    rule = parse_recurrence("FREQ=WEEKLY;COUNT=3", "Europe/Berlin", [], START)
    assert starts(rule) == [
        "2026-03-16T08:00:00+00:00",
        "2026-03-23T08:00:00+00:00",
        "2026-03-30T07:00:00+00:00",  # 09:00 CEST
    ]


def test_exdates_and_replaced_occurrences_are_left_out() -> None:
    cancelled = datetime(2026, 3, 23, 9, 0, tzinfo=BERLIN)
    rule = parse_recurrence("RRULE:FREQ=WEEKLY;COUNT=4", "Europe/Berlin", [cancelled], START)
    moved = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert starts(rule, replaced=[moved]) == [
        "2026-03-16T08:00:00+00:00",
        "2026-04-06T07:00:00+00:00",
    ]


def test_only_occurrences_overlapping_the_window_are_returned() -> None:
    rule = parse_recurrence("FREQ=DAILY", "Europe/Berlin", [], START)
    found = expand(
        START,
        END,
        rule,
        datetime(2026, 3, 20, 8, 15, tzinfo=UTC),  # inside the 20th's occurrence
        datetime(2026, 3, 22, 8, 0, tzinfo=UTC),  # the 22nd's starts exactly here: out
    )
    assert [o.start.day for o in found] == [20, 21]


def test_a_utc_until_ends_the_series_at_that_instant() -> None:
    rule = parse_recurrence("FREQ=WEEKLY;UNTIL=20260330T070000Z", "Europe/Berlin", [], START)
    assert len(starts(rule)) == 3


def test_is_occurrence_knows_the_series_starts() -> None:
    rule = parse_recurrence("FREQ=WEEKLY;BYDAY=MO", "Europe/Berlin", [], START)
    assert is_occurrence(START, rule, datetime(2026, 3, 30, 7, 0, tzinfo=UTC))
    assert not is_occurrence(START, rule, datetime(2026, 3, 30, 8, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FREQ=HOURLY", "FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY"),
        ("FREQ=WEEKLY;BYDAY=XX", "invalid rrule"),
        ("", "must not be empty"),
        ("DTSTART:20260101T000000\nRRULE:FREQ=DAILY", "the appointment's start is the series"),
    ],
)
def test_a_bad_rule_says_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_recurrence(text, "UTC", [], START)


def test_a_window_with_too_many_occurrences_is_refused() -> None:
    rule = parse_recurrence("FREQ=DAILY", "UTC", [], START)
    with pytest.raises(ValueError, match="more than 5000 occurrences"):
        expand(START, END, rule, WINDOW[0], datetime(2046, 1, 1, tzinfo=UTC))


def test_a_recurrence_round_trips_through_json() -> None:
    rule = parse_recurrence(
        "FREQ=WEEKLY", "Europe/Berlin", [datetime(2026, 3, 23, 9, tzinfo=BERLIN)], START
    )
    assert Recurrence.from_json(rule.to_json()) == rule
    assert rule.to_json()["exdates"] == ["2026-03-23T08:00:00+00:00"]
