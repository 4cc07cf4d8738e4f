"""Who a request is: bearer tokens, the session cookie from /login, logout, and safe redirects."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer, Person


@pytest.fixture
def client(legacy_server: LiveServer) -> Iterator[httpx.Client]:
    with legacy_server.client() as client:
        yield client


def csrf_token(page: httpx.Response) -> str:
    assert page.status_code == 200, page.text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def log_in(
    client: httpx.Client,
    person: Person,
    *,
    next_url: str | None = None,
    password: str | None = None,
) -> httpx.Response:
    """Sign in through the /login form, as a browser would: GET for the token, then POST."""
    params = {"next": next_url} if next_url is not None else {}
    token = csrf_token(client.get("/login", params=params))
    form = {
        "csrf_token": token,
        "email": person.email,
        "password": person.password if password is None else password,
    }
    if next_url is not None:
        form["next"] = next_url
    return client.post("/login", data=form)


def test_me_answers_for_a_bearer_token(client: httpx.Client, alice: Person) -> None:
    response = client.get("/api/me", headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == {"id": alice.id, "email": alice.email, "name": "", "is_admin": False}


def test_me_of_an_admin_says_so(client: httpx.Client, admin: Person) -> None:
    assert client.get("/api/me", headers=admin.headers).json()["is_admin"] is True


def test_no_credentials_is_401_with_a_challenge(client: httpx.Client) -> None:
    response = client.get("/api/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="admin-assistant"'
    assert response.json()["error"]["code"] == "unauthorized"
    assert "/login" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("Basic YWxpY2U6cHc=", "malformed Authorization header"),
        ("Bearer", "malformed Authorization header"),
        ("Token abc", "malformed Authorization header"),
        ("aa_not-a-token", "malformed Authorization header"),
        ("Bearer aa_not-a-real-token", "invalid or revoked API token"),
    ],
)
def test_a_malformed_or_wrong_token_is_401(
    client: httpx.Client, alice: Person, authorization: str, message: str
) -> None:
    response = client.get("/api/me", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert message in response.json()["error"]["message"]


def test_the_scheme_name_is_case_insensitive(client: httpx.Client, alice: Person) -> None:
    response = client.get("/api/me", headers={"Authorization": f"bearer {alice.token}"})
    assert response.json()["email"] == alice.email


def test_logging_in_through_the_form_gives_a_session_for_the_api(
    client: httpx.Client, alice: Person
) -> None:
    response = log_in(client, alice)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "aa_session" in client.cookies
    set_cookie = response.headers["Set-Cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    me = client.get("/api/me")
    assert (me.status_code, me.json()["email"]) == (200, alice.email)


def test_a_token_wins_over_the_session(client: httpx.Client, alice: Person, bob: Person) -> None:
    log_in(client, alice)
    assert client.get("/api/me", headers=bob.headers).json()["email"] == bob.email
    wrong = client.get("/api/me", headers={"Authorization": "Bearer aa_nope"})
    assert wrong.status_code == 401  # never silently falls back to the session's user


def test_a_wrong_password_is_401_and_gives_no_session(client: httpx.Client, alice: Person) -> None:
    response = log_in(client, alice, password="not-the-password")
    assert response.status_code == 401
    assert "wrong email or password" in response.text
    assert f'value="{alice.email}"' in response.text  # the form keeps the email typed
    assert client.get("/api/me").status_code == 401


def test_a_login_without_the_csrf_token_is_400(client: httpx.Client, alice: Person) -> None:
    client.get("/login")
    response = client.post("/login", data={"email": alice.email, "password": alice.password})
    assert response.status_code == 400
    forged = client.post(
        "/login", data={"email": alice.email, "password": alice.password, "csrf_token": "forged"}
    )
    assert forged.status_code == 400
    assert client.get("/api/me").status_code == 401


def test_logout_ends_the_session(client: httpx.Client, alice: Person) -> None:
    log_in(client, alice)
    confirm = client.get("/logout")
    assert confirm.status_code == 200 and "Sign out?" in confirm.text
    assert client.get("/api/me").status_code == 200  # a GET alone does not sign out
    response = client.post("/logout", data={"csrf_token": csrf_token(confirm)})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert client.get("/api/me").status_code == 401


def test_logout_without_the_csrf_token_is_400(client: httpx.Client, alice: Person) -> None:
    log_in(client, alice)
    assert client.post("/logout").status_code == 400
    assert client.get("/api/me").status_code == 200


def test_login_returns_to_a_local_next_page(client: httpx.Client, alice: Person) -> None:
    response = log_in(client, alice, next_url="/calendars?page=2")
    assert response.status_code == 302
    assert response.headers["Location"] == "/calendars?page=2"


def test_the_login_page_of_a_signed_in_user_redirects_to_next(
    client: httpx.Client, alice: Person
) -> None:
    log_in(client, alice)
    response = client.get("/login", params={"next": "/action-log"})
    assert (response.status_code, response.headers["Location"]) == (302, "/action-log")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",  # browsers read a backslash as a slash: //evil.example
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
    ],
)
def test_login_never_redirects_off_site(client: httpx.Client, alice: Person, target: str) -> None:
    page = client.get("/login", params={"next": target})
    assert 'name="next" value="/"' in page.text
    response = log_in(client, alice, next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
