"""Graph event JSON to ProviderEvent: every accepted time form is an aware UTC time, known values
are normalised whatever their spelling, and malformed events fail naming the event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.errors import ProviderError
from shared.providers._graph_json import parse_event


def event(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "evt-1",
        "subject": "Standup",
        "start": {"dateTime": "2026-01-01T08:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-01-01T08:25:00.0000000", "timeZone": "UTC"},
    }
    body.update(fields)
    return body


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"dateTime": "2026-01-01T08:00:00.0000000", "timeZone": "UTC"}, (2026, 1, 1, 8, 0)),
        (
            {"dateTime": "2026-01-01T08:00:00.1234567", "timeZone": "UTC"},
            (2026, 1, 1, 8, 0, 0, 123456),
        ),
        ({"dateTime": "2026-01-01T08:00:00Z", "timeZone": "UTC"}, (2026, 1, 1, 8, 0)),
        ({"dateTime": "2026-01-01T08:00:00+02:00", "timeZone": "UTC"}, (2026, 1, 1, 6, 0)),
        ({"dateTime": "2026-01-01T08:00:00", "timeZone": "utc"}, (2026, 1, 1, 8, 0)),
        ({"dateTime": "2026-01-01T08:00:00", "timeZone": "Z"}, (2026, 1, 1, 8, 0)),
        ({"dateTime": "2026-01-01T08:00:00"}, (2026, 1, 1, 8, 0)),
        ({"dateTime": "2026-01-01T08:00:00", "timeZone": "Europe/Berlin"}, (2026, 1, 1, 7, 0)),
        # A date alone is its midnight, in the zone named (lower-case `utc` included).
        ({"dateTime": "2026-01-01", "timeZone": "utc"}, (2026, 1, 1, 0, 0)),
        ({"dateTime": "2026-01-01", "timeZone": "Z"}, (2026, 1, 1, 0, 0)),
        ({"dateTime": "2026-01-01", "timeZone": "UTC"}, (2026, 1, 1, 0, 0)),
    ],
)
def test_every_time_form_reads_as_an_aware_utc_time(
    value: dict[str, str], expected: tuple[int, ...]
) -> None:
    parsed = parse_event(event(start=value)).start
    assert parsed == datetime(*expected, tzinfo=UTC)
    assert parsed.tzinfo is UTC


def test_known_values_are_normalised_whatever_their_spelling() -> None:
    parsed = parse_event(
        event(
            showAs="WORKINGELSEWHERE",
            importance="HIGH",
            sensitivity="Confidential",
            categories=["a", 2],
            location={"displayName": "Room 1"},
            isAllDay=True,
            seriesMasterId="series-1",
        )
    )
    assert (parsed.show_as, parsed.importance, parsed.sensitivity) == (
        "workingElsewhere",
        "high",
        "confidential",
    )
    assert parsed.is_private and parsed.is_all_day
    assert (parsed.categories, parsed.location, parsed.series_id) == (
        ("a", "2"),
        "Room 1",
        "series-1",
    )


def test_unknown_values_fall_back_to_the_defaults() -> None:
    parsed = parse_event(
        event(showAs="unknown", importance="urgent", sensitivity="secret", isAllDay="true")
    )
    assert (parsed.show_as, parsed.importance, parsed.sensitivity) == ("busy", "normal", "normal")
    assert not parsed.is_private and not parsed.is_all_day


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": ""}, "event without an id"),
        ({"categories": "a"}, "'evt-1' has a malformed location or categories"),
        ({"location": "Room"}, "'evt-1' has a malformed location or categories"),
        ({"subject": 3}, "'evt-1' has a malformed subject or sensitivity"),
        ({"showAs": ["busy"]}, "'evt-1' has a malformed showAs or importance"),
        ({"seriesMasterId": 3}, "'evt-1' has a malformed showAs or importance"),
        ({"start": {"timeZone": "UTC"}}, "'evt-1' has no start.dateTime"),
        ({"end": {"dateTime": "soon", "timeZone": "UTC"}}, "invalid end.dateTime 'soon'"),
        (
            {"start": {"dateTime": "2026-01-01T08:00:00", "timeZone": "Pacific Standard Time"}},
            "Windows zone names are not supported",
        ),
    ],
)
def test_malformed_events_fail_naming_the_event(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ProviderError, match=message):
        parse_event(event(**fields))
