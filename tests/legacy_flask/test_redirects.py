"""Every redirect of the legacy app stays on this site, whatever `Host` the client sends."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer, Person

FORGED = {"Host": "evil.example"}


@pytest.fixture
def client(legacy_server: LiveServer) -> Iterator[httpx.Client]:
    with legacy_server.client(follow_redirects=False) as client:
        yield client


def location(response: httpx.Response) -> str:
    assert 300 <= response.status_code < 400, (response.status_code, response.text[:200])
    value = response.headers["Location"]
    assert "evil.example" not in value and not value.startswith("//"), value
    assert value.startswith("/"), value
    return value


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/api//calendars?page=2", "/api/calendars?page=2"),
        ("/api/calendars/1//remote-events", "/api/calendars/1/remote-events"),
        ("/static//x.css", "/static/x.css"),
    ],
)
def test_routing_redirects_ignore_a_forged_host(
    client: httpx.Client, alice: Person, path: str, target: str
) -> None:
    response = client.get(path, headers={**FORGED, **alice.headers})
    assert response.status_code == 308
    assert location(response) == target


def test_page_and_sign_in_redirects_ignore_a_forged_host(
    client: httpx.Client, alice: Person
) -> None:
    assert location(client.get("/calendars", headers=FORGED)) == "/login?next=/calendars"
    page = client.get("/login", headers=FORGED)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = {"csrf_token": token.group(1), "email": alice.email, "password": alice.password}
    assert location(client.post("/login", data=form, headers=FORGED)) == "/"
    confirm = client.get("/logout", headers=FORGED)
    token = re.search(r'name="csrf_token" value="([^"]+)"', confirm.text)
    assert token is not None
    assert location(
        client.post("/logout", data={"csrf_token": token.group(1)}, headers=FORGED)
    ) == ("/login")


def test_created_resources_are_located_by_path(client: httpx.Client, alice: Person) -> None:
    response = client.post(
        "/api/calendars",
        json={"name": "Team", "role": "source"},
        headers={**FORGED, **alice.headers},
    )
    assert response.status_code == 201
    assert response.headers["Location"] == f"/api/calendars/{response.json()['id']}"
