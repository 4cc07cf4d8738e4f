"""`admin-assistant jobs ...` and `admin-assistant scheduler` as child processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from shared import bridge
from shared.auth import Actor
from shared.inputs.archive import parse_archive_config
from shared.runtime import Runtime
from tests.admin_assistant.conftest import CLI, Run
from tests.conftest import Person


@pytest.fixture
def config_id(runtime: Runtime, alice: Person) -> int:
    actor = Actor(alice.id, alice.email, False)
    calendars = runtime.services.calendars
    source = bridge.run(calendars.create(actor, {"name": "Work", "role": "source"}))
    archive = bridge.run(calendars.create(actor, {"name": "Archive", "role": "archive"}))
    body = {
        "name": "Work archive",
        "source_calendar_id": source["id"],
        "archive_calendar_id": archive["id"],
        "timezone": "Europe/Berlin",
    }
    config = bridge.run(runtime.services.archive.create_config(actor, parse_archive_config(body)))
    return int(config["id"])


def test_create_list_show_trigger_runs_delete(cli: Run, config_id: int, alice: Person) -> None:
    created = cli(
        "jobs", "create", str(config_id), "--schedule", "daily@02:30", "--misfire", "skip"
    )
    assert created.returncode == 0, created.stderr
    assert re.match(
        r"created job 1: daily@02:30 in Europe/Berlin, next run 20\d\d-", created.stdout
    )

    listed = cli("jobs", "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:3] == ["ID", "CONFIG", "SCHEDULE"]
    assert row.split()[:6] == ["1", str(config_id), "daily@02:30", "Europe/Berlin", "yes", "skip"]
    assert "CET" in row or "CEST" in row

    shown = json.loads(cli("jobs", "show", "1").stdout)
    assert shown["archive_config_id"] == config_id and shown["misfire"] == "skip"

    triggered = cli("jobs", "trigger", "1")
    assert triggered.returncode == 0, triggered.stderr
    assert triggered.stdout.strip() == "1"
    assert "a live scheduler starts it" in triggered.stderr
    again = cli("jobs", "trigger", "1")
    assert again.returncode == 1
    assert "error: job 1 already has a run queued (run 1)" in again.stderr

    runs = cli("jobs", "runs", "1")
    assert runs.returncode == 0, runs.stderr
    assert runs.stdout.splitlines()[1].split()[0] == "1" and " queued " in runs.stdout

    deleted = cli("jobs", "delete", "1")
    assert (deleted.returncode, deleted.stdout.strip()) == (0, "deleted job 1")
    assert cli("jobs", "show", "1").stderr.strip() == "error: job 1 not found"


def test_bad_input_is_an_error_naming_the_field(cli: Run, config_id: int) -> None:
    bad = cli("jobs", "create", str(config_id), "--schedule", "61 * * * *")
    assert bad.returncode == 1
    assert "error: invalid job: check schedule" in bad.stderr
    assert "schedule: '61 * * * *' is not a valid cron expression" in bad.stderr
    zone = cli("jobs", "create", str(config_id), "--schedule", "every 15m", "--timezone", "Mars/X")
    assert zone.returncode == 1 and "unknown time zone 'Mars/X'" in zone.stderr
    missing = cli("jobs", "create", "999", "--schedule", "every 15m")
    assert missing.returncode == 1 and "archive configuration 999 not found" in missing.stderr


def test_the_standalone_scheduler_runs_jobs_serves_metrics_and_stops_on_sigterm(
    environ: dict[str, str], tmp_path: Path, cli: Run, config_id: int
) -> None:
    assert cli("jobs", "create", str(config_id), "--schedule", "weekly@sun 03:00").returncode == 0
    assert cli("jobs", "trigger", "1").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("AA_")}
    log = tmp_path / "scheduler.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(CLI), "scheduler", "--metrics-port", "0"],
            env={**env, **environ},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + 30
            while "succeeded" not in cli("jobs", "runs", "1").stdout:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            match = re.search(r"metrics on (http://\S+)", log.read_text())
            assert match, log.read_text()
            metrics = httpx.get(match.group(1)).text
            assert 'scheduler_runs_total{result="succeeded"} 1.0' in metrics
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()
    text = log.read_text()
    assert "running (tick 1 s, lease 60 s); SIGTERM stops it" in text
    assert "scheduler stopping" in text
