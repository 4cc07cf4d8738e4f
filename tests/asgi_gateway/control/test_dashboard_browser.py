"""The rollout dashboard in a real headless Chromium, against a real gateway process."""

from __future__ import annotations

import re
import time

import httpx
from playwright.sync_api import Browser, expect

from tests.browser import log_in, shot
from tests.conftest import Person, ServerProcess


def test_admin_flips_an_endpoint_from_the_dashboard(
    browser: Browser, gateway_server: ServerProcess, admin: Person, alice: Person
) -> None:
    with gateway_server.client(headers=alice.headers) as client:
        before = client.get("/api/appointments")
    assert before.headers["x-served-by"] == "legacy"

    for viewport, label in (
        ({"width": 1280, "height": 900}, "laptop"),
        ({"width": 390, "height": 844}, "phone"),
    ):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        log_in(page, gateway_server.url, admin, "/_rollout/")
        expect(page).to_have_url(f"{gateway_server.url}/_rollout/")
        expect(page.locator("#progress")).to_contain_text("of")
        expect(page.locator("tr[data-endpoint='appointments.list']")).to_be_visible()
        shot(page, f"board-{label}")
        context.close()

    context = browser.new_context()
    page = context.new_page()
    log_in(page, gateway_server.url, admin, "/_rollout/endpoints/appointments.list")
    expect(page.locator("#current-mode")).to_have_text("legacy")
    page.select_option("#mode", "async")
    page.fill("#reason", "browser test: twin verified")
    page.click("#review")
    expect(page.locator("#new-mode")).to_have_text("async")
    shot(page, "confirm")
    page.click("#confirm")
    expect(page.locator("#current-mode")).to_have_text("async")
    expect(page.locator("#history")).to_contain_text("browser test: twin verified")
    expect(page.locator("#history")).to_contain_text(admin.email)
    shot(page, "endpoint-after-flip")

    page.goto(f"{gateway_server.url}/_rollout/audit?endpoint=appointments.list")
    expect(page.locator("#audit")).to_contain_text("browser test: twin verified")
    shot(page, "audit")
    context.close()

    # A plain client, not the admin: the flip has reached the server.
    deadline = time.monotonic() + 5
    while True:
        with httpx.Client(base_url=gateway_server.url, headers=alice.headers) as client:
            served = client.get("/api/appointments").headers["x-served-by"]
        if served == "async" or time.monotonic() > deadline:
            break
    assert served == "async"


def test_a_non_admin_is_refused_the_dashboard(
    browser: Browser, gateway_server: ServerProcess, alice: Person
) -> None:
    context = browser.new_context()
    page = context.new_page()
    log_in(page, gateway_server.url, alice, "/_rollout/")
    expect(page.locator("h1")).to_have_text("Not available")
    assert page.evaluate("document.body.innerText").find("admins only") >= 0
    shot(page, "refused")
    response = page.request.get(f"{gateway_server.url}/_rollout/")
    assert response.status == 403
    context.close()


def test_the_board_refreshes_without_reloading(
    browser: Browser, gateway_server: ServerProcess, admin: Person
) -> None:
    context = browser.new_context()
    page = context.new_page()
    log_in(page, gateway_server.url, admin, "/_rollout/")
    expect(page.locator("#progress")).to_have_text(re.compile(r"^\s*0 of \d+\s*$"))
    page.evaluate("window.__marker = 'same page'")
    with httpx.Client(base_url=gateway_server.url, headers=admin.headers) as client:
        response = client.patch(
            "/_rollout/api/flags/auth.me", json={"mode": "async", "reason": "refresh test"}
        )
    assert response.status_code == 200
    expect(page.locator("#progress")).to_have_text(re.compile(r"^\s*1 of \d+\s*$"), timeout=15_000)
    assert page.evaluate("window.__marker") == "same page"
    context.close()
