"""PostgreSQL connections: tested as they leave the pool only after sitting idle, replaced when
the server dropped them; bare reads run in autocommit (no BEGIN/ROLLBACK round trips)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.config import load_settings
from shared.db import Database, engine_for_url

pytestmark = pytest.mark.postgres


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT pg_backend_pid()")))


async def terminate(pid: int, pg_database: str) -> None:
    """Kill one server backend, as a restart, a failover or an idle timeout would."""
    admin = await asyncpg.connect(pg_database)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        deadline = time.monotonic() + 10
        while await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            assert time.monotonic() < deadline, f"backend {pid} still there after 10 s"
            await asyncio.sleep(0.02)
    finally:
        await admin.close()


@pytest.fixture
async def engines(pg_database: str) -> AsyncIterator[list[AsyncEngine]]:
    made: list[AsyncEngine] = []
    yield made
    for engine in made:
        await engine.dispose()


def url_of(pg_database: str) -> str:
    return pg_database.replace("postgresql://", "postgresql+asyncpg://")


async def test_an_idle_connection_the_server_dropped_is_replaced_before_use(
    pg_database: str, engines: list[AsyncEngine]
) -> None:
    # With no idle allowance every returning connection counts as idle: it is tested.
    engine = engine_for_url(url_of(pg_database), pool_size=1, max_overflow=0, idle_ping_s=0)
    engines.append(engine)
    first = await backend_pid(engine)
    await terminate(first, pg_database)
    second = await backend_pid(engine)  # no error: the test failed, the pool reconnected
    assert second != first


async def test_a_busy_connection_is_not_tested_and_a_dropped_one_fails_once(
    pg_database: str, engines: list[AsyncEngine]
) -> None:
    """The price of skipping the test on busy connections: a connection killed between two
    requests a moment apart fails the second one; the pool then starts afresh."""
    engine = engine_for_url(url_of(pg_database), pool_size=1, max_overflow=0, idle_ping_s=3600)
    engines.append(engine)
    first = await backend_pid(engine)
    await terminate(first, pg_database)
    with pytest.raises(DBAPIError) as failure:
        await backend_pid(engine)
    assert failure.value.connection_invalidated
    assert await backend_pid(engine) != first


async def test_bare_reads_run_in_autocommit_and_sessions_in_a_transaction(
    pg_database: str, tmp_path: Path
) -> None:
    settings = load_settings(
        {
            "AA_ENV": "testing",
            "AA_SECRET_KEY": "test-secret-key-0123456789abcdef",
            "AA_VAR_DIR": str(tmp_path / "var"),
            "AA_DATABASE_URL": url_of(pg_database),
        }
    )
    db = Database(settings)
    try:
        # txid_current() assigns the running transaction an id: in autocommit each statement
        # is a transaction of its own, inside one the id stays.
        async with db.reading() as conn:
            first = await conn.scalar(text("SELECT txid_current()"))
            second = await conn.scalar(text("SELECT txid_current()"))
        assert first != second
        async with db.session() as session:
            first = await session.scalar(text("SELECT txid_current()"))
            second = await session.scalar(text("SELECT txid_current()"))
        assert first == second
        # The switch stays on the connections `reading` hands out: a session after it is
        # transactional again on the same pooled connection.
        async with db.reading() as conn:
            await conn.scalar(text("SELECT 1"))
        async with db.read_session() as session:
            first = await session.scalar(text("SELECT txid_current()"))
            second = await session.scalar(text("SELECT txid_current()"))
        assert first == second
    finally:
        await db.dispose()
