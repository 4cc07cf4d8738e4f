"""The audit log: who changed which calendar, configuration, job or action item, before and after.

`record` is called by the service making a change, in that change's own transaction: the row
is written exactly when the change is. Snapshots are the API representations without their
clock fields (the row's own time says when).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Actor
from shared.db import Database
from shared.errors import Forbidden
from shared.inputs.audit import AuditQuery
from shared.models import AuditLog
from shared.pagination import Page
from shared.repositories import AuditRepository
from shared.representation import audit_json

__all__ = ["AuditService", "record", "snapshot"]

# Written from the clock (or derived from it): not part of what changed.
_CLOCK_FIELDS = frozenset(
    {"created_at", "updated_at", "next_run_at", "last_run", "resolved_at", "archived_at"}
)


def snapshot(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A representation as the audit log keeps it: clock fields left out."""
    if value is None:
        return None
    return {k: v for k, v in value.items() if k not in _CLOCK_FIELDS}


async def record(
    session: AsyncSession,
    actor: str,
    action: str,
    target: str,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str = "",
) -> None:
    """Add an audit row (`calendar.update` on `calendar:5` by `alice@example.com`) to `session`."""
    await AuditRepository(session).add(
        AuditLog(
            actor=actor,
            action=action,
            target=target,
            before=snapshot(before),
            after=snapshot(after),
            reason=reason,
        )
    )


class AuditService:
    """Reading the audit log (admins only)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, actor: Actor, query: AuditQuery) -> Page[dict[str, Any]]:
        """Audit rows, newest first, filtered; 403 unless `actor` is an admin."""
        if not actor.is_admin:
            raise Forbidden("the audit log is for admins only")
        async with self.db.read_session() as session:
            result = await AuditRepository(session).page(
                target=query.target, actor=query.actor, action=query.action, page=query.page
            )
        return Page(
            [audit_json(e) for e in result.items], result.page, result.per_page, result.total
        )
