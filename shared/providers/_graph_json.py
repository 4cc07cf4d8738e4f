"""Graph's JSON and ours: events and calendars read from Graph, events written to it; pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.errors import ProviderError
from shared.providers._base import (
    IMPORTANCE,
    PRIVATE_SENSITIVITIES,
    SENSITIVITY,
    SHOW_AS,
    ProviderEvent,
    RemoteCalendar,
)

__all__ = ["event_body", "page_items", "parse_calendar", "parse_event", "utc_iso"]

_GRAPH_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f0"
# Graph's `showAs` also has `unknown`: nothing says the time was free, so it counts as busy.
_SHOW_AS = {value.casefold(): value for value in SHOW_AS} | {value: value for value in SHOW_AS}
_SENSITIVITY = {value: value for value in SENSITIVITY}
_IMPORTANCE = {value: value for value in IMPORTANCE}


def page_items(page: Mapping[str, Any]) -> list[Any]:
    """The `value` list of a page of Graph results (events or calendars)."""
    items = page.get("value")
    if not isinstance(items, list):
        raise ProviderError(
            f"graph: a page of results has no 'value' list (got {type(items).__name__})"
        )
    return items


def parse_event(item: Any) -> ProviderEvent:
    """A Graph event JSON object as a ProviderEvent; ProviderError naming the event if malformed."""
    if not isinstance(item, dict):
        raise ProviderError(f"graph: expected an event object, got {type(item).__name__}")
    get = item.get
    event_id = get("id")
    if not isinstance(event_id, str) or not event_id:
        raise ProviderError(f"graph: event without an id: {str(item)[:200]}")
    location = get("location") or {}
    categories = get("categories") or []
    sensitivity = get("sensitivity") or "normal"
    subject = get("subject") or ""
    show_as = get("showAs") or "busy"
    importance = get("importance") or "normal"
    series_id = get("seriesMasterId") or None
    if not isinstance(location, dict) or not isinstance(categories, list):
        raise ProviderError(f"graph: event {event_id!r} has a malformed location or categories")
    if not isinstance(subject, str) or not isinstance(sensitivity, str):
        raise ProviderError(f"graph: event {event_id!r} has a malformed subject or sensitivity")
    if (
        not isinstance(show_as, str)
        or not isinstance(importance, str)
        or not (series_id is None or isinstance(series_id, str))
    ):
        raise ProviderError(f"graph: event {event_id!r} has a malformed showAs or importance")
    start = _parse_time(get("start"), event_id, "start")
    end = _parse_time(get("end"), event_id, "end")
    # Known values in Graph's own spelling are one lookup; any other spelling is folded first.
    sensitivity = _SENSITIVITY.get(sensitivity) or _SENSITIVITY.get(sensitivity.lower(), "normal")
    return ProviderEvent(
        event_id,
        subject,
        start,
        end,
        str(location.get("displayName") or ""),
        tuple(categories)
        if all(type(c) is str for c in categories)
        else tuple(map(str, categories)),
        sensitivity in PRIVATE_SENSITIVITIES,
        _SHOW_AS.get(show_as) or _SHOW_AS.get(show_as.casefold(), "busy"),
        _IMPORTANCE.get(importance) or _IMPORTANCE.get(importance.lower(), "normal"),
        sensitivity,
        get("isAllDay") is True,
        series_id,
    )


def parse_calendar(item: Any, mailbox: str) -> RemoteCalendar:
    """A Graph calendar JSON object; ProviderError when it has no id."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        raise ProviderError(f"graph: calendar without an id: {str(item)[:200]}")
    name = item.get("name")
    return RemoteCalendar(
        id=item["id"],
        name=name if isinstance(name, str) else "",
        can_edit=item.get("canEdit") is not False,
        mailbox=mailbox,
    )


def event_body(event: ProviderEvent) -> dict[str, Any]:
    """The Graph JSON of an event we write (a copy into an archive calendar)."""
    return {
        "subject": event.subject,
        "start": {"dateTime": _graph_datetime(event.start, "start"), "timeZone": "UTC"},
        "end": {"dateTime": _graph_datetime(event.end, "end"), "timeZone": "UTC"},
        "location": {"displayName": event.location},
        "categories": list(event.categories),
        "sensitivity": event.sensitivity,
        "showAs": event.show_as,
        "importance": event.importance,
        "isAllDay": event.is_all_day,
    }


def _parse_time(value: Any, event_id: str, which: str) -> datetime:
    """A Graph dateTimeTimeZone ({"dateTime", "timeZone"}) as an aware UTC datetime."""
    if not isinstance(value, dict) or not isinstance(raw := value.get("dateTime"), str):
        raise ProviderError(f"graph: event {event_id!r} has no {which}.dateTime (got {value!r})")
    zone_name = value.get("timeZone") or "UTC"
    if zone_name == "UTC":
        # Graph's usual answer: a local time in UTC, 7 fractional digits (fromisoformat, 3.11+,
        # truncates them). Read with its offset, the C parser hands back a time in datetime.UTC
        # directly: no zone lookup, replace() or conversion. One that carries an offset of its
        # own, or a date alone, takes the general path.
        try:
            moment = datetime.fromisoformat(raw + "+00:00")
        except ValueError:
            pass
        else:
            if moment.tzinfo is UTC:  # not a date alone, whose offset 3.11 drops
                return moment
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ProviderError(
            f"graph: event {event_id!r} has an invalid {which}.dateTime {raw!r}"
        ) from None
    if moment.tzinfo is None:
        if isinstance(zone_name, str) and zone_name.upper() in _UTC_NAMES:
            return moment.replace(tzinfo=UTC)
        moment = moment.replace(tzinfo=_zone(zone_name, event_id, which))
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


_UTC_NAMES = frozenset({"UTC", "Z"})


def _zone(name: Any, event_id: str, which: str) -> ZoneInfo:
    if not isinstance(name, str):
        raise ProviderError(f"graph: event {event_id!r} has an invalid {which}.timeZone {name!r}")
    try:
        return ZoneInfo("UTC" if name.upper() in ("UTC", "Z") else name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as "Europe"
        raise ProviderError(
            f"graph: event {event_id!r} has {which}.timeZone {name!r}, which is neither UTC nor "
            "an IANA zone name (Windows zone names are not supported)"
        ) from None


def _require_aware(moment: datetime, which: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{which}={moment.isoformat()!r} must be timezone-aware")
    return moment.astimezone(UTC)


def utc_iso(moment: datetime, which: str) -> str:
    return _require_aware(moment, which).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _graph_datetime(moment: datetime, which: str) -> str:
    return _require_aware(moment, which).strftime(_GRAPH_DATETIME_FORMAT)
