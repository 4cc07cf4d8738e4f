"""The archiving pages over real HTTP: action items resolved in one click, the run form with date
phrases, the audit log for admins only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, Person


def form_token(page: httpx.Response) -> str:
    assert page.status_code == 200, page.text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def sign_in(client: httpx.Client, person: Person) -> httpx.Client:
    token = form_token(client.get("/login"))
    response = client.post(
        "/login", data={"csrf_token": token, "email": person.email, "password": person.password}
    )
    assert response.status_code == 302, response.text
    return client


@pytest.fixture
def signed_in(legacy_server: LiveServer, alice: Person) -> Iterator[httpx.Client]:
    with legacy_server.client() as client:
        yield sign_in(client, alice)


def create(client: httpx.Client, person: Person, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, headers=person.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)


def at(clock: str) -> str:
    return f"{YESTERDAY.isoformat()}T{clock}:00Z"


@pytest.fixture
def overlap(legacy_server: LiveServer, alice: Person) -> dict[str, Any]:
    """Alice's configuration over yesterday's two overlapping meetings, run once: one open item."""
    with legacy_server.client() as api:
        source = create(api, alice, "/api/calendars", {"uri": "local://Work", "role": "source"})
        create(api, alice, "/api/calendars", {"uri": "local://Archive", "role": "archive"})
        for subject, start, end in (
            ("Client call", "10:00", "11:00"),
            ("Design review", "10:30", "11:30"),
        ):
            create(
                api,
                alice,
                "/api/appointments",
                {
                    "calendar_id": source["id"],
                    "subject": subject,
                    "start": at(start),
                    "end": at(end),
                },
            )
        config = create(
            api,
            alice,
            "/api/archive-configs",
            {
                "name": "Work",
                "source_calendar": "local://work",
                "archive_calendar": "local://archive",
            },
        )
        run = api.post(f"/api/archive-configs/{config['id']}/run", headers=alice.headers)
        assert run.status_code == 201 and run.json()["details"]["held"], run.text
    return config


def test_an_open_item_is_resolved_in_one_click_and_archived(
    signed_in: httpx.Client, overlap: dict[str, Any], alice: Person
) -> None:
    page = signed_in.get("/action-items")
    assert "Keep only “Client call”" in page.text and "Accept recommendation" in page.text
    match = re.search(r'action="(/action-items/(\d+)/resolve)"', page.text)
    assert match, page.text
    response = signed_in.post(
        match.group(1), data={"csrf_token": form_token(page), "keep": "__nothing__"}
    )
    assert response.status_code == 302
    assert "not an appointment of action item" in unescape(signed_in.get("/action-items").text)
    page = signed_in.get("/action-items")
    response = signed_in.post(
        match.group(1), data={"csrf_token": form_token(page), "keep_all": "1"}
    )
    assert response.status_code == 302
    page = signed_in.get(response.headers["Location"])
    assert (
        f"Action item {match.group(2)} resolved: kept Client call, Design review; 2 archived."
        in unescape(page.text)
    )
    assert "No open action items." in page.text
    assert "Resolved by alice@example.com" in signed_in.get("/action-items?state=resolved").text
    archived = signed_in.get(
        "/api/appointments", params={"calendar_id": overlap["archive_calendar_id"]}
    ).json()["data"]
    assert [a["subject"] for a in archived] == ["Client call", "Design review"]


def test_resolving_without_the_csrf_token_is_refused(
    signed_in: httpx.Client, overlap: dict[str, Any]
) -> None:
    page = signed_in.get("/action-items")
    path = re.search(r'action="(/action-items/\d+/resolve)"', page.text)
    assert path
    assert signed_in.post(path.group(1), data={"keep_all": "1"}).status_code == 400
    assert "No open action items." not in signed_in.get("/action-items").text


def test_the_run_form_reads_date_phrases_and_the_mode(
    signed_in: httpx.Client, overlap: dict[str, Any]
) -> None:
    url = f"/archive-configs/{overlap['id']}/run"
    page = signed_in.get(url)
    assert "last 7 days" in page.text and '<option value="replace"' in page.text
    bad = signed_in.post(url, data={"csrf_token": form_token(page), "start": "someday"})
    assert bad.status_code == 422
    assert "is not a date or a date phrase" in unescape(bad.text)
    response = signed_in.post(
        url, data={"csrf_token": form_token(page), "start": "yesterday", "mode": "replace"}
    )
    assert response.status_code == 302
    log = signed_in.get(response.headers["Location"])
    assert "Replace run: added 0, updated 0, removed 0, unchanged 0" in unescape(log.text)
    assert "2 waiting for a decision" in unescape(log.text)
    entry = signed_in.get("/api/action-log", params={"config_id": overlap["id"]}).json()["data"][0]
    assert entry["mode"] == "replace"
    assert entry["window_start"] == f"{YESTERDAY.isoformat()}T00:00:00+00:00"
    assert entry["window_end"] == f"{(YESTERDAY + timedelta(days=1)).isoformat()}T00:00:00+00:00"


def test_the_audit_page_is_for_admins(
    legacy_server: LiveServer, signed_in: httpx.Client, overlap: dict[str, Any], admin: Person
) -> None:
    assert signed_in.get("/audit").status_code == 403
    assert 'href="/audit"' not in signed_in.get("/").text
    with legacy_server.client() as client:
        sign_in(client, admin)
        page = client.get(
            "/audit", params={"actor": "alice@example.com", "action": "archive_config."}
        )
        assert page.status_code == 200
        assert "archive_config.create" in page.text and "calendar.create" not in page.text
        assert (
            client.get("/audit", params={"per_page": "0"}, follow_redirects=True).status_code == 200
        )
