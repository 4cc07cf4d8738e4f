"""The local provider's writes and discovery (shared/providers/local.py), on a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.config import load_settings
from shared.providers._base import CalendarRef, ProviderEvent
from shared.providers.local import LocalProvider
from shared.runtime import Runtime
from tests.shared.test_jobs import make_actor

START = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
async def domain(environ: dict[str, str]) -> AsyncIterator[Runtime]:
    runtime = Runtime(load_settings(environ))
    yield runtime
    await runtime.aclose()


async def test_a_created_event_is_stored_and_listed_with_its_fields(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    calendar = await domain.services.calendars.create(alice, {"name": "Work", "role": "source"})
    provider = LocalProvider(domain.db)
    ref = CalendarRef(calendar["id"], None)
    event = ProviderEvent(
        event_id="",
        subject="Planning",
        start=START,
        end=START + timedelta(hours=1),
        location="Room 2",
        categories=("Billable",),
        sensitivity="private",
        show_as="tentative",
        importance="high",
    )
    new_id = await provider.create_event(ref, event)
    assert new_id.startswith("local-")
    kept_id = await provider.create_event(ref, ProviderEvent("mine-1", "Kept id", START, START))
    assert kept_id == "mine-1"

    listed = await provider.list_events(ref, START - timedelta(days=1), START + timedelta(days=1))
    assert [e.event_id for e in listed] == ["mine-1", new_id]
    stored = listed[1]
    assert (stored.subject, stored.location, stored.categories) == (
        "Planning",
        "Room 2",
        ("Billable",),
    )
    assert (stored.is_private, stored.show_as, stored.importance) == (True, "tentative", "high")


async def test_local_calendars_need_no_remote_checks_and_have_nothing_to_discover(
    domain: Runtime,
) -> None:
    provider = LocalProvider(domain.db)
    ref = CalendarRef(1, None)
    assert await provider.has_calendar(ref) is True
    assert await provider.list_calendars("alice@example.com") == []
    # Copies in local archives are rows the archive run writes itself: nothing to do here.
    event = ProviderEvent("e", "s", START, START)
    assert await provider.update_event(ref, "e", event) == "e"
    assert await provider.delete_event(ref, "e") is None
    await provider.aclose()
