"""The floor of bench/endpoints.py: `GET /api/appointments?per_page=50` written plainly.

A bare Starlette route that runs the same two SQL statements as the service (a count, then one
page of rows by start time) on one connection — aiosqlite on SQLite, asyncpg on PostgreSQL —
and `json.dumps` the rows: no authentication, no validation, no pool, no ORM, no gateway. The
distance from it is what the real read path costs on top of the database and the encoder.

    AA_DATABASE_URL=... uvicorn bench._floor:app
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

COUNT = "SELECT count(*) FROM appointments"
PAGE = (
    "SELECT id, calendar_id, subject, start_at, end_at, location, categories, is_private, "
    "provider_event_id, archived_from_id, created_at, updated_at FROM appointments "
    "ORDER BY start_at, id LIMIT {limit} OFFSET {offset}"
)
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

        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        _state["pg"] = conn
        try:
            yield
        finally:
            await conn.close()


def _row(values: Any) -> dict[str, Any]:
    (id_, calendar_id, subject, start, end, location, categories, private, event_id) = values[:9]
    archived_from, created, updated = values[9:]
    return {
        "id": id_,
        "calendar_id": calendar_id,
        "subject": subject,
        "start": str(start),
        "end": str(end),
        "location": location,
        "categories": json.loads(categories) if isinstance(categories, str) else categories,
        "is_private": bool(private),
        "provider_event_id": event_id,
        "archived_from_id": archived_from,
        "created_at": str(created),
        "updated_at": str(updated),
    }


async def appointments(request: Request) -> Response:
    per_page = int(request.query_params.get("per_page", "20"))
    page = PAGE.format(limit=per_page, offset=0)
    if "sqlite" in _state:
        conn = _state["sqlite"]
        async with conn.execute(COUNT) as cursor:
            total = (await cursor.fetchone())[0]
        async with conn.execute(page) as cursor:
            rows = await cursor.fetchall()
    else:
        conn = _state["pg"]
        total = await conn.fetchval(COUNT)
        rows = await conn.fetch(page)
    body = {"data": [_row(tuple(r)) for r in rows], "meta": {"total": total}}
    return Response(json.dumps(body), media_type="application/json")


async def ready(request: Request) -> Response:
    return Response("ok")


app = Starlette(
    routes=[
        Route("/api/appointments", appointments, methods=["GET"]),
        Route("/readyz", ready, methods=["GET"]),
    ],
    lifespan=lifespan,
)
