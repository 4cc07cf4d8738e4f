"""Bad input to the request parsers of shared/inputs/: each gets a 422 naming the field and why."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from shared.errors import MalformedJSON, ValidationFailed
from shared.inputs.appointments import check_recurrence, parse_appointment
from shared.inputs.archive import (
    parse_action_item_query,
    parse_archive_config,
    parse_archive_run,
    parse_resolution,
    parse_timesheet_query,
)
from shared.inputs.audit import parse_audit_query
from shared.inputs.calendars import parse_calendar, parse_remote_query
from shared.validation import (
    aware_datetime,
    check_mailbox,
    decode_json,
    parse_job,
    parse_new_token,
    parse_password_change,
    provider_id,
    schedule_text,
    string_list,
    text,
)

APPOINTMENT = {
    "calendar_id": 1,
    "subject": "Review",
    "start": "2026-05-04T09:00:00+02:00",
    "end": "2026-05-04T10:00:00+02:00",
}


def details(error: pytest.ExceptionInfo[ValidationFailed]) -> dict[str, str]:
    return {d["field"]: d["message"] for d in error.value.details}


# -- calendars ------------------------------------------------------------------------------------


def test_a_calendar_uri_that_is_not_a_string_is_named() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_calendar({"uri": 5, "role": "source"})
    assert details(error) == {"uri": "must be a calendar URI string, got number"}


def test_a_calendar_given_by_uri_and_provider_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="check uri") as error:
        parse_calendar({"uri": "local://Work", "provider": "local", "role": "source"})
    assert details(error) == {"uri": "give either uri or provider and provider_id"}


def test_a_graph_calendar_needs_its_provider_id() -> None:
    with pytest.raises(ValidationFailed, match="check provider_id") as error:
        parse_calendar({"name": "Team", "role": "source", "provider": "graph"})
    assert details(error) == {"provider_id": "is required when provider is graph"}


def test_a_null_uri_is_refused_on_create_and_update() -> None:
    for body, partial in (
        ({"uri": None, "name": "Work", "role": "archive"}, False),
        ({"uri": None}, True),
    ):
        with pytest.raises(ValidationFailed, match="check uri") as error:
            parse_calendar(body, partial=partial)
        assert details(error) == {"uri": "must be a calendar URI string, got null"}


def test_a_calendar_by_uri_keeps_the_parsed_uri_and_needs_no_name() -> None:
    values = parse_calendar({"uri": "msgraph://me/calendars/Team", "role": "source"})
    assert str(values["uri"]) == "msgraph://me/calendars/Team"
    assert values["name"] is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (7, "must be a string, got number"),
        ("", "must not be empty"),
        ("a" * 301, "must be at most 300 characters, got 301"),
        ("../../admin", "may only contain letters, digits"),
    ],
)
def test_a_bad_provider_id_says_what_is_allowed(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        provider_id(value)


def test_the_remote_query_takes_a_mailbox_lowercased_or_none() -> None:
    assert parse_remote_query({}) is None
    assert parse_remote_query({"mailbox": ""}) is None
    assert parse_remote_query({"mailbox": "Bob@Example.COM"}) == "bob@example.com"
    with pytest.raises(ValidationFailed, match="invalid query") as error:
        parse_remote_query({"mailbox": "bob/../../me"})
    assert details(error) == {
        "mailbox": "'bob/../../me' is not a mailbox address (user@example.com)"
    }


def test_a_mailbox_that_could_change_a_remote_path_is_refused() -> None:
    assert check_mailbox("Ann@Example.com") == "ann@example.com"
    for bad in ("ann@example.com/../x", 5, "a" * 320 + "@example.com"):
        with pytest.raises(ValidationFailed, match="expected an address such as user@example"):
            check_mailbox(bad)


# -- appointments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recurrence", "message"),
    [
        ("FREQ=DAILY", "must be an object with rrule, timezone and exdates, got string"),
        ({"rrule": "FREQ=DAILY", "until": "x"}, "unknown keys until"),
        ({"rrule": "  "}, "rrule must be a non-empty string"),
        ({"rrule": "FREQ=DAILY", "exdates": "2026-05-05"}, "exdates must be a list"),
    ],
)
def test_a_malformed_recurrence_is_explained(recurrence: Any, message: str) -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_appointment({**APPOINTMENT, "recurrence": recurrence})
    assert message in details(error)["recurrence"]


def test_a_recurrence_rule_that_does_not_read_is_a_422_on_recurrence() -> None:
    with pytest.raises(ValidationFailed, match="check recurrence"):
        parse_appointment({**APPOINTMENT, "recurrence": {"rrule": "FREQ=SOMETIMES"}})
    start = aware_datetime(APPOINTMENT["start"])
    with pytest.raises(ValidationFailed, match="check recurrence"):
        check_recurrence({"rrule": "FREQ=FORTNIGHTLY", "timezone": "UTC", "exdates": []}, start)


def test_an_all_day_appointment_must_run_midnight_to_midnight() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_appointment({**APPOINTMENT, "is_all_day": True})
    assert details(error) == {"start": "an all-day appointment starts and ends at midnight"}
    whole_day = parse_appointment(
        {
            **APPOINTMENT,
            "is_all_day": True,
            "start": "2026-05-04T00:00:00+02:00",
            "end": "2026-05-05T00:00:00+02:00",
        }
    )
    assert whole_day["is_all_day"] is True


def test_an_exception_of_a_series_cannot_recur_and_needs_its_occurrence() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_appointment(
            {
                **APPOINTMENT,
                "recurrence": {"rrule": "FREQ=DAILY"},
                "series_id": 3,
                "original_start": APPOINTMENT["start"],
            }
        )
    assert details(error) == {
        "recurrence": "an exception of a series (series_id) cannot recur itself"
    }
    with pytest.raises(ValidationFailed) as error:
        parse_appointment({**APPOINTMENT, "series_id": 3})
    assert details(error) == {
        "original_start": "series_id and original_start go together (an exception)"
    }


def test_is_private_must_agree_with_the_sensitivity() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_appointment({**APPOINTMENT, "sensitivity": "private", "is_private": False})
    assert details(error) == {"is_private": "contradicts sensitivity 'private'"}
    assert parse_appointment({**APPOINTMENT, "sensitivity": "confidential"})["is_private"]
    assert parse_appointment({**APPOINTMENT, "is_private": True})["sensitivity"] == "private"


def test_an_update_without_sensitivity_leaves_it_alone_and_cannot_clear_the_event_id() -> None:
    assert parse_appointment({"subject": "Moved"}, partial=True) == {"subject": "Moved"}
    with pytest.raises(ValidationFailed) as error:
        parse_appointment({"provider_event_id": None}, partial=True)
    assert details(error) == {"provider_event_id": "must be a string, got null"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (20260504, "must be an ISO 8601 datetime string, got number"),
        ("next tuesday", "'next tuesday' is not an ISO 8601 datetime"),
        ("2026-05-04T09:00:00", "has no UTC offset (add one, e.g. +02:00 or Z)"),
    ],
)
def test_a_start_must_be_an_iso_datetime_with_its_offset(value: Any, message: str) -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_appointment({**APPOINTMENT, "start": value})
    assert message in details(error)["start"]


# -- text and lists -------------------------------------------------------------------------------


def test_text_refuses_nul_lone_surrogates_and_overlong_values() -> None:
    convert = text(5)
    with pytest.raises(ValueError, match="must not contain NUL"):
        convert("a\x00b")
    with pytest.raises(ValueError, match=r"lone surrogate U\+D800 at position 1"):
        convert("a\ud800")
    with pytest.raises(ValueError, match="at most 5 characters, got 6"):
        convert("abcdef")
    assert convert("  abc ") == "abc"


def test_string_lists_are_trimmed_deduplicated_and_bounded() -> None:
    convert = string_list(max_items=4, max_length=4)
    assert convert([" a ", "a", "", "b"]) == ["a", "b"]
    with pytest.raises(ValueError, match="must be a list of strings, got array"):
        convert(["a", 1])
    with pytest.raises(ValueError, match="at most 4 items, got 5"):
        convert(["a", "b", "c", "d", "e"])
    with pytest.raises(ValueError, match="items must be at most 4 characters"):
        convert(["abcde"])
    with pytest.raises(ValueError, match="items must not contain NUL"):
        convert(["a\x00"])
    with pytest.raises(ValueError, match="lone surrogate"):
        convert(["\udfff"])


def test_json_deeper_than_the_limit_or_not_json_is_malformed() -> None:
    with pytest.raises(MalformedJSON, match="request body is not valid JSON"):
        decode_json(b"{")
    with pytest.raises(MalformedJSON, match="request body is not valid JSON"):
        decode_json(b"\xff\xfe")
    with pytest.raises(MalformedJSON, match="nested"):
        decode_json(b"[" * 100_000 + b"]" * 100_000)
    assert decode_json(b'{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}


# -- passwords, tokens, jobs ----------------------------------------------------------------------


def test_a_password_change_takes_passwords_as_typed_and_bounded() -> None:
    assert parse_password_change({"current_password": " a ", "new_password": "b"}) == {
        "current_password": " a ",
        "new_password": "b",
    }
    with pytest.raises(ValidationFailed) as error:
        parse_password_change({"current_password": 5, "new_password": "x" * 1025})
    assert details(error) == {
        "current_password": "must be a string, got number",
        "new_password": "must be at most 1024 characters, got 1025",
    }


def test_a_new_token_expires_within_ten_years() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_new_token({"name": "ci", "expires_in_days": 3651})
    assert details(error) == {"expires_in_days": "must be at most 3650, got 3651"}
    assert parse_new_token({"name": "ci"}) == {"name": "ci", "expires_in_days": None}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (15, "must be a schedule string such as '0 2 * * *', got number"),
        ("every 15m\x00", "must not contain NUL characters"),
        ("*" * 101, "must be at most 100 characters, got 101"),
    ],
)
def test_a_bad_schedule_is_named(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("*", r"\*")):
        schedule_text(value)


def test_a_job_update_cannot_clear_its_time_zone() -> None:
    assert (
        parse_job({"timezone": None, "archive_config_id": 1, "schedule": "every 15m"})["timezone"]
        is None
    )
    with pytest.raises(ValidationFailed) as error:
        parse_job({"timezone": None}, partial=True)
    assert details(error) == {"timezone": "must be an IANA time zone name, got null"}


# -- archive configurations, runs, resolutions ----------------------------------------------------


def test_a_configuration_names_each_calendar_once() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_archive_config(
            {
                "name": "Nightly",
                "source_calendar": "local://Work",
                "source_calendar_id": 1,
                "archive_calendar_id": 2,
            }
        )
    assert details(error) == {
        "source_calendar": "give source_calendar or source_calendar_id, not both"
    }


def test_a_configuration_by_uri_leaves_the_ids_out() -> None:
    values = parse_archive_config(
        {"name": "Nightly", "source_calendar": "local://Work", "archive_calendar": "local://Old"}
    )
    assert "source_calendar_id" not in values and "archive_calendar_id" not in values
    assert str(values["source_calendar"]) == "local://Work"


def test_a_configuration_cannot_archive_a_calendar_into_itself() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_archive_config({"name": "Loop", "source_calendar_id": 4, "archive_calendar_id": 4})
    assert details(error) == {"archive_calendar_id": "must differ from source_calendar_id"}


def test_a_run_window_must_end_after_it_starts() -> None:
    assert parse_archive_run(None) == {"start": None, "end": None, "mode": None}
    with pytest.raises(ValidationFailed) as error:
        parse_archive_run({"start": "2026-05-04", "end": "2026-05-03"})
    assert details(error) == {"end": "must be after start"}


@pytest.mark.parametrize(
    "body",
    [{}, {"keep": ["a"], "keep_all": True}, {"keep_all": False}],
)
def test_a_resolution_is_either_a_list_to_keep_or_keep_all(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed, match="check keep") as error:
        parse_resolution(body)
    assert details(error) == {
        "keep": "send either keep (the event ids to archive) or keep_all: true"
    }


def test_a_resolution_keeps_named_events_or_all() -> None:
    assert parse_resolution({"keep": ["e1", "e1", "e2"]}) == {"keep": ["e1", "e2"]}
    assert parse_resolution({"keep_all": True}) == {"keep_all": True}
    with pytest.raises(ValidationFailed) as error:
        parse_resolution({"keep": []})
    assert details(error) == {"keep": "must be a non-empty list of event ids, got array"}


# -- query strings --------------------------------------------------------------------------------


def test_action_items_are_filtered_by_a_known_state() -> None:
    query = parse_action_item_query({"state": "open", "config_id": "3"})
    assert (query.state, query.config_id) == ("open", 3)
    with pytest.raises(ValidationFailed) as error:
        parse_action_item_query({"state": "closed", "config_id": "x", "page": "0"})
    assert details(error) == {
        "state": "must be one of open, resolved, got 'closed'",
        "config_id": "must be a whole number, got 'x'",
        "page": "must be >= 1, got 0",
    }


def test_a_timesheet_covers_whole_days_in_order_within_a_year() -> None:
    query = parse_timesheet_query({"start": "2026-05-04", "end": "2026-05-10", "format": "csv"})
    assert (query.first_day, query.last_day, query.format) == (
        date(2026, 5, 4),
        date(2026, 5, 10),
        "csv",
    )
    with pytest.raises(ValidationFailed) as error:
        parse_timesheet_query({"start": "2026-05-04T00:00", "end": "May 3", "format": "xlsx"})
    assert details(error) == {
        "start": "must be a date such as 2026-05-04, got '2026-05-04T00:00'",
        "end": "must be a date such as 2026-05-04, got 'May 3'",
        "format": "must be json or csv, got 'xlsx'",
    }
    with pytest.raises(ValidationFailed) as error:
        parse_timesheet_query({"start": "2026-05-04", "end": "2026-05-01"})
    assert details(error) == {"end": "must not be before start"}
    with pytest.raises(ValidationFailed) as error:
        parse_timesheet_query({"start": "2025-01-01", "end": "2026-05-01"})
    assert details(error) == {"end": "a timesheet covers at most 366 days"}


def test_audit_filters_are_bounded_and_free_of_nul() -> None:
    query = parse_audit_query({"target": " calendar:5 ", "action": "job."})
    assert (query.target, query.actor, query.action) == ("calendar:5", None, "job.")
    with pytest.raises(ValidationFailed) as error:
        parse_audit_query({"target": "x" * 301, "actor": "a\x00b"})
    assert details(error) == {
        "target": "must be at most 300 characters, without NUL",
        "actor": "must be at most 320 characters, without NUL",
    }
