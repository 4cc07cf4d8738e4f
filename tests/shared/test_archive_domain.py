"""The archive domain through its services, on SQLite and on PostgreSQL, with the fake Graph API:
URIs and discovery, action items, replace mode, timesheets, recurrence, immutability, audit."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from shared.auth import Actor
from shared.calendar_uris import parse_calendar_uri
from shared.config import load_settings
from shared.errors import Conflict, Forbidden, ValidationFailed
from shared.inputs.appointments import parse_appointment
from shared.inputs.archive import (
    parse_action_item_query,
    parse_archive_config,
    parse_timesheet_query,
)
from shared.inputs.audit import parse_audit_query
from shared.inputs.calendars import parse_calendar
from shared.models import Appointment
from shared.runtime import Runtime
from shared.seed import seed_demo
from shared.validation import parse_appointment_query
from tests.fakes.graph_server import FakeGraphServer

ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture
def graph() -> Iterator[FakeGraphServer]:
    with FakeGraphServer(base_path="/v1.0") as server:
        server.add_calendar("AAMk-cal", ALICE, name="Calendar")
        server.add_calendar("AAMk-team-1", ALICE, name="Team")
        server.add_calendar("AAMk-team-2", ALICE, name="TEAM")
        server.add_calendar("AAMk-ro", ALICE, name="Holidays", can_edit=False)
        server.add_calendar("AAMk-bob", BOB, name="Calendar")
        yield server


@pytest.fixture
async def domain(db_environ: dict[str, str], graph: FakeGraphServer) -> AsyncIterator[Runtime]:
    runtime = Runtime(load_settings({**db_environ, "AA_GRAPH_URL": graph.url}))
    yield runtime
    await runtime.aclose()


async def person(runtime: Runtime, email: str, *, is_admin: bool = False) -> Actor:
    created = await runtime.services.users.create(email, "long-password", is_admin=is_admin)
    return Actor(created["id"], created["email"], is_admin)


async def calendar(runtime: Runtime, actor: Actor, body: dict[str, Any]) -> dict[str, Any]:
    return await runtime.services.calendars.create(actor, parse_calendar(body))


async def appointment(
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


async def listed(runtime: Runtime, actor: Actor, calendar_id: int) -> list[dict[str, Any]]:
    query = parse_appointment_query({"calendar_id": str(calendar_id), "per_page": "200"})
    return list((await runtime.services.appointments.list(actor, query)).items)


def at(day: int, clock: str) -> str:
    return f"2026-05-{day:02d}T{clock}:00Z"


WINDOW = {"start": datetime(2026, 5, 4, tzinfo=UTC), "end": datetime(2026, 5, 6, tzinfo=UTC)}


# -- URIs and discovery ---------------------------------------------------------------------------


async def test_remote_discovery_lists_the_mailbox_with_uris(domain: Runtime) -> None:
    alice = await person(domain, ALICE)
    added = await calendar(
        domain, alice, {"uri": "msgraph://me/calendars/Calendar", "role": "source"}
    )
    found = await domain.services.calendars.remote(alice, None)
    assert found["meta"] == {"count": 4, "mailbox": ALICE}
    assert [(c["name"], c["uri"], c["can_edit"], c["calendar_id"]) for c in found["data"]] == [
        ("Calendar", "msgraph://me/calendars/AAMk-cal", True, added["id"]),
        ("Holidays", "msgraph://me/calendars/AAMk-ro", False, None),
        ("Team", "msgraph://me/calendars/AAMk-team-1", True, None),
        ("TEAM", "msgraph://me/calendars/AAMk-team-2", True, None),
    ]


async def test_another_mailbox_is_for_admins(domain: Runtime) -> None:
    alice, admin = (
        await person(domain, ALICE),
        await person(domain, "admin@example.com", is_admin=True),
    )
    with pytest.raises(Forbidden, match="only admins may reach another mailbox"):
        await domain.services.calendars.remote(alice, BOB)
    found = await domain.services.calendars.remote(admin, BOB)
    assert [c["uri"] for c in found["data"]] == [
        "msgraph://users/bob@example.com/calendars/AAMk-bob"
    ]
    created = await calendar(
        domain,
        admin,
        {"uri": "msgraph://users/bob@example.com/calendars/calendar", "role": "source"},
    )
    assert (created["mailbox"], created["provider_id"], created["name"]) == (
        BOB,
        "AAMk-bob",
        "Calendar",
    )
    assert created["uri"] == "msgraph://users/bob@example.com/calendars/AAMk-bob"
    with pytest.raises(Forbidden):
        await calendar(domain, alice, {"uri": created["uri"], "role": "source"})
    # An admin re-pointing a user's calendar: `me` is the admin's own mailbox, which a
    # user's calendar cannot be in; the user's mailbox, named, is fine.
    own = await calendar(
        domain, alice, {"uri": "msgraph://me/calendars/Calendar", "role": "source"}
    )
    with pytest.raises(Forbidden, match="only an admin's calendars may be in another mailbox"):
        await domain.services.calendars.update(
            admin, own["id"], parse_calendar({"uri": "msgraph://me/calendars/x"}, partial=True)
        )
    repointed = await domain.services.calendars.update(
        admin,
        own["id"],
        parse_calendar(
            {"uri": "msgraph://users/alice@example.com/calendars/Holidays"}, partial=True
        ),
    )
    assert (repointed["provider_id"], repointed["mailbox"]) == ("AAMk-ro", None)


@pytest.mark.parametrize(
    ("uri", "provider_id"),
    [
        ("msgraph://me/calendars/Calendar", "AAMk-cal"),  # exact name
        ("msgraph://me/calendars/cALENDAR", "AAMk-cal"),  # any case
        ("msgraph://me/calendars/AAMk-team-2", "AAMk-team-2"),  # an id beats names
    ],
)
async def test_a_remote_uri_resolves_by_id_or_name(
    domain: Runtime, uri: str, provider_id: str
) -> None:
    alice = await person(domain, ALICE)
    created = await calendar(domain, alice, {"uri": uri, "role": "source"})
    assert (created["provider"], created["provider_id"], created["mailbox"]) == (
        "graph",
        provider_id,
        None,
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("msgraph://me/calendars/team", r"is ambiguous: 2 calendars of alice@example.com"),
        ("msgraph://me/calendars/Nope", "has no calendar named or with id 'Nope'"),
    ],
)
async def test_an_ambiguous_or_missing_remote_uri_is_a_422(
    domain: Runtime, uri: str, message: str
) -> None:
    alice = await person(domain, ALICE)
    with pytest.raises(ValidationFailed, match="check uri") as raised:
        await calendar(domain, alice, {"uri": uri, "role": "source"})
    assert raised.value.details[0]["field"] == "uri"
    assert re.search(message, raised.value.details[0]["message"])


async def test_local_uris_in_configurations_resolve_exact_any_case_and_refuse_ambiguity(
    domain: Runtime,
) -> None:
    alice = await person(domain, ALICE)
    work = await calendar(domain, alice, {"uri": "local://Work", "role": "source"})
    archive = await calendar(domain, alice, {"name": "Archive", "role": "archive"})
    with pytest.raises(Conflict, match="already have a local calendar named 'Work'"):
        await calendar(domain, alice, {"uri": "local://WORK", "role": "source"})
    config = await domain.services.archive.create_config(
        alice,
        parse_archive_config(
            {
                "name": "By URI",
                "source_calendar": "local://work",
                "archive_calendar": "local://Archive",
            }
        ),
    )
    assert (config["source_calendar_id"], config["archive_calendar_id"]) == (
        work["id"],
        archive["id"],
    )
    assert (config["source_calendar"], config["archive_calendar"]) == (
        "local://Work",
        "local://Archive",
    )
    await calendar(domain, alice, {"name": "archive", "role": "archive"})  # by fields: allowed
    with pytest.raises(ValidationFailed) as raised:
        await domain.services.archive.update_config(
            alice,
            config["id"],
            parse_archive_config({"archive_calendar": "local://ARCHIVE"}, partial=True),
        )
    assert "is ambiguous: you have 2 local calendars" in raised.value.details[0]["message"]
    with pytest.raises(ValidationFailed) as raised:
        await domain.services.archive.update_config(
            alice,
            config["id"],
            parse_archive_config({"source_calendar": "local://Gone"}, partial=True),
        )
    assert raised.value.details == [
        {
            "field": "source_calendar",
            "message": "local://Gone: you have no local calendar named 'Gone'",
        }
    ]


async def test_a_remote_uri_in_a_configuration_names_an_added_calendar(domain: Runtime) -> None:
    alice = await person(domain, ALICE)
    remote = await calendar(
        domain, alice, {"uri": "msgraph://me/calendars/Calendar", "role": "source"}
    )
    await calendar(domain, alice, {"name": "Archive", "role": "archive"})
    body = {
        "name": "Remote",
        "source_calendar": "msgraph://me/calendars/calendar",
        "archive_calendar": "local://archive",
    }
    config = await domain.services.archive.create_config(alice, parse_archive_config(body))
    assert config["source_calendar_id"] == remote["id"]
    body["source_calendar"] = "msgraph://me/calendars/Holidays"
    with pytest.raises(ValidationFailed, match="check source_calendar"):
        await domain.services.archive.create_config(alice, parse_archive_config(body))


# -- overlaps and action items --------------------------------------------------------------------


async def overlap_setup(runtime: Runtime) -> tuple[Actor, int, int, int]:
    alice = await person(runtime, ALICE)
    source = (await calendar(runtime, alice, {"name": "Work", "role": "source"}))["id"]
    archive = (await calendar(runtime, alice, {"name": "Archive", "role": "archive"}))["id"]
    await appointment(
        runtime,
        alice,
        source,
        "Client call",
        at(4, "10:00"),
        at(4, "11:00"),
        provider_event_id="client",
    )
    await appointment(
        runtime,
        alice,
        source,
        "Design review",
        at(4, "10:30"),
        at(4, "11:30"),
        provider_event_id="design",
    )
    await appointment(
        runtime,
        alice,
        source,
        "Maybe lunch",
        at(4, "12:00"),
        at(4, "13:00"),
        show_as="free",
        provider_event_id="maybe",
    )
    await appointment(
        runtime,
        alice,
        source,
        "Team lunch",
        at(4, "12:15"),
        at(4, "13:00"),
        provider_event_id="lunch",
    )
    await appointment(
        runtime,
        alice,
        source,
        "Optional",
        at(4, "15:00"),
        at(4, "16:00"),
        importance="low",
        provider_event_id="optional",
    )
    await appointment(
        runtime,
        alice,
        source,
        "Board",
        at(4, "15:30"),
        at(4, "16:30"),
        importance="high",
        provider_event_id="board",
    )
    config = await runtime.services.archive.create_config(
        alice,
        parse_archive_config(
            {"name": "Work", "source_calendar_id": source, "archive_calendar_id": archive}
        ),
    )
    return alice, source, archive, config["id"]


async def test_overlaps_are_resolved_by_the_rules_or_become_one_action_item(
    domain: Runtime,
) -> None:
    alice, _, archive, config_id = await overlap_setup(domain)
    entry = await domain.services.archive.run(alice, config_id, **WINDOW)
    assert (entry["added"], entry["overlap"]) == (2, 6)
    assert entry["details"]["yielded"] == [
        {"event_id": "maybe", "to": "lunch", "rule": "availability"},
        {"event_id": "optional", "to": "board", "rule": "importance"},
    ]
    assert entry["details"]["held"] == ["client", "design"]
    assert [a["subject"] for a in await listed(domain, alice, archive)] == ["Team lunch", "Board"]
    (item,) = (
        await domain.services.action_items.list(alice, parse_action_item_query({"state": "open"}))
    ).items
    assert entry["details"]["action_items"] == [item["id"]]
    assert (item["action_log_id"], item["kind"]) == (entry["id"], "overlap")
    assert [a["event_id"] for a in item["appointments"]] == ["client", "design"]
    assert item["recommendation"]["keep"] == ["client"]
    again = await domain.services.archive.run(alice, config_id, **WINDOW)
    assert again["details"]["action_items"] == [item["id"]]
    assert (await domain.services.action_items.list(alice, parse_action_item_query({}))).total == 1


async def test_a_resolution_archives_the_choice_once_and_runs_follow_it(domain: Runtime) -> None:
    alice, _, archive, config_id = await overlap_setup(domain)
    await domain.services.archive.run(alice, config_id, **WINDOW)
    (item,) = (await domain.services.action_items.list(alice, parse_action_item_query({}))).items
    with pytest.raises(ValidationFailed, match="check keep"):
        await domain.services.action_items.resolve(alice, item["id"], {"keep": ["lunch"]})
    resolved = await domain.services.action_items.resolve(alice, item["id"], {"keep": ["design"]})
    assert (resolved["state"], resolved["resolution"], resolved["archived"]) == (
        "resolved",
        {"action": "keep", "keep": ["design"]},
        1,
    )
    assert resolved["resolved_by"] == ALICE
    with pytest.raises(Conflict, match="already resolved"):
        await domain.services.action_items.resolve(alice, item["id"], {"keep_all": True})
    rerun = await domain.services.archive.run(alice, config_id, **WINDOW)
    assert (rerun["added"], rerun["details"]["declined"], rerun["details"]["held"]) == (
        0,
        ["client"],
        [],
    )
    subjects = [a["subject"] for a in await listed(domain, alice, archive)]
    assert subjects == ["Design review", "Team lunch", "Board"]
    audit = await domain.services.audit.list(
        Actor(0, "root", True), parse_audit_query({"target": f"action_item:{item['id']}"})
    )
    assert [e["action"] for e in audit.items] == ["action_item.resolve", "action_item.create"]
    assert (
        audit.items[0]["before"]["state"] == "open"
        and audit.items[0]["after"]["state"] == "resolved"
    )


async def test_an_overlap_that_went_away_supersedes_its_item(domain: Runtime) -> None:
    alice, source, _, config_id = await overlap_setup(domain)
    await domain.services.archive.run(alice, config_id, **WINDOW)
    design = next(
        a for a in await listed(domain, alice, source) if a["provider_event_id"] == "design"
    )
    await domain.services.appointments.update(
        alice,
        design["id"],
        parse_appointment({"start": at(4, "11:00"), "end": at(4, "12:00")}, partial=True),
    )
    entry = await domain.services.archive.run(alice, config_id, **WINDOW)
    assert entry["added"] == 2 and entry["details"]["held"] == []
    (item,) = (await domain.services.action_items.list(alice, parse_action_item_query({}))).items
    assert item["state"] == "resolved" and item["resolution"]["action"] == "superseded"


# -- replace mode ---------------------------------------------------------------------------------


async def test_replace_makes_the_archive_window_equal_the_source_and_is_idempotent(
    domain: Runtime,
) -> None:
    alice = await person(domain, ALICE)
    source = (await calendar(domain, alice, {"name": "Work", "role": "source"}))["id"]
    archive = (await calendar(domain, alice, {"name": "Archive", "role": "archive"}))["id"]
    keep = await appointment(domain, alice, source, "Keep", at(4, "09:00"), at(4, "10:00"))
    change = await appointment(domain, alice, source, "Change", at(4, "11:00"), at(4, "12:00"))
    cancel = await appointment(domain, alice, source, "Cancel", at(5, "09:00"), at(5, "10:00"))
    outside = await appointment(domain, alice, source, "Outside", at(8, "09:00"), at(8, "10:00"))
    config = await domain.services.archive.create_config(
        alice,
        parse_archive_config(
            {
                "name": "Mirror",
                "source_calendar_id": source,
                "archive_calendar_id": archive,
                "mode": "replace",
            }
        ),
    )
    await domain.services.archive.run(
        alice, config["id"], start=WINDOW["start"], end=datetime(2026, 5, 9, tzinfo=UTC)
    )
    await domain.services.appointments.update(
        alice,
        change["id"],
        parse_appointment({"subject": "Changed", "importance": "high"}, partial=True),
    )
    await domain.services.appointments.delete(alice, cancel["id"])
    await domain.services.appointments.delete(alice, outside["id"])
    await appointment(domain, alice, source, "New", at(5, "14:00"), at(5, "15:00"))
    entry = await domain.services.archive.run(alice, config["id"], **WINDOW)
    counts = {k: entry[k] for k in ("mode", "added", "updated", "removed", "unchanged")}
    assert counts == {"mode": "replace", "added": 1, "updated": 1, "removed": 1, "unchanged": 1}
    fields = ("subject", "start", "end", "importance")
    in_window = parse_appointment_query(
        {"start": "2026-05-04", "end": "2026-05-05", "per_page": "200"}
    )
    source_rows = [
        {k: a[k] for k in fields}
        for a in (
            await domain.services.appointments.list(
                alice, parse_appointment_query({"calendar_id": str(source), "end": "2026-05-05"})
            )
        ).items
    ]
    archive_rows = [
        {k: a[k] for k in fields}
        for a in (
            await domain.services.appointments.list(
                alice, parse_appointment_query({"calendar_id": str(archive), "end": "2026-05-05"})
            )
        ).items
    ]
    assert archive_rows == source_rows and len(source_rows) == 3
    assert in_window.start is not None
    # The copy outside the window stays: only the window is replaced.
    assert "Outside" in [a["subject"] for a in await listed(domain, alice, archive)]
    again = await domain.services.archive.run(alice, config["id"], **WINDOW)
    assert {k: again[k] for k in ("added", "updated", "removed", "unchanged")} == {
        "added": 0,
        "updated": 0,
        "removed": 0,
        "unchanged": 3,
    }
    keep_copy = next(a for a in await listed(domain, alice, archive) if a["subject"] == "Keep")
    assert keep_copy["archived_from_id"] == keep["id"]


async def test_replace_on_a_remote_archive_updates_and_deletes_remote_copies(
    domain: Runtime, graph: FakeGraphServer
) -> None:
    alice = await person(domain, ALICE)
    source = (await calendar(domain, alice, {"name": "Work", "role": "source"}))["id"]
    remote = await calendar(
        domain, alice, {"uri": "msgraph://me/calendars/Calendar", "role": "archive"}
    )
    first = await appointment(
        domain, alice, source, "First", at(4, "09:00"), at(4, "10:00"), show_as="tentative"
    )
    second = await appointment(domain, alice, source, "Second", at(4, "11:00"), at(4, "12:00"))
    config = await domain.services.archive.create_config(
        alice,
        parse_archive_config(
            {
                "name": "Out",
                "source_calendar_id": source,
                "archive_calendar_id": remote["id"],
                "mode": "replace",
            }
        ),
    )
    await domain.services.archive.run(alice, config["id"], **WINDOW)
    assert sorted((e["subject"], e["showAs"]) for e in graph.events("AAMk-cal")) == [
        ("First", "tentative"),
        ("Second", "busy"),
    ]
    await domain.services.appointments.update(
        alice, first["id"], parse_appointment({"subject": "First!"}, partial=True)
    )
    await domain.services.appointments.delete(alice, second["id"])
    entry = await domain.services.archive.run(alice, config["id"], **WINDOW)
    assert (entry["updated"], entry["removed"], entry["errors"]) == (1, 1, [])
    assert [e["subject"] for e in graph.events("AAMk-cal")] == ["First!"]


async def test_concurrent_replace_runs_never_double_a_copy(domain: Runtime) -> None:
    import asyncio

    alice = await person(domain, ALICE)
    source = (await calendar(domain, alice, {"name": "Work", "role": "source"}))["id"]
    archive = (await calendar(domain, alice, {"name": "Archive", "role": "archive"}))["id"]
    for n in range(20):
        await appointment(
            domain,
            alice,
            source,
            f"e{n}",
            at(4, f"{8 + n // 4:02d}:{(n % 4) * 15:02d}"),
            at(4, f"{8 + n // 4:02d}:{(n % 4) * 15 + 10:02d}"),
        )
    config = await domain.services.archive.create_config(
        alice,
        parse_archive_config(
            {
                "name": "M",
                "source_calendar_id": source,
                "archive_calendar_id": archive,
                "mode": "replace",
            }
        ),
    )
    runs = await asyncio.gather(
        *(domain.services.archive.run(alice, config["id"], **WINDOW) for _ in range(2))
    )
    assert sum(r["added"] for r in runs) == 20
    async with domain.db.read_session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Appointment).where(Appointment.calendar_id == archive)
        )
    assert count == 20


# -- timesheets, recurrence, immutability ---------------------------------------------------------


async def test_a_timesheet_of_a_seeded_week_in_json_and_csv(domain: Runtime) -> None:
    alice = await person(domain, ALICE)
    source = (await calendar(domain, alice, {"name": "Work", "role": "source"}))["id"]
    sheet = (await calendar(domain, alice, {"name": "Timesheet", "role": "archive"}))["id"]
    week = [
        ("Client A", 4, "07:00", "11:00", ["Billable"], "normal"),
        ("Train", 4, "12:00", "13:30", ["Travel"], "normal"),
        ("Standup", 5, "07:00", "07:30", ["non-billable"], "normal"),
        ("Client B", 6, "21:00", "23:00", ["Billable"], "normal"),  # 23:00 to 01:00 Berlin
        ("Dentist", 7, "08:00", "09:00", ["Billable"], "personal"),
        ("Lunch", 7, "10:00", "11:00", [], "normal"),
        ("Secret", 8, "08:00", "09:00", ["Billable"], "private"),
    ]
    for subject, day, start, end, categories, sensitivity in week:
        await appointment(
            domain,
            alice,
            source,
            subject,
            at(day, start),
            at(day, end),
            categories=categories,
            sensitivity=sensitivity,
        )
    config = await domain.services.archive.create_config(
        alice,
        parse_archive_config(
            {
                "name": "Sheet",
                "source_calendar_id": source,
                "archive_calendar_id": sheet,
                "purpose": "timesheet",
                "timezone": "Europe/Berlin",
            }
        ),
    )
    assert config["timesheet_categories"] == ["Billable", "Non-billable", "Travel"]
    entry = await domain.services.archive.run(
        alice,
        config["id"],
        start=datetime(2026, 5, 3, 22, tzinfo=UTC),
        end=datetime(2026, 5, 10, 22, tzinfo=UTC),
    )
    assert (entry["added"], entry["skipped"]) == (4, 3)
    query = parse_timesheet_query({"start": "2026-05-04", "end": "2026-05-10"})
    summary = await domain.services.timesheets.summary(alice, config["id"], query)
    assert (summary["total_hours"], summary["by_category"]) == (
        8.0,
        {"Billable": 6.0, "Non-billable": 0.5, "Travel": 1.5},
    )
    by_day = {d["date"]: d["total_hours"] for d in summary["days"]}
    assert by_day == {
        "2026-05-04": 5.5,
        "2026-05-05": 0.5,
        "2026-05-06": 1.0,
        "2026-05-07": 1.0,
        "2026-05-08": 0.0,
        "2026-05-09": 0.0,
        "2026-05-10": 0.0,
    }
    text, name = await domain.services.timesheets.csv(alice, config["id"], query)
    assert name == f"timesheet-{config['id']}-2026-05-04-2026-05-10.csv"
    lines = text.splitlines()
    assert lines[0] == "date,Billable,Non-billable,Travel,total"
    assert lines[1] == "2026-05-04,4.00,0.00,1.50,5.50"
    assert lines[-1] == "total,6.00,0.50,1.50,8.00"
    general = await domain.services.archive.create_config(
        alice,
        parse_archive_config(
            {"name": "G", "source_calendar_id": source, "archive_calendar_id": sheet}
        ),
    )
    with pytest.raises(Conflict, match="is not a timesheet configuration"):
        await domain.services.timesheets.summary(alice, general["id"], query)


async def test_a_local_series_is_archived_as_its_occurrences_with_exceptions(
    domain: Runtime,
) -> None:
    alice = await person(domain, ALICE)
    source = (await calendar(domain, alice, {"name": "Work", "role": "source"}))["id"]
    archive = (await calendar(domain, alice, {"name": "Archive", "role": "archive"}))["id"]
    series = await appointment(
        domain,
        alice,
        source,
        "Weekly",
        "2026-03-16T09:00:00+01:00",
        "2026-03-16T09:30:00+01:00",
        provider_event_id="weekly",
        recurrence={
            "rrule": "FREQ=WEEKLY;COUNT=5",
            "timezone": "Europe/Berlin",
            "exdates": ["2026-03-23T09:00:00+01:00"],
        },
    )
    await appointment(
        domain,
        alice,
        source,
        "Weekly (moved)",
        "2026-03-31T14:00:00+02:00",
        "2026-03-31T14:30:00+02:00",
        provider_event_id="weekly-moved",
        series_id=series["id"],
        original_start="2026-03-30T09:00:00+02:00",
    )
    with pytest.raises(ValidationFailed, match="check original_start"):
        await appointment(
            domain,
            alice,
            source,
            "Nope",
            at(4, "09:00"),
            at(4, "10:00"),
            series_id=series["id"],
            original_start="2026-03-30T10:00:00+02:00",
        )
    config = await domain.services.archive.create_config(
        alice,
        parse_archive_config(
            {"name": "W", "source_calendar_id": source, "archive_calendar_id": archive}
        ),
    )
    entry = await domain.services.archive.run(
        alice,
        config["id"],
        start=datetime(2026, 3, 1, tzinfo=UTC),
        end=datetime(2026, 5, 1, tzinfo=UTC),
    )
    assert entry["added"] == 4
    copies = await listed(domain, alice, archive)
    assert [(c["subject"], c["start"]) for c in copies] == [
        ("Weekly", "2026-03-16T08:00:00+00:00"),
        ("Weekly (moved)", "2026-03-31T12:00:00+00:00"),
        ("Weekly", "2026-04-06T07:00:00+00:00"),
        ("Weekly", "2026-04-13T07:00:00+00:00"),
    ]
    assert copies[0]["provider_event_id"] == "weekly@20260316T080000Z"
    assert copies[0]["archived_from_id"] == series["id"]


async def test_archived_copies_are_immutable(domain: Runtime) -> None:
    alice = await person(domain, ALICE)
    source = (await calendar(domain, alice, {"name": "Work", "role": "source"}))["id"]
    archive = (await calendar(domain, alice, {"name": "Archive", "role": "archive"}))["id"]
    await appointment(domain, alice, source, "A", at(4, "09:00"), at(4, "10:00"))
    own = await appointment(
        domain, alice, archive, "Typed in by hand", at(4, "11:00"), at(4, "12:00")
    )
    config = await domain.services.archive.create_config(
        alice,
        parse_archive_config(
            {"name": "W", "source_calendar_id": source, "archive_calendar_id": archive}
        ),
    )
    await domain.services.archive.run(alice, config["id"], **WINDOW)
    copy = next(a for a in await listed(domain, alice, archive) if a["subject"] == "A")
    assert copy["archive_config_id"] == config["id"] and copy["archived_at"] is not None
    with pytest.raises(
        Conflict,
        match=rf"appointment {copy['id']} is an archived copy by archive configuration "
        rf"{config['id']} and cannot be changed",
    ):
        await domain.services.appointments.update(
            alice, copy["id"], parse_appointment({"subject": "B"}, partial=True)
        )
    with pytest.raises(Conflict, match="cannot be deleted"):
        await domain.services.appointments.delete(alice, copy["id"])
    await domain.services.appointments.delete(alice, own["id"])  # not a copy: fine


# -- audit and the demo ---------------------------------------------------------------------------


async def test_changes_are_audited_in_their_own_transaction(domain: Runtime) -> None:
    alice = await person(domain, ALICE)
    admin = Actor(0, "root", True)
    created = await calendar(domain, alice, {"name": "Work", "role": "source"})
    await domain.services.calendars.update(
        alice, created["id"], parse_calendar({"name": "Office"}, partial=True)
    )
    with pytest.raises(ValidationFailed):  # refused: nothing recorded
        await domain.services.calendars.update(
            alice, created["id"], {"provider": "graph", "provider_id": None}
        )
    await domain.services.calendars.delete(alice, created["id"])
    rows = (
        await domain.services.audit.list(
            admin, parse_audit_query({"target": f"calendar:{created['id']}"})
        )
    ).items
    assert [(r["actor"], r["action"]) for r in rows] == [
        (ALICE, "calendar.delete"),
        (ALICE, "calendar.update"),
        (ALICE, "calendar.create"),
    ]
    update = rows[1]
    assert (update["before"]["name"], update["after"]["name"]) == ("Work", "Office")
    assert "updated_at" not in update["after"]
    with pytest.raises(Forbidden, match="for admins only"):
        await domain.services.audit.list(alice, parse_audit_query({}))


async def test_the_demo_shows_overlaps_a_recurring_meeting_and_a_timesheet(domain: Runtime) -> None:
    login = await seed_demo(domain.db, today=date(2026, 5, 6))
    assert len(login.config_ids) == 2
    for config_id in login.config_ids:
        await domain.services.archive.run(None, config_id, today=date(2026, 5, 6))
    actor = (await domain.services.users.sign_in(login.email, login.password)).actor
    items = await domain.services.action_items.list(
        actor, parse_action_item_query({"state": "open"})
    )
    assert items.total > 0
    first_log = (
        await domain.services.archive.action_log(
            actor, login.config_ids[0], parse_action_item_query({}).page
        )
    ).items[0]
    assert first_log["details"]["yielded"], "some overlaps are settled by the rules"
    archived = parse_appointment_query(
        {"per_page": "200", "start": "2026-04-01", "end": "2026-05-07"}
    )
    subjects = {
        a["subject"]
        for a in (await domain.services.appointments.list(actor, archived)).items
        if a["archived_at"]
    }
    assert "Team sync (moved to Tuesday)" in subjects
    summary = await domain.services.timesheets.summary(
        actor, login.config_ids[1], parse_timesheet_query({}), today=date(2026, 5, 6)
    )
    assert summary["total_hours"] > 0 and summary["by_category"]["Non-billable"] > 0
    assert parse_calendar_uri("local://Work").ref == "Work"
