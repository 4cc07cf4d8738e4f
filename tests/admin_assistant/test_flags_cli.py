"""The real `admin-assistant` console script as a child process: flags, users, tokens, db."""

from __future__ import annotations

import getpass
import json
import subprocess
from pathlib import Path

import pytest

from asgi_gateway.control.store import FlagState, FlagStore
from shared import bridge
from shared.runtime import Runtime
from tests.admin_assistant.conftest import Run

FLAGS_YAML = """\
# Declared rollout, reviewed like code.
version: 1
defaults:
  sticky_by: user            # user | session | ip | header:<Name> | random
routes:
  # The busiest read: a quarter of users async.
  appointments.list: {mode: canary, percent: 25}
  appointments.get: {mode: shadow}   # diffs reported on the dashboard
"""


@pytest.fixture
def flags_file(environ: dict[str, str]) -> Path:
    path = Path(environ["AA_FLAGS_FILE"])
    path.write_text(FLAGS_YAML)
    return path


@pytest.fixture
def store(runtime: Runtime) -> FlagStore:
    store = FlagStore(runtime.db.engine)
    bridge.run(store.ensure_schema())
    return store


def state(store: FlagStore) -> tuple[FlagState, int]:
    """The runtime flags and the number of audit rows."""
    return bridge.run(store.load()), len(bridge.run(store.history(limit=10_000)))


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def failed(
    result: subprocess.CompletedProcess[str], text: str, status: int = 1
) -> subprocess.CompletedProcess[str]:
    assert result.returncode == status, (
        f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    assert text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result


# -- flags set, list, show, history --------------------------------------------------------------


def test_flags_set_is_audited_with_the_cli_actor_and_reason(
    cli: Run, flags_file: Path, store: FlagStore
) -> None:
    result = ok(
        cli(
            "flags",
            "set",
            "appointments.list",
            "--mode",
            "canary",
            "--percent",
            "10",
            "--reason",
            "  start the canary  ",
        )
    )

    assert "appointments.list:" in result.stdout
    assert "-> canary 10% (sticky by user)" in result.stdout
    flags, _ = state(store)
    assert (flags.flags["appointments.list"].mode, flags.flags["appointments.list"].percent) == (
        "canary",
        10.0,
    )
    entry = bridge.run(store.history("appointments.list"))[0]
    assert (entry.actor, entry.action, entry.reason) == (
        f"cli:{getpass.getuser()}",
        "set",
        "start the canary",
    )
    assert entry.after is not None
    assert (entry.after["mode"], entry.after["percent"]) == ("canary", 10.0)


def test_flags_set_takes_the_actor_from_aa_actor(
    cli: Run, flags_file: Path, store: FlagStore
) -> None:
    ok(
        cli(
            "flags",
            "set",
            "appointments.list",
            "--mode",
            "async",
            "--reason",
            "go",
            AA_ACTOR="deploy-bot",
        )
    )

    assert bridge.run(store.history("appointments.list"))[0].actor == "deploy-bot"


def test_flags_set_keeps_the_rest_of_the_flag(cli: Run, flags_file: Path, store: FlagStore) -> None:
    ok(
        cli(
            "flags",
            "set",
            "appointments.list",
            "--mode",
            "canary",
            "--percent",
            "10",
            "--sticky-by",
            "session",
            "--reason",
            "a",
        )
    )
    result = ok(cli("flags", "set", "appointments.list", "--mode", "async", "--reason", "b"))

    assert "canary 10% -> async (sticky by session)" in result.stdout
    assert state(store)[0].flags["appointments.list"].sticky_by == "session"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--mode", "sideways"],
            "error: unknown mode 'sideways' (expected legacy, shadow, canary, async)",
        ),
        (
            ["--mode", "canary", "--percent", "150"],
            "error: percent 150.0 is out of range (0 to 100)",
        ),
        (["--mode", "canary", "--percent", "1.005"], "has more than two decimals"),
        (["--mode", "async", "--sticky-by", "cookie"], "error: bad sticky key 'cookie'"),
    ],
)
def test_flags_set_with_bad_values_fails_clearly_and_changes_nothing(
    cli: Run, flags_file: Path, store: FlagStore, args: list[str], message: str
) -> None:
    before = state(store)

    result = failed(cli("flags", "set", "appointments.list", *args, "--reason", "try"), message)

    assert result.stdout == ""
    assert state(store) == before


def test_flags_set_refuses_unknown_endpoints_and_endpoints_without_twin(
    cli: Run, flags_file: Path, store: FlagStore
) -> None:
    before = state(store)

    failed(
        cli("flags", "set", "appointments.nope", "--mode", "async", "--reason", "x"),
        "error: unknown endpoint id 'appointments.nope'",
    )
    failed(
        cli("flags", "set", "pages.index", "--mode", "async", "--reason", "x"),
        "error: endpoint 'pages.index' has no async twin, so mode async is impossible",
    )

    assert state(store) == before


def test_flags_set_needs_a_reason(cli: Run, flags_file: Path, store: FlagStore) -> None:
    before = state(store)

    failed(
        cli("flags", "set", "appointments.list", "--mode", "async"),
        "Missing option '--reason'",
        status=2,
    )
    failed(
        cli("flags", "set", "appointments.list", "--mode", "async", "--reason", "  "),
        "error: --reason must not be empty",
    )

    assert state(store) == before


def test_flags_list(cli: Run, flags_file: Path) -> None:
    ok(
        cli(
            "flags",
            "set",
            "appointments.list",
            "--mode",
            "canary",
            "--percent",
            "12.5",
            "--reason",
            "x",
        )
    )

    result = ok(cli("flags", "list"))

    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ENDPOINT", "TWIN", "MODE", "PERCENT", "STICKY", "DRIFT"]
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert rows["appointments.list"] == [
        "appointments.list",
        "yes",
        "canary",
        "12.5",
        "user",
        "percent",  # the drifted fields
    ]
    assert rows["appointments.get"] == ["appointments.get", "yes", "shadow", "-", "user"]
    assert rows["pages.index"] == ["pages.index", "no", "legacy", "-", "user"]
    assert lines[-1] == "(version 1)"


def test_flags_show(cli: Run, flags_file: Path) -> None:
    ok(cli("flags", "set", "appointments.list", "--mode", "async", "--reason", "x"))

    shown = json.loads(ok(cli("flags", "show", "appointments.list")).stdout)

    assert shown["runtime"]["mode"] == "async"
    assert (shown["declared"]["mode"], shown["declared"]["percent"]) == ("canary", 25.0)
    assert shown["has_twin"] is True
    assert shown["version"] == 1
    failed(
        cli("flags", "show", "appointments.nope"), "error: unknown endpoint id 'appointments.nope'"
    )


def test_flags_history(cli: Run, flags_file: Path) -> None:
    ok(cli("flags", "set", "appointments.list", "--mode", "async", "--reason", "first flip"))
    ok(cli("flags", "set", "appointments.get", "--mode", "async", "--reason", "second flip"))

    every = ok(cli("flags", "history")).stdout.splitlines()
    one = ok(cli("flags", "history", "appointments.list")).stdout.splitlines()
    last = ok(cli("flags", "history", "--limit", "1")).stdout.splitlines()

    actor = f"cli:{getpass.getuser()}"
    assert len(every) == 2
    assert f"appointments.get set by {actor}: " in every[0]
    assert every[0].endswith("(second flip)")
    # Before a first flip, the endpoint ran as its YAML entry declared it.
    assert f"appointments.list set by {actor}: canary 25% -> async " in every[1]
    assert every[1].endswith("(first flip)")
    assert one == [every[1]]
    assert last == [every[0]]


# -- flags apply ---------------------------------------------------------------------------------


def test_flags_apply_takes_changed_entries(cli: Run, flags_file: Path, store: FlagStore) -> None:
    assert ok(cli("flags", "apply")).stdout.strip() == (
        "applied: appointments.list, appointments.get"
    )
    assert ok(cli("flags", "apply")).stdout.strip() == "nothing changed"

    flags_file.write_text(FLAGS_YAML.replace("percent: 25", "percent: 50"))
    assert ok(cli("flags", "apply")).stdout.strip() == "applied: appointments.list"

    assert state(store)[0].flags["appointments.list"].percent == 50.0
    entry = bridge.run(store.history("appointments.list"))[0]
    assert entry.actor == f"feature_flags.yaml (cli:{getpass.getuser()})"


def test_flags_apply_with_a_bad_file_fails_and_changes_nothing(
    cli: Run, flags_file: Path, store: FlagStore
) -> None:
    ok(cli("flags", "apply"))
    ok(cli("flags", "set", "appointments.get", "--mode", "async", "--reason", "runtime flip"))
    before = state(store)

    flags_file.write_text(
        FLAGS_YAML.replace("{mode: canary, percent: 25}", "{mode: sideways}").replace(
            "{mode: shadow}", "{mode: legacy}"
        )
    )
    result = failed(
        cli("flags", "apply"),
        f"{flags_file}:7: appointments.list: unknown mode 'sideways' "
        "(expected legacy, shadow, canary, async)",
    )

    assert result.stdout == ""
    assert state(store) == before


def test_flags_apply_with_invalid_yaml_names_the_line(
    cli: Run, flags_file: Path, store: FlagStore
) -> None:
    before = state(store)
    flags_file.write_text(FLAGS_YAML + "  calendars.list: {mode: async\n")

    failed(cli("flags", "apply"), f"{flags_file}:10: not valid YAML")

    assert state(store) == before


def test_flags_apply_with_a_file_that_is_not_utf8_names_line_and_byte(
    cli: Run, flags_file: Path, store: FlagStore
) -> None:
    before = state(store)
    flags_file.write_bytes(FLAGS_YAML.encode() + b"  calendars.list: {mode: async}  # \xff\n")

    result = failed(cli("flags", "apply"), f"{flags_file}:9: not UTF-8 text (byte 0xff")

    assert "Traceback" not in result.stderr
    assert state(store) == before


# -- flags export --------------------------------------------------------------------------------


def test_flags_export_keeps_comments_and_a_second_export_is_a_no_op(
    cli: Run, flags_file: Path, store: FlagStore
) -> None:
    ok(cli("flags", "apply"))
    ok(cli("flags", "set", "appointments.list", "--mode", "async", "--reason", "done"))

    assert ok(cli("flags", "export")).stdout.strip() == f"wrote {flags_file}"

    text = flags_file.read_text()
    for comment in (
        "# Declared rollout, reviewed like code.",
        "# user | session | ip | header:<Name> | random",
        "# The busiest read: a quarter of users async.",
        "# diffs reported on the dashboard",
    ):
        assert comment in text
    assert "appointments.list: {mode: async}\n" in text
    assert "appointments.get: {mode: shadow}" in text

    again = ok(cli("flags", "export"))
    assert again.stdout.strip() == f"{flags_file} already matches the runtime state"
    assert flags_file.read_text() == text
    # The exported file is the new baseline: applying it keeps the runtime state as is.
    before = state(store)[0]
    assert ok(cli("flags", "apply")).stdout.strip() == "nothing changed"
    assert state(store)[0].flags == before.flags


# -- users, tokens, db, archive ------------------------------------------------------------------


def test_users_create(cli: Run, runtime: Runtime) -> None:
    result = ok(
        cli("users", "create", "carol@example.com", "--password", "carol-pw-123", "--admin")
    )

    assert result.stdout.strip().endswith("carol@example.com (admin)")
    actor = bridge.run(
        runtime.services.users.authenticate_password("carol@example.com", "carol-pw-123")
    )
    assert actor.is_admin
    failed(cli("users", "create", "carol@example.com", "--password", "carol-pw-123"), "error:")


def test_tokens_create_prints_the_token_alone_on_the_last_line(cli: Run, runtime: Runtime) -> None:
    ok(cli("users", "create", "dave@example.com", "--password", "dave-pw-123"))

    result = ok(cli("tokens", "create", "--user", "dave@example.com"))

    token = result.stdout.splitlines()[-1]
    assert token == token.strip() and " " not in token and len(token) >= 20
    actor = bridge.run(runtime.services.users.authenticate_token(token))
    assert actor.email == "dave@example.com"
    failed(cli("tokens", "create", "--user", "nobody@example.com"), "error:")


def test_db_upgrade_is_idempotent(cli: Run) -> None:
    first = ok(cli("db", "upgrade"))
    second = ok(cli("db", "upgrade"))

    assert first.stdout.startswith("database at revision ")
    assert second.stdout == first.stdout


def test_archive_run_of_a_missing_config_fails(cli: Run) -> None:
    result = failed(cli("archive", "run", "999999"), "archive configuration 999999 not found")

    assert result.stderr.startswith("error: ")
