"""Delegated tokens at rest: encrypted, authenticated, bound to the key that sealed them."""

from __future__ import annotations

import pytest

from shared.token_vault import TokenVault, UnreadableToken

TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.a-delegated-access-token"


def test_a_sealed_token_opens_with_the_same_key_only() -> None:
    vault = TokenVault("a" * 32)
    sealed = vault.encrypt(TOKEN)
    assert TOKEN not in sealed and sealed != vault.encrypt(TOKEN)  # random IV each time
    assert vault.decrypt(sealed) == TOKEN
    assert TokenVault("a" * 32).decrypt(sealed) == TOKEN  # derived the same in every process
    with pytest.raises(UnreadableToken, match="AA_TOKEN_KEY or AA_SECRET_KEY changed"):
        TokenVault("b" * 32).decrypt(sealed)


def test_an_altered_token_is_refused() -> None:
    vault = TokenVault("a" * 32)
    sealed = vault.encrypt(TOKEN)
    altered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(UnreadableToken):
        vault.decrypt(altered)
    with pytest.raises(UnreadableToken):
        vault.decrypt("not fernet text é")


def test_the_key_never_shows_in_a_repr() -> None:
    assert "a" * 8 not in repr(TokenVault("a" * 32))
