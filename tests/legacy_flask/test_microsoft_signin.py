"""Sign in with Microsoft through the real gateway process: the whole round trip in headless
Chromium, a declined consent, a tampered state, the reconnect banner and API error once the
refresh is refused, connect and disconnect, and password sign-in refused when required."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import shot
from tests.conftest import ServerProcess
from tests.fakes.graph_server import FakeGraphServer
from tests.fakes.identity import FakeIdentity, consent, m365_environ

ALICE, BOB = "alice@contoso.com", "bob@contoso.com"
FLAGS = "version: 1\nroutes:\n  calendars.remote: {mode: %s}\n  calendars.create: {mode: %s}\n"


@pytest.fixture
def identity() -> FakeIdentity:
    tenant = FakeIdentity()
    tenant.add_account(ALICE, "Alice Archer")
    tenant.add_account(BOB, "Bob Baker")
    return tenant


@pytest.fixture
def graph(identity: FakeIdentity) -> Iterator[FakeGraphServer]:
    with FakeGraphServer(base_path="/v1.0", identity=identity) as server:
        server.add_calendar("alice-cal", ALICE, name="Alice's calendar")
        server.add_calendar("bob-cal", BOB, name="Bob's calendar")
        yield server


@pytest.fixture
def start_app(
    environ: dict[str, str],
    graph: FakeGraphServer,
    identity: FakeIdentity,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., ServerProcess]]:
    """Start the gateway with Microsoft 365 sign-in against the fake tenant (stopped after);
    the remote calendar endpoints are served by `backend` (legacy unless parametrized)."""
    backend = getattr(request, "param", "legacy")
    Path(environ["AA_FLAGS_FILE"]).write_text(FLAGS % (backend, backend))
    servers: list[ServerProcess] = []

    def start(**extra: str) -> ServerProcess:
        server = ServerProcess(environ, tmp_path / f"server-{len(servers)}.log")
        redirect_uri = f"{server.url}/login/microsoft/callback"
        identity.redirect_uris.add(redirect_uri)
        server.environ.update(m365_environ(graph.origin, graph.url, redirect_uri), **extra)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def app(start_app: Callable[..., ServerProcess]) -> ServerProcess:
    return start_app()


@contextlib.contextmanager
def signed_in_client(app: ServerProcess, email: str) -> Iterator[httpx.Client]:
    """A cookie-keeping client after the whole round trip as `email`."""
    with app.client() as client:
        answer = authorize(client, email)
        back = client.get("/login/microsoft/callback", params=answer)
        assert back.status_code == 302 and back.headers["location"] == "/", back.text
        yield client


def authorize(client: httpx.Client, email: str, decision: str = "accept") -> dict[str, str]:
    start = client.get("/login/microsoft")
    assert start.status_code == 302, start.text
    return consent(start.headers["location"], email, decision=decision)


def backend_of(app: ServerProcess) -> str:
    """The backend the app's flag file sends the remote calendar endpoints to."""
    flags = Path(app.environ["AA_FLAGS_FILE"]).read_text()
    return "async" if "{mode: async}" in flags else "legacy"


def end_access(app: ServerProcess, environ: dict[str, str], identity: FakeIdentity) -> None:
    """Microsoft refuses alice's refresh token, and her stored token has run out."""
    identity.revoke_refresh_tokens(ALICE)
    identity.expire_access_tokens(ALICE)
    path = environ["AA_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE microsoft_accounts SET expires_at = '2000-01-01 00:00:00.000000'")


def test_the_whole_sign_in_in_a_browser(
    app: ServerProcess, browser: Browser, identity: FakeIdentity, environ: dict[str, str]
) -> None:
    page = browser.new_page()
    try:
        page.goto(f"{app.url}/calendars")
        expect(page).to_have_url(re.compile(r"/login\?next="))
        shot(page, "m365-login")
        page.click("text=Sign in with Microsoft")
        expect(page).to_have_title("Sign in to your account")
        page.select_option("select[name=account]", ALICE)
        page.click("button[value=accept]")
        expect(page).to_have_url(f"{app.url}/calendars")
        expect(page.locator("header")).to_contain_text(ALICE)
        # The authorization request carried PKCE (S256) and state, and the fake checked both.
        (redeemed,) = identity.grants("authorization_code")
        assert redeemed.status == 200 and len(redeemed.form["code_verifier"]) >= 43
        status = page.request.get(f"{app.url}/api/me/microsoft").json()
        assert status["connected"] and status["email"] == ALICE and not status["needs_reconnect"]
        listed = page.request.get(f"{app.url}/api/calendars/remote").json()
        assert [c["id"] for c in listed["data"]] == ["alice-cal"]

        end_access(app, environ, identity)
        page.goto(f"{app.url}/")
        expect(page.get_by_role("alert")).to_have_count(0)  # nothing has failed yet
        refused = page.request.get(f"{app.url}/api/calendars/remote")
        assert refused.status == 409
        page.goto(f"{app.url}/")
        banner = page.get_by_role("alert")
        expect(banner).to_contain_text("Microsoft 365 access has ended")
        shot(page, "m365-reconnect-banner")
        page.click("text=Reconnect Microsoft 365")
        page.select_option("select[name=account]", ALICE)
        page.click("button[value=accept]")
        expect(page).to_have_url(f"{app.url}/")
        expect(page.get_by_role("alert")).to_have_count(0)
        page.goto(f"{app.url}/settings")
        expect(page.locator("main")).to_contain_text(f"Connected as {ALICE}")
        shot(page, "m365-settings")
        page.click("text=Disconnect Microsoft 365")
        expect(page).to_have_url(f"{app.url}/settings")
        expect(page.locator("main")).to_contain_text("Microsoft 365 is disconnected")
        page.click("text=Connect Microsoft 365")
        page.select_option("select[name=account]", ALICE)
        page.click("button[value=accept]")
        expect(page).to_have_url(f"{app.url}/settings")
        expect(page.locator("main")).to_contain_text("Microsoft 365 is connected")
    finally:
        page.close()


def test_a_declined_consent_says_so(app: ServerProcess, browser: Browser) -> None:
    page: Page = browser.new_page()
    try:
        page.goto(f"{app.url}/login")
        page.click("text=Sign in with Microsoft")
        with page.expect_response(re.compile(r"/login/microsoft/callback")) as answer:
            page.click("button[value=cancel]")
        assert answer.value.status == 403
        expect(page.locator(".flash.error")).to_contain_text("Microsoft sign-in was declined")
        expect(page.locator("header")).not_to_contain_text(ALICE)
        shot(page, "m365-declined")
    finally:
        page.close()
    with app.client() as client:
        assert client.get("/api/me/microsoft").status_code == 401


def test_a_tampered_or_replayed_state_is_refused(app: ServerProcess) -> None:
    with app.client() as client:
        answer = authorize(client, ALICE)
        tampered = client.get(
            "/login/microsoft/callback", params={**answer, "state": answer["state"][:-1] + "x"}
        )
        assert tampered.status_code == 400
        assert "state mismatch" in tampered.text
        # The flow is used up: the genuine answer, replayed, is refused too.
        replayed = client.get("/login/microsoft/callback", params=answer)
        assert replayed.status_code == 400 and "not started from this browser" in replayed.text
        assert client.get("/api/me").status_code == 401
    # Another browser cannot use a redirect meant for this one.
    with app.client() as victim, app.client() as stranger:
        answer = authorize(victim, ALICE)
        assert stranger.get("/login/microsoft/callback", params=answer).status_code == 400


@pytest.mark.parametrize("start_app", ["legacy", "async"], indirect=True)
def test_a_refused_refresh_is_a_clear_api_error(
    app: ServerProcess, identity: FakeIdentity, environ: dict[str, str]
) -> None:
    with signed_in_client(app, ALICE) as client:
        assert client.get("/api/calendars/remote").status_code == 200
        end_access(app, environ, identity)
        refused = client.get("/api/calendars/remote")
        assert refused.status_code == 409
        assert refused.headers["x-served-by"] == backend_of(app)
        error = refused.json()["error"]
        assert error["code"] == "m365_reconnect_required"
        assert "reconnect Microsoft 365" in error["message"]
        assert client.get("/api/me/microsoft").json()["needs_reconnect"] is True
        # Signing out everywhere erases the stored tokens.
        assert client.post("/api/me/sign-out-everywhere").status_code == 204
    path = environ["AA_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT access_token, refresh_token FROM microsoft_accounts").fetchone()
    assert row == (None, None)


@pytest.mark.parametrize("start_app", ["legacy", "async"], indirect=True)
def test_users_only_reach_their_own_mailbox(app: ServerProcess) -> None:
    with signed_in_client(app, ALICE) as alice, signed_in_client(app, BOB) as bob:
        assert [c["id"] for c in alice.get("/api/calendars/remote").json()["data"]] == ["alice-cal"]
        assert [c["id"] for c in bob.get("/api/calendars/remote").json()["data"]] == ["bob-cal"]
        denied = bob.get("/api/calendars/remote", params={"mailbox": ALICE})
        assert denied.status_code == 403, denied.text
        assert denied.headers["x-served-by"] == backend_of(app)
        planted = bob.post(
            "/api/calendars",
            json={"name": "x", "role": "source", "provider": "graph", "provider_id": "alice-cal"},
        )
        assert planted.status_code == 403, planted.text


def test_password_sign_in_is_refused_when_microsoft_is_required(
    start_app: Callable[..., ServerProcess],
) -> None:
    app = start_app(AA_M365_REQUIRED="on")
    with app.client() as client:
        page = client.get("/login")
        assert "Sign in with Microsoft" in page.text and 'name="password"' not in page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is None  # no password form at all
        form = client.get("/logout")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        refused = client.post(
            "/login",
            data={"csrf_token": csrf.group(1), "email": "x@example.com", "password": "whatever1"},
        )
        assert refused.status_code == 403
        assert "requires Sign in with Microsoft" in refused.text


def test_microsoft_sign_in_is_404_when_not_configured(legacy_server: Any) -> None:
    with legacy_server.client() as client:
        assert client.get("/login/microsoft").status_code == 404
        assert "Sign in with Microsoft" not in client.get("/login").text


def test_connecting_another_persons_account_is_refused(app: ServerProcess) -> None:
    with app.client() as carol:
        assert signed_in_by_password(app, carol, "carol@example.com")
        answer = authorize(carol, ALICE)
        refused = carol.get("/login/microsoft/callback", params=answer)
        assert refused.status_code == 409
        assert "is not yours" in refused.text
        assert carol.get("/api/me/microsoft").json() == {"configured": True, "connected": False}
        missing = carol.delete("/api/me/microsoft")
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == (
            "no Microsoft 365 account is connected to this user"
        )


def signed_in_by_password(app: ServerProcess, client: httpx.Client, email: str) -> bool:
    """Create `email` with the command line, then sign in through the /login form."""
    password = "carol-password-1"
    created = subprocess.run(
        [sys.executable, "-m", "admin_assistant", "users", "create", email, "--password", password],
        env=app.environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    form = {"csrf_token": csrf.group(1), "email": email, "password": password}
    return client.post("/login", data=form).status_code == 302
