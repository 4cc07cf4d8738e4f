"""The gateway's database: its own small engine, and creating its tables safely at start-up."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, event, func, insert, inspect, literal_column, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from asgi_gateway.errors import FlagStoreUnavailable
from asgi_gateway.tables import (
    COUNT_COLUMNS,
    QUARTER_MINUTES,
    metadata,
    quarter_stats_table,
    state_table,
    stats_table,
)

_log = logging.getLogger(__name__)
# Per connection on SQLite: readers beside the one writer (WAL), and a writer that waits for
# the lock instead of failing at once with "database is locked".
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA synchronous=NORMAL",
)
# Any constant will do: it only has to be the same in every process creating these tables.
_SCHEMA_LOCK_KEY = 0x6761_7465  # "gate"
_SCHEMA_ATTEMPTS = 6


def open_engine(database_url: str, *, pool_size: int = 2, max_overflow: int = 2) -> AsyncEngine:
    """A small async engine for the gateway's tables (SQLite through aiosqlite, or PostgreSQL).

    No pre-ping: the flag refresher reads several times a second and already treats a failed
    read as "keep the last snapshot"; a ping per checkout would double its cost.
    """
    url = make_url(database_url)
    is_sqlite = url.get_backend_name() == "sqlite"
    options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": max_overflow}
    if is_sqlite:
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": 5.0}
    engine = create_async_engine(url, **options)
    if is_sqlite:

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(pragma)
            cursor.close()

    return engine


async def ensure_schema(engine: AsyncEngine) -> None:
    """Create the gateway's tables, add columns newer versions declare, and the version row.

    Safe when any number of workers and machines start at once: on PostgreSQL the work runs
    under an advisory lock; on SQLite (or when a peer still wins a race) the attempt that
    lost is retried, and finds what the winner created. Raises FlagStoreUnavailable naming
    the cause when the database cannot be used at all.
    """
    for attempt in range(1, _SCHEMA_ATTEMPTS + 1):
        try:
            async with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    await conn.execute(text(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})"))
                await conn.run_sync(_create_and_extend)
                version = await conn.scalar(
                    select(state_table.c.version).where(state_table.c.id == 1)
                )
                if version is None:
                    await conn.execute(insert(state_table).values(id=1, version=0))
            return
        except (DBAPIError, OSError) as exc:
            # "table already exists", a duplicate version row, "database is locked": a peer
            # got there first. Anything else (a refused connection) fails every attempt.
            if attempt == _SCHEMA_ATTEMPTS:
                raise FlagStoreUnavailable(_schema_failure(engine, exc)) from exc
            _log.info("creating the gateway's tables raced another process (%s); retrying", exc)
            await asyncio.sleep(random.uniform(0.02, 0.1) * attempt)
        except SQLAlchemyError as exc:
            raise FlagStoreUnavailable(_schema_failure(engine, exc)) from exc


def _schema_failure(engine: AsyncEngine, exc: BaseException) -> str:
    where = engine.url.render_as_string(hide_password=True)
    return (
        f"cannot create the gateway's tables in {where}: {describe_error(exc)} "
        "(check that the database is running and reachable, and that its user may create tables)"
    )


def _create_and_extend(conn: Connection) -> None:
    has_quarters = inspect(conn).has_table(quarter_stats_table.name)
    metadata.create_all(conn, checkfirst=True)
    if not has_quarters:
        _fill_quarters(conn)
    inspector = inspect(conn)
    preparer = conn.dialect.identifier_preparer
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            # Only nullable columns are ever added, so old rows stay valid without a default.
            assert column.nullable, f"{table.name}.{column.name} must be nullable to be added"
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(
                text(
                    f"ALTER TABLE {preparer.format_table(table)} "
                    f"ADD COLUMN {preparer.format_column(column)} {kind}"
                )
            )
            _log.warning("added column %s.%s to the gateway's tables", table.name, column.name)


def _fill_quarters(conn: Connection) -> None:
    """Sum the stored minutes into the new per-quarter table (an upgrade from a version
    without it). Runs in the transaction that created the table, so no recorder writes a
    quarter meanwhile."""
    columns = [stats_table.c[name] for name in COUNT_COLUMNS]
    # A literal divisor: PostgreSQL matches GROUP BY to the select list by text, and two bound
    # parameters would differ.
    divisor = literal_column(str(QUARTER_MINUTES), Integer)
    quarter = (stats_table.c.minute // divisor).label("quarter")
    conn.execute(
        insert(quarter_stats_table).from_select(
            ["quarter", "endpoint", "backend", *COUNT_COLUMNS],
            select(
                quarter, stats_table.c.endpoint, stats_table.c.backend, *map(func.sum, columns)
            ).group_by(quarter, stats_table.c.endpoint, stats_table.c.backend),
        )
    )


def describe_error(exc: BaseException) -> str:
    """The driver's one-line reason, without the SQL and parameters SQLAlchemy appends.

    The message may reach admin API clients and logs; it never carries statement parameters.
    """
    orig = getattr(exc, "orig", None)
    message = str(orig if orig is not None else exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__
