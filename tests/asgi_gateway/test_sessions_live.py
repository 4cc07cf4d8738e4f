"""Sessions through a real gateway process: revocation reaches both backends and the admin API.

`auth.me` is served by its async twin and `calendars.list` by the legacy view, so each check
below is made once per backend; the pages and the admin API are asked too.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Person, ServerProcess

FLAGS = """\
version: 1
routes:
  auth.me: {mode: async}
  calendars.list: {mode: legacy}
"""
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BACKENDS = {"/api/me": "async", "/api/calendars": "legacy"}


@pytest.fixture
def gateway(
    environ: dict[str, str], spawn: Callable[..., ServerProcess], admin: Person, alice: Person
) -> ServerProcess:
    Path(environ["AA_FLAGS_FILE"]).write_text(FLAGS)
    # No actor cache: a revocation made by another process (the CLI) shows at once.
    return spawn({**environ, "AA_AUTH_CACHE_S": "0", "AA_LOGIN_FAILURES_PER_ACCOUNT": "3"})


def csrf(page: httpx.Response) -> str:
    match = _CSRF.search(page.text)
    assert match is not None, page.text[:300]
    return match.group(1)


_open: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_browsers() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def log_in(server: ServerProcess, person: Person, password: str | None = None) -> httpx.Client:
    """A browser (cookie-keeping client) signed in through the /login form."""
    browser = server.client(follow_redirects=False)
    _open.append(browser)
    form = {
        "csrf_token": csrf(browser.get("/login")),
        "email": person.email,
        "password": person.password if password is None else password,
    }
    response = browser.post("/login", data=form)
    assert response.status_code == 302, response.text[:300]
    return browser


def cookie_of(browser: httpx.Client) -> str:
    value = browser.cookies.get("aa_session")
    assert value
    return f"aa_session={value}"


def answers(server: ServerProcess, cookie: str) -> dict[str, int]:
    """The status of each backend's endpoint, the admin API and a page, for a saved cookie."""
    statuses = {}
    with server.client(follow_redirects=False) as client:
        for path, backend in BACKENDS.items():
            response = client.get(path, headers={"Cookie": cookie})
            assert response.headers["X-Served-By"] == backend
            statuses[path] = response.status_code
        statuses["/_rollout/api/flags"] = client.get(
            "/_rollout/api/flags", headers={"Cookie": cookie}
        ).status_code
        page = client.get("/calendars", headers={"Cookie": cookie})
        statuses["/calendars"] = page.status_code
        if page.status_code == 302:
            assert page.headers["Location"].startswith("/login")
    return statuses


SIGNED_IN = {"/api/me": 200, "/api/calendars": 200, "/_rollout/api/flags": 200, "/calendars": 200}
SIGNED_OUT = {"/api/me": 401, "/api/calendars": 401, "/_rollout/api/flags": 401, "/calendars": 302}


def test_a_cookie_saved_before_logout_stops_working_everywhere(
    gateway: ServerProcess, admin: Person
) -> None:
    browser = log_in(gateway, admin)
    saved = cookie_of(browser)
    assert answers(gateway, saved) == SIGNED_IN

    confirm = browser.get("/logout")
    assert browser.post("/logout", data={"csrf_token": csrf(confirm)}).status_code == 302

    assert answers(gateway, saved) == SIGNED_OUT


def test_signing_out_everywhere_ends_other_browsers(gateway: ServerProcess, admin: Person) -> None:
    laptop, phone = log_in(gateway, admin), log_in(gateway, admin)
    saved = cookie_of(phone)
    assert answers(gateway, saved) == SIGNED_IN

    response = laptop.post("/api/me/sign-out-everywhere")

    assert response.status_code == 204
    assert answers(gateway, saved) == SIGNED_OUT
    assert answers(gateway, cookie_of(laptop)) == SIGNED_OUT


def test_a_password_change_ends_the_other_sessions(gateway: ServerProcess, admin: Person) -> None:
    here, elsewhere = log_in(gateway, admin), log_in(gateway, admin)

    response = here.post(
        "/api/me/password",
        json={"current_password": admin.password, "new_password": "a-brand-new-password"},
    )

    assert response.status_code == 204
    assert answers(gateway, cookie_of(here)) == SIGNED_IN
    assert answers(gateway, cookie_of(elsewhere)) == SIGNED_OUT
    log_in(gateway, admin, password="a-brand-new-password")


def test_disabling_a_user_ends_sessions_and_tokens_and_refuses_sign_in(
    gateway: ServerProcess, admin: Person, alice: Person, environ: dict[str, str]
) -> None:
    browser = log_in(gateway, alice)
    with gateway.client() as client:
        assert client.get("/api/me", headers=alice.headers).status_code == 200

    done = subprocess.run(
        [sys.executable, "-m", "admin_assistant", "users", "disable", alice.email],
        env={**gateway.environ, **environ},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert "1 API token(s) revoked" in done.stdout
    statuses = answers(gateway, cookie_of(browser))
    assert statuses["/api/me"] == statuses["/api/calendars"] == 401
    with gateway.client() as client:
        assert client.get("/api/me", headers=alice.headers).status_code == 401
        page = client.get("/login")
        refused = client.post(
            "/login",
            data={"csrf_token": csrf(page), "email": alice.email, "password": alice.password},
        )
    assert refused.status_code == 401 and "this account is disabled" in refused.text


def test_two_session_cookies_are_nobody_on_pages_too(
    gateway: ServerProcess, admin: Person, alice: Person
) -> None:
    both = f"{cookie_of(log_in(gateway, alice))}; {cookie_of(log_in(gateway, admin))}"
    assert answers(gateway, both) == SIGNED_OUT


def test_failed_logins_are_throttled_with_retry_after(
    gateway: ServerProcess, alice: Person
) -> None:
    with gateway.client(follow_redirects=False) as browser:
        token = csrf(browser.get("/login"))

        def attempt(password: str) -> httpx.Response:
            form = {"csrf_token": token, "email": alice.email, "password": password}
            return browser.post("/login", data=form)

        assert [attempt("guess-1").status_code for _ in range(3)] == [401, 401, 401]
        locked = attempt(alice.password)
        assert browser.get("/api/me").status_code == 401  # the right password did not get in

    assert locked.status_code == 429
    retry_after = int(locked.headers["Retry-After"])
    assert 0 < retry_after <= 900
    assert f"try again in {retry_after} seconds" in locked.text
