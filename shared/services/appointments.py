"""Appointments: list by calendar and window in a timezone, paginated; CRUD with owner rules."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Actor
from shared.db import Database
from shared.errors import Conflict, NotFound
from shared.models import Appointment
from shared.pagination import Page
from shared.repositories import AppointmentRepository, CalendarRepository
from shared.representation import appointment_json
from shared.services.calendars import owned_or_404
from shared.validation import AppointmentQuery, check_time_order

_FIELD_COLUMNS = {"start": "start_at", "end": "end_at"}


class AppointmentService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, actor: Actor, query: AppointmentQuery) -> Page[dict[str, Any]]:
        """Appointments visible to `actor` overlapping the window, times shown in `query.tz`."""
        async with self.db.read_session() as session:
            if query.calendar_id is not None:
                owned_or_404(
                    await CalendarRepository(session).get(query.calendar_id),
                    query.calendar_id,
                    actor,
                )
                calendar_ids: list[int] | None = [query.calendar_id]
            elif actor.is_admin:
                calendar_ids = None
            else:
                calendar_ids = await CalendarRepository(session).owned_ids(actor.user_id)
            result = await AppointmentRepository(session).page(
                calendar_ids=calendar_ids, start=query.start, end=query.end, page=query.page
            )
        return Page(
            [appointment_json(a, query.tz) for a in result.items],
            result.page,
            result.per_page,
            result.total,
        )

    async def get(self, actor: Actor, appointment_id: int) -> dict[str, Any]:
        async with self.db.read_session() as session:
            appointment = await self._owned(session, actor, appointment_id)
        return appointment_json(appointment)

    async def create(self, actor: Actor, values: dict[str, Any]) -> dict[str, Any]:
        """Create an appointment in a calendar the actor owns; 409 on a duplicate event id."""
        values = dict(values)
        calendar_id = values.pop("calendar_id")
        for field, column in _FIELD_COLUMNS.items():
            values[column] = values.pop(field)
        values["provider_event_id"] = values.get("provider_event_id") or f"local-{uuid.uuid4()}"
        try:
            async with self.db.session() as session:
                calendar = await CalendarRepository(session).get(calendar_id)
                owned_or_404(calendar, calendar_id, actor)
                appointment = await AppointmentRepository(session).add(
                    Appointment(calendar_id=calendar_id, **values)
                )
                return appointment_json(appointment)
        except IntegrityError:
            raise Conflict(
                f"calendar {calendar_id} already has an event with provider_event_id "
                f"{values['provider_event_id']!r}"
            ) from None

    async def update(
        self, actor: Actor, appointment_id: int, values: dict[str, Any]
    ) -> dict[str, Any]:
        async with self.db.session() as session:
            appointment = await self._owned(session, actor, appointment_id)
            for field, value in values.items():
                setattr(appointment, _FIELD_COLUMNS.get(field, field), value)
            check_time_order(appointment.start_at, appointment.end_at)
            # Read before the flush: a failed flush expires the instance's attributes.
            calendar_id, event_id = appointment.calendar_id, appointment.provider_event_id
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict(
                    f"calendar {calendar_id} already has an event with provider_event_id "
                    f"{event_id!r}"
                ) from None
            return appointment_json(appointment)

    async def delete(self, actor: Actor, appointment_id: int) -> None:
        async with self.db.session() as session:
            appointment = await self._owned(session, actor, appointment_id)
            await AppointmentRepository(session).delete(appointment)

    async def _owned(self, session: AsyncSession, actor: Actor, appointment_id: int) -> Appointment:
        appointment = await AppointmentRepository(session).get(appointment_id)
        if appointment is not None:
            calendar = await CalendarRepository(session).get(appointment.calendar_id)
            if calendar is not None and (calendar.owner_id == actor.user_id or actor.is_admin):
                return appointment
        raise NotFound(f"appointment {appointment_id} not found")
