"""The floor of bench/reads.py: `GET /api/appointments?per_page=50` written plainly.

A bare Starlette route that runs two SQL statements (a count, then one page of rows by start
time) on one aiosqlite connection on SQLite, or a pool of ten asyncpg connections (as many as
the app pools) on PostgreSQL, and `json.dumps` the rows in the API's shape: its body is byte
for byte the API's for an admin. No authentication, no validation, no ORM, no gateway. The
distance from it is what the real read path costs on top of the database and the encoder.

    AA_DATABASE_URL=... uvicorn bench._floor:app
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

COUNT = "SELECT count(*) FROM appointments"
COLUMNS = (
    "id, calendar_id, subject, start_at, end_at, location, categories, is_private, show_as, "
    "importance, sensitivity, is_all_day, recurrence, series_id, original_start, "
    "provider_event_id, archived_from_id, archive_config_id, archived_at, created_at, updated_at"
)
PAGE = f"SELECT {COLUMNS} FROM appointments ORDER BY start_at, id LIMIT $1 OFFSET $2"
_state: dict[str, Any] = {}


def _url() -> str:
    return os.environ["AA_DATABASE_URL"]


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    url = _url()
    if url.startswith("sqlite"):
        import aiosqlite

        conn = await aiosqlite.connect(url.split(":///", 1)[1])
        _state["sqlite"] = conn
        try:
            yield
        finally:
            await conn.close()
    else:
        import asyncpg

        # One asyncpg connection runs one query at a time: a pool as large as the app's.
        pool = await asyncpg.create_pool(
            url.replace("postgresql+asyncpg://", "postgresql://"), min_size=10, max_size=10
        )
        _state["pg"] = pool
        try:
            yield
        finally:
            await pool.close()


def _time(value: Any) -> str | None:
    """ISO 8601 in UTC to the second: SQLite hands back naive UTC text, asyncpg aware values."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _row(values: Any) -> dict[str, Any]:
    (id_, calendar_id, subject, start, end, location, categories, private) = values[:8]
    (show_as, importance, sensitivity, all_day, recurrence, series_id) = values[8:14]
    (original_start, event_id, archived_from, config_id, archived_at) = values[14:19]
    (created, updated) = values[19:21]
    return {
        "id": id_,
        "calendar_id": calendar_id,
        "subject": subject,
        "start": _time(start),
        "end": _time(end),
        "location": location,
        "categories": _json(categories) or [],
        "is_private": bool(private),
        "show_as": show_as,
        "importance": importance,
        "sensitivity": sensitivity,
        "is_all_day": bool(all_day),
        "recurrence": _json(recurrence),
        "series_id": series_id,
        "original_start": _time(original_start),
        "provider_event_id": event_id,
        "archived_from_id": archived_from,
        "archive_config_id": config_id,
        "archived_at": _time(archived_at),
        "created_at": _time(created),
        "updated_at": _time(updated),
    }


async def appointments(request: Request) -> Response:
    per_page = int(request.query_params.get("per_page", "20"))
    page = int(request.query_params.get("page", "1"))
    bounds = (per_page, (page - 1) * per_page)
    if "sqlite" in _state:
        conn = _state["sqlite"]
        async with conn.execute(COUNT) as cursor:
            total = (await cursor.fetchone())[0]
        async with conn.execute(PAGE.replace("$1", "?").replace("$2", "?"), bounds) as cursor:
            rows = await cursor.fetchall()
    else:
        async with _state["pg"].acquire() as conn:
            total = await conn.fetchval(COUNT)
            rows = await conn.fetch(PAGE, *bounds)
    pages = -(-total // per_page)
    body = {
        "data": [_row(tuple(r)) for r in rows],
        "meta": {"page": page, "per_page": per_page, "total": total, "pages": pages},
    }
    # As the API answers: compact, ASCII-escaped, with a trailing newline.
    text = json.dumps(body, ensure_ascii=True, separators=(",", ":")) + "\n"
    return Response(text, media_type="application/json")


async def ready(request: Request) -> Response:
    return Response("ok")


app = Starlette(
    routes=[
        Route("/api/appointments", appointments, methods=["GET"]),
        Route("/readyz", ready, methods=["GET"]),
    ],
    lifespan=lifespan,
)
