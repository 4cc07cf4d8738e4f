"""`Database.ping`: a cheap read that fails, naming the database, when it is gone or unreadable."""

from __future__ import annotations

import os
import socket
import stat
import uuid
from pathlib import Path

import asyncpg
import pytest

from shared.config import load_settings
from shared.db import Database, describe_outage, unavailable_error
from shared.errors import DatabaseUnavailable
from tests.conftest import PG_ADMIN_DSN, make_environ


def corrupt(path: Path) -> None:
    """Overwrite a SQLite database (and its WAL files) with bytes that are not a database."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            size = name.stat().st_size
            with open(name, "r+b") as fh:
                fh.write(b"\x13garbage!" * (size // 9 + 1))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_ping_reads_a_healthy_sqlite_file(environ: dict[str, str]) -> None:
    db = Database(load_settings(environ))
    try:
        await db.ping()
    finally:
        await db.dispose()


async def test_ping_fails_on_a_corrupted_sqlite_file(environ: dict[str, str]) -> None:
    settings = load_settings(environ)
    db = Database(settings)
    try:
        await db.ping()
        corrupt(Path(settings.database_url.split("///", 1)[1]))
        with pytest.raises(DatabaseUnavailable, match=r"cannot read the SQLite file .*app\.db"):
            await db.ping()
    finally:
        await db.dispose()


async def test_a_removed_sqlite_file_is_not_silently_recreated(environ: dict[str, str]) -> None:
    settings = load_settings(environ)
    path = Path(settings.database_url.split("///", 1)[1])
    db = Database(settings)
    try:
        os.unlink(path)
        with pytest.raises(DatabaseUnavailable, match="unable to open database file") as caught:
            await db.ping()
        assert path.name not in os.listdir(path.parent)
        assert caught.value.status == 503 and caught.value.code == "database_unavailable"
    finally:
        await db.dispose()


def test_a_new_sqlite_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        Database(
            load_settings(make_environ(tmp_path, AA_DATABASE_URL=f"sqlite:///{tmp_path}/n.db"))
        )
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "n.db").stat().st_mode) == 0o600


@pytest.mark.postgres
async def test_ping_names_an_unreachable_postgres_without_its_password(tmp_path: Path) -> None:
    port = closed_port()
    url = f"postgresql://aa:s3cret-pw@127.0.0.1:{port}/prod"
    db = Database(load_settings(make_environ(tmp_path, AA_DATABASE_URL=url)))
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await db.ping()
    finally:
        await db.dispose()
    message = caught.value.message
    assert f"PostgreSQL database 'prod' at 127.0.0.1:{port}" in message
    assert "check that the server is running" in message
    assert "s3cret" not in message and "Traceback" not in message


@pytest.mark.postgres
async def test_ping_fails_once_the_database_is_dropped(tmp_path: Path) -> None:
    name = f"aa_ping_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
        db = Database(load_settings(make_environ(tmp_path, AA_DATABASE_URL=url)))
        try:
            await db.ping()
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            with pytest.raises(DatabaseUnavailable, match=f"PostgreSQL database '{name}'"):
                await db.ping()
        finally:
            await db.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_a_refused_statement_is_not_an_outage() -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    refused = IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
    missing_table = OperationalError("SELECT", {}, Exception("no such table: users"))
    locked = OperationalError("SELECT", {}, Exception("unable to open database file"))
    assert unavailable_error(refused) is None
    assert unavailable_error(missing_table) is None
    assert unavailable_error(ConnectionRefusedError(111, "Connection refused")) is not None
    assert unavailable_error(locked) is not None
    sentence = describe_outage(locked, "sqlite+aiosqlite:////srv/aa.db")
    assert sentence.startswith("cannot read the SQLite file /srv/aa.db (Exception: unable to open")
