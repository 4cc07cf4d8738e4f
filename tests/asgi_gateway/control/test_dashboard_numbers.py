"""The board and the endpoint page show exactly what the per-minute rows hold, though they read
quarters of an hour and edge minutes: real traffic through two workers, older traffic stored
as the recorder stores it, and the figures recomputed from the minutes alone."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from asgi_gateway.control.stats import Totals
from asgi_gateway.tables import COUNT_COLUMNS
from tests.conftest import Person, ServerProcess

FLAGS = """\
version: 1
routes:
  appointments.list: {mode: async}
  calendars.list: {mode: legacy}
"""
SENT = {("appointments.list", "async"): 30, ("calendars.list", "legacy"): 20}


def minute_totals(database: Path, since_minute: int) -> dict[tuple[str, str], Totals]:
    """Per (endpoint, backend): the plain sums of the per-minute rows since `since_minute`."""
    sums = ", ".join(
        f"sum({c})"
        for c in ("requests", "errors", "disconnects", "latency_ms_sum", "s5xx", *COUNT_COLUMNS[8:])
    )
    with sqlite3.connect(database) as db:
        rows = db.execute(
            f"SELECT endpoint, backend, {sums} FROM rollout_stats WHERE minute >= ? "
            "GROUP BY endpoint, backend",
            (since_minute,),
        ).fetchall()
    return {(e, b): Totals(*values[:5], buckets=tuple(values[5:])) for e, b, *values in rows}


def store_older_traffic(database: Path, now_minute: int) -> None:
    """Two requests an hour for the last 30 hours (some of them errors), as the recorder writes
    them: each minute row and the same counts added into its quarter of an hour."""
    columns = ["minute", "endpoint", "backend", *COUNT_COLUMNS]
    with sqlite3.connect(database) as db:
        for minute in range(now_minute - 30 * 60 - 7, now_minute - 5, 60):
            counts = dict.fromkeys(COUNT_COLUMNS, 0)
            is_error = minute % 6 == 0
            counts.update(requests=2, s2xx=2 - is_error, s5xx=is_error, errors=is_error)
            counts.update(latency_ms_sum=60, le_25=1, le_250=1)
            values = [minute, "appointments.list", "async", *counts.values()]
            marks = ", ".join("?" * len(columns))
            db.execute(f"INSERT INTO rollout_stats ({', '.join(columns)}) VALUES ({marks})", values)
            update = ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNT_COLUMNS)
            db.execute(
                f"INSERT INTO rollout_quarter_stats (quarter, {', '.join(columns[1:])}) "
                f"VALUES ({marks}) ON CONFLICT (quarter, endpoint, backend) DO UPDATE SET {update}",
                [minute // 15, *values[1:]],
            )


def side_cells(totals: Totals | None, minutes: int) -> str:
    """A backend's row of the endpoint page's tables, as the page prints it."""
    if totals is None or not totals.requests:
        return "<td>0</td><td>0.0</td>" + '<td><span class="muted">\u2013</span></td>' * 3
    p50, p95 = totals.percentile_ms(0.5), totals.percentile_ms(0.95)
    return (
        f"<td>{totals.requests}</td><td>{totals.requests / minutes:.1f}</td>"
        f"<td>{totals.error_rate * 100:.1f}%</td><td>{p50:.0f} ms</td><td>{p95:.0f} ms</td>"
    )


def test_pages_show_the_sums_of_the_minutes(
    environ: dict[str, str], spawn: Callable[..., ServerProcess], admin: Person
) -> None:
    Path(environ["AA_FLAGS_FILE"]).write_text(FLAGS)
    database = Path(environ["AA_DATABASE_URL"].removeprefix("sqlite:///"))
    server = spawn(environ, workers=2)
    store_older_traffic(database, int(time.time() // 60))
    with httpx.Client(base_url=server.url, headers=admin.headers, timeout=10) as client:
        for (endpoint, _), count in SENT.items():
            path = "/api/appointments" if endpoint == "appointments.list" else "/api/calendars"
            for _ in range(count):
                assert client.get(path).status_code == 200
        deadline = time.monotonic() + 15
        now_minute = int(time.time() // 60)
        while minute_totals(database, now_minute - 1).keys() != SENT.keys():
            assert time.monotonic() < deadline, "the recorder never wrote the traffic"
            time.sleep(0.2)
        while True:  # both workers' rows, merged
            recent = minute_totals(database, now_minute - 1)
            if all(recent[key].requests == n for key, n in SENT.items()):
                break
            assert time.monotonic() < deadline, recent
            time.sleep(0.2)
        page = client.get("/_rollout/endpoints/appointments.list").text
        board = client.get("/_rollout/?fragment=1").text
    now_minute = int(time.time() // 60)
    for period, minutes in (("1 h", 60), ("24 h", 1440)):
        expected = minute_totals(database, now_minute - minutes)
        assert (
            expected[("appointments.list", "async")].requests > SENT[("appointments.list", "async")]
        )
        table = page.split(f"<h2>Last {period}</h2>", 1)[1].split("</table>", 1)[0]
        cells = re.findall(r"<tr><td>(legacy|async)</td>(.*?)</tr>", table)
        assert dict(cells) == {
            b: side_cells(expected.get(("appointments.list", b)), minutes)
            for b in ("legacy", "async")
        }, period
    hour = minute_totals(database, now_minute - 60)
    for (endpoint, backend), totals in hour.items():
        row = re.search(rf'<tr data-endpoint="{re.escape(endpoint)}">(.*?)</tr>', board, re.S)
        assert row is not None, endpoint
        # The error rate is marked bad when above the guard's limit: either class will do.
        shown = (
            re.escape(f"{totals.requests / 60:.1f} · ")
            + r'<span class="(?:bad)?">'
            + re.escape(
                f"{totals.error_rate * 100:.1f}%</span> · "
                f"{totals.percentile_ms(0.5):.0f} ms/{totals.percentile_ms(0.95):.0f} ms"
            )
        )
        assert re.search(shown, row.group(1)), (endpoint, backend, row.group(1))
