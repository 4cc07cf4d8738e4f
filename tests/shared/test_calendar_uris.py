"""Calendar URIs: what parses, to what, and what is refused with which words."""

from __future__ import annotations

import pytest

from shared.calendar_uris import CalendarUri, format_uri, parse_calendar_uri


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("local://Work", CalendarUri("local", "Work")),
        ("LOCAL://Team%20A", CalendarUri("local", "Team A")),
        ("  local://Caf%C3%A9 ", CalendarUri("local", "Café")),
        ("msgraph://me/calendars/Calendar", CalendarUri("graph", "Calendar")),
        ("msgraph://me/calendars/AAMk%2Fwith+slash=", CalendarUri("graph", "AAMk/with+slash=")),
        ("msgraph://me/calendars/a/b", CalendarUri("graph", "a/b")),
        (
            "msgraph://users/Bob@Example.com/calendars/Team",
            CalendarUri("graph", "Team", "bob@example.com"),
        ),
    ],
)
def test_a_uri_parses_to_its_provider_mailbox_and_name(text: str, expected: CalendarUri) -> None:
    assert parse_calendar_uri(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ftp://x", "is not a calendar URI"),
        ("Work", "is not a calendar URI"),
        ("msgraph://them/calendars/x", "is not a calendar URI"),
        ("local://", "is not a calendar URI"),
        ("local://%20", "must not be empty"),
        ("msgraph://me/calendars/%00", "control characters"),
        ("msgraph://users/nobody/calendars/x", "is not a mailbox address"),
        ("local://" + "x" * 1000, "at most 1000 characters"),
    ],
)
def test_a_bad_uri_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_calendar_uri(text)


def test_a_stored_calendar_formats_to_a_uri_that_parses_back() -> None:
    cases = [
        ("local", "Team A/B", None, None),
        ("graph", "Ignored", "AAMk/with+slash=", None),
        ("graph", "Ignored", "AAMk-1", "bob@example.com"),
    ]
    for provider, name, provider_id, mailbox in cases:
        uri = format_uri(provider, name, provider_id, mailbox)
        parsed = parse_calendar_uri(uri)
        assert parsed.ref == (name if provider == "local" else provider_id)
        assert parsed.mailbox == mailbox
    assert format_uri("local", "Team A", None, None) == "local://Team%20A"
    assert format_uri("graph", "x", "AAMk/x=", None) == "msgraph://me/calendars/AAMk%2Fx="
    assert (
        format_uri("graph", "x", "AAMk-1", "bob@example.com")
        == "msgraph://users/bob@example.com/calendars/AAMk-1"
    )
