"""Migration 0006: the Microsoft accounts table, one account per user and per subject, gone
with its user; and back down to 0005."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError

from shared.config import load_settings
from shared.migrate import alembic_config, current_revision, upgrade
from shared.runtime import Runtime
from tests.conftest import make_environ

ACCOUNT = (
    "INSERT INTO microsoft_accounts (user_id, subject, email, scopes, connected_at, updated_at)"
    " VALUES (:user, :subject, 'a@contoso.com', '', '2026-01-01', '2026-01-01')"
)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = Runtime(load_settings(make_environ(tmp_path)))
    await upgrade(runtime.db.engine, "0005")
    async with runtime.db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, email, name, password_hash, is_admin, created_at)"
                " VALUES (1, 'a@contoso.com', '', 'x', 0, '2026-01-01'),"
                " (2, 'b@contoso.com', '', 'x', 0, '2026-01-01')"
            )
        )
    yield runtime
    await runtime.aclose()


async def test_upgrade_adds_one_account_per_user_and_subject(database: Runtime) -> None:
    engine = database.db.engine
    await upgrade(engine, "0006")
    assert await current_revision(engine) == "0006"
    async with engine.begin() as conn:
        await conn.execute(text(ACCOUNT), {"user": 1, "subject": "oid-a"})
    for user, subject in ((1, "oid-other"), (2, "oid-a")):
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(text(ACCOUNT), {"user": user, "subject": subject})
    async with engine.begin() as conn:
        await conn.execute(text("PRAGMA foreign_keys = ON"))
        await conn.execute(text("DELETE FROM users WHERE id = 1"))
        left = await conn.scalar(text("SELECT count(*) FROM microsoft_accounts"))
    assert left == 0


async def test_downgrade_drops_the_table(database: Runtime) -> None:
    engine = database.db.engine
    await upgrade(engine, "0006")

    def down(connection: Connection) -> list[str]:
        command.downgrade(alembic_config(connection), "0005")
        return inspect(connection).get_table_names()

    async with engine.begin() as conn:
        tables = await conn.run_sync(down)
    assert "microsoft_accounts" not in tables and "users" in tables
    assert await current_revision(engine) == "0005"
