"""Calendars: CRUD with owner rules and URIs, reading a calendar's remote events, and
discovering the remote calendars a user's mailbox holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Actor
from shared.calendar_refs import read_calendar_ref, ref_for
from shared.calendar_uris import CalendarUri
from shared.db import Database
from shared.delegation import as_caller
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.models import Calendar
from shared.pagination import Page, PageRequest
from shared.providers import CalendarRef, ProviderRegistry
from shared.repositories import CalendarRepository, UserRepository
from shared.representation import calendar_json, instant
from shared.services.audit import record
from shared.services.calendar_resolver import CalendarResolver, own_mailbox


def owned_or_404(calendar: Calendar | None, calendar_id: int, actor: Actor) -> Calendar:
    """The calendar if `actor` owns it (or is admin); a 404 otherwise, so ids do not leak."""
    if calendar is None:
        raise NotFound(f"calendar {calendar_id} not found")
    check_visible(calendar.owner_id, calendar_id, actor)
    return calendar


def check_visible(owner_id: int | None, calendar_id: int, actor: Actor) -> None:
    """A 404 unless calendar `calendar_id` exists (`owner_id` not None) and `actor` owns it
    or is admin: another user's ids answer as if they did not exist."""
    if not actor.may_see(owner_id):
        raise NotFound(f"calendar {calendar_id} not found")


async def calendar_ref(session: AsyncSession, calendar: Calendar) -> CalendarRef:
    """How a provider addresses `calendar`: in its own mailbox (admins' calendars may name
    one) or the mailbox its owner is bound to."""
    owner = await UserRepository(session).get(calendar.owner_id)
    return ref_for(
        calendar.id,
        calendar.provider_id,
        calendar.mailbox,
        owner_is_admin=owner is not None and owner.is_admin,
        owner_mailbox=owner.calendar_mailbox if owner else None,
    )


class CalendarService:
    def __init__(self, db: Database, providers: ProviderRegistry) -> None:
        self.db = db
        self.providers = providers
        self.resolver = CalendarResolver(providers)

    async def list(self, actor: Actor, page: PageRequest) -> Page[dict[str, Any]]:
        async with self.db.read_session() as session:
            result = await CalendarRepository(session).page(
                None if actor.is_admin else actor.user_id, page
            )
        return Page(
            [calendar_json(c) for c in result.items], result.page, result.per_page, result.total
        )

    async def get(self, actor: Actor, calendar_id: int) -> dict[str, Any]:
        async with self.db.read_session() as session:
            calendar = owned_or_404(
                await CalendarRepository(session).get(calendar_id), calendar_id, actor
            )
        return calendar_json(calendar)

    @as_caller
    async def create(self, actor: Actor, values: dict[str, Any]) -> dict[str, Any]:
        """Create a calendar, by fields or by `uri`; a remote one must be in the actor's mailbox
        (another mailbox only for admins), else 403."""
        values = dict(values)
        uri: CalendarUri | None = values.pop("uri", None)
        if uri is not None:
            async with self.db.read_session() as session:
                own = await own_mailbox(session, actor)
            values.update(
                await self._resolve(
                    actor,
                    uri,
                    values.get("name"),
                    owner_mailbox=own,
                    owner_is_admin=actor.is_admin,
                )
            )
        elif values.get("provider", "local") != "local" and values.get("provider_id"):
            async with self.db.read_session() as session:
                mailbox = await own_mailbox(session, actor)
            await self._check_remote(
                values["provider"], CalendarRef(0, values["provider_id"], mailbox), is_own=True
            )
        async with self.db.session() as session:
            if uri is not None and uri.provider == "local":
                await self._check_local_name_free(session, actor, values["name"])
            calendar = await CalendarRepository(session).add(
                Calendar(owner_id=actor.user_id, **values)
            )
            after = calendar_json(calendar)
            await record(session, actor.label, "calendar.create", _target(calendar), after=after)
            return after

    @as_caller
    async def update(
        self, actor: Actor, calendar_id: int, values: dict[str, Any]
    ) -> dict[str, Any]:
        """Change a calendar; re-pointing it (by fields or `uri`) checks the remote calendar."""
        values = dict(values)
        uri: CalendarUri | None = values.pop("uri", None)
        if uri is not None:
            async with self.db.read_session() as session:
                calendar = owned_or_404(
                    await CalendarRepository(session).get(calendar_id), calendar_id, actor
                )
                owner = await UserRepository(session).get(calendar.owner_id)
            # A local URI names the calendar; a remote one keeps the name it has.
            keep_name = None if uri.provider == "local" else calendar.name
            resolved = await self._resolve(
                actor,
                uri,
                values.get("name") or keep_name,
                owner_mailbox=owner.calendar_mailbox if owner else None,
                owner_is_admin=owner is not None and owner.is_admin,
            )
            values = {**resolved, **{k: v for k, v in values.items() if k == "role"}}
        elif "provider" in values or "provider_id" in values:
            async with self.db.read_session() as session:
                calendar = owned_or_404(
                    await CalendarRepository(session).get(calendar_id), calendar_id, actor
                )
                provider = values.get("provider", calendar.provider)
                provider_id = values.get("provider_id", calendar.provider_id)
                ref = await calendar_ref(session, calendar)
            if provider != "local" and provider_id:
                await self._check_remote(
                    provider,
                    CalendarRef(calendar_id, provider_id, ref.mailbox),
                    is_own=calendar.owner_id == actor.user_id,
                )
        async with self.db.session() as session:
            calendar = owned_or_404(
                await CalendarRepository(session).get(calendar_id), calendar_id, actor
            )
            before = calendar_json(calendar)
            for key, value in values.items():
                setattr(calendar, key, value)
            if calendar.provider == "local":
                calendar.mailbox = None
            if calendar.provider == "graph" and not calendar.provider_id:
                raise ValidationFailed(
                    "invalid calendar: check provider_id",
                    details=[
                        {"field": "provider_id", "message": "is required when provider is graph"}
                    ],
                )
            await session.flush()
            after = calendar_json(calendar)
            if after != before:
                await record(
                    session,
                    actor.label,
                    "calendar.update",
                    _target(calendar),
                    before=before,
                    after=after,
                )
            return after

    async def delete(self, actor: Actor, calendar_id: int) -> None:
        async with self.db.session() as session:
            repo = CalendarRepository(session)
            calendar = owned_or_404(await repo.get(calendar_id), calendar_id, actor)
            if await repo.is_referenced(calendar_id):
                raise Conflict(
                    f"calendar {calendar_id} is used by an archive configuration; "
                    "delete or change that configuration first"
                )
            before = calendar_json(calendar)
            await repo.delete(calendar)
            await record(session, actor.label, "calendar.delete", _target(calendar), before=before)

    @as_caller
    async def remote(self, actor: Actor, mailbox: str | None) -> dict[str, Any]:
        """The remote calendars of the actor's mailbox (or `mailbox`, admins only), each with
        its URI, whether it can be written, and the actor's calendar pointing at it if any."""
        async with self.db.read_session() as session:
            own = await own_mailbox(session, actor)
            rows = [
                c
                for c in (await CalendarRepository(session).owned(actor.user_id))
                if c.provider == "graph"
            ]
        target = self.resolver.reachable_mailbox(mailbox, actor, own, named=f"mailbox {mailbox}")
        calendars = await self.providers.get("graph").list_calendars(target)
        added = {(c.mailbox or own, c.provider_id): c.id for c in rows}
        data = [
            {
                "id": c.id,
                "name": c.name,
                "uri": str(CalendarUri("graph", c.id, None if target == own else target)),
                "can_edit": c.can_edit,
                "mailbox": target,
                "calendar_id": added.get((target, c.id)),
            }
            for c in calendars
        ]
        return {"data": data, "meta": {"count": len(data), "mailbox": target}}

    @as_caller
    async def remote_events(
        self, actor: Actor, calendar_id: int, start: datetime, end: datetime, tz: Any
    ) -> list[dict[str, Any]]:
        """Events of the calendar as its provider reports them (the I/O-bound read)."""
        async with self.db.reading() as conn:
            target = await read_calendar_ref(conn, calendar_id, actor)
        events = await self.providers.get(target.provider).list_events(target.ref, start, end)
        return [
            {
                "event_id": e.event_id,
                "subject": e.subject,
                "start": instant(e.start, tz),
                "end": instant(e.end, tz),
                "location": e.location,
                "categories": list(e.categories),
                "is_private": e.is_private,
                "show_as": e.show_as,
                "importance": e.importance,
                "sensitivity": e.sensitivity,
                "is_all_day": e.is_all_day,
                "series_id": e.series_id,
            }
            for e in events
        ]

    async def _resolve(
        self,
        actor: Actor,
        uri: CalendarUri,
        name: str | None,
        *,
        owner_mailbox: str | None,
        owner_is_admin: bool,
    ) -> dict[str, Any]:
        """The fields of a calendar the URI names: provider, provider id, mailbox and name.

        `me` is the caller's mailbox; the calendar keeps a mailbox of its own only when that
        is not its owner's (`owner_mailbox`), and only an admin's calendar may.
        """
        if uri.provider == "local":
            return {
                "provider": "local",
                "provider_id": None,
                "mailbox": None,
                "name": name or uri.ref,
            }
        async with self.db.read_session() as session:
            own = await own_mailbox(session, actor)
        mailbox = self.resolver.mailbox_of(uri, actor, own)
        if mailbox != owner_mailbox and not owner_is_admin:
            raise Forbidden(
                f"{uri}: this calendar's owner is bound to mailbox {owner_mailbox}, and only "
                "an admin's calendars may be in another mailbox"
            )
        remote = await self.resolver.remote(uri, mailbox, "uri")
        return {
            "provider": "graph",
            "provider_id": remote.id,
            "mailbox": None if mailbox == owner_mailbox else mailbox,
            "name": name or remote.name or remote.id,
        }

    async def _check_local_name_free(self, session: AsyncSession, actor: Actor, name: str) -> None:
        for calendar in await CalendarRepository(session).owned(actor.user_id):
            if calendar.provider == "local" and calendar.name.casefold() == name.casefold():
                raise Conflict(
                    f"you already have a local calendar named {calendar.name!r} "
                    f"(id {calendar.id}); its URI would name two calendars"
                )

    async def _check_remote(self, provider_name: str, ref: CalendarRef, *, is_own: bool) -> None:
        """403 unless the remote calendar `ref` exists in `ref.mailbox` (its owner's)."""
        if not await self.providers.get(provider_name).has_calendar(ref):
            whose = "your mailbox" if is_own else "the mailbox of the calendar's owner"
            raise Forbidden(
                f"the remote calendar {ref.provider_id!r} is not in {whose} ({ref.mailbox}); "
                "only calendars of that mailbox can be used"
            )


def _target(calendar: Calendar) -> str:
    return f"calendar:{calendar.id}"
