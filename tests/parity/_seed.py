"""The database every parity case starts from: four users and their calendars, appointments,
archive configurations and runs, with ids fixed by creation order (cases name them directly).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.auth import Actor
from shared.inputs.appointments import parse_appointment
from shared.inputs.archive import parse_archive_config
from shared.inputs.calendars import parse_calendar
from shared.runtime import Runtime
from shared.validation import parse_job
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


# remote calendars of the fake Graph API, by mailbox (each user is bound to their email)
ALICE_REMOTE_IDS = ("AAMk-remote", "AAMk-1", "AAMk-9", "AAMk/with+slash=")
BOB_REMOTE_ID = "AAMk-bob"


def remote_calendars(graph: FakeGraphServer) -> FakeGraphServer:
    """`graph` holding alice's and bob's remote calendars, two events in alice's Remote."""
    for calendar_id in ALICE_REMOTE_IDS:
        graph.add_calendar(calendar_id, mailbox=EMAILS["alice"])
    graph.add_calendar(BOB_REMOTE_ID, mailbox=EMAILS["bob"])
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
NEXT_APPOINTMENT = 22

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
NEXT_CONFIG = 4
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
