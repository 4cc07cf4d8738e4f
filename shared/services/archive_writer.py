"""Writing an archive run's events into the archive calendar: append, or replace the window.

Append adds the events not yet archived. Replace makes the configuration's copies in the
window equal the events: changed ones updated, new ones added, copies of events no longer
there removed (events held for a decision excepted), unchanged ones left alone; so a second
identical run changes nothing. Remote archive calendars get the same writes through their
provider; our rows record every copy, with the remote id to update or remove it later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError

from shared.archive_repositories import CopyRepository
from shared.db import Database
from shared.errors import ProviderError, RemoteCalendarNotFound
from shared.models import Appointment, Calendar, utcnow
from shared.providers import CalendarProvider, CalendarRef, ProviderEvent, ProviderRegistry
from shared.repositories import AppointmentRepository

__all__ = ["ArchiveWriter", "WriteResult", "copy_of", "copy_values"]

ProgressCallback = Callable[[int, int], None]
Mode = Literal["append", "replace"]
_log = logging.getLogger(__name__)


@dataclass
class WriteResult:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def copy_values(event: ProviderEvent, origin_id: int | None) -> dict[str, Any]:
    """The columns of an archived copy of `event` (what replace mode compares and updates)."""
    return {
        "subject": event.subject,
        "start_at": event.start,
        "end_at": event.end,
        "location": event.location,
        "categories": list(event.categories),
        "is_private": event.is_private,
        "show_as": event.show_as,
        "importance": event.importance,
        "sensitivity": event.sensitivity,
        "is_all_day": event.is_all_day,
        "archived_from_id": origin_id,
    }


def copy_of(
    event: ProviderEvent,
    calendar_id: int,
    config_id: int,
    origin_id: int | None,
    archive_event_id: str | None,
) -> Appointment:
    """A new archived copy of `event` in `calendar_id`, made by configuration `config_id`."""
    return Appointment(
        calendar_id=calendar_id,
        provider_event_id=event.event_id,
        archived_at=utcnow(),
        archive_config_id=config_id,
        archive_event_id=archive_event_id,
        **copy_values(event, origin_id),
    )


def _differs(row: Appointment, wanted: dict[str, Any]) -> bool:
    return any(getattr(row, key) != value for key, value in wanted.items())


class ArchiveWriter:
    """Writes copies for one run; a concurrent run of the same window never doubles a copy."""

    def __init__(self, db: Database, providers: ProviderRegistry) -> None:
        self.db = db
        self.providers = providers

    async def write(
        self,
        *,
        config_id: int,
        source: Calendar,
        archive: Calendar,
        archive_ref: CalendarRef,
        events: Sequence[ProviderEvent],
        held: set[str],
        window: tuple[datetime, datetime],
        mode: Mode,
        on_progress: ProgressCallback | None = None,
    ) -> WriteResult:
        """Write the events; a provider failure on one event is recorded, not fatal."""
        remote = None if archive.provider == "local" else self.providers.get(archive.provider)
        # A concurrent run may insert the same event first; the unique (calendar, provider
        # event id) constraint catches it, and the retry sees that copy.
        for attempt in range(2):
            result = WriteResult()
            try:
                async with self.db.session() as session:
                    repo = AppointmentRepository(session)
                    copies = CopyRepository(session)
                    existing = await copies.copies(archive.id, [e.event_id for e in events])
                    origin = await self._origins(repo, source, events)
                    await self._write(
                        repo,
                        result,
                        remote,
                        archive_ref,
                        config_id,
                        archive.id,
                        events,
                        existing,
                        origin,
                        on_progress,
                        is_replace=mode == "replace",
                    )
                    if mode == "replace":
                        wanted = {e.event_id for e in events} | held
                        stale = [
                            row
                            for row in await copies.copies_in_window(archive.id, config_id, *window)
                            if row.provider_event_id not in wanted
                        ]
                        await self._remove(copies, result, remote, archive_ref, stale)
                return result
            except IntegrityError:
                if attempt == 1:
                    raise
                _log.info("archive run of config %s raced another run; retrying", config_id)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _origins(
        self, repo: AppointmentRepository, source: Calendar, events: Sequence[ProviderEvent]
    ) -> dict[str, int]:
        """Our ids of the source appointments (a series' for its occurrences), local sources."""
        if source.provider != "local":
            return {}
        keys = {e.series_id or e.event_id for e in events}
        return await repo.ids_by_event(source.id, keys)

    async def _write(
        self,
        repo: AppointmentRepository,
        result: WriteResult,
        remote: CalendarProvider | None,
        ref: CalendarRef,
        config_id: int,
        calendar_id: int,
        events: Sequence[ProviderEvent],
        existing: dict[str, Appointment],
        origin: dict[str, int],
        on_progress: ProgressCallback | None,
        *,
        is_replace: bool,
    ) -> None:
        added: list[Appointment] = []
        for done, event in enumerate(events, 1):
            if on_progress is not None:
                on_progress(done, len(events))
            origin_id = origin.get(event.series_id or event.event_id)
            row = existing.get(event.event_id)
            if row is not None:
                wanted = copy_values(event, origin_id)
                is_ours = row.archive_config_id == config_id
                if not (is_replace and is_ours and _differs(row, wanted)):
                    result.unchanged += 1
                    continue
                try:
                    if remote is not None:
                        row.archive_event_id = await _remote_update(remote, ref, row, event)
                except RemoteCalendarNotFound:
                    raise
                except ProviderError as exc:
                    result.errors.append(f"{event.event_id}: {exc.message}")
                    continue
                for key, value in wanted.items():
                    setattr(row, key, value)
                result.updated += 1
                continue
            archive_event_id = None
            if remote is not None:
                try:
                    archive_event_id = await remote.create_event(ref, event)
                except RemoteCalendarNotFound:
                    # Not one event's failure: the calendar is out of reach.
                    raise
                except ProviderError as exc:
                    result.errors.append(f"{event.event_id}: {exc.message}")
                    continue
            added.append(copy_of(event, calendar_id, config_id, origin_id, archive_event_id))
        await repo.add_all(added)
        result.added = len(added)

    async def _remove(
        self,
        repo: CopyRepository,
        result: WriteResult,
        remote: CalendarProvider | None,
        ref: CalendarRef,
        stale: Sequence[Appointment],
    ) -> None:
        gone = []
        for row in stale:
            if remote is not None and row.archive_event_id:
                try:
                    await remote.delete_event(ref, row.archive_event_id)
                except RemoteCalendarNotFound:
                    raise
                except ProviderError as exc:
                    result.errors.append(f"{row.provider_event_id}: {exc.message}")
                    continue
            gone.append(row.id)
        result.removed = await repo.delete_ids(gone)


async def _remote_update(
    remote: CalendarProvider, ref: CalendarRef, row: Appointment, event: ProviderEvent
) -> str:
    if row.archive_event_id:
        return await remote.update_event(ref, row.archive_event_id, event)
    return await remote.create_event(ref, event)
