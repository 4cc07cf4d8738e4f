"""Rollout controls of the dashboard in a real headless Chromium, against admin-assistant."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.browser import log_in, shot
from tests.conftest import Person, ServerProcess


def test_admin_starts_and_pauses_a_rollout_from_the_dashboard(
    browser: Browser, gateway_server: ServerProcess, admin: Person
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    log_in(page, gateway_server.url, admin, "/_rollout/endpoints/appointments.list")
    expect(page.locator("#rollout-state")).to_have_text("none")
    start = page.locator("#rollout-start")
    start.locator("input[name=steps]").fill("5,25,100")
    start.locator("input[name=interval]").fill("15m")
    start.locator("input[name=reason]").fill("browser test: staged rollout")
    start.locator("button").click()
    expect(page.locator("#confirm-steps")).to_have_text("5,25,100")
    shot(page, "rollout-confirm-start")
    page.click("#confirm")

    expect(page.locator("#rollout-state")).to_have_text("running")
    expect(page.locator("#rollout-steps li.current")).to_have_text("5%")
    expect(page.locator("#current-mode")).to_have_text("canary 5%")
    expect(page.locator("#next-step")).to_be_visible()
    expect(page.locator("#history")).to_contain_text("browser test: staged rollout")
    shot(page, "rollout-running")

    pause = page.locator("#rollout-pause")
    pause.locator("input[name=reason]").fill("browser test: hold")
    pause.locator("button").click()
    page.click("#confirm")
    expect(page.locator("#rollout-state")).to_have_text("paused")
    expect(page.locator("#rollout-reason")).to_contain_text("paused by admin@example.com")
    expect(page.locator("#rollout-resume")).to_be_visible()

    page.goto(f"{gateway_server.url}/_rollout/")
    row = page.locator("tr[data-endpoint='appointments.list'] td.rollout")
    expect(row).to_contain_text("paused")
    expect(row).to_contain_text("1/3")
    shot(page, "rollout-board")
    context.close()
