"""Fixtures of every suite: settings on a fresh SQLite file, PostgreSQL, users, live servers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from shared import bridge
from shared.config import Settings, load_settings
from shared.migrate import upgrade
from shared.runtime import Runtime

SECRET = "test-secret-key-0123456789abcdef"
PG_ADMIN_DSN = os.environ.get("AA_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def make_environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The AA_* environment of a test process: its own var dir and SQLite file."""
    environ = {
        "AA_ENV": "testing",
        "AA_SECRET_KEY": SECRET,
        "AA_VAR_DIR": str(tmp_path / "var"),
        "AA_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "AA_FLAGS_FILE": str(tmp_path / "feature_flags.yaml"),
    }
    environ.update(extra)
    return environ


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once keeps the suite fast)."""
    root = tmp_path_factory.mktemp("template")
    settings = load_settings(make_environ(root))
    runtime = Runtime(settings)
    try:
        bridge.run(upgrade(runtime.db.engine))
    finally:
        bridge.run(runtime.aclose())
    return root / "app.db"


@pytest.fixture
def environ(tmp_path: Path, sqlite_template: Path) -> dict[str, str]:
    shutil.copy(sqlite_template, tmp_path / "app.db")
    return make_environ(tmp_path)


@pytest.fixture
def settings(environ: dict[str, str]) -> Settings:
    return load_settings(environ)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A Runtime on the bridge loop, for sync tests that arrange or inspect data."""
    runtime = Runtime(settings)
    yield runtime
    bridge.run(runtime.aclose())


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for this test session, migrated; dropped at the end."""
    import asyncpg

    name = f"aa_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        bridge.run(admin(f'CREATE DATABASE "{name}"'), timeout=30)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_DSN} is not usable ({exc}); .ci/run starts it")
    url = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    settings = load_settings({"AA_ENV": "testing", "AA_SECRET_KEY": SECRET, "AA_DATABASE_URL": url})
    runtime = Runtime(settings)
    bridge.run(upgrade(runtime.db.engine))
    bridge.run(runtime.aclose())
    yield url
    bridge.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'), timeout=30)


@pytest.fixture
def pg_environ(tmp_path: Path, pg_database: str) -> dict[str, str]:
    """Environment pointing at the session's PostgreSQL database, emptied for this test."""
    import asyncpg

    async def truncate() -> None:
        conn = await asyncpg.connect(pg_database)
        try:
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
            names = ", ".join(f'"{r["tablename"]}"' for r in tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    bridge.run(truncate(), timeout=30)
    return make_environ(tmp_path, AA_DATABASE_URL=pg_database)


# -- people --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: int
    email: str
    password: str
    token: str
    is_admin: bool

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def create_person(runtime: Runtime, email: str, *, is_admin: bool = False) -> Person:
    password = f"pw-{email}"
    users = runtime.services.users
    user = bridge.run(users.create(email, password, is_admin=is_admin))
    token = bridge.run(runtime.services.tokens.create(email))
    return Person(user["id"], email, password, token, is_admin)


@pytest.fixture
def admin(runtime: Runtime) -> Person:
    return create_person(runtime, "admin@example.com", is_admin=True)


@pytest.fixture
def alice(runtime: Runtime) -> Person:
    return create_person(runtime, "alice@example.com")


@pytest.fixture
def bob(runtime: Runtime) -> Person:
    return create_person(runtime, "bob@example.com")


# -- live servers --------------------------------------------------------------------------------


class LiveServer:
    """An ASGI app served by uvicorn in a thread, on a socket bound to 127.0.0.1:0."""

    def __init__(self, app: Any, **config: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # uvicorn wraps an inherited socket as AF_UNIX and so never sets TCP_NODELAY on its
        # connections; Linux copies the option from the listening socket to accepted ones.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options = {"log_level": "warning", "lifespan": "on", "timeout_graceful_shutdown": 10}
        options.update(config)
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.thread = threading.Thread(target=self._serve, name="live-server", daemon=True)
        self.error: BaseException | None = None

    def _serve(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # surfaced by start()
            self.error = exc

    def start(self, timeout_s: float = 15.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if self.error is not None or not self.thread.is_alive():
                raise RuntimeError(f"live server failed to start: {self.error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError("live server did not start in time")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.sock.close()

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


@pytest.fixture
def serve() -> Iterator[Callable[..., LiveServer]]:
    """Start live servers for a test; all are stopped when it ends."""
    servers: list[LiveServer] = []

    def start(app: Any, **config: Any) -> LiveServer:
        server = LiveServer(app, **config).start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()


class ServerProcess:
    """`uvicorn asgi_gateway.app:app` in a child process on a socket bound here to 127.0.0.1:0.

    A separate process, as in production: its own bridge loop, its own pool, its own logs.
    """

    def __init__(
        self,
        environ: dict[str, str],
        log_path: Path,
        *,
        workers: int = 1,
        app: str = "asgi_gateway.app:app",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # uvicorn wraps an inherited socket as AF_UNIX and so never sets TCP_NODELAY on its
        # connections; Linux copies the option from the listening socket to accepted ones.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.set_inheritable(True)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.environ = {**os.environ, **environ, "PYTHONUNBUFFERED": "1"}
        self.args = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--fd",
            str(self.sock.fileno()),
            "--workers",
            str(workers),
            "--log-level",
            "info",
            "--timeout-graceful-shutdown",
            "20",
            *extra_args,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> ServerProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.args,
            env=self.environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=(self.sock.fileno(),),
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server did not become ready:\n{self.logs()}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.sock.close()
        if hasattr(self, "_log"):
            self._log.close()
        return self.proc.returncode if self.proc is not None else 0

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start gateway server processes for a test; all are stopped (SIGTERM) when it ends."""
    servers: list[ServerProcess] = []

    def start(environ: dict[str, str], **options: Any) -> ServerProcess:
        log = tmp_path / f"server-{len(servers)}.log"
        server = ServerProcess(environ, log, **options)
        servers.append(server)
        return server.start()

    yield start
    for server in reversed(servers):
        server.stop()


# -- a browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A real headless Chromium (Playwright driving Debian's package), one per test module."""
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: scripts/ensure-services.sh installs it")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
