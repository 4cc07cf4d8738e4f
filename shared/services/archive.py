"""Archiving: configuration CRUD, running a configuration over a window, and the action log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Actor
from shared.db import Database
from shared.errors import (
    AppError,
    Conflict,
    NotFound,
    ProviderError,
    RemoteCalendarNotFound,
    ValidationFailed,
)
from shared.models import ActionLog, Appointment, ArchiveConfiguration, Calendar, utcnow
from shared.pagination import Page, PageRequest
from shared.providers import CalendarRef, ProviderEvent, ProviderRegistry
from shared.repositories import (
    ActionLogRepository,
    AppointmentRepository,
    ArchiveConfigRepository,
    CalendarRepository,
)
from shared.representation import action_log_json, archive_config_json
from shared.services.calendars import calendar_ref

ProgressCallback = Callable[[int, int], None]
_MAX_OVERLAPS_RECORDED = 100
_log = logging.getLogger(__name__)


def default_window(config: ArchiveConfiguration, today: date) -> tuple[datetime, datetime]:
    """[today - days_back, today + days_forward] as whole days in the configuration's timezone."""
    return day_window(ZoneInfo(config.timezone), today, config.days_back, config.days_forward)


def day_window(
    tz: tzinfo, today: date, days_back: int, days_forward: int
) -> tuple[datetime, datetime]:
    """[today - days_back, today + days_forward] as whole days (midnight to midnight) in `tz`."""
    start = datetime.combine(today - timedelta(days=days_back), datetime.min.time(), tz)
    end = datetime.combine(today + timedelta(days=days_forward + 1), datetime.min.time(), tz)
    return start, end


def find_overlaps(events: Sequence[ProviderEvent]) -> list[tuple[str, str]]:
    """Pairs (earlier, later) of events whose times overlap; `events` sorted by start."""
    pairs: list[tuple[str, str]] = []
    active: list[ProviderEvent] = []
    for event in events:
        active = [a for a in active if a.end > event.start]
        pairs.extend((a.event_id, event.event_id) for a in active)
        active.append(event)
    return pairs


class ArchiveService:
    def __init__(self, db: Database, providers: ProviderRegistry) -> None:
        self.db = db
        self.providers = providers

    # -- configurations -----------------------------------------------------------------------

    async def list_configs(self, actor: Actor, page: PageRequest) -> Page[dict[str, Any]]:
        async with self.db.read_session() as session:
            result = await ArchiveConfigRepository(session).page(
                None if actor.is_admin else actor.user_id, page
            )
        return Page(
            [archive_config_json(c) for c in result.items],
            result.page,
            result.per_page,
            result.total,
        )

    async def get_config(self, actor: Actor, config_id: int) -> dict[str, Any]:
        async with self.db.read_session() as session:
            config = await self._owned_config(session, actor, config_id)
        return archive_config_json(config)

    async def create_config(self, actor: Actor, values: dict[str, Any]) -> dict[str, Any]:
        async with self.db.session() as session:
            await self._check_calendars(
                session, actor, values["source_calendar_id"], values["archive_calendar_id"]
            )
            config = await ArchiveConfigRepository(session).add(
                ArchiveConfiguration(owner_id=actor.user_id, **values)
            )
            return archive_config_json(config)

    async def update_config(
        self, actor: Actor, config_id: int, values: dict[str, Any]
    ) -> dict[str, Any]:
        async with self.db.session() as session:
            config = await self._owned_config(session, actor, config_id)
            if "source_calendar_id" in values or "archive_calendar_id" in values:
                # Checked before the row changes: a lookup would otherwise autoflush a row
                # pointing at a calendar that does not exist (an IntegrityError, a 500).
                await self._check_calendars(
                    session,
                    actor,
                    values.get("source_calendar_id", config.source_calendar_id),
                    values.get("archive_calendar_id", config.archive_calendar_id),
                )
            for key, value in values.items():
                setattr(config, key, value)
            if config.source_calendar_id == config.archive_calendar_id:
                raise ValidationFailed(
                    "invalid archive configuration: check archive_calendar_id",
                    details=[
                        {
                            "field": "archive_calendar_id",
                            "message": "must differ from source_calendar_id",
                        }
                    ],
                )
            await session.flush()
            return archive_config_json(config)

    async def delete_config(self, actor: Actor, config_id: int) -> None:
        async with self.db.session() as session:
            config = await self._owned_config(session, actor, config_id)
            await ArchiveConfigRepository(session).delete(config)

    # -- running ------------------------------------------------------------------------------

    async def run(
        self,
        actor: Actor | None,
        config_id: int,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        today: date | None = None,
        on_progress: ProgressCallback | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """Archive the configuration's window; returns the action log row it wrote.

        Private and excluded-category events are skipped, events already in the archive
        calendar (same provider event id) are counted as duplicates, so re-running a window
        archives nothing new. A provider failure still writes a `failed` log row, then raises.
        `label` names who ran it in the log when no actor does (default "system").
        """
        started = utcnow()
        clock = time.perf_counter()
        async with self.db.read_session() as session:
            if actor is None:  # scheduled jobs and the CLI act for the owner
                config = await ArchiveConfigRepository(session).get(config_id)
                if config is None:
                    raise NotFound(f"archive configuration {config_id} not found")
            else:
                config = await self._owned_config(session, actor, config_id)
            calendars = CalendarRepository(session)
            source = await calendars.get(config.source_calendar_id)
            archive = await calendars.get(config.archive_calendar_id)
            if source is None or archive is None:
                raise Conflict(f"archive configuration {config_id} refers to a deleted calendar")
            source_ref = await calendar_ref(session, source)
            archive_ref = await calendar_ref(session, archive)
        window_start, window_end = default_window(
            config, today or datetime.now(ZoneInfo(config.timezone)).date()
        )
        window_start, window_end = start or window_start, end or window_end
        if window_end <= window_start:
            raise ValidationFailed(
                "invalid archive run: check end",
                details=[{"field": "end", "message": "must be after start"}],
            )
        entry = ActionLog(
            config_id=config.id,
            actor=actor.label if actor else label or "system",
            window_start=window_start,
            window_end=window_end,
            started_at=started,
            archived=0,
            skipped=0,
            duplicate=0,
            overlap=0,
            errors=[],
            details={},
        )
        try:
            events = await self.providers.get(source.provider).list_events(
                source_ref, window_start, window_end
            )
        except AppError as exc:
            entry.status = "failed"
            entry.errors = [exc.message]
            await self._write_log(entry, clock)
            raise
        try:
            await self._archive(config, source, archive_ref, archive, events, entry, on_progress)
        except RemoteCalendarNotFound as exc:
            entry.status = "failed"
            entry.errors = [exc.message]
            await self._write_log(entry, clock)
            raise
        return await self._write_log(entry, clock)

    async def _archive(
        self,
        config: ArchiveConfiguration,
        source: Calendar,
        archive_ref: CalendarRef,
        archive: Calendar,
        events: list[ProviderEvent],
        entry: ActionLog,
        on_progress: ProgressCallback | None,
    ) -> None:
        excluded = {c.casefold() for c in config.excluded_categories or ()}
        candidates = []
        for event in events:
            if event.is_private or any(c.casefold() in excluded for c in event.categories):
                entry.skipped += 1
            else:
                candidates.append(event)
        overlaps = find_overlaps(candidates)
        entry.overlap = len({later for _, later in overlaps} | {first for first, _ in overlaps})
        entry.details = {
            "overlaps": [list(p) for p in overlaps[:_MAX_OVERLAPS_RECORDED]],
            "events_read": len(events),
        }
        errors: list[str] = []
        remote = None if archive.provider == "local" else self.providers.get(archive.provider)
        # A concurrent run of the same window may insert the same event first; the unique
        # (calendar, provider event id) constraint catches it and we count it as a duplicate.
        for attempt in range(2):
            try:
                async with self.db.session() as session:
                    repo = AppointmentRepository(session)
                    existing = await repo.existing_event_ids(
                        archive.id, [e.event_id for e in candidates]
                    )
                    origin = (
                        await repo.ids_by_event(source.id, [e.event_id for e in candidates])
                        if source.provider == "local"
                        else {}
                    )
                    fresh = [e for e in candidates if e.event_id not in existing]
                    copies = []
                    for done, event in enumerate(fresh, 1):
                        if remote is not None:
                            try:
                                await remote.create_event(archive_ref, event)
                            except RemoteCalendarNotFound:
                                # Not one event's failure: the calendar is out of reach.
                                raise
                            except ProviderError as exc:
                                errors.append(f"{event.event_id}: {exc.message}")
                                continue
                        copies.append(_copy(event, archive.id, origin.get(event.event_id)))
                        if on_progress is not None:
                            on_progress(done, len(fresh))
                    await repo.add_all(copies)
                entry.archived = len(copies)
                entry.duplicate = len(candidates) - len(fresh)
                break
            except IntegrityError:
                if attempt == 1:
                    raise
                _log.info("archive run of config %s raced another run; retrying", config.id)
                errors.clear()
        entry.errors = errors
        entry.status = "partial" if errors else "success"

    async def _write_log(self, entry: ActionLog, clock: float) -> dict[str, Any]:
        entry.finished_at = utcnow()
        entry.duration_ms = round((time.perf_counter() - clock) * 1000)
        async with self.db.session() as session:
            await ActionLogRepository(session).add(entry)
            return action_log_json(entry)

    async def action_log(
        self, actor: Actor, config_id: int | None, page: PageRequest
    ) -> Page[dict[str, Any]]:
        """Action log rows, newest first, of the actor's configurations (all for admins)."""
        async with self.db.read_session() as session:
            if config_id is not None:
                await self._owned_config(session, actor, config_id)
            result = await ActionLogRepository(session).page(
                owner_id=None if actor.is_admin else actor.user_id, config_id=config_id, page=page
            )
        return Page(
            [action_log_json(e) for e in result.items], result.page, result.per_page, result.total
        )

    async def active_config_ids(self) -> list[int]:
        async with self.db.read_session() as session:
            return [c.id for c in await ArchiveConfigRepository(session).active()]

    # -- rules --------------------------------------------------------------------------------

    async def _owned_config(
        self, session: AsyncSession, actor: Actor, config_id: int
    ) -> ArchiveConfiguration:
        config = await ArchiveConfigRepository(session).get(config_id)
        if config is None or (config.owner_id != actor.user_id and not actor.is_admin):
            raise NotFound(f"archive configuration {config_id} not found")
        return config

    async def _check_calendars(
        self, session: AsyncSession, actor: Actor, source_id: int, archive_id: int
    ) -> None:
        repo = CalendarRepository(session)
        problems = []
        for field, calendar_id in (
            ("source_calendar_id", source_id),
            ("archive_calendar_id", archive_id),
        ):
            calendar = await repo.get(calendar_id)
            if calendar is None or (calendar.owner_id != actor.user_id and not actor.is_admin):
                problems.append({"field": field, "message": f"calendar {calendar_id} not found"})
        if problems:
            raise ValidationFailed(
                "invalid archive configuration: unknown calendar", details=problems
            )


def _copy(event: ProviderEvent, calendar_id: int, origin_id: int | None) -> Appointment:
    return Appointment(
        calendar_id=calendar_id,
        subject=event.subject,
        start_at=event.start,
        end_at=event.end,
        location=event.location,
        categories=list(event.categories),
        is_private=event.is_private,
        provider_event_id=event.event_id,
        archived_from_id=origin_id,
    )
