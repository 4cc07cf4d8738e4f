"""The domain services and repositories, awaited directly on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, update

from shared.auth import Actor
from shared.config import load_settings
from shared.errors import Conflict, NotFound, ProviderError, Unauthorized, ValidationFailed
from shared.inputs.appointments import parse_appointment
from shared.inputs.archive import parse_archive_config
from shared.migrate import alembic_config, current_revision, upgrade
from shared.models import (
    ActionLog,
    ApiToken,
    Appointment,
    ArchiveConfiguration,
    Calendar,
    User,
    utcnow,
)
from shared.pagination import PageRequest
from shared.providers import ProviderEvent
from shared.repositories import AppointmentRepository, CalendarRepository
from shared.runtime import Runtime
from shared.seed import DEMO_EMAIL, seed_demo
from shared.services import default_window, find_overlaps
from shared.services.users import ActorCache
from shared.sessions import SessionIdentity
from shared.validation import parse_appointment_query

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_environ(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment of a fresh SQLite file, then of the emptied PostgreSQL database."""
    name = "environ" if request.param == "sqlite" else "pg_environ"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
async def domain(db_environ: dict[str, str]) -> AsyncIterator[Runtime]:
    """A Runtime created and closed on the test's own event loop."""
    runtime = Runtime(load_settings(db_environ))
    yield runtime
    await runtime.aclose()


async def make_actor(runtime: Runtime, email: str, *, is_admin: bool = False) -> Actor:
    user = await runtime.services.users.create(email, f"pw-{email}", is_admin=is_admin)
    return Actor(user_id=user["id"], email=user["email"], is_admin=user["is_admin"])


async def make_calendar(
    runtime: Runtime, actor: Actor, name: str = "Work", role: str = "source", **extra: Any
) -> int:
    calendar = await runtime.services.calendars.create(
        actor, {"name": name, "role": role, "provider": "local", **extra}
    )
    return int(calendar["id"])


async def insert_calendar(runtime: Runtime, actor: Actor, name: str, **values: Any) -> int:
    """A calendar row written directly, as one stored before remote calendars were checked."""
    async with runtime.db.session() as session:
        row = await CalendarRepository(session).add(
            Calendar(owner_id=actor.user_id, name=name, role="source", **values)
        )
        return row.id


async def make_appointment(
    runtime: Runtime,
    actor: Actor,
    calendar_id: int,
    subject: str,
    start: str,
    end: str,
    **extra: Any,
) -> dict[str, Any]:
    body = {"calendar_id": calendar_id, "subject": subject, "start": start, "end": end, **extra}
    return await runtime.services.appointments.create(actor, parse_appointment(body))


async def make_config(
    runtime: Runtime, actor: Actor, source: int, archive: int, **extra: Any
) -> int:
    values = parse_archive_config(
        {"name": "Nightly", "source_calendar_id": source, "archive_calendar_id": archive, **extra}
    )
    return int((await runtime.services.archive.create_config(actor, values))["id"])


def query(**params: str) -> Any:
    return parse_appointment_query(params)


# -- users and credentials ------------------------------------------------------------------


async def test_a_user_is_created_with_a_normalized_email(domain: Runtime) -> None:
    user = await domain.services.users.create("  Alice@Example.COM ", "long-password", name="Alice")
    assert user == {
        "id": user["id"],
        "email": "alice@example.com",
        "name": "Alice",
        "is_admin": False,
    }


async def test_a_taken_email_is_a_conflict_whatever_its_case(domain: Runtime) -> None:
    await domain.services.users.create("alice@example.com", "long-password")
    with pytest.raises(Conflict, match=r"a user with email 'alice@example\.com' already exists"):
        await domain.services.users.create("ALICE@example.com", "other-password")


async def test_a_bad_email_or_short_password_is_refused(domain: Runtime) -> None:
    with pytest.raises(ValidationFailed, match="invalid email 'nobody'"):
        await domain.services.users.create("nobody", "long-password")
    with pytest.raises(ValidationFailed, match="password too short"):
        await domain.services.users.create("carol@example.com", "short")


async def test_password_authentication(domain: Runtime) -> None:
    users = domain.services.users
    await users.create("alice@example.com", "right-password", is_admin=True)
    actor = (await users.sign_in(" alice@example.com", "right-password")).actor
    assert (actor.email, actor.is_admin) == ("alice@example.com", True)
    with pytest.raises(Unauthorized, match=r"^wrong email or password$"):
        await users.sign_in("alice@example.com", "wrong-password")
    with pytest.raises(Unauthorized, match=r"^wrong email or password$"):
        await users.sign_in("nobody@example.com", "right-password")


async def test_a_token_authenticates_its_user_and_records_its_use(domain: Runtime) -> None:
    users = domain.services.users
    alice = await make_actor(domain, "alice@example.com")
    token = await domain.services.tokens.create("alice@example.com", name="laptop")
    assert token.startswith("aa_")

    assert await users.authenticate_token(token) == alice
    async with domain.db.read_session() as session:
        row = await session.scalar(select(ApiToken))
    assert row is not None
    assert row.token_hash != token and token not in row.token_hash  # stored hashed only
    assert row.last_used_at is not None


async def test_unknown_and_revoked_tokens_are_refused(domain: Runtime) -> None:
    users = domain.services.users
    await make_actor(domain, "alice@example.com")
    token = await domain.services.tokens.create("alice@example.com")
    with pytest.raises(Unauthorized, match="invalid or revoked API token"):
        await users.authenticate_token(token + "x")
    async with domain.db.session() as session:
        await session.execute(update(ApiToken).values(revoked_at=utcnow()))
    with pytest.raises(Unauthorized, match="invalid or revoked API token"):
        await users.authenticate_token(token)


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_revoked_token_works_until_the_actor_cache_period_ends(domain: Runtime) -> None:
    users = domain.services.users
    clock = ManualClock()
    users.actors = ActorCache(5.0, clock=clock)
    alice = await make_actor(domain, "alice@example.com")
    token = await domain.services.tokens.create("alice@example.com")
    assert await users.authenticate_token(token) == alice
    async with domain.db.session() as session:
        await session.execute(update(ApiToken).values(revoked_at=utcnow()))

    clock.now += 4.9
    assert await users.authenticate_token(token) == alice  # from the cache, no query
    clock.now += 0.2
    with pytest.raises(Unauthorized, match="invalid or revoked API token"):
        await users.authenticate_token(token)


async def test_with_the_actor_cache_off_a_revocation_applies_at_once(domain: Runtime) -> None:
    users = domain.services.users
    users.actors = ActorCache(0)
    await make_actor(domain, "alice@example.com")
    token = await domain.services.tokens.create("alice@example.com")
    await users.authenticate_token(token)
    async with domain.db.session() as session:
        await session.execute(update(ApiToken).values(revoked_at=utcnow()))
    with pytest.raises(Unauthorized, match="invalid or revoked API token"):
        await users.authenticate_token(token)


async def session_of(runtime: Runtime, email: str) -> SessionIdentity:
    """Sign `email` in (password `pw-<email>`) and return the session its cookie would name."""
    signed_in = await runtime.services.users.sign_in(email, f"pw-{email}")
    return SessionIdentity(signed_in.actor.user_id, signed_in.sid)


async def test_the_actor_cache_keeps_successes_only(domain: Runtime) -> None:
    users = domain.services.users
    users.actors = ActorCache(60.0, clock=ManualClock())
    alice = await make_actor(domain, "alice@example.com")
    session = await session_of(domain, alice.email)
    unknown = SessionIdentity(alice.user_id, "not-a-session")
    assert await users.actor_of_session(unknown) is None  # not cached as "no such session"
    assert await users.actor_of_session(session) == alice
    assert await users.resolve(None, session) == alice


async def test_a_session_user_change_shows_after_the_period(domain: Runtime) -> None:
    users = domain.services.users
    clock = ManualClock()
    users.actors = ActorCache(5.0, clock=clock)
    alice = await make_actor(domain, "alice@example.com")
    session = await session_of(domain, alice.email)
    assert await users.actor_of_session(session) == alice
    async with domain.db.session() as db_session:
        await db_session.execute(update(User).values(is_admin=True))
    assert (await users.actor_of_session(session)) == alice
    clock.now += 5.0
    promoted = await users.actor_of_session(session)
    assert promoted is not None and promoted.is_admin


def test_the_actor_cache_stays_within_its_bound() -> None:
    clock = ManualClock()
    cache = ActorCache(10.0, max_entries=3, clock=clock)
    actors = [Actor(n, f"u{n}@example.com", False) for n in range(5)]
    for actor in actors[:3]:
        cache.put(actor.user_id, actor)
    clock.now += 10.0  # all three expired: the next put drops them, not the live ones
    cache.put(3, actors[3])
    assert [cache.get(n) for n in range(4)] == [None, None, None, actors[3]]
    cache.put(0, actors[0])
    cache.put(1, actors[1])
    cache.put(4, actors[4])  # full of live entries: start over rather than grow
    assert [cache.get(n) for n in (0, 1, 3, 4)] == [None, None, None, actors[4]]


async def test_a_token_for_an_unknown_user_is_not_issued(domain: Runtime) -> None:
    with pytest.raises(NotFound, match=r"user 'nobody@example\.com' not found"):
        await domain.services.tokens.create("nobody@example.com")


async def test_resolve_prefers_the_token_and_refuses_a_malformed_header(domain: Runtime) -> None:
    users = domain.services.users
    alice = await make_actor(domain, "alice@example.com")
    bob = await make_actor(domain, "bob@example.com")
    token = await domain.services.tokens.create("bob@example.com")
    session = await session_of(domain, alice.email)

    assert await users.resolve(None, None) is None
    assert await users.resolve(None, session) == alice
    # a session of a vanished user, another user's session id, an unknown session id
    assert await users.resolve(None, SessionIdentity(10**30, session.sid)) is None
    assert await users.resolve(None, SessionIdentity(bob.user_id, session.sid)) is None
    assert await users.resolve(None, SessionIdentity(alice.user_id, "forged")) is None
    assert await users.resolve(f"Bearer {token}", session) == bob
    for header in ("Basic abc", "Bearer ", "Bearer"):
        with pytest.raises(Unauthorized, match="malformed Authorization header"):
            await users.resolve(header, session)


# -- calendars ---------------------------------------------------------------------------------


async def test_calendar_crud(domain: Runtime) -> None:
    calendars = domain.services.calendars
    alice = await make_actor(domain, "alice@example.com")
    created = await calendars.create(
        alice, {"name": "Work", "role": "source", "provider": "local", "provider_id": None}
    )
    assert created["owner_id"] == alice.user_id
    assert await calendars.get(alice, created["id"]) == created

    updated = await calendars.update(alice, created["id"], {"name": "Office"})
    assert updated["name"] == "Office"
    assert updated["created_at"] == created["created_at"]

    await calendars.delete(alice, created["id"])
    with pytest.raises(NotFound, match=f"calendar {created['id']} not found"):
        await calendars.get(alice, created["id"])


async def test_calendars_of_others_are_not_found_but_an_admin_sees_all(domain: Runtime) -> None:
    calendars = domain.services.calendars
    admin = await make_actor(domain, "admin@example.com", is_admin=True)
    alice = await make_actor(domain, "alice@example.com")
    bob = await make_actor(domain, "bob@example.com")
    mine = await make_calendar(domain, alice)
    await make_calendar(domain, bob)

    for attempt in (
        calendars.get(bob, mine),
        calendars.update(bob, mine, {"name": "x"}),
        calendars.delete(bob, mine),
    ):
        with pytest.raises(NotFound):
            await attempt
    assert [c["id"] for c in (await calendars.list(alice, PageRequest())).items] == [mine]
    assert (await calendars.list(admin, PageRequest())).total == 2
    assert (await calendars.get(admin, mine))["owner_id"] == alice.user_id


async def test_a_calendar_used_by_a_configuration_cannot_be_deleted(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    source = await make_calendar(domain, alice)
    archive = await make_calendar(domain, alice, "Archive", "archive")
    config_id = await make_config(domain, alice, source, archive)
    for calendar_id in (source, archive):
        with pytest.raises(Conflict, match=f"calendar {calendar_id} is used by an archive"):
            await domain.services.calendars.delete(alice, calendar_id)
    await domain.services.archive.delete_config(alice, config_id)
    await domain.services.calendars.delete(alice, source)


async def test_a_graph_calendar_cannot_lose_its_provider_id(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    calendar_id = await insert_calendar(
        domain, alice, "Work", provider="graph", provider_id="AAMk-1"
    )
    with pytest.raises(ValidationFailed, match="check provider_id"):
        await domain.services.calendars.update(alice, calendar_id, {"provider_id": None})
    assert (await domain.services.calendars.get(alice, calendar_id))["provider_id"] == "AAMk-1"


async def test_remote_events_of_a_local_calendar_are_its_appointments(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    calendar_id = await make_calendar(domain, alice)
    await make_appointment(
        domain,
        alice,
        calendar_id,
        "Planning",
        "2026-03-29T08:00:00Z",
        "2026-03-29T09:00:00Z",
        provider_event_id="evt-1",
    )
    events = await domain.services.calendars.remote_events(
        alice,
        calendar_id,
        datetime(2026, 3, 29, tzinfo=UTC),
        datetime(2026, 3, 30, tzinfo=UTC),
        BERLIN,
    )
    assert events == [
        {
            "event_id": "evt-1",
            "subject": "Planning",
            "start": "2026-03-29T10:00:00+02:00",
            "end": "2026-03-29T11:00:00+02:00",
            "location": "",
            "categories": [],
            "is_private": False,
            "show_as": "busy",
            "importance": "normal",
            "sensitivity": "normal",
            "is_all_day": False,
            "series_id": None,
        }
    ]


# -- appointments ------------------------------------------------------------------------------


async def test_list_returns_what_overlaps_the_window_by_start_then_id(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    cal = await make_calendar(domain, alice)
    subjects = [
        ("before", "2026-03-28T20:00:00Z", "2026-03-28T23:00:00Z"),  # ends as the day begins
        ("straddles", "2026-03-28T22:30:00Z", "2026-03-28T23:30:00Z"),
        ("late", "2026-03-29T21:00:00Z", "2026-03-29T21:30:00Z"),
        ("early", "2026-03-29T06:00:00Z", "2026-03-29T07:00:00Z"),
        ("early twin", "2026-03-29T06:00:00Z", "2026-03-29T06:30:00Z"),
        ("after", "2026-03-29T22:00:00Z", "2026-03-29T23:00:00Z"),  # starts as the day ends
    ]
    for subject, start, end in subjects:
        await make_appointment(domain, alice, cal, subject, start, end)
    page = await domain.services.appointments.list(
        alice, query(start="2026-03-29", end="2026-03-29", tz="Europe/Berlin")
    )
    assert [a["subject"] for a in page.items] == ["straddles", "early", "early twin", "late"]
    assert page.total == 4


async def test_list_renders_times_in_the_query_zone_across_dst(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    cal = await make_calendar(domain, alice)
    await make_appointment(
        domain, alice, cal, "night", "2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z"
    )
    (item,) = (await domain.services.appointments.list(alice, query(tz="Europe/Berlin"))).items
    assert (item["start"], item["end"]) == (
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T03:30:00+02:00",
    )
    (item,) = (await domain.services.appointments.list(alice, query())).items
    assert (item["start"], item["end"]) == (
        "2026-03-29T00:30:00+00:00",
        "2026-03-29T01:30:00+00:00",
    )


async def test_list_paginates_and_past_the_end_is_empty(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    cal = await make_calendar(domain, alice)
    for hour in range(5):
        await make_appointment(
            domain,
            alice,
            cal,
            f"slot {hour}",
            f"2026-05-04T0{hour}:00:00Z",
            f"2026-05-04T0{hour}:30:00Z",
        )
    appointments = domain.services.appointments
    pages = [await appointments.list(alice, query(page=str(n), per_page="2")) for n in (1, 2, 3)]
    assert [[a["subject"] for a in p.items] for p in pages] == [
        ["slot 0", "slot 1"],
        ["slot 2", "slot 3"],
        ["slot 4"],
    ]
    assert pages[0].meta() == {"page": 1, "per_page": 2, "total": 5, "pages": 3}
    beyond = await appointments.list(alice, query(page="4", per_page="2"))
    assert (list(beyond.items), beyond.total) == ([], 5)


async def test_a_page_number_beyond_any_offset_is_empty_not_an_error(domain: Runtime) -> None:
    # An offset past 2**63 cannot be bound by either database: it used to be a 500.
    alice = await make_actor(domain, "alice@example.com")
    page = await domain.services.calendars.list(alice, PageRequest(10**20, 200))
    assert (list(page.items), page.total, page.page) == ([], 0, 10**20)


async def test_list_covers_own_calendars_and_an_admin_sees_all(domain: Runtime) -> None:
    admin = await make_actor(domain, "admin@example.com", is_admin=True)
    alice = await make_actor(domain, "alice@example.com")
    bob = await make_actor(domain, "bob@example.com")
    alices = await make_calendar(domain, alice)
    bobs = await make_calendar(domain, bob)
    await make_appointment(
        domain, alice, alices, "alice's", "2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z"
    )
    await make_appointment(
        domain, bob, bobs, "bob's", "2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z"
    )
    appointments = domain.services.appointments
    assert [a["subject"] for a in (await appointments.list(bob, query())).items] == ["bob's"]
    assert (await appointments.list(admin, query())).total == 2
    with pytest.raises(NotFound, match=f"calendar {alices} not found"):
        await appointments.list(bob, query(calendar_id=str(alices)))


async def test_appointments_of_others_are_not_found(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    bob = await make_actor(domain, "bob@example.com")
    cal = await make_calendar(domain, alice)
    created = await make_appointment(
        domain, alice, cal, "x", "2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z"
    )
    appointments = domain.services.appointments
    for attempt in (
        appointments.get(bob, created["id"]),
        appointments.update(bob, created["id"], {"subject": "mine now"}),
        appointments.delete(bob, created["id"]),
    ):
        with pytest.raises(NotFound, match=f"appointment {created['id']} not found"):
            await attempt
    with pytest.raises(NotFound, match=f"calendar {cal} not found"):
        await make_appointment(
            domain, bob, cal, "intruder", "2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z"
        )


async def test_a_duplicate_provider_event_id_is_a_conflict(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    cal = await make_calendar(domain, alice)
    times = ("2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z")
    await make_appointment(domain, alice, cal, "one", *times, provider_event_id="evt-1")
    other = await make_appointment(domain, alice, cal, "two", *times, provider_event_id="evt-2")
    with pytest.raises(
        Conflict, match=f"calendar {cal} already has an event with provider_event_id 'evt-1'"
    ):
        await make_appointment(domain, alice, cal, "three", *times, provider_event_id="evt-1")
    with pytest.raises(Conflict, match="provider_event_id 'evt-1'"):
        await domain.services.appointments.update(
            alice, other["id"], {"provider_event_id": "evt-1"}
        )
    assert (await domain.services.appointments.get(alice, other["id"]))["subject"] == "two"


async def test_an_update_keeps_the_end_after_the_start(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    cal = await make_calendar(domain, alice)
    created = await make_appointment(
        domain, alice, cal, "x", "2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z"
    )
    with pytest.raises(ValidationFailed, match="check end"):
        await domain.services.appointments.update(
            alice, created["id"], {"start": datetime(2026, 5, 4, 11, tzinfo=UTC)}
        )
    moved = await domain.services.appointments.update(
        alice, created["id"], {"start": datetime(2026, 5, 4, 9, 30, tzinfo=UTC), "subject": "moved"}
    )
    assert (moved["start"], moved["subject"]) == ("2026-05-04T09:30:00+00:00", "moved")


# -- archiving -----------------------------------------------------------------------------------


async def archive_setup(runtime: Runtime) -> tuple[Actor, int, int, int]:
    """Alice's source calendar with a day of mixed events, her archive, and a configuration."""
    alice = await make_actor(runtime, "alice@example.com")
    source = await make_calendar(runtime, alice)
    archive = await make_calendar(runtime, alice, "Archive", "archive")
    day = [
        ("Standup", "09:00", "09:15", {}),
        ("Planning", "10:00", "11:00", {}),
        ("Overlapping review", "10:30", "11:30", {"categories": ["Work"]}),
        ("Doctor", "12:00", "13:00", {"is_private": True}),
        ("Gym", "18:00", "19:00", {"categories": ["personal"]}),  # excluded, case-insensitive
        ("Lunch", "13:00", "14:00", {}),
    ]
    for subject, start, end, extra in day:
        await make_appointment(
            runtime,
            alice,
            source,
            subject,
            f"2026-05-04T{start}:00Z",
            f"2026-05-04T{end}:00Z",
            **extra,
        )
    # Overlaps archived as they are: these tests are about skipping, windows and duplicates
    # (tests/shared/test_archive_rules.py covers the overlap rules).
    config_id = await make_config(
        runtime, alice, source, archive, excluded_categories=["Personal"], allow_overlaps=True
    )
    return alice, source, archive, config_id


WINDOW = {"start": datetime(2026, 5, 4, tzinfo=UTC), "end": datetime(2026, 5, 5, tzinfo=UTC)}


async def test_a_run_skips_private_and_excluded_events_and_counts_overlaps(
    domain: Runtime,
) -> None:
    alice, source, archive, config_id = await archive_setup(domain)
    entry = await domain.services.archive.run(alice, config_id, **WINDOW)
    assert {k: entry[k] for k in ("archived", "skipped", "duplicate", "overlap", "status")} == {
        "archived": 4,
        "skipped": 2,
        "duplicate": 0,
        "overlap": 2,
        "status": "success",
    }
    assert entry["details"]["events_read"] == 6
    assert len(entry["details"]["overlaps"]) == 1
    assert (entry["actor"], entry["config_id"]) == ("alice@example.com", config_id)
    assert entry["window_start"] == "2026-05-04T00:00:00+00:00"

    copies = await domain.services.appointments.list(alice, query(calendar_id=str(archive)))
    assert [c["subject"] for c in copies.items] == [
        "Standup",
        "Planning",
        "Overlapping review",
        "Lunch",
    ]
    originals = {
        a["provider_event_id"]: a["id"]
        for a in (
            await domain.services.appointments.list(alice, query(calendar_id=str(source)))
        ).items
    }
    for copy in copies.items:
        assert copy["archived_from_id"] == originals[copy["provider_event_id"]]


async def test_second_run_archives_nothing_new(domain: Runtime) -> None:
    alice, _, archive, config_id = await archive_setup(domain)
    first = await domain.services.archive.run(alice, config_id, **WINDOW)
    second = await domain.services.archive.run(alice, config_id, **WINDOW)
    assert (second["archived"], second["duplicate"]) == (0, first["archived"])
    assert second["skipped"] == first["skipped"]
    copies = await domain.services.appointments.list(alice, query(calendar_id=str(archive)))
    assert copies.total == first["archived"]


async def test_concurrent_runs_of_one_window_never_double_archive(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    source = await make_calendar(domain, alice)
    archive = await make_calendar(domain, alice, "Archive", "archive")
    start = datetime(2026, 5, 4, tzinfo=UTC)
    async with domain.db.session() as session:
        await AppointmentRepository(session).add_all(
            [
                Appointment(
                    calendar_id=source,
                    subject=f"event {n}",
                    start_at=start + timedelta(minutes=10 * n),
                    end_at=start + timedelta(minutes=10 * n + 5),
                    provider_event_id=f"evt-{n:03d}",
                )
                for n in range(60)
            ]
        )
    config_id = await make_config(domain, alice, source, archive)
    runs = await asyncio.gather(
        *(domain.services.archive.run(alice, config_id, **WINDOW) for _ in range(2))
    )
    assert sum(r["archived"] for r in runs) == 60
    assert all(r["archived"] + r["duplicate"] == 60 for r in runs)
    async with domain.db.read_session() as session:
        rows = await session.execute(
            select(Appointment.provider_event_id, func.count())
            .where(Appointment.calendar_id == archive)
            .group_by(Appointment.provider_event_id)
        )
        counts = {event_id: n for event_id, n in rows}
    assert len(counts) == 60 and set(counts.values()) == {1}


async def test_a_run_without_a_window_uses_the_configuration_days(domain: Runtime) -> None:
    alice, _, _, config_id = await archive_setup(domain)
    await domain.services.archive.update_config(
        alice, config_id, {"days_back": 1, "timezone": "Europe/Berlin"}
    )
    entry = await domain.services.archive.run(alice, config_id, today=date(2026, 5, 5))
    assert (entry["window_start"], entry["window_end"]) == (
        "2026-05-03T22:00:00+00:00",
        "2026-05-05T22:00:00+00:00",
    )
    assert entry["archived"] == 4


async def test_a_run_refuses_a_window_that_ends_before_it_starts(domain: Runtime) -> None:
    alice, _, _, config_id = await archive_setup(domain)
    with pytest.raises(ValidationFailed, match="check end"):
        await domain.services.archive.run(
            alice, config_id, start=WINDOW["end"], end=WINDOW["start"]
        )


async def test_a_provider_failure_is_logged_as_a_failed_run(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    remote = await insert_calendar(domain, alice, "Remote", provider="graph", provider_id="AAMk")
    archive = await make_calendar(domain, alice, "Archive", "archive")
    config_id = await make_config(domain, alice, remote, archive)
    with pytest.raises(ProviderError, match="AA_GRAPH_URL is not set"):
        await domain.services.archive.run(alice, config_id, **WINDOW)
    (entry,) = (await domain.services.archive.action_log(alice, config_id, PageRequest())).items
    assert entry["status"] == "failed"
    assert entry["errors"] == ["this calendar uses the graph provider but AA_GRAPH_URL is not set"]


async def test_configurations_and_runs_of_others_are_not_found(domain: Runtime) -> None:
    admin = await make_actor(domain, "admin@example.com", is_admin=True)
    alice, source, _, config_id = await archive_setup(domain)
    bob = await make_actor(domain, "bob@example.com")
    archive = domain.services.archive
    for attempt in (
        archive.get_config(bob, config_id),
        archive.run(bob, config_id, **WINDOW),
        archive.delete_config(bob, config_id),
        archive.action_log(bob, config_id, PageRequest()),
    ):
        with pytest.raises(NotFound, match=f"archive configuration {config_id} not found"):
            await attempt
    bobs = await make_calendar(domain, bob, "Bob archive", "archive")
    with pytest.raises(ValidationFailed, match="unknown calendar") as error:
        await make_config(domain, bob, source, bobs)
    assert error.value.details == [
        {"field": "source_calendar_id", "message": f"calendar {source} not found"}
    ]
    assert (await archive.get_config(admin, config_id))["owner_id"] == alice.user_id
    assert (await archive.list_configs(bob, PageRequest())).total == 0
    assert (await archive.list_configs(admin, PageRequest())).total == 1


async def test_the_action_log_is_newest_first_and_scoped_to_the_owner(domain: Runtime) -> None:
    admin = await make_actor(domain, "admin@example.com", is_admin=True)
    alice, _, _, config_id = await archive_setup(domain)
    bob = await make_actor(domain, "bob@example.com")
    first = await domain.services.archive.run(alice, config_id, **WINDOW)
    second = await domain.services.archive.run(None, config_id, **WINDOW)  # as a scheduled job
    log = await domain.services.archive.action_log(alice, None, PageRequest())
    assert [e["id"] for e in log.items] == [second["id"], first["id"]]
    assert [e["actor"] for e in log.items] == ["system", "alice@example.com"]
    assert (await domain.services.archive.action_log(bob, None, PageRequest())).total == 0
    assert (await domain.services.archive.action_log(admin, None, PageRequest())).total == 2


async def test_deleting_a_configuration_keeps_its_log(domain: Runtime) -> None:
    alice, _, _, config_id = await archive_setup(domain)
    entry = await domain.services.archive.run(alice, config_id, **WINDOW)
    await domain.services.archive.delete_config(alice, config_id)
    async with domain.db.read_session() as session:
        row = await session.get(ActionLog, entry["id"])
    assert row is not None and row.config_id is None


def event(event_id: str, start: str, end: str) -> ProviderEvent:
    day = "2026-05-04T"
    return ProviderEvent(
        event_id,
        event_id,
        datetime.fromisoformat(f"{day}{start}+00:00"),
        datetime.fromisoformat(f"{day}{end}+00:00"),
    )


def test_find_overlaps_pairs_each_event_with_those_still_running() -> None:
    events = [
        event("a", "09:00", "12:00"),
        event("b", "10:00", "10:30"),
        event("c", "11:00", "11:30"),
        event("d", "12:00", "13:00"),  # starts as a ends: no overlap
        event("e", "12:30", "12:45"),
    ]
    assert find_overlaps(events) == [("a", "b"), ("a", "c"), ("d", "e")]
    assert find_overlaps([]) == []
    assert find_overlaps(events[3:4]) == []


def test_default_window_is_whole_days_in_the_configuration_zone() -> None:
    config = ArchiveConfiguration(timezone="Europe/Berlin", days_back=1, days_forward=0)
    start, end = default_window(config, date(2026, 3, 29))
    assert (start.isoformat(), end.isoformat()) == (
        "2026-03-28T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
    )
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=47)
    config = ArchiveConfiguration(timezone="UTC", days_back=0, days_forward=2)
    assert default_window(config, date(2026, 12, 31)) == (
        datetime(2026, 12, 31, tzinfo=ZoneInfo("UTC")),
        datetime(2027, 1, 3, tzinfo=ZoneInfo("UTC")),
    )


# -- repositories, seed data, migrations -----------------------------------------------------------


async def test_event_id_lookups_work_past_the_sqlite_parameter_limit(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    cal = await make_calendar(domain, alice)
    start = datetime(2026, 5, 4, tzinfo=UTC)
    async with domain.db.session() as session:
        repo = AppointmentRepository(session)
        await repo.add_all(
            [
                Appointment(
                    calendar_id=cal,
                    subject="x",
                    start_at=start,
                    end_at=start + timedelta(hours=1),
                    provider_event_id=f"evt-{n}",
                )
                for n in range(1200)
            ]
        )
        wanted = [f"evt-{n}" for n in range(0, 2400, 2)]  # half of them exist
        found = await repo.existing_event_ids(cal, wanted)
        ids = await repo.ids_by_event(cal, wanted)
    assert found == {f"evt-{n}" for n in range(0, 1200, 2)}
    assert set(ids) == found


async def test_ids_beyond_64_bits_name_no_row(domain: Runtime) -> None:
    async with domain.db.read_session() as session:
        assert await CalendarRepository(session).get(2**64) is None
        assert await AppointmentRepository(session).get(0) is None


async def test_seed_demo_creates_its_data_once(domain: Runtime) -> None:
    first = await seed_demo(domain.db, today=date(2026, 5, 4))
    assert (first.email, first.created) == (DEMO_EMAIL, True)
    second = await seed_demo(domain.db, today=date(2026, 5, 4))
    assert (second.created, second.config_id) == (False, first.config_id)
    async with domain.db.read_session() as session:
        # 500 appointments, and a recurring meeting with one exception
        assert await session.scalar(select(func.count()).select_from(Appointment)) == 502
    actor = (await domain.services.users.sign_in(first.email, first.password)).actor
    assert actor.is_admin
    config = await domain.services.archive.get_config(actor, first.config_id)
    assert config["excluded_categories"] == ["Personal"]


async def test_the_demo_data_archives_with_overlaps(domain: Runtime) -> None:
    login = await seed_demo(domain.db, today=date(2026, 5, 4))
    actor = (await domain.services.users.sign_in(login.email, login.password)).actor
    entry = await domain.services.archive.run(actor, login.config_id, today=date(2026, 5, 4))
    assert entry["archived"] > 0 and entry["overlap"] > 0 and entry["skipped"] > 0
    again = await domain.services.archive.run(actor, login.config_id, today=date(2026, 5, 4))
    assert (again["archived"], again["duplicate"]) == (0, entry["archived"])


async def test_the_database_is_at_the_newest_migration(domain: Runtime) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    assert await current_revision(domain.db.engine) == head
    await upgrade(domain.db.engine)  # upgrading again is a no-op
    assert await current_revision(domain.db.engine) == head
