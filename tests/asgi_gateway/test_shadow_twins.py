"""admin-assistant's own twins in shadow: hundreds of varied reads, not one mismatch; shadowed
writes run dry (exactly one write per request, on SQLite and PostgreSQL); write endpoints in
shadow without a dry run are refused by the flag file, the admin API and the CLI."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import bridge
from shared.auth import Actor
from shared.config import load_settings
from shared.runtime import Runtime
from tests.conftest import Person, ServerProcess, create_person
from tests.fakes.graph_server import FakeGraphServer
from tests.parity import _seed

READS = (
    "auth.me",
    "calendars.list",
    "calendars.get",
    "calendars.remote_events",
    "appointments.list",
    "appointments.get",
    "archive_configs.list",
    "archive_configs.get",
    "archive.log",
)


# What a create generates anew each time (ids on PostgreSQL, whose sequences a rolled-back
# insert still advances; a random provider event id; timestamps to the second): not compared.
GENERATED = '["$.id", "$.provider_event_id", "$.created_at", "$.updated_at"]'


def shadow_flags(writes: tuple[str, ...] = ()) -> str:
    lines = ["version: 1", "routes:"]
    lines += [f"  {e}: {{mode: shadow, compare: {{noise_sample: 0}}}}" for e in READS]
    lines += [
        f"  {e}: {{mode: shadow, shadow: {{writes: dry_run}}, "
        f"compare: {{ignore: {GENERATED}, headers: [content-type]}}}}"
        for e in writes
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def graph() -> Iterator[FakeGraphServer]:
    """The fake Graph API holding the parity seed's remote calendars."""
    server = _seed.remote_calendars(FakeGraphServer()).start()
    yield server
    server.stop()


def seeded_people(environ: dict[str, str]) -> dict[str, Person]:
    """The parity seed (users, calendars, appointments, configurations, runs) in `environ`'s DB.

    `environ` names the fake Graph API (AA_GRAPH_URL) holding the seed's remote calendars.
    """
    runtime = Runtime(load_settings(environ))
    try:
        people = {
            who: create_person(runtime, email, is_admin=who == "admin")
            for who, email in _seed.EMAILS.items()
        }
        actors = {p.id: Actor(p.id, p.email, p.is_admin) for p in people.values()}
        bridge.run(_seed.seed(runtime, actors), timeout=60)
    finally:
        bridge.run(runtime.aclose())
    return people


def varied_reads() -> list[tuple[str, str]]:
    """(endpoint, path with query) pairs: pages, windows, zones, ids that exist and do not."""
    reads: list[tuple[str, str]] = [("auth.me", "/api/me")]
    for page, per_page in itertools.product((1, 2, 3, 0), (1, 2, 50)):
        reads.append(("calendars.list", f"/api/calendars?page={page}&per_page={per_page}"))
        reads.append(
            ("archive_configs.list", f"/api/archive-configs?page={page}&per_page={per_page}")
        )
        reads.append(("archive.log", f"/api/action-log?page={page}&per_page={per_page}"))
    reads += [("calendars.get", f"/api/calendars/{i}") for i in range(1, 9)]
    reads += [("archive_configs.get", f"/api/archive-configs/{i}") for i in range(1, 5)]
    reads += [("archive.log", f"/api/action-log?config_id={i}") for i in (1, 2, 3, 9, 0)]
    reads += [("appointments.get", f"/api/appointments/{i}") for i in range(1, 24)]
    for calendar, tz, window in itertools.product(
        ("", "&calendar_id=1", "&calendar_id=6", "&calendar_id=99"),
        ("", "&tz=Europe/Berlin", "&tz=America/New_York", "&tz=Mars/Base"),
        ("", "&start=2026-03-28&end=2026-03-31", "&start=2026-11-01T00:00:00Z", "&end=nope"),
    ):
        reads.append(("appointments.list", f"/api/appointments?per_page=5{calendar}{tz}{window}"))
    for calendar, window in itertools.product(
        (1, 3, 5, 6, 42), ("start=2026-05-01&end=2026-05-08", "start=2026-05-08&end=2026-05-01")
    ):
        reads.append(
            ("calendars.remote_events", f"/api/calendars/{calendar}/remote-events?{window}")
        )
    return reads


def shadow_report(server: ServerProcess, admin: Person, endpoint: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/_rollout/api/shadow/{endpoint}", headers=admin.headers, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_for_outcomes(
    server: ServerProcess, admin: Person, expected: dict[str, int]
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        reports = {e: shadow_report(server, admin, e) for e in expected}
        done = all(
            r["compared"] + r["errors"] + r["timeouts"] + r["skipped"] >= expected[e]
            for e, r in reports.items()
        )
        if done or time.monotonic() > deadline:
            return reports
        time.sleep(0.2)


@pytest.mark.slow
def test_every_shadowed_read_of_the_real_twins_matches(
    environ: dict[str, str], graph: FakeGraphServer, spawn: Callable[..., ServerProcess]
) -> None:
    environ = {**environ, "AA_GRAPH_URL": graph.url}
    Path(environ["AA_FLAGS_FILE"]).write_text(shadow_flags())
    people = seeded_people(environ)
    # No scheduler: the seed's queued and every-15-minutes runs would write action log rows
    # between a legacy answer and its twin's, a difference in the data and not in the twins.
    server = spawn(
        {
            **environ,
            "AA_STATS_FLUSH_S": "0.2",
            "AA_SHADOW_CONCURRENCY": "64",
            "AA_SCHEDULER": "off",
        }
    )
    callers = [people["alice"].headers, people["bob"].headers, people["admin"].headers, {}]
    sent: dict[str, int] = dict.fromkeys(READS, 0)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for (endpoint, path), headers in itertools.product(varied_reads(), callers):
            response = client.get(path, headers=headers)
            assert response.headers["x-served-by"] == "legacy", path
            sent[endpoint] += 1
            # An unhurried pace keeps every comparison within the shadow budget.
            if sum(sent.values()) % 32 == 0:
                wait_for_outcomes(server, people["admin"], sent)
    reports = wait_for_outcomes(server, people["admin"], sent)
    for endpoint, data in reports.items():
        assert data["mismatched"] == 0, (endpoint, json.dumps(data["recent"][:3]))
        assert data["compared"] == sent[endpoint], (endpoint, data)
        assert (data["errors"], data["timeouts"], data["skipped"]) == (0, 0, 0), data
    assert sum(sent.values()) >= 600


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def write_setup(
    request: pytest.FixtureRequest, graph: FakeGraphServer
) -> tuple[dict[str, str], dict[str, Person]]:
    environ = request.getfixturevalue("environ" if request.param == "sqlite" else "pg_environ")
    environ = {**environ, "AA_GRAPH_URL": graph.url}
    Path(environ["AA_FLAGS_FILE"]).write_text(
        shadow_flags(("calendars.create", "appointments.create", "appointments.delete"))
    )
    return environ, seeded_people(environ)


def count_rows(environ: dict[str, str], table: str) -> int:
    url = environ["AA_DATABASE_URL"]
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    import asyncpg

    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await conn.close()

    return bridge.run(count(), timeout=30)


@pytest.mark.slow
def test_shadowed_writes_run_dry_and_write_exactly_once(
    write_setup: tuple[dict[str, str], dict[str, Person]], spawn: Callable[..., ServerProcess]
) -> None:
    environ, people = write_setup
    server = spawn({**environ, "AA_STATS_FLUSH_S": "0.2"})
    alice = people["alice"]
    calendars, appointments = count_rows(environ, "calendars"), count_rows(environ, "appointments")
    created = []
    with httpx.Client(base_url=server.url, headers=alice.headers, timeout=30) as client:
        for i in range(10):
            response = client.post("/api/calendars", json={"name": f"Dry {i}", "role": "source"})
            assert response.status_code == 201, response.text
            assert response.headers["x-served-by"] == "legacy"
            body = {
                "calendar_id": _seed.WORK,
                "subject": f"Dry run {i}",
                "start": "2026-06-01T09:00:00Z",
                "end": "2026-06-01T10:00:00Z",
            }
            response = client.post("/api/appointments", json=body)
            assert response.status_code == 201, response.text
            created.append(response.json()["id"])
        for appointment_id in created[:5]:
            assert client.delete(f"/api/appointments/{appointment_id}").status_code == 204
    reports = wait_for_outcomes(
        server,
        people["admin"],
        {"calendars.create": 10, "appointments.create": 10, "appointments.delete": 5},
    )
    # Exactly one write per request: the twins' writes were all rolled back.
    assert count_rows(environ, "calendars") == calendars + 10
    assert count_rows(environ, "appointments") == appointments + 10 - 5
    for endpoint, data in reports.items():
        outcomes = data["compared"] + data["errors"] + data["timeouts"] + data["skipped"]
        assert outcomes == {"appointments.delete": 5}.get(endpoint, 10), data
        # The dry run saw what legacy saw: where it could write, it answered alike; where
        # its write collided with legacy's, it was skipped, never miscounted as a mismatch.
        assert (data["mismatched"], data["errors"]) == (0, 0), data["recent"][:2]
        assert data["matched"] >= 1, data


def test_a_write_endpoint_in_shadow_without_a_dry_run_is_refused_everywhere(
    environ: dict[str, str],
    tmp_path: Path,
    flags_file: Path,
    admin: Person,
    spawn: Callable[..., ServerProcess],
) -> None:
    reason = "appointments.create writes (POST): in shadow its twin would write a second time"
    # The flag file: start-up stops with file, line and reason.
    bad = Path(environ["AA_FLAGS_FILE"])
    bad.write_text("version: 1\nroutes:\n  appointments.create: {mode: shadow}\n")
    server = ServerProcess(environ, tmp_path / "refused.log")
    with pytest.raises(RuntimeError, match="server exited with"):
        server.start(timeout_s=30)
    server.stop()
    assert f"{bad}:3: appointments.create: {reason}" in server.logs()
    assert "add shadow: {writes: dry_run}" in server.logs()
    # The admin API: 422 naming the field.
    bad.write_text("version: 1\nroutes: {}\n")
    running = spawn(environ)
    response = httpx.patch(
        running.url + "/_rollout/api/flags/appointments.create",
        json={"mode": "shadow", "reason": "compare writes"},
        headers=admin.headers,
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert reason in error["message"] and error["details"][0]["field"] == "shadow"
    accepted = httpx.patch(
        running.url + "/_rollout/api/flags/appointments.create",
        json={"mode": "shadow", "shadow": {"writes": "dry_run"}, "reason": "compare writes"},
        headers=admin.headers,
    )
    assert accepted.status_code == 200, accepted.text
    # The CLI: exit 1 with the same words.
    cli = Path(sys.executable).parent / "admin-assistant"
    result = subprocess.run(
        [str(cli), "flags", "set", "appointments.delete", "--mode", "shadow", "--reason", "x"],
        capture_output=True,
        text=True,
        env={**os.environ, **environ},
    )
    assert result.returncode == 1
    assert "appointments.delete writes (DELETE)" in result.stderr
    assert "add shadow: {writes: dry_run}" in result.stderr


def test_a_shadowed_archive_run_makes_its_remote_writes_once(
    environ: dict[str, str], graph: FakeGraphServer, spawn: Callable[..., ServerProcess]
) -> None:
    """The twin's dry run records the Graph writes it would make; only legacy's are made."""
    environ = {**environ, "AA_GRAPH_URL": graph.url}
    Path(environ["AA_FLAGS_FILE"]).write_text(
        "version: 1\nroutes:\n"
        "  archive.run: {mode: shadow, shadow: {writes: dry_run, timeout: 10s}, "
        'compare: {ignore: ["$.id", "$.started_at", "$.finished_at", "$.duration_ms"]}}\n'
    )
    people = seeded_people(environ)
    # No scheduler: the seed's queued run would archive beside the runs compared here.
    server = spawn({**environ, "AA_STATS_FLUSH_S": "0.2", "AA_SCHEDULER": "off"})
    alice = people["alice"]
    with httpx.Client(base_url=server.url, headers=alice.headers, timeout=30) as client:
        remote_archive = client.post(
            "/api/calendars",
            json={
                "name": "Remote archive",
                "role": "archive",
                "provider": "graph",
                "provider_id": "AAMk-9",
            },
        ).json()
        config = client.post(
            "/api/archive-configs",
            json={
                "name": "To Graph",
                "source_calendar_id": _seed.WORK,
                "archive_calendar_id": remote_archive["id"],
                # Offsite and Standup overlap: archive both rather than raise an action item.
                "allow_overlaps": True,
            },
        ).json()
        response = client.post(
            f"/api/archive-configs/{config['id']}/run",
            json={"start": "2026-05-04T00:00:00Z", "end": "2026-05-06T00:00:00Z"},
        )
    assert response.status_code == 201, response.text
    archived = response.json()["archived"]
    assert archived == 3  # Offsite, Standup, Review; Doctor is private
    # Exactly legacy's events reached the Graph API: the twin recorded its own instead.
    assert len(graph.events("AAMk-9")) == archived
    data = wait_for_outcomes(server, people["admin"], {"archive.run": 1})["archive.run"]
    assert (data["matched"], data["mismatched"], data["errors"]) == (1, 0, 0), data
    assert len(graph.events("AAMk-9")) == archived
