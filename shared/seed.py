"""Demo data: an admin, calendars, ~500 appointments (overlaps, a recurring meeting), an archive
configuration with its nightly job, and a timesheet configuration."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Passwords
from shared.db import Database
from shared.models import Appointment, ArchiveConfiguration, Calendar, Job, User
from shared.schedules import next_fire, parse_schedule

DEMO_EMAIL = "admin@example.com"
DEMO_PASSWORD = "admin-demo-password"
_SUBJECTS = [
    "Stand-up",
    "Planning",
    "1:1",
    "Customer call",
    "Design review",
    "Lunch",
    "Interview",
    "Retro",
    "Budget review",
    "Training",
    "Dentist",
    "Board meeting",
]
_CATEGORIES = ["Work", "Personal", "Travel", "Focus", "Customer", "Billable", "Non-billable"]
# Mostly busy and of normal importance; the rest lets the overlap rules decide some overlaps.
_SHOW_AS = ["busy"] * 14 + ["tentative"] * 3 + ["free"] * 2 + ["oof"]
_IMPORTANCE = ["normal"] * 8 + ["high", "low"]


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str
    created: bool
    config_id: int
    config_ids: tuple[int, ...] = ()


async def seed_demo(db: Database, *, today: date | None = None, count: int = 500) -> DemoLogin:
    """Create the demo data once; a second call changes nothing and returns the same login."""
    async with db.session() as session:
        existing = await session.scalar(select(User).where(User.email == DEMO_EMAIL))
        if existing is not None:
            config_id = await session.scalar(
                select(ArchiveConfiguration.id).where(ArchiveConfiguration.owner_id == existing.id)
            )
            ids = tuple(
                await session.scalars(
                    select(ArchiveConfiguration.id)
                    .where(ArchiveConfiguration.owner_id == existing.id)
                    .order_by(ArchiveConfiguration.id)
                )
            )
            return DemoLogin(DEMO_EMAIL, DEMO_PASSWORD, False, config_id or 0, ids)
        admin = User(
            email=DEMO_EMAIL,
            name="Demo Admin",
            is_admin=True,
            password_hash=await asyncio.to_thread(Passwords().hash, DEMO_PASSWORD),
            mailbox=DEMO_EMAIL,
        )
        session.add(admin)
        await session.flush()
        source = Calendar(owner_id=admin.id, name="Work", role="source", provider="local")
        archive = Calendar(owner_id=admin.id, name="Archive", role="archive", provider="local")
        timesheet = Calendar(owner_id=admin.id, name="Timesheet", role="archive", provider="local")
        session.add_all([source, archive, timesheet])
        await session.flush()
        day = today or datetime.now(UTC).date()
        session.add_all(_appointments(source.id, day, count))
        await _recurring_meeting(session, source.id, day)
        config = ArchiveConfiguration(
            owner_id=admin.id,
            name="Work to Archive",
            source_calendar_id=source.id,
            archive_calendar_id=archive.id,
            timezone="Europe/London",
            is_active=True,
            schedule="daily",
            days_back=30,
            days_forward=0,
            excluded_categories=["Personal"],
            is_default=True,  # the admin's first configuration, as the service would make it
        )
        timesheet_config = ArchiveConfiguration(
            owner_id=admin.id,
            name="Timesheet",
            source_calendar_id=source.id,
            archive_calendar_id=timesheet.id,
            timezone="Europe/London",
            is_active=True,
            days_back=30,
            days_forward=0,
            excluded_categories=[],
            purpose="timesheet",
            timesheet_categories=["Billable", "Non-billable", "Travel"],
        )
        session.add_all([config, timesheet_config])
        await session.flush()
        # The demo configuration archives itself every night, as the original app did.
        session.add(
            Job(
                owner_id=admin.id,
                archive_config_id=config.id,
                schedule="daily@02:00",
                timezone=config.timezone,
                enabled=True,
                misfire="run_once",
                next_run_at=next_fire(
                    parse_schedule("daily@02:00"), ZoneInfo(config.timezone), datetime.now(UTC)
                ),
            )
        )
        return DemoLogin(
            DEMO_EMAIL, DEMO_PASSWORD, True, config.id, (config.id, timesheet_config.id)
        )


def _appointments(calendar_id: int, today: date, count: int) -> list[Appointment]:
    rng = random.Random(20261129)  # fixed seed: the same demo data on every machine
    rows = []
    for n in range(count):
        day = today + timedelta(days=rng.randint(-60, 30))
        start = datetime.combine(day, time(rng.randint(7, 18), rng.choice([0, 15, 30, 45])), UTC)
        # Every tenth appointment starts inside the previous one: the demo has overlaps.
        if n % 10 == 9 and rows:
            start = rows[-1].start_at + timedelta(minutes=15)
        end = start + timedelta(minutes=rng.choice([15, 30, 45, 60, 90]))
        rows.append(
            Appointment(
                calendar_id=calendar_id,
                subject=rng.choice(_SUBJECTS),
                start_at=start,
                end_at=end,
                location=rng.choice(["", "Room 1", "Room 2", "Online"]),
                categories=rng.sample(_CATEGORIES, rng.randint(0, 2)),
                is_private=(private := rng.random() < 0.05),
                sensitivity="private" if private else "normal",
                show_as=rng.choice(_SHOW_AS),
                importance=rng.choice(_IMPORTANCE),
                provider_event_id=f"demo-{n:04d}",
            )
        )
    return rows


async def _recurring_meeting(session: AsyncSession, calendar_id: int, today: date) -> None:
    """A weekly Monday meeting (London time) since eight weeks ago: one Monday cancelled,
    one moved to the Tuesday (an exception)."""
    zone = ZoneInfo("Europe/London")
    monday = today - timedelta(days=today.weekday() + 56)
    start = datetime.combine(monday, time(9, 30), zone)
    cancelled = start + timedelta(weeks=2)
    moved = start + timedelta(weeks=4)
    series = Appointment(
        calendar_id=calendar_id,
        subject="Team sync",
        start_at=start,
        end_at=start + timedelta(minutes=45),
        location="Online",
        categories=["Work", "Non-billable"],
        provider_event_id="demo-team-sync",
        recurrence={
            "rrule": "FREQ=WEEKLY;BYDAY=MO",
            "timezone": zone.key,
            "exdates": [cancelled.astimezone(UTC).isoformat(timespec="seconds")],
        },
    )
    session.add(series)
    await session.flush()
    tuesday = moved + timedelta(days=1)
    session.add(
        Appointment(
            calendar_id=calendar_id,
            subject="Team sync (moved to Tuesday)",
            start_at=tuesday,
            end_at=tuesday + timedelta(minutes=45),
            location="Online",
            categories=["Work", "Non-billable"],
            provider_event_id="demo-team-sync-moved",
            series_id=series.id,
            original_start=moved,
        )
    )
