"""Archive configurations, archive runs and the action log of the legacy app, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, Person

WINDOW = {"start": "2026-05-04T00:00:00Z", "end": "2026-05-05T00:00:00Z"}


@pytest.fixture
def client(legacy_server: LiveServer) -> Iterator[httpx.Client]:
    with legacy_server.client() as client:
        yield client


def create(client: httpx.Client, person: Person, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, headers=person.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Setup:
    source: int
    archive: int
    config: dict[str, Any]

    @property
    def run_url(self) -> str:
        return f"/api/archive-configs/{self.config['id']}/run"


@pytest.fixture
def setup(client: httpx.Client, alice: Person) -> Setup:
    """Alice's day of events (two overlap, one private, one excluded) and her configuration."""
    source = create(client, alice, "/api/calendars", {"name": "Work", "role": "source"})["id"]
    archive = create(client, alice, "/api/calendars", {"name": "Archive", "role": "archive"})["id"]
    for subject, start, end, extra in [
        ("Standup", "09:00", "09:15", {}),
        ("Planning", "10:00", "11:00", {}),
        ("Review", "10:30", "11:30", {"categories": ["Work"]}),
        ("Doctor", "12:00", "13:00", {"is_private": True}),
        ("Gym", "18:00", "19:00", {"categories": ["personal"]}),
        ("Next day", "23:30", "23:45", {}),
    ]:
        create(
            client,
            alice,
            "/api/appointments",
            {
                "calendar_id": source,
                "subject": subject,
                "start": f"2026-05-04T{start}:00Z",
                "end": f"2026-05-04T{end}:00Z",
                **extra,
            },
        )
    config = create(
        client,
        alice,
        "/api/archive-configs",
        {
            "name": "Nightly",
            "source_calendar_id": source,
            "archive_calendar_id": archive,
            "excluded_categories": ["Personal"],
            "timezone": "Europe/Berlin",
            # Overlaps archived as they are (tests/legacy_flask/test_archive_domain.py covers
            # the overlap rules and action items).
            "allow_overlaps": True,
        },
    )
    return Setup(source, archive, config)


def counts(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ("archived", "skipped", "duplicate", "overlap", "status")}


# -- configurations ----------------------------------------------------------------------------


def test_create_answers_201_with_location_and_defaults(
    client: httpx.Client, alice: Person, setup: Setup
) -> None:
    response = client.post(
        "/api/archive-configs",
        headers=alice.headers,
        json={
            "name": "Weekly",
            "source_calendar_id": setup.source,
            "archive_calendar_id": setup.archive,
        },
    )
    assert response.status_code == 201
    config = response.json()
    assert response.headers["Location"] == f"/api/archive-configs/{config['id']}"
    assert {k: v for k, v in config.items() if k not in ("id", "created_at", "updated_at")} == {
        "owner_id": alice.id,
        "name": "Weekly",
        "source_calendar_id": setup.source,
        "archive_calendar_id": setup.archive,
        "source_calendar": "local://Work",
        "archive_calendar": "local://Archive",
        "timezone": "UTC",
        "is_active": True,
        "schedule": None,
        "days_back": 7,
        "days_forward": 0,
        "excluded_categories": [],
        "allow_overlaps": False,
        "mode": "append",
        "purpose": "general",
        "timesheet_categories": [],
        # Alice's first configuration ("Nightly") is her default.
        "is_default": False,
    }
    assert client.get(response.headers["Location"], headers=alice.headers).json() == config


def test_update_list_and_delete_a_configuration(
    client: httpx.Client, alice: Person, setup: Setup
) -> None:
    url = f"/api/archive-configs/{setup.config['id']}"
    updated = client.patch(url, headers=alice.headers, json={"is_active": False, "days_back": 30})
    assert updated.status_code == 200
    assert (updated.json()["is_active"], updated.json()["days_back"]) == (False, 30)

    listed = client.get("/api/archive-configs", headers=alice.headers)
    assert listed.json()["data"] == [updated.json()]
    assert listed.json()["meta"] == {"page": 1, "per_page": 50, "total": 1, "pages": 1}
    assert set(listed.links) == {"first", "last"}

    deleted = client.delete(url, headers=alice.headers)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert client.get(url, headers=alice.headers).status_code == 404


def test_a_configuration_needs_two_different_calendars_of_its_owner(
    client: httpx.Client, alice: Person, bob: Person, setup: Setup
) -> None:
    same = client.post(
        "/api/archive-configs",
        headers=alice.headers,
        json={
            "name": "Loop",
            "source_calendar_id": setup.source,
            "archive_calendar_id": setup.source,
        },
    )
    assert same.status_code == 422
    assert same.json()["error"]["details"] == [
        {"field": "archive_calendar_id", "message": "must differ from source_calendar_id"}
    ]

    bobs = create(client, bob, "/api/calendars", {"name": "Bob", "role": "archive"})["id"]
    foreign = client.post(
        "/api/archive-configs",
        headers=bob.headers,
        json={"name": "Steal", "source_calendar_id": setup.source, "archive_calendar_id": bobs},
    )
    assert foreign.status_code == 422
    assert foreign.json()["error"]["details"] == [
        {"field": "source_calendar_id", "message": f"calendar {setup.source} not found"}
    ]

    swapped = client.patch(
        f"/api/archive-configs/{setup.config['id']}",
        headers=alice.headers,
        json={"archive_calendar_id": setup.source},
    )
    assert swapped.status_code == 422


def test_others_configurations_are_404_and_an_admin_sees_all(
    client: httpx.Client, admin: Person, alice: Person, bob: Person, setup: Setup
) -> None:
    url = f"/api/archive-configs/{setup.config['id']}"
    assert client.get(url, headers=bob.headers).status_code == 404
    assert client.patch(url, headers=bob.headers, json={"name": "x"}).status_code == 404
    assert client.delete(url, headers=bob.headers).status_code == 404
    assert client.post(setup.run_url, headers=bob.headers, json=WINDOW).status_code == 404
    assert client.get("/api/archive-configs", headers=bob.headers).json()["data"] == []
    assert client.get(url, headers=admin.headers).json()["owner_id"] == alice.id
    listed = client.get("/api/archive-configs", headers=admin.headers).json()
    assert listed["meta"]["total"] == 1


# -- runs ------------------------------------------------------------------------------------------


def test_a_run_archives_and_skips_private_and_excluded_events(
    client: httpx.Client, alice: Person, setup: Setup
) -> None:
    response = client.post(setup.run_url, headers=alice.headers, json=WINDOW)
    assert response.status_code == 201
    entry = response.json()
    assert counts(entry) == {
        "archived": 4,
        "skipped": 2,
        "duplicate": 0,
        "overlap": 2,
        "status": "success",
    }
    assert entry["details"] == {
        "overlaps": [
            [_event_id(client, alice, setup, "Planning"), _event_id(client, alice, setup, "Review")]
        ],
        "events_read": 6,
        "yielded": [],
        "declined": [],
        "held": [],
        "action_items": [],
    }
    assert (entry["window_start"], entry["window_end"]) == (
        "2026-05-04T00:00:00+00:00",
        "2026-05-05T00:00:00+00:00",
    )
    assert (entry["config_id"], entry["actor"], entry["errors"]) == (
        setup.config["id"],
        alice.email,
        [],
    )

    copies = client.get(
        "/api/appointments", headers=alice.headers, params={"calendar_id": setup.archive}
    ).json()["data"]
    assert [c["subject"] for c in copies] == ["Standup", "Planning", "Review", "Next day"]
    assert all(c["archived_from_id"] is not None for c in copies)


def _event_id(client: httpx.Client, alice: Person, setup: Setup, subject: str) -> str:
    listed = client.get(
        "/api/appointments", headers=alice.headers, params={"calendar_id": setup.source}
    ).json()["data"]
    return next(a["provider_event_id"] for a in listed if a["subject"] == subject)


def test_second_run_archives_nothing_new(client: httpx.Client, alice: Person, setup: Setup) -> None:
    first = client.post(setup.run_url, headers=alice.headers, json=WINDOW).json()
    second = client.post(setup.run_url, headers=alice.headers, json=WINDOW)
    assert second.status_code == 201
    assert counts(second.json()) == {
        "archived": 0,
        "skipped": 2,
        "duplicate": first["archived"],
        "overlap": 2,
        "status": "success",
    }
    copies = client.get(
        "/api/appointments", headers=alice.headers, params={"calendar_id": setup.archive}
    ).json()
    assert copies["meta"]["total"] == first["archived"]


def test_a_run_window_of_dates_covers_whole_days(
    client: httpx.Client, alice: Person, setup: Setup
) -> None:
    response = client.post(
        setup.run_url, headers=alice.headers, json={"start": "2026-05-04", "end": "2026-05-04"}
    )
    assert response.status_code == 201
    entry = response.json()
    assert (entry["window_start"], entry["window_end"]) == (
        "2026-05-04T00:00:00+00:00",
        "2026-05-05T00:00:00+00:00",
    )
    assert entry["archived"] == 4


def test_a_run_without_a_body_uses_the_configuration_window(
    client: httpx.Client, alice: Person, setup: Setup
) -> None:
    # The last 7 Berlin days up to today: midnight in Berlin is 22:00 or 23:00 UTC.
    for response in (
        client.post(setup.run_url, headers=alice.headers),
        client.post(setup.run_url, headers={**alice.headers, "Content-Type": "application/json"}),
    ):
        assert response.status_code == 201, response.text
        start, end = response.json()["window_start"], response.json()["window_end"]
        assert start[11:] in ("22:00:00+00:00", "23:00:00+00:00")
        assert end[11:] in ("22:00:00+00:00", "23:00:00+00:00")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"start": "2026-05-05", "end": "2026-05-04"}, "end"),
        ({"start": "soon"}, "start"),
        ({"window": "today"}, "window"),
    ],
)
def test_a_bad_run_body_is_a_422(
    client: httpx.Client, alice: Person, setup: Setup, body: dict[str, str], field: str
) -> None:
    response = client.post(setup.run_url, headers=alice.headers, json=body)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]


def test_running_an_unknown_configuration_is_404(client: httpx.Client, alice: Person) -> None:
    response = client.post("/api/archive-configs/999/run", headers=alice.headers, json=WINDOW)
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "archive configuration 999 not found"}
    }


# -- action log -----------------------------------------------------------------------------------


def test_the_action_log_lists_runs_newest_first_per_configuration(
    client: httpx.Client, alice: Person, setup: Setup
) -> None:
    other = create(
        client,
        alice,
        "/api/archive-configs",
        {"name": "Other", "source_calendar_id": setup.source, "archive_calendar_id": setup.archive},
    )
    runs = [
        client.post(url, headers=alice.headers, json=WINDOW).json()
        for url in (setup.run_url, f"/api/archive-configs/{other['id']}/run", setup.run_url)
    ]

    everything = client.get("/api/action-log", headers=alice.headers)
    assert everything.status_code == 200
    assert [e["id"] for e in everything.json()["data"]] == [r["id"] for r in reversed(runs)]
    assert everything.json()["data"][0] == runs[2]

    one = client.get(
        "/api/action-log",
        headers=alice.headers,
        params={"config_id": setup.config["id"], "per_page": 1},
    )
    assert [e["id"] for e in one.json()["data"]] == [runs[2]["id"]]
    assert one.json()["meta"] == {"page": 1, "per_page": 1, "total": 2, "pages": 2}
    assert httpx.URL(one.links["next"]["url"]).params["config_id"] == str(setup.config["id"])


def test_the_action_log_is_scoped_to_the_owner(
    client: httpx.Client, admin: Person, alice: Person, bob: Person, setup: Setup
) -> None:
    client.post(setup.run_url, headers=alice.headers, json=WINDOW)
    assert client.get("/api/action-log", headers=bob.headers).json()["data"] == []
    other = client.get(
        "/api/action-log", headers=bob.headers, params={"config_id": setup.config["id"]}
    )
    assert other.status_code == 404
    assert client.get("/api/action-log", headers=admin.headers).json()["meta"]["total"] == 1


@pytest.mark.parametrize("params", [{"config_id": "abc"}, {"config_id": "0"}, {"page": "0"}])
def test_a_bad_action_log_query_is_a_422(
    client: httpx.Client, alice: Person, params: dict[str, str]
) -> None:
    response = client.get("/api/action-log", headers=alice.headers, params=params)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == list(params)
