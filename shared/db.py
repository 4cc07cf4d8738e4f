"""The process's async engine and session factory: SQLite (aiosqlite) or PostgreSQL (asyncpg)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import event, exc, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.config import Settings
from shared.dry_run import DryRun, SnapshotCopies, current_dry_run, open_dry_run
from shared.errors import DatabaseUnavailable

__all__ = [
    "Database",
    "create_engine",
    "describe_database",
    "describe_outage",
    "engine_for_url",
    "unavailable_error",
]

SQLITE_BUSY_TIMEOUT_MS = 5000
# A pooled PostgreSQL connection idle this long is tested before use (see _ping_after_idle).
IDLE_PING_S = 10.0
# What an outage answer tells clients: a restart or failover usually takes seconds.
UNAVAILABLE_RETRY_AFTER_S = 5
# The errors of a database that cannot be reached or read, as opposed to a bad statement.
_OUTAGE_ERRORS = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, OSError)
_SQLITE_STATEMENT_ERRORS = ("no such ", "near ", "table ", "duplicate column")
# asyncpg's own names for "no such database", "server starting/stopping", "connection gone".
_ASYNCPG_OUTAGES = frozenset(
    {
        "InvalidCatalogNameError",
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "AdminShutdownError",
        "CrashShutdownError",
        "TooManyConnectionsError",
    }
)


def create_engine(settings: Settings, **overrides: Any) -> AsyncEngine:
    """One async engine for `settings.database_url`, tuned per dialect (WAL and FKs on SQLite)."""
    return engine_for_url(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        **overrides,
    )


def engine_for_url(
    database_url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    idle_ping_s: float = IDLE_PING_S,
    **overrides: Any,
) -> AsyncEngine:
    """An async engine for sqlite+aiosqlite or postgresql+asyncpg, tuned per dialect.

    On PostgreSQL a pooled connection that sat idle for `idle_ping_s` or more is tested before
    it is handed out (and replaced if the server dropped it); busy ones are not.
    """
    url = make_url(database_url)
    options: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "json_deserializer": _json_loads,
    }
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            url = _sqlite_file_url(url)
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    options.update(overrides)
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        _rollback_only_open_transactions(engine)
    elif not options.get("pool_pre_ping"):
        _ping_after_idle(engine, idle_ping_s)
    return engine


def _ping_after_idle(engine: AsyncEngine, idle_s: float) -> None:
    """Test a connection as it leaves the pool only when it sat idle for `idle_s` or more.

    A server drops connections that sit idle (restart, failover, idle timeouts); SQLAlchemy's
    pool_pre_ping tests every checkout, which on asyncpg is three round trips (BEGIN, a
    statement, COMMIT) on every request, more than a whole page read. Connections in steady
    use skip it; one that fails its test is replaced by the pool (DisconnectionError).
    """
    dialect = engine.sync_engine.dialect

    def checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_s:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError(
                f"an idle pooled connection failed its test: {error}"
            ) from error

    event.listen(engine.sync_engine, "checkin", checkin)
    event.listen(engine.sync_engine, "checkout", checkout)


# PostgreSQL SQLSTATEs of a transaction that collided with another: serialization failure,
# deadlock, lock not available.
_CONFLICT_STATES = frozenset({"40001", "40P01", "55P03"})


def is_write_conflict(error: BaseException) -> bool:
    """True for a database error that means another transaction's write got in the way."""
    state = getattr(error, "sqlstate", None) or getattr(
        getattr(error, "__cause__", None), "sqlstate", None
    )
    if state in _CONFLICT_STATES:
        return True
    message = str(error).lower()
    return "database is locked" in message or "database is busy" in message


def _sqlite_file_url(url: URL) -> URL:
    """Create the database file readable by its owner only, and never let SQLite create it.

    SQLite creates a missing file on connect with the umask's mode (often world-readable);
    and when the file is removed under a running server, the next connection would quietly
    start an empty database. Opening it `mode=rw` turns both into a clear error instead.
    """
    path = Path(url.database or "").resolve()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return url.set(
        database="file:" + quote(str(path)), query={**url.query, "mode": "rw", "uri": "true"}
    )


def describe_database(database_url: str) -> str:
    """The database as messages name it: host, port and name, or the SQLite file; no password."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database}"
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    return f"PostgreSQL database {url.database!r} at {where}"


def unavailable_error(error: BaseException) -> DatabaseUnavailable | None:
    """The 503 clients get when `error` means the database cannot be reached or read, else None.

    A statement the database refused (a constraint, bad SQL) is not an outage and stays
    what it is; a refused connection, a dropped database or an unreadable file is. The
    client's message names no host: `describe_outage` is for logs and the command line.
    """
    if not _is_outage(error):
        return None
    return DatabaseUnavailable(
        f"the database is unavailable; try again in {UNAVAILABLE_RETRY_AFTER_S} seconds",
        retry_after_s=UNAVAILABLE_RETRY_AFTER_S,
    )


def describe_outage(error: BaseException, database_url: str) -> str:
    """One sentence for operators: which database failed, the driver's reason, what to check."""
    where = describe_database(database_url)
    if make_url(database_url).get_backend_name() == "sqlite":
        return (
            f"cannot read the {where} ({_reason(error)}); check that the file exists, is "
            "readable and holds the database ('admin-assistant db upgrade' creates it)"
        )
    return (
        f"cannot reach the {where} ({_reason(error)}); check that the server is running and "
        "accepts connections there, and that AA_DATABASE_URL names the right host, port, "
        "database and user"
    )


def is_missing_schema(error: BaseException) -> bool:
    """True when a statement failed because a table does not exist: a database that was never
    migrated (or is behind the code), which `admin-assistant db upgrade` fixes."""
    inner = getattr(error, "orig", None) or error
    if getattr(inner, "sqlstate", None) == "42P01":  # PostgreSQL's undefined_table
        return True
    return "no such table" in str(inner) or "UndefinedTableError" in type(inner).__name__


def _is_outage(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, exc.DBAPIError) and current.connection_invalidated:
            return True
        # SQLite reports a bad statement (a missing table, a typo) as an OperationalError too;
        # that is a bug or a missing migration, not an outage, as on PostgreSQL.
        if isinstance(current, exc.OperationalError) and str(current.orig).startswith(
            _SQLITE_STATEMENT_ERRORS
        ):
            return False
        if isinstance(current, _OUTAGE_ERRORS):
            return True
        # SQLite's "file is not a database" is a bare DatabaseError (not one of its
        # subclasses such as IntegrityError, which are the caller's own mistakes).
        if type(current) is exc.DatabaseError:
            return True
        if type(current).__name__ in _ASYNCPG_OUTAGES:
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def _json_loads(value: str) -> Any:
    """json.loads, with the values most JSON columns hold (no categories, no recurrence)
    answered without the parser: a page of rows decodes two per row."""
    if value == "[]":
        return []
    if value == "null":
        return None
    return json.loads(value)


def _rollback_only_open_transactions(engine: AsyncEngine) -> None:
    """Send ROLLBACK on SQLite only when a transaction is open.

    SQLite opens a transaction for writes only, so after a read there is nothing to roll back,
    yet every connection's end (and the pool's reset) sends one, a round trip to aiosqlite's
    thread: one of five per read. Whether a transaction is open is known on this side (sqlite3's
    `in_transaction`, read without a trip to that thread).
    """
    dialect = engine.sync_engine.dialect
    rollback = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        driver = dbapi_connection.driver_connection
        if driver is None or driver.in_transaction:
            rollback(dbapi_connection)

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; busy_timeout makes a writer wait for the
    # lock instead of failing at once with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """An engine plus its session factory; one per process, created on the loop that uses it."""

    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or create_engine(settings)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # Bare reads on PostgreSQL run in autocommit: each statement is its own snapshot, and
        # no BEGIN and ROLLBACK round trips wrap them (the same pool; a client-side switch).
        # SQLite starts no transaction for a read anyway, and switching there costs a hop.
        self._reads = (
            self.engine
            if self.engine.dialect.name == "sqlite"
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._pid = os.getpid()
        # Dry runs in progress, by the id of their connection: a write conflict on one of
        # them is noted on it (handle_error is an engine-wide hook).
        self._dry_runs: dict[int, DryRun] = {}
        self._snapshot_copies = SnapshotCopies()
        event.listen(self.engine.sync_engine, "handle_error", self._note_conflict)

    def _note_conflict(self, context: Any) -> None:
        connection = getattr(context, "connection", None)
        dry = self._dry_runs.get(id(connection)) if connection is not None else None
        if dry is not None and is_write_conflict(context.original_exception):
            dry.conflicted = True

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed when the block ends, rolled back on error.

        Inside a dry run it works in a savepoint of the dry run's transaction instead.
        """
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; closing it ends the transaction and leaves loaded objects usable."""
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A bare connection for Core reads (no session, no ORM objects): the cheapest way to
        read a page. Each statement sees the data as of its own start (autocommit); inside a
        dry run it reads the dry run's view, like every session does."""
        dry = current_dry_run()
        if dry is not None and dry.owner is self and dry.connection is not None:
            yield dry.connection
            return
        async with self._reads.connect() as conn:
            yield conn

    def _sessions(self) -> AsyncSession:
        dry = current_dry_run()
        if dry is None or dry.owner is not self:
            return self.sessionmaker()
        if dry.connection is None:
            raise RuntimeError("a dry run must be prepared (DryRun.prepare) before it is used")
        self._dry_runs[id(dry.connection.sync_connection)] = dry
        return self.sessionmaker(bind=dry.connection, join_transaction_mode="create_savepoint")

    @asynccontextmanager
    async def dry_run(self) -> AsyncIterator[DryRun]:
        """Run the block's service calls without keeping any of their writes (`shared.dry_run`).

        The dry run's view of the data is fixed on entry, so enter it before the real request
        runs when the dry run must see what that request saw; call `prepare()` before use.
        """
        async with open_dry_run(self.engine, self, self._snapshot_copies) as dry:
            try:
                yield dry
            finally:
                if dry.connection is not None:
                    self._dry_runs.pop(id(dry.connection.sync_connection), None)

    async def ping(self) -> None:
        """One cheap read of a real table; DatabaseUnavailable (naming the database) if it fails.

        On SQLite it reads the schema, so a corrupted or replaced file fails here too (a bare
        `SELECT 1` succeeds on any file).
        """
        statement = "SELECT count(*) FROM sqlite_master" if self.settings.is_sqlite else "SELECT 1"
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text(statement))
        except Exception as error:
            if not _is_outage(error):
                raise
            raise DatabaseUnavailable(
                describe_outage(error, self.settings.database_url),
                retry_after_s=UNAVAILABLE_RETRY_AFTER_S,
            ) from error

    async def dispose(self) -> None:
        """Close every pooled connection; await it on the loop the engine ran on."""
        await self._snapshot_copies.aclose()
        await self.engine.dispose()

    def forget_pool_after_fork(self) -> None:
        """In a forked child, drop inherited connections without closing the parent's."""
        if os.getpid() != self._pid:
            self.engine.sync_engine.dispose(close=False)
            self._snapshot_copies = SnapshotCopies()  # the parent's copies live in its threads
            self._pid = os.getpid()


def _reason(error: BaseException) -> str:
    """The driver's own words for a failure, first line only (SQLAlchemy appends SQL and a URL)."""
    inner = getattr(error, "orig", None) or error
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0] if lines else 'no message'}"
