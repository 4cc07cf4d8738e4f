"""The Jobs pages in a real headless Chromium, against a real gateway process with its scheduler."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from shared import bridge
from shared.auth import Actor
from shared.inputs.appointments import parse_appointment
from shared.inputs.archive import parse_archive_config
from shared.runtime import Runtime
from tests.browser import log_in, shot
from tests.conftest import Person, ServerProcess


@pytest.fixture
def config_name(runtime: Runtime, alice: Person) -> str:
    actor = Actor(alice.id, alice.email, False)
    calendars = runtime.services.calendars
    source = bridge.run(calendars.create(actor, {"name": "Work", "role": "source"}))
    archive = bridge.run(calendars.create(actor, {"name": "Archive", "role": "archive"}))
    yesterday = datetime.now().astimezone() - timedelta(days=1)
    for hour in (9, 11):
        start = yesterday.replace(hour=hour, minute=0, second=0, microsecond=0)
        body = {
            "calendar_id": source["id"],
            "subject": f"Meeting at {hour}",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
        }
        bridge.run(runtime.services.appointments.create(actor, parse_appointment(body)))
    body = {
        "name": "Work to archive",
        "source_calendar_id": source["id"],
        "archive_calendar_id": archive["id"],
        "timezone": "Europe/Berlin",
    }
    bridge.run(runtime.services.archive.create_config(actor, parse_archive_config(body)))
    return "Work to archive"


def _reload_until(page: Page, selector: str, text: str, timeout_s: float = 20.0) -> None:
    """Reload the page until `selector` shows `text` (server-rendered state that changes)."""
    deadline = time.monotonic() + timeout_s
    while text not in page.locator(selector).inner_text() and time.monotonic() < deadline:
        time.sleep(0.25)
        page.reload()
    expect(page.locator(selector)).to_contain_text(text)


def test_create_a_job_run_it_now_and_see_the_run_succeed(
    browser: Browser,
    environ: dict[str, str],
    spawn: Callable[..., ServerProcess],
    alice: Person,
    config_name: str,
) -> None:
    Path(environ["AA_FLAGS_FILE"]).write_text("version: 1\nroutes: {}\n")
    server = spawn(environ)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server.url, alice, "/jobs")
    expect(page).to_have_url(f"{server.url}/jobs")
    # The gateway's scheduler registers on its first tick, a second after start-up.
    _reload_until(page, "#scheduler-status", "1 scheduler running")
    page.select_option("select[name=archive_config_id]", label=f"{config_name} (Europe/Berlin)")
    page.fill("input[name=schedule]", "daily@02:30")
    page.select_option("select[name=misfire]", "skip")
    shot(page, "jobs-new")
    page.click("#job-form button[type=submit]")

    expect(page).to_have_url(re.compile(r"/jobs/1$"))
    expect(page.locator(".flash")).to_contain_text("Job 1 created; next run")
    # The next run in the job's zone: 02:30 Berlin time (03:30 on the spring-forward day).
    expect(page.locator("#next-run")).to_have_text(re.compile(r"^20\d\d-\d\d-\d\d 0[23]:30 CES?T$"))
    page.click("#run-now")
    expect(page.locator(".flash")).to_contain_text("Run 1 queued.")
    # The page reloads itself while a run is queued or running.
    row = page.locator("tr[data-run='1']")
    expect(row.locator(".status")).to_have_text("succeeded", timeout=20_000)
    expect(row).to_contain_text("(manual)")
    cells = row.locator("td")
    assert [cells.nth(i).inner_text() for i in (6, 7, 8, 9)] == ["2", "0", "0", "0"]
    shot(page, "job-run-succeeded")

    page.uncheck("#job-form input[name=enabled]")
    page.click("#job-form button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("Job 1 saved.")
    expect(page.locator("#next-run")).to_have_text("none (disabled)")
    page.click("#run-now")
    expect(page.locator(".flash.error")).to_contain_text("job 1 is disabled")

    page.goto(f"{server.url}/jobs")
    listed = page.locator("tr[data-job='1']")
    expect(listed).to_contain_text("daily@02:30")
    expect(listed).to_contain_text("succeeded")
    shot(page, "jobs-list")

    page.fill("input[name=schedule]", "61 * * * *")
    page.click("#job-form button[type=submit]")
    expect(page.locator(".flash.error")).to_contain_text("invalid job: check schedule")
    page.close()
