"""Remote calendars stay within their owner's mailbox: create, re-point, read and write."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.auth import Actor
from shared.config import load_settings
from shared.errors import Forbidden, RemoteCalendarNotFound
from shared.inputs.calendars import parse_calendar
from shared.models import Calendar
from shared.pagination import PageRequest
from shared.repositories import CalendarRepository
from shared.runtime import Runtime
from tests.fakes.graph_server import FakeGraphServer

ALICE, BOB = "alice@example.com", "bob@example.com"
START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)


@pytest.fixture
def graph() -> Iterator[FakeGraphServer]:
    with FakeGraphServer(base_path="/v1.0") as server:
        server.seed_events("alice-cal", 3, mailbox=ALICE)
        server.seed_events("bob-cal", 3, mailbox=BOB)
        yield server


@pytest.fixture
async def domain(db_environ: dict[str, str], graph: FakeGraphServer) -> AsyncIterator[Runtime]:
    runtime = Runtime(load_settings({**db_environ, "AA_GRAPH_URL": graph.url}))
    yield runtime
    await runtime.aclose()


async def person(runtime: Runtime, email: str, *, is_admin: bool = False) -> Actor:
    created = await runtime.services.users.create(email, "long-password", is_admin=is_admin)
    return Actor(created["id"], created["email"], is_admin)


def graph_calendar(provider_id: str, role: str = "source") -> dict[str, Any]:
    return parse_calendar(
        {"name": "Remote", "role": role, "provider": "graph", "provider_id": provider_id}
    )


async def planted(runtime: Runtime, owner: Actor, provider_id: str, role: str) -> int:
    """A calendar row naming another mailbox's calendar, as rows written before the check."""
    async with runtime.db.session() as session:
        row = await CalendarRepository(session).add(
            Calendar(
                owner_id=owner.user_id,
                name="Planted",
                role=role,
                provider="graph",
                provider_id=provider_id,
            )
        )
        return row.id


def paths_of(graph: FakeGraphServer, mailbox: str) -> list[str]:
    return [r.path for r in graph.requests if f"/users/{mailbox}/" in r.path]


async def test_a_user_creates_calendars_of_their_own_mailbox_only(
    domain: Runtime, graph: FakeGraphServer
) -> None:
    calendars = domain.services.calendars
    alice = await person(domain, ALICE)
    admin = await person(domain, "admin@example.com", is_admin=True)

    created = await calendars.create(alice, graph_calendar("alice-cal"))
    with pytest.raises(Forbidden, match=r"'bob-cal' is not in your mailbox \(alice@example\.com\)"):
        await calendars.create(alice, graph_calendar("bob-cal"))
    with pytest.raises(Forbidden, match="not in your mailbox"):
        await calendars.create(admin, graph_calendar("alice-cal"))

    assert created["provider_id"] == "alice-cal"
    assert (await calendars.list(admin, PageRequest())).total == 1
    assert paths_of(graph, BOB) == []


async def test_re_pointing_a_calendar_is_checked_against_its_owners_mailbox(
    domain: Runtime,
) -> None:
    calendars = domain.services.calendars
    alice = await person(domain, ALICE)
    admin = await person(domain, "admin@example.com", is_admin=True)
    calendar_id = (await calendars.create(alice, graph_calendar("alice-cal")))["id"]

    with pytest.raises(Forbidden, match="not in your mailbox"):
        await calendars.update(alice, calendar_id, {"provider_id": "bob-cal"})
    with pytest.raises(Forbidden, match="not in the mailbox of the calendar's owner"):
        await calendars.update(admin, calendar_id, {"provider_id": "bob-cal"})
    # An admin may point alice's calendar at another of alice's remote calendars.
    await calendars.update(admin, calendar_id, {"provider_id": "alice-cal"})

    assert (await calendars.get(alice, calendar_id))["provider_id"] == "alice-cal"


async def test_a_stored_calendar_of_another_mailbox_cannot_be_read(
    domain: Runtime, graph: FakeGraphServer
) -> None:
    alice = await person(domain, ALICE)
    calendar_id = await planted(domain, alice, "bob-cal", "source")

    with pytest.raises(RemoteCalendarNotFound, match=r"not in mailbox alice@example\.com") as err:
        await domain.services.calendars.remote_events(alice, calendar_id, START, END, None)

    assert err.value.status == 403 and err.value.code == "forbidden"
    assert paths_of(graph, BOB) == []


async def test_an_archive_run_cannot_write_into_another_mailbox(
    domain: Runtime, graph: FakeGraphServer
) -> None:
    alice = await person(domain, ALICE)
    source = (await domain.services.calendars.create(alice, graph_calendar("alice-cal")))["id"]
    archive = await planted(domain, alice, "bob-cal", "archive")
    config = await domain.services.archive.create_config(
        alice,
        {
            "name": "Into bob's",
            "source_calendar_id": source,
            "archive_calendar_id": archive,
            "timezone": "UTC",
            "is_active": True,
            "schedule": None,
            "days_back": 7,
            "days_forward": 0,
            "excluded_categories": [],
        },
    )
    before = graph.events("bob-cal")

    with pytest.raises(RemoteCalendarNotFound):
        await domain.services.archive.run(
            alice,
            config["id"],
            start=START,
            end=END,
        )

    assert graph.events("bob-cal") == before
    (entry,) = (await domain.services.archive.action_log(alice, None, PageRequest())).items
    assert entry["status"] == "failed" and "not in mailbox alice@example.com" in entry["errors"][0]
    assert paths_of(graph, BOB) == []


async def test_an_operator_can_bind_a_user_to_another_mailbox(domain: Runtime) -> None:
    alice = await person(domain, ALICE)
    await domain.services.users.set_mailbox(ALICE, "bob@example.com")
    created = await domain.services.calendars.create(alice, graph_calendar("bob-cal"))
    with pytest.raises(Forbidden):
        await domain.services.calendars.create(alice, graph_calendar("alice-cal"))
    assert created["provider_id"] == "bob-cal"
