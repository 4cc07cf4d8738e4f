"""The database every parity case starts from: four users and their calendars, appointments,
archive configurations and runs, with ids fixed by creation order (cases name them directly).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.auth import Actor
from shared.inputs.appointments import parse_appointment
from shared.inputs.archive import parse_action_item_query, parse_archive_config
from shared.inputs.calendars import parse_calendar
from shared.runtime import Runtime
from shared.validation import parse_appointment_query, parse_job
from tests.fakes.graph_server import FakeGraphServer

# users (in creation order; the people fixtures of tests/conftest.py give their tokens)
ADMIN, ALICE, BOB, CAROL = 1, 2, 3, 4
EMAILS = {
    "admin": "admin@example.com",
    "alice": "alice@example.com",
    "bob": "bob@example.com",
    "carol": "carol@example.com",
}

# calendars
WORK, ARCHIVE, SPARE, SCRATCH, REMOTE, BOB_WORK, BOB_ARCHIVE = range(1, 8)
CALENDARS: list[tuple[int, dict[str, Any]]] = [
    (ALICE, {"name": "Work", "role": "source"}),
    (ALICE, {"name": "Archive", "role": "archive"}),
    (ALICE, {"name": "Spare", "role": "source"}),  # used only by the paused configuration
    (ALICE, {"name": "Scratch", "role": "source"}),  # unreferenced: deletable
    (
        ALICE,
        {"name": "Remote", "role": "source", "provider": "graph", "provider_id": "AAMk-remote"},
    ),  # in alice's mailbox of the fake Graph API (remote_calendars below)
    (BOB, {"name": "Bob work", "role": "source"}),
    (BOB, {"name": "Bob archive", "role": "archive"}),
]


# remote calendars of the fake Graph API, by mailbox (each user is bound to their email), with
# their names: two of alice's share the name "Team" (an ambiguous URI)
ALICE_REMOTE = {
    "AAMk-remote": "Remote",
    "AAMk-1": "Calendar",
    "AAMk-9": "Birthdays",
    "AAMk/with+slash=": "Odd one",
    "AAMk-team-1": "Team",
    "AAMk-team-2": "team",
}
ALICE_REMOTE_IDS = tuple(ALICE_REMOTE)
BOB_REMOTE_ID = "AAMk-bob"


def remote_calendars(graph: FakeGraphServer) -> FakeGraphServer:
    """`graph` holding alice's and bob's remote calendars, two events in alice's Remote."""
    for calendar_id, name in ALICE_REMOTE.items():
        graph.add_calendar(
            calendar_id, mailbox=EMAILS["alice"], name=name, can_edit=name != "Birthdays"
        )
    graph.add_calendar(BOB_REMOTE_ID, mailbox=EMAILS["bob"], name="Calendar")
    for day, subject in ((4, "Remote standup"), (5, "Remote review")):
        graph.add_event(
            "AAMk-remote",
            start=f"2026-05-0{day}T09:00:00.0000000",
            end=f"2026-05-0{day}T09:30:00.0000000",
            subject=subject,
            time_zone="Europe/Berlin",
        )
    return graph


def _appointment(
    calendar_id: int, subject: str, start: str, end: str, **extra: Any
) -> dict[str, Any]:
    return {"calendar_id": calendar_id, "subject": subject, "start": start, "end": end, **extra}


# Work (ids 1-14) straddles both DST changes: Europe/Berlin springs forward on 2026-03-29 at
# 01:00 UTC (02:00 -> 03:00 local), America/New_York falls back on 2026-11-01 at 06:00 UTC
# (02:00 -> 01:00 local, so 01:30 happens twice).
APPOINTMENTS: list[dict[str, Any]] = [
    _appointment(
        WORK, "Before Berlin DST", "2026-03-28T22:30:00+01:00", "2026-03-28T23:30:00+01:00"
    ),
    _appointment(WORK, "Berlin night", "2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00"),
    _appointment(
        WORK,
        "Berlin after switch",
        "2026-03-29T03:30:00+02:00",
        "2026-03-29T04:30:00+02:00",
        location="Berlin",
    ),
    _appointment(WORK, "Berlin late", "2026-03-29T23:30:00+02:00", "2026-03-30T00:15:00+02:00"),
    _appointment(WORK, "Berlin next day", "2026-03-30T00:30:00+02:00", "2026-03-30T01:00:00+02:00"),
    _appointment(WORK, "NY eve", "2026-10-31T23:30:00-04:00", "2026-11-01T00:30:00-04:00"),
    _appointment(WORK, "NY first 01:30", "2026-11-01T01:30:00-04:00", "2026-11-01T01:45:00-04:00"),
    _appointment(WORK, "NY second 01:30", "2026-11-01T01:30:00-05:00", "2026-11-01T01:45:00-05:00"),
    _appointment(WORK, "NY late", "2026-11-01T23:30:00-05:00", "2026-11-02T00:10:00-05:00"),
    _appointment(WORK, "NY next day", "2026-11-02T00:30:00-05:00", "2026-11-02T01:00:00-05:00"),
    _appointment(WORK, "Doctor", "2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z", is_private=True),
    _appointment(
        WORK, "Offsite", "2026-05-04T09:30:00Z", "2026-05-04T11:00:00Z", categories=["personal"]
    ),
    _appointment(
        WORK,
        "Standup",
        "2026-05-04T09:45:00Z",
        "2026-05-04T10:00:00Z",
        categories=["Work"],
        provider_event_id="evt-standup",
    ),
    _appointment(
        WORK,
        "Review",
        "2026-05-05T10:00:00Z",
        "2026-05-05T11:00:00Z",
        provider_event_id="evt-review",
    ),
    _appointment(SCRATCH, "Scratch note", "2026-05-04T08:00:00Z", "2026-05-04T08:30:00Z"),
    _appointment(BOB_WORK, "Bob one", "2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z"),
    _appointment(BOB_WORK, "Bob two", "2026-05-06T09:00:00Z", "2026-05-06T10:00:00Z"),
]
OWNER_OF_CALENDAR = {WORK: ALICE, SCRATCH: ALICE, BOB_WORK: BOB}
DOCTOR, STANDUP, REVIEW, SCRATCH_NOTE, BOB_ONE, BOB_TWO = 11, 13, 14, 15, 16, 17
# the seeded archive runs copy Standup and Review into Archive, Bob's two into Bob archive
STANDUP_COPY, REVIEW_COPY, BOB_ONE_COPY, BOB_TWO_COPY = 18, 19, 20, 21

# archive configurations
WORK_ARCHIVE, PAUSED, BOB_CONFIG = 1, 2, 3
CONFIGS: list[tuple[int, dict[str, Any]]] = [
    (
        ALICE,
        {
            "name": "Work archive",
            "source_calendar_id": WORK,
            "archive_calendar_id": ARCHIVE,
            "timezone": "Europe/Berlin",
            "excluded_categories": ["Personal"],
        },
    ),
    (
        ALICE,
        {
            "name": "Paused",
            "source_calendar_id": SPARE,
            "archive_calendar_id": ARCHIVE,
            "is_active": False,
            "days_back": 30,
        },
    ),
    (
        BOB,
        {
            "name": "Bob archive",
            "source_calendar_id": BOB_WORK,
            "archive_calendar_id": BOB_ARCHIVE,
            "timezone": "America/New_York",
        },
    ),
]
# one run each: action log rows 1 (alice) and 2 (bob)
RUNS: list[tuple[int, int, str, str]] = [
    (ALICE, WORK_ARCHIVE, "2026-05-04T00:00:00+00:00", "2026-05-06T00:00:00+00:00"),
    (BOB, BOB_CONFIG, "2026-05-01T00:00:00+00:00", "2026-06-01T00:00:00+00:00"),
]

# jobs (the parity servers run no scheduler: nothing runs on its own during a case)
JOB_WORK, JOB_DISABLED, JOB_BOB, JOB_BUSY = 1, 2, 3, 4
JOBS: list[tuple[int, dict[str, Any]]] = [
    (ALICE, {"archive_config_id": WORK_ARCHIVE, "schedule": "daily@02:30"}),
    (
        ALICE,
        {
            "archive_config_id": PAUSED,
            "schedule": "weekly@mon 02:00",
            "enabled": False,
            "misfire": "skip",
        },
    ),
    (BOB, {"archive_config_id": BOB_CONFIG, "schedule": "0 6 * * 1-5", "days_back": 1}),
    (ALICE, {"archive_config_id": WORK_ARCHIVE, "schedule": "every 15m", "timezone": "UTC"}),
]
NEXT_JOB = 5
BUSY_RUN = 1  # job 4 has a run queued: a trigger of it is refused

# -- seeded after the jobs (so the ids above stay): overlaps, a timesheet, a recurring series

TIMESHEET_CAL = 8
NEXT_CALENDAR = 9
_MAY6, _MAY7 = "2026-05-06T", "2026-05-07T"
LATER_APPOINTMENTS: list[dict[str, Any]] = [
    # 22, 23: equal rank, 30 minutes of overlap: an open action item
    _appointment(
        WORK,
        "Client call",
        _MAY6 + "10:00:00Z",
        _MAY6 + "11:00:00Z",
        provider_event_id="evt-client",
    ),
    _appointment(
        WORK,
        "Design review",
        _MAY6 + "10:30:00Z",
        _MAY6 + "11:30:00Z",
        provider_event_id="evt-design",
    ),
    # 24, 25: a free one yields to a busy one
    _appointment(
        WORK,
        "Lunch maybe",
        _MAY6 + "12:00:00Z",
        _MAY6 + "13:00:00Z",
        show_as="free",
        provider_event_id="evt-lunch-maybe",
    ),
    _appointment(
        WORK,
        "Team lunch",
        _MAY6 + "12:15:00Z",
        _MAY6 + "13:00:00Z",
        provider_event_id="evt-team-lunch",
    ),
    # 26-29: a day of timesheet categories (the personal one is not business time)
    _appointment(
        WORK,
        "Client work",
        _MAY7 + "07:00:00Z",
        _MAY7 + "10:00:00Z",
        categories=["Billable"],
        provider_event_id="evt-billable",
    ),
    _appointment(
        WORK,
        "Train to client",
        _MAY7 + "11:00:00Z",
        _MAY7 + "12:30:00Z",
        categories=["travel"],
        provider_event_id="evt-travel",
    ),
    _appointment(
        WORK,
        "Internal sync",
        _MAY7 + "13:00:00Z",
        _MAY7 + "14:00:00Z",
        categories=["Non-billable"],
        provider_event_id="evt-internal",
    ),
    _appointment(
        WORK,
        "Errand",
        _MAY7 + "15:00:00Z",
        _MAY7 + "16:00:00Z",
        categories=["Billable"],
        sensitivity="personal",
        provider_event_id="evt-errand",
    ),
    # 30: a weekly series in June (Berlin time), one Monday cancelled; 31: its exception
    _appointment(
        WORK,
        "Weekly planning",
        "2026-06-01T09:00:00+02:00",
        "2026-06-01T09:30:00+02:00",
        provider_event_id="evt-weekly",
        recurrence={
            "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=6",
            "timezone": "Europe/Berlin",
            "exdates": ["2026-06-15T09:00:00+02:00"],
        },
    ),
    _appointment(
        WORK,
        "Weekly planning (Tuesday)",
        "2026-06-23T10:00:00+02:00",
        "2026-06-23T10:30:00+02:00",
        provider_event_id="evt-weekly-moved",
        series_id=30,
        original_start="2026-06-22T09:00:00+02:00",
    ),
]
CLIENT_CALL, DESIGN_REVIEW, SERIES, SERIES_EXCEPTION = 22, 23, 30, 31
TIMESHEET_CONFIG = 4
NEXT_CONFIG = 5
# runs 3 (the Work archive over 6 May: one action item, one yield) and 4 (the timesheet)
LATER_RUNS: list[tuple[int, str, str]] = [
    (WORK_ARCHIVE, "2026-05-06T00:00:00+00:00", "2026-05-07T00:00:00+00:00"),
    (TIMESHEET_CONFIG, "2026-05-07T00:00:00+00:00", "2026-05-08T00:00:00+00:00"),
]
OPEN_ITEM = 1
# copies: Team lunch (32), then the timesheet's three (33-35)
TEAM_LUNCH_COPY, BILLABLE_COPY = 32, 33
NEXT_APPOINTMENT = 36


async def seed(runtime: Runtime, actors: dict[int, Actor]) -> None:
    """Create the calendars, appointments, configurations and runs above, asserting their ids."""
    services = runtime.services
    for expected, (owner, body) in enumerate(CALENDARS, 1):
        created = await services.calendars.create(actors[owner], parse_calendar(body))
        assert created["id"] == expected, created
    for expected, body in enumerate(APPOINTMENTS, 1):
        owner = OWNER_OF_CALENDAR[body["calendar_id"]]
        created = await services.appointments.create(actors[owner], parse_appointment(body))
        assert created["id"] == expected, created
    for expected, (owner, body) in enumerate(CONFIGS, 1):
        created = await services.archive.create_config(actors[owner], parse_archive_config(body))
        assert created["id"] == expected, created
    for owner, config_id, start, end in RUNS:
        entry = await services.archive.run(
            actors[owner],
            config_id,
            start=datetime.fromisoformat(start),
            end=datetime.fromisoformat(end),
        )
        assert entry["status"] == "success" and entry["archived"] == 2, entry
    for expected, (owner, body) in enumerate(JOBS, 1):
        created = await services.jobs.create(actors[owner], parse_job(body))
        assert created["id"] == expected, created
    run = await services.jobs.trigger(actors[ALICE], JOB_BUSY)
    assert run["id"] == BUSY_RUN, run
    alice = actors[ALICE]
    created = await services.calendars.create(
        alice, parse_calendar({"name": "Timesheet", "role": "archive"})
    )
    assert created["id"] == TIMESHEET_CAL, created
    for expected, body in enumerate(LATER_APPOINTMENTS, 22):
        created = await services.appointments.create(alice, parse_appointment(body))
        assert created["id"] == expected, created
    timesheet = {
        "name": "Timesheet",
        "source_calendar": "local://work",
        "archive_calendar": "local://Timesheet",
        "timezone": "Europe/Berlin",
        "purpose": "timesheet",
        "allow_overlaps": True,
    }
    created = await services.archive.create_config(alice, parse_archive_config(timesheet))
    assert created["id"] == TIMESHEET_CONFIG, created
    for config_id, start, end in LATER_RUNS:
        entry = await services.archive.run(
            alice, config_id, start=datetime.fromisoformat(start), end=datetime.fromisoformat(end)
        )
        assert entry["status"] == "success", entry
    (item,) = (await services.action_items.list(alice, parse_action_item_query({}))).items
    assert item["id"] == OPEN_ITEM and item["state"] == "open", item
    copies = await services.appointments.list(
        alice, parse_appointment_query({"calendar_id": str(TIMESHEET_CAL)})
    )
    assert [c["id"] for c in copies.items] == [BILLABLE_COPY, 34, 35], copies.items
