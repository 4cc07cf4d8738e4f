"""A runtime flip (CLI or admin API) reaches every worker and every server process within 1 s.

Each request opens a fresh connection, so the kernel spreads them over the workers that
accept on the shared socket: a worker still serving the old flag shows up as a response
with the old `X-Served-By`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest

from shared import bridge
from shared.config import load_settings
from shared.runtime import Runtime
from tests.asgi_gateway.conftest import DEFAULT_FLAGS
from tests.conftest import Person, ServerProcess, create_person

CLI = Path(sys.executable).parent / "admin-assistant"
ENDPOINT = "appointments.list"
PATH = "/api/appointments"
FLIP_DEADLINE_S = 1.0  # the promise: every worker follows a flip within a second
STREAK = 40  # requests in a row, each on a new connection, that must all agree
MAX_POLLS = 2000

Flip = Callable[[str], None]


def flip_by_cli(environ: dict[str, str], mode: str) -> None:
    """`admin-assistant flags set` in a child process, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AA_")}
    env.update(environ)
    result = subprocess.run(
        [str(CLI), "flags", "set", ENDPOINT, "--mode", mode, "--reason", f"live flip to {mode}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def flip_by_api(url: str, admin: Person, mode: str) -> None:
    """`PATCH /_rollout/api/flags/{endpoint}` on the server at `url`."""
    response = httpx.patch(
        f"{url}/_rollout/api/flags/{ENDPOINT}",
        json={"mode": mode, "reason": f"live flip to {mode}"},
        headers=admin.headers,
        timeout=10,
    )
    assert response.status_code == 200, response.text


def assert_every_worker_serves(
    urls: Sequence[str], headers: dict[str, str], backend: str, *, flipped_at: float
) -> None:
    """Poll `PATH` on fresh connections (round-robin over `urls`) until STREAK answers in a
    row come from `backend`; any other answer to a request sent later than FLIP_DEADLINE_S
    after `flipped_at` fails: some worker missed the flip.
    """
    deadline = flipped_at + FLIP_DEADLINE_S
    streak = 0
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection per request
    with httpx.Client(timeout=10, limits=limits, headers=headers) as client:
        for poll in range(MAX_POLLS):
            sent_at = time.monotonic()
            response = client.get(urls[poll % len(urls)] + PATH)
            assert response.status_code == 200, response.text
            served_by = response.headers["x-served-by"]
            if served_by == backend:
                streak += 1
                if streak == STREAK:
                    return
                continue
            streak = 0
            assert sent_at < deadline, (
                f"{urls[poll % len(urls)]} still answered from {served_by!r} "
                f"{sent_at - flipped_at:.2f} s after the flip to {backend!r}"
            )
    pytest.fail(f"no {STREAK} answers in a row from {backend!r} in {MAX_POLLS} requests")


def pg_person(environ: dict[str, str], email: str, *, is_admin: bool = False) -> Person:
    """A user (and API token) in the PostgreSQL database of `environ`."""
    runtime = Runtime(load_settings(environ))
    try:
        return create_person(runtime, email, is_admin=is_admin)
    finally:
        bridge.run(runtime.aclose())


# -- two workers of one server, SQLite --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("by", ["cli", "api"])
def test_a_flip_reaches_all_workers_within_a_second(
    by: str,
    environ: dict[str, str],
    flags_file: Path,
    admin: Person,
    spawn: Callable[..., ServerProcess],
) -> None:
    server = spawn(environ, workers=2)
    flips: dict[str, Flip] = {
        "cli": lambda mode: flip_by_cli(environ, mode),
        "api": lambda mode: flip_by_api(server.url, admin, mode),
    }
    flip = flips[by]
    assert_every_worker_serves([server.url], admin.headers, "legacy", flipped_at=0.0)

    flip("async")
    assert_every_worker_serves([server.url], admin.headers, "async", flipped_at=time.monotonic())

    flip("legacy")
    assert_every_worker_serves([server.url], admin.headers, "legacy", flipped_at=time.monotonic())


# -- two server processes, one PostgreSQL database ----------------------------------------------


@pytest.fixture
def pg_servers(
    pg_environ: dict[str, str], spawn: Callable[..., ServerProcess]
) -> tuple[ServerProcess, ServerProcess]:
    """Two separate gateway processes (think: two machines) on one PostgreSQL database."""
    Path(pg_environ["AA_FLAGS_FILE"]).write_text(DEFAULT_FLAGS)
    return spawn(pg_environ), spawn(pg_environ)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_flip_through_one_process_reaches_the_other(
    pg_environ: dict[str, str], pg_servers: tuple[ServerProcess, ServerProcess]
) -> None:
    first, second = pg_servers
    admin = pg_person(pg_environ, "admin@example.com", is_admin=True)
    assert_every_worker_serves([second.url], admin.headers, "legacy", flipped_at=0.0)

    flip_by_api(first.url, admin, "async")
    assert_every_worker_serves([second.url], admin.headers, "async", flipped_at=time.monotonic())

    flip_by_api(first.url, admin, "legacy")
    assert_every_worker_serves([second.url], admin.headers, "legacy", flipped_at=time.monotonic())


@pytest.mark.slow
@pytest.mark.postgres
def test_a_cli_flip_reaches_both_processes(
    pg_environ: dict[str, str], pg_servers: tuple[ServerProcess, ServerProcess]
) -> None:
    urls = [server.url for server in pg_servers]
    admin = pg_person(pg_environ, "admin@example.com", is_admin=True)
    assert_every_worker_serves(urls, admin.headers, "legacy", flipped_at=0.0)

    flip_by_cli(pg_environ, "async")
    assert_every_worker_serves(urls, admin.headers, "async", flipped_at=time.monotonic())

    flip_by_cli(pg_environ, "legacy")
    assert_every_worker_serves(urls, admin.headers, "legacy", flipped_at=time.monotonic())
