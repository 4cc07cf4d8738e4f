"""The appointments list's read path (plain rows, one statement, statements built once) answers
exactly what loading ORM objects and rendering them one by one answers, on both databases."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select, text

from shared.auth import Actor
from shared.config import load_settings
from shared.errors import NotFound
from shared.models import APPOINTMENT_COLUMNS, Appointment, Calendar
from shared.representation import appointment_json, appointment_row_json
from shared.runtime import Runtime
from shared.validation import parse_appointment_query

ALICE, BOB, ADMIN = "alice@example.com", "bob@example.com", "admin@example.com"


@pytest.fixture
async def world(db_environ: dict[str, str]) -> AsyncIterator[tuple[Runtime, dict[str, Any]]]:
    """Alice with two calendars, Bob with one, an admin; appointments of every shape."""
    runtime = Runtime(load_settings(db_environ))
    actors = {}
    for email in (ALICE, BOB, ADMIN):
        user = await runtime.services.users.create(email, "long-password", is_admin=email == ADMIN)
        actors[email] = Actor(user["id"], user["email"], email == ADMIN)
    base = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # across Europe's change to summer time
    async with runtime.db.session() as session:
        calendars = [
            Calendar(owner_id=actors[ALICE].user_id, name="Work", role="source"),
            Calendar(owner_id=actors[ALICE].user_id, name="Archive", role="archive"),
            Calendar(owner_id=actors[BOB].user_id, name="Bob's", role="source"),
        ]
        session.add_all(calendars)
        await session.flush()
        for n in range(23):
            start = base + timedelta(minutes=45 * n, microseconds=137 * n)
            session.add(
                Appointment(
                    calendar_id=calendars[n % 3].id,
                    subject=["Café ☕", "Stand-up", 'Quote "x" \\ y'][n % 3],
                    # Ties on start, to check the order by id as well.
                    start_at=start if n % 5 else base,
                    end_at=start + timedelta(minutes=30),
                    location="Zürich" if n % 2 else "",
                    categories=[] if n % 4 == 0 else ["Work", f"c{n}"],
                    is_private=n % 6 == 0,
                    show_as=["busy", "free", "tentative"][n % 3],
                    importance=["normal", "high"][n % 2],
                    sensitivity="private" if n % 6 == 0 else "normal",
                    is_all_day=n == 7,
                    recurrence={"rrule": "FREQ=WEEKLY;COUNT=3", "timezone": "UTC", "exdates": []}
                    if n == 9
                    else None,
                    provider_event_id=f"ev-{n}",
                    archived_at=start + timedelta(days=1) if n % 3 == 1 else None,
                    original_start=start - timedelta(hours=1) if n == 11 else None,
                    created_at=datetime(2026, 1, 1, 12, 0, 0, 999_999, tzinfo=UTC),
                    updated_at=datetime(2026, 1, 2, 8, 30, tzinfo=timezone(timedelta(hours=2))),
                )
            )
    yield runtime, {"actors": actors, "calendars": [c.id for c in calendars]}
    await runtime.aclose()


async def expected_page(runtime: Runtime, actor: Actor, params: dict[str, str]) -> dict[str, Any]:
    """The page as loading ORM objects one statement at a time and rendering each gives it."""
    query = parse_appointment_query(params)
    async with runtime.db.read_session() as session:
        statement = select(Appointment).order_by(Appointment.start_at, Appointment.id)
        if query.calendar_id is not None:
            statement = statement.where(Appointment.calendar_id == query.calendar_id)
        elif not actor.is_admin:
            owned = select(Calendar.id).where(Calendar.owner_id == actor.user_id)
            statement = statement.where(Appointment.calendar_id.in_(owned))
        if query.start is not None:
            statement = statement.where(Appointment.end_at > query.start)
        if query.end is not None:
            statement = statement.where(Appointment.start_at < query.end)
        everything = list(await session.scalars(statement))
    page = everything[query.page.offset : query.page.offset + query.page.per_page]
    return {
        "data": [appointment_json(a, query.tz) for a in page],
        "total": len(everything),
    }


def as_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode()


QUERIES = [
    {},
    {"per_page": "5"},
    {"per_page": "5", "page": "3"},
    {"per_page": "100"},
    {"tz": "Europe/Amsterdam", "per_page": "50"},
    {"start": "2026-03-29", "end": "2026-03-29", "tz": "Europe/Amsterdam"},
    {"start": "2026-03-29T03:00:00+02:00"},
    {"end": "2026-03-29T01:00:00Z", "tz": "America/New_York"},
    {"page": "40"},  # past the end: empty, with the total
    {"page": str(10**15), "per_page": "100"},  # an offset too large to bind
    {"start": "2027-01-01"},  # nothing at all
]


@pytest.mark.parametrize("who", [ALICE, BOB, ADMIN])
@pytest.mark.parametrize("params", QUERIES, ids=[json.dumps(q) for q in QUERIES])
async def test_every_page_equals_rendering_orm_objects(
    world: tuple[Runtime, dict[str, Any]], who: str, params: dict[str, str]
) -> None:
    runtime, names = world
    actor = names["actors"][who]
    page = await runtime.services.appointments.list(actor, parse_appointment_query(params))
    expected = await expected_page(runtime, actor, params)
    assert page.total == expected["total"]
    assert as_json(page.items) == as_json(expected["data"])


async def test_one_calendar_for_its_owner_and_an_admin_and_nobody_else(
    world: tuple[Runtime, dict[str, Any]],
) -> None:
    runtime, names = world
    actors, (work, archive, bobs) = names["actors"], names["calendars"]
    for actor, calendar_id in (
        (actors[ALICE], work),
        (actors[ALICE], archive),
        (actors[ADMIN], bobs),
    ):
        params = {"calendar_id": str(calendar_id), "tz": "Asia/Kolkata", "per_page": "4"}
        page = await runtime.services.appointments.list(actor, parse_appointment_query(params))
        expected = await expected_page(runtime, actor, params)
        assert page.items and as_json(page.items) == as_json(expected["data"])
        assert {a["calendar_id"] for a in page.items} == {calendar_id}
    # Ids past the INTEGER columns' range name nothing either (PostgreSQL cannot bind them).
    for calendar_id in (bobs, 999_999, 2**31, 2**63 - 1):
        with pytest.raises(NotFound, match=f"calendar {calendar_id} not found"):
            await runtime.services.appointments.list(
                actors[ALICE], parse_appointment_query({"calendar_id": str(calendar_id)})
            )


async def test_a_row_renders_as_its_object_does_even_before_it_was_read_back(
    world: tuple[Runtime, dict[str, Any]],
) -> None:
    """A just-written appointment still holds the offsets it was given; both renderings convert."""
    _, names = world
    plus_two = timezone(timedelta(hours=2))
    fresh = Appointment(
        id=1,
        calendar_id=names["calendars"][0],
        subject="x",
        start_at=datetime(2026, 6, 1, 10, 0, 30, tzinfo=plus_two),
        end_at=datetime(2026, 6, 1, 11, 0, tzinfo=plus_two),
        location="",
        categories=["a"],
        is_private=False,
        show_as="busy",
        importance="normal",
        sensitivity="normal",
        is_all_day=False,
        provider_event_id="e",
        created_at=datetime(2026, 6, 1, 8, 0, tzinfo=UTC),
        updated_at=datetime(2026, 6, 1, 8, 0, tzinfo=UTC),
    )
    rendered = appointment_json(fresh)
    assert rendered["start"] == "2026-06-01T08:00:30+00:00"
    assert rendered["end"] == "2026-06-01T09:00:00+00:00"
    row = (*(getattr(fresh, name) for name in APPOINTMENT_COLUMNS), 99)  # a trailing total
    assert appointment_row_json(row) == rendered


@pytest.mark.parametrize(
    ("stored", "read"),
    [
        ("2026-03-29 01:30:00.000000", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        ("2026-03-29 01:30:00", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        ("2026-03-29 01:30:00.250000", datetime(2026, 3, 29, 1, 30, 0, 250_000, tzinfo=UTC)),
        ("2026-03-29 03:30:00+02:00", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
    ],
)
async def test_sqlite_timestamps_read_back_in_utc_whatever_text_they_were_stored_as(
    environ: dict[str, str], stored: str, read: datetime
) -> None:
    runtime = Runtime(load_settings(environ))
    try:
        user = await runtime.services.users.create(ALICE, "long-password")
        async with runtime.db.session() as session:
            calendar = Calendar(owner_id=user["id"], name="Work", role="source")
            session.add(calendar)
            await session.flush()
            await session.execute(
                text(
                    "INSERT INTO appointments (calendar_id, subject, start_at, end_at, location,"
                    " categories, is_private, provider_event_id, show_as, importance,"
                    " sensitivity, is_all_day, created_at, updated_at) VALUES (:c, 's', :t, :t,"
                    " '', '[]', 0, 'e', 'busy', 'normal', 'normal', 0, :t, :t)"
                ),
                {"c": calendar.id, "t": stored},
            )
        async with runtime.db.read_session() as session:
            loaded = await session.scalar(select(Appointment))
        assert loaded is not None
        assert loaded.start_at == read and loaded.start_at.tzinfo is UTC
        actor = Actor(user["id"], ALICE, False)
        page = await runtime.services.appointments.list(actor, parse_appointment_query({}))
        assert page.items[0]["start"] == read.isoformat(timespec="seconds")
    finally:
        await runtime.aclose()


async def test_ids_beyond_the_integer_columns_name_nothing_on_either_database(
    world: tuple[Runtime, dict[str, Any]],
) -> None:
    runtime, names = world
    admin = names["actors"][ADMIN]
    for huge in (2**31, 2**40, 2**63 - 1):
        with pytest.raises(NotFound):
            await runtime.services.calendars.get(admin, huge)
        with pytest.raises(NotFound):
            await runtime.services.appointments.get(admin, huge)
