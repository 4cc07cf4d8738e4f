"""The default configuration through a live gateway, once per backend, on SQLite and on
PostgreSQL: the same requests from the same state answer alike, and answer what they should."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asgi_gateway.endpoints import routes
from shared import bridge
from shared.config import load_settings
from shared.runtime import Runtime
from tests.conftest import Person, ServerProcess, create_person

Step = tuple[str, str, str, Any]  # who, method, path, JSON body
_CLOCK = ("created_at", "updated_at")


def flags_for(backend: str) -> str:
    """A flags file sending every migrated endpoint to `backend`."""
    lines = ["version: 1", "routes:"] + [f"  {r.name}: {{mode: {backend}}}" for r in routes]
    return "\n".join(lines) + "\n"


def without_clock(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: without_clock(v) for k, v in body.items() if k not in _CLOCK}
    if isinstance(body, list):
        return [without_clock(v) for v in body]
    return body


async def _truncate(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
        names = ", ".join(f'"{r["tablename"]}"' for r in tables)
        await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


def play(
    environ: dict[str, str],
    backend: str,
    spawn: Callable[..., ServerProcess],
    steps: Callable[[dict[str, int]], list[Step]],
) -> list[tuple[int, Any]]:
    """The steps against a gateway serving every endpoint from `backend`, from a fresh state."""
    runtime = Runtime(load_settings(environ))
    try:
        people: dict[str, Person] = {
            who: create_person(runtime, f"{who}@example.com") for who in ("alice", "bob")
        }
    finally:
        bridge.run(runtime.aclose())
    Path(environ["AA_FLAGS_FILE"]).write_text(flags_for(backend))
    server = spawn(environ)
    answers = []
    try:
        with server.client() as client:
            ids: dict[str, int] = {}
            for name, role in (("Work", "source"), ("Vault", "archive")):
                made = client.post(
                    "/api/calendars",
                    json={"name": name, "role": role},
                    headers=people["alice"].headers,
                )
                assert made.status_code == 201, made.text
                ids[name] = made.json()["id"]
            for who, method, path, body in steps(ids):
                response = client.request(method, path, json=body, headers=people[who].headers)
                assert response.headers["x-served-by"] == backend, (method, path)
                answers.append(
                    (
                        response.status_code,
                        without_clock(response.json() if response.content else None),
                    )
                )
    finally:
        server.stop()
    return answers


def _steps(ids: dict[str, int]) -> list[Step]:
    new = {"source_calendar_id": ids["Work"], "archive_calendar_id": ids["Vault"]}
    return [
        ("alice", "POST", "/api/archive-configs", {"name": "First", **new}),  # 0: the default
        ("alice", "POST", "/api/archive-configs", {"name": "Second", **new}),  # 1
        ("alice", "PATCH", "/api/archive-configs/2", {"is_default": True}),  # 2
        ("alice", "GET", "/api/archive-configs/1", None),  # 3: no longer
        ("alice", "PATCH", "/api/archive-configs/2", {"is_default": "yes"}),  # 4: 422
        ("alice", "PATCH", "/api/archive-configs/2", {"is_default": None}),  # 5: 422
        ("bob", "PATCH", "/api/archive-configs/1", {"is_default": True}),  # 6: 404
        ("alice", "PATCH", "/api/archive-configs/2", {"is_default": False}),  # 7
        ("alice", "GET", "/api/archive-configs", None),  # 8: none
        ("alice", "PATCH", "/api/archive-configs/1", {"is_default": True}),  # 9
        ("alice", "DELETE", "/api/archive-configs/1", None),  # 10
        ("alice", "GET", "/api/archive-configs", None),  # 11: none
    ]


def check(answers: list[tuple[int, Any]]) -> None:
    statuses = [status for status, _ in answers]
    assert statuses == [201, 201, 200, 200, 422, 422, 404, 200, 200, 200, 204, 200]
    assert [answers[i][1]["is_default"] for i in (0, 1, 2, 3, 7, 9)] == [
        True,
        False,
        True,
        False,
        False,
        True,
    ]
    for i, kind in ((4, "string"), (5, "null")):
        assert answers[i][1]["error"]["details"] == [
            {"field": "is_default", "message": f"must be true or false, got {kind}"}
        ]
    assert answers[6][1]["error"] == {
        "code": "not_found",
        "message": "archive configuration 1 not found",
    }
    assert [c["is_default"] for c in answers[8][1]["data"]] == [False, False]
    assert [(c["name"], c["is_default"]) for c in answers[11][1]["data"]] == [("Second", False)]


def test_both_backends_alike_on_sqlite(
    environ: dict[str, str],
    sqlite_template: Path,
    spawn: Callable[..., ServerProcess],
) -> None:
    runs = {}
    for backend in ("legacy", "async"):
        shutil.copy(sqlite_template, Path(environ["AA_DATABASE_URL"].removeprefix("sqlite:///")))
        runs[backend] = play(environ, backend, spawn, _steps)
    assert runs["legacy"] == runs["async"]
    check(runs["legacy"])


@pytest.mark.postgres
def test_both_backends_alike_on_postgresql(
    pg_environ: dict[str, str], spawn: Callable[..., ServerProcess]
) -> None:
    runs = {}
    for backend in ("legacy", "async"):
        bridge.run(_truncate(pg_environ["AA_DATABASE_URL"]), timeout=30)
        runs[backend] = play(pg_environ, backend, spawn, _steps)
    assert runs["legacy"] == runs["async"]
    check(runs["legacy"])
