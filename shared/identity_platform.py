"""The Microsoft identity platform as an OAuth 2.0 client: authorization code with PKCE and
state, the code and refresh token grants, and the signed-in user's profile from Graph `/me`.

The protocol pieces (authorization URL, PKCE challenge, token request bodies, reading the
redirect) are Authlib's; the HTTP goes through one aiohttp client on the caller's loop.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from json import loads as json_loads
from typing import Any

import aiohttp
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from shared.config import M365_SCOPES, M365Settings
from shared.errors import M365ConsentDenied, M365SignInFailed, ProviderError
from shared.models import utcnow

__all__ = [
    "GrantRefused",
    "IdentityPlatform",
    "Profile",
    "SignInRequest",
    "TokenGrant",
    "check_redirect",
]

# A sign-in started longer ago than this is refused at the callback: start again.
SIGN_IN_TTL_S = 600
# Errors of the token endpoint that mean the grant itself is dead, not a passing failure.
_DEAD_GRANT = frozenset({"invalid_grant", "interaction_required", "consent_required"})


@dataclass(frozen=True, slots=True)
class SignInRequest:
    """One sign-in round trip: where to send the browser, and what the callback must match."""

    url: str
    state: str
    code_verifier: str = field(repr=False)
    started_at: float


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What the token endpoint granted: a bearer token, when it ends, and a refresh token."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    scopes: str


@dataclass(frozen=True, slots=True)
class Profile:
    """The signed-in account as Graph reports it: object id, mail address, display name."""

    subject: str
    email: str
    name: str


class GrantRefused(Exception):
    """The identity platform refused a code or refresh token for good (`error` says why)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


def check_redirect(
    query: Mapping[str, str], expected_state: str | None, started_at: float | None
) -> str:
    """The authorization code of the redirect back to us, once its state matches ours.

    M365ConsentDenied when the person declined; M365SignInFailed for a missing, expired or
    mismatched state (a forged or replayed redirect) or a missing code.
    """
    if not expected_state or started_at is None:
        raise M365SignInFailed(
            "this Microsoft sign-in was not started from this browser (or it already finished);"
            " start again with 'Sign in with Microsoft'"
        )
    if not _same(query.get("state"), expected_state):
        raise M365SignInFailed(
            "the Microsoft sign-in answer does not belong to this browser's sign-in (state "
            "mismatch); start again with 'Sign in with Microsoft'"
        )
    if time.time() - started_at > SIGN_IN_TTL_S:
        raise M365SignInFailed(
            f"the Microsoft sign-in took longer than {SIGN_IN_TTL_S // 60} minutes; start again"
        )
    error = query.get("error")
    if error:
        description = (query.get("error_description") or "")[:300]
        if error in ("access_denied", "consent_required"):
            raise M365ConsentDenied(
                "Microsoft sign-in was declined, so admin-assistant cannot reach your calendars "
                f"({error}: {description or 'no reason given'}); try again and accept, or ask "
                "your Microsoft 365 administrator to grant consent"
            )
        raise M365SignInFailed(f"Microsoft sign-in failed: {error}: {description or 'no reason'}")
    code = query.get("code")
    if not code:
        raise M365SignInFailed("the Microsoft sign-in answer carries no code; start again")
    return code


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class IdentityPlatform:
    """The app's OAuth client of one tenant; endpoints are read once from its discovery document."""

    def __init__(self, settings: M365Settings, graph_url: str, *, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.graph_url = graph_url.rstrip("/")
        self.timeout_s = timeout_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._endpoints: tuple[str, str] | None = None
        self._client: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"IdentityPlatform({self.settings.authority!r}, tenant={self.settings.tenant!r})"

    async def begin(self) -> SignInRequest:
        """A new sign-in: fresh state and PKCE verifier, and the authorization URL (S256)."""
        authorize, _ = await self.endpoints()
        state = generate_token(32)
        verifier = generate_token(64)  # RFC 7636: 43 to 128 characters of the unreserved set
        url = prepare_grant_uri(
            authorize,
            self.settings.client_id,
            "code",
            redirect_uri=self.settings.redirect_uri,
            scope=" ".join(M365_SCOPES),
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
            response_mode="query",
            prompt="select_account",
        )
        return SignInRequest(url, state, verifier, time.time())

    async def redeem(self, code: str, code_verifier: str) -> TokenGrant:
        """Exchange an authorization code (with its PKCE verifier) for tokens."""
        return await self._grant(
            "authorization_code",
            code=code,
            redirect_uri=self.settings.redirect_uri,
            code_verifier=code_verifier,
        )

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """New tokens from a refresh token; GrantRefused when it is dead (revoked, expired)."""
        grant = await self._grant(
            "refresh_token", refresh_token=refresh_token, scope=" ".join(M365_SCOPES)
        )
        if grant.refresh_token is None:  # not rotated: the old one stays good
            return TokenGrant(grant.access_token, refresh_token, grant.expires_at, grant.scopes)
        return grant

    async def profile(self, access_token: str) -> Profile:
        """The account behind `access_token`, from GET {AA_GRAPH_URL}/me."""
        url = f"{self.graph_url}/me"
        status, body = await self._call("GET", url, headers=_bearer(access_token))
        if status != 200 or not isinstance(body, dict):
            raise ProviderError(f"graph: GET /me answered {status}: {_message(body)}")
        subject = body.get("id")
        email = body.get("mail") or body.get("userPrincipalName")
        if not isinstance(subject, str) or not subject or not isinstance(email, str):
            raise M365SignInFailed(
                "the Microsoft account has no id or mail address in its profile; it cannot "
                "sign in here"
            )
        name = body.get("displayName")
        return Profile(subject, email.strip().lower(), name if isinstance(name, str) else "")

    async def endpoints(self) -> tuple[str, str]:
        """(authorization endpoint, token endpoint) from the tenant's OpenID configuration."""
        if self._endpoints is None:
            url = self.settings.discovery_url
            status, body = await self._call("GET", url)
            if status != 200 or not isinstance(body, dict):
                raise ProviderError(
                    f"Microsoft identity platform: {url} answered {status}; check AA_M365_TENANT"
                    " and AA_M365_AUTHORITY"
                )
            authorize, token = body.get("authorization_endpoint"), body.get("token_endpoint")
            if not isinstance(authorize, str) or not isinstance(token, str):
                raise ProviderError(f"{url} names no authorization_endpoint or token_endpoint")
            self._endpoints = (authorize, token)
        return self._endpoints

    async def aclose(self) -> None:
        """Close the HTTP client on the loop that used it."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def forget_after_fork(self) -> None:
        """Drop a client inherited over fork: its connections belong to the parent."""
        self._client = None

    async def _grant(self, grant_type: str, **values: Any) -> TokenGrant:
        _, token_url = await self.endpoints()
        body = prepare_token_request(
            grant_type,
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            **values,
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        now = utcnow()
        status, answer = await self._call("POST", token_url, data=body, headers=headers)
        granted = isinstance(answer, dict) and isinstance(answer.get("access_token"), str)
        if status == 200 and granted:
            expires_in = answer.get("expires_in", 3600)
            try:
                lifetime_s = max(int(expires_in), 0)
            except (TypeError, ValueError):
                lifetime_s = 3600
            refresh = answer.get("refresh_token")
            return TokenGrant(
                answer["access_token"],
                refresh if isinstance(refresh, str) and refresh else None,
                now + timedelta(seconds=lifetime_s),
                str(answer.get("scope", "")),
            )
        error = answer.get("error") if isinstance(answer, dict) else None
        description = answer.get("error_description", "") if isinstance(answer, dict) else ""
        if 400 <= status < 500 and isinstance(error, str):
            if error in _DEAD_GRANT:
                raise GrantRefused(error, str(description)[:300])
            raise M365SignInFailed(
                f"the Microsoft token endpoint refused the {grant_type} grant ({error}: "
                f"{str(description)[:300]}); check AA_M365_CLIENT_ID and AA_M365_CLIENT_SECRET"
            )
        raise ProviderError(
            f"Microsoft identity platform: the token endpoint answered {status}; try again"
        )

    async def _call(
        self,
        method: str,
        url: str,
        *,
        data: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        if self._client is None:
            self._client = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._client.request(method, url, data=data, headers=headers) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError as exc:
            raise ProviderError(
                f"Microsoft identity platform: {method} {url} did not answer within "
                f"{self.timeout_s:g}s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(
                f"Microsoft identity platform: {method} {url} failed: {type(exc).__name__}"
            ) from exc
        try:
            return status, json_loads(raw) if raw.strip() else None
        except ValueError:
            return status, None


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def _message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))[:200]
    return "no error message"
