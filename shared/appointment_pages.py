"""Read-only pages of appointments: one statement per page, plain rows, statements built once.

The list endpoint is the busiest read of the API, so its page skips what a read-only page does
not need: no ORM objects (no identity map, no instance state), no statement construction per
request (one prepared statement per combination of filters, its values bound at execution),
and no second round trip for the total (it rides along as an uncorrelated scalar subquery,
which the database evaluates once; only an empty page asks for it on its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Row, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.models import APPOINTMENT_COLUMNS, Appointment, Calendar
from shared.pagination import Page, PageRequest
from shared.repositories import MAX_ID

MAX_OFFSET = 2**63 - 1  # a larger offset cannot even be bound, and names no row anyway


@dataclass(frozen=True, slots=True)
class AppointmentFilter:
    """Which appointments a page lists: one calendar, or one owner's calendars, or all (None
    for both), overlapping [start, end) where given."""

    calendar_id: int | None = None
    owner_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None

    def params(self) -> dict[str, Any]:
        values = {"calendar_id": self.calendar_id, "owner_id": self.owner_id}
        values.update(start=self.start, end=self.end)
        return {name: value for name, value in values.items() if value is not None}


async def appointment_page(
    conn: AsyncConnection, where: AppointmentFilter, page: PageRequest
) -> Page[Row[Any]]:
    """The page of appointments `where` selects, by start then id, as rows holding
    `APPOINTMENT_COLUMNS` in order (render them with `appointment_row_json`), and the total."""
    paged, count = _statements(
        where.calendar_id is not None,
        where.owner_id is not None,
        where.start is not None,
        where.end is not None,
    )
    params = where.params()
    rows: list[Row[Any]] = []
    if page.offset <= MAX_OFFSET:
        bounds = {"limit": page.per_page, "offset": page.offset}
        rows = list((await conn.execute(paged, {**params, **bounds})).all())
    if rows:
        return Page(rows, page.page, page.per_page, int(rows[0][-1]))
    total = await conn.scalar(count, params)
    return Page([], page.page, page.per_page, int(total or 0))


async def calendar_owner(conn: AsyncConnection, calendar_id: int) -> int | None:
    """The owner of calendar `calendar_id`, None when there is no such calendar."""
    if not 0 < calendar_id <= MAX_ID:
        return None
    return await conn.scalar(_OWNER, {"calendar_id": calendar_id})


_OWNER = select(Calendar.owner_id).where(Calendar.id == bindparam("calendar_id"))


async def appointment_row(conn: AsyncConnection, appointment_id: int) -> Row[Any] | None:
    """Appointment `appointment_id` as a row holding `APPOINTMENT_COLUMNS` in order and then
    its calendar's owner id (one statement); None when there is no such appointment."""
    if not 0 < appointment_id <= MAX_ID:
        return None
    return (await conn.execute(_ONE, {"appointment_id": appointment_id})).first()


_ONE = (
    select(*(Appointment.__table__.c[name] for name in APPOINTMENT_COLUMNS), Calendar.owner_id)
    .join(Calendar, Calendar.id == Appointment.calendar_id)
    .where(Appointment.id == bindparam("appointment_id"))
)


@cache
def _statements(
    by_calendar: bool, by_owner: bool, from_start: bool, to_end: bool
) -> tuple[Select[Any], Select[Any]]:
    """The page statement (rows plus the total) and the count on its own, for one combination
    of filters; at most sixteen are ever built."""
    table = Appointment.__table__
    criteria = []
    if by_calendar:
        criteria.append(table.c.calendar_id == bindparam("calendar_id"))
    if by_owner:
        owned = select(Calendar.id).where(Calendar.owner_id == bindparam("owner_id"))
        criteria.append(table.c.calendar_id.in_(owned.scalar_subquery()))
    if from_start:
        criteria.append(table.c.end_at > bindparam("start"))
    if to_end:
        criteria.append(table.c.start_at < bindparam("end"))
    # Counted on the table itself, not over a subquery of the page's columns: the database
    # then counts from an index (or its row count) instead of reading every column.
    count = select(func.count()).select_from(table).where(*criteria)
    paged = (
        select(*(table.c[name] for name in APPOINTMENT_COLUMNS))
        .where(*criteria)
        .add_columns(count.scalar_subquery().correlate(None).label("_total"))
        .order_by(table.c.start_at, table.c.id)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return paged, count
