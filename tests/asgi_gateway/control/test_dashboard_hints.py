"""Retirement hints on the board, from a week of stored stats and the audit trail."""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import Person, ServerProcess


def row_of(board: str, endpoint: str) -> str:
    match = re.search(rf'<tr data-endpoint="{re.escape(endpoint)}">(.*?)</tr>', board, re.S)
    assert match is not None, endpoint
    return match.group(1)


def test_hints_mark_removable_legacy_code_and_missing_twins(
    gateway_server: ServerProcess, environ: dict[str, str], admin: Person
) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        for endpoint in ("auth.me", "calendars.list", "calendars.get"):
            response = client.patch(
                f"/_rollout/api/flags/{endpoint}", json={"mode": "async", "reason": "twin verified"}
            )
            assert response.status_code == 200
    now_minute = int(time.time() // 60)
    eight_days_ago = (datetime.now(UTC) - timedelta(days=8)).replace(tzinfo=None)
    database = Path(environ["AA_DATABASE_URL"].removeprefix("sqlite:///"))
    with sqlite3.connect(database) as db:
        # auth.me and calendars.list were flipped 8 days ago; calendars.get just now.
        db.execute(
            "UPDATE rollout_audit SET created_at = ? WHERE endpoint IN "
            "('auth.me', 'calendars.list')",
            (eight_days_ago,),
        )
        columns = [r[1] for r in db.execute("PRAGMA table_info(rollout_stats)")]
        rows = []
        for minute in range(now_minute - 6 * 1440, now_minute, 60):
            for endpoint, backend, requests, errors in (
                ("auth.me", "async", 100, 0),
                ("calendars.list", "async", 100, 0),
                ("calendars.list", "legacy", 3, 0),  # still some legacy traffic
                ("calendars.get", "async", 100, 0),
            ):
                values = dict.fromkeys(columns, 0)
                values.update(
                    minute=minute,
                    endpoint=endpoint,
                    backend=backend,
                    requests=requests,
                    s2xx=requests,
                    errors=errors,
                )
                rows.append(tuple(values[c] for c in columns))
        # As the recorder writes them: each minute, and its quarter of an hour (one minute an
        # hour here).
        marks = ", ".join("?" * len(columns))
        db.executemany(f"INSERT INTO rollout_stats VALUES ({marks})", rows)
        quarters = [(minute // 15, *rest) for minute, *rest in rows]
        db.executemany(f"INSERT INTO rollout_quarter_stats VALUES ({marks})", quarters)
    with gateway_server.client(headers=admin.headers) as client:
        board = client.get("/_rollout/").text
    assert "legacy code removable" in row_of(board, "auth.me")
    assert "legacy code removable" not in row_of(board, "calendars.list")  # legacy still used
    assert "legacy code removable" not in row_of(board, "calendars.get")  # flipped too recently
    assert "needs twin" in row_of(board, "pages.index")
    assert "needs twin" not in row_of(board, "appointments.list")
