"""`/api/appointments` of the legacy app over real HTTP: CRUD, windows in a timezone, pagination."""

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


def create_calendar(client: httpx.Client, person: Person, name: str = "Work") -> int:
    response = client.post(
        "/api/calendars", headers=person.headers, json={"name": name, "role": "source"}
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def create_appointment(
    client: httpx.Client,
    person: Person,
    calendar_id: int,
    subject: str,
    start: str,
    end: str,
    **extra: Any,
) -> dict[str, Any]:
    response = client.post(
        "/api/appointments",
        headers=person.headers,
        json={"calendar_id": calendar_id, "subject": subject, "start": start, "end": end, **extra},
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def subjects(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [a["subject"] for a in response.json()["data"]]


@pytest.fixture
def dst_calendar(client: httpx.Client, alice: Person) -> int:
    """Alice's calendar around Berlin's spring-forward night (2026-03-29, 02:00 -> 03:00)."""
    calendar_id = create_calendar(client, alice)
    for subject, start, end in [
        ("Berlin 28th late", "2026-03-28T23:30:00+01:00", "2026-03-28T23:45:00+01:00"),
        ("Berlin 29th first", "2026-03-29T00:30:00+01:00", "2026-03-29T00:45:00+01:00"),
        ("Across the switch", "2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00"),
        ("Berlin 29th last", "2026-03-29T23:30:00+02:00", "2026-03-29T23:45:00+02:00"),
        ("Berlin 30th first", "2026-03-30T00:30:00+02:00", "2026-03-30T00:45:00+02:00"),
    ]:
        create_appointment(client, alice, calendar_id, subject, start, end)
    return calendar_id


def test_create_answers_201_with_location_and_times_in_utc(
    client: httpx.Client, alice: Person
) -> None:
    calendar_id = create_calendar(client, alice)
    response = client.post(
        "/api/appointments",
        headers=alice.headers,
        json={
            "calendar_id": calendar_id,
            "subject": "Planning",
            "start": "2026-03-29T01:30:00+01:00",
            "end": "2026-03-29T03:30:00+02:00",
            "location": "Room 1",
            "categories": ["Work"],
        },
    )
    assert response.status_code == 201
    created = response.json()
    assert response.headers["Location"] == f"/api/appointments/{created['id']}"
    assert created["start"] == "2026-03-29T00:30:00+00:00"
    assert created["end"] == "2026-03-29T01:30:00+00:00"
    assert created["provider_event_id"].startswith("local-")
    assert {
        k: created[k]
        for k in (
            "calendar_id",
            "subject",
            "location",
            "categories",
            "is_private",
            "archived_from_id",
        )
    } == {
        "calendar_id": calendar_id,
        "subject": "Planning",
        "location": "Room 1",
        "categories": ["Work"],
        "is_private": False,
        "archived_from_id": None,
    }
    # The answer to the create is the representation every later read gives.
    fetched = client.get(response.headers["Location"], headers=alice.headers)
    assert (fetched.status_code, fetched.json()) == (200, created)


def test_update_moves_an_appointment_and_keeps_end_after_start(
    client: httpx.Client, alice: Person
) -> None:
    calendar_id = create_calendar(client, alice)
    created = create_appointment(
        client, alice, calendar_id, "Planning", "2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z"
    )
    url = f"/api/appointments/{created['id']}"
    moved = client.patch(
        url, headers=alice.headers, json={"start": "2026-05-04T11:30:00+02:00", "subject": "Moved"}
    )
    assert moved.status_code == 200
    assert (moved.json()["start"], moved.json()["end"]) == (
        "2026-05-04T09:30:00+00:00",
        "2026-05-04T10:00:00+00:00",
    )
    refused = client.patch(url, headers=alice.headers, json={"end": "2026-05-04T09:00:00Z"})
    assert refused.status_code == 422
    assert refused.json()["error"]["details"] == [
        {"field": "end", "message": "must be after start"}
    ]
    assert client.get(url, headers=alice.headers).json() == moved.json()


def test_an_event_id_used_twice_in_a_calendar_is_a_conflict(
    client: httpx.Client, alice: Person
) -> None:
    calendar_id = create_calendar(client, alice)
    times = ("2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z")
    create_appointment(client, alice, calendar_id, "One", *times, provider_event_id="evt-1")
    other = create_appointment(client, alice, calendar_id, "Two", *times)
    response = client.post(
        "/api/appointments",
        headers=alice.headers,
        json={
            "calendar_id": calendar_id,
            "subject": "Three",
            "start": times[0],
            "end": times[1],
            "provider_event_id": "evt-1",
        },
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    patched = client.patch(
        f"/api/appointments/{other['id']}",
        headers=alice.headers,
        json={"provider_event_id": "evt-1"},
    )
    assert patched.status_code == 409
    cleared = client.patch(
        f"/api/appointments/{other['id']}", headers=alice.headers, json={"provider_event_id": None}
    )
    assert cleared.status_code == 422


def test_delete_answers_204_and_the_appointment_is_gone(
    client: httpx.Client, alice: Person
) -> None:
    calendar_id = create_calendar(client, alice)
    created = create_appointment(
        client, alice, calendar_id, "x", "2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z"
    )
    url = f"/api/appointments/{created['id']}"
    response = client.delete(url, headers=alice.headers)
    assert (response.status_code, response.content) == (204, b"")
    assert client.get(url, headers=alice.headers).status_code == 404
    assert client.delete(url, headers=alice.headers).status_code == 404


def test_a_berlin_day_across_the_dst_change_is_23_hours(
    client: httpx.Client, alice: Person, dst_calendar: int
) -> None:
    response = client.get(
        "/api/appointments",
        headers=alice.headers,
        params={
            "calendar_id": dst_calendar,
            "start": "2026-03-29",
            "end": "2026-03-29",
            "tz": "Europe/Berlin",
        },
    )
    assert subjects(response) == ["Berlin 29th first", "Across the switch", "Berlin 29th last"]
    times = [(a["start"], a["end"]) for a in response.json()["data"]]
    assert times == [
        ("2026-03-29T00:30:00+01:00", "2026-03-29T00:45:00+01:00"),
        ("2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00"),
        ("2026-03-29T23:30:00+02:00", "2026-03-29T23:45:00+02:00"),
    ]


def test_the_same_dates_in_utc_select_a_different_day(
    client: httpx.Client, alice: Person, dst_calendar: int
) -> None:
    response = client.get(
        "/api/appointments",
        headers=alice.headers,
        params={"calendar_id": dst_calendar, "start": "2026-03-29", "end": "2026-03-29"},
    )
    assert subjects(response) == ["Across the switch", "Berlin 29th last", "Berlin 30th first"]
    assert response.json()["data"][0]["start"] == "2026-03-29T00:30:00+00:00"


def test_a_window_with_offsets_ignores_tz_for_its_bounds(
    client: httpx.Client, alice: Person, dst_calendar: int
) -> None:
    response = client.get(
        "/api/appointments",
        headers=alice.headers,
        params={"start": "2026-03-29T02:00:00Z", "end": "2026-03-29T22:00:00Z", "tz": "Asia/Tokyo"},
    )
    # Overlap, not containment: the appointment across the switch ends at 01:30Z.
    assert subjects(response) == ["Berlin 29th last"]
    assert response.json()["data"][0]["start"] == "2026-03-30T06:30:00+09:00"


def test_list_pages_in_start_order_and_links_keep_the_filters(
    client: httpx.Client, alice: Person
) -> None:
    calendar_id = create_calendar(client, alice)
    for hour in (13, 9, 11, 10, 12):
        create_appointment(
            client,
            alice,
            calendar_id,
            f"{hour}h",
            f"2026-05-04T{hour:02}:00:00Z",
            f"2026-05-04T{hour:02}:30:00Z",
        )
    params = {"calendar_id": str(calendar_id), "tz": "Europe/Berlin", "per_page": "2"}
    first = client.get("/api/appointments", headers=alice.headers, params=params)
    assert subjects(first) == ["9h", "10h"]
    assert first.json()["meta"] == {"page": 1, "per_page": 2, "total": 5, "pages": 3}
    rels = {rel: httpx.URL(link["url"]) for rel, link in first.links.items()}
    assert set(rels) == {"first", "next", "last"}
    assert rels["next"].path == "/api/appointments"
    assert dict(rels["next"].params) == {**params, "page": "2"}

    assert subjects(client.get(rels["next"], headers=alice.headers)) == ["11h", "12h"]
    assert subjects(client.get(rels["last"], headers=alice.headers)) == ["13h"]
    beyond = client.get("/api/appointments", headers=alice.headers, params={**params, "page": 4})
    assert subjects(beyond) == []
    assert set(beyond.links) == {"first", "prev", "last"}


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"tz": "Mars/Olympus"}, ["tz"]),
        ({"start": "yesterday"}, ["start"]),
        ({"start": "2026-03-02", "end": "2026-03-01"}, ["end"]),
        ({"calendar_id": "0", "page": "-1"}, ["calendar_id", "page"]),
        ({"end": "9999-12-31"}, ["end"]),
    ],
)
def test_a_bad_query_is_a_422_naming_each_parameter(
    client: httpx.Client, alice: Person, params: dict[str, str], fields: list[str]
) -> None:
    response = client.get("/api/appointments", headers=alice.headers, params=params)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == fields


def test_others_appointments_are_404_and_missing_from_their_list(
    client: httpx.Client, alice: Person, bob: Person
) -> None:
    alices = create_calendar(client, alice)
    created = create_appointment(
        client, alice, alices, "Alice's", "2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z"
    )
    bobs = create_calendar(client, bob)
    create_appointment(client, bob, bobs, "Bob's", "2026-05-04T09:00:00Z", "2026-05-04T10:00:00Z")
    url = f"/api/appointments/{created['id']}"
    assert client.get(url, headers=bob.headers).status_code == 404
    assert client.patch(url, headers=bob.headers, json={"subject": "x"}).status_code == 404
    assert client.delete(url, headers=bob.headers).status_code == 404
    assert subjects(client.get("/api/appointments", headers=bob.headers)) == ["Bob's"]
    by_calendar = client.get(
        "/api/appointments", headers=bob.headers, params={"calendar_id": alices}
    )
    assert by_calendar.status_code == 404
    into_hers = client.post(
        "/api/appointments",
        headers=bob.headers,
        json={
            "calendar_id": alices,
            "subject": "Intruder",
            "start": "2026-05-04T09:00:00Z",
            "end": "2026-05-04T10:00:00Z",
        },
    )
    assert into_hers.status_code == 404
    assert subjects(client.get("/api/appointments", headers=alice.headers)) == ["Alice's"]


def test_an_admin_sees_every_appointment(
    client: httpx.Client, admin: Person, alice: Person, bob: Person
) -> None:
    for person in (alice, bob):
        calendar_id = create_calendar(client, person)
        create_appointment(
            client,
            person,
            calendar_id,
            person.email,
            "2026-05-04T09:00:00Z",
            "2026-05-04T10:00:00Z",
        )
    listed = client.get("/api/appointments", headers=admin.headers)
    assert sorted(subjects(listed)) == [alice.email, bob.email]
    one = listed.json()["data"][0]
    assert client.get(f"/api/appointments/{one['id']}", headers=admin.headers).status_code == 200
