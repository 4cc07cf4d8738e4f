"""Application services: what the API, pages, CLI and jobs do, each method one transaction."""

from __future__ import annotations

from shared.db import Database
from shared.providers import ProviderRegistry
from shared.services.action_items import ActionItemService
from shared.services.appointments import AppointmentService
from shared.services.archive import ArchiveService, default_window, find_overlaps
from shared.services.audit import AuditService
from shared.services.calendars import CalendarService
from shared.services.jobs import JobService
from shared.services.microsoft import MicrosoftAccountService
from shared.services.timesheets import TimesheetService
from shared.services.tokens import TokenService
from shared.services.users import UserService

__all__ = [
    "ActionItemService",
    "AppointmentService",
    "ArchiveService",
    "AuditService",
    "CalendarService",
    "JobService",
    "MicrosoftAccountService",
    "Services",
    "TimesheetService",
    "TokenService",
    "UserService",
    "default_window",
    "find_overlaps",
]


class Services:
    """Every service of the domain over one database and one set of providers."""

    def __init__(
        self,
        db: Database,
        providers: ProviderRegistry,
        *,
        microsoft: MicrosoftAccountService | None = None,
    ) -> None:
        self.users = UserService(db)
        # None unless Microsoft 365 sign-in is configured (AA_M365_*).
        self.microsoft = microsoft
        if microsoft is not None:
            self.users.on_revoke.append(microsoft.forget)
        self.tokens = TokenService(db, self.users.actors)
        self.calendars = CalendarService(db, providers)
        self.appointments = AppointmentService(db)
        self.archive = ArchiveService(db, providers)
        self.action_items = ActionItemService(db, providers)
        self.timesheets = TimesheetService(db)
        self.audit = AuditService(db)
        self.jobs = JobService(db, lease_s=db.settings.job_lease_s)
