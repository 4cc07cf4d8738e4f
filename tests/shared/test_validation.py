"""Pure-function tests of shared/validation.py and shared/pagination.py: no server, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from shared.errors import MalformedJSON, ValidationFailed
from shared.inputs.appointments import parse_appointment
from shared.inputs.archive import parse_archive_config, parse_archive_run
from shared.inputs.calendars import parse_calendar
from shared.pagination import DEFAULT_PER_PAGE, MAX_PER_PAGE, Page, PageRequest, link_header
from shared.validation import (
    MAX_JSON_DEPTH,
    aware_datetime,
    boolean,
    choice,
    decode_json,
    integer,
    parse_appointment_query,
    parse_event_window,
    parse_instant,
    parse_optional_id,
    parse_page,
    parse_timezone,
    require_object,
    string_list,
    text,
    timezone_name,
)

BERLIN = ZoneInfo("Europe/Berlin")


def fields_of(error: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [detail["field"] for detail in error.value.details]


# -- bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"), [([1, 2], "list"), (None, "null"), ("text", "str"), (3, "int")]
)
def test_a_body_that_is_not_an_object_is_malformed(body: object, kind: str) -> None:
    with pytest.raises(MalformedJSON, match=f"must be a JSON object, got {kind}"):
        require_object(body)


def test_calendar_body_gets_defaults_for_optional_fields() -> None:
    assert parse_calendar({"name": "  Work ", "role": "source"}) == {
        "name": "Work",
        "role": "source",
        "provider": "local",
        "provider_id": None,
    }


def test_every_problem_of_a_body_is_reported_each_naming_its_field() -> None:
    with pytest.raises(ValidationFailed, match="invalid calendar: check") as error:
        parse_calendar({"name": 5, "role": "sideways", "colour": "red"})
    assert sorted(fields_of(error)) == ["colour", "name", "role"]
    messages = {d["field"]: d["message"] for d in error.value.details}
    assert messages["name"] == "must be a string, got number"
    assert messages["role"] == "must be one of source, archive, got 'sideways'"
    assert messages["colour"].startswith("unknown field (expected one of name, provider,")


def test_missing_required_fields_are_reported() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_calendar({})
    assert fields_of(error) == ["name", "role"]
    assert {d["message"] for d in error.value.details} == {"is required"}


def test_a_graph_calendar_needs_a_provider_id() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_calendar({"name": "Remote", "role": "source", "provider": "graph"})
    assert error.value.details == [
        {"field": "provider_id", "message": "is required when provider is graph"}
    ]


def test_a_partial_body_returns_only_the_fields_sent() -> None:
    assert parse_calendar({"name": "Renamed"}, partial=True) == {"name": "Renamed"}


def test_an_empty_partial_body_is_refused() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_calendar({}, partial=True)
    assert fields_of(error) == ["body"]


def test_appointment_body_is_parsed_with_aware_datetimes() -> None:
    values = parse_appointment(
        {
            "calendar_id": 1,
            "subject": "Planning",
            "start": "2026-03-29T01:30:00+01:00",
            "end": "2026-03-29T03:30:00Z",
            "categories": ["Work", " Work ", "", "Travel"],
        }
    )
    assert values["start"] == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert values["end"] == datetime(2026, 3, 29, 3, 30, tzinfo=UTC)
    assert values["categories"] == ["Work", "Travel"]
    assert values["location"] == ""
    assert values["is_private"] is False
    assert values["provider_event_id"] is None


def test_an_appointment_ending_before_it_starts_is_refused() -> None:
    body = {
        "calendar_id": 1,
        "subject": "x",
        "start": "2026-01-01T10:00:00Z",
        "end": "2026-01-01T10:00:00Z",
    }
    with pytest.raises(ValidationFailed, match="check end") as error:
        parse_appointment(body)
    assert error.value.details == [{"field": "end", "message": "must be after start"}]


def test_an_appointment_update_cannot_move_calendars_or_clear_the_event_id() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_appointment({"calendar_id": 2, "provider_event_id": None}, partial=True)
    assert sorted(fields_of(error)) == ["calendar_id", "provider_event_id"]


def test_archive_config_defaults_and_distinct_calendars() -> None:
    values = parse_archive_config(
        {"name": "Nightly", "source_calendar_id": 1, "archive_calendar_id": 2}
    )
    assert values == {
        "name": "Nightly",
        "source_calendar_id": 1,
        "archive_calendar_id": 2,
        "timezone": "UTC",
        "is_active": True,
        "schedule": None,
        "days_back": 7,
        "days_forward": 0,
        "excluded_categories": [],
        "allow_overlaps": False,
        "mode": "append",
        "purpose": "general",
        "timesheet_categories": [],
        "is_default": None,  # left to the service: the default when the owner has none
    }
    with pytest.raises(ValidationFailed) as error:
        parse_archive_config({"name": "Loop", "source_calendar_id": 3, "archive_calendar_id": 3})
    assert error.value.details == [
        {"field": "archive_calendar_id", "message": "must differ from source_calendar_id"}
    ]


def test_archive_config_refuses_an_unknown_timezone_and_out_of_range_days() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_archive_config(
            {
                "name": "x",
                "source_calendar_id": 1,
                "archive_calendar_id": 2,
                "timezone": "Mars/Olympus",
                "days_back": 4000,
            }
        )
    messages = {d["field"]: d["message"] for d in error.value.details}
    assert "unknown time zone 'Mars/Olympus'" in messages["timezone"]
    assert messages["days_back"] == "must be at most 3650, got 4000"


def test_archive_run_body_is_optional_and_a_date_end_includes_that_day() -> None:
    assert parse_archive_run(None) == {"start": None, "end": None, "mode": None}
    values = parse_archive_run({"start": "2026-03-01", "end": "2026-03-31"})
    assert values["start"] == datetime(2026, 3, 1, tzinfo=ZoneInfo("UTC"))
    assert values["end"] == datetime(2026, 4, 1, tzinfo=ZoneInfo("UTC"))


def test_archive_run_window_must_end_after_it_starts() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_archive_run({"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"})
    assert fields_of(error) == ["end"]


# -- converters --------------------------------------------------------------------------------


def test_text_strips_and_bounds_its_value() -> None:
    convert = text(5)
    assert convert("  abc ") == "abc"
    with pytest.raises(ValueError, match="must not be empty"):
        convert("   ")
    with pytest.raises(ValueError, match="at most 5 characters, got 6"):
        convert("abcdef")
    with pytest.raises(ValueError, match="must be a string, got null"):
        convert(None)
    assert text(5, allow_empty=True)("") == ""


def test_text_refuses_nul_characters_which_postgresql_cannot_store() -> None:
    with pytest.raises(ValueError, match="NUL"):
        text(20)("a\x00b")
    with pytest.raises(ValueError, match="NUL"):
        string_list()(["ok", "a\x00b"])


def test_integer_refuses_booleans_floats_and_out_of_range_values() -> None:
    convert = integer(minimum=1, maximum=10)
    assert convert(10) == 10
    with pytest.raises(ValueError, match="whole number, got boolean"):
        convert(True)
    with pytest.raises(ValueError, match="whole number, got number"):
        convert(1.0)
    with pytest.raises(ValueError, match="at least 1, got 0"):
        convert(0)
    with pytest.raises(ValueError, match="at most 10, got 11"):
        convert(11)


def test_boolean_and_choice_accept_only_their_values() -> None:
    assert boolean(False) is False
    with pytest.raises(ValueError, match="true or false, got string"):
        boolean("false")
    assert choice(("a", "b"))("b") == "b"
    with pytest.raises(ValueError, match="one of a, b, got 'c'"):
        choice(("a", "b"))("c")


def test_string_list_dedupes_and_bounds_its_items() -> None:
    assert string_list()([" a", "a", "b ", "  "]) == ["a", "b"]
    with pytest.raises(ValueError, match="list of strings, got string"):
        string_list()("a")
    with pytest.raises(ValueError, match="list of strings, got array"):
        string_list()(["a", 1])
    with pytest.raises(ValueError, match="at most 2 items, got 3"):
        string_list(max_items=2)(["a", "b", "c"])
    with pytest.raises(ValueError, match="at most 3 characters"):
        string_list(max_length=3)(["abcd"])


def test_aware_datetime_requires_an_offset() -> None:
    assert aware_datetime("2026-03-29T03:00:00+02:00") == datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert aware_datetime("2026-03-29T01:00:00Z") == datetime(2026, 3, 29, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="has no UTC offset"):
        aware_datetime("2026-03-29T03:00:00")
    with pytest.raises(ValueError, match="is not an ISO 8601 datetime"):
        aware_datetime("tomorrow")
    with pytest.raises(ValueError, match="ISO 8601 datetime string, got number"):
        aware_datetime(20260329)


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00Z"]
)
def test_aware_datetime_refuses_instants_that_cannot_be_stored_or_shown(value: str) -> None:
    # Stored as UTC and shown in any zone: at the edges of datetime's range either overflows.
    with pytest.raises(ValueError, match="out of range"):
        aware_datetime(value)


def test_timezone_name_checks_the_iana_database() -> None:
    assert timezone_name("Europe/Berlin") == "Europe/Berlin"
    with pytest.raises(ValueError, match="unknown time zone 'Europe'"):
        timezone_name("Europe")
    with pytest.raises(ValueError, match="IANA time zone name, got number"):
        timezone_name(1)


# -- query strings ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "Europe", "../etc/passwd", "/etc/localtime", "UTC\x00"])
def test_parse_timezone_refuses_names_outside_the_iana_database(name: str) -> None:
    with pytest.raises(ValidationFailed, match="unknown time zone") as error:
        parse_timezone(name)
    assert fields_of(error) == ["tz"]


def test_parse_instant_reads_a_date_as_midnight_in_the_zone() -> None:
    # 2026-03-29 is the day Berlin springs forward: it is 23 hours long.
    start = parse_instant("2026-03-29", BERLIN)
    end = parse_instant("2026-03-29", BERLIN, end_of_day=True)
    assert start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert end == datetime(2026, 3, 29, 22, tzinfo=UTC)
    # Same-zone subtraction in Python is wall-clock time; elapsed time needs UTC.
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)


def test_parse_instant_reads_naive_datetimes_in_the_zone_and_keeps_offsets() -> None:
    assert parse_instant("2026-03-29T12:00:00", BERLIN) == datetime(2026, 3, 29, 10, tzinfo=UTC)
    assert parse_instant("2026-03-29T12:00:00Z", BERLIN) == datetime(2026, 3, 29, 12, tzinfo=UTC)


@pytest.mark.parametrize("value", ["", "yesterday", "2026-13-01", 20260101])
def test_parse_instant_refuses_what_is_not_iso_8601(value: object) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_instant(value, BERLIN)


@pytest.mark.parametrize(("value", "end_of_day"), [("9999-12-31", True), ("0001-01-01", False)])
def test_parse_instant_refuses_dates_at_the_edge_of_the_calendar(
    value: str, end_of_day: bool
) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_instant(value, BERLIN, end_of_day=end_of_day)


def test_appointment_query_defaults() -> None:
    query = parse_appointment_query({})
    assert query.calendar_id is None
    assert query.start is None and query.end is None
    assert query.tz == ZoneInfo("UTC")
    assert query.page == PageRequest(1, DEFAULT_PER_PAGE)


def test_appointment_query_reads_its_window_in_the_given_zone() -> None:
    query = parse_appointment_query(
        {
            "calendar_id": "3",
            "start": "2026-03-29",
            "end": "2026-03-29",
            "tz": "Europe/Berlin",
            "page": "2",
            "per_page": "10",
        }
    )
    assert query.calendar_id == 3
    assert query.start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert query.end == datetime(2026, 3, 29, 22, tzinfo=UTC)
    assert query.page == PageRequest(2, 10)


def test_appointment_query_reports_every_bad_parameter() -> None:
    with pytest.raises(ValidationFailed, match="invalid query") as error:
        parse_appointment_query(
            {
                "calendar_id": "x",
                "start": "soon",
                "tz": "Nowhere/Land",
                "page": "0",
                "per_page": str(MAX_PER_PAGE + 1),
            }
        )
    assert sorted(fields_of(error)) == ["calendar_id", "page", "per_page", "start", "tz"]


def test_appointment_query_end_must_follow_start() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_appointment_query({"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"})
    assert error.value.details == [{"field": "end", "message": "must be after start"}]


def test_event_window_requires_start_and_end() -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_event_window({})
    assert error.value.details == [
        {"field": "start", "message": "is required"},
        {"field": "end", "message": "is required"},
    ]
    start, end, tz = parse_event_window(
        {"start": "2026-01-01", "end": "2026-01-01", "tz": "Europe/Berlin"}
    )
    assert (end - start, tz) == (timedelta(days=1), BERLIN)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page": "abc"}, "page"),
        ({"page": "-1"}, "page"),
        ({"per_page": "0"}, "per_page"),
        ({"per_page": str(MAX_PER_PAGE + 1)}, "per_page"),
    ],
)
def test_parse_page_refuses_bad_numbers(params: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationFailed) as error:
        parse_page(params)
    assert fields_of(error) == [field]


def test_parse_page_defaults_and_empty_values() -> None:
    assert parse_page({}) == PageRequest(1, DEFAULT_PER_PAGE)
    assert parse_page({"page": "", "per_page": ""}) == PageRequest(1, DEFAULT_PER_PAGE)
    assert parse_page({"page": "3", "per_page": "200"}) == PageRequest(3, 200)


def test_parse_optional_id() -> None:
    assert parse_optional_id({}, "config_id") is None
    assert parse_optional_id({"config_id": "7"}, "config_id") == 7
    with pytest.raises(ValidationFailed) as error:
        parse_optional_id({"config_id": "0"}, "config_id")
    assert error.value.details == [{"field": "config_id", "message": "must be >= 1, got 0"}]


# -- pagination --------------------------------------------------------------------------------


def test_page_request_offset() -> None:
    assert PageRequest(1, 50).offset == 0
    assert PageRequest(3, 20).offset == 40


@pytest.mark.parametrize(("total", "per_page", "pages"), [(0, 10, 1), (10, 10, 1), (11, 10, 2)])
def test_page_count_is_at_least_one(total: int, per_page: int, pages: int) -> None:
    assert Page([], 1, per_page, total).pages == pages


def test_page_meta() -> None:
    assert Page(["a", "b"], 2, 2, 5).meta() == {"page": 2, "per_page": 2, "total": 5, "pages": 3}


def rels(header: str) -> dict[str, dict[str, list[str]]]:
    """rel -> parsed query of each link of a Link header."""
    links = {}
    for part in header.split(", "):
        target, rel = part.split("; ")
        links[rel.removeprefix('rel="').removesuffix('"')] = parse_qs(
            urlsplit(target.strip("<>")).query
        )
    return links


def test_link_header_of_the_first_page_has_no_prev() -> None:
    links = rels(link_header("/api/calendars", {}, Page([], 1, 2, 5)))
    assert list(links) == ["first", "next", "last"]
    assert links["next"]["page"] == ["2"]
    assert links["last"]["page"] == ["3"]
    assert links["first"]["per_page"] == ["2"]


def test_link_header_of_the_last_page_has_no_next() -> None:
    links = rels(link_header("/api/calendars", {}, Page([], 3, 2, 5)))
    assert list(links) == ["first", "prev", "last"]
    assert links["prev"]["page"] == ["2"]


def test_link_header_just_past_the_end_points_back_to_the_last_page() -> None:
    assert list(rels(link_header("/x", {}, Page([], 4, 2, 5)))) == ["first", "prev", "last"]
    assert list(rels(link_header("/x", {}, Page([], 9, 2, 5)))) == ["first", "last"]


def test_link_header_keeps_other_parameters_and_encodes_them() -> None:
    header = link_header(
        "/api/appointments",
        {"tz": "Europe/Berlin", "page": "1", "per_page": "7", "calendar_id": "3"},
        Page([], 1, 7, 20),
    )
    assert header.startswith(
        '</api/appointments?tz=Europe%2FBerlin&calendar_id=3&page=1&per_page=7>; rel="first"'
    )
    assert rels(header)["next"] == {
        "tz": ["Europe/Berlin"],
        "calendar_id": ["3"],
        "page": ["2"],
        "per_page": ["7"],
    }


# -- JSON bodies: depth and text -------------------------------------------------------------


def test_json_nested_beyond_the_limit_is_a_400_whatever_the_parser_can_take() -> None:
    assert decode_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None
    for raw in (
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
        b'{"a":' * 500 + b"1" + b"}" * 500,
        b"[" * 100_000,  # too deep for the parser itself (RecursionError)
    ):
        with pytest.raises(MalformedJSON, match="nested too deeply"):
            decode_json(raw)


def test_a_lone_surrogate_in_text_names_its_field() -> None:
    body = decode_json(b'{"name": "a\\ud800", "role": "source"}')
    with pytest.raises(ValidationFailed, match="check name") as caught:
        parse_calendar(body)
    assert caught.value.details == [
        {
            "field": "name",
            "message": "must be valid Unicode text (a lone surrogate U+D800 at position 1)",
        }
    ]
