"""Password hashes at their edges (shared/auth.py): other costs, broken and foreign hashes."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from shared.auth import Passwords, hash_scrypt


def test_a_hasher_with_other_costs_checks_unknown_accounts_at_its_own_cost() -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    passwords = Passwords(cheap)
    # The dummy hash is remade with the hasher's own parameters, so an unknown account costs
    # what a known one does: it is no longer one that needs a rehash.
    assert not passwords.needs_rehash(passwords._dummy)
    passwords.verify_unknown("anything")
    stored = passwords.hash("correct horse")
    assert passwords.verify("correct horse", stored)
    assert not passwords.verify("wrong horse", stored)


@pytest.mark.parametrize(
    "stored",
    [
        "not a hash at all",
        "$argon2id$v=19$m=65536,t=3,p=4$broken",
        "scrypt$16384$8$1$only-five-parts",
        "scrypt$not-a-number$8$1$c2FsdA$ZGlnZXN0",
    ],
)
def test_a_malformed_stored_hash_never_verifies_and_is_replaced(stored: str) -> None:
    passwords = Passwords()
    assert passwords.verify("pw", stored) is False
    assert passwords.needs_rehash(stored) is True


def test_an_old_scrypt_hash_verifies_and_asks_to_be_replaced() -> None:
    passwords = Passwords()
    stored = hash_scrypt("old password", n=2**10)
    assert passwords.verify("old password", stored)
    assert not passwords.verify("other password", stored)
    assert passwords.needs_rehash(stored)
