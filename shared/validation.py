"""Parse and validate API input (JSON bodies, query strings) into plain values; pure functions.

Both backends call these, so a bad request gets the same 422 and the same details wherever
it lands. Every problem is collected, not only the first, and each detail names the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.errors import MalformedJSON, ValidationFailed
from shared.pagination import DEFAULT_PER_PAGE, MAX_PER_PAGE, PageRequest
from shared.schedules import MISFIRE_POLICIES, parse_schedule

# The default of a field that must be sent.
REQUIRED: Any = object()
# Instants are stored in UTC and shown in any zone (offsets stay under a day), so one within
# a day of datetime's limits would overflow on the way: a 500 instead of a 422.
_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
# Remote (Graph) ids are base64-like: nothing else gets in, so no id can carry '.', '..',
# '%', '?', '#' or whitespace into the remote URL's path.
PROVIDER_ID_MAX = 300
_PROVIDER_ID = re.compile(r"[A-Za-z0-9+/=_-]+")
_MAILBOX = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
MAILBOX_MAX = 320


class Problems:
    """Collects field problems; `raise_if_any` turns them into one ValidationFailed."""

    def __init__(self) -> None:
        self.details: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.details.append({"field": field, "message": message})

    def raise_if_any(self, what: str) -> None:
        if self.details:
            fields = ", ".join(d["field"] for d in self.details)
            raise ValidationFailed(f"invalid {what}: check {fields}", details=self.details)


MAX_JSON_DEPTH = 64


def decode_json(raw: bytes) -> Any:
    """A request body's JSON; MalformedJSON (400) when invalid or nested over MAX_JSON_DEPTH.

    Both backends decode here. Depth is checked after parsing, and a body too deep for the
    parser itself (RecursionError, which was a 500) gets the same answer, so where the
    interpreter's own limit falls on each backend's stack does not matter.
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None
    pending: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        node, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        children = node.values() if isinstance(node, dict) else node
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return value


def _too_deep() -> MalformedJSON:
    return MalformedJSON(f"request body is nested too deeply (at most {MAX_JSON_DEPTH} levels)")


def require_object(body: Any) -> dict[str, Any]:
    """The parsed JSON body must be an object; anything else is a 400 with what was sent."""
    if not isinstance(body, dict):
        kind = "null" if body is None else type(body).__name__
        raise MalformedJSON(f"request body must be a JSON object, got {kind}")
    return body


def parse_timezone(name: str, problems: Problems | None = None, field: str = "tz") -> ZoneInfo:
    """An IANA zone such as `Europe/Berlin`; unknown names are a validation error."""
    try:
        if not name or "\x00" in name:
            raise ValueError
        return ZoneInfo(name)
    # OSError: with the tzdata package installed (croniter brings it), a folder of the zone
    # database such as "Europe" is opened as a file and raises IsADirectoryError.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        message = f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin or UTC)"
        if problems is None:
            raise ValidationFailed(
                message, details=[{"field": field, "message": message}]
            ) from None
        problems.add(field, message)
        return ZoneInfo("UTC")


def parse_instant(value: Any, tz: ZoneInfo, *, end_of_day: bool = False) -> datetime:
    """An ISO 8601 datetime with offset, or a date taken as midnight in `tz`; raises ValueError.

    A naive datetime is read in `tz` too. With `end_of_day` a plain date means the start of
    the next day, so `end=2026-03-29` includes all of the 29th.
    """
    if not isinstance(value, str) or not value:
        raise ValueError("must be an ISO 8601 date or datetime string")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if end_of_day:
                day += timedelta(days=1)
            moment = datetime.combine(day, time(), tz)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except OverflowError:
        raise ValueError(f"{value!r} is out of range (years 0001 to 9999)") from None
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date or datetime") from None
    return _in_range(moment if moment.tzinfo is not None else moment.replace(tzinfo=tz), value)


def _in_range(moment: datetime, value: str) -> datetime:
    """`moment` itself when it can be stored (as UTC) and shown in any zone; ValueError if not."""
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not _EARLIEST <= utc <= _LATEST:
        raise ValueError(f"{value!r} is out of range (years 0001 to 9999)")
    return moment


@dataclass(frozen=True, slots=True)
class AppointmentQuery:
    calendar_id: int | None
    start: datetime | None
    end: datetime | None
    tz: ZoneInfo
    page: PageRequest


def parse_appointment_query(params: Mapping[str, str]) -> AppointmentQuery:
    """Query string of `GET /api/appointments`: calendar_id, start, end, tz, page, per_page."""
    problems = Problems()
    tz = parse_timezone(params.get("tz", "UTC"), problems)
    calendar_id = query_int(params, "calendar_id", problems, minimum=1, default=None)
    start = query_instant(params, "start", tz, problems, end_of_day=False)
    end = query_instant(params, "end", tz, problems, end_of_day=True)
    if start is not None and end is not None and end <= start:
        problems.add("end", "must be after start")
    page = parse_page(params, problems)
    problems.raise_if_any("query")
    return AppointmentQuery(calendar_id, start, end, tz, page)


def parse_event_window(params: Mapping[str, str]) -> tuple[datetime, datetime, ZoneInfo]:
    """Required `start` and `end` (plus optional `tz`) of a remote-events read."""
    problems = Problems()
    tz = parse_timezone(params.get("tz", "UTC"), problems)
    start = query_instant(params, "start", tz, problems, end_of_day=False)
    end = query_instant(params, "end", tz, problems, end_of_day=True)
    for name, value in (("start", start), ("end", end)):
        if value is None and not any(d["field"] == name for d in problems.details):
            problems.add(name, "is required")
    if start is not None and end is not None and end <= start:
        problems.add("end", "must be after start")
    problems.raise_if_any("query")
    assert start is not None and end is not None
    return start, end, tz


def parse_page(params: Mapping[str, str], problems: Problems | None = None) -> PageRequest:
    """`page` (>= 1) and `per_page` (1..200) from a query string."""
    own = problems is None
    problems = problems or Problems()
    page = query_int(params, "page", problems, minimum=1, default=1)
    per_page = query_int(
        params, "per_page", problems, minimum=1, maximum=MAX_PER_PAGE, default=DEFAULT_PER_PAGE
    )
    if own:
        problems.raise_if_any("query")
    return PageRequest(page or 1, per_page or DEFAULT_PER_PAGE)


def parse_optional_id(params: Mapping[str, str], name: str) -> int | None:
    """An optional positive integer query parameter such as `config_id`."""
    problems = Problems()
    value = query_int(params, name, problems, minimum=1, default=None)
    problems.raise_if_any("query")
    return value


# -- JSON bodies ------------------------------------------------------------------------------

Field = tuple[str, Callable[[Any], Any], Any]  # name, converter raising ValueError, default


def parse_body(body: Any, fields: list[Field], *, partial: bool, what: str) -> dict[str, Any]:
    """Check a JSON object against `fields`; unknown keys, missing and bad values are all reported.

    With `partial` (PATCH) every field is optional and only the given keys are returned.
    """
    data = require_object(body)
    problems = Problems()
    known = {name for name, _, _ in fields}
    for key in data:
        if key not in known:
            problems.add(key, f"unknown field (expected one of {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for name, convert, default in fields:
        if name not in data:
            if partial:
                continue
            if default is REQUIRED:
                problems.add(name, "is required")
                continue
            values[name] = default
            continue
        try:
            values[name] = convert(data[name])
        except ValueError as exc:
            problems.add(name, str(exc))
    if partial and not data:
        problems.add("body", "is empty: send at least one field to change")
    problems.raise_if_any(what)
    return values


def text(max_length: int, *, allow_empty: bool = False) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {kind_of(value)}")
        value = value.strip()
        if not value and not allow_empty:
            raise ValueError("must not be empty")
        if "\x00" in value:  # PostgreSQL cannot store NUL in text: a 500 there, not a 422
            raise ValueError("must not contain NUL characters")
        _check_encodable(value)
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters, got {len(value)}")
        return value

    return convert


def provider_id(value: Any) -> str:
    """A remote calendar id: only the characters Graph ids use, at most PROVIDER_ID_MAX."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {kind_of(value)}")
    if not value:
        raise ValueError("must not be empty")
    if len(value) > PROVIDER_ID_MAX:
        raise ValueError(f"must be at most {PROVIDER_ID_MAX} characters, got {len(value)}")
    if not _PROVIDER_ID.fullmatch(value):
        raise ValueError(
            "may only contain letters, digits and + / = _ - (the characters of a Graph id)"
        )
    return value


def is_provider_id(value: str) -> bool:
    """True when `value` is a well-formed remote calendar id (see `provider_id`)."""
    return len(value) <= PROVIDER_ID_MAX and _PROVIDER_ID.fullmatch(value) is not None


def is_mailbox(value: str) -> bool:
    """True when `value` is a mailbox address safe to place in a remote URL."""
    return len(value) <= MAILBOX_MAX and _MAILBOX.fullmatch(value) is not None


def check_mailbox(value: Any) -> str:
    """A mailbox address (user@example.com) safe to place in a remote URL; 422 otherwise."""
    if not isinstance(value, str) or len(value) > MAILBOX_MAX or not _MAILBOX.fullmatch(value):
        raise ValidationFailed(
            f"invalid mailbox {str(value)[:100]!r}: expected an address such as user@example.com",
            details=[{"field": "mailbox", "message": "not a mailbox address"}],
        )
    return value.lower()


def _check_encodable(value: str) -> None:
    # JSON's \ud800 escape decodes to a lone surrogate, which no database driver can encode:
    # it was a 500 at the INSERT.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"must be valid Unicode text (a lone surrogate U+{ord(value[exc.start]):04X} "
            f"at position {exc.start})"
        ) from None


def optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {value!r}")
        return value

    return convert


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, got {kind_of(value)}")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum}, got {value}")
        return value

    return convert


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {kind_of(value)}")
    return value


def string_list(max_items: int = 50, max_length: int = 100) -> Callable[[Any], list[str]]:
    def convert(value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"must be a list of strings, got {kind_of(value)}")
        if len(value) > max_items:
            raise ValueError(f"must have at most {max_items} items, got {len(value)}")
        cleaned = [v.strip() for v in value if v.strip()]
        if any(len(v) > max_length for v in cleaned):
            raise ValueError(f"items must be at most {max_length} characters")
        if any("\x00" in v for v in cleaned):
            raise ValueError("items must not contain NUL characters")
        for item in cleaned:
            _check_encodable(item)
        return list(dict.fromkeys(cleaned))

    return convert


def aware_datetime(value: Any) -> datetime:
    """An ISO 8601 datetime that carries its offset (naive times are ambiguous across DST)."""
    if not isinstance(value, str):
        raise ValueError(f"must be an ISO 8601 datetime string, got {kind_of(value)}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 datetime") from None
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset (add one, e.g. +02:00 or Z)")
    return _in_range(moment, value)


def timezone_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be an IANA time zone name, got {kind_of(value)}")
    problems = Problems()
    parse_timezone(value, problems)
    if problems.details:
        raise ValueError(problems.details[0]["message"])
    return value


def schedule_text(value: Any) -> str:
    """A schedule (cron, `daily@HH:MM`, `weekly@mon HH:MM`, `every 15m`), normalized."""
    if not isinstance(value, str):
        raise ValueError(f"must be a schedule string such as '0 2 * * *', got {kind_of(value)}")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if len(value) > 100:
        raise ValueError(f"must be at most 100 characters, got {len(value)}")
    return parse_schedule(value).text


JOB_FIELDS: list[Field] = [
    ("archive_config_id", integer(minimum=1), REQUIRED),
    ("schedule", schedule_text, REQUIRED),
    ("timezone", optional(timezone_name), None),
    ("enabled", boolean, True),
    ("misfire", choice(MISFIRE_POLICIES), "run_once"),
    ("days_back", optional(integer(minimum=0, maximum=3650)), None),
    ("days_forward", optional(integer(minimum=0, maximum=3650)), None),
]


def password(value: Any) -> str:
    """A password as typed: a string, not stripped, at most 1024 characters."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {kind_of(value)}")
    if len(value) > 1024:
        raise ValueError(f"must be at most 1024 characters, got {len(value)}")
    _check_encodable(value)
    return value


PASSWORD_CHANGE_FIELDS: list[Field] = [
    ("current_password", password, REQUIRED),
    ("new_password", password, REQUIRED),
]

NEW_TOKEN_FIELDS: list[Field] = [
    ("name", text(200), REQUIRED),
    ("expires_in_days", optional(integer(minimum=1, maximum=3650)), None),
]


def parse_password_change(body: Any) -> dict[str, Any]:
    """Body of auth.change_password: `current_password` and `new_password`."""
    return parse_body(body, PASSWORD_CHANGE_FIELDS, partial=False, what="password change")


def parse_new_token(body: Any) -> dict[str, Any]:
    """Body of tokens.create: a `name` and optional `expires_in_days` (1..3650)."""
    return parse_body(body, NEW_TOKEN_FIELDS, partial=False, what="token")


def parse_job(body: Any, *, partial: bool = False) -> dict[str, Any]:
    """Body of jobs.create (or .update with `partial`); a missing timezone stays None.

    `timezone: null` means "the configuration's" on create; an update cannot clear it.
    """
    values = parse_body(body, JOB_FIELDS, partial=partial, what="job")
    if partial and "timezone" in values and values["timezone"] is None:
        raise ValidationFailed(
            "invalid job: check timezone",
            details=[{"field": "timezone", "message": "must be an IANA time zone name, got null"}],
        )
    return values


def query_int(
    params: Mapping[str, str],
    name: str,
    problems: Problems,
    *,
    minimum: int,
    maximum: int | None = None,
    default: int | None,
) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.add(name, f"must be a whole number, got {raw!r}")
        return default
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        problems.add(name, f"must be {bound}, got {value}")
        return default
    return value


def query_instant(
    params: Mapping[str, str], name: str, tz: ZoneInfo, problems: Problems, *, end_of_day: bool
) -> datetime | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_instant(raw, tz, end_of_day=end_of_day)
    except ValueError as exc:
        problems.add(name, str(exc))
        return None


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)
