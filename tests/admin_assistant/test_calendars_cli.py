"""`admin-assistant calendars ...`, `timesheet export` and `archive run --replace` with date
phrases, as child processes against the fake Graph API."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared import bridge
from shared.auth import Actor
from shared.inputs.appointments import parse_appointment
from shared.inputs.archive import parse_archive_config
from shared.runtime import Runtime
from tests.admin_assistant.conftest import Run
from tests.conftest import Person
from tests.fakes.graph_server import FakeGraphServer

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)


@pytest.fixture
def graph(alice: Person) -> Iterator[FakeGraphServer]:
    with FakeGraphServer() as server:
        server.add_calendar("AAMk-1", alice.email, name="Calendar")
        server.add_calendar("AAMk-2", alice.email, name="Shared", can_edit=False)
        yield server


def test_calendars_list_remote_and_add_by_uri(
    cli: Run, graph: FakeGraphServer, alice: Person
) -> None:
    remote = cli("calendars", "list", "--remote", "--user", alice.email, AA_GRAPH_URL=graph.url)
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout.splitlines()[1:] == [
        "    - yes  Calendar                       msgraph://me/calendars/AAMk-1",
        "    - no   Shared                         msgraph://me/calendars/AAMk-2",
    ]
    added = cli(
        "calendars",
        "add",
        "msgraph://me/calendars/calendar",
        "--user",
        alice.email,
        "--role",
        "source",
        AA_GRAPH_URL=graph.url,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added calendar 1 'Calendar': msgraph://me/calendars/AAMk-1"
    local = cli("calendars", "add", "local://Archive", "--user", alice.email, "--role", "archive")
    assert local.returncode == 0, local.stderr
    listed = cli("calendars", "list", "--user", alice.email)
    assert [line.split()[-1] for line in listed.stdout.splitlines()[1:]] == [
        "msgraph://me/calendars/AAMk-1",
        "local://Archive",
    ]
    missing = cli(
        "calendars",
        "add",
        "msgraph://me/calendars/Nope",
        "--user",
        alice.email,
        "--role",
        "source",
        AA_GRAPH_URL=graph.url,
    )
    assert missing.returncode == 1 and "has no calendar named or with id 'Nope'" in missing.stderr
    needs_user = cli("calendars", "list", "--remote")
    assert needs_user.returncode == 2 and "name the user with --user" in needs_user.stderr


@pytest.fixture
def timesheet_config(runtime: Runtime, alice: Person) -> int:
    actor = Actor(alice.id, alice.email, False)
    calendars = runtime.services.calendars
    source = bridge.run(calendars.create(actor, {"name": "Work", "role": "source"}))
    bridge.run(calendars.create(actor, {"name": "Timesheet", "role": "archive"}))
    for subject, hour, category in (("Client", 9, "Billable"), ("Train", 13, "Travel")):
        start = datetime.combine(YESTERDAY, datetime.min.time(), UTC).replace(hour=hour)
        body = {
            "calendar_id": source["id"],
            "subject": subject,
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=90)).isoformat(),
            "categories": [category],
        }
        bridge.run(runtime.services.appointments.create(actor, parse_appointment(body)))
    body = {
        "name": "Hours",
        "source_calendar": "local://Work",
        "archive_calendar": "local://Timesheet",
        "purpose": "timesheet",
        "mode": "replace",
    }
    return int(
        bridge.run(runtime.services.archive.create_config(actor, parse_archive_config(body)))["id"]
    )


def test_archive_run_with_a_phrase_then_a_timesheet_export(
    cli: Run, timesheet_config: int, tmp_path: Path
) -> None:
    ran = cli("archive", "run", str(timesheet_config), "--start", "yesterday", "--replace")
    assert ran.returncode == 0, ran.stderr
    assert "run 1 success (replace): added 2, updated 0, removed 0, unchanged 0" in ran.stdout
    day = YESTERDAY.isoformat()
    assert (
        f"({day}T00:00:00+00:00 .. {(YESTERDAY + timedelta(days=1)).isoformat()}T00:00:00+00:00"
        in ran.stdout
    )
    again = cli("archive", "run", str(timesheet_config), "--start", "yesterday")
    assert "added 0, updated 0, removed 0, unchanged 2" in again.stdout
    exported = cli("timesheet", "export", str(timesheet_config), "--start", "yesterday")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.reader(io.StringIO(exported.stdout)))
    assert rows == [
        ["date", "Billable", "Non-billable", "Travel", "total"],
        [day, "1.50", "0.00", "1.50", "3.00"],
        ["total", "1.50", "0.00", "1.50", "3.00"],
    ]
    out = tmp_path / "sheet.json"
    written = cli(
        "timesheet",
        "export",
        str(timesheet_config),
        "--start",
        "last 7 days",
        "--format",
        "json",
        "--output",
        str(out),
    )
    assert written.returncode == 0, written.stderr
    summary = json.loads(out.read_text())
    assert (summary["total_hours"], len(summary["days"])) == (3.0, 7)
    bad = cli("timesheet", "export", str(timesheet_config), "--start", "someday")
    assert bad.returncode == 2 and "is not a date or a date phrase" in bad.stderr
    general = cli("timesheet", "export", "999")
    assert general.returncode == 1 and "archive configuration 999 not found" in general.stderr
