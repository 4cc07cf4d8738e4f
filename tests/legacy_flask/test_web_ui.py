"""The web UI as people use it, in a real headless Chromium against a real gateway process (and
a fake Graph server for the remote calendars): every form, its errors, the keyboard alone, a
phone's screen, colour contrast. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import log_in, shot
from tests.conftest import Person, ServerProcess
from tests.fakes.graph_server import FakeGraphServer

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)
# Every text on a page against the background it is drawn on (WCAG 2 AA: 4.5:1, large 3:1).
CONTRAST_SCRIPT = """
() => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const failures = [];
  let checked = 0;
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    if (!own || style.visibility === "hidden" || style.display === "none") continue;
    if (!el.getClientRects().length || el.closest(".visually-hidden")) continue;
    const fg = rgb(style.color).slice(0, 3), bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    checked += 1;
    if (ratio < needed) failures.push(`${el.tagName} "${el.textContent.trim().slice(0, 40)}" ` +
      `${style.color} on rgb(${bg}) = ${ratio.toFixed(2)}`);
  }
  return { checked, failures };
}
"""


@pytest.fixture
def graph(alice: Person) -> Iterator[FakeGraphServer]:
    """Alice's Microsoft 365 mailbox: a calendar with two overlapping meetings yesterday."""
    with FakeGraphServer(base_path="/v1.0") as server:
        server.add_calendar("AAMk-work", alice.email, name="Work calendar")
        server.add_calendar("AAMk-hol", alice.email, name="Holidays", can_edit=False)
        for subject, start, end in (
            ("Client call", "09:00", "10:00"),
            ("Review", "09:30", "11:00"),
        ):
            server.add_event(
                "AAMk-work",
                subject=subject,
                start=f"{YESTERDAY}T{start}:00",
                end=f"{YESTERDAY}T{end}:00",
            )
        yield server


@pytest.fixture
def server(
    environ: dict[str, str], spawn: Callable[..., ServerProcess], graph: FakeGraphServer
) -> ServerProcess:
    Path(environ["AA_FLAGS_FILE"]).write_text("version: 1\nroutes: {}\n")
    return spawn({**environ, "AA_GRAPH_URL": graph.url})


# Every field a person can fill has a label (or an aria-label) naming it.
UNLABELLED_SCRIPT = """
() => [...document.querySelectorAll("input, select, textarea")]
  .filter((el) => el.type !== "hidden")
  .filter((el) => !(el.labels && [...el.labels].some((l) => l.textContent.trim()))
                  && !el.getAttribute("aria-label"))
  .map((el) => el.outerHTML.slice(0, 80))
"""


def check_contrast(page: Page) -> None:
    """Colour contrast of every text on the page, and a label on every field."""
    result: dict[str, Any] = page.evaluate(CONTRAST_SCRIPT)
    assert result["checked"] > 5
    assert result["failures"] == [], result["failures"]
    assert page.evaluate(UNLABELLED_SCRIPT) == []


def choose(page: Page, select: str, starting: str) -> None:
    """Pick the option of `select` whose text starts with `starting`."""
    option = page.locator(f"{select} option", has_text=re.compile("^" + re.escape(starting)))
    page.select_option(select, value=option.get_attribute("value"))


def flash(page: Page) -> Any:
    return expect(page.locator(".flash").last)


def test_a_new_user_sets_up_archiving_in_the_browser(
    browser: Browser, server: ServerProcess, alice: Person
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Tokyo")
    page = context.new_page()
    log_in(page, server.url, alice, "/")
    # The script reports the browser's zone; the page comes back in it, the zone named.
    expect(page.locator("#display-zone")).to_have_text("Asia/Tokyo")
    expect(page.locator(".zone-note")).to_contain_text("(your browser's)")
    check_contrast(page)
    shot(page, "ui-01-home-empty")

    # The empty home page leads to the calendars form, which lists the remote calendars.
    page.click("#next-step a")
    expect(page).to_have_url(re.compile(r"/calendars#add-calendar$"))
    expect(page.locator("#empty-calendars")).to_contain_text("Add your first calendar below")
    expect(page.locator("#remote-calendars")).to_contain_text("Work calendar")
    # A read-only remote calendar cannot become an archive.
    holidays = page.locator("tr[data-remote='AAMk-hol']")
    expect(holidays.get_by_role("button", name="Add Holidays as an archive")).to_have_count(0)
    shot(page, "ui-02-calendars-empty")
    page.get_by_role("button", name="Add Work calendar as a source").click()
    flash(page).to_contain_text("Calendar “Work calendar” added as source")
    expect(page.locator("tr[data-remote='AAMk-work']")).to_contain_text("added")

    # A local archive by name; first without one, to see the message next to the field.
    page.select_option("#cal-role", "archive")
    page.click("#calendar-form button[type=submit]")
    expect(page.locator("#cal-name-error")).to_have_text("must not be empty")
    expect(page.locator("#cal-name")).to_have_attribute("aria-invalid", "true")
    page.fill("#cal-uri", "msgraph://me/calendars/Nope")
    page.click("#calendar-form button[type=submit]")
    expect(page.locator("#cal-uri-error")).to_contain_text("Nope")
    shot(page, "ui-03-calendar-errors")
    page.fill("#cal-uri", "")
    page.fill("#cal-name", "Vault")
    page.select_option("#cal-role", "archive")
    page.click("#calendar-form button[type=submit]")
    flash(page).to_contain_text("Calendar “Vault” added as archive (local://Vault)")
    row = page.locator("tr", has_text="Vault")
    row.get_by_label("New name of Vault").fill("Archive vault")
    row.get_by_role("button", name="Rename").click()
    flash(page).to_contain_text("renamed to “Archive vault”")
    check_contrast(page)
    shot(page, "ui-04-calendars")

    # Home now leads to a new configuration.
    page.goto(server.url + "/")
    expect(page.locator("#next-step")).to_contain_text("create an archive configuration")
    page.click("#next-step a")
    expect(page).to_have_url(re.compile(r"/archive-configs/new$"))
    expect(page.locator("#f-timezone")).to_have_value("Asia/Tokyo")
    page.fill("#f-name", "Work archive")
    choose(page, "#f-source_calendar_id", "Work calendar")
    choose(page, "#f-archive_calendar_id", "Archive vault")
    page.fill("#f-timezone", "UTC")
    page.fill("#f-days_back", "lots")
    page.fill("#f-excluded_categories", "Private, Lunch")
    page.click("#config-form button[type=submit]")
    expect(page.locator("#f-days_back-error")).to_contain_text("must be a whole number")
    expect(page.locator("#form-problems")).to_be_visible()
    expect(page.locator("#f-name")).to_have_value("Work archive")  # what was typed stays
    shot(page, "ui-05-config-error")
    page.fill("#f-days_back", "3")
    page.click("#config-form button[type=submit]")
    flash(page).to_contain_text("Archive configuration “Work archive” created.")
    config_row = page.locator("tr", has_text="Work archive")
    expect(config_row).to_contain_text("3 days back, 0 forward; excluding Private, Lunch")
    config_row.get_by_role("button", name="Pause Work archive").click()
    flash(page).to_contain_text("is paused")
    expect(page.locator("tr", has_text="Work archive")).to_contain_text("paused")
    page.get_by_role("button", name="Activate Work archive").click()
    flash(page).to_contain_text("is active")
    page.get_by_role("link", name="Edit Work archive").click()
    page.fill("#f-days_forward", "1")
    page.click("#config-form button[type=submit]")
    flash(page).to_contain_text("saved")
    expect(page.locator("tr", has_text="Work archive")).to_contain_text("3 days back, 1 forward")
    check_contrast(page)
    shot(page, "ui-06-configs")

    # Run it for a range typed as the command line reads it; a bad phrase first.
    page.get_by_role("link", name="Run Work archive for a date range").click()
    page.fill("#start", "someday")
    page.click("#run-form button[type=submit]")
    expect(page.locator("#run-error")).to_contain_text("someday")
    expect(page.locator("#start-picker")).to_be_attached()  # the script's date picker
    page.fill("#start", "yesterday")
    page.fill("#end", "yesterday")
    page.click("#run-form button[type=submit]")
    flash(page).to_contain_text("2 waiting for a decision (see Action items)")
    expect(page.locator("#action-log")).to_contain_text("success")
    shot(page, "ui-07-action-log")

    # The week of yesterday shows both meetings, marked as overlapping, in Tokyo time.
    page.goto(f"{server.url}/appointments/week?week={YESTERDAY.isoformat()}")
    day = page.locator(f"section[aria-labelledby='day-{YESTERDAY.isoformat()}']")
    # The archive copy is written only after the decision; the source is remote, so the
    # week lists appointments of local calendars: none yet.
    expect(page.locator("#week")).to_be_visible()
    expect(day).to_contain_text("Nothing")

    # Resolve the action item: keep both.
    page.get_by_role("link", name="Action items").click()
    expect(page.locator(".item")).to_contain_text("Client call")
    expect(page.locator(".item")).to_contain_text(_local("09:00", "10:00", "Asia/Tokyo"))
    shot(page, "ui-08-action-item")
    page.locator(".item").get_by_role("button", name="Keep all").click()
    flash(page).to_contain_text("resolved: kept Client call, Review; 2 archived.")

    page.goto(f"{server.url}/appointments/week?week={YESTERDAY.isoformat()}")
    meetings = day.locator(".appt.overlap")
    expect(meetings).to_have_count(2)
    expect(meetings.first).to_contain_text(_local("09:00", "10:00", "Asia/Tokyo"))
    expect(meetings.first).to_contain_text("Overlaps Review")
    check_contrast(page)
    shot(page, "ui-09-week")

    # An API token: shown once, works, revoked, stops working.
    page.get_by_role("link", name="API tokens").click()
    expect(page.locator("#tokens tbody tr")).to_have_count(1)  # the one she was given
    page.fill("#token-name", "nightly export")
    page.fill("#token-expires_in_days", "0")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#token-expires_in_days-error")).to_contain_text("at least 1")
    page.fill("#token-expires_in_days", "30")
    page.click("#token-form button[type=submit]")
    secret = page.locator("#token-value").inner_text().strip()
    assert secret.startswith("aa_")
    shot(page, "ui-10-token-created")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{server.url}/api/me", headers=bearer).json()["email"] == alice.email
    page.goto(f"{server.url}/tokens")
    expect(page.locator("#token-value")).to_have_count(0)  # never shown again
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke nightly export").click()
    flash(page).to_contain_text("revoked")
    assert httpx.get(f"{server.url}/api/me", headers=bearer).status_code == 401

    # A zone of her own, which then wins over the browser's.
    page.get_by_role("link", name="Settings").click()
    page.fill("#f-timezone", "Mars/Olympus")
    page.click("#settings-form button[type=submit]")
    expect(page.locator("#f-timezone-error")).to_contain_text("unknown time zone 'Mars/Olympus'")
    page.fill("#f-timezone", "America/New_York")
    page.click("#settings-form button[type=submit]")
    flash(page).to_contain_text("Times are now shown in America/New_York.")
    expect(page.locator("#display-zone")).to_have_text("America/New_York")
    page.goto(f"{server.url}/action-items?state=resolved")
    expect(page.locator(".item")).to_contain_text(_local("09:00", "10:00", "America/New_York"))
    shot(page, "ui-11-settings")
    context.close()


def _local(start: str, end: str, zone_name: str) -> str:
    """Yesterday's `start`-`end` (UTC) as pages show it in `zone_name`: `Tue 3 Oct, 18:00-19:00`."""
    zone = ZoneInfo(zone_name)
    first = datetime.fromisoformat(f"{YESTERDAY}T{start}:00+00:00").astimezone(zone)
    last = datetime.fromisoformat(f"{YESTERDAY}T{end}:00+00:00").astimezone(zone)
    return f"{first:%a} {first.day} {first:%b}, {first:%H:%M}-{last:%H:%M}"


def test_an_admin_creates_promotes_and_disables_a_user(
    browser: Browser, server: ServerProcess, admin: Person
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, server.url, admin, "/admin/users")
    expect(page).to_have_url(f"{server.url}/admin/users")
    page.fill("#user-email", "dana@example.com")
    page.fill("#user-password", "short")
    page.click("#user-form button[type=submit]")
    expect(page.locator("#user-password-error")).to_contain_text("too short")
    expect(page.locator("#user-email")).to_have_value("dana@example.com")
    page.fill("#user-password", "dana-password")
    page.fill("#user-name", "Dana")
    page.click("#user-form button[type=submit]")
    flash(page).to_contain_text("dana@example.com can now sign in as a user.")
    page.fill("#user-email", "dana@example.com")
    page.fill("#user-password", "another-password")
    page.click("#user-form button[type=submit]")
    expect(page.locator("#user-email-error")).to_contain_text("already exists")
    page.get_by_role("button", name="Make admin: dana@example.com").click()
    flash(page).to_contain_text("dana@example.com is now an admin.")
    check_contrast(page)
    shot(page, "ui-12-users")

    # Dana signs in elsewhere and makes a token; disabling her ends both.
    other = browser.new_context().new_page()
    dana = Person(0, "dana@example.com", "dana-password", "", True)
    log_in(other, server.url, dana, "/tokens")
    expect(other.get_by_role("link", name="Users")).to_be_visible()  # she is an admin now
    other.fill("#token-name", "dana's script")
    other.click("#token-form button[type=submit]")
    secret = other.locator("#token-value").inner_text().strip()
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Disable dana@example.com").click()
    flash(page).to_contain_text("signed out everywhere, 1 API token(s) revoked.")
    expect(page.locator("tr", has_text="dana@example.com")).to_contain_text("disabled")
    other.goto(f"{server.url}/tokens")
    expect(other).to_have_url(re.compile(r"/login\?next=/tokens$"))
    bearer = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{server.url}/api/me", headers=bearer).status_code == 401
    other.fill("input[name=email]", dana.email)
    other.fill("input[name=password]", dana.password)
    other.click("button[type=submit]")
    expect(other.locator(".flash.error")).to_contain_text("this account is disabled")
    page.get_by_role("button", name="Enable dana@example.com").click()
    flash(page).to_contain_text("can sign in again")
    context.close()
    other.context.close()


def test_a_token_is_made_with_the_keyboard_alone(
    browser: Browser, server: ServerProcess, alice: Person
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server.url, alice, "/tokens")
    expect(page).to_have_url(f"{server.url}/tokens")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")  # skips the navigation
    seen = []
    for _ in range(20):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
        if seen[-1] == "token-name":
            break
    assert seen[-1] == "token-name", seen
    # Focus is visible: an outline drawn around the focused field.
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.type("keyboard only")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "token-expires_in_days"
    page.keyboard.type("7")
    page.keyboard.press("Enter")
    expect(page.locator("#new-token")).to_contain_text("Token “keyboard only” created")
    expect(page.locator("tr", has_text="keyboard only")).to_be_visible()
    shot(page, "ui-13-keyboard-token")
    page.close()


@pytest.mark.parametrize("path", ["/calendars", "/archive-configs/new", "/appointments/week"])
def test_pages_fit_a_phone_screen(
    browser: Browser, server: ServerProcess, alice: Person, path: str
) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 740}, is_mobile=True)
    log_in(page, server.url, alice, path)
    expect(page.locator("h1")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{path} is {overflow}px wider than the phone's screen"
    check_contrast(page)
    shot(page, "ui-phone" + path.replace("/", "-"))
    page.close()


def test_pages_work_without_javascript(
    browser: Browser, server: ServerProcess, alice: Person
) -> None:
    context = browser.new_context(java_script_enabled=False, timezone_id="Asia/Tokyo")
    page = context.new_page()
    log_in(page, server.url, alice, "/calendars")
    expect(page.locator("#display-zone")).to_have_text("UTC")  # no script, no browser zone
    page.fill("#cal-name", "Plain")
    page.select_option("#cal-role", "source")
    page.click("#calendar-form button[type=submit]")
    flash(page).to_contain_text("Calendar “Plain” added as source")
    page.get_by_role("button", name="Delete Plain").click()  # no confirm() without a script
    flash(page).to_contain_text("deleted")
    expect(page.locator("#empty-calendars")).to_be_visible()
    context.close()
