"""Readable times in a zone, and the week of appointments with its overlaps (pure)."""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from legacy_flask.forms import form_errors, whole_number, word_list
from legacy_flask.local_times import readable_moment, readable_span, time_element
from legacy_flask.week import build_week, week_bounds
from shared.errors import ValidationFailed

BERLIN = ZoneInfo("Europe/Berlin")
TODAY = date(2023, 10, 1)


def test_a_span_within_a_day_reads_as_the_issue_shows_it() -> None:
    span = readable_span("2023-10-03T06:00:00+00:00", "2023-10-03T06:30:00+00:00", BERLIN, TODAY)
    assert span == "Tue 3 Oct, 08:00-08:30"


def test_a_span_across_midnight_names_both_days_and_another_year_is_named() -> None:
    span = readable_span("2023-10-03T21:00:00+00:00", "2023-10-04T00:00:00+00:00", BERLIN, TODAY)
    assert span == "Tue 3 Oct, 23:00 - Wed 4 Oct, 02:00"
    moment = readable_moment("2024-03-31T01:30:00+00:00", BERLIN, TODAY)
    assert moment == "Sun 31 Mar 2024, 03:30"  # the spring-forward day, in summer time


def test_all_day_spans_show_days_only() -> None:
    start = "2023-10-03T00:00:00+02:00"
    one = readable_span(start, "2023-10-04T00:00:00+02:00", BERLIN, TODAY, is_all_day=True)
    assert one == "Tue 3 Oct, all day"
    two = readable_span(start, "2023-10-05T00:00:00+02:00", BERLIN, TODAY, is_all_day=True)
    assert two == "Tue 3 Oct - Thu 5 Oct, all day"


def test_the_time_element_keeps_the_instant_and_escapes_text() -> None:
    html = time_element("2023-10-03T06:00:00+00:00", "<b>")
    assert str(html) == '<time datetime="2023-10-03T06:00:00+00:00">&lt;b&gt;</time>'


def appointment(id_: int, subject: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {"id": id_, "subject": subject, "start": start, "end": end, **extra}


def test_a_week_puts_each_appointment_on_its_days_and_marks_overlaps() -> None:
    monday, start, end = week_bounds(date(2023, 10, 4), BERLIN)
    assert monday == date(2023, 10, 2)
    assert (start.isoformat(), end.isoformat()) == (
        "2023-10-02T00:00:00+02:00",
        "2023-10-09T00:00:00+02:00",
    )
    week = build_week(
        [
            appointment(1, "Review", "2023-10-03T09:30:00+02:00", "2023-10-03T11:00:00+02:00"),
            appointment(2, "Client call", "2023-10-03T09:00:00+02:00", "2023-10-03T10:00:00+02:00"),
            appointment(3, "Lunch", "2023-10-03T12:00:00+02:00", "2023-10-03T13:00:00+02:00"),
            appointment(4, "Night shift", "2023-10-04T22:00:00+02:00", "2023-10-05T06:00:00+02:00"),
            appointment(
                5,
                "Holiday",
                "2023-10-06T00:00:00+02:00",
                "2023-10-07T00:00:00+02:00",
                is_all_day=True,
            ),
            appointment(6, "Standup", "2023-10-06T09:00:00+02:00", "2023-10-06T09:15:00+02:00"),
        ],
        monday,
        BERLIN,
    )
    assert [d.day.day for d in week] == [2, 3, 4, 5, 6, 7, 8]
    tuesday = {e.appointment["subject"]: e.overlaps for e in week[1].entries}
    assert list(tuesday) == ["Client call", "Review", "Lunch"]  # by start
    assert tuesday == {"Client call": ("Review",), "Review": ("Client call",), "Lunch": ()}
    assert [e.appointment["subject"] for e in week[2].entries] == ["Night shift"]
    assert [e.appointment["subject"] for e in week[3].entries] == ["Night shift"]
    # An all-day appointment marks the day; it does not conflict with a meeting.
    assert {e.appointment["subject"]: e.overlaps for e in week[4].entries} == {
        "Holiday": (),
        "Standup": (),
    }
    assert week[5].entries == ()  # the all-day one ends at Saturday's midnight


def test_form_values_become_api_values_and_errors_land_on_their_fields() -> None:
    assert (whole_number(" 7 "), whole_number("-1"), whole_number("x")) == (7, -1, "x")
    assert word_list(" Private, ,Lunch ") == ["Private", "Lunch"]
    error = ValidationFailed(
        "invalid archive configuration: check name, body",
        details=[
            {"field": "name", "message": "must not be empty"},
            {"field": "name", "message": "must be short"},
            {"field": "body", "message": "is empty"},
        ],
    )
    assert form_errors(error, ["name"]) == {
        "name": "must not be empty; must be short",
        "": "body is empty",
    }
    assert form_errors(ValidationFailed("whole form wrong"), ["name"]) == {"": "whole form wrong"}
