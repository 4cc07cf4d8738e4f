"""Database.dry_run (shared/dry_run.py): writes never kept, data as of entry, conflicts noted."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from shared.config import load_settings
from shared.dry_run import current_dry_run
from shared.runtime import Runtime


@pytest.fixture
async def live(db_environ: dict[str, str]) -> AsyncIterator[Runtime]:
    runtime = Runtime(load_settings(db_environ))
    try:
        yield runtime
    finally:
        await runtime.aclose()


async def emails(runtime: Runtime) -> list[str]:
    async with runtime.db.reading() as conn:
        rows = await conn.execute(text("SELECT email FROM users ORDER BY email"))
        return [row[0] for row in rows]


async def test_writes_in_a_dry_run_are_seen_inside_and_never_kept(live: Runtime) -> None:
    await live.services.users.create("ann@example.com", "pw-ann-0123456789")
    async with live.db.dry_run() as dry:
        await dry.prepare()
        await dry.prepare()  # a second prepare keeps the first connection
        assert current_dry_run() is dry
        await live.services.users.create("ben@example.com", "pw-ben-0123456789")
        assert await emails(live) == ["ann@example.com", "ben@example.com"]
    assert current_dry_run() is None
    assert await emails(live) == ["ann@example.com"]
    # The next dry run starts from the database, not from what the last one wrote.
    async with live.db.dry_run() as dry:
        await dry.prepare()
        assert await emails(live) == ["ann@example.com"]


async def test_a_dry_run_sees_the_data_as_of_its_entry(live: Runtime) -> None:
    outside = contextvars.copy_context()
    async with live.db.dry_run() as dry:
        # The real request, in its own context, writes after the dry run was entered.
        real = asyncio.get_running_loop().create_task(
            live.services.users.create("cat@example.com", "pw-cat-0123456789"), context=outside
        )
        await real
        await dry.prepare()
        assert await emails(live) == []
    assert await emails(live) == ["cat@example.com"]


async def test_an_unprepared_sqlite_dry_run_refuses_sessions(environ: dict[str, str]) -> None:
    runtime = Runtime(load_settings(environ))
    try:
        async with runtime.db.dry_run() as dry:
            assert dry.connection is None
            with pytest.raises(RuntimeError, match=r"must be prepared \(DryRun.prepare\)"):
                await runtime.services.users.create("dan@example.com", "pw-dan-0123456789")
    finally:
        await runtime.aclose()


async def test_remote_writes_are_recorded_with_stand_in_ids(live: Runtime) -> None:
    async with live.db.dry_run() as dry:
        first = dry.record_remote_write("graph", "create", "calendar 1", {"subject": "a"})
        second = dry.record_remote_write("graph", "delete", "event x", None)
    assert (first, second) == ("dry-run-1", "dry-run-2")
    assert [w["action"] for w in dry.remote_writes] == ["create", "delete"]


async def test_many_dry_runs_at_once_each_get_their_own_copy(live: Runtime) -> None:
    await live.services.users.create("eve@example.com", "pw-eve-0123456789")

    async def one(index: int) -> list[str]:
        async with live.db.dry_run() as dry:
            await dry.prepare()
            await live.services.users.create(f"u{index}@example.com", "pw-u-0123456789")
            return await emails(live)

    # More at once than the copies kept idle (4): the extra copies are closed, not kept.
    seen = await asyncio.gather(*(one(i) for i in range(6)))
    assert seen == [["eve@example.com", f"u{i}@example.com"] for i in range(6)]
    assert await emails(live) == ["eve@example.com"]


@pytest.mark.postgres
async def test_a_dry_write_that_collides_with_a_real_one_marks_the_dry_run_conflicted(
    pg_environ: dict[str, str],
) -> None:
    runtime = Runtime(load_settings(pg_environ))
    try:
        await runtime.services.users.create("fay@example.com", "pw-fay-0123456789")
        outside = contextvars.copy_context()
        async with runtime.db.dry_run() as dry:
            await dry.prepare()
            real = asyncio.get_running_loop().create_task(
                runtime.services.users.set_mailbox("fay@example.com", "fay@example.org"),
                context=outside,
            )
            await real
            assert not dry.conflicted
            with pytest.raises(Exception, match="could not serialize access"):
                await runtime.services.users.set_mailbox("fay@example.com", "fay@example.net")
            assert dry.conflicted
        async with runtime.db.reading() as conn:
            mailbox = await conn.scalar(text("SELECT mailbox FROM users"))
        assert mailbox == "fay@example.org"
    finally:
        await runtime.aclose()
