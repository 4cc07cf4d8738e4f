"""The server-rendered pages: render when signed in, send visitors to /login, and "Run now"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html import unescape
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, Person

TODAY = datetime.now(UTC).date().isoformat()
PAGES = {
    "/": "Welcome, alice@example.com",
    "/calendars": "<h1>Calendars</h1>",
    "/appointments": "<h1>Appointments</h1>",
    "/archive-configs": "<h1>Archive configurations</h1>",
    "/action-log": "<h1>Action log",
}


@pytest.fixture
def browser(legacy_server: LiveServer) -> Iterator[httpx.Client]:
    """A cookie-keeping client, as a browser is."""
    with legacy_server.client() as client:
        yield client


def csrf_token(page: httpx.Response) -> str:
    assert page.status_code == 200, page.text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


@pytest.fixture
def signed_in(browser: httpx.Client, alice: Person) -> httpx.Client:
    """Alice's browser after signing in through the /login form."""
    token = csrf_token(browser.get("/login"))
    response = browser.post(
        "/login", data={"csrf_token": token, "email": alice.email, "password": alice.password}
    )
    assert response.status_code == 302, response.text
    return browser


def create(client: httpx.Client, person: Person, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, headers=person.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def config(legacy_server: LiveServer, alice: Person) -> dict[str, Any]:
    """Alice's configuration (the last 7 UTC days) over a calendar with one appointment today."""
    with legacy_server.client() as api:
        source = create(api, alice, "/api/calendars", {"name": "Work", "role": "source"})
        archive = create(api, alice, "/api/calendars", {"name": "Vault", "role": "archive"})
        create(
            api,
            alice,
            "/api/appointments",
            {
                "calendar_id": source["id"],
                "subject": "Quarterly <review>",
                "start": f"{TODAY}T09:00:00Z",
                "end": f"{TODAY}T10:00:00Z",
            },
        )
        return create(
            api,
            alice,
            "/api/archive-configs",
            {
                "name": "Nightly",
                "source_calendar_id": source["id"],
                "archive_calendar_id": archive["id"],
            },
        )


@pytest.mark.parametrize(("path", "marker"), PAGES.items())
def test_each_page_renders_for_a_signed_in_user(
    signed_in: httpx.Client, path: str, marker: str
) -> None:
    response = signed_in.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert marker in response.text
    assert "alice@example.com" in response.text  # the header names who is signed in
    assert "Sign out" in response.text


@pytest.mark.parametrize("path", [*PAGES, "/calendars?page=2"])
def test_each_page_sends_a_visitor_to_login_and_back(browser: httpx.Client, path: str) -> None:
    response = browser.get(path)
    assert response.status_code == 302
    location = httpx.URL(response.headers["Location"])
    assert location.path == "/login"
    assert location.params["next"] == path


def test_pages_show_the_users_data(signed_in: httpx.Client, config: dict[str, Any]) -> None:
    calendars = signed_in.get("/calendars").text
    assert "Work" in calendars and "Vault" in calendars
    configs = signed_in.get("/archive-configs").text
    assert "Nightly" in configs and "Run now" in configs
    appointments = signed_in.get(
        "/appointments", params={"start": TODAY, "end": TODAY, "tz": "Asia/Kolkata"}
    ).text
    assert "Quarterly &lt;review&gt;" in appointments  # escaped, never raw HTML
    assert f"{TODAY}T14:30:00+05:30" in appointments
    home = signed_in.get("/").text
    assert "2 calendars" in home and "1 archive configurations" in home


def test_a_bad_appointments_filter_redirects_with_a_message(signed_in: httpx.Client) -> None:
    response = signed_in.get("/appointments", params={"tz": "Mars/Olympus"})
    assert (response.status_code, response.headers["Location"]) == (302, "/appointments")
    page = signed_in.get("/appointments")
    assert "unknown time zone" in unescape(page.text)


def test_run_now_archives_and_shows_the_result_in_the_action_log(
    signed_in: httpx.Client, config: dict[str, Any]
) -> None:
    page = signed_in.get("/archive-configs")
    run_url = f"/archive-configs/{config['id']}/run"
    assert f'action="{run_url}"' in page.text
    response = signed_in.post(run_url, data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    location = httpx.URL(response.headers["Location"])
    assert (location.path, location.params["config_id"]) == ("/action-log", str(config["id"]))
    log = signed_in.get(location)
    assert log.status_code == 200
    assert (
        "Append run: added 1, updated 0, removed 0, unchanged 0, skipped 0, 0 overlapping."
        in log.text
    )
    assert f"Action log of configuration {config['id']}" in log.text
    assert "success" in log.text


def test_run_now_without_the_csrf_token_is_400_and_runs_nothing(
    signed_in: httpx.Client, config: dict[str, Any]
) -> None:
    run_url = f"/archive-configs/{config['id']}/run"
    assert signed_in.post(run_url).status_code == 400
    assert signed_in.post(run_url, data={"csrf_token": "forged"}).status_code == 400
    assert "No archive runs yet." in signed_in.get("/action-log").text


def test_run_now_of_someone_elses_configuration_fails_visibly(
    legacy_server: LiveServer, config: dict[str, Any], bob: Person
) -> None:
    with legacy_server.client() as bobs:
        token = csrf_token(bobs.get("/login"))
        bobs.post(
            "/login", data={"csrf_token": token, "email": bob.email, "password": bob.password}
        )
        page = bobs.get("/archive-configs")
        assert "No archive configurations yet." in page.text
        response = bobs.post(
            f"/archive-configs/{config['id']}/run", data={"csrf_token": csrf_token(page)}
        )
    # Answered like every other form given another user's id: 404, before the input is read.
    assert response.status_code == 404
    assert "Error 404" in response.text
    assert f"archive configuration {config['id']} not found" in response.text


def test_run_now_needs_a_signed_in_user(browser: httpx.Client, config: dict[str, Any]) -> None:
    response = browser.post(f"/archive-configs/{config['id']}/run")
    assert response.status_code == 302
    assert httpx.URL(response.headers["Location"]).path == "/login"
