"""Dry runs: service calls whose database writes are never kept and whose remote calendar writes
are recorded instead of made.

Used by the gateway's shadow of write endpoints: the twin runs inside `Database.dry_run()`,
which is entered before the real (legacy) request runs. Entering fixes the dry run's view of
the data, so the twin sees the data as the real request saw it; the twin itself runs after
`prepare()`, concurrently with or after the real request:

* SQLite: entering opens a read transaction (a WAL snapshot) on a pooled connection; `prepare`
  copies that snapshot into a private in-memory database (SQLite's backup API), where the twin
  reads and writes. The twin never takes the file's one write lock, so it never stalls a real
  write, and it can never collide with one. The copy costs a read of the whole database per
  dry run: keep `shadow.sample` low on a large one.
* PostgreSQL: entering opens a REPEATABLE READ transaction and takes its snapshot; the twin
  works in it (in savepoints) and it is rolled back. A write that collides with one the real
  request made since (the same row, a serialization failure) fails, marks the dry run
  `conflicted`, and its answer is not compared. Inserts still advance sequences.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import aiosqlite
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

__all__ = ["DryRun", "SnapshotCopies", "current_dry_run", "open_dry_run"]


@dataclass
class DryRun:
    """One dry run: where its sessions work, and the remote writes it did not make."""

    owner: Any  # the Database whose sessions this dry run redirects
    connection: AsyncConnection | None = None  # set once prepared
    remote_writes: list[dict[str, Any]] = field(default_factory=list)
    # Set when a write collided with the real request's (the dry run could not do the same).
    conflicted: bool = False
    _prepare: Callable[[], Awaitable[AsyncConnection]] | None = None

    async def prepare(self) -> None:
        """Make the connection the dry run works on (a copy of the snapshot, on SQLite)."""
        if self._prepare is not None:
            prepare, self._prepare = self._prepare, None
            self.connection = await prepare()

    def record_remote_write(self, provider: str, action: str, target: str, body: Any) -> str:
        """Note a remote write that a dry run does not make; returns a stand-in id for it."""
        self.remote_writes.append(
            {"provider": provider, "action": action, "target": target, "body": body}
        )
        return f"dry-run-{len(self.remote_writes)}"


_current: ContextVar[DryRun | None] = ContextVar("admin_assistant_dry_run", default=None)


def current_dry_run() -> DryRun | None:
    """The dry run this code runs inside, if any."""
    return _current.get()


class SnapshotCopies:
    """Private in-memory SQLite databases that dry runs copy a snapshot into, reused.

    Opening one costs an engine, a connection and its thread (a few milliseconds); reusing
    them leaves a dry run the copy itself (SQLite's backup API replaces the whole target).
    """

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._idle: list[tuple[AsyncEngine, AsyncConnection]] = []
        self._open: list[AsyncEngine] = []
        self._empty: Any = None  # an empty in-memory database (aiosqlite), to clear copies

    async def _blank(self) -> Any:
        if self._empty is None:
            empty = await aiosqlite.connect(":memory:")
            if self._empty is None:
                self._empty = empty
            else:
                # Another copy came back while this one was opening: keep one. A connection
                # left open keeps its (non-daemon) thread, and the process, alive at exit.
                await empty.close()
        return self._empty

    async def take(self) -> tuple[AsyncEngine, AsyncConnection]:
        if self._idle:
            return self._idle.pop()
        memory = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
        self._open.append(memory)
        return memory, await memory.connect()

    async def give_back(self, memory: AsyncEngine, conn: AsyncConnection) -> None:
        if conn.in_transaction():
            await conn.rollback()
        if len(self._idle) < self.keep:
            # Emptied (an empty database backed up over it), so an idle copy holds no data.
            raw = (await conn.get_raw_connection()).driver_connection
            blank = await self._blank()
            await blank.backup(raw)
            self._idle.append((memory, conn))
        else:
            await conn.close()
            self._open.remove(memory)
            await memory.dispose()
        _return_free_memory()

    async def aclose(self) -> None:
        """Close every copy (on the loop that used them)."""
        if self._empty is not None:
            empty, self._empty = self._empty, None
            await empty.close()
        idle, self._idle = self._idle, []
        for _, conn in idle:
            await conn.close()
        engines, self._open = self._open, []
        for memory in engines:
            await memory.dispose()


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc: its allocator manages on its own
        return None


_malloc_trim = _load_malloc_trim() if sys.platform.startswith("linux") else None


def _return_free_memory() -> None:
    """Hand the memory a copy freed back to the system (glibc keeps it otherwise).

    A copy is the size of the database, allocated in the arena of its connection's thread;
    freed, glibc keeps those pages for that arena, and a worker's memory climbs by a database
    at a time as copies land in other threads' arenas. A trim costs about a millisecond,
    little beside the copy itself.
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


@asynccontextmanager
async def open_dry_run(
    engine: AsyncEngine, owner: Any, copies: SnapshotCopies | None = None
) -> AsyncIterator[DryRun]:
    """A dry run over `engine`'s database, current in this context until the block ends.

    On SQLite, `copies` (kept by the caller across dry runs) supplies the in-memory copies.
    """
    if engine.dialect.name == "sqlite":
        opened = _sqlite(engine, owner, copies or SnapshotCopies(keep=0))
    else:
        opened = _postgres(engine, owner)
    async with opened as dry:
        token = _current.set(dry)
        try:
            yield dry
        finally:
            _current.reset(token)


@asynccontextmanager
async def _sqlite(engine: AsyncEngine, owner: Any, copies: SnapshotCopies) -> AsyncIterator[DryRun]:
    async with engine.connect() as pinned:
        await pinned.begin()
        # pysqlite begins only before a write: begin now, and read, to fix the WAL snapshot.
        await pinned.exec_driver_sql("BEGIN")
        await pinned.execute(text("SELECT count(*) FROM sqlite_master"))
        taken: list[tuple[AsyncEngine, AsyncConnection]] = []

        async def copy_snapshot() -> AsyncConnection:
            memory, target = await copies.take()
            taken.append((memory, target))
            await target.begin()
            source_raw = (await pinned.get_raw_connection()).driver_connection
            target_raw = (await target.get_raw_connection()).driver_connection
            await source_raw.backup(target_raw)  # one step: the pinned snapshot, whole
            await target.exec_driver_sql("PRAGMA foreign_keys=ON")
            await target.exec_driver_sql("BEGIN")  # savepoints need a real transaction
            return target

        dry = DryRun(owner, _prepare=copy_snapshot)
        try:
            yield dry
        finally:
            for memory, target in taken:
                await copies.give_back(memory, target)


@asynccontextmanager
async def _postgres(engine: AsyncEngine, owner: Any) -> AsyncIterator[DryRun]:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        transaction = await conn.begin()
        try:
            await conn.execute(text("SELECT 1"))  # takes the snapshot
            yield DryRun(owner, connection=conn)
        finally:
            await transaction.rollback()
