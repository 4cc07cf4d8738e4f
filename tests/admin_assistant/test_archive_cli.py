"""`admin-assistant archive run` without CONFIG_ID: the user's default configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared import bridge
from shared.auth import Actor
from shared.inputs.appointments import parse_appointment
from shared.inputs.archive import parse_archive_config
from shared.pagination import PageRequest
from shared.runtime import Runtime
from tests.admin_assistant.conftest import Run
from tests.conftest import Person

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)


def make_configs(runtime: Runtime, person: Person, *names: str) -> list[int]:
    """Configurations of `person` over a source with one appointment yesterday."""
    actor = Actor(person.id, person.email, False)
    calendars = runtime.services.calendars
    source = bridge.run(calendars.create(actor, {"name": "Work", "role": "source"}))
    archive = bridge.run(calendars.create(actor, {"name": "Archive", "role": "archive"}))
    start = datetime.combine(YESTERDAY, datetime.min.time(), UTC).replace(hour=9)
    body = {
        "calendar_id": source["id"],
        "subject": "Standup",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat(),
    }
    bridge.run(runtime.services.appointments.create(actor, parse_appointment(body)))
    made = []
    for name in names:
        values = parse_archive_config(
            {"name": name, "source_calendar_id": source["id"], "archive_calendar_id": archive["id"]}
        )
        made.append(bridge.run(runtime.services.archive.create_config(actor, values))["id"])
    return made


def set_default(runtime: Runtime, person: Person, config_id: int, is_default: bool) -> None:
    actor = Actor(person.id, person.email, False)
    bridge.run(runtime.services.archive.update_config(actor, config_id, {"is_default": is_default}))


def test_without_config_id_the_only_users_default_runs(
    cli: Run, runtime: Runtime, alice: Person
) -> None:
    _first, second = make_configs(runtime, alice, "First", "Second")
    set_default(runtime, alice, second, True)
    ran = cli("archive", "run", "--start", "yesterday")
    assert ran.returncode == 0, ran.stderr
    assert "success (append): added 1" in ran.stdout
    log = bridge.run(
        runtime.services.archive.action_log(
            Actor(alice.id, alice.email, False), None, PageRequest(1, 50)
        )
    ).items
    assert [entry["config_id"] for entry in log] == [second]


def test_user_names_whose_default_runs(
    cli: Run, runtime: Runtime, alice: Person, bob: Person
) -> None:
    make_configs(runtime, alice, "Alice's")
    (bobs,) = make_configs(runtime, bob, "Bob's")
    needs_user = cli("archive", "run")
    assert needs_user.returncode == 1
    assert (
        "no CONFIG_ID, and the database has 2 users: pass CONFIG_ID, or --user EMAIL"
        in needs_user.stderr
    )
    ran = cli("archive", "run", "--user", bob.email, "--start", "yesterday")
    assert ran.returncode == 0, ran.stderr
    assert "added 1" in ran.stdout
    log = bridge.run(
        runtime.services.archive.action_log(
            Actor(bob.id, bob.email, False), None, PageRequest(1, 50)
        )
    ).items
    assert [entry["config_id"] for entry in log] == [bobs]


def test_no_default_is_a_clear_error(cli: Run, runtime: Runtime, alice: Person) -> None:
    (only,) = make_configs(runtime, alice, "Only")
    set_default(runtime, alice, only, False)
    ran = cli("archive", "run", "--user", alice.email)
    assert ran.returncode == 1
    assert ran.stderr.startswith(
        "error: no default configuration for alice@example.com; pass CONFIG_ID or set one"
    )
    # Naming the configuration still works without a default.
    assert cli("archive", "run", str(only)).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("1", "--user", "alice@example.com"), "give CONFIG_ID or --user"),
        (("--user", "nobody@example.com"), "user 'nobody@example.com' not found"),
    ],
)
def test_bad_choices_are_refused(
    cli: Run, runtime: Runtime, alice: Person, args: tuple[str, ...], message: str
) -> None:
    make_configs(runtime, alice, "Only")
    ran = cli("archive", "run", *args)
    assert ran.returncode != 0 and message in ran.stderr, ran.stderr
