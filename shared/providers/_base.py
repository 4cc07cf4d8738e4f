"""The calendar provider interface: read a calendar's events in a window, write an event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CalendarRef:
    """What a provider needs to address a calendar: our id, the provider's id and its mailbox.

    `mailbox` is the remote mailbox the calendar's owner is bound to: a remote provider only
    ever looks for the calendar there, so no user reaches another mailbox's calendars.
    """

    id: int
    provider_id: str | None
    mailbox: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One event as a provider reports it; times are timezone-aware."""

    event_id: str
    subject: str
    start: datetime
    end: datetime
    location: str = ""
    categories: tuple[str, ...] = field(default_factory=tuple)
    is_private: bool = False


class CalendarProvider(Protocol):
    """A source of calendar events (our own database, or a Graph-compatible API)."""

    name: str

    async def list_events(
        self, calendar: CalendarRef, start: datetime, end: datetime
    ) -> list[ProviderEvent]:
        """Events of `calendar` overlapping [start, end), ordered by start."""
        ...

    async def has_calendar(self, calendar: CalendarRef) -> bool:
        """True when `calendar` exists in its mailbox (a remote lookup; local: always)."""
        ...

    async def create_event(self, calendar: CalendarRef, event: ProviderEvent) -> str:
        """Write `event` into `calendar`; return the provider's id of the new event."""
        ...

    async def aclose(self) -> None:
        """Release connections; awaited on the loop that used the provider."""
        ...
