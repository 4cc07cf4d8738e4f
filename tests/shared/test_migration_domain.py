"""Migration 0004 on a database holding data from before it: what existing rows become."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from shared.config import load_settings
from shared.migrate import upgrade
from shared.runtime import Runtime
from tests.conftest import make_environ


@pytest.fixture
async def old_database(tmp_path: object) -> AsyncIterator[Runtime]:
    runtime = Runtime(load_settings(make_environ(tmp_path)))  # type: ignore[arg-type]
    await upgrade(runtime.db.engine, "0003")
    yield runtime
    await runtime.aclose()


async def test_existing_rows_keep_their_behaviour_and_copies_become_immutable(
    old_database: Runtime,
) -> None:
    statements = [
        "INSERT INTO users (id, email, name, password_hash, is_admin, created_at)"
        " VALUES (1, 'a@example.com', '', 'x', 0, '2026-01-01 00:00:00')",
        "INSERT INTO calendars (id, owner_id, name, role, provider, created_at, updated_at) VALUES"
        " (1, 1, 'Work', 'source', 'local', '2026-01-01', '2026-01-01'),"
        " (2, 1, 'Archive', 'archive', 'local', '2026-01-01', '2026-01-01')",
        "INSERT INTO archive_configurations (id, owner_id, name, source_calendar_id,"
        " archive_calendar_id, timezone, is_active, days_back, days_forward,"
        " excluded_categories, created_at, updated_at)"
        " VALUES (1, 1, 'C', 1, 2, 'UTC', 1, 7, 0, '[]', '2026-01-01', '2026-01-01')",
        "INSERT INTO appointments (id, calendar_id, subject, start_at, end_at, location,"
        " categories, is_private, provider_event_id, archived_from_id, created_at, updated_at)"
        " VALUES (1, 1, 'S', '2026-01-02 09:00', '2026-01-02 10:00', '', '[]', 1, 'e1', NULL,"
        " '2026-01-01', '2026-01-01'),"
        " (2, 2, 'S', '2026-01-02 09:00', '2026-01-02 10:00', '', '[]', 0, 'e1', 1,"
        " '2026-01-03', '2026-01-03'),"
        " (3, 2, 'Typed', '2026-01-02 11:00', '2026-01-02 12:00', '', '[]', 0, 'own', NULL,"
        " '2026-01-03', '2026-01-03')",
        "INSERT INTO action_log (id, config_id, actor, window_start, window_end, archived, skipped,"
        " duplicate, overlap, errors, details, status, started_at, finished_at, duration_ms)"
        " VALUES (1, 1, 'a', '2026-01-01', '2026-01-08', 1, 0, 2, 0, '[]', '{}', 'success',"
        " '2026-01-03', '2026-01-03', 5)",
    ]
    async with old_database.db.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))
    await upgrade(old_database.db.engine)
    async with old_database.db.engine.connect() as conn:
        config = (
            await conn.execute(
                text("SELECT allow_overlaps, mode, purpose FROM archive_configurations")
            )
        ).one()
        rows = (
            await conn.execute(
                text(
                    "SELECT id, sensitivity, archive_config_id, archived_at IS NOT NULL"
                    " FROM appointments ORDER BY id"
                )
            )
        ).all()
        log = (await conn.execute(text("SELECT added, unchanged, mode FROM action_log"))).one()
    assert tuple(config) == (1, "append", "general")
    assert [tuple(r) for r in rows] == [
        (1, "private", None, 0),
        (2, "normal", 1, 1),
        (3, "normal", None, 0),
    ]
    assert tuple(log) == (1, 2, "append")
