"""Repositories of the archive domain: series and exceptions, archived copies, action items."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import ActionItem, Appointment, ArchiveConfiguration
from shared.pagination import Page, PageRequest

# The row id check and the pager every repository shares.
from shared.repositories import _is_id, _paginate

__all__ = ["ActionItemRepository", "CopyRepository", "SeriesRepository"]


class SeriesRepository:
    """Recurring series of a calendar and what their exceptions replace."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def series_masters(self, calendar_id: int, *, before: datetime) -> list[Appointment]:
        """Recurring series of the calendar whose first occurrence starts before `before`."""
        rows = await self.session.scalars(
            select(Appointment)
            .where(
                Appointment.calendar_id == calendar_id,
                Appointment.recurrence.is_not(None),
                Appointment.start_at < before,
            )
            .order_by(Appointment.id)
        )
        return [row for row in rows if row.recurrence is not None]

    async def replaced_starts(self, series_ids: Sequence[int]) -> dict[int, list[datetime]]:
        """The occurrence starts replaced by exceptions, per series id."""
        found: dict[int, list[datetime]] = {}
        for i in range(0, len(series_ids), 500):
            rows = await self.session.execute(
                select(Appointment.series_id, Appointment.original_start).where(
                    Appointment.series_id.in_(series_ids[i : i + 500]),
                    Appointment.original_start.is_not(None),
                )
            )
            for series_id, start in rows:
                found.setdefault(series_id, []).append(start)
        return found

    async def event_ids(self, ids: Iterable[int]) -> dict[int, str]:
        """The provider event id of each appointment id."""
        wanted = list(ids)
        found: dict[int, str] = {}
        for i in range(0, len(wanted), 500):
            rows = await self.session.execute(
                select(Appointment.id, Appointment.provider_event_id).where(
                    Appointment.id.in_(wanted[i : i + 500])
                )
            )
            found.update({row_id: event_id for row_id, event_id in rows})
        return found


class CopyRepository:
    """The copies archive runs wrote: found by event, by configuration and window; removed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def copies(self, calendar_id: int, event_ids: Iterable[str]) -> dict[str, Appointment]:
        """The rows of `calendar_id` holding the given event ids, by event id."""
        wanted = list(event_ids)
        found: dict[str, Appointment] = {}
        for i in range(0, len(wanted), 500):
            rows = await self.session.scalars(
                select(Appointment).where(
                    Appointment.calendar_id == calendar_id,
                    Appointment.provider_event_id.in_(wanted[i : i + 500]),
                )
            )
            found.update({row.provider_event_id: row for row in rows})
        return found

    async def copies_in_window(
        self, calendar_id: int, config_id: int, start: datetime, end: datetime
    ) -> list[Appointment]:
        """Copies configuration `config_id` archived into the calendar, overlapping the window."""
        rows = await self.session.scalars(
            select(Appointment)
            .where(
                Appointment.calendar_id == calendar_id,
                Appointment.archive_config_id == config_id,
                Appointment.end_at > start,
                Appointment.start_at < end,
            )
            .order_by(Appointment.start_at, Appointment.id)
        )
        return list(rows)

    async def archived_by(
        self, config_id: int, start: datetime, end: datetime
    ) -> list[Appointment]:
        """Every copy configuration `config_id` archived, overlapping [start, end)."""
        rows = await self.session.scalars(
            select(Appointment)
            .where(
                Appointment.archive_config_id == config_id,
                Appointment.end_at > start,
                Appointment.start_at < end,
            )
            .order_by(Appointment.start_at, Appointment.id)
        )
        return list(rows)

    async def delete_ids(self, ids: Sequence[int]) -> int:
        """Delete rows by id (gone already is fine); how many were deleted."""
        deleted = 0
        for i in range(0, len(ids), 500):
            result = await self.session.execute(
                delete(Appointment).where(Appointment.id.in_(ids[i : i + 500]))
            )
            deleted += int(result.rowcount or 0)  # type: ignore[attr-defined]
        return deleted


class ActionItemRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, item_id: int, *, for_update: bool = False) -> ActionItem | None:
        if not _is_id(item_id):
            return None
        query = select(ActionItem).where(ActionItem.id == item_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def page(
        self,
        *,
        owner_id: int | None,
        config_id: int | None,
        state: str | None,
        page: PageRequest,
    ) -> Page[ActionItem]:
        """Items of the owner's configurations (all when None), oldest conflict first."""
        query = select(ActionItem).order_by(ActionItem.starts_at, ActionItem.id)
        if config_id is not None:
            query = query.where(ActionItem.config_id == config_id)
        if state is not None:
            query = query.where(ActionItem.state == state)
        if owner_id is not None:
            owned = select(ArchiveConfiguration.id).where(ArchiveConfiguration.owner_id == owner_id)
            query = query.where(ActionItem.config_id.in_(owned))
        return await _paginate(self.session, query, page)

    async def of_config(self, config_id: int, start: datetime, end: datetime) -> list[ActionItem]:
        """Every item of the configuration whose conflict overlaps [start, end), oldest first."""
        rows = await self.session.scalars(
            select(ActionItem)
            .where(
                ActionItem.config_id == config_id,
                ActionItem.ends_at > start,
                ActionItem.starts_at < end,
            )
            .order_by(ActionItem.id)
        )
        return list(rows)

    async def add(self, item: ActionItem) -> ActionItem:
        self.session.add(item)
        await self.session.flush()
        return item
