"""`admin-assistant flags rollout start|pause|resume|abort|status` as a child process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asgi_gateway.control.store import FlagStore
from shared.runtime import Runtime
from tests.admin_assistant.conftest import Run
from tests.admin_assistant.test_flags_cli import FLAGS_YAML, failed, ok, state

EP = "appointments.list"


@pytest.fixture
def store(runtime: Runtime, environ: dict[str, str], cli: Run) -> FlagStore:
    """The flag store, with the flag file applied (appointments.list in canary 25%)."""
    Path(environ["AA_FLAGS_FILE"]).write_text(FLAGS_YAML)
    ok(cli("flags", "apply"))
    return FlagStore(runtime.db.engine)


def status(cli: Run) -> dict[str, object]:
    return json.loads(ok(cli("flags", "rollout", "status", EP, "--json")).stdout)  # type: ignore[no-any-return]


def test_start_pause_resume_abort_and_status(cli: Run, store: FlagStore) -> None:
    started = ok(
        cli(
            "flags",
            "rollout",
            "start",
            EP,
            "--steps",
            "30,60,100",
            "--interval",
            "10m",
            "--reason",
            "from the terminal",
            AA_ACTOR="ops@example.com",
        )
    )
    # At or above the current 25%: a rollout never lowers a canary.
    assert "appointments.list: running, step 1 of 3 (30%); serving canary 30%" in started.stdout
    assert "steps: [30] 60 100 every 600s" in started.stdout
    view = status(cli)
    assert (view["state"], view["step_index"], view["percent"], view["interval_s"]) == (
        "running",
        0,
        30,
        600.0,
    )
    assert view["started_by"] == "ops@example.com"

    paused = ok(cli("flags", "rollout", "pause", EP, "--reason", "hold"))
    assert "appointments.list: paused, step 1 of 3 (30%)" in paused.stdout
    assert "why: paused by cli:" in paused.stdout
    ok(cli("flags", "rollout", "resume", EP, "--reason", "go on"))
    assert status(cli)["state"] == "running"
    aborted = ok(cli("flags", "rollout", "abort", EP, "--reason", "enough"))
    assert "aborted" in aborted.stdout and "serving legacy 0%" in aborted.stdout

    flags, _ = state(store)
    assert flags.flags[EP].mode == "legacy"
    history = ok(cli("flags", "history", EP)).stdout
    for action in ("rollout_start", "rollout_pause", "rollout_resume", "rollout_abort"):
        assert action in history


def test_a_flip_from_the_cli_pauses_a_running_rollout(cli: Run, store: FlagStore) -> None:
    ok(cli("flags", "rollout", "start", EP, "--reason", "go"))
    ok(cli("flags", "set", EP, "--percent", "40", "--reason", "by hand", AA_ACTOR="bob"))
    view = status(cli)
    assert view["state"] == "paused"
    assert view["reason"] == "paused: bob changed the flag (canary 25% -> canary 40%): by hand"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", EP], "--reason is required"),
        (["pause", EP, "--reason", " "], "--reason is required"),
        (["pause", EP, "--reason", "x", "--steps", "1,100"], "only used with start"),
        (["start", EP, "--reason", "x", "--steps", "1,five"], "is not a list of numbers"),
        (["start", EP, "--reason", "x", "--steps", "5,1,100"], "--steps: steps must rise"),
        (["start", EP, "--reason", "x", "--interval", "0s"], "--interval: interval: bad duration"),
        (["start", "nope.list", "--reason", "x"], "unknown endpoint id 'nope.list'"),
        (["pause", EP, "--reason", "x"], "cannot pause the rollout of appointments.list"),
        (["start", "pages.index", "--reason", "x"], "has no async twin"),
    ],
)
def test_bad_rollout_commands_fail_clearly_and_change_nothing(
    cli: Run, store: FlagStore, args: list[str], message: str
) -> None:
    _, audited = state(store)
    failed(cli("flags", "rollout", *args), message)
    flags, audited_after = state(store)
    assert audited_after == audited
    assert flags.flags[EP].mode == "canary"
