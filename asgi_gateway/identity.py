"""Who is asking, read from the request without I/O: the sticky user key and the raw session.

For any Flask app, the session cookie is verified with the app's own session interface
(an HMAC check, no database), so a user signed in on a legacy page keeps one canary bucket.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

from itsdangerous import BadSignature

Scope = dict[str, Any]
UserKey = Callable[[Scope], "str | None"]

_CACHE_LIMIT = 4096


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header `name` (lower-case bytes) in an ASGI scope."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def cookie(scope: Scope, name: str) -> str | None:
    raw = header(scope, b"cookie")
    if raw is None:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw.decode("latin-1"))
    except Exception:  # a malformed Cookie header is the client's problem, not a 500
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def bearer_key(scope: Scope) -> str | None:
    """A stable key for a bearer-token caller (a digest: tokens never reach logs or buckets)."""
    raw = header(scope, b"authorization")
    if raw is None or not raw[:7].lower() == b"bearer ":
        return None
    return "t:" + hashlib.sha256(raw[7:].strip()).hexdigest()[:24]


class FlaskSessionUser:
    """Sticky `user` key of a Flask app: `session[user_key]` from its signed cookie, else the token.

    Verified cookies are cached (bounded), so a returning user costs one dict lookup.
    """

    def __init__(self, flask_app: Any, user_key: str = "user_id") -> None:
        self.cookie_name = flask_app.config["SESSION_COOKIE_NAME"]
        self.serializer = flask_app.session_interface.get_signing_serializer(flask_app)
        self.max_age_s = int(flask_app.permanent_session_lifetime.total_seconds())
        self.user_key = user_key
        self._cache: dict[str, str | None] = {}

    def session_user(self, scope: Scope) -> str | None:
        value = cookie(scope, self.cookie_name)
        if value is None or self.serializer is None:
            return None
        cached = self._cache.get(value, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        try:
            data = self.serializer.loads(value, max_age=self.max_age_s)
        except BadSignature:
            data = {}
        user = data.get(self.user_key) if isinstance(data, dict) else None
        key = None if user is None else f"u:{user}"
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[value] = key
        return key

    def __call__(self, scope: Scope) -> str | None:
        return self.session_user(scope) or bearer_key(scope)
