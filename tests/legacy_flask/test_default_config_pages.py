"""The default configuration on the web pages through Flask's test client: "Make default" and
"Unset default" on the list, the run form that preselects the default, the job form too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest
from flask.testing import FlaskClient

from legacy_flask import LegacyFlask
from shared import bridge
from shared.auth import Actor
from shared.inputs.archive import parse_archive_config
from shared.pagination import PageRequest
from shared.runtime import Runtime
from tests.conftest import Person
from tests.legacy_flask.test_web_forms import sign_in


@pytest.fixture
def client(flask_app: LegacyFlask) -> Iterator[FlaskClient]:
    with flask_app.test_client() as client:
        yield client


def make_configs(runtime: Runtime, person: Person, *names: str) -> list[int]:
    actor = Actor(person.id, person.email, False)
    calendars = runtime.services.calendars
    source = bridge.run(calendars.create(actor, {"name": "Work", "role": "source"}))
    archive = bridge.run(calendars.create(actor, {"name": "Vault", "role": "archive"}))
    return [
        bridge.run(
            runtime.services.archive.create_config(
                actor,
                parse_archive_config(
                    {
                        "name": name,
                        "source_calendar_id": source["id"],
                        "archive_calendar_id": archive["id"],
                    }
                ),
            )
        )["id"]
        for name in names
    ]


def defaults_on_page(html: str) -> list[str]:
    """The ids of the rows the list marks as default."""
    return re.findall(r'<tr data-config="(\d+)" class="default-config">', html)


def selected_option(html: str, select_id: str) -> str:
    select = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', html, re.S)
    assert select, html
    chosen = re.findall(r'<option value="([^"]*)" selected>', select.group(1))
    assert len(chosen) == 1, select.group(1)
    return chosen[0]


def page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return unescape(response.get_data(as_text=True))


def test_make_default_moves_the_mark_and_unset_leaves_none(
    client: FlaskClient, runtime: Runtime, alice: Person
) -> None:
    first, second = make_configs(runtime, alice, "Nightly", "Weekly")
    token = sign_in(client, alice)
    assert defaults_on_page(page(client, "/archive-configs")) == [str(first)]

    response = client.post(
        f"/archive-configs/{second}/default",
        data={"csrf_token": token, "is_default": "1"},
        follow_redirects=True,
    )
    html = unescape(response.get_data(as_text=True))
    assert "“Weekly” is now your default configuration." in html
    assert defaults_on_page(html) == [str(second)]
    assert 'aria-label="Make Nightly the default"' in html
    assert 'aria-label="Unset Weekly as the default"' in html

    response = client.post(
        f"/archive-configs/{second}/default",
        data={"csrf_token": token, "is_default": "0"},
        follow_redirects=True,
    )
    html = unescape(response.get_data(as_text=True))
    assert "“Weekly” is no longer your default configuration." in html
    assert defaults_on_page(html) == []
    actor = Actor(alice.id, alice.email, False)
    assert bridge.run(runtime.services.archive.default_config(actor)) is None


@pytest.mark.parametrize("value", ["", "yes", "2"])
def test_a_bad_choice_is_400_and_changes_nothing(
    client: FlaskClient, runtime: Runtime, alice: Person, value: str
) -> None:
    first, second = make_configs(runtime, alice, "Nightly", "Weekly")
    token = sign_in(client, alice)
    response = client.post(
        f"/archive-configs/{second}/default", data={"csrf_token": token, "is_default": value}
    )
    assert response.status_code == 400
    assert "is_default must be 1 or 0" in unescape(response.get_data(as_text=True))
    assert defaults_on_page(page(client, "/archive-configs")) == [str(first)]


def test_an_admin_makes_the_owners_default(
    client: FlaskClient, runtime: Runtime, alice: Person, admin: Person
) -> None:
    _, second = make_configs(runtime, alice, "Nightly", "Weekly")
    token = sign_in(client, admin)
    response = client.post(
        f"/archive-configs/{second}/default",
        data={"csrf_token": token, "is_default": "1"},
        follow_redirects=True,
    )
    assert "“Weekly” is now its owner's default configuration." in unescape(
        response.get_data(as_text=True)
    )
    actor = Actor(alice.id, alice.email, False)
    assert (bridge.run(runtime.services.archive.default_config(actor)) or {})["id"] == second


def test_the_run_form_preselects_the_default(
    client: FlaskClient, runtime: Runtime, alice: Person
) -> None:
    first, second = make_configs(runtime, alice, "Nightly", "Weekly")
    token = sign_in(client, alice)
    html = page(client, "/archive-configs/run")
    assert selected_option(html, "config_id") == str(first)
    assert "Nightly (default)</option>" in html
    client.post(f"/archive-configs/{second}/default", data={"csrf_token": token, "is_default": "1"})
    assert selected_option(page(client, "/archive-configs/run"), "config_id") == str(second)
    # A configuration named in the address wins; the job form preselects the default too.
    html = page(client, f"/archive-configs/run?config_id={first}")
    assert selected_option(html, "config_id") == str(first)
    jobs = page(client, "/jobs")
    chosen = re.search(r'<option value="(\d+)" selected>', jobs)
    assert chosen and chosen.group(1) == str(second)


def test_the_run_form_without_a_default_preselects_the_first(
    client: FlaskClient, runtime: Runtime, alice: Person
) -> None:
    first, _second = make_configs(runtime, alice, "Nightly", "Weekly")
    actor = Actor(alice.id, alice.email, False)
    bridge.run(runtime.services.archive.update_config(actor, first, {"is_default": False}))
    sign_in(client, alice)
    html = page(client, "/archive-configs/run")
    assert selected_option(html, "config_id") == str(first)
    assert "(default)" not in html


def test_the_run_form_without_configurations_leads_to_them(
    client: FlaskClient, alice: Person
) -> None:
    sign_in(client, alice)
    response = client.get("/archive-configs/run")
    assert response.status_code == 302
    assert response.headers["Location"] == "/archive-configs"


def test_running_the_chosen_configuration(
    client: FlaskClient, runtime: Runtime, alice: Person
) -> None:
    _, second = make_configs(runtime, alice, "Nightly", "Weekly")
    token = sign_in(client, alice)
    response = client.post(
        "/archive-configs/run",
        data={"csrf_token": token, "config_id": str(second), "start": "yesterday"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/action-log?config_id={second}"
    actor = Actor(alice.id, alice.email, False)
    log = bridge.run(runtime.services.archive.action_log(actor, None, PageRequest(1, 10)))
    assert [e["config_id"] for e in log.items] == [second]


@pytest.mark.parametrize(
    ("config_id", "status", "message"),
    [
        ("", 400, "config_id must be a configuration's id, got ''"),
        ("abc", 400, "config_id must be a configuration's id, got 'abc'"),
        ("{bobs}", 404, "archive configuration {bobs} not found"),
    ],
)
def test_running_a_bad_or_another_users_choice_is_refused(
    client: FlaskClient,
    runtime: Runtime,
    alice: Person,
    bob: Person,
    config_id: str,
    status: int,
    message: str,
) -> None:
    make_configs(runtime, alice, "Nightly")
    (bobs,) = make_configs(runtime, bob, "Bob's")
    token = sign_in(client, alice)
    response = client.post(
        "/archive-configs/run",
        data={"csrf_token": token, "config_id": config_id.format(bobs=bobs)},
    )
    assert response.status_code == status
    assert message.format(bobs=bobs) in unescape(response.get_data(as_text=True))
    bob_actor = Actor(bob.id, bob.email, False)
    assert (
        bridge.run(runtime.services.archive.action_log(bob_actor, None, PageRequest(1, 5))).total
        == 0
    )


def test_a_bad_date_on_the_chosen_form_keeps_the_choice(
    client: FlaskClient, runtime: Runtime, alice: Person
) -> None:
    _, second = make_configs(runtime, alice, "Nightly", "Weekly")
    token = sign_in(client, alice)
    response = client.post(
        "/archive-configs/run",
        data={"csrf_token": token, "config_id": str(second), "start": "someday"},
    )
    assert response.status_code == 422
    html: Any = unescape(response.get_data(as_text=True))
    assert "someday" in html
    assert selected_option(html, "config_id") == str(second)
