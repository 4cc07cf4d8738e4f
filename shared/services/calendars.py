"""Calendars: CRUD with owner rules, and reading a calendar's remote events from its provider."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Actor
from shared.db import Database
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.models import Calendar
from shared.pagination import Page, PageRequest
from shared.providers import CalendarRef, ProviderRegistry
from shared.repositories import CalendarRepository, UserRepository
from shared.representation import calendar_json, instant


def owned_or_404(calendar: Calendar | None, calendar_id: int, actor: Actor) -> Calendar:
    """The calendar if `actor` owns it (or is admin); a 404 otherwise, so ids do not leak."""
    if calendar is None or (calendar.owner_id != actor.user_id and not actor.is_admin):
        raise NotFound(f"calendar {calendar_id} not found")
    return calendar


async def calendar_ref(session: AsyncSession, calendar: Calendar) -> CalendarRef:
    """How a provider addresses `calendar`: in the mailbox its owner is bound to."""
    owner = await UserRepository(session).get(calendar.owner_id)
    return CalendarRef(calendar.id, calendar.provider_id, owner.calendar_mailbox if owner else None)


class CalendarService:
    def __init__(self, db: Database, providers: ProviderRegistry) -> None:
        self.db = db
        self.providers = providers

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

    async def create(self, actor: Actor, values: dict[str, Any]) -> dict[str, Any]:
        """Create a calendar; a remote one must exist in the actor's own mailbox (else 403)."""
        if values.get("provider", "local") != "local" and values.get("provider_id"):
            async with self.db.read_session() as session:
                owner = await UserRepository(session).get(actor.user_id)
            mailbox = owner.calendar_mailbox if owner else None
            await self._check_remote(
                values["provider"], CalendarRef(0, values["provider_id"], mailbox), is_own=True
            )
        async with self.db.session() as session:
            calendar = await CalendarRepository(session).add(
                Calendar(owner_id=actor.user_id, **values)
            )
            return calendar_json(calendar)

    async def update(
        self, actor: Actor, calendar_id: int, values: dict[str, Any]
    ) -> dict[str, Any]:
        """Change a calendar; re-pointing it at a remote calendar checks the owner's mailbox."""
        if "provider" in values or "provider_id" in values:
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
            for key, value in values.items():
                setattr(calendar, key, value)
            if calendar.provider == "graph" and not calendar.provider_id:
                raise ValidationFailed(
                    "invalid calendar: check provider_id",
                    details=[
                        {"field": "provider_id", "message": "is required when provider is graph"}
                    ],
                )
            await session.flush()
            return calendar_json(calendar)

    async def delete(self, actor: Actor, calendar_id: int) -> None:
        async with self.db.session() as session:
            repo = CalendarRepository(session)
            calendar = owned_or_404(await repo.get(calendar_id), calendar_id, actor)
            if await repo.is_referenced(calendar_id):
                raise Conflict(
                    f"calendar {calendar_id} is used by an archive configuration; "
                    "delete or change that configuration first"
                )
            await repo.delete(calendar)

    async def remote_events(
        self, actor: Actor, calendar_id: int, start: datetime, end: datetime, tz: Any
    ) -> list[dict[str, Any]]:
        """Events of the calendar as its provider reports them (the I/O-bound read)."""
        async with self.db.read_session() as session:
            calendar = owned_or_404(
                await CalendarRepository(session).get(calendar_id), calendar_id, actor
            )
            ref = await calendar_ref(session, calendar)
        provider = self.providers.get(calendar.provider)
        events = await provider.list_events(ref, start, end)
        return [
            {
                "event_id": e.event_id,
                "subject": e.subject,
                "start": instant(e.start, tz),
                "end": instant(e.end, tz),
                "location": e.location,
                "categories": list(e.categories),
                "is_private": e.is_private,
            }
            for e in events
        ]

    async def _check_remote(self, provider_name: str, ref: CalendarRef, *, is_own: bool) -> None:
        """403 unless the remote calendar `ref` exists in `ref.mailbox` (its owner's)."""
        if not await self.providers.get(provider_name).has_calendar(ref):
            whose = "your mailbox" if is_own else "the mailbox of the calendar's owner"
            raise Forbidden(
                f"the remote calendar {ref.provider_id!r} is not in {whose} ({ref.mailbox}); "
                "only calendars of that mailbox can be used"
            )
