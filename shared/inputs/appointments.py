"""Inputs of the appointments endpoints: an appointment body, with its availability, importance,
sensitivity, all-day flag, and recurrence (a series) or the series it is an exception of."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from shared.errors import ValidationFailed
from shared.providers._base import IMPORTANCE, PRIVATE_SENSITIVITIES, SENSITIVITY, SHOW_AS
from shared.recurrence import Recurrence, parse_recurrence
from shared.validation import (
    REQUIRED,
    Field,
    aware_datetime,
    boolean,
    choice,
    integer,
    kind_of,
    optional,
    parse_body,
    string_list,
    text,
    timezone_name,
)

__all__ = ["APPOINTMENT_FIELDS", "check_recurrence", "check_time_order", "parse_appointment"]


def recurrence_body(value: Any) -> dict[str, Any]:
    """`{"rrule", "timezone"?, "exdates"?}` with its parts converted (the rule is checked later,
    against the series' start)."""
    if not isinstance(value, dict):
        raise ValueError(
            f"must be an object with rrule, timezone and exdates, got {kind_of(value)}"
        )
    unknown = sorted(set(value) - {"rrule", "timezone", "exdates"})
    if unknown:
        raise ValueError(f"unknown keys {', '.join(unknown)} (expected rrule, timezone, exdates)")
    rule = value.get("rrule")
    if not isinstance(rule, str) or not rule.strip():
        raise ValueError("rrule must be a non-empty string such as FREQ=WEEKLY;BYDAY=MO")
    exdates = value.get("exdates", [])
    if not isinstance(exdates, list):
        raise ValueError(f"exdates must be a list of datetimes, got {kind_of(exdates)}")
    return {
        "rrule": rule,
        "timezone": timezone_name(value.get("timezone", "UTC")),
        "exdates": [aware_datetime(d) for d in exdates],
    }


APPOINTMENT_FIELDS: list[Field] = [
    ("calendar_id", integer(minimum=1), REQUIRED),
    ("subject", text(500), REQUIRED),
    ("start", aware_datetime, REQUIRED),
    ("end", aware_datetime, REQUIRED),
    ("location", text(500, allow_empty=True), ""),
    ("categories", string_list(), []),
    ("is_private", boolean, False),
    ("show_as", choice(SHOW_AS), "busy"),
    ("importance", choice(IMPORTANCE), "normal"),
    ("sensitivity", optional(choice(SENSITIVITY)), None),
    ("is_all_day", boolean, False),
    ("recurrence", optional(recurrence_body), None),
    ("series_id", optional(integer(minimum=1)), None),
    ("original_start", optional(aware_datetime), None),
    ("provider_event_id", optional(text(300)), None),
]


def parse_appointment(body: Any, *, partial: bool = False) -> dict[str, Any]:
    """Body of appointments.create (or .update with `partial`), checked as a whole.

    Checks end > start, that `is_private` agrees with `sensitivity`, that an all-day
    appointment runs midnight to midnight, that a series' rule reads (against its start),
    and that an exception names both its series and the occurrence it replaces. An update
    may change the provider event id but not clear it: every stored event has one.
    """
    fields = (
        APPOINTMENT_FIELDS
        if not partial
        else [*APPOINTMENT_FIELDS[1:-1], ("provider_event_id", text(300), REQUIRED)]
    )
    values = parse_body(body, fields, partial=partial, what="appointment")
    check_time_order(values.get("start"), values.get("end"))
    _settle_sensitivity(values, body, partial=partial)
    if values.get("is_all_day"):
        for name in ("start", "end"):
            moment = values.get(name)
            if moment is not None and moment.timetz().replace(tzinfo=None) != time():
                _fail(name, "an all-day appointment starts and ends at midnight")
    if not partial and values.get("recurrence") is not None:
        values["recurrence"] = check_recurrence(values["recurrence"], values["start"]).to_json()
    if values.get("recurrence") is not None and values.get("series_id") is not None:
        _fail("recurrence", "an exception of a series (series_id) cannot recur itself")
    if not partial and (values.get("series_id") is None) != (values.get("original_start") is None):
        _fail("original_start", "series_id and original_start go together (an exception)")
    return values


def check_recurrence(recurrence: dict[str, Any], start: datetime) -> Recurrence:
    """The parsed recurrence of a series starting at `start`; 422 naming the problem."""
    try:
        return parse_recurrence(
            recurrence["rrule"], recurrence["timezone"], recurrence["exdates"], start
        )
    except ValueError as exc:
        _fail("recurrence", str(exc))
        raise AssertionError("unreachable") from None


def check_time_order(start: datetime | None, end: datetime | None) -> None:
    """Raise the 422 every backend gives when an appointment would end before it starts."""
    if start is not None and end is not None and end <= start:
        _fail("end", "must be after start")


def _settle_sensitivity(values: dict[str, Any], body: Any, *, partial: bool) -> None:
    sensitivity = values.get("sensitivity")
    if sensitivity is None:
        if not partial:
            values["sensitivity"] = "private" if values.get("is_private") else "normal"
        else:
            values.pop("sensitivity", None)
        return
    private = sensitivity in PRIVATE_SENSITIVITIES
    if isinstance(body, dict) and "is_private" in body and values.get("is_private") != private:
        _fail("is_private", f"contradicts sensitivity {sensitivity!r}")
    values["is_private"] = private


def _fail(field: str, message: str) -> None:
    raise ValidationFailed(
        f"invalid appointment: check {field}", details=[{"field": field, "message": message}]
    )
