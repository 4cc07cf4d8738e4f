"""A fake Microsoft identity platform for the fake Graph server: OpenID discovery, an
authorize page with accept and cancel, the token endpoint (authorization code with PKCE
verified here, refresh tokens rotated), and `/me` for the token's account.

Checks what the real one checks and says so in the same error shape (`{"error",
"error_description"}`): client id and secret, the registered redirect URI, the S256 code
challenge against the verifier, single-use codes, and live refresh tokens.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "aa-test-client"
CLIENT_SECRET = "aa-test-client-secret"


@dataclass
class Account:
    """A person of the fake tenant."""

    email: str
    name: str
    subject: str


@dataclass(frozen=True, slots=True)
class _Code:
    email: str
    client_id: str
    redirect_uri: str
    challenge: str
    method: str


@dataclass
class IssuedToken:
    email: str
    expires_at: float
    kind: str  # access | refresh
    revoked: bool = False


@dataclass
class TokenRequest:
    """One call of the token endpoint, as received."""

    grant_type: str
    form: dict[str, str]
    status: int
    error: str | None = None


@dataclass
class FakeIdentity:
    """Tenant state and the identity routes; the Graph routes ask it whose token they got."""

    access_lifetime_s: int = 3600
    redirect_uris: set[str] = field(default_factory=set)
    accounts: dict[str, Account] = field(default_factory=dict)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    token_requests: list[TokenRequest] = field(default_factory=list)
    _codes: dict[str, _Code] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- knobs -----------------------------------------------------------------------------

    def add_account(self, email: str, name: str = "") -> Account:
        """A person who can sign in (the authorize page offers them)."""
        account = Account(email.lower(), name or email.split("@")[0].title(), f"oid-{email}")
        with self._lock:
            self.accounts[account.email] = account
        return account

    def revoke_refresh_tokens(self, email: str) -> None:
        """Make every refresh token of `email` dead (as a password reset or an admin does)."""
        with self._lock:
            for token in self.tokens.values():
                if token.email == email.lower() and token.kind == "refresh":
                    token.revoked = True

    def expire_access_tokens(self, email: str) -> None:
        """End every access token of `email` now (Graph then answers 401)."""
        with self._lock:
            for token in self.tokens.values():
                if token.email == email.lower() and token.kind == "access":
                    token.expires_at = 0.0

    def holder(self, authorization: str | None) -> str | bool | None:
        """The email of a live access token; None when no token was sent or it is not ours
        (an application token); False when it is ours but expired or revoked."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        with self._lock:
            token = self.tokens.get(authorization[len("Bearer ") :])
        if token is None or token.kind != "access":
            return None
        if token.revoked or token.expires_at <= time.time():
            return False
        return token.email

    def grants(self, grant_type: str) -> list[TokenRequest]:
        with self._lock:
            return [r for r in self.token_requests if r.grant_type == grant_type]

    # -- routes ----------------------------------------------------------------------------

    def routes(self, base_url: Any) -> list[Route]:
        """Starlette routes under /{tenant}/...; `base_url()` gives the server's own URL."""
        self._base_url = base_url
        return [
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self._discovery),
            Route("/{tenant}/oauth2/v2.0/authorize", self._authorize, methods=["GET", "POST"]),
            Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
        ]

    async def _discovery(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if tenant != TENANT:
            return _oauth_error(400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant}' not found")
        base = f"{self._base_url()}/{tenant}"
        return JSONResponse(
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        if params.get("client_id") != CLIENT_ID:
            return HTMLResponse("AADSTS700016: unknown application", status_code=400)
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:
            return HTMLResponse(
                f"AADSTS50011: redirect URI {html.escape(redirect_uri)} is not registered",
                status_code=400,
            )
        if request.method == "GET":
            options = "".join(
                f'<option value="{html.escape(a.email)}">{html.escape(a.email)}</option>'
                for a in self.accounts.values()
            )
            page = (
                "<!doctype html><title>Sign in to your account</title><h1>Fake Microsoft</h1>"
                f'<form method="post"><label>Account <select name="account">{options}'
                '</select></label> <button name="decision" value="accept">Accept</button> '
                '<button name="decision" value="cancel">Cancel</button></form>'
            )
            return HTMLResponse(page)
        form = await _form(request)
        back: dict[str, str] = {}
        if form.get("decision") != "accept":
            back = {
                "error": "access_denied",
                "error_description": "AADSTS65004: User declined to consent to access the app.",
            }
        elif params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            back = {"error": "invalid_request", "error_description": "PKCE (S256) is required"}
        else:
            email = str(form.get("account", "")).lower()
            if email not in self.accounts:
                return HTMLResponse("no such account", status_code=400)
            code = f"code-{next(self._ids)}-{secrets.token_urlsafe(16)}"
            with self._lock:
                self._codes[code] = _Code(
                    email,
                    CLIENT_ID,
                    redirect_uri,
                    params["code_challenge"],
                    params["code_challenge_method"],
                )
            back = {"code": code}
        if "state" in params:
            back["state"] = params["state"]
        return RedirectResponse(f"{redirect_uri}?{urlencode(back)}", status_code=302)

    async def _token(self, request: Request) -> Response:
        form = await _form(request)
        grant_type = form.get("grant_type", "")
        status, body = self._grant(grant_type, form, request.headers.get("authorization"))
        with self._lock:
            self.token_requests.append(TokenRequest(grant_type, form, status, body.get("error")))
        return JSONResponse(body, status_code=status)

    def _grant(
        self, grant_type: str, form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            raw = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = raw.partition(":")
        if client_id != CLIENT_ID or secret != CLIENT_SECRET:
            return 401, _error("invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if grant_type == "authorization_code":
            with self._lock:
                code = self._codes.pop(form.get("code", ""), None)
            if code is None:
                return 400, _error("invalid_grant", "AADSTS70008: the code is unknown or used")
            if form.get("redirect_uri") != code.redirect_uri:
                return 400, _error("invalid_grant", "AADSTS50148: redirect_uri does not match")
            verifier = form.get("code_verifier", "")
            if not verifier or _s256(verifier) != code.challenge:
                return 400, _error(
                    "invalid_grant",
                    "AADSTS501481: The Code_Verifier does not match the code_challenge supplied",
                )
            return 200, self._issue(code.email)
        if grant_type == "refresh_token":
            with self._lock:
                old = self.tokens.get(form.get("refresh_token", ""))
                if old is None or old.kind != "refresh" or old.revoked:
                    return 400, _error(
                        "invalid_grant",
                        "AADSTS70000: The provided refresh token has been revoked or is unknown",
                    )
                old.revoked = True  # rotated: each refresh token is good once
            return 200, self._issue(old.email)
        return 400, _error("unsupported_grant_type", f"grant_type {grant_type!r}")

    def _issue(self, email: str) -> dict[str, Any]:
        access, refresh = f"at-{secrets.token_urlsafe(24)}", f"rt-{secrets.token_urlsafe(24)}"
        now = time.time()
        with self._lock:
            self.tokens[access] = IssuedToken(email, now + self.access_lifetime_s, "access")
            self.tokens[refresh] = IssuedToken(email, now + 90 * 86400, "refresh")
        return {
            "token_type": "Bearer",
            "scope": "openid profile email offline_access User.Read Calendars.ReadWrite",
            "expires_in": self.access_lifetime_s,
            "access_token": access,
            "refresh_token": refresh,
        }

    def me(self, email: str) -> dict[str, Any]:
        """The `/me` body of the account `email`."""
        account = self.accounts[email]
        return {
            "id": account.subject,
            "displayName": account.name,
            "mail": account.email,
            "userPrincipalName": account.email,
        }


async def _form(request: Request) -> dict[str, str]:
    # Parsed here: Starlette's form parser needs python-multipart, which the app never uses.
    return dict(parse_qsl((await request.body()).decode("utf-8")))


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _error(code: str, description: str) -> dict[str, Any]:
    return {"error": code, "error_description": description}


def _oauth_error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse(_error(code, description), status_code=status)


def m365_environ(authority: str, graph_url: str, redirect_uri: str) -> dict[str, str]:
    """The AA_* settings of an app signing in against the fake tenant at `authority`."""
    return {
        "AA_CALENDAR_PROVIDER": "graph",
        "AA_GRAPH_URL": graph_url,
        "AA_M365_TENANT": TENANT,
        "AA_M365_CLIENT_ID": CLIENT_ID,
        "AA_M365_CLIENT_SECRET": CLIENT_SECRET,
        "AA_M365_AUTHORITY": authority,
        "AA_M365_REDIRECT_URI": redirect_uri,
    }


def consent(authorize_url: str, email: str, *, decision: str = "accept") -> dict[str, str]:
    """Answer the authorize page as `email` would; the query of the redirect back to the app."""
    import httpx

    with httpx.Client(timeout=10) as client:
        page = client.get(authorize_url)
        assert page.status_code == 200, page.text
        answer = client.post(authorize_url, data={"account": email, "decision": decision})
    assert answer.status_code == 302, answer.text
    return dict(parse_qsl(urlsplit(answer.headers["location"]).query))
