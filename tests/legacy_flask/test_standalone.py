"""The legacy app on its own: `flask run` and gunicorn (forked, preloaded workers)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Person

BIN = Path(sys.executable).parent
Starter = Callable[[list[str], str], "subprocess.Popen[bytes]"]


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(log.read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def run_server(environ: dict[str, str], tmp_path: Path) -> Iterator[Starter]:
    """Start server processes with the test's environment; all are stopped at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = tmp_path / log_name
        with log.open("wb") as out:
            proc = subprocess.Popen(
                args, env={**os.environ, **environ}, stdout=out, stderr=subprocess.STDOUT
            )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def exercise(url: str, person: Person) -> None:
    with httpx.Client(base_url=url, headers=person.headers, timeout=15) as client:
        assert client.get("/api/me").json()["email"] == person.email
        calendar = client.post("/api/calendars", json={"name": "Work", "role": "source"}).json()
        # remote-events is an async def view: it must run on the bridge loop, every time.
        for _ in range(20):
            response = client.get(
                f"/api/calendars/{calendar['id']}/remote-events",
                params={"start": "2026-01-01", "end": "2026-01-31"},
            )
            assert response.status_code == 200, response.text
            assert response.json() == {"data": [], "meta": {"count": 0}}


def test_flask_run_serves_the_app(run_server: Starter, alice: Person, tmp_path: Path) -> None:
    port = free_port()
    proc = run_server(
        [str(BIN / "flask"), "--app", "legacy_flask", "run", "--port", str(port), "--with-threads"],
        "flask.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, tmp_path / "flask.log")
    exercise(url, alice)
    assert "Event loop is closed" not in (tmp_path / "flask.log").read_text()


def test_gunicorn_preloaded_forked_workers_serve_the_app(
    run_server: Starter, alice: Person, tmp_path: Path
) -> None:
    port = free_port()
    proc = run_server(
        [
            str(BIN / "gunicorn"),
            "--preload",
            "--workers",
            "2",
            "--threads",
            "4",
            "--bind",
            f"127.0.0.1:{port}",
            "legacy_flask:create_app()",
        ],
        "gunicorn.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, tmp_path / "gunicorn.log")
    exercise(url, alice)
    log = (tmp_path / "gunicorn.log").read_text()
    for bad in ("Event loop is closed", "different loop", "Traceback"):
        assert bad not in log, log
