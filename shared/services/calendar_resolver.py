"""Resolving calendar URIs: to a remote calendar of a mailbox, or to one of the caller's rows.

Names match case-insensitively; a remote calendar's id matches exactly first. A URI that
matches nothing, or more than one calendar, is a 422 naming the candidates; another
mailbox (`msgraph://users/<address>/...`) is for admins only (403).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Actor
from shared.calendar_uris import CalendarUri
from shared.errors import Forbidden, ValidationFailed
from shared.models import Calendar
from shared.providers import ProviderRegistry, RemoteCalendar
from shared.repositories import UserRepository

__all__ = ["CalendarResolver", "own_mailbox"]


async def own_mailbox(session: AsyncSession, actor: Actor) -> str | None:
    """The mailbox `actor` is bound to (their email unless set otherwise)."""
    user = await UserRepository(session).get(actor.user_id)
    return user.calendar_mailbox if user is not None else None


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"invalid calendar reference: check {field}",
        details=[{"field": field, "message": message}],
    )


class CalendarResolver:
    """Finds the calendar a URI names, through the providers (remote) or the database (rows)."""

    def __init__(self, providers: ProviderRegistry) -> None:
        self.providers = providers

    def mailbox_of(self, uri: CalendarUri, actor: Actor, own: str | None) -> str:
        """The mailbox a msgraph URI addresses; 403 for another mailbox unless `actor` is admin."""
        return self.reachable_mailbox(uri.mailbox, actor, own, named=str(uri))

    def reachable_mailbox(
        self, mailbox: str | None, actor: Actor, own: str | None, *, named: str = "mailbox"
    ) -> str:
        """`mailbox` (None: the actor's `own`) if the actor may reach it; 403 otherwise."""
        if mailbox is not None and mailbox != own and not actor.is_admin:
            raise Forbidden(
                f"{named}: only admins may reach another mailbox's calendars "
                "(use msgraph://me/calendars/... for your own)"
            )
        found = mailbox or own
        if found is None:
            raise Forbidden("your account is bound to no mailbox; ask an admin to set one")
        return found

    async def remote(self, uri: CalendarUri, mailbox: str, field: str) -> RemoteCalendar:
        """The remote calendar of `mailbox` the URI names: by id, else by name (one only)."""
        calendars = await self.providers.get("graph").list_calendars(mailbox)
        for calendar in calendars:
            if calendar.id == uri.ref:
                return calendar
        wanted = uri.ref.casefold()
        named = [c for c in calendars if c.name.casefold() == wanted]
        if len(named) == 1:
            return named[0]
        if named:
            ids = ", ".join(c.id for c in named)
            raise _fail(
                field,
                f"{uri} is ambiguous: {len(named)} calendars of {mailbox} are named "
                f"{named[0].name!r} (ids {ids}); name one by its id",
            )
        raise _fail(
            field,
            f"{uri}: mailbox {mailbox} has no calendar named or with id {uri.ref!r} "
            "(GET /api/calendars/remote lists them)",
        )

    async def row(
        self, session: AsyncSession, actor: Actor, uri: CalendarUri, field: str
    ) -> Calendar:
        """The caller's own calendar (a row) the URI names; 422 when none or several match."""
        rows = list(
            await session.scalars(
                select(Calendar)
                .where(Calendar.owner_id == actor.user_id, Calendar.provider == uri.provider)
                .order_by(Calendar.id)
            )
        )
        if uri.provider == "local":
            wanted = uri.ref.casefold()
            named = [c for c in rows if c.name.casefold() == wanted]
            if len(named) > 1:
                ids = ", ".join(str(c.id) for c in named)
                raise _fail(
                    field,
                    f"{uri} is ambiguous: you have {len(named)} local calendars named "
                    f"{named[0].name!r} (ids {ids}); rename one or give its id",
                )
            if not named:
                raise _fail(field, f"{uri}: you have no local calendar named {uri.ref!r}")
            return named[0]
        own = await own_mailbox(session, actor)
        mailbox = self.mailbox_of(uri, actor, own)
        in_mailbox = [c for c in rows if (c.mailbox or own) == mailbox]
        for calendar in in_mailbox:
            if calendar.provider_id == uri.ref:
                return calendar
        remote = await self.remote(uri, mailbox, field)
        for calendar in in_mailbox:
            if calendar.provider_id == remote.id:
                return calendar
        raise _fail(
            field,
            f"{uri} is remote calendar {remote.id!r} ({remote.name!r}), which you have not "
            "added; add it first (on the Calendars page, or POST /api/calendars with its uri)",
        )
