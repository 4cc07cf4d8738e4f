"""Appointments: list by calendar and window in a timezone, paginated; CRUD with owner rules.

Archived copies (written by archive runs) are immutable here: only a replace-mode run
changes them. A series (an RRULE) and its exceptions are checked against each other.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.appointment_pages import (
    AppointmentFilter,
    appointment_page,
    appointment_row,
    calendar_owner,
)
from shared.auth import Actor
from shared.db import Database
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.inputs.appointments import check_recurrence, check_time_order
from shared.models import Appointment
from shared.pagination import Page
from shared.providers._base import PRIVATE_SENSITIVITIES
from shared.recurrence import Recurrence, is_occurrence
from shared.repositories import AppointmentRepository, CalendarRepository
from shared.representation import appointment_json, appointment_row_json
from shared.services.calendars import check_visible, owned_or_404
from shared.validation import AppointmentQuery

_FIELD_COLUMNS = {"start": "start_at", "end": "end_at"}


class AppointmentService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, actor: Actor, query: AppointmentQuery) -> Page[dict[str, Any]]:
        """Appointments visible to `actor` overlapping the window, times shown in `query.tz`."""
        async with self.db.reading() as conn:
            if query.calendar_id is not None:
                owner = await calendar_owner(conn, query.calendar_id)
                check_visible(owner, query.calendar_id, actor)
            where = AppointmentFilter(
                calendar_id=query.calendar_id,
                # Everyone but an admin sees the appointments of their own calendars only.
                owner_id=None if actor.is_admin or query.calendar_id else actor.user_id,
                start=query.start,
                end=query.end,
            )
            result = await appointment_page(conn, where, query.page)
        tz = query.tz
        return Page(
            [appointment_row_json(row, tz) for row in result.items],
            result.page,
            result.per_page,
            result.total,
        )

    async def get(self, actor: Actor, appointment_id: int) -> dict[str, Any]:
        """One appointment of the actor's calendars (any, for an admin); 404 otherwise."""
        async with self.db.reading() as conn:
            row = await appointment_row(conn, appointment_id)
        # The owner id rides at the end of the row: one statement, no ORM objects.
        if row is None or not actor.may_see(row[-1]):
            raise NotFound(f"appointment {appointment_id} not found")
        return appointment_row_json(row)

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
                appointment = Appointment(calendar_id=calendar_id, **values)
                await self._check_exception(session, appointment)
                await AppointmentRepository(session).add(appointment)
                return appointment_json(appointment)
        except IntegrityError:
            raise Conflict(
                f"calendar {calendar_id} already has an event with provider_event_id "
                f"{values['provider_event_id']!r}"
            ) from None

    async def update(
        self, actor: Actor, appointment_id: int, values: dict[str, Any]
    ) -> dict[str, Any]:
        """Change an appointment; 409 for an archived copy (replace mode alone changes those)."""
        async with self.db.session() as session:
            appointment = await self._owned(session, actor, appointment_id)
            _refuse_copy(appointment, "changed")
            for field, value in values.items():
                setattr(appointment, _FIELD_COLUMNS.get(field, field), value)
            if "sensitivity" not in values and "is_private" in values:
                if values["is_private"]:
                    appointment.sensitivity = "private"
                elif appointment.sensitivity in PRIVATE_SENSITIVITIES:
                    appointment.sensitivity = "normal"
            check_time_order(appointment.start_at, appointment.end_at)
            if "recurrence" in values and values["recurrence"] is not None:
                appointment.recurrence = check_recurrence(
                    values["recurrence"], appointment.start_at
                ).to_json()
            elif appointment.recurrence is not None and {"start", "end"} & set(values):
                check_recurrence(
                    _as_input(Recurrence.from_json(appointment.recurrence)), appointment.start_at
                )
            if (appointment.series_id is None) != (appointment.original_start is None):
                raise _invalid("original_start", "series_id and original_start go together")
            await self._check_exception(session, appointment)
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
        """Delete an appointment (a series with its exceptions); 409 for an archived copy."""
        async with self.db.session() as session:
            appointment = await self._owned(session, actor, appointment_id)
            _refuse_copy(appointment, "deleted")
            await AppointmentRepository(session).delete(appointment)

    async def _owned(self, session: AsyncSession, actor: Actor, appointment_id: int) -> Appointment:
        appointment = await AppointmentRepository(session).get(appointment_id)
        if appointment is not None:
            calendar = await CalendarRepository(session).get(appointment.calendar_id)
            if calendar is not None and actor.may_see(calendar.owner_id):
                return appointment
        raise NotFound(f"appointment {appointment_id} not found")

    async def _check_exception(self, session: AsyncSession, appointment: Appointment) -> None:
        """An exception names a series of its own calendar and one of that series' starts."""
        if appointment.series_id is None:
            return
        if appointment.recurrence is not None:
            raise _invalid("recurrence", "an exception of a series cannot recur itself")
        series = await AppointmentRepository(session).get(appointment.series_id)
        if (
            series is None
            or series.calendar_id != appointment.calendar_id
            or series.recurrence is None
            or series.id == appointment.id
        ):
            raise _invalid(
                "series_id",
                f"appointment {appointment.series_id} is not a recurring series of calendar "
                f"{appointment.calendar_id}",
            )
        assert appointment.original_start is not None
        if not is_occurrence(
            series.start_at, Recurrence.from_json(series.recurrence), appointment.original_start
        ):
            raise _invalid(
                "original_start",
                f"series {series.id} has no occurrence starting at "
                f"{appointment.original_start.isoformat()}",
            )


def _refuse_copy(appointment: Appointment, what: str) -> None:
    if appointment.is_archived_copy:
        made_by = (
            f" by archive configuration {appointment.archive_config_id}"
            if appointment.archive_config_id is not None
            else ""
        )
        raise Conflict(
            f"appointment {appointment.id} is an archived copy{made_by} and cannot be {what}: "
            "archived copies are immutable (a replace-mode archive run is the only way they "
            "change)"
        )


def _as_input(recurrence: Recurrence) -> dict[str, Any]:
    return {
        "rrule": recurrence.rrule,
        "timezone": recurrence.timezone,
        "exdates": list(recurrence.exdates),
    }


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"invalid appointment: check {field}", details=[{"field": field, "message": message}]
    )
