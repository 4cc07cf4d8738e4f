"""The `local` provider: calendars whose events live in our own database (the embedded default).

Recurring series are stored once (an RRULE on the series master) and expanded here into the
occurrences of the window asked for; exceptions (changed occurrences) replace theirs.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from shared.archive_repositories import SeriesRepository
from shared.db import Database
from shared.errors import ValidationFailed
from shared.models import Appointment
from shared.providers._base import CalendarRef, ProviderEvent, RemoteCalendar
from shared.recurrence import Recurrence, expand
from shared.repositories import AppointmentRepository


def occurrence_id(series_event_id: str, start: datetime) -> str:
    """The event id of one occurrence of a series: the series' id and the occurrence's start."""
    return f"{series_event_id}@{start.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def event_of(row: Appointment, series_event_id: str | None = None) -> ProviderEvent:
    """An appointment row as the event a provider reports."""
    return ProviderEvent(
        event_id=row.provider_event_id,
        subject=row.subject,
        start=row.start_at,
        end=row.end_at,
        location=row.location,
        categories=tuple(row.categories or ()),
        is_private=row.is_private,
        show_as=row.show_as,
        importance=row.importance,
        sensitivity=row.sensitivity,
        is_all_day=row.is_all_day,
        series_id=series_event_id,
    )


class LocalProvider:
    """Reads and writes appointments of a calendar stored in the application database."""

    name = "local"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_events(
        self, calendar: CalendarRef, start: datetime, end: datetime
    ) -> list[ProviderEvent]:
        """Events overlapping [start, end) by start, series expanded into their occurrences."""
        async with self.db.read_session() as session:
            rows = await AppointmentRepository(session).in_window(calendar.id, start, end)
            repo = SeriesRepository(session)
            masters = await repo.series_masters(calendar.id, before=end)
            replaced = await repo.replaced_starts([m.id for m in masters])
            series_ids = {r.series_id for r in rows if r.series_id is not None}
            series_event_ids = await repo.event_ids(series_ids)
        events = [
            event_of(row, series_event_ids.get(row.series_id) if row.series_id else None)
            for row in rows
            if row.recurrence is None
        ]
        for master in masters:
            try:
                occurrences = expand(
                    master.start_at,
                    master.end_at,
                    Recurrence.from_json(master.recurrence or {}),
                    start,
                    end,
                    replaced=replaced.get(master.id, ()),
                )
            except ValueError as exc:
                raise ValidationFailed(
                    f"calendar {calendar.id}: series {master.provider_event_id!r}: {exc}; "
                    "choose a shorter window"
                ) from None
            template = event_of(master)
            for occurrence in occurrences:
                events.append(
                    replace(
                        template,
                        event_id=occurrence_id(master.provider_event_id, occurrence.start),
                        start=occurrence.start,
                        end=occurrence.end,
                        series_id=master.provider_event_id,
                    )
                )
        events.sort(key=lambda e: (e.start, e.end, e.event_id))
        return events

    async def has_calendar(self, calendar: CalendarRef) -> bool:
        """Local calendars are rows of our own database: there is nothing remote to check."""
        return True

    async def list_calendars(self, mailbox: str) -> list[RemoteCalendar]:
        """Local calendars live in our database, not in a mailbox: none to discover."""
        return []

    async def create_event(self, calendar: CalendarRef, event: ProviderEvent) -> str:
        event_id = event.event_id or f"local-{uuid.uuid4()}"
        async with self.db.session() as session:
            await AppointmentRepository(session).add(
                Appointment(
                    calendar_id=calendar.id,
                    subject=event.subject,
                    start_at=event.start,
                    end_at=event.end,
                    location=event.location,
                    categories=list(event.categories),
                    is_private=event.is_private,
                    show_as=event.show_as,
                    importance=event.importance,
                    sensitivity=event.sensitivity,
                    is_all_day=event.is_all_day,
                    provider_event_id=event_id,
                )
            )
        return event_id

    async def update_event(self, calendar: CalendarRef, event_id: str, event: ProviderEvent) -> str:
        """Archive copies in local calendars are rows the archive run updates itself."""
        return event_id

    async def delete_event(self, calendar: CalendarRef, event_id: str) -> None:
        """Archive copies in local calendars are rows the archive run removes itself."""

    async def aclose(self) -> None:
        """Nothing to release: the database belongs to the runtime."""
