"""Creating the gateway's tables when many processes start at once, and adding columns."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.control.database import ensure_schema, open_engine
from asgi_gateway.control.store import FlagStore
from asgi_gateway.errors import FlagStoreUnavailable
from asgi_gateway.tables import metadata
from tests.conftest import PG_ADMIN_DSN, ServerProcess

STARTERS = 8


async def start_together(urls: list[str]) -> None:
    """Open one engine per starter and create the schema from all of them at once."""
    engines = [open_engine(url) for url in urls]
    try:
        await asyncio.gather(*(ensure_schema(engine) for engine in engines))
    finally:
        await asyncio.gather(*(engine.dispose() for engine in engines))


async def tables_of(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


@pytest.mark.parametrize("round_", range(5))
async def test_many_starters_on_a_fresh_sqlite_file_all_succeed(
    tmp_path: Path, round_: int
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / f'fresh-{round_}.db'}"

    await start_together([url] * STARTERS)

    engine = open_engine(url)
    try:
        assert set(metadata.tables) <= await tables_of(engine)
        assert await FlagStore(engine).version() == 0  # one version row, not eight
    finally:
        await engine.dispose()


@pytest.fixture
async def fresh_pg_url() -> AsyncIterator[str]:
    """An empty PostgreSQL database of this test's own."""
    name = f"aa_schema_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_many_starters_on_a_fresh_postgres_database_all_succeed(fresh_pg_url: str) -> None:
    await start_together([fresh_pg_url] * STARTERS)

    engine = open_engine(fresh_pg_url)
    try:
        assert set(metadata.tables) <= await tables_of(engine)
        assert await FlagStore(engine).version() == 0
    finally:
        await engine.dispose()


async def test_a_column_added_in_a_newer_version_is_added_to_old_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        # rollout_flags as an older release created it: without the settings column.
        conn.execute(
            "CREATE TABLE rollout_flags (endpoint VARCHAR(200) PRIMARY KEY, mode VARCHAR(16) "
            "NOT NULL, percent FLOAT NOT NULL, sticky_by VARCHAR(120) NOT NULL, compare_ignore "
            "JSON NOT NULL, guard JSON NOT NULL, declared_fingerprint VARCHAR(32), updated_at "
            "DATETIME NOT NULL, updated_by VARCHAR(320) NOT NULL)"
        )
        conn.execute(
            "INSERT INTO rollout_flags VALUES ('a.b', 'canary', 25, 'user', '[]', '{}', NULL, "
            "'2026-01-01 00:00:00', 'old')"
        )
    engine = open_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await ensure_schema(engine)
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda c: [col["name"] for col in inspect(c).get_columns("rollout_flags")]
            )
        assert "settings" in columns
        state = await FlagStore(engine).load()
        assert (state.flags["a.b"].mode, state.flags["a.b"].percent) == ("canary", 25.0)
    finally:
        await engine.dispose()


async def test_an_unreachable_database_names_where_and_what_to_check() -> None:
    engine = open_engine("postgresql+asyncpg://app:s3cret-pw@127.0.0.1:1/flags")
    try:
        with pytest.raises(FlagStoreUnavailable) as caught:
            await ensure_schema(engine)
    finally:
        await engine.dispose()
    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert "s3cret-pw" not in message
    assert "check that the database is running and reachable" in message


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_two_workers_start_together_on_a_fresh_sqlite_file(
    round_: int,
    tmp_path: Path,
    environ: dict[str, str],
    flags_file: Path,
    spawn: Callable[..., ServerProcess],
) -> None:
    """The reported failure: one worker lost the race and uvicorn stopped the parent."""
    fresh = tmp_path / f"fresh-{round_}.db"
    server = spawn({**environ, "AA_DATABASE_URL": f"sqlite:///{fresh}"}, workers=2)
    for _ in range(10):  # new connections: both workers answer
        assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
    assert server.proc is not None and server.proc.poll() is None
    logs = server.logs()
    assert "already exists" not in logs
    assert "Traceback" not in logs
