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
_SHOW_AS = {value.casefold(): value for value in SHOW_AS}


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
    event_id = item.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise ProviderError(f"graph: event without an id: {str(item)[:200]}")
    location = item.get("location") or {}
    categories = item.get("categories") or []
    sensitivity = item.get("sensitivity") or "normal"
    subject = item.get("subject") or ""
    show_as = item.get("showAs") or "busy"
    importance = item.get("importance") or "normal"
    series_id = item.get("seriesMasterId") or None
    if not isinstance(location, dict) or not isinstance(categories, list):
        raise ProviderError(f"graph: event {event_id!r} has a malformed location or categories")
    if not isinstance(subject, str) or not isinstance(sensitivity, str):
        raise ProviderError(f"graph: event {event_id!r} has a malformed subject or sensitivity")
    if not all(isinstance(v, str) for v in (show_as, importance)) or not isinstance(
        series_id, str | None
    ):
        raise ProviderError(f"graph: event {event_id!r} has a malformed showAs or importance")
    start = _parse_time(item.get("start"), event_id, "start")
    end = _parse_time(item.get("end"), event_id, "end")
    sensitivity = sensitivity.lower() if sensitivity.lower() in SENSITIVITY else "normal"
    return ProviderEvent(
        event_id=event_id,
        subject=subject,
        start=start,
        end=end,
        location=str(location.get("displayName") or ""),
        categories=tuple(str(c) for c in categories),
        is_private=sensitivity in PRIVATE_SENSITIVITIES,
        show_as=_SHOW_AS.get(show_as.casefold(), "busy"),
        importance=importance.lower() if importance.lower() in IMPORTANCE else "normal",
        sensitivity=sensitivity,
        is_all_day=item.get("isAllDay") is True,
        series_id=series_id,
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
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise ProviderError(f"graph: event {event_id!r} has no {which}.dateTime (got {value!r})")
    raw, zone_name = value["dateTime"], value.get("timeZone") or "UTC"
    try:
        # Graph sends 7 fractional digits; fromisoformat (3.11+) accepts and truncates them.
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ProviderError(
            f"graph: event {event_id!r} has an invalid {which}.dateTime {raw!r}"
        ) from None
    if moment.tzinfo is None:
        if isinstance(zone_name, str) and zone_name.upper() in _UTC_NAMES:
            # Graph's usual answer: read with its offset, the C parser hands back the time in
            # datetime.UTC directly, with no zone lookup, replace() or conversion per event.
            return datetime.fromisoformat(raw + "+00:00")
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
