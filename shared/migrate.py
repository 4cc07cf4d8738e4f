"""Apply the Alembic schema migrations through the async engine, on the caller's loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config for the project's migrations, lending it `connection` when given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database of `engine` to `revision` (default: the newest)."""

    def _upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    await _migrate(engine, _upgrade)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Take the database of `engine` back to `revision`."""

    def _downgrade(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), revision)

    await _migrate(engine, _downgrade)


async def _migrate(engine: AsyncEngine, step: Callable[[Connection], None]) -> None:
    """Run `step` in one transaction; on SQLite with foreign keys off while it runs.

    SQLite changes most table definitions by copying the table and dropping the old one
    (Alembic's batch mode). With foreign keys enforced, that drop would apply every ON DELETE
    rule that points at the table: SET NULL would clear references, CASCADE delete rows. So
    they are off during the migration, as SQLite documents for schema changes, and checked
    before it commits: a migration that left a dangling reference fails, naming the rows.
    """
    async with engine.connect() as conn:
        is_sqlite = conn.dialect.name == "sqlite"
        if is_sqlite:
            # Outside a transaction, or SQLite ignores it (the driver begins none for PRAGMA).
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            await conn.run_sync(step)
            if is_sqlite:
                dangling = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if dangling:
                    await conn.rollback()
                    raise RuntimeError(
                        "the migration left rows pointing at rows that do not exist "
                        f"(table, rowid, parent, key): {[tuple(r) for r in dangling[:10]]}"
                    )
            await conn.commit()
        finally:
            if is_sqlite:
                await conn.exec_driver_sql("PRAGMA foreign_keys=ON")


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    from alembic.runtime.migration import MigrationContext

    def _current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_current)
