"""The default configuration in a real headless Chromium against a gateway process: marked in
the list, moved with "Make default" (mouse and keyboard), preselected by the run form, and
cleared with "Unset default". Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from shared import bridge
from shared.auth import Actor
from shared.inputs.appointments import parse_appointment
from shared.inputs.archive import parse_archive_config
from shared.runtime import Runtime
from tests.browser import log_in, shot
from tests.conftest import Person, ServerProcess
from tests.legacy_flask.test_web_ui import check_contrast, flash

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)


@pytest.fixture
def server(environ: dict[str, str], spawn: Callable[..., ServerProcess]) -> ServerProcess:
    Path(environ["AA_FLAGS_FILE"]).write_text("version: 1\nroutes: {}\n")
    return spawn(environ)


@pytest.fixture
def configs(runtime: Runtime, alice: Person) -> tuple[int, int]:
    """Alice's "Nightly" (her first, so her default) and "Weekly", over one meeting yesterday."""
    actor = Actor(alice.id, alice.email, False)
    svc = runtime.services
    source = bridge.run(svc.calendars.create(actor, {"name": "Work", "role": "source"}))
    archive = bridge.run(svc.calendars.create(actor, {"name": "Vault", "role": "archive"}))
    start = datetime.combine(YESTERDAY, datetime.min.time(), UTC).replace(hour=9)
    meeting = {
        "calendar_id": source["id"],
        "subject": "Standup",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat(),
    }
    bridge.run(svc.appointments.create(actor, parse_appointment(meeting)))
    made = []
    for name in ("Nightly", "Weekly"):
        body = {
            "name": name,
            "source_calendar_id": source["id"],
            "archive_calendar_id": archive["id"],
        }
        made.append(bridge.run(svc.archive.create_config(actor, parse_archive_config(body)))["id"])
    return made[0], made[1]


def test_make_default_then_run_it_from_the_run_form(
    browser: Browser, server: ServerProcess, alice: Person, configs: tuple[int, int]
) -> None:
    nightly, weekly = configs
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, server.url, alice, "/archive-configs")
    rows = page.locator("#configs tbody tr")
    expect(page.locator(f"tr[data-config='{nightly}'] .badge")).to_have_text("default")
    expect(page.locator(".badge")).to_have_count(1)
    check_contrast(page)
    shot(page, "default-01-first-is-default")

    page.get_by_role("button", name="Make Weekly the default").click()
    flash(page).to_contain_text("“Weekly” is now your default configuration.")
    expect(page.locator(f"tr[data-config='{weekly}'] .badge")).to_have_text("default")
    expect(page.locator(".badge")).to_have_count(1)
    expect(
        rows.filter(has_text="Nightly").get_by_role("button", name="Make Nightly the default")
    ).to_be_visible()
    listed = httpx.get(f"{server.url}/api/archive-configs", headers=alice.headers).json()["data"]
    assert [(c["name"], c["is_default"]) for c in listed] == [
        ("Nightly", False),
        ("Weekly", True),
    ]
    check_contrast(page)
    shot(page, "default-02-weekly-is-default")

    # The run form names no configuration: the default is preselected.
    page.get_by_role("link", name="Run…").first.click()
    expect(page).to_have_url(re.compile(r"/archive-configs/run$"))
    expect(page.locator("#config_id")).to_have_value(str(weekly))
    expect(page.locator("#config_id option:checked")).to_have_text("Weekly (default)")
    check_contrast(page)
    shot(page, "default-03-run-form")
    page.fill("#start", "yesterday")
    page.fill("#end", "yesterday")
    page.click("#run-form button[type=submit]")
    flash(page).to_contain_text("Append run: added 1")
    expect(page).to_have_url(re.compile(rf"/action-log\?config_id={weekly}$"))

    # The keyboard alone moves it back, then clears it.
    page.goto(f"{server.url}/archive-configs")
    page.get_by_role("button", name="Make Nightly the default").focus()
    page.keyboard.press("Enter")
    flash(page).to_contain_text("“Nightly” is now your default configuration.")
    expect(page.locator(f"tr[data-config='{nightly}'] .badge")).to_have_text("default")
    page.get_by_role("button", name="Unset Nightly as the default").focus()
    page.keyboard.press("Enter")
    flash(page).to_contain_text("“Nightly” is no longer your default configuration.")
    expect(page.locator(".badge")).to_have_count(0)
    shot(page, "default-04-none")
    # With no default the run form preselects the first configuration, marked as no default.
    page.goto(f"{server.url}/archive-configs/run")
    expect(page.locator("#config_id")).to_have_value(str(nightly))
    expect(page.locator("#config_id option", has_text="(default)")).to_have_count(0)
    context.close()
