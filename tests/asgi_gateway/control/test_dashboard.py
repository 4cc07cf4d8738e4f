"""The dashboard's forms over HTTP: CSRF bound to the session, form limits, flips by etag."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from shared.runtime import Runtime
from tests.conftest import Person, ServerProcess, create_person

PAGE = "/_rollout/endpoints/appointments.list"
FLIP = PAGE + "/flip"


def form_value(page: httpx.Response, name: str) -> str:
    assert page.status_code == 200, page.text
    match = re.search(rf'name="{name}" value="([^"]*)"', page.text)
    assert match, page.text
    return match.group(1)


@contextmanager
def sign_in(server: ServerProcess, person: Person) -> Iterator[httpx.Client]:
    """A cookie-keeping client signed in through the app's /login form, as a browser is."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        token = form_value(client.get("/login"), "csrf_token")
        response = client.post(
            "/login",
            data={"csrf_token": token, "email": person.email, "password": person.password},
        )
        assert response.status_code == 302, response.text
        yield client


def flip(client: httpx.Client, token: str, **fields: str) -> httpx.Response:
    data = {"csrf_token": token, "mode": "async", "reason": "dashboard test", "confirm": "yes"}
    data.update(fields)
    return client.post(FLIP, data=data)


def mode_of(server: ServerProcess, admin: Person) -> str:
    with server.client(headers=admin.headers) as client:
        return str(client.get("/_rollout/api/flags/appointments.list").json()["mode"])


def test_a_token_from_the_same_session_flips(gateway_server: ServerProcess, admin: Person) -> None:
    with sign_in(gateway_server, admin) as browser:
        token = form_value(browser.get(PAGE), "csrf_token")
        response = flip(browser, token)
    assert response.status_code == 303
    assert mode_of(gateway_server, admin) == "async"


def test_a_token_of_another_session_is_refused(
    gateway_server: ServerProcess, admin: Person, runtime: Runtime
) -> None:
    other = create_person(runtime, "second-admin@example.com", is_admin=True)
    with sign_in(gateway_server, admin) as first, sign_in(gateway_server, other) as second:
        token = form_value(first.get(PAGE), "csrf_token")
        assert token != form_value(second.get(PAGE), "csrf_token")
        response = flip(second, token)
    assert response.status_code == 400
    assert "The form has expired" in response.text
    assert mode_of(gateway_server, admin) == "legacy"


def test_a_token_of_another_session_of_the_same_admin_is_refused(
    gateway_server: ServerProcess, admin: Person
) -> None:
    with sign_in(gateway_server, admin) as first, sign_in(gateway_server, admin) as second:
        token = form_value(first.get(PAGE), "csrf_token")
        assert token != form_value(second.get(PAGE), "csrf_token")
        response = flip(second, token)
    assert response.status_code == 400
    assert mode_of(gateway_server, admin) == "legacy"


def test_a_forged_cookie_and_form_pair_is_refused(
    gateway_server: ServerProcess, admin: Person
) -> None:
    """The old double-submit scheme accepted any equal cookie/form pair."""
    with sign_in(gateway_server, admin) as browser:
        browser.cookies.set("rollout_csrf", "attacker-chosen", path="/_rollout")
        response = flip(browser, "attacker-chosen")
    assert response.status_code == 400
    assert mode_of(gateway_server, admin) == "legacy"


def test_a_token_does_not_outlive_signing_in_again(
    gateway_server: ServerProcess, admin: Person
) -> None:
    with sign_in(gateway_server, admin) as browser:
        old = form_value(browser.get(PAGE), "csrf_token")
        logout_token = form_value(browser.get("/logout"), "csrf_token")
        browser.post("/logout", data={"csrf_token": logout_token})
        token = form_value(browser.get("/login"), "csrf_token")
        browser.post(
            "/login",
            data={"csrf_token": token, "email": admin.email, "password": admin.password},
        )
        response = flip(browser, old)
    assert response.status_code == 400
    assert mode_of(gateway_server, admin) == "legacy"


def test_an_oversized_form_says_so(gateway_server: ServerProcess, admin: Person) -> None:
    with sign_in(gateway_server, admin) as browser:
        token = form_value(browser.get(PAGE), "csrf_token")
        response = flip(browser, token, reason="x" * 20_000)
    assert response.status_code == 413
    assert "The form is too large (limit 16 KiB)" in response.text
    assert "expired" not in response.text
    assert mode_of(gateway_server, admin) == "legacy"


def test_a_flip_from_a_stale_page_is_refused_with_the_current_state(
    gateway_server: ServerProcess, admin: Person
) -> None:
    with sign_in(gateway_server, admin) as browser:
        page = browser.get(PAGE)
        token, seen = form_value(page, "csrf_token"), form_value(page, "etag")
        with gateway_server.client(headers=admin.headers) as api:
            api.patch(
                "/_rollout/api/flags/appointments.list",
                json={"mode": "canary", "percent": 5, "reason": "meanwhile"},
            )
        response = flip(browser, token, etag=seen)
        assert response.status_code == 303
        shown = browser.get(response.headers["location"])
    assert "changed since it was read (now canary 5%)" in shown.text
    assert mode_of(gateway_server, admin) == "canary"


@pytest.mark.parametrize("path", ["/_rollout/", PAGE, "/_rollout/audit"])
def test_pages_redirect_anonymous_visitors_to_sign_in(
    gateway_server: ServerProcess, path: str
) -> None:
    response = httpx.get(gateway_server.url + path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")
