"""The one reader of the signed session cookie, shared by the legacy app, the twins and routing.

Pure: from the raw `Cookie` header and the secret to the session's data, with no I/O. Flask
(through its session interface), the async twins and the gateway's sticky key all read the
cookie here, so a request is the same user, or no user, wherever it lands.

Duplicates: a browser may hold two `aa_session` cookies (another path or domain, or one
planted by a sibling subdomain). Werkzeug reads the first, Starlette the last, so one request
was two users. Here two *different* values are ambiguous and read as no session at all (the
caller gets a 401 or the sign-in page); identical repeats are one cookie.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = [
    "SESSION_COOKIE",
    "SESSION_MAX_AGE_S",
    "SESSION_SALT",
    "PayloadSerializer",
    "SessionIdentity",
    "SessionReader",
    "cookie_values",
    "session_identity",
]

SESSION_COOKIE = "aa_session"
SESSION_MAX_AGE_S = 7 * 24 * 3600
# Flask's own salt and key derivation (SecureCookieSessionInterface), so cookies signed by
# Flask verify here and the reverse.
SESSION_SALT = "cookie-session"
_CACHE_LIMIT = 4096
# ';' between cookies; ',' is how a WSGI server joins two Cookie headers (a2wsgi does), so
# the twins join theirs the same way and both backends see the same cookies.
_COOKIE_SEPARATORS = re.compile(r"[;,]")


class PayloadSerializer(Protocol):
    """Turns the cookie's payload text into data (json, or Flask's tagged JSON)."""

    def loads(self, value: str) -> Any: ...

    def dumps(self, value: Any) -> str: ...


@dataclass(frozen=True, slots=True)
class SessionIdentity:
    """Who a session cookie says the caller is: the user and the server-side session id."""

    user_id: int
    sid: str


def cookie_values(cookie_header: str | None, name: str) -> list[str]:
    """Every value of cookie `name` in a raw `Cookie` header, in order (quotes removed).

    Several Cookie headers are read joined with ',' (as WSGI servers join them).
    """
    if not cookie_header:
        return []
    values = []
    prefix = name + "="
    for part in _COOKIE_SEPARATORS.split(cookie_header):
        part = part.strip()
        if part.startswith(prefix):
            value = part[len(prefix) :].strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            values.append(value)
    return values


def session_identity(data: Mapping[str, Any]) -> SessionIdentity | None:
    """The (user id, session id) a session's data names, or None for an anonymous session."""
    user_id, sid = data.get("user_id"), data.get("sid")
    if isinstance(user_id, bool) or not isinstance(user_id, int) or not isinstance(sid, str):
        return None
    if not sid:
        return None
    return SessionIdentity(user_id, sid)


class SessionReader:
    """Verifies and reads the session cookie signed with `secret_key` (Flask's own format)."""

    def __init__(
        self,
        secret_key: str,
        *,
        cookie_name: str = SESSION_COOKIE,
        max_age_s: int = SESSION_MAX_AGE_S,
        payload: PayloadSerializer | None = None,
    ) -> None:
        self.cookie_name = cookie_name
        self.max_age_s = max_age_s
        self.serializer = URLSafeTimedSerializer(
            secret_key,
            salt=SESSION_SALT,
            serializer=payload or json,
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
        )
        self._keys: dict[str, str | None] = {}

    def read(self, cookie_header: str | None) -> dict[str, Any]:
        """The session data; {} when there is no cookie, or it is forged, expired or ambiguous."""
        values = set(cookie_values(cookie_header, self.cookie_name))
        if len(values) != 1:
            return {}
        (value,) = values
        if not value:
            return {}
        try:
            data = self.serializer.loads(value, max_age=self.max_age_s)
        except BadSignature:
            return {}
        return data if isinstance(data, dict) else {}

    def identity(self, cookie_header: str | None) -> SessionIdentity | None:
        """The signed-in identity of the cookie, if it names one (no database check here)."""
        return session_identity(self.read(cookie_header))

    def user_key(self, cookie_header: str | None) -> str | None:
        """A sticky routing key `u:<user id>` for the cookie's user; cached by raw header.

        Called on every request by the router, so a returning browser costs one dict lookup
        and no signature check.
        """
        if not cookie_header:
            return None
        try:
            return self._keys[cookie_header]
        except KeyError:
            pass
        identity = self.identity(cookie_header)
        key = None if identity is None else f"u:{identity.user_id}"
        if len(self._keys) >= _CACHE_LIMIT:
            self._keys.clear()
        self._keys[cookie_header] = key
        return key
