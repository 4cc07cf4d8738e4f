"""How a provider addresses one of our calendars, and reading that in one statement.

A remote calendar is looked for only in one mailbox: its own (an admin's calendar may name
one) or the mailbox its owner is bound to. `ref_for` is that rule; `read_calendar_ref` reads
what it needs (the calendar and its owner) with one Core statement on a bare connection,
for the I/O-bound reads that hit the provider on every request.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import Actor
from shared.errors import NotFound, RemoteCalendarNotFound
from shared.models import Calendar, User
from shared.providers import CalendarRef
from shared.repositories import MAX_ID


@dataclass(frozen=True, slots=True)
class RemoteTarget:
    """A calendar the caller may read through its provider: which provider, and where."""

    provider: str
    ref: CalendarRef


def ref_for(
    calendar_id: int,
    provider_id: str | None,
    mailbox: str | None,
    *,
    owner_is_admin: bool,
    owner_mailbox: str | None,
) -> CalendarRef:
    """The calendar in its own mailbox (only an admin's calendar may name one), else in its
    owner's; RemoteCalendarNotFound when a non-admin's calendar names another mailbox."""
    if mailbox is not None and not owner_is_admin:
        raise RemoteCalendarNotFound(
            f"calendar {calendar_id} is in mailbox {mailbox}, which only an admin's "
            "calendars may reach"
        )
    return CalendarRef(calendar_id, provider_id, mailbox or owner_mailbox)


async def read_calendar_ref(conn: AsyncConnection, calendar_id: int, actor: Actor) -> RemoteTarget:
    """Calendar `calendar_id` as its provider addresses it, if `actor` owns it or is admin;
    NotFound otherwise (another user's ids answer as if they did not exist)."""
    row = None
    if 0 < calendar_id <= MAX_ID:
        row = (await conn.execute(_CALENDAR_AND_OWNER, {"calendar_id": calendar_id})).first()
    if row is None or (row.owner_id != actor.user_id and not actor.is_admin):
        raise NotFound(f"calendar {calendar_id} not found")
    ref = ref_for(
        calendar_id,
        row.provider_id,
        row.mailbox,
        owner_is_admin=bool(row.is_admin),
        owner_mailbox=row.owner_mailbox or row.email,
    )
    return RemoteTarget(row.provider, ref)


_CALENDAR_AND_OWNER = (
    select(
        Calendar.owner_id,
        Calendar.provider,
        Calendar.provider_id,
        Calendar.mailbox,
        User.is_admin,
        User.email,
        User.mailbox.label("owner_mailbox"),
    )
    .join(User, User.id == Calendar.owner_id)
    .where(Calendar.id == bindparam("calendar_id"))
)
