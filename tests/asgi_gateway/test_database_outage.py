"""A real database outage under a running gateway: 503 `database_unavailable` on both backends.

PostgreSQL is reached through a TCP proxy the test stops (every connection cut, new ones
refused) and restarts; SQLite is corrupted under the running server.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from shared import bridge
from shared.config import load_settings
from shared.runtime import Runtime
from tests.conftest import Person, ServerProcess, create_person
from tests.fakes.tcp_proxy import TcpProxy
from tests.shared.test_db_ping import corrupt

FLAGS = """\
version: 1
routes:
  auth.me: {mode: async}
  calendars.list: {mode: legacy}
"""
API = {"/api/me": "async", "/api/calendars": "legacy"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def signed_in_cookie(server: ServerProcess, person: Person) -> str:
    with server.client(follow_redirects=False) as browser:
        page = browser.get("/login")
        match = _CSRF.search(page.text)
        assert match is not None
        form = {"csrf_token": match.group(1), "email": person.email, "password": person.password}
        assert browser.post("/login", data=form).status_code == 302
        return f"aa_session={browser.cookies['aa_session']}"


def assert_outage(server: ServerProcess, person: Person, cookie: str) -> None:
    """Both backends answer 503 database_unavailable with Retry-After; a page shows an error."""
    with server.client(follow_redirects=False) as client:
        for path, backend in API.items():
            response = client.get(path, headers=person.headers)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["X-Served-By"] == backend
            assert response.headers["Retry-After"] == "5"
            assert response.json() == {
                "error": {
                    "code": "database_unavailable",
                    "message": "the database is unavailable; try again in 5 seconds",
                }
            }
        page = client.get("/calendars", headers={"Cookie": cookie})
    assert page.status_code == 503
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Retry-After"] == "5"
    assert "the database is unavailable" in page.text
    assert "Traceback" not in page.text


def wait_until_served(server: ServerProcess, person: Person, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    with server.client() as client:
        while True:
            statuses = [client.get(p, headers=person.headers).status_code for p in API]
            if statuses == [200, 200]:
                return
            assert time.monotonic() < deadline, f"still {statuses} after the database came back"
            time.sleep(0.1)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(("127.0.0.1", 5432)).start()
    yield proxy
    proxy.stop()


@pytest.mark.postgres
def test_postgres_going_away_is_a_503_on_both_backends_and_pages(
    pg_environ: dict[str, str],
    proxy: TcpProxy,
    spawn: Callable[..., ServerProcess],
) -> None:
    url = pg_environ["AA_DATABASE_URL"].replace(":5432/", f":{proxy.port}/")
    environ = {**pg_environ, "AA_DATABASE_URL": url}
    Path(environ["AA_FLAGS_FILE"]).write_text(FLAGS)
    runtime = Runtime(load_settings(environ))
    try:
        alice = create_person(runtime, "alice@example.com")
    finally:
        bridge.run(runtime.aclose())
    server = spawn(environ)
    cookie = signed_in_cookie(server, alice)
    wait_until_served(server, alice)

    proxy.stop()
    assert_outage(server, alice, cookie)

    proxy.start()
    wait_until_served(server, alice)


def test_a_corrupted_sqlite_file_is_a_503_on_both_backends_and_pages(
    environ: dict[str, str], alice: Person, spawn: Callable[..., ServerProcess]
) -> None:
    Path(environ["AA_FLAGS_FILE"]).write_text(FLAGS)
    server = spawn(environ)
    cookie = signed_in_cookie(server, alice)
    wait_until_served(server, alice)

    corrupt(Path(environ["AA_DATABASE_URL"].split("///", 1)[1]))

    assert_outage(server, alice, cookie)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz").status_code == 200
