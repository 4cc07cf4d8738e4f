"""The calendar provider interface: list calendars, read events in a window, write events."""

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


SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere")
IMPORTANCE = ("low", "normal", "high")
SENSITIVITY = ("normal", "personal", "private", "confidential")
PRIVATE_SENSITIVITIES = frozenset({"private", "confidential"})


@dataclass(frozen=True, slots=True)
class RemoteCalendar:
    """A calendar a provider can reach in a mailbox: its id, its name, whether we may write it."""

    id: str
    name: str
    can_edit: bool
    mailbox: str


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One event (or one occurrence of a series) as a provider reports it; times are aware.

    `is_private` and `sensitivity` agree: private and confidential events are private, and
    an event made private without a sensitivity is `private`. `series_id` is the provider's
    id of the series an occurrence belongs to.
    """

    event_id: str
    subject: str
    start: datetime
    end: datetime
    location: str = ""
    categories: tuple[str, ...] = field(default_factory=tuple)
    is_private: bool = False
    show_as: str = "busy"
    importance: str = "normal"
    sensitivity: str = "normal"
    is_all_day: bool = False
    series_id: str | None = None

    def __post_init__(self) -> None:
        if self.sensitivity in PRIVATE_SENSITIVITIES:
            object.__setattr__(self, "is_private", True)
        elif self.is_private and self.sensitivity == "normal":
            object.__setattr__(self, "sensitivity", "private")


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

    async def update_event(self, calendar: CalendarRef, event_id: str, event: ProviderEvent) -> str:
        """Make event `event_id` of `calendar` equal `event`; its id (a new one if it was gone)."""
        ...

    async def delete_event(self, calendar: CalendarRef, event_id: str) -> None:
        """Remove event `event_id` from `calendar` (already gone is fine)."""
        ...

    async def list_calendars(self, mailbox: str) -> list[RemoteCalendar]:
        """The calendars of `mailbox` this provider can reach (local: none)."""
        ...

    async def aclose(self) -> None:
        """Release connections; awaited on the loop that used the provider."""
        ...
