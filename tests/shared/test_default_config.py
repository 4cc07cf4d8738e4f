"""Each user's default archive configuration through the services, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, inspect, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from shared.auth import Actor
from shared.config import load_settings
from shared.errors import NotFound, ValidationFailed
from shared.inputs.archive import parse_archive_config
from shared.inputs.calendars import parse_calendar
from shared.migrate import alembic_config, upgrade
from shared.models import ArchiveConfiguration, AuditLog
from shared.runtime import Runtime
from shared.seed import seed_demo
from tests.conftest import PG_ADMIN_DSN, make_environ


async def person(runtime: Runtime, email: str, *, is_admin: bool = False) -> Actor:
    created = await runtime.services.users.create(email, "long-password", is_admin=is_admin)
    return Actor(created["id"], created["email"], is_admin)


async def configs(runtime: Runtime, actor: Actor, count: int, **body: Any) -> list[int]:
    """`count` configurations of `actor`, over two calendars of theirs made here."""
    calendars = runtime.services.calendars
    source = await calendars.create(actor, parse_calendar({"name": "Work", "role": "source"}))
    archive = await calendars.create(actor, parse_calendar({"name": "Arch", "role": "archive"}))
    made = []
    for n in range(count):
        values = parse_archive_config(
            {
                "name": f"Config {n}",
                "source_calendar_id": source["id"],
                "archive_calendar_id": archive["id"],
                **body,
            }
        )
        made.append((await runtime.services.archive.create_config(actor, values))["id"])
    return made


async def defaults(runtime: Runtime) -> list[tuple[int, int]]:
    """(owner, config) of every default, straight from the table."""
    async with runtime.db.read_session() as session:
        rows = await session.execute(
            select(ArchiveConfiguration.owner_id, ArchiveConfiguration.id)
            .where(ArchiveConfiguration.is_default.is_(True))
            .order_by(ArchiveConfiguration.owner_id)
        )
        return [(owner, config) for owner, config in rows]


async def test_the_first_configuration_becomes_the_default(domain: Runtime) -> None:
    alice = await person(domain, "alice@example.com")
    first, second = await configs(domain, alice, 2)
    archive = domain.services.archive
    assert (await archive.get_config(alice, first))["is_default"] is True
    assert (await archive.get_config(alice, second))["is_default"] is False
    assert (await archive.default_config(alice) or {})["id"] == first


async def test_making_another_the_default_clears_the_old_one(domain: Runtime) -> None:
    alice, bob = await person(domain, "alice@example.com"), await person(domain, "bob@example.com")
    first, second = await configs(domain, alice, 2)
    (bobs,) = await configs(domain, bob, 1)
    updated = await domain.services.archive.update_config(alice, second, {"is_default": True})
    assert updated["is_default"] is True
    assert await defaults(domain) == [(alice.user_id, second), (bob.user_id, bobs)]
    # The old default's change is audited too, with the new one's.
    async with domain.db.read_session() as session:
        targets = await session.scalars(
            select(AuditLog.target)
            .where(AuditLog.action == "archive_config.update")
            .order_by(AuditLog.id)
        )
        assert list(targets) == [f"archive_config:{first}", f"archive_config:{second}"]


async def test_unsetting_or_deleting_the_default_leaves_none(domain: Runtime) -> None:
    alice = await person(domain, "alice@example.com")
    first, second = await configs(domain, alice, 2)
    archive = domain.services.archive
    # Unsetting one that is not the default changes nothing.
    await archive.update_config(alice, second, {"is_default": False})
    assert await defaults(domain) == [(alice.user_id, first)]
    await archive.update_config(alice, first, {"is_default": False})
    assert await defaults(domain) == []
    assert await archive.default_config(alice) is None
    await archive.update_config(alice, second, {"is_default": True})
    await archive.delete_config(alice, second)
    assert await defaults(domain) == []


async def test_a_configuration_made_while_none_is_default_becomes_it(domain: Runtime) -> None:
    alice = await person(domain, "alice@example.com")
    (first,) = await configs(domain, alice, 1)
    await domain.services.archive.delete_config(alice, first)
    (later,) = await configs(domain, alice, 1)
    assert await defaults(domain) == [(alice.user_id, later)]


async def test_create_can_choose_or_decline_the_default(domain: Runtime) -> None:
    alice = await person(domain, "alice@example.com")
    (declined,) = await configs(domain, alice, 1, is_default=False)
    assert await defaults(domain) == []
    (chosen,) = await configs(domain, alice, 1, is_default=True)
    (third,) = await configs(domain, alice, 1, is_default=True)
    assert await defaults(domain) == [(alice.user_id, third)]
    assert chosen != third != declined


async def test_another_users_configuration_is_not_found(domain: Runtime) -> None:
    alice, bob = await person(domain, "alice@example.com"), await person(domain, "bob@example.com")
    (bobs,) = await configs(domain, bob, 1)
    with pytest.raises(NotFound, match=f"archive configuration {bobs} not found"):
        await domain.services.archive.update_config(alice, bobs, {"is_default": True})
    assert await defaults(domain) == [(bob.user_id, bobs)]


async def test_an_admin_sets_the_owners_default_not_their_own(domain: Runtime) -> None:
    admin = await person(domain, "admin@example.com", is_admin=True)
    bob = await person(domain, "bob@example.com")
    _first, second = await configs(domain, bob, 2)
    await domain.services.archive.update_config(admin, second, {"is_default": True})
    assert await defaults(domain) == [(bob.user_id, second)]
    assert await domain.services.archive.default_config(admin) is None


async def test_concurrent_changes_leave_one_default(domain: Runtime) -> None:
    alice = await person(domain, "alice@example.com")
    made = await configs(domain, alice, 4)
    archive = domain.services.archive
    results = await asyncio.gather(
        *(archive.update_config(alice, c, {"is_default": True}) for c in made),
        return_exceptions=True,
    )
    # Every change either won its turn or was told to try again: never two defaults.
    assert all(isinstance(r, dict) or "try again" in str(r) for r in results), results
    assert len(await defaults(domain)) == 1


async def test_the_database_refuses_a_second_default(domain: Runtime) -> None:
    alice = await person(domain, "alice@example.com")
    _first, second = await configs(domain, alice, 2)
    with pytest.raises(IntegrityError):
        async with domain.db.session() as session:
            await session.execute(
                update(ArchiveConfiguration)
                .where(ArchiveConfiguration.id == second)
                .values(is_default=True)
            )
    async with domain.db.read_session() as session:
        count = await session.scalar(
            select(func.count()).where(ArchiveConfiguration.is_default.is_(True))
        )
    assert count == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yes", "must be true or false, got string"),
        (1, "must be true or false, got number"),
        (None, "must be true or false, got null"),
    ],
)
def test_is_default_must_be_a_boolean(value: Any, message: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        parse_archive_config({"is_default": value}, partial=True)
    assert raised.value.details == [{"field": "is_default", "message": message}]


# -- the migration ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A database with no schema at all, to migrate step by step."""
    if request.param == "sqlite":
        runtime = Runtime(load_settings(make_environ(tmp_path)))
        yield runtime
        await runtime.aclose()
        return
    import asyncpg

    name = f"aa_migrate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
        runtime = Runtime(load_settings(make_environ(tmp_path, AA_DATABASE_URL=url)))
        yield runtime
        await runtime.aclose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_the_migration_makes_each_users_oldest_configuration_the_default(
    empty_database: Runtime,
) -> None:
    engine = empty_database.db.engine
    await upgrade(engine, "0005")
    async with engine.begin() as conn:
        for user_id in (1, 2, 3):
            await conn.execute(
                text(
                    "INSERT INTO users (id, email, name, password_hash, is_admin, created_at) "
                    "VALUES (:id, :email, '', 'x', false, CURRENT_TIMESTAMP)"
                ),
                {"id": user_id, "email": f"u{user_id}@example.com"},
            )
            for role, calendar_id in (("source", user_id * 10), ("archive", user_id * 10 + 1)):
                await conn.execute(
                    text(
                        "INSERT INTO calendars (id, owner_id, name, role, provider, created_at, "
                        "updated_at) VALUES (:id, :owner, :role, :role, 'local', "
                        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": calendar_id, "owner": user_id, "role": role},
                )
        # User 1 has configurations 5 and 2 (2 is older), user 2 has 7, user 3 none.
        for config_id, owner in ((5, 1), (2, 1), (7, 2)):
            await conn.execute(
                text(
                    "INSERT INTO archive_configurations (id, owner_id, name, "
                    "source_calendar_id, archive_calendar_id, timezone, is_active, days_back, "
                    "days_forward, excluded_categories, created_at, updated_at) VALUES (:id, "
                    ":owner, 'c', :source, :archive, 'UTC', true, 7, 0, '[]', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": config_id, "owner": owner, "source": owner * 10, "archive": owner * 10 + 1},
            )
    await upgrade(engine, "0007")
    assert await defaults(empty_database) == [(1, 2), (2, 7)]
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE archive_configurations SET is_default = true"))

    def downgrade_to_0005(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), "0005")

    async with engine.begin() as conn:
        await conn.run_sync(downgrade_to_0005)
        columns = await conn.run_sync(
            lambda sync: [c["name"] for c in inspect(sync).get_columns("archive_configurations")]
        )
    assert "is_default" not in columns


async def test_the_demo_admins_first_configuration_is_the_default(domain: Runtime) -> None:
    login = await seed_demo(domain.db, today=date(2026, 5, 4))
    actor = (await domain.services.users.sign_in(login.email, login.password)).actor
    assert (await domain.services.archive.default_config(actor) or {})["id"] == login.config_id
    assert len(await defaults(domain)) == 1
