"""The graph provider's calendar discovery, event fields, and updating or deleting events, against
the fake Graph API over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from shared.errors import ProviderError
from shared.providers import CalendarRef, GraphProvider, ProviderEvent, RemoteCalendar
from tests.fakes.graph_server import FakeGraphServer

MAILBOX = "alice@example.com"
CAL = CalendarRef(id=1, provider_id="AAMk/1=", mailbox=MAILBOX)
MAY_4 = datetime(2026, 5, 4, tzinfo=UTC)


@pytest.fixture
def graph() -> Iterator[FakeGraphServer]:
    with FakeGraphServer(base_path="/v1.0") as server:
        server.add_calendar("AAMk/1=", MAILBOX, name="Work")
        yield server


@pytest.fixture
async def provider(graph: FakeGraphServer) -> AsyncIterator[GraphProvider]:
    graph_provider = GraphProvider(graph.url, timeout_s=2.0)
    yield graph_provider
    await graph_provider.aclose()


async def test_list_calendars_reads_every_page_of_the_mailbox(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    for n in range(120):  # more than one page of 100
        graph.add_calendar(f"AAMk-{n:03d}", MAILBOX, name=f"Cal {n:03d}", can_edit=n % 2 == 0)
    graph.add_calendar("AAMk-bob", "bob@example.com", name="Bob's")
    found = await provider.list_calendars(MAILBOX)
    assert len(found) == 121
    assert found[0] == RemoteCalendar("AAMk-000", "Cal 000", True, MAILBOX)
    assert found[1].can_edit is False
    assert "AAMk-bob" not in {c.id for c in found}
    listed = [r for r in graph.requests if r.path.endswith("/calendars")]
    assert len(listed) == 2 and listed[0].path == "/v1.0/users/alice@example.com/calendars"


async def test_list_calendars_refuses_a_bad_mailbox(provider: GraphProvider) -> None:
    with pytest.raises(ProviderError, match="is not a mailbox address"):
        await provider.list_calendars("../users/bob")


async def test_events_carry_availability_importance_sensitivity_all_day_and_series(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    graph.add_event(
        "AAMk/1=",
        start=MAY_4,
        end=MAY_4.replace(hour=1),
        id="a",
        show_as="Tentative",
        importance="high",
        sensitivity="personal",
        series_master_id="series-1",
    )
    graph.add_event(
        "AAMk/1=",
        start=MAY_4,
        end=MAY_4.replace(day=5),
        id="b",
        show_as="unknown",
        is_all_day=True,
        sensitivity="confidential",
        importance="odd",
    )
    a, b = await provider.list_events(CAL, MAY_4, MAY_4.replace(day=6))
    assert (a.show_as, a.importance, a.sensitivity, a.is_private, a.series_id) == (
        "tentative",
        "high",
        "personal",
        False,
        "series-1",
    )
    assert (b.show_as, b.importance, b.sensitivity, b.is_private, b.is_all_day) == (
        "busy",
        "normal",
        "confidential",
        True,
        True,
    )


async def test_update_and_delete_an_event_and_tolerate_one_already_gone(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    event = ProviderEvent("src-1", "Planning", MAY_4, MAY_4.replace(hour=1), show_as="oof")
    event_id = await provider.create_event(CAL, event)
    (stored,) = graph.events("AAMk/1=")
    assert (stored["showAs"], stored["isAllDay"], stored["sensitivity"]) == ("oof", False, "normal")
    changed = ProviderEvent(
        "src-1", "Planning (moved)", MAY_4, MAY_4.replace(hour=2), importance="high"
    )
    assert await provider.update_event(CAL, event_id, changed) == event_id
    (stored,) = graph.events("AAMk/1=")
    assert (stored["subject"], stored["importance"]) == ("Planning (moved)", "high")
    await provider.delete_event(CAL, event_id)
    assert graph.events("AAMk/1=") == []
    await provider.delete_event(CAL, event_id)  # gone already: fine
    recreated = await provider.update_event(CAL, event_id, changed)  # gone: created anew
    assert recreated != event_id and [e["id"] for e in graph.events("AAMk/1=")] == [recreated]
