"""The gateway process under trouble: a bad flag file, a flag store that goes away, SIGTERM.

A bad file stops start-up with file, line and reason; a store that cannot be read leaves
the last snapshot serving and /readyz degraded until it comes back; SIGTERM drains what is
in flight before the process exits.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from shared import bridge
from tests.asgi_gateway.conftest import DEFAULT_FLAGS
from tests.asgi_gateway.test_live_flips import pg_person
from tests.conftest import Person, ServerProcess

POLL_S = "0.1"
DEADLINE_S = 10.0
FLAG_TABLES = ("rollout_state", "rollout_flags", "rollout_audit")

BAD_FLAG_FILES = {
    "unknown mode": (
        "version: 1\nroutes:\n  appointments.list: {mode: sideways}\n",
        3,
        "appointments.list: unknown mode 'sideways'",
    ),
    "not YAML": ("version: 1\nroutes:\n  appointments.list: {mode: async\n", 4, "not valid YAML"),
    "unknown endpoint": (
        "version: 1\ndefaults:\n  sticky_by: user\nroutes:\n  appointments.lsit: {mode: legacy}\n",
        5,
        "appointments.lsit",
    ),
    "not UTF-8": (
        "version: 1\nroutes:\n  appointments.list: {mode: legacy}  # r\xe9sum\xe9\n",
        3,
        "not UTF-8 text (byte 0xe9",
    ),
    "percent out of range": (
        "version: 1\nroutes:\n  appointments.list:\n    mode: canary\n    percent: 250\n",
        5,
        "percent",
    ),
}


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def readiness(url: str) -> tuple[int, dict[str, object]]:
    response = httpx.get(url + "/readyz", timeout=5)
    return response.status_code, response.json()


def flip(url: str, admin: Person, mode: str) -> httpx.Response:
    return httpx.patch(
        f"{url}/_rollout/api/flags/appointments.list",
        json={"mode": mode, "reason": f"resilience: {mode}"},
        headers=admin.headers,
        timeout=10,
    )


# -- a bad flag file ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(BAD_FLAG_FILES))
def test_a_bad_flag_file_stops_start_up_naming_file_line_and_reason(
    case: str, environ: dict[str, str], tmp_path: Path
) -> None:
    text, line, reason = BAD_FLAG_FILES[case]
    flags_file = Path(environ["AA_FLAGS_FILE"])
    flags_file.write_bytes(text.encode("latin-1") if case == "not UTF-8" else text.encode())
    server = ServerProcess(environ, tmp_path / "server.log")
    try:
        with pytest.raises(RuntimeError, match="server exited with"):
            server.start(timeout_s=30)
    finally:
        status = server.stop()
    assert status != 0
    output = server.logs()
    assert f"{flags_file}:{line}:" in output, output
    assert reason in output, output
    assert "Traceback" not in output, output  # a reason for the operator, not a stack


# -- the flag store goes away and comes back ----------------------------------------------------


class SqliteTables:
    """Hide the flag tables of a SQLite file from the server (rename), and restore them."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.path = environ["AA_DATABASE_URL"].removeprefix("sqlite:///")

    def rename(self, suffix_from: str, suffix_to: str) -> None:
        with sqlite3.connect(self.path, timeout=10) as conn:
            for table in FLAG_TABLES:
                conn.execute(f"ALTER TABLE {table}{suffix_from} RENAME TO {table}{suffix_to}")


class PostgresTables:
    """Hide the flag tables of a PostgreSQL database from the server (rename), and restore them."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.dsn = environ["AA_DATABASE_URL"]

    def rename(self, suffix_from: str, suffix_to: str) -> None:
        import asyncpg

        async def rename() -> None:
            conn = await asyncpg.connect(self.dsn)
            try:
                for table in FLAG_TABLES:
                    await conn.execute(
                        f"ALTER TABLE {table}{suffix_from} RENAME TO {table}{suffix_to}"
                    )
            finally:
                await conn.close()

        bridge.run(rename(), timeout=30)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_setup(
    request: pytest.FixtureRequest,
) -> tuple[dict[str, str], Person, SqliteTables | PostgresTables]:
    """(environ, admin, tables) on SQLite or PostgreSQL, with the default flag file."""
    if request.param == "sqlite":
        environ = request.getfixturevalue("environ")
        admin = request.getfixturevalue("admin")
        tables: SqliteTables | PostgresTables = SqliteTables(environ)
    else:
        environ = request.getfixturevalue("pg_environ")
        admin = pg_person(environ, "admin@example.com", is_admin=True)
        tables = PostgresTables(environ)
    Path(environ["AA_FLAGS_FILE"]).write_text(DEFAULT_FLAGS)
    return environ, admin, tables


@pytest.mark.slow
def test_an_unreadable_flag_store_keeps_the_last_snapshot_and_reports_degraded(
    store_setup: tuple[dict[str, str], Person, SqliteTables | PostgresTables],
    spawn: Callable[..., ServerProcess],
) -> None:
    environ, admin, tables = store_setup
    # On PostgreSQL a listening worker reads the store only on a notice or its fallback poll:
    # poll often, so the hidden tables are noticed as soon as on SQLite.
    server = spawn({**environ, "AA_FLAGS_POLL_S": POLL_S, "AA_FLAGS_FALLBACK_POLL_S": POLL_S})
    # A runtime state that differs from the YAML: if the worker fell back to the file (or
    # to nothing) while the store is gone, requests would go back to legacy.
    assert flip(server.url, admin, "async").status_code == 200

    tables.rename("", "_away")
    try:
        wait_for(lambda: readiness(server.url)[0] == 503, "/readyz to report the outage")
        status, body = readiness(server.url)
        assert (status, body["status"]) == (503, "degraded"), body
        assert "flag store unreadable" in str(body["checks"]), body
        with server.client(headers=admin.headers) as client:
            for _ in range(20):
                response = client.get("/api/appointments")
                assert response.status_code == 200, response.text
                assert response.headers["x-served-by"] == "async"
            # The admin API cannot flip or read the trail now: it says so in the error shape
            # (503, the driver's reason, no SQL), and nothing changes.
            refused = flip(server.url, admin, "legacy")
            audit = client.get("/_rollout/api/audit")
            for response in (refused, audit):
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "flag_store_unavailable"
                assert "SELECT" not in response.text and "UPDATE" not in response.text
            assert client.get("/api/appointments").headers["x-served-by"] == "async"
    finally:
        tables.rename("_away", "")

    wait_for(lambda: readiness(server.url)[0] == 200, "/readyz to recover")
    assert readiness(server.url)[1]["status"] == "ready"
    assert flip(server.url, admin, "legacy").status_code == 200
    with server.client(headers=admin.headers) as client:
        assert client.get("/api/appointments").headers["x-served-by"] == "legacy"
    assert "flag store readable again" in server.logs()
    assert "Traceback" not in server.logs()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_database_outage_degrades_readiness_and_routing_continues_from_the_snapshot(
    pg_environ: dict[str, str], spawn: Callable[..., ServerProcess]
) -> None:
    """PostgreSQL refuses connections for a while: no flag can be read, the snapshot serves."""
    import asyncpg

    Path(pg_environ["AA_FLAGS_FILE"]).write_text(DEFAULT_FLAGS)
    admin = pg_person(pg_environ, "admin@example.com", is_admin=True)
    server = spawn({**pg_environ, "AA_FLAGS_POLL_S": POLL_S, "AA_AUTH_CACHE_S": "0"})
    assert flip(server.url, admin, "async").status_code == 200
    database = pg_environ["AA_DATABASE_URL"].rsplit("/", 1)[1]
    admin_dsn = pg_environ["AA_DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"

    async def allow_connections(allow: bool) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {allow}')
            if not allow:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    database,
                )
        finally:
            await conn.close()

    bridge.run(allow_connections(False), timeout=30)
    try:
        wait_for(lambda: readiness(server.url)[0] == 503, "/readyz to report the outage")
        wait_for(
            lambda: {"flags", "database"} <= set(readiness(server.url)[1]["failing"]),
            "/readyz to name both failing dependencies",
        )
        body = readiness(server.url)[1]
        assert body["status"] == "degraded"
        assert body["checks"]["flags"].startswith("flag store unreadable")
        assert body["checks"]["database"] != "ok"
        # The admin API cannot check the admin's token: that is an outage (503), not a
        # wrong credential (401); the dashboard shows a page saying so, not a sign-in form.
        with server.client(headers=admin.headers) as client:
            api = client.get("/_rollout/api/flags")
            page = client.get("/_rollout/", follow_redirects=False)
        assert api.status_code == 503, api.text
        assert api.json()["error"]["code"] == "identity_unavailable"
        assert api.headers["retry-after"] == "5"
        assert page.status_code == 503, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "cannot reach its database right now" in page.text
        # Routing needs no I/O: an anonymous request still goes where the snapshot says,
        # and its backend answers in the error shape (no database needed to say 401).
        for _ in range(10):
            response = httpx.get(server.url + "/api/appointments", timeout=10)
            assert response.status_code == 401, response.text
            assert response.headers["x-served-by"] == "async"
            assert response.json()["error"]["code"] == "unauthorized"
    finally:
        bridge.run(allow_connections(True), timeout=30)

    wait_for(lambda: readiness(server.url)[0] == 200, "/readyz to recover")
    with server.client(headers=admin.headers) as client:
        response = client.get("/api/appointments")
    assert response.status_code == 200, response.text
    assert response.headers["x-served-by"] == "async"


# -- SIGTERM under load -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_finishes_in_flight_requests_and_exits_cleanly(
    workers: int,
    environ: dict[str, str],
    flags_file: Path,
    admin: Person,
    alice: Person,
    spawn: Callable[..., ServerProcess],
) -> None:
    server = spawn({**environ, "AA_FLAGS_POLL_S": POLL_S}, workers=workers)
    assert flip(server.url, admin, "async").status_code == 200
    with server.client(headers=alice.headers) as client:
        calendar = client.post("/api/calendars", json={"name": "c", "role": "source"})
    assert calendar.status_code == 201, calendar.text
    calendar_id = calendar.json()["id"]

    # Uploads held open half-sent: in flight, on the server, when SIGTERM arrives.
    gate = threading.Event()
    held = threading.Semaphore(0)
    uploads = 6
    upload_results: list[object] = []

    def upload(n: int) -> None:
        body = (
            f'{{"calendar_id": {calendar_id}, "subject": "held {n}", '
            f'"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T11:00:00Z"}}'
        ).encode()

        def chunks() -> Iterator[bytes]:
            yield body[:20]
            held.release()
            gate.wait(60)
            yield body[20:]

        try:
            with server.client(headers=alice.headers) as client:
                response = client.post(
                    "/api/appointments",
                    content=chunks(),
                    headers={"Content-Type": "application/json"},
                )
            upload_results.append(response.status_code)
        except httpx.HTTPError as exc:
            upload_results.append(f"{type(exc).__name__}: {exc}")

    # Steady traffic on both backends, on keep-alive connections, until just before SIGTERM.
    stop = threading.Event()
    load_results: list[object] = []

    def load(n: int) -> None:
        calls = [
            lambda c: c.get("/api/appointments"),
            lambda c: c.get("/api/calendars"),
            lambda c: c.get("/api/me"),
            lambda c: c.post(
                "/api/appointments",
                json={
                    "calendar_id": calendar_id,
                    "subject": f"load {n}",
                    "start": "2024-05-02T10:00:00Z",
                    "end": "2024-05-02T11:00:00Z",
                },
            ),
        ]
        with server.client(headers=alice.headers) as client:
            for i in range(10_000):
                if stop.is_set():
                    return
                try:
                    load_results.append(calls[(i + n) % len(calls)](client).status_code)
                except httpx.HTTPError as exc:
                    load_results.append(f"{type(exc).__name__}: {exc}")
                    return

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(uploads)]
    threads += [threading.Thread(target=load, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(uploads):
            assert held.acquire(timeout=DEADLINE_S), "an upload never started"
        wait_for(lambda: len(load_results) >= 40, "load to get going")
        stop.set()
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        # The server is shutting down while the uploads are open...
        wait_for(lambda: server.logs().count("Shutting down") >= workers, "shutdown to start")
        assert server.proc.poll() is None, "exited with requests in flight"
    finally:
        gate.set()  # ...and only now do they finish sending.
        for thread in threads:
            thread.join(60)

    assert upload_results == [201] * uploads, upload_results
    assert load_results and all(status in (200, 201) for status in load_results), [
        r for r in load_results if r not in (200, 201)
    ]
    # A clean exit. uvicorn (>= 0.29) re-raises a captured SIGTERM once its graceful shutdown
    # is done, so a single-worker server ends "by" the signal; the supervisor of several
    # workers exits 0. Either way the lifespan must have completed its shutdown.
    status = server.proc.wait(30)
    log = server.logs()
    assert status == (0 if workers > 1 else -signal.SIGTERM), log[-3000:]
    assert log.count("Application shutdown complete.") == workers, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
