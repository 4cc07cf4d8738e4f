"""Timesheet rules: business time by category, hours per day in the zone, the CSV."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from shared.timesheet_rules import TimedEntry, summarise, timesheet_category, to_csv

BERLIN = ZoneInfo("Europe/Berlin")
CATEGORIES = ["Billable", "Non-billable", "Travel"]


def test_the_first_configured_category_carried_wins_and_personal_time_is_out() -> None:
    assert timesheet_category(["travel", "billable"], "normal", CATEGORIES) == "Billable"
    assert timesheet_category(["Focus"], "normal", CATEGORIES) is None
    assert timesheet_category(["Billable", "Personal"], "normal", CATEGORIES) is None
    for sensitivity in ("personal", "private", "confidential"):
        assert timesheet_category(["Billable"], sensitivity, CATEGORIES) is None


def test_hours_split_at_local_midnight_and_all_day_ones_are_counted_apart() -> None:
    entries = [
        TimedEntry(
            datetime(2026, 5, 4, 9, tzinfo=BERLIN),
            datetime(2026, 5, 4, 12, tzinfo=BERLIN),
            "Billable",
        ),
        # 23:00 to 01:30 Berlin time: 1 h on the 4th, 1.5 h on the 5th
        TimedEntry(
            datetime(2026, 5, 4, 23, tzinfo=BERLIN),
            datetime(2026, 5, 5, 1, 30, tzinfo=BERLIN),
            "Travel",
        ),
        TimedEntry(
            datetime(2026, 5, 5, 0, tzinfo=BERLIN),
            datetime(2026, 5, 6, 0, tzinfo=BERLIN),
            "Travel",
            True,
        ),
        # outside the days asked for
        TimedEntry(
            datetime(2026, 5, 9, 9, tzinfo=BERLIN),
            datetime(2026, 5, 9, 10, tzinfo=BERLIN),
            "Billable",
        ),
    ]
    summary = summarise(entries, CATEGORIES, BERLIN, date(2026, 5, 4), date(2026, 5, 5))
    assert summary["total_hours"] == 5.5
    assert summary["by_category"] == {"Billable": 3.0, "Non-billable": 0.0, "Travel": 2.5}
    assert [(d["date"], d["total_hours"]) for d in summary["days"]] == [
        ("2026-05-04", 4.0),
        ("2026-05-05", 1.5),
    ]
    assert (summary["appointments"], summary["all_day"]) == (2, 1)
    assert to_csv(summary) == (
        "date,Billable,Non-billable,Travel,total\r\n"
        "2026-05-04,3.00,0.00,1.00,4.00\r\n"
        "2026-05-05,0.00,0.00,1.50,1.50\r\n"
        "total,3.00,0.00,2.50,5.50\r\n"
    )


def test_a_day_of_daylight_saving_counts_real_hours() -> None:
    # 29 March 2026 has 23 hours in Berlin: 00:00 to 04:00 local is 3 hours.
    entry = TimedEntry(
        datetime(2026, 3, 29, 0, tzinfo=BERLIN), datetime(2026, 3, 29, 4, tzinfo=BERLIN), "Billable"
    )
    summary = summarise([entry], CATEGORIES, BERLIN, date(2026, 3, 29), date(2026, 3, 29))
    assert summary["total_hours"] == 3.0
