"""Graph JSON that does not fit (shared/providers/_graph_json.py): errors naming the event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.errors import ProviderError
from shared.providers._base import ProviderEvent
from shared.providers._graph_json import (
    event_body,
    page_items,
    parse_calendar,
    parse_event,
    utc_iso,
)

WHEN = {"dateTime": "2026-05-04T09:00:00.0000000", "timeZone": "UTC"}
EVENT = {"id": "AAMk1", "subject": "Review", "start": WHEN, "end": WHEN}


def test_a_page_without_a_value_list_is_a_provider_error() -> None:
    assert page_items({"value": [1]}) == [1]
    with pytest.raises(ProviderError, match="has no 'value' list \\(got dict\\)"):
        page_items({"value": {}})
    with pytest.raises(ProviderError, match="got NoneType"):
        page_items({"error": "x"})


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (["not", "an", "event"], "expected an event object, got list"),
        ({"subject": "x"}, "event without an id"),
        ({**EVENT, "location": "Room 1"}, "'AAMk1' has a malformed location or categories"),
        ({**EVENT, "categories": "Billable"}, "'AAMk1' has a malformed location or categories"),
        ({**EVENT, "subject": 5}, "'AAMk1' has a malformed subject or sensitivity"),
        ({**EVENT, "sensitivity": ["private"]}, "malformed subject or sensitivity"),
        ({**EVENT, "showAs": 1}, "'AAMk1' has a malformed showAs or importance"),
        ({**EVENT, "seriesMasterId": 7}, "malformed showAs or importance"),
        ({**EVENT, "start": "2026-05-04"}, "has no start.dateTime"),
        ({**EVENT, "end": {"dateTime": "tomorrow"}}, "invalid end.dateTime 'tomorrow'"),
        (
            {**EVENT, "start": {"dateTime": "2026-05-04T09:00:00", "timeZone": 5}},
            "invalid start.timeZone 5",
        ),
        (
            {**EVENT, "start": {"dateTime": "2026-05-04T09:00:00", "timeZone": "Europe"}},
            "start.timeZone 'Europe', which is neither UTC nor an IANA zone name",
        ),
        (
            {
                **EVENT,
                "start": {"dateTime": "2026-05-04T09:00:00", "timeZone": "W. Europe Standard Time"},
            },
            "Windows zone names are not supported",
        ),
    ],
)
def test_a_malformed_event_names_itself_and_the_problem(item: Any, message: str) -> None:
    with pytest.raises(ProviderError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_event(item)


def test_an_event_in_a_named_zone_is_read_in_utc() -> None:
    event = parse_event(
        {**EVENT, "start": {"dateTime": "2026-07-01T09:00:00.0000000", "timeZone": "Europe/Berlin"}}
    )
    assert event.start == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    assert event.start.tzinfo is UTC


def test_an_event_with_its_own_offset_ignores_the_zone_name() -> None:
    event = parse_event(
        {**EVENT, "end": {"dateTime": "2026-05-04T12:00:00+02:00", "timeZone": "Asia/Tokyo"}}
    )
    assert event.end == datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def test_unknown_values_fall_back_to_the_safe_reading() -> None:
    event = parse_event(
        {
            **EVENT,
            "showAs": "unknown",
            "importance": "urgent",
            "sensitivity": "secret",
            "location": {"displayName": None},
            "categories": ["Billable", 3],
            "isAllDay": "yes",
        }
    )
    assert (event.show_as, event.importance, event.sensitivity) == ("busy", "normal", "normal")
    assert (event.location, event.categories, event.is_all_day) == ("", ("Billable", "3"), False)
    private = parse_event({**EVENT, "sensitivity": "Confidential", "showAs": "WORKINGELSEWHERE"})
    assert (private.is_private, private.show_as) == (True, "workingElsewhere")


def test_a_calendar_needs_an_id_and_defaults_its_name_and_editability() -> None:
    calendar = parse_calendar({"id": "c1", "name": None}, "ann@example.com")
    assert (calendar.name, calendar.can_edit, calendar.mailbox) == ("", True, "ann@example.com")
    assert parse_calendar({"id": "c1", "canEdit": False}, "a@b.c").can_edit is False
    for item in ({"name": "Team"}, {"id": ""}, "c1"):
        with pytest.raises(ProviderError, match="calendar without an id"):
            parse_calendar(item, "ann@example.com")


def test_written_times_are_utc_and_naive_times_are_refused() -> None:
    berlin = timezone(timedelta(hours=2))
    event = ProviderEvent(
        event_id="e",
        subject="s",
        start=datetime(2026, 5, 4, 9, 0, tzinfo=berlin),
        end=datetime(2026, 5, 4, 10, 0, 0, 123456, tzinfo=berlin),
    )
    body = event_body(event)
    assert body["start"] == {"dateTime": "2026-05-04T07:00:00.0000000", "timeZone": "UTC"}
    assert body["end"]["dateTime"] == "2026-05-04T08:00:00.1234560"
    assert utc_iso(event.start, "start") == "2026-05-04T07:00:00.000000Z"
    with pytest.raises(ValueError, match="start='2026-05-04T09:00:00' must be timezone-aware"):
        utc_iso(datetime(2026, 5, 4, 9, 0), "start")
