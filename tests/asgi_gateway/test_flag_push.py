"""Flags pushed, not polled: two gateway processes on one PostgreSQL database learn of a flip
through LISTEN/NOTIFY; a killed notification connection comes back and polling serves
meanwhile; SQLite (and AA_FLAGS_NOTIFY=off) keep polling.

Each process reports on /readyz the flag version it serves and how it learns of flips
(`flags_push`). Poll intervals are set so that only the mechanism under test can explain
what a test sees; waits are generous deadlines, never speed limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared import bridge
from tests.asgi_gateway.conftest import DEFAULT_FLAGS
from tests.asgi_gateway.test_live_flips import flip_by_api, flip_by_cli, pg_person
from tests.conftest import Person, ServerProcess

WAIT_S = 30.0
NEVER = "3600"  # seconds: a poll that never comes due during a test


def readiness(server: ServerProcess) -> dict[str, Any]:
    response = httpx.get(server.url + "/readyz", timeout=10)
    assert response.status_code == 200, response.text
    checks: dict[str, Any] = response.json()["checks"]
    return checks


def wait_for(server: ServerProcess, what: str, condition: Callable[[dict[str, Any]], bool]) -> dict:
    """The /readyz checks of `server` once `condition` holds; fail naming `what` after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        checks = readiness(server)
        if condition(checks):
            return checks
        if time.monotonic() > deadline:
            pytest.fail(f"{server.url}: timed out waiting for {what}; /readyz says {checks}")
        time.sleep(0.02)


def served_by(server: ServerProcess, headers: dict[str, str]) -> str:
    response = httpx.get(server.url + "/api/appointments", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.headers["x-served-by"]


def kill_listeners(database_url: str) -> int:
    """pg_terminate_backend every flag-notification connection to the test's database."""

    async def kill() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return len(
                await conn.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'gateway-flags-listener' "
                    "AND datname = current_database()"
                )
            )
        finally:
            await conn.close()

    return bridge.run(kill(), timeout=30)


@pytest.fixture
def pushed_environ(pg_environ: dict[str, str]) -> dict[str, str]:
    Path(pg_environ["AA_FLAGS_FILE"]).write_text(DEFAULT_FLAGS)
    return {**pg_environ, "AA_FLAGS_FALLBACK_POLL_S": NEVER, "AA_SCHEDULER": "off"}


@pytest.mark.slow
@pytest.mark.postgres
def test_a_flip_reaches_the_other_process_by_notification_alone(
    pushed_environ: dict[str, str], spawn: Callable[..., ServerProcess]
) -> None:
    environ = {**pushed_environ, "AA_FLAGS_POLL_S": NEVER}  # no poll at all: only the push
    first, second = spawn(environ), spawn(environ)
    admin = pg_person(environ, "admin@example.com", is_admin=True)
    version = wait_for(second, "its channel", lambda c: c["flags_push"] == "listening")[
        "flags_version"
    ]
    assert served_by(second, admin.headers) == "legacy"

    flip_by_api(first.url, admin, "async")  # the admin API on one process ...
    wait_for(second, "the API flip", lambda c: c["flags_version"] == version + 1)
    assert served_by(second, admin.headers) == "async"  # ... is served by the other

    flip_by_cli(environ, "legacy")  # a flip by the CLI, a third process, is announced too
    wait_for(first, "the CLI flip", lambda c: c["flags_version"] == version + 2)
    wait_for(second, "the CLI flip", lambda c: c["flags_version"] == version + 2)
    assert served_by(first, admin.headers) == served_by(second, admin.headers) == "legacy"


@pytest.mark.slow
@pytest.mark.postgres
def test_a_killed_channel_reconnects_and_polling_serves_meanwhile(
    pushed_environ: dict[str, str], spawn: Callable[..., ServerProcess]
) -> None:
    # Polling every 0.1 s only while the channel is down; reconnecting after 10 s, long after
    # the poll has brought the flip (the wait below is the only bound on that).
    environ = {**pushed_environ, "AA_FLAGS_POLL_S": "0.1", "AA_FLAGS_NOTIFY_RETRY_S": "10"}
    first, second = spawn(environ), spawn(environ)
    admin = pg_person(environ, "admin@example.com", is_admin=True)
    version = wait_for(second, "its channel", lambda c: c["flags_push"] == "listening")[
        "flags_version"
    ]
    wait_for(first, "its channel", lambda c: c["flags_push"] == "listening")

    assert kill_listeners(environ["AA_DATABASE_URL"]) == 2
    wait_for(second, "the lost channel", lambda c: c["flags_push"] != "listening")
    flip_by_api(first.url, admin, "async")

    checks = wait_for(second, "the polled flip", lambda c: c["flags_version"] == version + 1)
    assert checks["flags_push"] == "reconnecting", checks  # no reason: /readyz is public
    assert served_by(second, admin.headers) == "async"

    wait_for(second, "the channel back", lambda c: c["flags_push"] == "listening")
    flip_by_api(first.url, admin, "legacy")  # polled every hour again: only the push brings it
    wait_for(second, "the pushed flip", lambda c: c["flags_version"] == version + 2)
    assert served_by(second, admin.headers) == "legacy"
    assert "closed by the database or the network; polling meanwhile" in second.logs()
    assert "flag notifications: listening again" in second.logs()


@pytest.mark.slow
@pytest.mark.postgres
def test_with_notifications_off_postgresql_workers_poll(
    pushed_environ: dict[str, str], spawn: Callable[..., ServerProcess]
) -> None:
    environ = {**pushed_environ, "AA_FLAGS_NOTIFY": "off", "AA_FLAGS_POLL_S": "0.1"}
    first, second = spawn(environ), spawn(environ)
    admin = pg_person(environ, "admin@example.com", is_admin=True)
    version = readiness(second)["flags_version"]
    assert readiness(second)["flags_push"] == "polling"
    assert kill_listeners(environ["AA_DATABASE_URL"]) == 0  # nobody listens

    flip_by_api(first.url, admin, "async")

    wait_for(second, "the polled flip", lambda c: c["flags_version"] == version + 1)
    assert served_by(second, admin.headers) == "async"


@pytest.mark.slow
def test_sqlite_workers_poll(
    environ: dict[str, str],
    flags_file: Path,
    admin: Person,
    spawn: Callable[..., ServerProcess],
) -> None:
    server = spawn({**environ, "AA_FLAGS_POLL_S": "0.1"})
    checks = readiness(server)
    assert checks["flags_push"] == "polling"

    flip_by_cli(environ, "async")  # another process, which cannot notify on SQLite

    wait_for(server, "the polled flip", lambda c: c["flags_version"] == checks["flags_version"] + 1)
    assert served_by(server, admin.headers) == "async"
