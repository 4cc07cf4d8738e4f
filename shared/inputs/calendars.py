"""Inputs of the calendars endpoints: a calendar body (by fields or by URI), the remote listing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.calendar_uris import CalendarUri, parse_calendar_uri
from shared.errors import ValidationFailed
from shared.validation import (
    REQUIRED,
    Field,
    Problems,
    choice,
    is_mailbox,
    kind_of,
    optional,
    parse_body,
    provider_id,
    text,
)

__all__ = ["CALENDAR_ROLES", "PROVIDERS", "calendar_uri", "parse_calendar", "parse_remote_query"]

CALENDAR_ROLES = ("source", "archive")
PROVIDERS = ("local", "graph")


def calendar_uri(value: Any) -> CalendarUri:
    """A calendar URI string (local://..., msgraph://...), parsed."""
    if not isinstance(value, str):
        raise ValueError(f"must be a calendar URI string, got {kind_of(value)}")
    return parse_calendar_uri(value)


def _fields(by_uri: bool) -> list[Field]:
    return [
        ("name", text(200), None if by_uri else REQUIRED),
        ("role", choice(CALENDAR_ROLES), REQUIRED),
        ("provider", choice(PROVIDERS), "local"),
        ("provider_id", optional(provider_id), None),
        ("uri", calendar_uri, None),
    ]


def parse_calendar(body: Any, *, partial: bool = False) -> dict[str, Any]:
    """Body of calendars.create (or .update with `partial`).

    A calendar is given by `provider` and `provider_id`, or by its `uri` (then `name` is
    optional: it defaults from the calendar the URI resolves to).
    """
    by_uri = isinstance(body, dict) and "uri" in body
    values = parse_body(body, _fields(by_uri), partial=partial, what="calendar")
    if values.get("uri") is not None and ("provider" in body or "provider_id" in body):
        raise ValidationFailed(
            "invalid calendar: check uri",
            details=[{"field": "uri", "message": "give either uri or provider and provider_id"}],
        )
    if not by_uri and values.get("provider") == "graph" and not values.get("provider_id"):
        raise ValidationFailed(
            "invalid calendar: check provider_id",
            details=[{"field": "provider_id", "message": "is required when provider is graph"}],
        )
    if not by_uri:
        values.pop("uri", None)
    return values


def parse_remote_query(params: Mapping[str, str]) -> str | None:
    """Query of calendars.remote: an optional `mailbox` to list (admins); None: the caller's."""
    raw = params.get("mailbox")
    if raw is None or raw == "":
        return None
    if not is_mailbox(raw):
        problems = Problems()
        problems.add("mailbox", f"{raw[:100]!r} is not a mailbox address (user@example.com)")
        problems.raise_if_any("query")
    return raw.lower()
