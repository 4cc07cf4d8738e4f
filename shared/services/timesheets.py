"""Timesheets: hours of a timesheet configuration's archived appointments, per category and day."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.archive_repositories import CopyRepository
from shared.auth import Actor
from shared.db import Database
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.inputs.archive import TimesheetQuery
from shared.repositories import ArchiveConfigRepository
from shared.timesheet_rules import MAX_DAYS, TimedEntry, summarise, timesheet_category, to_csv

__all__ = ["TimesheetService"]


class TimesheetService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def summary(
        self, actor: Actor, config_id: int, query: TimesheetQuery, *, today: date | None = None
    ) -> dict[str, Any]:
        """Hours per category and per day in the configuration's zone; the days default to the
        configuration's window. 409 unless the configuration's purpose is `timesheet`."""
        async with self.db.read_session() as session:
            config = await ArchiveConfigRepository(session).get(config_id)
            if config is None or (config.owner_id != actor.user_id and not actor.is_admin):
                raise NotFound(f"archive configuration {config_id} not found")
            if config.purpose != "timesheet":
                raise Conflict(
                    f"archive configuration {config_id} is not a timesheet configuration "
                    f"(its purpose is {config.purpose}); set purpose to timesheet"
                )
            zone = ZoneInfo(config.timezone)
            today = today or datetime.now(zone).date()
            first = query.first_day or today - timedelta(days=config.days_back)
            last = query.last_day or (
                today + timedelta(days=config.days_forward)
                if query.first_day is None
                else max(first, today)
            )
            if last < first or (last - first).days + 1 > MAX_DAYS:
                raise ValidationFailed(
                    "invalid query: check start",
                    details=[
                        {
                            "field": "start",
                            "message": f"the days {first} to {last} are not a range of 1 to "
                            f"{MAX_DAYS} days",
                        }
                    ],
                )
            categories = list(config.timesheet_categories or [])
            rows = await CopyRepository(session).archived_by(
                config.id,
                datetime.combine(first, time(), zone),
                datetime.combine(last + timedelta(days=1), time(), zone),
            )
        entries = []
        for row in rows:
            category = timesheet_category(row.categories or (), row.sensitivity, categories)
            if category is not None:
                entries.append(TimedEntry(row.start_at, row.end_at, category, row.is_all_day))
        return {"config_id": config.id, **summarise(entries, categories, zone, first, last)}

    async def csv(
        self, actor: Actor, config_id: int, query: TimesheetQuery, *, today: date | None = None
    ) -> tuple[str, str]:
        """The summary as CSV text, and a file name for it."""
        summary = await self.summary(actor, config_id, query, today=today)
        name = f"timesheet-{config_id}-{summary['start']}-{summary['end']}.csv"
        return to_csv(summary), name
