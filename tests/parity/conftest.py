"""Parity harness: the same cases against two live gateways, one per backend.

How a backend is forced. Each backend gets its own gateway process (uvicorn in a child
process, as in production) whose flags file declares *every* migrated endpoint `legacy`
(resp. `async`). That reaches the backend under test for every caller, including anonymous
ones, non-admins and session-cookie users, for whom `X-Backend-Override` is ignored; nothing
is flipped at run time, so there is no flag poll to wait for and no race with other workers.
`X-Served-By` is asserted on every response, so a case can never silently hit the wrong side.

How both runs start from the same state. The database is seeded once (tests/parity/_seed.py,
fixed ids), copied for each server, and snapshotted once that server is up. Before every run
of every case the server's live SQLite file is restored from its snapshot with SQLite's online
backup API, which is safe while the server keeps pooled connections open (it is one write
transaction to them). Both runs therefore start byte-identical and even generated ids agree,
so `Location` headers are compared exactly.

How writes are checked. After a case's calls, its `readback` calls go to the same server as
the admin with `X-Backend-Override` naming the *other* backend (legacy's writes read through
async and the reverse), and the application tables of both databases are compared, minus
server timestamps.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_gateway.endpoints import routes
from shared import bridge
from shared.auth import Actor
from shared.config import load_settings
from shared.runtime import Runtime
from tests.conftest import Person, ServerProcess, create_person, make_environ
from tests.fakes.graph_server import FakeGraphServer
from tests.parity import _seed
from tests.parity._contract import BACKENDS, Backend, Call, Case, Exchange, Run, decode_body, other

# Columns written from the clock: they differ between two runs of the same write.
_CLOCK_COLUMNS = frozenset(
    {
        "created_at",
        "updated_at",
        "last_used_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "scheduled_for",
        "next_run_at",
    }
)
# Columns of random values (salted hashes): equal inputs give different values per run.
_RANDOM_COLUMNS = frozenset({"password_hash", "token_hash"})
# Columns set from the clock when something happens: compared as "set or not".
_EVENT_COLUMNS = frozenset(
    {"revoked_at", "expires_at", "disabled_at", "archived_at", "resolved_at"}
)
# Session ids are random and each server signed its own people in: compare who and whether
# revoked, in the order they were created.
_SESSIONS = (
    "SELECT user_id, revoked_at IS NOT NULL AS revoked FROM user_sessions "
    "ORDER BY created_at, user_id"
)
_STATE_TABLES = (
    "users",
    "api_tokens",
    "calendars",
    "appointments",
    "archive_configurations",
    "action_log",
    "audit_log",
    "jobs",
    "job_runs",
    "action_items",
)
_NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def flags_yaml(backend: Backend) -> str:
    """A flags file sending every migrated endpoint to `backend`."""
    lines = ["version: 1", "routes:"]
    lines += [f"  {route.name}: {{mode: {backend}}}" for route in routes]
    return "\n".join(lines) + "\n"


def copy_database(source: Path, target: Path) -> None:
    """Copy a SQLite database with the online backup API (consistent, WAL included)."""
    with (
        closing(sqlite3.connect(source)) as src,
        closing(sqlite3.connect(target, timeout=10)) as dst,
    ):
        src.backup(dst)


def database_state(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of the application tables, clock-written columns left out."""
    state: dict[str, list[dict[str, Any]]] = {}
    with closing(sqlite3.connect(path, timeout=10)) as conn:
        for table in _STATE_TABLES:
            cursor = conn.execute(f"SELECT * FROM {table} ORDER BY id")
            names = [column[0] for column in cursor.description]
            state[table] = [
                {
                    k: (v is not None) if k in _EVENT_COLUMNS else v
                    for k, v in zip(names, row, strict=True)
                    if k not in _CLOCK_COLUMNS and k not in _RANDOM_COLUMNS
                }
                for row in cursor.fetchall()
            ]
        cursor = conn.execute(_SESSIONS)
        state["user_sessions"] = [dict(zip(("user_id", "revoked"), r, strict=True)) for r in cursor]
    return state


@dataclass
class BackendServer:
    """A gateway process whose flags send every migrated endpoint to one backend."""

    backend: Backend
    process: ServerProcess
    database: Path
    snapshot: Path
    cookies: dict[str, str]  # who -> Cookie header of a session made through /login
    client: httpx.Client  # one per server: building a client (its SSL context) costs ~60 ms

    def restore(self) -> None:
        copy_database(self.snapshot, self.database)


class World:
    """Both servers, the seeded people, and the runner that plays a case against one backend."""

    def __init__(
        self,
        servers: dict[Backend, BackendServer],
        people: dict[str, Person],
        pool: ThreadPoolExecutor,
    ) -> None:
        self.servers = servers
        self.people = people
        self.pool = pool

    def run_both(self, case: Case) -> dict[Backend, Run]:
        """The case on each backend, side by side: the two servers share nothing."""
        futures = {backend: self.pool.submit(self.run, case, backend) for backend in BACKENDS}
        return {backend: future.result() for backend, future in futures.items()}

    def run(self, case: Case, backend: Backend) -> Run:
        server = self.servers[backend]
        server.restore()
        run = Run(backend)
        for call in case.calls:
            run.exchanges.append(self._send(server, call, call.served_by or backend))
        forced = other(backend)
        for call in case.readback:
            as_admin = dataclasses.replace(
                call, who="admin", headers=(*call.headers, ("X-Backend-Override", forced))
            )
            run.readbacks.append(self._send(server, as_admin, forced))
        run.state = database_state(server.database)
        return run

    def logs(self, backend: Backend, lines: int = 40) -> str:
        return "\n".join(self.servers[backend].process.logs().splitlines()[-lines:])

    def _send(self, server: BackendServer, call: Call, expected: Backend) -> Exchange:
        headers = self._credentials(server, call)
        for name, value in call.headers:  # "{alice}" stands for alice's API token,
            for who, person in self.people.items():  # "{alice_cookie}" for her session cookie
                value = value.replace(f"{{{who}}}", person.token)
            for who, cookie in server.cookies.items():
                value = value.replace(f"{{{who}}}", cookie)
            headers[name] = value
        content: Any = call.body
        if call.chunked and call.body is not None:
            content = iter([call.body[i : i + 65536] for i in range(0, len(call.body), 65536)])
        client = server.client
        client.cookies.clear()  # only the identity's own cookie may travel
        response = client.request(
            call.method,
            call.path,
            params=list(call.params) or None,
            content=content,
            headers=headers,
        )
        exchange = Exchange(
            call=call,
            status=response.status_code,
            headers=dict(response.headers.items()),
            body=decode_body(response.content, response.headers.get("content-type", "")),
            served_by=response.headers.get("x-served-by"),
        )
        if exchange.served_by != expected:
            raise AssertionError(
                f"{exchange.describe()}: expected X-Served-By {expected} "
                "(the harness did not reach the backend under test)"
            )
        return exchange

    def _credentials(self, server: BackendServer, call: Call) -> dict[str, str]:
        if call.who == "anonymous":
            return {}
        if call.who.endswith("_cookie"):
            return {"Cookie": server.cookies[call.who]}
        return dict(self.people[call.who].headers)


def _login(process: ServerProcess, person: Person) -> str:
    """Sign in through the legacy /login form (CSRF token included); the session cookie."""
    with process.client(follow_redirects=False) as client:
        page = client.get("/login")
        match = _CSRF.search(page.text)
        assert match is not None, f"no csrf_token in GET /login:\n{page.text[:500]}"
        response = client.post(
            "/login",
            data={
                "email": person.email,
                "password": person.password,
                "csrf_token": match.group(1),
                "next": "/",
            },
        )
        assert response.status_code == 302, (response.status_code, response.text[:500])
        cookie = client.cookies.get("aa_session")
    assert cookie, "POST /login set no aa_session cookie"
    return f"aa_session={cookie}"


def _seed_database(root: Path, template: Path, graph_url: str) -> tuple[Path, dict[str, Person]]:
    shutil.copy(template, root / "app.db")
    runtime = Runtime(load_settings(make_environ(root, AA_GRAPH_URL=graph_url)))
    try:
        people = {
            who: create_person(runtime, email, is_admin=who == "admin")
            for who, email in _seed.EMAILS.items()
        }
        actors = {p.id: Actor(p.id, p.email, p.is_admin) for p in people.values()}
        assert [p.id for p in people.values()] == [_seed.ADMIN, _seed.ALICE, _seed.BOB, _seed.CAROL]
        bridge.run(_seed.seed(runtime, actors), timeout=60)
    finally:
        bridge.run(runtime.aclose())
    return root / "app.db", people


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[World]:
    """Seed once, then one gateway per backend over its own copy of the seeded database.

    Both share one fake Graph API (read only by the cases: calendars are looked up and
    listed, never written), whose mailboxes hold the remote calendars of _seed.py.
    """
    graph = _seed.remote_calendars(FakeGraphServer()).start()
    seeded, people = _seed_database(
        tmp_path_factory.mktemp("parity-seed"), sqlite_template, graph.url
    )
    servers: dict[Backend, BackendServer] = {}
    try:
        for backend in BACKENDS:
            root = tmp_path_factory.mktemp(f"parity-{backend}")
            # No scheduler: a job falling due mid-suite would write runs on one server only.
            environ = make_environ(root, AA_GRAPH_URL=graph.url, AA_SCHEDULER="off")
            copy_database(seeded, root / "app.db")
            Path(environ["AA_FLAGS_FILE"]).write_text(flags_yaml(backend))
            process = ServerProcess(environ, root / "server.log")
            # A fresh connection per request: uvicorn takes the `--fd` socket for AF_UNIX, so
            # accepted TCP connections keep Nagle on and every reused keep-alive request
            # waits ~40 ms for a delayed ACK; a new local connection costs well under 1 ms.
            client = process.client(follow_redirects=False, limits=_NO_KEEPALIVE)
            server = BackendServer(
                backend, process, root / "app.db", root / "snapshot.db", {}, client
            )
            servers[backend] = server
        with ThreadPoolExecutor(len(servers), thread_name_prefix="parity") as pool:
            # Both start at once (each takes a couple of seconds to become ready).
            list(pool.map(lambda server: server.process.start(), servers.values()))
            for server in servers.values():
                server.cookies = {
                    f"{who}_cookie": _login(server.process, people[who])
                    for who in ("alice", "admin")
                }
                # After start-up: the snapshot holds the flag tables the gateway created.
                copy_database(server.database, server.snapshot)
            yield World(servers, people, pool)
    finally:
        for server in servers.values():
            server.client.close()
            server.process.stop()
        graph.stop()
