"""Archive configurations: CRUD (calendars by id or URI) and each user's default configuration.

A user has at most one default configuration, the one `archive run` and the run form use when
none is named. A user's first configuration becomes the default (more exactly: one created
while its owner has none, unless created with `is_default: false`); making another the default
clears the old one; deleting or unsetting the default leaves the user without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Actor
from shared.calendar_uris import CalendarUri
from shared.db import Database
from shared.delegation import as_caller
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.models import ArchiveConfiguration, Calendar
from shared.pagination import Page, PageRequest
from shared.providers import ProviderRegistry
from shared.repositories import ArchiveConfigRepository, CalendarRepository
from shared.representation import archive_config_json
from shared.services.audit import record
from shared.services.calendar_resolver import CalendarResolver
from shared.timesheet_rules import DEFAULT_CATEGORIES

__all__ = ["ArchiveConfigurations"]

_CALENDAR_FIELDS = (
    ("source_calendar", "source_calendar_id"),
    ("archive_calendar", "archive_calendar_id"),
)
# How each database names a collision on the one-default index.
_DEFAULT_INDEX_NAMES = ("ix_archive_configurations_one_default", "archive_configurations.owner_id")
_DEFAULT_CHANGED = (
    "the default archive configuration was changed by another request at the same time; "
    "reload and try again"
)


class ArchiveConfigurations:
    """The configuration half of the archive service: every method is one transaction."""

    def __init__(self, db: Database, providers: ProviderRegistry) -> None:
        self.db = db
        self.providers = providers
        self.resolver = CalendarResolver(providers)

    async def list_configs(self, actor: Actor, page: PageRequest) -> Page[dict[str, Any]]:
        async with self.db.read_session() as session:
            result = await ArchiveConfigRepository(session).page(
                None if actor.is_admin else actor.user_id, page
            )
            calendars = await _calendars_of(session, result.items)
        return Page(
            [archive_config_json(c, calendars) for c in result.items],
            result.page,
            result.per_page,
            result.total,
        )

    async def get_config(self, actor: Actor, config_id: int) -> dict[str, Any]:
        async with self.db.read_session() as session:
            config = await self._owned_config(session, actor, config_id)
            calendars = await _calendars_of(session, [config])
        return archive_config_json(config, calendars)

    async def default_config(self, actor: Actor) -> dict[str, Any] | None:
        """The actor's own default configuration (an admin's too: not another user's), or None."""
        async with self.db.read_session() as session:
            config = await ArchiveConfigRepository(session).default_of(actor.user_id)
            if config is None:
                return None
            calendars = await _calendars_of(session, [config])
        return archive_config_json(config, calendars)

    @as_caller
    async def create_config(self, actor: Actor, values: dict[str, Any]) -> dict[str, Any]:
        """A new configuration of the actor's calendars (by id, or by URI resolved here).

        `is_default` True makes it the actor's default, False does not; left out (or None),
        it becomes the default when the actor has none.
        """
        values = await self._resolve_calendars(actor, values)
        is_default = values.pop("is_default", None)
        if values.get("purpose") == "timesheet" and not values.get("timesheet_categories"):
            values["timesheet_categories"] = list(DEFAULT_CATEGORIES)
        try:
            async with self.db.session() as session:
                await self._check_calendars(
                    session, actor, values["source_calendar_id"], values["archive_calendar_id"]
                )
                _check_distinct(values["source_calendar_id"], values["archive_calendar_id"])
                repo = ArchiveConfigRepository(session)
                if is_default is None:
                    await repo.lock_defaults(actor.user_id)
                    is_default = await repo.default_of(actor.user_id) is None
                elif is_default:
                    await self._clear_default(session, actor, actor.user_id, keep_id=None)
                config = await repo.add(
                    ArchiveConfiguration(owner_id=actor.user_id, is_default=is_default, **values)
                )
                after = archive_config_json(config, await _calendars_of(session, [config]))
                await record(
                    session, actor.label, "archive_config.create", _target(config), after=after
                )
                return after
        except IntegrityError as exc:
            if not _is_default_collision(exc):
                raise
            raise Conflict(_DEFAULT_CHANGED) from exc

    @as_caller
    async def update_config(
        self, actor: Actor, config_id: int, values: dict[str, Any]
    ) -> dict[str, Any]:
        """Change the given fields; `is_default` True makes it its owner's default (clearing
        the old one), False leaves its owner without a default if it was the default."""
        values = await self._resolve_calendars(actor, values)
        is_default = values.pop("is_default", None)
        try:
            async with self.db.session() as session:
                config = await self._owned_config(session, actor, config_id)
                before = archive_config_json(config, await _calendars_of(session, [config]))
                if "source_calendar_id" in values or "archive_calendar_id" in values:
                    # Checked before the row changes: a lookup would otherwise autoflush a row
                    # pointing at a calendar that does not exist (an IntegrityError, a 500).
                    await self._check_calendars(
                        session,
                        actor,
                        values.get("source_calendar_id", config.source_calendar_id),
                        values.get("archive_calendar_id", config.archive_calendar_id),
                    )
                if is_default is True and not config.is_default:
                    await self._clear_default(session, actor, config.owner_id, keep_id=config.id)
                for key, value in values.items():
                    setattr(config, key, value)
                if is_default is not None:
                    config.is_default = is_default
                _check_distinct(config.source_calendar_id, config.archive_calendar_id)
                if config.purpose == "timesheet" and not config.timesheet_categories:
                    config.timesheet_categories = list(DEFAULT_CATEGORIES)
                await session.flush()
                after = archive_config_json(config, await _calendars_of(session, [config]))
                if after != before:
                    await record(
                        session,
                        actor.label,
                        "archive_config.update",
                        _target(config),
                        before=before,
                        after=after,
                    )
                return after
        except IntegrityError as exc:
            if not _is_default_collision(exc):
                raise
            raise Conflict(_DEFAULT_CHANGED) from exc

    async def delete_config(self, actor: Actor, config_id: int) -> None:
        """Delete the configuration; deleting the default leaves its owner without one."""
        async with self.db.session() as session:
            config = await self._owned_config(session, actor, config_id)
            before = archive_config_json(config, await _calendars_of(session, [config]))
            await ArchiveConfigRepository(session).delete(config)
            await record(
                session, actor.label, "archive_config.delete", _target(config), before=before
            )

    # -- rules --------------------------------------------------------------------------------

    async def _clear_default(
        self, session: AsyncSession, actor: Actor, owner_id: int, *, keep_id: int | None
    ) -> None:
        """The owner's default (but `keep_id`) is the default no longer; the change audited.

        Takes the owner's lock first, so clearing and setting the new default are one step
        to every other request changing the same owner's default.
        """
        repo = ArchiveConfigRepository(session)
        await repo.lock_defaults(owner_id)
        previous = await repo.default_of(owner_id)
        if previous is None or previous.id == keep_id:
            return
        before = archive_config_json(previous, await _calendars_of(session, [previous]))
        previous.is_default = False
        # Flushed now: the new default's row must not meet this one in the unique index.
        await session.flush()
        after = archive_config_json(previous, await _calendars_of(session, [previous]))
        await record(
            session,
            actor.label,
            "archive_config.update",
            _target(previous),
            before=before,
            after=after,
        )

    async def _owned_config(
        self, session: AsyncSession, actor: Actor, config_id: int
    ) -> ArchiveConfiguration:
        config = await ArchiveConfigRepository(session).get(config_id)
        if config is None or (config.owner_id != actor.user_id and not actor.is_admin):
            raise NotFound(f"archive configuration {config_id} not found")
        return config

    async def _resolve_calendars(self, actor: Actor, values: dict[str, Any]) -> dict[str, Any]:
        """`source_calendar`/`archive_calendar` URIs replaced by the ids of the actor's rows."""
        values = dict(values)
        uris: dict[str, CalendarUri] = {
            field: values.pop(field) for field, _ in _CALENDAR_FIELDS if field in values
        }
        if not uris:
            return values
        async with self.db.read_session() as session:
            for field, id_field in _CALENDAR_FIELDS:
                if field in uris:
                    calendar = await self.resolver.row(session, actor, uris[field], field)
                    values[id_field] = calendar.id
        return values

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


def _is_default_collision(exc: IntegrityError) -> bool:
    """Whether the one-default index refused a second default (a concurrent change won)."""
    return any(name in str(exc.orig) for name in _DEFAULT_INDEX_NAMES)


def _check_distinct(source_id: int, archive_id: int) -> None:
    if source_id == archive_id:
        raise ValidationFailed(
            "invalid archive configuration: check archive_calendar_id",
            details=[
                {"field": "archive_calendar_id", "message": "must differ from source_calendar_id"}
            ],
        )


async def _calendars_of(
    session: AsyncSession, configs: Sequence[ArchiveConfiguration]
) -> dict[int, Calendar]:
    ids = [c.source_calendar_id for c in configs] + [c.archive_calendar_id for c in configs]
    return await CalendarRepository(session).by_ids(ids)


def _target(config: ArchiveConfiguration) -> str:
    return f"archive_config:{config.id}"
