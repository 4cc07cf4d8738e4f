"""The API's JSON representation of each model; both backends and the CLI render through here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from shared.calendar_uris import format_uri
from shared.models import (
    APPOINTMENT_COLUMNS,
    ActionItem,
    ActionLog,
    ApiToken,
    Appointment,
    ArchiveConfiguration,
    AuditLog,
    Calendar,
    Job,
    JobRun,
    User,
)

_UTC_ZONE = ZoneInfo("UTC")  # ZoneInfo keeps one instance per key: `tz=UTC` queries get it


def instant(moment: datetime | None, tz: tzinfo | None = None) -> str | None:
    """ISO 8601 with offset, to the second, in `tz` (UTC when not given)."""
    if moment is None:
        return None
    if moment.tzinfo is UTC and (tz is None or tz is _UTC_ZONE or tz is UTC):
        return moment.isoformat(timespec="seconds")  # as read from the database, shown in UTC
    # Always convert: a value just written still carries the offset it was sent with, so a
    # create or run answered "+01:00" where every later read of it answers "+00:00".
    return moment.astimezone(tz or UTC).isoformat(timespec="seconds")


def local_clock(moment: str | None, zone: str) -> str:
    """An API instant (ISO 8601) as a wall-clock time in `zone`, e.g. `2026-03-29 03:30 CEST`."""
    if moment is None:
        return "-"
    return datetime.fromisoformat(moment).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "name": user.name, "is_admin": user.is_admin}


def token_json(token: ApiToken) -> dict[str, Any]:
    """An API token as its owner may see it: never the secret (shown once, at creation)."""
    return {
        "id": token.id,
        "name": token.name,
        "created_at": instant(token.created_at),
        "last_used_at": instant(token.last_used_at),
        "expires_at": instant(token.expires_at),
    }


def calendar_json(calendar: Calendar) -> dict[str, Any]:
    return {
        "id": calendar.id,
        "owner_id": calendar.owner_id,
        "name": calendar.name,
        "role": calendar.role,
        "provider": calendar.provider,
        "provider_id": calendar.provider_id,
        "mailbox": calendar.mailbox,
        "uri": calendar_uri(calendar),
        "created_at": instant(calendar.created_at),
        "updated_at": instant(calendar.updated_at),
    }


def calendar_uri(calendar: Calendar) -> str:
    """The calendar's address: `local://<name>`, `msgraph://me/calendars/<id>` (its owner's
    mailbox) or `msgraph://users/<mailbox>/calendars/<id>`."""
    return format_uri(calendar.provider, calendar.name, calendar.provider_id, calendar.mailbox)


_appointment_values = attrgetter(*APPOINTMENT_COLUMNS)


def appointment_json(appointment: Appointment, tz: tzinfo | None = None) -> dict[str, Any]:
    """An appointment, its start, end and original start shown in `tz` (UTC when not given)."""
    return appointment_row_json(_appointment_values(appointment), tz)


def appointment_row_json(values: Sequence[Any], tz: tzinfo | None = None) -> dict[str, Any]:
    """`appointment_json` of a row holding `APPOINTMENT_COLUMNS` in order (extra values at the
    end are ignored): what read-only pages render, without loading ORM objects."""
    (id_, calendar_id, subject, start, end, location, categories, is_private) = values[:8]
    (show_as, importance, sensitivity, is_all_day, recurrence, series_id) = values[8:14]
    (original_start, event_id, archived_from_id, config_id, archived_at) = values[14:19]
    (created_at, updated_at) = values[19:21]
    return {
        "id": id_,
        "calendar_id": calendar_id,
        "subject": subject,
        "start": instant(start, tz),
        "end": instant(end, tz),
        "location": location,
        "categories": list(categories or ()),
        "is_private": is_private,
        "show_as": show_as,
        "importance": importance,
        "sensitivity": sensitivity,
        "is_all_day": is_all_day,
        "recurrence": recurrence,
        "series_id": series_id,
        "original_start": instant(original_start, tz),
        "provider_event_id": event_id,
        "archived_from_id": archived_from_id,
        "archive_config_id": config_id,
        "archived_at": instant(archived_at),
        "created_at": instant(created_at),
        "updated_at": instant(updated_at),
    }


def archive_config_json(
    config: ArchiveConfiguration, calendars: Mapping[int, Calendar] | None = None
) -> dict[str, Any]:
    """A configuration; with its `calendars` (by id) it names them by URI too."""
    source = (calendars or {}).get(config.source_calendar_id)
    archive = (calendars or {}).get(config.archive_calendar_id)
    return {
        "id": config.id,
        "owner_id": config.owner_id,
        "name": config.name,
        "source_calendar_id": config.source_calendar_id,
        "archive_calendar_id": config.archive_calendar_id,
        "source_calendar": None if source is None else calendar_uri(source),
        "archive_calendar": None if archive is None else calendar_uri(archive),
        "timezone": config.timezone,
        "is_active": config.is_active,
        "schedule": config.schedule,
        "days_back": config.days_back,
        "days_forward": config.days_forward,
        "excluded_categories": list(config.excluded_categories or []),
        "allow_overlaps": config.allow_overlaps,
        "mode": config.mode,
        "purpose": config.purpose,
        "timesheet_categories": list(config.timesheet_categories or []),
        "is_default": config.is_default,
        "created_at": instant(config.created_at),
        "updated_at": instant(config.updated_at),
    }


def action_log_json(entry: ActionLog) -> dict[str, Any]:
    return {
        "id": entry.id,
        "config_id": entry.config_id,
        "actor": entry.actor,
        "window_start": instant(entry.window_start),
        "window_end": instant(entry.window_end),
        "archived": entry.archived,
        "skipped": entry.skipped,
        "duplicate": entry.duplicate,
        "overlap": entry.overlap,
        "mode": entry.mode,
        "added": entry.added,
        "updated": entry.updated,
        "removed": entry.removed,
        "unchanged": entry.unchanged,
        "errors": list(entry.errors or []),
        "details": dict(entry.details or {}),
        "status": entry.status,
        "started_at": instant(entry.started_at),
        "finished_at": instant(entry.finished_at),
        "duration_ms": entry.duration_ms,
    }


def action_item_json(item: ActionItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "config_id": item.config_id,
        "action_log_id": item.action_log_id,
        "kind": item.kind,
        "state": item.state,
        "starts_at": instant(item.starts_at),
        "ends_at": instant(item.ends_at),
        "appointments": list(item.appointments or []),
        "recommendation": dict(item.recommendation or {}),
        "resolution": item.resolution,
        "resolved_by": item.resolved_by,
        "resolved_at": instant(item.resolved_at),
        "created_at": instant(item.created_at),
        "updated_at": instant(item.updated_at),
    }


def audit_json(entry: AuditLog) -> dict[str, Any]:
    return {
        "id": entry.id,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
        "reason": entry.reason,
        "created_at": instant(entry.created_at),
    }


def job_json(job: Job, last_run: JobRun | None) -> dict[str, Any]:
    return {
        "id": job.id,
        "archive_config_id": job.archive_config_id,
        "schedule": job.schedule,
        "timezone": job.timezone,
        "enabled": job.enabled,
        "misfire": job.misfire,
        "days_back": job.days_back,
        "days_forward": job.days_forward,
        "next_run_at": instant(job.next_run_at),
        "last_run": None if last_run is None else job_run_json(last_run),
        "created_at": instant(job.created_at),
        "updated_at": instant(job.updated_at),
    }


def job_run_json(run: JobRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "job_id": run.job_id,
        "scheduled_for": instant(run.scheduled_for),
        "status": run.status,
        "claimed_by": run.claimed_by,
        "started_at": instant(run.started_at),
        "finished_at": instant(run.finished_at),
        "action_log_id": run.action_log_id,
        "error": run.error,
    }
