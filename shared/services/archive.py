"""Archiving: running a configuration over a window (rules, overlaps, decisions, append or
replace) and the action log; the configurations themselves live in `archive_configs`."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from shared.archive_plan import RunPlan, plan_run
from shared.archive_repositories import ActionItemRepository
from shared.auth import Actor
from shared.db import Database
from shared.delegation import acting_for, current_delegate
from shared.errors import AppError, Conflict, NotFound, RemoteCalendarNotFound, ValidationFailed
from shared.models import ActionItem, ActionLog, ArchiveConfiguration, utcnow
from shared.overlaps import find_overlaps
from shared.pagination import Page, PageRequest
from shared.providers import ProviderRegistry
from shared.repositories import (
    ActionLogRepository,
    ArchiveConfigRepository,
    CalendarRepository,
)
from shared.representation import action_log_json
from shared.services.action_items import load_decisions, record_conflicts
from shared.services.archive_configs import ArchiveConfigurations
from shared.services.archive_writer import ArchiveWriter, WriteResult
from shared.services.calendars import calendar_ref

__all__ = ["ArchiveService", "day_window", "default_window", "find_overlaps"]

ProgressCallback = Callable[[int, int], None]
_MAX_RECORDED = 100


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


class ArchiveService(ArchiveConfigurations):
    """Configurations (see `ArchiveConfigurations`), their runs and the action log."""

    def __init__(self, db: Database, providers: ProviderRegistry) -> None:
        super().__init__(db, providers)
        self.writer = ArchiveWriter(db, providers)

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
        mode: Literal["append", "replace"] | None = None,
    ) -> dict[str, Any]:
        """Archive the configuration's window; returns the action log row it wrote.

        Private and excluded events are skipped (a timesheet keeps business time only);
        overlaps are resolved by the rules unless allowed, and those left open become action
        items whose events wait for a decision. `mode` (default: the configuration's) appends
        new events, or replaces the window's copies with the source's; re-running a window
        changes nothing. A provider failure still writes a `failed` log row, then raises.
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
        # Graph calls use the caller's delegated token; a scheduled run has set its job's
        # owner already, and the command line acts with the configuration's owner's.
        delegate = actor.user_id if actor else current_delegate() or config.owner_id
        with acting_for(delegate):
            return await self._run(
                actor, config, started, clock, start, end, today, on_progress, label, mode
            )

    async def _run(
        self,
        actor: Actor | None,
        config: ArchiveConfiguration,
        started: datetime,
        clock: float,
        start: datetime | None,
        end: datetime | None,
        today: date | None,
        on_progress: ProgressCallback | None,
        label: str | None,
        mode: Literal["append", "replace"] | None,
    ) -> dict[str, Any]:
        config_id = config.id
        async with self.db.read_session() as session:
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
            decisions, open_items = await load_decisions(
                session, config.id, window_start, window_end
            )
        who = actor.label if actor else label or "system"
        entry = ActionLog(
            config_id=config.id,
            actor=who,
            window_start=window_start,
            window_end=window_end,
            started_at=started,
            mode=mode or config.mode,
            archived=0,
            skipped=0,
            duplicate=0,
            overlap=0,
            added=0,
            updated=0,
            removed=0,
            unchanged=0,
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
        plan = plan_run(
            events,
            excluded_categories=config.excluded_categories or (),
            allow_overlaps=config.allow_overlaps,
            purpose=config.purpose,
            timesheet_categories=config.timesheet_categories or (),
            decisions=decisions,
        )
        try:
            result = await self.writer.write(
                config_id=config.id,
                source=source,
                archive=archive,
                archive_ref=archive_ref,
                events=plan.selected,
                held=plan.held_ids,
                window=(window_start, window_end),
                mode="replace" if entry.mode == "replace" else "append",
                on_progress=on_progress,
            )
        except RemoteCalendarNotFound as exc:
            entry.status = "failed"
            entry.errors = [exc.message]
            await self._write_log(entry, clock)
            raise
        _count(entry, plan, result, len(events))
        return await self._write_log(entry, clock, plan=plan, open_items=open_items)

    async def _write_log(
        self,
        entry: ActionLog,
        clock: float,
        *,
        plan: RunPlan | None = None,
        open_items: dict[str, ActionItem] | None = None,
    ) -> dict[str, Any]:
        """The log row and the run's action items, in one transaction."""
        entry.finished_at = utcnow()
        entry.duration_ms = round((time.perf_counter() - clock) * 1000)
        async with self.db.session() as session:
            await ActionLogRepository(session).add(entry)
            if plan is not None and entry.config_id is not None:
                # Re-read in this session, still open: another run or a person may have
                # resolved one since the run read it.
                items = {}
                for key, item in (open_items or {}).items():
                    fresh = await ActionItemRepository(session).get(item.id, for_update=True)
                    if fresh is not None and fresh.state == "open":
                        items[key] = fresh
                ids = await record_conflicts(
                    session,
                    config_id=entry.config_id,
                    log_id=entry.id,
                    actor=entry.actor,
                    conflicts=plan.conflicts,
                    open_items=items,
                    window=(entry.window_start, entry.window_end),
                )
                entry.details = {**entry.details, "action_items": ids}
                await session.flush()
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


def _count(entry: ActionLog, plan: RunPlan, result: WriteResult, read: int) -> None:
    entry.skipped = len(plan.skipped)
    entry.overlap = plan.overlap_count
    entry.added, entry.updated = result.added, result.updated
    entry.removed, entry.unchanged = result.removed, result.unchanged
    # The counts the log had before replace mode: archived is added, duplicate unchanged.
    entry.archived, entry.duplicate = result.added, result.unchanged
    entry.errors = result.errors
    entry.status = "partial" if result.errors else "success"
    entry.details = {
        "events_read": read,
        "overlaps": [list(p) for p in plan.overlaps[:_MAX_RECORDED]],
        "yielded": [
            {"event_id": y.loser, "to": y.winner, "rule": y.rule}
            for y in plan.yielded[:_MAX_RECORDED]
        ],
        "declined": plan.declined[:_MAX_RECORDED],
        "held": sorted(plan.held_ids)[:_MAX_RECORDED],
    }
