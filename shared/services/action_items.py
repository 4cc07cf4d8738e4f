"""Action items: the decisions archive runs leave to people (overlaps the rules cannot settle).

A run records each unresolved conflict once (one open item per set of events); a later run
that sees the conflict gone closes the item as superseded. Resolving an item keeps the
chosen appointments (or all) and archives them at once; later runs follow the decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.archive_plan import conflict_key
from shared.archive_repositories import ActionItemRepository
from shared.auth import Actor
from shared.db import Database
from shared.delegation import as_caller
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.inputs.archive import ActionItemQuery
from shared.models import ActionItem, ArchiveConfiguration, utcnow
from shared.overlaps import Conflict as OverlapConflict
from shared.pagination import Page
from shared.providers import ProviderEvent, ProviderRegistry
from shared.repositories import ArchiveConfigRepository, CalendarRepository
from shared.representation import action_item_json, instant
from shared.services.archive_writer import ArchiveWriter
from shared.services.audit import record
from shared.services.calendars import calendar_ref

__all__ = [
    "ActionItemService",
    "Decisions",
    "event_from_snapshot",
    "event_snapshot",
    "load_decisions",
    "record_conflicts",
]

Decisions = dict[str, bool]


def event_snapshot(event: ProviderEvent) -> dict[str, Any]:
    """An event as an action item keeps it (to show it, and to archive it once chosen)."""
    return {
        "event_id": event.event_id,
        "subject": event.subject,
        "start": instant(event.start),
        "end": instant(event.end),
        "location": event.location,
        "categories": list(event.categories),
        "show_as": event.show_as,
        "importance": event.importance,
        "sensitivity": event.sensitivity,
        "is_all_day": event.is_all_day,
        "series_id": event.series_id,
    }


def event_from_snapshot(snapshot: dict[str, Any]) -> ProviderEvent:
    return ProviderEvent(
        event_id=snapshot["event_id"],
        subject=snapshot["subject"],
        start=datetime.fromisoformat(snapshot["start"]),
        end=datetime.fromisoformat(snapshot["end"]),
        location=snapshot.get("location", ""),
        categories=tuple(snapshot.get("categories", ())),
        show_as=snapshot.get("show_as", "busy"),
        importance=snapshot.get("importance", "normal"),
        sensitivity=snapshot.get("sensitivity", "normal"),
        is_all_day=bool(snapshot.get("is_all_day", False)),
        series_id=snapshot.get("series_id"),
    )


async def load_decisions(
    session: AsyncSession, config_id: int, start: datetime, end: datetime
) -> tuple[Decisions, dict[str, ActionItem]]:
    """What people decided about events of the window (event id -> kept; the latest decision
    wins), and the open items of the window by conflict key."""
    decisions: Decisions = {}
    open_items: dict[str, ActionItem] = {}
    for item in await ActionItemRepository(session).of_config(config_id, start, end):
        if item.state == "open":
            open_items[item.conflict_key] = item
            continue
        resolution = item.resolution or {}
        action = resolution.get("action")
        if action not in ("keep", "keep_all"):
            continue
        kept = set(resolution.get("keep") or [])
        for snapshot in item.appointments or []:
            decisions[snapshot["event_id"]] = action == "keep_all" or snapshot["event_id"] in kept
    return decisions, open_items


async def record_conflicts(
    session: AsyncSession,
    *,
    config_id: int,
    log_id: int,
    actor: str,
    conflicts: Sequence[OverlapConflict],
    open_items: dict[str, ActionItem],
    window: tuple[datetime, datetime],
) -> list[int]:
    """Open an item per new conflict, refresh those still open, supersede those gone; the ids
    of the items holding this run's conflicts. Runs in the run's log transaction."""
    ids: list[int] = []
    seen: set[str] = set()
    for conflict in conflicts:
        key = conflict_key(conflict.event_ids)
        seen.add(key)
        snapshots = [event_snapshot(e) for e in conflict.events]
        item = open_items.get(key)
        if item is not None:
            item.appointments = snapshots
            item.recommendation = conflict.recommendation.to_json()
            ids.append(item.id)
            continue
        item = ActionItem(
            config_id=config_id,
            action_log_id=log_id,
            kind="overlap",
            state="open",
            conflict_key=key,
            starts_at=min(e.start for e in conflict.events),
            ends_at=max(e.end for e in conflict.events),
            appointments=snapshots,
            recommendation=conflict.recommendation.to_json(),
        )
        try:
            async with session.begin_nested():
                await ActionItemRepository(session).add(item)
        except IntegrityError:
            continue  # a concurrent run of the same window opened it first
        ids.append(item.id)
        await record(
            session,
            actor,
            "action_item.create",
            f"action_item:{item.id}",
            after=action_item_json(item),
        )
    start, end = window
    for key, item in open_items.items():
        if key in seen or item.starts_at < start or item.ends_at > end:
            continue  # still a conflict, or partly outside this run's window: not seen whole
        before = action_item_json(item)
        item.state = "resolved"
        item.resolution = {"action": "superseded", "keep": [], "reason": "no longer overlapping"}
        item.resolved_by = actor
        item.resolved_at = utcnow()
        await session.flush()
        await record(
            session,
            actor,
            "action_item.supersede",
            f"action_item:{item.id}",
            before=before,
            after=action_item_json(item),
        )
    return ids


class ActionItemService:
    def __init__(self, db: Database, providers: ProviderRegistry) -> None:
        self.db = db
        self.writer = ArchiveWriter(db, providers)

    async def list(self, actor: Actor, query: ActionItemQuery) -> Page[dict[str, Any]]:
        """Items of the actor's configurations (all for admins), oldest conflict first."""
        async with self.db.read_session() as session:
            if query.config_id is not None:
                await _owned_config(session, actor, query.config_id)
            result = await ActionItemRepository(session).page(
                owner_id=None if actor.is_admin else actor.user_id,
                config_id=query.config_id,
                state=query.state,
                page=query.page,
            )
        return Page(
            [action_item_json(i) for i in result.items], result.page, result.per_page, result.total
        )

    async def get(self, actor: Actor, item_id: int) -> dict[str, Any]:
        async with self.db.read_session() as session:
            item = await _owned_item(session, actor, item_id)
        return action_item_json(item)

    @as_caller
    async def resolve(self, actor: Actor, item_id: int, choice: dict[str, Any]) -> dict[str, Any]:
        """Decide an open item (`keep` some event ids, or `keep_all`) and archive the choice.

        409 when it is no longer open; 422 when `keep` names an event not in the item.
        """
        async with self.db.session() as session:
            item = await _owned_item(session, actor, item_id, for_update=True)
            if item.state != "open":
                raise Conflict(
                    f"action item {item_id} is already resolved "
                    f"({(item.resolution or {}).get('action')}, by {item.resolved_by})"
                )
            events = [event_from_snapshot(s) for s in item.appointments or []]
            known = {e.event_id for e in events}
            if choice.get("keep_all"):
                keep = sorted(known)
                action = "keep_all"
            else:
                unknown = [k for k in choice["keep"] if k not in known]
                if unknown:
                    raise ValidationFailed(
                        "invalid resolution: check keep",
                        details=[
                            {
                                "field": "keep",
                                "message": f"not an appointment of action item {item_id}: "
                                + ", ".join(repr(u) for u in unknown)
                                + f" (expected some of {', '.join(sorted(known))})",
                            }
                        ],
                    )
                keep, action = sorted(set(choice["keep"])), "keep"
            before = action_item_json(item)
            item.state = "resolved"
            item.resolution = {"action": action, "keep": keep}
            item.resolved_by = actor.label
            item.resolved_at = utcnow()
            await session.flush()
            after = action_item_json(item)
            await record(
                session,
                actor.label,
                "action_item.resolve",
                f"action_item:{item.id}",
                before=before,
                after=after,
            )
            config = await ArchiveConfigRepository(session).get(item.config_id)
            assert config is not None  # the item cascades with its configuration
            calendars = CalendarRepository(session)
            source = await calendars.get(config.source_calendar_id)
            archive = await calendars.get(config.archive_calendar_id)
            if source is None or archive is None:
                raise Conflict(f"archive configuration {config.id} refers to a deleted calendar")
            archive_ref = await calendar_ref(session, archive)
        # Decided first: should archiving fail now, the next run still follows the decision.
        chosen = [e for e in events if e.event_id in keep]
        result = await self.writer.write(
            config_id=config.id,
            source=source,
            archive=archive,
            archive_ref=archive_ref,
            events=chosen,
            held=set(),
            window=(item.starts_at, item.ends_at),
            mode="append",
        )
        return {**after, "archived": result.added, "errors": result.errors}


async def _owned_config(
    session: AsyncSession, actor: Actor, config_id: int
) -> ArchiveConfiguration:
    config = await ArchiveConfigRepository(session).get(config_id)
    if config is None or (config.owner_id != actor.user_id and not actor.is_admin):
        raise NotFound(f"archive configuration {config_id} not found")
    return config


async def _owned_item(
    session: AsyncSession, actor: Actor, item_id: int, *, for_update: bool = False
) -> ActionItem:
    item = await ActionItemRepository(session).get(item_id, for_update=for_update)
    if item is not None:
        config = await ArchiveConfigRepository(session).get(item.config_id)
        if config is not None and actor.may_see(config.owner_id):
            return item
    raise NotFound(f"action item {item_id} not found")
