"""`/api/calendars` of the legacy app over real HTTP: CRUD, pages, owner rules, remote events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, Person


@pytest.fixture
def client(legacy_server: LiveServer) -> Iterator[httpx.Client]:
    with legacy_server.client() as client:
        yield client


def create_calendar(
    client: httpx.Client, person: Person, name: str = "Work", role: str = "source", **extra: Any
) -> dict[str, Any]:
    response = client.post(
        "/api/calendars", headers=person.headers, json={"name": name, "role": role, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def links(response: httpx.Response) -> dict[str, httpx.URL]:
    """rel -> URL of the response's Link header."""
    return {rel: httpx.URL(link["url"]) for rel, link in response.links.items()}


def test_create_answers_201_with_the_location_of_the_new_calendar(
    client: httpx.Client, alice: Person
) -> None:
    response = client.post(
        "/api/calendars", headers=alice.headers, json={"name": " Work ", "role": "source"}
    )
    assert response.status_code == 201
    calendar = response.json()
    assert response.headers["Location"] == f"/api/calendars/{calendar['id']}"
    assert calendar == {
        "id": calendar["id"],
        "owner_id": alice.id,
        "name": "Work",
        "role": "source",
        "provider": "local",
        "provider_id": None,
        "mailbox": None,
        "uri": "local://Work",
        "created_at": calendar["created_at"],
        "updated_at": calendar["updated_at"],
    }
    assert calendar["created_at"].endswith("+00:00")
    fetched = client.get(response.headers["Location"], headers=alice.headers)
    assert (fetched.status_code, fetched.json()) == (200, calendar)


def test_update_changes_only_the_fields_sent(client: httpx.Client, alice: Person) -> None:
    calendar = create_calendar(client, alice)
    response = client.patch(
        f"/api/calendars/{calendar['id']}", headers=alice.headers, json={"name": "Office"}
    )
    assert response.status_code == 200
    assert response.json() == {
        **calendar,
        "name": "Office",
        "uri": "local://Office",
        "updated_at": response.json()["updated_at"],
    }


def test_update_refuses_a_graph_calendar_without_provider_id(
    client: httpx.Client, alice: Person
) -> None:
    calendar = create_calendar(client, alice)
    response = client.patch(
        f"/api/calendars/{calendar['id']}", headers=alice.headers, json={"provider": "graph"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {"field": "provider_id", "message": "is required when provider is graph"}
    ]


def test_delete_answers_204_and_the_calendar_is_gone(client: httpx.Client, alice: Person) -> None:
    calendar = create_calendar(client, alice)
    response = client.delete(f"/api/calendars/{calendar['id']}", headers=alice.headers)
    assert (response.status_code, response.content) == (204, b"")
    assert "Content-Type" not in response.headers
    gone = client.get(f"/api/calendars/{calendar['id']}", headers=alice.headers)
    assert gone.status_code == 404
    assert gone.json() == {
        "error": {"code": "not_found", "message": f"calendar {calendar['id']} not found"}
    }


def test_a_calendar_used_by_a_configuration_cannot_be_deleted(
    client: httpx.Client, alice: Person
) -> None:
    source = create_calendar(client, alice)
    archive = create_calendar(client, alice, "Archive", "archive")
    response = client.post(
        "/api/archive-configs",
        headers=alice.headers,
        json={
            "name": "Nightly",
            "source_calendar_id": source["id"],
            "archive_calendar_id": archive["id"],
        },
    )
    assert response.status_code == 201
    refused = client.delete(f"/api/calendars/{source['id']}", headers=alice.headers)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "conflict"
    assert "used by an archive configuration" in refused.json()["error"]["message"]
    assert client.get(f"/api/calendars/{source['id']}", headers=alice.headers).status_code == 200


def test_list_pages_through_the_calendars_with_link_headers(
    client: httpx.Client, alice: Person
) -> None:
    ids = [create_calendar(client, alice, f"Calendar {n}")["id"] for n in range(5)]

    first = client.get("/api/calendars", headers=alice.headers, params={"per_page": 2})
    assert first.status_code == 200
    assert [c["id"] for c in first.json()["data"]] == ids[:2]
    assert first.json()["meta"] == {"page": 1, "per_page": 2, "total": 5, "pages": 3}
    assert set(links(first)) == {"first", "next", "last"}
    assert links(first)["next"].params["page"] == "2"
    assert links(first)["last"].params["page"] == "3"

    following = client.get(links(first)["next"], headers=alice.headers)
    assert [c["id"] for c in following.json()["data"]] == ids[2:4]
    assert set(links(following)) == {"first", "prev", "next", "last"}

    last = client.get(links(first)["last"], headers=alice.headers)
    assert [c["id"] for c in last.json()["data"]] == ids[4:]
    assert set(links(last)) == {"first", "prev", "last"}


def test_a_page_past_the_end_is_empty(client: httpx.Client, alice: Person) -> None:
    create_calendar(client, alice)
    for page in ("2", "99", "99999999999999999999"):
        response = client.get("/api/calendars", headers=alice.headers, params={"page": page})
        assert response.status_code == 200, response.text
        assert response.json()["data"] == []
        assert response.json()["meta"]["total"] == 1
        assert links(response)["last"].params["page"] == "1"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page": "two"}, "page"),
        ({"per_page": "201"}, "per_page"),
        ({"per_page": "0"}, "per_page"),
    ],
)
def test_a_bad_page_is_a_422_naming_the_parameter(
    client: httpx.Client, alice: Person, params: dict[str, str], field: str
) -> None:
    response = client.get("/api/calendars", headers=alice.headers, params=params)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == [field]


def test_others_calendars_are_404_and_missing_from_their_list(
    client: httpx.Client, alice: Person, bob: Person
) -> None:
    calendar = create_calendar(client, alice)
    create_calendar(client, bob, "Bob's")
    url = f"/api/calendars/{calendar['id']}"
    assert client.get(url, headers=bob.headers).status_code == 404
    assert client.patch(url, headers=bob.headers, json={"name": "Mine"}).status_code == 404
    assert client.delete(url, headers=bob.headers).status_code == 404
    bobs = client.get("/api/calendars", headers=bob.headers).json()
    assert [c["name"] for c in bobs["data"]] == ["Bob's"]
    assert client.get(url, headers=alice.headers).json()["name"] == "Work"


def test_an_admin_sees_and_manages_every_calendar(
    client: httpx.Client, admin: Person, alice: Person, bob: Person
) -> None:
    alices = create_calendar(client, alice)
    create_calendar(client, bob)
    assert client.get("/api/calendars", headers=admin.headers).json()["meta"]["total"] == 2
    url = f"/api/calendars/{alices['id']}"
    assert client.get(url, headers=admin.headers).json()["owner_id"] == alice.id
    renamed = client.patch(url, headers=admin.headers, json={"name": "Renamed by admin"})
    assert renamed.json()["owner_id"] == alice.id


def test_the_api_needs_authentication(client: httpx.Client) -> None:
    response = client.get("/api/calendars")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_remote_events_of_a_local_calendar_in_a_timezone(
    client: httpx.Client, alice: Person, bob: Person
) -> None:
    calendar = create_calendar(client, alice)
    for subject, start, end in [
        ("Night", "2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z"),
        ("Next day", "2026-03-29T22:30:00Z", "2026-03-29T23:00:00Z"),
    ]:
        response = client.post(
            "/api/appointments",
            headers=alice.headers,
            json={
                "calendar_id": calendar["id"],
                "subject": subject,
                "start": start,
                "end": end,
                "provider_event_id": subject.lower(),
            },
        )
        assert response.status_code == 201
    url = f"/api/calendars/{calendar['id']}/remote-events"
    window = {"start": "2026-03-29", "end": "2026-03-29", "tz": "Europe/Berlin"}
    response = client.get(url, headers=alice.headers, params=window)
    assert response.status_code == 200
    assert response.json() == {
        "data": [
            {
                "event_id": "night",
                "subject": "Night",
                "start": "2026-03-29T01:30:00+01:00",
                "end": "2026-03-29T03:30:00+02:00",
                "location": "",
                "categories": [],
                "is_private": False,
                "show_as": "busy",
                "importance": "normal",
                "sensitivity": "normal",
                "is_all_day": False,
                "series_id": None,
            }
        ],
        "meta": {"count": 1},
    }
    assert client.get(url, headers=bob.headers, params=window).status_code == 404
    missing = client.get(url, headers=alice.headers, params={"tz": "Europe/Berlin"})
    assert missing.status_code == 422
    assert [d["field"] for d in missing.json()["error"]["details"]] == ["start", "end"]
