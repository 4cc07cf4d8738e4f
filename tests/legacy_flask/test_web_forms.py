"""The web UI's forms through Flask's test client: every POST refuses a missing or forged CSRF
token, another user's ids answer 404 (a non-admin on the users page 403), bad input is a 4xx
with the message next to its field, and each form does what it says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from flask.testing import FlaskClient

from legacy_flask import LegacyFlask
from legacy_flask.local_times import readable_span
from shared import bridge
from shared.auth import Actor
from shared.inputs.appointments import parse_appointment
from shared.inputs.archive import parse_archive_config
from shared.runtime import Runtime
from tests.conftest import Person, create_person

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)


def token_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def sign_in(client: FlaskClient, person: Person) -> str:
    """Sign `person` in through the form; the session's CSRF token for later posts."""
    token = token_of(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"csrf_token": token, "email": person.email, "password": person.password}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return token_of(client.get("/settings").get_data(as_text=True))


@pytest.fixture
def client(flask_app: LegacyFlask) -> Iterator[FlaskClient]:
    with flask_app.test_client() as client:
        yield client


@pytest.fixture
def alices(runtime: Runtime, alice: Person) -> dict[str, Any]:
    """Alice's things: two calendars, a configuration, a token and an open action item."""
    actor = Actor(alice.id, alice.email, False)
    svc = runtime.services
    source = bridge.run(svc.calendars.create(actor, {"name": "Work", "role": "source"}))
    archive = bridge.run(svc.calendars.create(actor, {"name": "Vault", "role": "archive"}))
    for subject, start, end in (("Client call", "10:00", "11:00"), ("Review", "10:30", "11:30")):
        body = {
            "calendar_id": source["id"],
            "subject": subject,
            "start": f"{YESTERDAY}T{start}:00Z",
            "end": f"{YESTERDAY}T{end}:00Z",
        }
        bridge.run(svc.appointments.create(actor, parse_appointment(body)))
    config = bridge.run(
        svc.archive.create_config(
            actor,
            parse_archive_config(
                {
                    "name": "Nightly",
                    "source_calendar_id": source["id"],
                    "archive_calendar_id": archive["id"],
                }
            ),
        )
    )
    bridge.run(svc.archive.run(actor, config["id"]))
    items = bridge.run(svc.action_items.list(actor, _open_items())).items
    token = bridge.run(svc.tokens.create_own(actor, name="script", expires_in_days=None))
    return {"calendar": source, "config": config, "item": items[0], "token": token}


def _open_items() -> Any:
    from shared.inputs.archive import parse_action_item_query

    return parse_action_item_query({"state": "open"})


def post_routes(things: dict[str, Any], user_id: int) -> list[tuple[str, dict[str, str]]]:
    """Every POST of the web UI, with a body that would succeed (given the CSRF token)."""
    calendar, config = things["calendar"]["id"], things["config"]["id"]
    return [
        ("/calendars", {"name": "Other", "role": "source"}),
        (f"/calendars/{calendar}/rename", {"name": "Renamed"}),
        (f"/calendars/{calendar}/delete", {}),
        ("/archive-configs", {"name": "Second", "source_calendar_id": str(calendar)}),
        (f"/archive-configs/{config}", {"name": "Renamed"}),
        (f"/archive-configs/{config}/active", {"is_active": "0"}),
        (f"/archive-configs/{config}/delete", {}),
        (f"/archive-configs/{config}/run", {"start": "yesterday"}),
        (f"/action-items/{things['item']['id']}/resolve", {"keep_all": "1"}),
        ("/tokens", {"name": "another"}),
        (f"/tokens/{things['token']['id']}/revoke", {}),
        ("/settings", {"timezone": "Europe/Berlin"}),
        ("/settings/browser-zone", {"timezone": "Europe/Berlin"}),
        ("/admin/users", {"email": "new@example.com", "password": "long-password"}),
        (f"/admin/users/{user_id}/admin", {"is_admin": "1"}),
        (f"/admin/users/{user_id}/disabled", {"disabled": "1"}),
    ]


def test_every_post_without_or_with_a_forged_csrf_token_is_400_and_changes_nothing(
    client: FlaskClient, runtime: Runtime, alice: Person, admin: Person, alices: dict[str, Any]
) -> None:
    sign_in(client, admin)
    before = client.get("/admin/users").get_data(as_text=True)
    for path, body in post_routes(alices, alice.id):
        assert client.post(path, data=body).status_code == 400, path
        forged = client.post(path, data={**body, "csrf_token": "forged"})
        assert forged.status_code == 400, path
        assert "the form has expired" in forged.get_data(as_text=True)
    assert client.get("/admin/users").get_data(as_text=True).count("data-user=") == before.count(
        "data-user="
    )
    actor = Actor(alice.id, alice.email, False)
    assert [c["name"] for c in bridge.run(runtime.services.calendars.list(actor, _first())).items]
    assert bridge.run(runtime.services.archive.get_config(actor, alices["config"]["id"]))
    assert [t["id"] for t in bridge.run(runtime.services.tokens.list_own(actor))]
    assert bridge.run(runtime.services.users.timezone_of(actor)) is None


def _first() -> Any:
    from shared.pagination import PageRequest

    return PageRequest(1, 50)


@pytest.mark.parametrize(
    "route",
    [
        "/calendars/{calendar}/rename",
        "/calendars/{calendar}/delete",
        "/archive-configs/{config}",
        "/archive-configs/{config}/active",
        "/archive-configs/{config}/delete",
        "/action-items/{item}/resolve",
        "/tokens/{token}/revoke",
    ],
)
def test_another_users_ids_answer_404_and_stay_untouched(
    client: FlaskClient, runtime: Runtime, bob: Person, alices: dict[str, Any], route: str
) -> None:
    token = sign_in(client, bob)
    path = route.format(**{k: v["id"] for k, v in alices.items()})
    response = client.post(
        path, data={"csrf_token": token, "name": "Mine now", "is_active": "0", "keep_all": "1"}
    )
    assert response.status_code == 404, path
    assert "not found" in response.get_data(as_text=True)
    alice_actor = Actor(alices["calendar"]["owner_id"], "alice@example.com", False)
    svc = runtime.services
    assert bridge.run(svc.calendars.get(alice_actor, alices["calendar"]["id"]))["name"] == "Work"
    config = bridge.run(svc.archive.get_config(alice_actor, alices["config"]["id"]))
    assert (config["name"], config["is_active"]) == ("Nightly", True)
    assert bridge.run(svc.action_items.get(alice_actor, alices["item"]["id"]))["state"] == "open"
    assert alices["token"]["id"] in [t["id"] for t in bridge.run(svc.tokens.list_own(alice_actor))]


@pytest.mark.parametrize(
    "path", ["/admin/users", "/admin/users/1/admin", "/admin/users/1/disabled"]
)
def test_the_users_page_and_its_forms_are_403_for_a_non_admin(
    client: FlaskClient, alice: Person, path: str
) -> None:
    token = sign_in(client, alice)
    assert client.get("/admin/users").status_code == 403
    response = client.post(path, data={"csrf_token": token, "is_admin": "1", "disabled": "1"})
    assert response.status_code == 403
    assert "for admins only" in response.get_data(as_text=True)


def test_an_unknown_user_id_on_the_users_page_is_404(client: FlaskClient, admin: Person) -> None:
    token = sign_in(client, admin)
    response = client.post("/admin/users/999999/disabled", data={"csrf_token": token})
    assert response.status_code == 404


def test_the_forms_need_a_signed_in_user(client: FlaskClient, alices: dict[str, Any]) -> None:
    for path, body in post_routes(alices, 1):
        response = client.post(path, data=body)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login?next="), path


def test_bad_input_is_refused_with_the_message_next_to_its_field(
    client: FlaskClient, alice: Person, alices: dict[str, Any]
) -> None:
    token = sign_in(client, alice)
    mars = {"name": "X", "timezone": "Mars/Olympus", "source_calendar_id": "1"}
    taken = {"name": "Work", "role": "source", "uri": "local://Work"}
    cases = [
        ("/calendars", {"name": "", "role": "source"}, 422, "cal-name", "must not be empty"),
        ("/calendars", {"uri": "ftp://x", "role": "source"}, 422, "cal-uri", "ftp"),
        ("/calendars", taken, 409, "cal-uri", "already have a local calendar"),
        ("/archive-configs", {"name": "X", "days_back": "x"}, 422, "f-days_back", "whole number"),
        ("/archive-configs", {"name": "X"}, 422, "f-source_calendar_id", "is required"),
        ("/archive-configs", mars, 422, "f-timezone", "unknown time zone 'Mars/Olympus'"),
        ("/tokens", {"name": ""}, 422, "token-name", "must not be empty"),
        (
            "/tokens",
            {"name": "x", "expires_in_days": "0"},
            422,
            "token-expires_in_days",
            "at least 1",
        ),
        ("/settings", {"timezone": "Europe/Nowhere"}, 422, "f-timezone", "unknown time zone"),
    ]
    edit = f"/archive-configs/{alices['config']['id']}"
    config = alices["config"]
    shown = {
        "name": "X",
        "source_calendar_id": str(config["source_calendar_id"]),
        "archive_calendar_id": str(config["archive_calendar_id"]),
        "timezone": "UTC",
        "days_back": "7",
        "days_forward": "0",
    }
    cases += [
        (edit, {**shown, "name": ""}, 422, "f-name", "must not be empty"),
        (edit, {**shown, "days_back": ""}, 422, "f-days_back", "is required"),
        (edit, {**shown, "timezone": ""}, 422, "f-timezone", "unknown time zone ''"),
    ]
    for path, body, status, field_id, message in cases:
        response = client.post(path, data={"csrf_token": token, **body})
        html = unescape(response.get_data(as_text=True))
        assert response.status_code == status, (path, body, html)
        match = re.search(rf'<p class="field-error" id="{field_id}-error">(.*?)</p>', html)
        assert match and message in match.group(1), (path, body, html)
        assert re.search(rf'id="{field_id}"[^>]*aria-invalid="true"', html), (path, html)
    rename = client.post(
        f"/calendars/{alices['calendar']['id']}/rename", data={"csrf_token": token, "name": " "}
    )
    assert rename.status_code == 422
    assert "must not be empty" in rename.get_data(as_text=True)


def test_a_run_with_an_end_before_its_start_is_refused(
    client: FlaskClient, alice: Person, alices: dict[str, Any]
) -> None:
    token = sign_in(client, alice)
    response = client.post(
        f"/archive-configs/{alices['config']['id']}/run",
        data={"csrf_token": token, "start": "today", "end": "last week"},
    )
    assert response.status_code == 422
    assert "the last day is before the first" in response.get_data(as_text=True)


def test_the_browser_zone_is_used_until_the_user_chooses_one(
    client: FlaskClient, runtime: Runtime, alice: Person, alices: dict[str, Any]
) -> None:
    token = sign_in(client, alice)
    page = client.get("/tokens").get_data(as_text=True)
    assert 'data-zone="UTC" data-zone-source="default"' in page
    bad = client.post("/settings/browser-zone", data={"csrf_token": token, "timezone": "Nope/x"})
    assert bad.status_code == 422 and "unknown time zone" in bad.get_data(as_text=True)
    reported = client.post(
        "/settings/browser-zone", data={"csrf_token": token, "timezone": "Asia/Kolkata"}
    )
    assert reported.status_code == 204
    page = client.get("/tokens").get_data(as_text=True)
    assert 'data-zone="Asia/Kolkata" data-zone-source="browser"' in page
    saved = client.post("/settings", data={"csrf_token": token, "timezone": "America/New_York"})
    assert saved.status_code == 302
    page = client.get("/action-items").get_data(as_text=True)
    assert 'data-zone="America/New_York" data-zone-source="setting"' in page
    zone = __import__("zoneinfo").ZoneInfo("America/New_York")
    start = datetime.fromisoformat(f"{YESTERDAY}T10:00:00+00:00")
    shown = readable_span(start, start + timedelta(hours=1), zone, datetime.now(zone).date())
    assert shown in page  # "Tue 3 Oct, 06:00-07:00"
    actor = Actor(alice.id, alice.email, False)
    assert bridge.run(runtime.services.users.timezone_of(actor)) == "America/New_York"
    cleared = client.post("/settings", data={"csrf_token": token, "timezone": ""})
    assert cleared.status_code == 302
    assert bridge.run(runtime.services.users.timezone_of(actor)) is None


def test_the_new_user_form_refuses_bad_input_next_to_each_field(
    client: FlaskClient, admin: Person
) -> None:
    token = sign_in(client, admin)
    cases = [
        ({"email": "nobody", "password": "long-password"}, 422, "user-email", "not an email"),
        ({"email": "a@example.com", "password": "short"}, 422, "user-password", "too short"),
        (
            {"email": "a@example.com", "password": "x" * 9, "name": "n" * 201},
            422,
            "user-name",
            "200",
        ),
        ({"email": admin.email, "password": "long-password"}, 409, "user-email", "already exists"),
    ]
    for body, status, field_id, message in cases:
        response = client.post("/admin/users", data={"csrf_token": token, **body})
        html = unescape(response.get_data(as_text=True))
        assert response.status_code == status, (body, html)
        match = re.search(rf'<p class="field-error" id="{field_id}-error">(.*?)</p>', html)
        assert match and message in match.group(1), (body, html)
        assert 'id="user-password"' in html and "long-password" not in html  # never echoed


def test_an_admin_cannot_disable_or_demote_themselves(
    client: FlaskClient, runtime: Runtime, admin: Person
) -> None:
    token = sign_in(client, admin)
    for path, body in (("disabled", {"disabled": "1"}), ("admin", {"is_admin": "0"})):
        response = client.post(
            f"/admin/users/{admin.id}/{path}", data={"csrf_token": token, **body}
        )
        assert response.status_code == 302
    page = unescape(client.get("/admin/users").get_data(as_text=True))
    assert "You cannot disable your own account" in page
    assert "You cannot change the rights of your own account" in page
    other = create_person(runtime, "carol@example.com")
    response = client.post(
        f"/admin/users/{other.id}/admin", data={"csrf_token": token, "is_admin": "1"}
    )
    assert response.status_code == 302
    assert "carol@example.com is now an admin." in client.get("/admin/users").get_data(as_text=True)


def test_a_calendar_in_use_is_not_deleted_and_the_page_says_why(
    client: FlaskClient, alice: Person, alices: dict[str, Any]
) -> None:
    token = sign_in(client, alice)
    path = f"/calendars/{alices['calendar']['id']}/delete"
    response = client.post(path, data={"csrf_token": token})
    assert response.status_code == 302
    page = unescape(client.get("/calendars").get_data(as_text=True))
    assert "Not deleted: calendar 1 is used by an archive configuration" in page
    assert 'data-calendar="1"' in page
    deleted = client.post(
        f"/archive-configs/{alices['config']['id']}/delete", data={"csrf_token": token}
    )
    assert deleted.status_code == 302
    assert client.post(path, data={"csrf_token": token}).status_code == 302
    page = unescape(client.get("/calendars").get_data(as_text=True))
    assert "Calendar 1 deleted." in page and 'data-calendar="1"' not in page
