"""Date phrases: the table of what each phrase means, relative to a fixed today."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from shared.date_phrases import DayRange, parse_date_phrase, resolve_bound, resolve_window

TODAY = date(2026, 5, 6)  # a Wednesday


@pytest.mark.parametrize(
    ("phrase", "first", "last"),
    [
        ("today", "2026-05-06", "2026-05-06"),
        ("Yesterday", "2026-05-05", "2026-05-05"),
        ("tomorrow", "2026-05-07", "2026-05-07"),
        ("last 7 days", "2026-04-30", "2026-05-06"),
        ("past  1 day", "2026-05-06", "2026-05-06"),
        ("next 3 days", "2026-05-06", "2026-05-08"),
        ("2 days ago", "2026-05-04", "2026-05-04"),
        ("0 days ago", "2026-05-06", "2026-05-06"),
        ("this week", "2026-05-04", "2026-05-10"),
        ("last week", "2026-04-27", "2026-05-03"),
        ("next week", "2026-05-11", "2026-05-17"),
        ("this month", "2026-05-01", "2026-05-31"),
        ("last month", "2026-04-01", "2026-04-30"),
        ("next month", "2026-06-01", "2026-06-30"),
        ("this year", "2026-01-01", "2026-12-31"),
        ("last year", "2025-01-01", "2025-12-31"),
        ("2026-02-28", "2026-02-28", "2026-02-28"),
    ],
)
def test_each_phrase_names_its_days(phrase: str, first: str, last: str) -> None:
    assert parse_date_phrase(phrase)(TODAY) == DayRange(
        date.fromisoformat(first), date.fromisoformat(last)
    )


def test_months_wrap_around_the_year() -> None:
    assert parse_date_phrase("last month")(date(2026, 1, 15)) == DayRange(
        date(2025, 12, 1), date(2025, 12, 31)
    )
    assert parse_date_phrase("next month")(date(2026, 12, 31)) == DayRange(
        date(2027, 1, 1), date(2027, 1, 31)
    )


@pytest.mark.parametrize("phrase", ["soon", "last 0 days", "last 9999 days", "2026-02-30", ""])
def test_an_unknown_phrase_lists_the_accepted_ones(phrase: str) -> None:
    with pytest.raises(ValueError, match=r"date|days must be"):
        parse_date_phrase(phrase)


def test_bounds_are_midnights_in_the_zone_and_an_end_includes_its_day() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = resolve_bound("last 7 days", berlin, TODAY, is_end=False)
    end = resolve_bound("yesterday", berlin, TODAY, is_end=True)
    assert start.astimezone(UTC) == datetime(2026, 4, 29, 22, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2026, 5, 5, 22, tzinfo=UTC)
    exact = resolve_bound("2026-05-01T10:00:00Z", berlin, TODAY, is_end=False)
    assert exact == datetime(2026, 5, 1, 10, tzinfo=UTC)


def test_a_phrase_alone_is_its_whole_range_an_iso_start_alone_leaves_the_end_open() -> None:
    utc = ZoneInfo("UTC")
    assert resolve_window("last week", None, utc, TODAY) == (
        datetime(2026, 4, 27, tzinfo=utc),
        datetime(2026, 5, 4, tzinfo=utc),
    )
    assert resolve_window("2026-05-01", None, utc, TODAY) == (
        datetime(2026, 5, 1, tzinfo=utc),
        None,
    )
    assert resolve_window(None, "yesterday", utc, TODAY) == (None, datetime(2026, 5, 6, tzinfo=utc))
    assert resolve_window(None, None, utc, TODAY) == (None, None)
