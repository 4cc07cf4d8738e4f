"""SQLAlchemy 2 models: users and their Microsoft accounts, calendars, archiving, jobs, audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored as UTC; SQLite keeps no offset, so we restore it."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:  # PostgreSQL's drivers hand back UTC already
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        # SQLite hands back naive UTC text ("2026-10-03 08:00:00.000000"). Read with its offset
        # appended, the C parser returns it aware in UTC directly: a tenth of the time of
        # SQLAlchemy's generic regex plus a replace(tzinfo=...), on every timestamp of a page.
        parse = datetime.fromisoformat

        def process(value: Any) -> datetime | None:
            if value is None:
                return None
            if isinstance(value, str):
                try:
                    return parse(value + "+00:00")
                except ValueError:  # text written with an offset of its own
                    value = parse(value)
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

        return process


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(300))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The remote mailbox whose calendars this user may reach (the email unless set otherwise).
    mailbox: Mapped[str | None] = mapped_column(String(320), default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    # IANA zone the web pages show times in; None follows the browser (UTC without JavaScript).
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None

    @property
    def calendar_mailbox(self) -> str:
        """The mailbox whose remote calendars this user may reach."""
        return self.mailbox or self.email


class UserSession(Base):
    """A signed-in browser session; the signed cookie names it, the row keeps it revocable."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(lazy="joined")


class Calendar(Base):
    __tablename__ = "calendars"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # source | archive
    provider: Mapped[str] = mapped_column(String(16), default="local")  # local | graph
    provider_id: Mapped[str | None] = mapped_column(String(300), default=None)
    # The remote mailbox holding this calendar when it is not the owner's own (admins only:
    # `msgraph://users/<address>/calendars/...`); None means the owner's mailbox.
    mailbox: Mapped[str | None] = mapped_column(String(320), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        UniqueConstraint("calendar_id", "provider_event_id"),
        Index("ix_appointments_calendar_start", "calendar_id", "start_at"),
        Index("ix_appointments_archive_config_start", "archive_config_id", "start_at"),
        Index("ix_appointments_series_id", "series_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendars.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(500))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    location: Mapped[str] = mapped_column(String(500), default="")
    categories: Mapped[list[Any]] = mapped_column(default=list)
    is_private: Mapped[bool] = mapped_column(Boolean, default=False)
    provider_event_id: Mapped[str] = mapped_column(String(300))
    archived_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="SET NULL"), default=None
    )
    # free | tentative | busy | oof | workingElsewhere
    show_as: Mapped[str] = mapped_column(String(20), default="busy")
    importance: Mapped[str] = mapped_column(String(8), default="normal")  # low | normal | high
    # normal | personal | private | confidential (is_private: private or confidential)
    sensitivity: Mapped[str] = mapped_column(String(16), default="normal")
    is_all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    # A series master: {"rrule", "timezone", "exdates"}; its occurrences are expanded on read.
    recurrence: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # An exception: the series it belongs to and the occurrence (start) it replaces.
    series_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), default=None
    )
    original_start: Mapped[datetime | None] = mapped_column(default=None)
    # Set on copies written by an archive run: they are immutable (replace mode aside).
    archived_at: Mapped[datetime | None] = mapped_column(default=None)
    archive_config_id: Mapped[int | None] = mapped_column(
        ForeignKey("archive_configurations.id", ondelete="SET NULL"), default=None
    )
    # The id the archive calendar's remote provider gave the copy (graph archives).
    archive_event_id: Mapped[str | None] = mapped_column(String(300), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def is_archived_copy(self) -> bool:
        return self.archived_at is not None


# The columns an appointment is shown with, in the order `shared.representation` reads them
# from a row: read-only pages select exactly these (see `shared.appointment_pages`).
APPOINTMENT_COLUMNS = (
    "id",
    "calendar_id",
    "subject",
    "start_at",
    "end_at",
    "location",
    "categories",
    "is_private",
    "show_as",
    "importance",
    "sensitivity",
    "is_all_day",
    "recurrence",
    "series_id",
    "original_start",
    "provider_event_id",
    "archived_from_id",
    "archive_config_id",
    "archived_at",
    "created_at",
    "updated_at",
)


# A user has at most one default configuration: the database refuses a second (a partial
# unique index, on SQLite and PostgreSQL alike), whichever request tries to add it.
_DEFAULT_CONFIG = "is_default"


class ArchiveConfiguration(Base):
    __tablename__ = "archive_configurations"
    __table_args__ = (
        Index(
            "ix_archive_configurations_one_default",
            "owner_id",
            unique=True,
            sqlite_where=text(_DEFAULT_CONFIG),
            postgresql_where=text(_DEFAULT_CONFIG),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    source_calendar_id: Mapped[int] = mapped_column(ForeignKey("calendars.id", ondelete="RESTRICT"))
    archive_calendar_id: Mapped[int] = mapped_column(
        ForeignKey("calendars.id", ondelete="RESTRICT")
    )
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Deprecated: never read. Jobs (the `jobs` table) schedule archive runs.
    schedule: Mapped[str | None] = mapped_column(String(100), default=None)
    days_back: Mapped[int] = mapped_column(Integer, default=7)
    days_forward: Mapped[int] = mapped_column(Integer, default=0)
    excluded_categories: Mapped[list[Any]] = mapped_column(default=list)
    allow_overlaps: Mapped[bool] = mapped_column(Boolean, default=False)
    mode: Mapped[str] = mapped_column(String(8), default="append")  # append | replace
    purpose: Mapped[str] = mapped_column(String(16), default="general")  # general | timesheet
    # Timesheet categories in order: an appointment counts under the first it carries.
    timesheet_categories: Mapped[list[Any]] = mapped_column(default=list)
    # The owner's default: what `archive run` and the run form use when no configuration is named.
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ActionLog(Base):
    __tablename__ = "action_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    config_id: Mapped[int | None] = mapped_column(
        ForeignKey("archive_configurations.id", ondelete="SET NULL"), index=True
    )
    actor: Mapped[str] = mapped_column(String(320), default="")
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    archived: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    duplicate: Mapped[int] = mapped_column(Integer, default=0)
    overlap: Mapped[int] = mapped_column(Integer, default=0)
    mode: Mapped[str] = mapped_column(String(8), default="append")
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[Any]] = mapped_column(default=list)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16))  # success | partial | failed
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_actor", "actor"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(300), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


_OPEN_ITEM = "state = 'open'"


class ActionItem(Base):
    """A decision an archive run could not make (overlapping appointments); open until resolved."""

    __tablename__ = "action_items"
    __table_args__ = (
        Index(
            "ix_action_items_one_open",
            "config_id",
            "conflict_key",
            unique=True,
            sqlite_where=text(_OPEN_ITEM),
            postgresql_where=text(_OPEN_ITEM),
        ),
        Index("ix_action_items_config_state", "config_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    config_id: Mapped[int] = mapped_column(
        ForeignKey("archive_configurations.id", ondelete="CASCADE")
    )
    action_log_id: Mapped[int | None] = mapped_column(
        ForeignKey("action_log.id", ondelete="SET NULL"), default=None
    )
    kind: Mapped[str] = mapped_column(String(16), default="overlap")
    state: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved
    # The sorted event ids of the conflict, hashed: one open item per conflict.
    conflict_key: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    appointments: Mapped[list[Any]] = mapped_column(default=list)  # snapshots of the events
    recommendation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    resolution: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    resolved_by: Mapped[str | None] = mapped_column(String(320), default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# A job has at most one run queued or running: the database refuses a second (both dialects
# support partial unique indexes), whichever process or machine tries to add it.
_ACTIVE_RUN = "status IN ('queued', 'running')"


class Job(Base):
    """An archive configuration run on a schedule, in a time zone."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_enabled_next_run_at", "enabled", "next_run_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    archive_config_id: Mapped[int] = mapped_column(
        ForeignKey("archive_configurations.id", ondelete="CASCADE"), index=True
    )
    schedule: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    misfire: Mapped[str] = mapped_column(String(16), default="run_once")  # skip | run_once
    days_back: Mapped[int | None] = mapped_column(Integer, default=None)
    days_forward: Mapped[int | None] = mapped_column(Integer, default=None)
    # The first scheduled time not yet handled; None while disabled.
    next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class JobRun(Base):
    """One run of a job for one scheduled time (a retry is a second attempt of the same time)."""

    __tablename__ = "job_runs"
    __table_args__ = (
        UniqueConstraint("job_id", "scheduled_for", "attempt"),
        Index(
            "ix_job_runs_one_active",
            "job_id",
            unique=True,
            sqlite_where=text(_ACTIVE_RUN),
            postgresql_where=text(_ACTIVE_RUN),
        ),
        Index("ix_job_runs_status_heartbeat_at", "status", "heartbeat_at"),
        Index("ix_job_runs_job_id_id", "job_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    scheduled_for: Mapped[datetime]
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")  # schedule | manual
    # queued | running | succeeded | failed | abandoned | skipped
    status: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(200), default=None)  # host:pid
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    action_log_id: Mapped[int | None] = mapped_column(
        ForeignKey("action_log.id", ondelete="SET NULL"), default=None
    )
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SchedulerInstance(Base):
    """A scheduler that is (or was) alive: the health endpoint reads these."""

    __tablename__ = "scheduler_instances"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16))  # gateway | standalone
    started_at: Mapped[datetime]
    last_tick_at: Mapped[datetime]
    lag_s: Mapped[float | None] = mapped_column(Float, default=None)
    running: Mapped[int] = mapped_column(Integer, default=0)


class MicrosoftAccount(Base):
    """A user's linked Microsoft 365 identity and its delegated tokens, encrypted at rest.

    The tokens are Fernet text (`shared.token_vault`); None once revoked. `reconnect_reason`
    says why the user must sign in with Microsoft again (a refused refresh, a revocation).
    """

    __tablename__ = "microsoft_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    # The account's object id (Graph `/me` id): it stays when the mail address changes.
    subject: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    access_token: Mapped[str | None] = mapped_column(Text, default=None)
    refresh_token: Mapped[str | None] = mapped_column(Text, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    scopes: Mapped[str] = mapped_column(String(1000), default="")
    reconnect_reason: Mapped[str | None] = mapped_column(Text, default=None)
    connected_at: Mapped[datetime] = mapped_column(default=utcnow)
    refreshed_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def needs_reconnect(self) -> bool:
        return self.reconnect_reason is not None or self.refresh_token is None
