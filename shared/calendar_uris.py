"""Calendar URIs (`local://Work`, `msgraph://me/calendars/Work`): parsing and formatting, pure.

A URI names a calendar by address instead of by our row id or the provider's raw id:

- `local://<name>`: a calendar stored in our own database, by name;
- `msgraph://me/calendars/<name-or-id>`: a calendar in the caller's own mailbox;
- `msgraph://users/<address>/calendars/<name-or-id>`: a calendar in another mailbox (admins).

Names are matched case-insensitively; parts may be percent-encoded (`Team%20A`, and a '/'
inside a Graph id as `%2F`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote

__all__ = ["MAX_URI_LENGTH", "CalendarUri", "format_uri", "parse_calendar_uri"]

MAX_URI_LENGTH = 1000
_GRAPH = re.compile(r"msgraph://(?:(me)|users/([^/]+))/calendars/(.+)", re.IGNORECASE)
_LOCAL = re.compile(r"local://(.+)", re.IGNORECASE)
_MAILBOX = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# What a URI may show as is in a path part; everything else is percent-encoded.
_SAFE = "@!$&'()*+,;=:~"


@dataclass(frozen=True, slots=True)
class CalendarUri:
    """A parsed calendar URI: its provider, the mailbox (None: the caller's own) and the name.

    `ref` is the calendar's name, or for msgraph its name or the provider's id.
    """

    provider: Literal["local", "graph"]
    ref: str
    mailbox: str | None = None

    @property
    def is_other_mailbox(self) -> bool:
        return self.mailbox is not None

    def __str__(self) -> str:
        if self.provider == "local":
            return f"local://{quote(self.ref, safe=_SAFE)}"
        where = "me" if self.mailbox is None else f"users/{self.mailbox}"
        return f"msgraph://{where}/calendars/{quote(self.ref, safe=_SAFE)}"


def parse_calendar_uri(value: str) -> CalendarUri:
    """Parse a calendar URI; ValueError saying what is wrong and what forms are accepted."""
    if len(value) > MAX_URI_LENGTH:
        raise ValueError(f"must be at most {MAX_URI_LENGTH} characters, got {len(value)}")
    text = value.strip()
    local = _LOCAL.fullmatch(text)
    if local is not None:
        return CalendarUri("local", _part(local.group(1), "name"))
    graph = _GRAPH.fullmatch(text)
    if graph is not None:
        mailbox = None
        if graph.group(2) is not None:
            mailbox = unquote(graph.group(2)).lower()
            if not _MAILBOX.fullmatch(mailbox):
                raise ValueError(
                    f"{value!r}: {mailbox!r} is not a mailbox address (user@example.com)"
                )
        return CalendarUri("graph", _part(graph.group(3), "calendar name or id"), mailbox)
    raise ValueError(
        f"{value[:200]!r} is not a calendar URI (expected local://<name>, "
        "msgraph://me/calendars/<name-or-id> or msgraph://users/<address>/calendars/<name-or-id>)"
    )


def format_uri(provider: str, name: str, provider_id: str | None, mailbox: str | None) -> str:
    """The URI of a stored calendar: local ones by name, remote ones by the provider's id."""
    if provider == "local":
        return str(CalendarUri("local", name))
    return str(CalendarUri("graph", provider_id or "", mailbox))


def _part(raw: str, what: str) -> str:
    decoded = unquote(raw).strip()
    if not decoded:
        raise ValueError(f"the {what} of a calendar URI must not be empty")
    if "\x00" in decoded or any(ord(c) < 32 for c in decoded):
        raise ValueError(f"the {what} of a calendar URI must not contain control characters")
    return decoded
