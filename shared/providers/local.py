"""The `local` provider: calendars whose events live in our own database (the embedded default)."""

from __future__ import annotations

import uuid
from datetime import datetime

from shared.db import Database
from shared.models import Appointment
from shared.providers._base import CalendarRef, ProviderEvent
from shared.repositories import AppointmentRepository


class LocalProvider:
    """Reads and writes appointments of a calendar stored in the application database."""

    name = "local"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_events(
        self, calendar: CalendarRef, start: datetime, end: datetime
    ) -> list[ProviderEvent]:
        async with self.db.read_session() as session:
            rows = await AppointmentRepository(session).in_window(calendar.id, start, end)
        return [
            ProviderEvent(
                event_id=row.provider_event_id,
                subject=row.subject,
                start=row.start_at,
                end=row.end_at,
                location=row.location,
                categories=tuple(row.categories or ()),
                is_private=row.is_private,
            )
            for row in rows
        ]

    async def has_calendar(self, calendar: CalendarRef) -> bool:
        """Local calendars are rows of our own database: there is nothing remote to check."""
        return True

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
                    provider_event_id=event_id,
                )
            )
        return event_id

    async def aclose(self) -> None:
        """Nothing to release: the database belongs to the runtime."""
