"""Credentials: password and API-token hashing, and the acting identity both backends share."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "TOKEN_PREFIX",
    "Actor",
    "Passwords",
    "hash_scrypt",
    "hash_token",
    "new_api_token",
]

TOKEN_PREFIX = "aa_"
# Hashes written before argon2: verified as they are, and replaced by argon2 at the next login.
_SCRYPT_PREFIX = "scrypt$"
# An argon2 hash of a password nobody knows, with the default cost: an unknown account is
# checked against it, so it costs the same as a known one (no timing tells them apart).
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$rQDgPicV6DNDbgRrUgcAZg"
    "$9VT65Ac9iKRAshCDHI9T4ZgxnaBMcZzVN8bRJe6/m8E"
)


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

    def may_see(self, owner_id: int | None) -> bool:
        """Whether this actor may see what user `owner_id` owns: their own, or any as admin."""
        return owner_id is not None and (owner_id == self.user_id or self.is_admin)


class Passwords:
    """Password hashing with argon2id (RFC 9106 low-memory profile, argon2-cffi's default).

    Every check does the same work whether or not the account exists (`verify_unknown`),
    and old scrypt hashes keep verifying until `needs_rehash` has them replaced.
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._dummy = _DUMMY_HASH
        if self.hasher.check_needs_rehash(self._dummy):
            # Other cost parameters: the dummy must cost what a real check costs.
            self._dummy = self.hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        """A fresh salted argon2id hash of `password`."""
        return self.hasher.hash(password)

    def verify(self, password: str, stored: str) -> bool:
        """True when `password` matches `stored` (argon2 or the older scrypt form)."""
        if stored.startswith(_SCRYPT_PREFIX):
            return _verify_scrypt(password, stored)
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def verify_unknown(self, password: str) -> None:
        """Spend a real check's work on an account that does not exist; the answer is always no."""
        self.verify(password, self._dummy)

    def needs_rehash(self, stored: str) -> bool:
        """True when `stored` is scrypt or argon2 with other than the current cost."""
        if stored.startswith(_SCRYPT_PREFIX):
            return True
        try:
            return self.hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True


def hash_scrypt(password: str, *, n: int = 2**14, r: int = 8, p: int = 1) -> str:
    """The pre-argon2 hash form `scrypt$n$r$p$salt$hash` (kept to test upgrades of old rows)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return "$".join(["scrypt", str(n), str(r), str(p), _b64(salt), _b64(digest)])


def _verify_scrypt(password: str, stored: str) -> bool:
    try:
        _scheme, n, r, p, salt, digest = stored.split("$")
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
