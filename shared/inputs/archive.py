"""Inputs of archiving: configuration bodies (calendars by id or URI), runs, action items and
their resolution, and timesheet queries."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal
from zoneinfo import ZoneInfo

from shared.errors import ValidationFailed
from shared.inputs.calendars import calendar_uri
from shared.pagination import PageRequest
from shared.timesheet_rules import MAX_DAYS
from shared.validation import (
    REQUIRED,
    Field,
    Problems,
    boolean,
    choice,
    integer,
    kind_of,
    optional,
    parse_body,
    parse_instant,
    parse_page,
    query_int,
    string_list,
    text,
    timezone_name,
)

__all__ = [
    "MODES",
    "PURPOSES",
    "ActionItemQuery",
    "TimesheetQuery",
    "parse_action_item_query",
    "parse_archive_config",
    "parse_archive_run",
    "parse_resolution",
    "parse_timesheet_query",
]

MODES = ("append", "replace")
PURPOSES = ("general", "timesheet")
ITEM_STATES = ("open", "resolved")
FORMATS = ("json", "csv")
_CALENDARS = (
    ("source_calendar", "source_calendar_id"),
    ("archive_calendar", "archive_calendar_id"),
)


def _config_fields(body: Any) -> list[Field]:
    given = body if isinstance(body, dict) else {}
    by_uri = {uri: uri in given for uri, _ in _CALENDARS}
    return [
        ("name", text(200), REQUIRED),
        (
            "source_calendar_id",
            integer(minimum=1),
            None if by_uri["source_calendar"] else REQUIRED,
        ),
        (
            "archive_calendar_id",
            integer(minimum=1),
            None if by_uri["archive_calendar"] else REQUIRED,
        ),
        ("source_calendar", calendar_uri, None),
        ("archive_calendar", calendar_uri, None),
        ("timezone", timezone_name, "UTC"),
        ("is_active", boolean, True),
        ("schedule", optional(text(100)), None),
        ("days_back", integer(minimum=0, maximum=3650), 7),
        ("days_forward", integer(minimum=0, maximum=3650), 0),
        ("excluded_categories", string_list(), []),
        ("allow_overlaps", boolean, False),
        ("mode", choice(MODES), "append"),
        ("purpose", choice(PURPOSES), "general"),
        ("timesheet_categories", string_list(max_items=20), []),
        # None on create: the default when the owner has none yet.
        ("is_default", boolean, None),
    ]


def parse_archive_config(body: Any, *, partial: bool = False) -> dict[str, Any]:
    """Body of archive_configs.create (or .update with `partial`).

    Each calendar is given by id (`source_calendar_id`) or by URI (`source_calendar`), not
    both; URIs are resolved by the service. `is_default` (true or false) makes it, or stops
    it being, its owner's default. A missing key is left out of the result.
    """
    values = parse_body(body, _config_fields(body), partial=partial, what="archive configuration")
    problems = Problems()
    for uri, id_field in _CALENDARS:
        if isinstance(body, dict) and uri in body and id_field in body:
            problems.add(uri, f"give {uri} or {id_field}, not both")
        if values.get(uri) is None:
            values.pop(uri, None)
        if values.get(id_field) is None and uri in values:
            values.pop(id_field, None)
    problems.raise_if_any("archive configuration")
    source, archive = values.get("source_calendar_id"), values.get("archive_calendar_id")
    if source is not None and source == archive:
        raise ValidationFailed(
            "invalid archive configuration: check archive_calendar_id",
            details=[
                {"field": "archive_calendar_id", "message": "must differ from source_calendar_id"}
            ],
        )
    return values


ARCHIVE_RUN_FIELDS: list[Field] = [
    ("start", optional(lambda v: parse_instant(v, ZoneInfo("UTC"))), None),
    ("end", optional(lambda v: parse_instant(v, ZoneInfo("UTC"), end_of_day=True)), None),
    ("mode", optional(choice(MODES)), None),
]


def parse_archive_run(body: Any) -> dict[str, Any]:
    """Optional body of archive.run: a `start`/`end` window and a `mode` overriding the config's."""
    values = parse_body(
        body if body is not None else {}, ARCHIVE_RUN_FIELDS, partial=False, what="archive run"
    )
    if (
        values["start"] is not None
        and values["end"] is not None
        and values["end"] <= values["start"]
    ):
        raise ValidationFailed(
            "invalid archive run: check end",
            details=[{"field": "end", "message": "must be after start"}],
        )
    return values


def _event_ids(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a non-empty list of event ids, got {kind_of(value)}")
    return string_list(max_items=100, max_length=300)(value)


def parse_resolution(body: Any) -> dict[str, Any]:
    """Body of action_items.resolve: `{"keep": [event ids]}` or `{"keep_all": true}`."""
    values = parse_body(
        body,
        [("keep", optional(_event_ids), None), ("keep_all", optional(boolean), None)],
        partial=False,
        what="resolution",
    )
    keep, keep_all = values["keep"], values["keep_all"]
    if (keep is None) == (keep_all is not True):
        raise ValidationFailed(
            "invalid resolution: check keep",
            details=[
                {
                    "field": "keep",
                    "message": "send either keep (the event ids to archive) or keep_all: true",
                }
            ],
        )
    return {"keep_all": True} if keep_all else {"keep": keep}


@dataclass(frozen=True, slots=True)
class ActionItemQuery:
    state: str | None
    config_id: int | None
    page: PageRequest


def parse_action_item_query(params: Mapping[str, str]) -> ActionItemQuery:
    """Query of action_items.list: `state` (open, resolved), `config_id`, `page`, `per_page`."""
    problems = Problems()
    state = params.get("state") or None
    if state is not None and state not in ITEM_STATES:
        problems.add("state", f"must be one of {', '.join(ITEM_STATES)}, got {state[:50]!r}")
        state = None
    config_id = query_int(params, "config_id", problems, minimum=1, default=None)
    page = parse_page(params, problems)
    problems.raise_if_any("query")
    return ActionItemQuery(state, config_id, page)


@dataclass(frozen=True, slots=True)
class TimesheetQuery:
    first_day: date | None
    last_day: date | None
    format: Literal["json", "csv"]


def parse_timesheet_query(params: Mapping[str, str]) -> TimesheetQuery:
    """Query of archive_configs.timesheet: `start`/`end` days (both included), `format`."""
    problems = Problems()
    days: dict[str, date | None] = {}
    for name in ("start", "end"):
        raw = params.get(name) or None
        days[name] = None
        if raw is None:
            continue
        with contextlib.suppress(ValueError):
            days[name] = date.fromisoformat(raw) if len(raw) == 10 else None
        if days[name] is None:
            problems.add(name, f"must be a date such as 2026-05-04, got {raw[:50]!r}")
    first, last = days["start"], days["end"]
    if first is not None and last is not None:
        if last < first:
            problems.add("end", "must not be before start")
        elif (last - first).days + 1 > MAX_DAYS:
            problems.add("end", f"a timesheet covers at most {MAX_DAYS} days")
    fmt = params.get("format") or "json"
    if fmt not in FORMATS:
        problems.add("format", f"must be json or csv, got {fmt[:50]!r}")
    problems.raise_if_any("query")
    return TimesheetQuery(first, last, "csv" if fmt == "csv" else "json")
