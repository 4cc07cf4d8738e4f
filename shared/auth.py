"""Credentials: password and API-token hashing, and the acting identity both backends share."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = [
    "TOKEN_PREFIX",
    "Actor",
    "hash_password",
    "hash_token",
    "new_api_token",
    "read_flask_session",
    "verify_password",
]

TOKEN_PREFIX = "aa_"
# scrypt cost: ~30 ms per check on one core, enough to slow guessing without slowing logins.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated user a request or command acts as."""

    user_id: int
    email: str
    is_admin: bool
    name: str = ""

    @property
    def label(self) -> str:
        """How audit rows and logs name this actor."""
        return self.email


def hash_password(password: str) -> str:
    """A salted scrypt hash in the self-describing form `scrypt$n$r$p$salt$hash`."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return "$".join(
        ["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored`; compares in constant time."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest + "==")
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.urlsafe_b64decode(salt + "=="),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def new_api_token() -> tuple[str, str]:
    """A fresh API token and its hash; only the hash is stored, the token is shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    """The stored form of an API token (tokens are random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


FLASK_SESSION_SALT = "cookie-session"


def read_flask_session(cookie_value: str, secret_key: str, *, max_age_s: int) -> dict[str, Any]:
    """The data of a Flask session cookie signed with `secret_key`; {} when invalid or expired.

    Flask signs its session with itsdangerous (salt `cookie-session`, HMAC-SHA1 key
    derivation); verifying it here lets the async side accept the same login without Flask.
    """
    serializer = URLSafeTimedSerializer(
        secret_key,
        salt=FLASK_SESSION_SALT,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
    )
    try:
        data = serializer.loads(cookie_value, max_age=max_age_s)
    except BadSignature:
        return {}
    return data if isinstance(data, dict) else {}
