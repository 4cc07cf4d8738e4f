"""Encryption at rest of the delegated Microsoft 365 tokens (Fernet, key derived by HKDF)."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["TokenVault", "UnreadableToken"]

# Binds the derived key to this one use: the same secret signs cookies with another key.
_INFO = b"admin-assistant delegated tokens v1"
_SALT = b"admin-assistant"


class UnreadableToken(Exception):
    """A stored token does not decrypt with the current key (the key changed, or it was altered)."""


class TokenVault:
    """Encrypts and decrypts token text with a key derived from `key_material`.

    Derived with HKDF-SHA256, so a long random secret of any shape becomes a Fernet key
    (AES-128-CBC with HMAC-SHA256): a stolen database copy holds no usable token, and an
    altered one is refused rather than sent to Microsoft.
    """

    def __init__(self, key_material: str) -> None:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO)
        key = hkdf.derive(key_material.encode("utf-8"))
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def __repr__(self) -> str:
        return "TokenVault(<key hidden>)"

    def encrypt(self, plain: str) -> str:
        """`plain` encrypted and authenticated, as ASCII text for a database column."""
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, sealed: str) -> str:
        """The text `encrypt` sealed; UnreadableToken when the key differs or it was altered."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise UnreadableToken(
                "a stored Microsoft 365 token cannot be decrypted (AA_TOKEN_KEY or AA_SECRET_KEY "
                "changed since it was stored, or the row was altered)"
            ) from exc
