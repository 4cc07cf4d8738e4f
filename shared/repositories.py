"""Async repositories: one per aggregate, each a thin set of queries over one AsyncSession."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import (
    ActionLog,
    ApiToken,
    Appointment,
    ArchiveConfiguration,
    AuditLog,
    Calendar,
    Job,
    JobRun,
    SchedulerInstance,
    User,
    UserSession,
)
from shared.pagination import Page, PageRequest

MAX_ID = 2**31 - 1  # ids are INTEGER columns; a larger one names no row (and cannot be bound)


def _is_id(value: int) -> bool:
    return 0 < value <= MAX_ID


async def _paginate(session: AsyncSession, query: Select[Any], page: PageRequest) -> Page[Any]:
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    if page.offset >= (total or 0):
        # Past the end there is nothing to read; and an offset beyond 2**63 (page=10**20)
        # cannot even be bound by either database: it was a 500 instead of an empty page.
        return Page([], page.page, page.per_page, total or 0)
    rows = await session.scalars(query.limit(page.per_page).offset(page.offset))
    return Page(list(rows), page.page, page.per_page, total or 0)


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id) if _is_id(user_id) else None

    async def by_email(self, email: str) -> User | None:
        return await self.session.scalar(select(User).where(User.email == email.lower()))

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def page(self, page: PageRequest) -> Page[User]:
        """Every user, by email (the admin page)."""
        return await _paginate(self.session, select(User).order_by(User.email), page)


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def live(self, sid: str, user_id: int, since: datetime) -> UserSession | None:
        """The session `sid` of `user_id` if not revoked and started after `since`."""
        if not _is_id(user_id):
            return None
        return await self.session.scalar(
            select(UserSession).where(
                UserSession.id == sid,
                UserSession.user_id == user_id,
                UserSession.revoked_at.is_(None),
                UserSession.created_at > since,
            )
        )

    async def add(self, row: UserSession) -> UserSession:
        self.session.add(row)
        await self.session.flush()
        return row

    async def prune(self, user_id: int, before: datetime) -> None:
        """Delete `user_id`'s sessions started before `before` (expired whatever their state)."""
        await self.session.execute(
            delete(UserSession).where(
                UserSession.user_id == user_id, UserSession.created_at < before
            )
        )

    async def revoke(self, sid: str, at: datetime) -> None:
        await self.session.execute(
            update(UserSession)
            .where(UserSession.id == sid, UserSession.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def revoke_all(self, user_id: int, at: datetime, *, keep: str | None = None) -> int:
        """Revoke every live session of `user_id` except `keep`; how many were revoked."""
        query = update(UserSession).where(
            UserSession.user_id == user_id, UserSession.revoked_at.is_(None)
        )
        if keep is not None:
            query = query.where(UserSession.id != keep)
        result = await self.session.execute(query.values(revoked_at=at))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


class TokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def active_by_hash(self, token_hash: str) -> ApiToken | None:
        return await self.session.scalar(
            select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
        )

    async def get(self, token_id: int) -> ApiToken | None:
        return await self.session.get(ApiToken, token_id) if _is_id(token_id) else None

    async def listed(self, user_id: int | None, *, include_revoked: bool) -> list[ApiToken]:
        """Tokens of `user_id` (everyone's when None), oldest first."""
        query = select(ApiToken).order_by(ApiToken.id)
        if user_id is not None:
            query = query.where(ApiToken.user_id == user_id)
        if not include_revoked:
            query = query.where(ApiToken.revoked_at.is_(None))
        return list(await self.session.scalars(query))

    async def add(self, token: ApiToken) -> ApiToken:
        self.session.add(token)
        await self.session.flush()
        return token

    async def revoke_all(self, user_id: int, at: datetime) -> list[str]:
        """Revoke every live token of `user_id`; the hashes of those revoked."""
        rows = await self.session.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        )
        hashes = []
        for row in rows:
            row.revoked_at = at
            hashes.append(row.token_hash)
        await self.session.flush()
        return hashes


class CalendarRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, calendar_id: int) -> Calendar | None:
        return await self.session.get(Calendar, calendar_id) if _is_id(calendar_id) else None

    async def page(self, owner_id: int | None, page: PageRequest) -> Page[Calendar]:
        query = select(Calendar).order_by(Calendar.id)
        if owner_id is not None:
            query = query.where(Calendar.owner_id == owner_id)
        return await _paginate(self.session, query, page)

    async def owned(self, owner_id: int) -> list[Calendar]:
        """Every calendar of `owner_id`, by id."""
        rows = await self.session.scalars(
            select(Calendar).where(Calendar.owner_id == owner_id).order_by(Calendar.id)
        )
        return list(rows)

    async def by_ids(self, ids: Iterable[int]) -> dict[int, Calendar]:
        """The calendars with the given ids, by id."""
        wanted = [i for i in set(ids) if _is_id(i)]
        if not wanted:
            return {}
        rows = await self.session.scalars(select(Calendar).where(Calendar.id.in_(wanted)))
        return {row.id: row for row in rows}

    async def add(self, calendar: Calendar) -> Calendar:
        self.session.add(calendar)
        await self.session.flush()
        return calendar

    async def delete(self, calendar: Calendar) -> None:
        await self.session.delete(calendar)
        await self.session.flush()

    async def is_referenced(self, calendar_id: int) -> bool:
        query = select(ArchiveConfiguration.id).where(
            (ArchiveConfiguration.source_calendar_id == calendar_id)
            | (ArchiveConfiguration.archive_calendar_id == calendar_id)
        )
        return (await self.session.scalar(query.limit(1))) is not None


class AppointmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, appointment_id: int) -> Appointment | None:
        return (
            await self.session.get(Appointment, appointment_id) if _is_id(appointment_id) else None
        )

    async def in_window(
        self, calendar_id: int, start: datetime, end: datetime
    ) -> list[Appointment]:
        rows = await self.session.scalars(
            select(Appointment)
            .where(
                Appointment.calendar_id == calendar_id,
                Appointment.end_at > start,
                Appointment.start_at < end,
            )
            .order_by(Appointment.start_at, Appointment.id)
        )
        return list(rows)

    async def existing_event_ids(self, calendar_id: int, event_ids: Iterable[str]) -> set[str]:
        wanted = list(event_ids)
        found: set[str] = set()
        # Chunk the IN list: SQLite caps bound parameters per statement.
        for i in range(0, len(wanted), 500):
            rows = await self.session.scalars(
                select(Appointment.provider_event_id).where(
                    Appointment.calendar_id == calendar_id,
                    Appointment.provider_event_id.in_(wanted[i : i + 500]),
                )
            )
            found.update(rows)
        return found

    async def ids_by_event(self, calendar_id: int, event_ids: Iterable[str]) -> dict[str, int]:
        wanted = list(event_ids)
        found: dict[str, int] = {}
        for i in range(0, len(wanted), 500):
            rows = await self.session.execute(
                select(Appointment.provider_event_id, Appointment.id).where(
                    Appointment.calendar_id == calendar_id,
                    Appointment.provider_event_id.in_(wanted[i : i + 500]),
                )
            )
            found.update({event_id: row_id for event_id, row_id in rows})
        return found

    async def add(self, appointment: Appointment) -> Appointment:
        self.session.add(appointment)
        await self.session.flush()
        return appointment

    async def add_all(self, appointments: Sequence[Appointment]) -> None:
        self.session.add_all(appointments)
        await self.session.flush()

    async def delete(self, appointment: Appointment) -> None:
        await self.session.delete(appointment)
        await self.session.flush()


class ArchiveConfigRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, config_id: int) -> ArchiveConfiguration | None:
        return (
            await self.session.get(ArchiveConfiguration, config_id) if _is_id(config_id) else None
        )

    async def page(self, owner_id: int | None, page: PageRequest) -> Page[ArchiveConfiguration]:
        query = select(ArchiveConfiguration).order_by(ArchiveConfiguration.id)
        if owner_id is not None:
            query = query.where(ArchiveConfiguration.owner_id == owner_id)
        return await _paginate(self.session, query, page)

    async def active(self) -> list[ArchiveConfiguration]:
        rows = await self.session.scalars(
            select(ArchiveConfiguration)
            .where(ArchiveConfiguration.is_active.is_(True))
            .order_by(ArchiveConfiguration.id)
        )
        return list(rows)

    async def add(self, config: ArchiveConfiguration) -> ArchiveConfiguration:
        self.session.add(config)
        await self.session.flush()
        return config

    async def delete(self, config: ArchiveConfiguration) -> None:
        await self.session.delete(config)
        await self.session.flush()


class ActionLogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, entry: ActionLog) -> ActionLog:
        self.session.add(entry)
        await self.session.flush()
        return entry

    async def page(
        self, *, owner_id: int | None, config_id: int | None, page: PageRequest
    ) -> Page[ActionLog]:
        query = select(ActionLog).order_by(ActionLog.id.desc())
        if config_id is not None:
            query = query.where(ActionLog.config_id == config_id)
        if owner_id is not None:
            owned = select(ArchiveConfiguration.id).where(ArchiveConfiguration.owner_id == owner_id)
            query = query.where(ActionLog.config_id.in_(owned))
        return await _paginate(self.session, query, page)


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, entry: AuditLog) -> AuditLog:
        self.session.add(entry)
        await self.session.flush()
        return entry

    async def page(
        self,
        *,
        target: str | None,
        page: PageRequest,
        actor: str | None = None,
        action: str | None = None,
    ) -> Page[AuditLog]:
        """Audit rows, newest first; `target`, `actor` exact, `action` exact or a `prefix.`."""
        query = select(AuditLog).order_by(AuditLog.id.desc())
        if target is not None:
            query = query.where(AuditLog.target == target)
        if actor is not None:
            query = query.where(AuditLog.actor == actor)
        if action is not None:
            if action.endswith("."):
                query = query.where(AuditLog.action.startswith(action, autoescape=True))
            else:
                query = query.where(AuditLog.action == action)
        return await _paginate(self.session, query, page)


ACTIVE_RUN_STATUSES = ("queued", "running")


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, job_id: int, *, for_update: bool = False) -> Job | None:
        if not _is_id(job_id):
            return None
        # FOR UPDATE (PostgreSQL; SQLite has one writer anyway) orders everyone adding a run
        # of this job: a trigger, a claim, a retry.
        query = select(Job).where(Job.id == job_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def page(self, owner_id: int | None, page: PageRequest) -> Page[Job]:
        query = select(Job).order_by(Job.id)
        if owner_id is not None:
            query = query.where(Job.owner_id == owner_id)
        return await _paginate(self.session, query, page)

    async def add(self, job: Job) -> Job:
        self.session.add(job)
        await self.session.flush()
        return job

    async def delete(self, job: Job) -> None:
        await self.session.delete(job)
        await self.session.flush()

    async def last_runs(self, job_ids: Sequence[int]) -> dict[int, JobRun]:
        """The newest run of each job (by id), in one query."""
        if not job_ids:
            return {}
        newest = (
            select(func.max(JobRun.id))
            .where(JobRun.job_id.in_(job_ids))
            .group_by(JobRun.job_id)
            .scalar_subquery()
        )
        rows = await self.session.scalars(select(JobRun).where(JobRun.id.in_(newest)))
        return {run.job_id: run for run in rows}

    async def active_run(self, job_id: int) -> JobRun | None:
        return await self.session.scalar(
            select(JobRun).where(JobRun.job_id == job_id, JobRun.status.in_(ACTIVE_RUN_STATUSES))
        )

    async def runs(self, job_id: int, page: PageRequest) -> Page[JobRun]:
        query = select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.id.desc())
        return await _paginate(self.session, query, page)

    async def add_run(self, run: JobRun) -> JobRun:
        self.session.add(run)
        await self.session.flush()
        return run

    async def next_due(self, owner_id: int | None, limit: int) -> list[Job]:
        query = (
            select(Job)
            .where(Job.enabled.is_(True), Job.next_run_at.is_not(None))
            .order_by(Job.next_run_at, Job.id)
            .limit(limit)
        )
        if owner_id is not None:
            query = query.where(Job.owner_id == owner_id)
        return list(await self.session.scalars(query))

    async def count_runs(self, owner_id: int | None, status: str) -> int:
        query = select(func.count(JobRun.id)).where(JobRun.status == status)
        if owner_id is not None:
            query = query.join(Job, Job.id == JobRun.job_id).where(Job.owner_id == owner_id)
        return (await self.session.scalar(query)) or 0

    async def schedulers_seen_since(self, since: datetime) -> list[SchedulerInstance]:
        rows = await self.session.scalars(
            select(SchedulerInstance)
            .where(SchedulerInstance.last_tick_at >= since)
            .order_by(SchedulerInstance.started_at, SchedulerInstance.id)
        )
        return list(rows)
