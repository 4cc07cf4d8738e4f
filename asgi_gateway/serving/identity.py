"""Who is asking: the app's authenticated principal, and the sticky user key read without I/O.

For any Flask app, the session cookie is verified with the app's own session interface
(an HMAC check, no database), so a user signed in on a legacy page keeps one canary bucket.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature

from asgi_gateway.errors import GatewayError

Scope = dict[str, Any]
UserKey = Callable[[Scope], "str | None"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller as the gateway sees it: a name for audit rows, and admin or not."""

    name: str
    is_admin: bool


class InvalidCredentials(GatewayError):
    """Raised by an app's `authenticate` for credentials it refuses (answered 401).

    Any other exception from `authenticate` means the check itself failed (answered 503).
    """


# The app's identity check: the request scope -> its Principal, or None when anonymous.
Authenticate = Callable[[Scope], Awaitable["Principal | None"]]

_CACHE_LIMIT = 4096


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header `name` (lower-case bytes) in an ASGI scope."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def cookie(scope: Scope, name: str) -> str | None:
    """The value of cookie `name`, split out of the Cookie header by hand.

    SimpleCookie costs several microseconds per header; browsers send `a=b; c=d`, and a
    value we cannot find is simply no sticky key, so a plain split is enough here.
    """
    raw = header(scope, b"cookie")
    if raw is None:
        return None
    prefix = name + "="
    for part in raw.decode("latin-1").split(";"):
        part = part.strip()
        if part.startswith(prefix):
            value = part[len(prefix) :]
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value or None
    return None


_token_keys: dict[bytes, str] = {}


def bearer_key(scope: Scope) -> str | None:
    """A stable key for a bearer-token caller (a digest: tokens never reach logs or buckets)."""
    raw = header(scope, b"authorization")
    if raw is None or raw[:7].lower() != b"bearer ":
        return None
    key = _token_keys.get(raw)
    if key is None:
        # Hash once per token, not per request; bounded like the session cache.
        if len(_token_keys) >= _CACHE_LIMIT:
            _token_keys.clear()
        key = _token_keys[raw] = "t:" + hashlib.sha256(raw[7:].strip()).hexdigest()[:24]
    return key


class FlaskSessionUser:
    """Sticky `user` key of a Flask app: `session[user_key]` from its signed cookie, else the token.

    Verified cookies are cached (bounded), so a returning user costs one dict lookup.
    """

    def __init__(self, flask_app: Any, user_key: str = "user_id") -> None:
        self.cookie_name = flask_app.config["SESSION_COOKIE_NAME"]
        self.serializer = flask_app.session_interface.get_signing_serializer(flask_app)
        self.max_age_s = int(flask_app.permanent_session_lifetime.total_seconds())
        self.user_key = user_key
        self._cache: dict[bytes, str | None] = {}

    def session_user(self, scope: Scope) -> str | None:
        raw = header(scope, b"cookie")
        if raw is None or self.serializer is None:
            return None
        # Keyed by the raw Cookie header: a returning browser costs one dict lookup, with
        # no parsing and no signature check.
        cached = self._cache.get(raw, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        value = cookie(scope, self.cookie_name)
        data: Any = {}
        if value is not None:
            try:
                data = self.serializer.loads(value, max_age=self.max_age_s)
            except BadSignature:
                data = {}
        user = data.get(self.user_key) if isinstance(data, dict) else None
        key = None if user is None else f"u:{user}"
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[raw] = key
        return key

    def __call__(self, scope: Scope) -> str | None:
        return self.session_user(scope) or bearer_key(scope)
