"""Sign-in, server-side sessions, password hashing, throttling and tokens (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from shared.auth import _DUMMY_HASH, Actor, Passwords, hash_scrypt
from shared.config import load_settings
from shared.errors import NotFound, TooManyRequests, Unauthorized, ValidationFailed
from shared.models import ApiToken, User, UserSession, utcnow
from shared.runtime import Runtime
from shared.services.users import ActorCache, UserService
from shared.sessions import SessionIdentity

PASSWORD = "correct-horse-battery"


@pytest.fixture
def make_domain(db_environ: dict[str, str]) -> Callable[..., Runtime]:
    """Runtimes over the test's database, with extra AA_* settings; closed by the caller."""

    def make(**extra: str) -> Runtime:
        return Runtime(load_settings({**db_environ, **extra}))

    return make


@pytest.fixture
async def domain(make_domain: Callable[..., Runtime]) -> AsyncIterator[Runtime]:
    runtime = make_domain()
    yield runtime
    await runtime.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def user(runtime: Runtime, email: str = "alice@example.com", **extra: Any) -> Actor:
    created = await runtime.services.users.create(email, PASSWORD, **extra)
    return Actor(created["id"], created["email"], created["is_admin"])


async def signed_in(runtime: Runtime, email: str = "alice@example.com") -> SessionIdentity:
    result = await runtime.services.users.sign_in(email, PASSWORD, address="192.0.2.1")
    return SessionIdentity(result.actor.user_id, result.sid)


async def stored_hash(runtime: Runtime, email: str) -> str:
    async with runtime.db.read_session() as session:
        value = await session.scalar(select(User.password_hash).where(User.email == email))
    assert value is not None
    return value


# -- sessions -----------------------------------------------------------------------------------


async def test_signing_in_opens_a_session_that_signing_out_ends_at_once(domain: Runtime) -> None:
    users = domain.services.users
    users.actors = ActorCache(60.0, clock=Clock())
    alice = await user(domain)
    session = await signed_in(domain)
    assert await users.resolve(None, session) == alice  # now cached for a minute

    await users.sign_out(session)

    assert await users.resolve(None, session) is None
    await users.sign_out(session)  # twice is harmless
    await users.sign_out(None)


async def test_another_process_sees_a_sign_out_within_its_cache_period(
    domain: Runtime, make_domain: Callable[..., Runtime]
) -> None:
    other = make_domain()
    try:
        clock = Clock()
        other.services.users.actors = ActorCache(5.0, clock=clock)
        alice = await user(domain)
        session = await signed_in(domain)
        assert await other.services.users.resolve(None, session) == alice

        await domain.services.users.sign_out(session)

        clock.now += 4.9
        assert await other.services.users.resolve(None, session) == alice  # its cache
        clock.now += 0.2
        assert await other.services.users.resolve(None, session) is None
    finally:
        await other.aclose()


async def test_a_password_change_keeps_this_session_and_ends_the_others(domain: Runtime) -> None:
    users = domain.services.users
    users.actors = ActorCache(60.0, clock=Clock())
    alice = await user(domain)
    here, elsewhere = await signed_in(domain), await signed_in(domain)
    assert await users.resolve(None, elsewhere) == alice

    await users.change_password(alice, PASSWORD, "another-password", keep=here)

    assert await users.resolve(None, here) == alice
    assert await users.resolve(None, elsewhere) is None
    assert (await users.sign_in(alice.email, "another-password")).actor == alice
    with pytest.raises(Unauthorized):
        await users.sign_in(alice.email, PASSWORD)


async def test_a_wrong_current_password_changes_nothing(domain: Runtime) -> None:
    users = domain.services.users
    alice = await user(domain)
    session = await signed_in(domain)
    with pytest.raises(ValidationFailed, match="check current_password") as caught:
        await users.change_password(alice, "not-my-password", "another-password")
    assert caught.value.details == [
        {"field": "current_password", "message": "is not your password"}
    ]
    with pytest.raises(ValidationFailed, match="password too short"):
        await users.change_password(alice, PASSWORD, "short")
    assert await users.resolve(None, session) == alice
    await users.sign_in(alice.email, PASSWORD)


async def test_signing_out_everywhere_ends_every_session_but_no_token(domain: Runtime) -> None:
    users = domain.services.users
    users.actors = ActorCache(60.0, clock=Clock())
    alice = await user(domain)
    token = await domain.services.tokens.create(alice.email)
    sessions = [await signed_in(domain) for _ in range(3)]
    for session in sessions:
        assert await users.resolve(None, session) == alice

    await users.sign_out_everywhere(alice)

    assert [await users.resolve(None, s) for s in sessions] == [None, None, None]
    assert await users.resolve(f"Bearer {token}", None) == alice


async def test_a_disabled_user_cannot_sign_in_and_loses_sessions_and_tokens(
    domain: Runtime,
) -> None:
    users = domain.services.users
    users.actors = ActorCache(60.0, clock=Clock())
    alice = await user(domain)
    bob = await user(domain, "bob@example.com")
    token = await domain.services.tokens.create(alice.email)
    session = await signed_in(domain)
    bob_session = await signed_in(domain, bob.email)
    assert await users.resolve(f"Bearer {token}", None) == alice

    result = await users.set_disabled(alice.email, True)

    assert result["tokens_revoked"] == 1
    assert await users.resolve(None, session) is None
    with pytest.raises(Unauthorized, match="invalid or revoked API token"):
        await users.resolve(f"Bearer {token}", None)
    with pytest.raises(Unauthorized, match="this account is disabled"):
        await users.sign_in(alice.email, PASSWORD)
    with pytest.raises(Unauthorized, match="wrong email or password"):
        await users.sign_in(alice.email, "not-the-password")  # no hint without the password
    assert await users.resolve(None, bob_session) == bob

    await users.set_disabled(alice.email, False)
    assert (await users.sign_in(alice.email, PASSWORD)).actor == alice
    with pytest.raises(Unauthorized):  # revoked tokens stay revoked
        await users.resolve(f"Bearer {token}", None)


async def test_an_operator_password_reset_ends_every_session(domain: Runtime) -> None:
    users = domain.services.users
    alice = await user(domain)
    session = await signed_in(domain)
    await users.set_password(alice.email, "reset-by-admin")
    assert await users.resolve(None, session) is None
    await users.sign_in(alice.email, "reset-by-admin")
    with pytest.raises(NotFound, match=r"user 'nobody@example\.com' not found"):
        await users.set_password("nobody@example.com", "whatever-long")


async def test_a_mailbox_defaults_to_the_email_and_is_validated(domain: Runtime) -> None:
    users = domain.services.users
    alice = await user(domain)
    async with domain.db.read_session() as session:
        row = await session.get(User, alice.user_id)
        assert row is not None and row.calendar_mailbox == alice.email
    changed = await users.set_mailbox(alice.email, "Shared.Desk@Example.com")
    assert changed["mailbox"] == "shared.desk@example.com"
    for bad in ("..", "a@b", "a b@example.com", "x@example.com/../y", "%2e@example.com", ""):
        with pytest.raises(ValidationFailed, match="invalid mailbox"):
            await users.set_mailbox(alice.email, bad)


# -- password hashing ----------------------------------------------------------------------------


async def test_new_passwords_are_hashed_with_argon2id(domain: Runtime) -> None:
    await user(domain)
    stored = await stored_hash(domain, "alice@example.com")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_a_scrypt_hash_verifies_and_becomes_argon2_at_sign_in(domain: Runtime) -> None:
    alice = await user(domain)
    async with domain.db.session() as session:
        await session.execute(
            update(User)
            .values(password_hash=hash_scrypt(PASSWORD, n=2**10))
            .where(User.id == alice.user_id)
        )
    assert (await stored_hash(domain, alice.email)).startswith("scrypt$")
    with pytest.raises(Unauthorized):
        await domain.services.users.sign_in(alice.email, "wrong-password")
    assert (await stored_hash(domain, alice.email)).startswith("scrypt$")  # only on success

    await domain.services.users.sign_in(alice.email, PASSWORD)

    upgraded = await stored_hash(domain, alice.email)
    assert upgraded.startswith("$argon2id$")
    assert not domain.services.users.passwords.needs_rehash(upgraded)
    await domain.services.users.sign_in(alice.email, PASSWORD)


async def test_a_cheaper_argon2_hash_is_rehashed_at_the_current_cost(domain: Runtime) -> None:
    alice = await user(domain)
    cheap = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    async with domain.db.session() as session:
        await session.execute(update(User).values(password_hash=cheap))
    await domain.services.users.sign_in(alice.email, PASSWORD)
    assert (await stored_hash(domain, alice.email)) != cheap
    assert not domain.services.users.passwords.needs_rehash(await stored_hash(domain, alice.email))


class CountingHasher(PasswordHasher):
    """argon2's hasher, counting the verifications it performs."""

    verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        CountingHasher.verified += 1
        return super().verify(hash, password)


async def test_an_unknown_account_costs_one_full_password_check(domain: Runtime) -> None:
    users = UserService(domain.db, passwords=Passwords(CountingHasher()))
    await user(domain)

    CountingHasher.verified = 0
    with pytest.raises(Unauthorized, match=r"^wrong email or password$"):
        await users.sign_in("alice@example.com", "wrong-password")
    known = CountingHasher.verified
    CountingHasher.verified = 0
    with pytest.raises(Unauthorized, match=r"^wrong email or password$"):
        await users.sign_in("nobody@example.com", "wrong-password")

    assert known == CountingHasher.verified == 1


def test_the_dummy_hash_costs_what_a_real_one_does() -> None:
    passwords = Passwords()
    assert not passwords.needs_rehash(_DUMMY_HASH)
    assert passwords._dummy == _DUMMY_HASH


# -- throttling ----------------------------------------------------------------------------------


async def test_an_account_is_locked_out_after_too_many_failures(
    make_domain: Callable[..., Runtime],
) -> None:
    runtime = make_domain(AA_LOGIN_FAILURES_PER_ACCOUNT="3", AA_LOGIN_FAILURE_WINDOW_S="600")
    try:
        users = runtime.services.users
        await user(runtime)
        for _ in range(3):
            with pytest.raises(Unauthorized):
                await users.sign_in("alice@example.com", "guess", address="192.0.2.1")
        with pytest.raises(TooManyRequests, match="for this account; try again in") as caught:
            await users.sign_in("ALICE@example.com", PASSWORD, address="198.51.100.7")
        assert caught.value.status == 429
        assert 0 < (caught.value.retry_after_s or 0) <= 600
        # Someone else is not slowed down by it.
        await user(runtime, "bob@example.com")
        await users.sign_in("bob@example.com", PASSWORD, address="198.51.100.7")
    finally:
        await runtime.aclose()


async def test_an_address_is_locked_out_across_accounts(
    make_domain: Callable[..., Runtime],
) -> None:
    runtime = make_domain(AA_LOGIN_FAILURES_PER_ADDRESS="4", AA_LOGIN_FAILURES_PER_ACCOUNT="100")
    try:
        users = runtime.services.users
        await user(runtime)
        for n in range(4):
            with pytest.raises(Unauthorized):
                await users.sign_in(f"user{n}@example.com", "guess", address="203.0.113.9")
        with pytest.raises(TooManyRequests, match="from this address"):
            await users.sign_in("alice@example.com", PASSWORD, address="203.0.113.9")
        await users.sign_in("alice@example.com", PASSWORD, address="203.0.113.10")
    finally:
        await runtime.aclose()


async def test_a_success_clears_the_accounts_failures(make_domain: Callable[..., Runtime]) -> None:
    runtime = make_domain(AA_LOGIN_FAILURES_PER_ACCOUNT="2")
    try:
        users = runtime.services.users
        await user(runtime)
        for _ in range(3):
            with pytest.raises(Unauthorized):
                await users.sign_in("alice@example.com", "guess")
            await users.sign_in("alice@example.com", PASSWORD)
    finally:
        await runtime.aclose()


# -- tokens --------------------------------------------------------------------------------------


async def test_an_expired_token_is_refused_with_its_expiry(domain: Runtime) -> None:
    alice = await user(domain)
    token = await domain.services.tokens.create(alice.email, expires_in=timedelta(days=1))
    assert await domain.services.users.authenticate_token(token) == alice
    async with domain.db.session() as session:
        await session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    domain.services.users.actors.forget_user(alice.user_id)

    with pytest.raises(Unauthorized, match=r"API token 1 expired at 20\d\d-.*; create a new one"):
        await domain.services.users.authenticate_token(token)


async def test_a_token_is_not_cached_past_its_expiry(domain: Runtime) -> None:
    users = domain.services.users
    clock = Clock()
    users.actors = domain.services.tokens.actors = ActorCache(60.0, clock=clock)
    alice = await user(domain)
    token = await domain.services.tokens.create(alice.email, expires_in=timedelta(seconds=30))
    assert await users.authenticate_token(token) == alice
    async with domain.db.session() as session:
        await session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    clock.now += 31
    with pytest.raises(Unauthorized, match="expired"):
        await users.authenticate_token(token)


async def test_own_tokens_are_listed_without_secrets_and_revoked_by_id(domain: Runtime) -> None:
    tokens = domain.services.tokens
    alice = await user(domain)
    bob = await user(domain, "bob@example.com")
    bob_token = await tokens.create(bob.email)
    created = await tokens.create_own(alice, name="laptop", expires_in_days=30)
    assert created["token"].startswith("aa_") and created["expires_at"] is not None

    listed = await tokens.list_own(alice)
    assert [t["name"] for t in listed] == ["laptop"]
    assert "token" not in listed[0] and "token_hash" not in listed[0]

    with pytest.raises(NotFound, match="API token 1 not found"):
        await tokens.revoke_own(alice, 1)  # bob's
    assert await domain.services.users.authenticate_token(bob_token) == bob
    await tokens.revoke_own(alice, created["id"])
    with pytest.raises(NotFound):
        await tokens.revoke_own(alice, created["id"])
    assert await tokens.list_own(alice) == []
    with pytest.raises(Unauthorized, match="invalid or revoked"):
        await domain.services.users.authenticate_token(created["token"])


async def test_an_operator_revocation_applies_at_once_in_this_process(domain: Runtime) -> None:
    users = domain.services.users
    users.actors = domain.services.tokens.actors = ActorCache(60.0, clock=Clock())
    alice = await user(domain)
    token = await domain.services.tokens.create(alice.email, name="ci")
    assert await users.authenticate_token(token) == alice
    listing = await domain.services.tokens.listing(None)
    assert [(t["id"], t["user"], t["name"], t["revoked_at"]) for t in listing] == [
        (1, alice.email, "ci", None)
    ]

    await domain.services.tokens.revoke(1)

    with pytest.raises(Unauthorized, match="invalid or revoked"):
        await users.authenticate_token(token)
    assert (await domain.services.tokens.listing(alice.email))[0]["revoked_at"] is not None
    with pytest.raises(NotFound, match="API token 9 not found"):
        await domain.services.tokens.revoke(9)


async def test_a_token_lifetime_must_be_positive_and_bounded(domain: Runtime) -> None:
    alice = await user(domain)
    for lifetime in (timedelta(0), timedelta(days=-1), timedelta(days=3651)):
        with pytest.raises(ValidationFailed, match="check expires_in"):
            await domain.services.tokens.create(alice.email, expires_in=lifetime)


async def test_signing_in_drops_the_users_sessions_past_their_lifetime(domain: Runtime) -> None:
    alice = await user(domain)
    old = await signed_in(domain)
    recent = await signed_in(domain)
    async with domain.db.session() as session:
        await session.execute(
            update(UserSession)
            .where(UserSession.id == old.sid)
            .values(created_at=utcnow() - timedelta(days=8))
        )
    assert await domain.services.users.resolve(None, old) is None  # expired already

    await signed_in(domain)

    async with domain.db.read_session() as session:
        left = set(await session.scalars(select(UserSession.id)))
    assert old.sid not in left and recent.sid in left and len(left) == 2
    assert await domain.services.users.resolve(None, recent) == alice
