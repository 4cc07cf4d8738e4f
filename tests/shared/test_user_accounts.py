"""Accounts as admins and users manage them from the pages: listing, admin rights, time zones
(SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from shared.auth import Actor
from shared.errors import NotFound, ValidationFailed
from shared.pagination import PageRequest
from shared.runtime import Runtime
from shared.sessions import SessionIdentity

PASSWORD = "correct-horse-battery"


async def person(runtime: Runtime, email: str) -> Actor:
    created = await runtime.services.users.create(email, PASSWORD)
    return Actor(created["id"], created["email"], created["is_admin"])


async def test_the_listing_is_by_email_and_shows_who_is_disabled(domain: Runtime) -> None:
    users = domain.services.users
    for email in ("carol@example.com", "alice@example.com", "bob@example.com"):
        await person(domain, email)
    await users.set_disabled("bob@example.com", True)
    page = await users.listing(PageRequest(1, 2))
    assert (page.total, [u["email"] for u in page.items]) == (
        3,
        ["alice@example.com", "bob@example.com"],
    )
    assert page.items[0]["disabled_at"] is None
    assert page.items[1]["disabled_at"] is not None
    assert (await users.account(page.items[1]["id"]))["email"] == "bob@example.com"
    with pytest.raises(NotFound, match="user 999999 not found"):
        await users.account(999999)


async def test_admin_rights_apply_to_a_signed_in_session_at_once(domain: Runtime) -> None:
    users = domain.services.users
    alice = await person(domain, "alice@example.com")
    signed = await users.sign_in(alice.email, PASSWORD)
    identity = SessionIdentity(alice.user_id, signed.sid)
    assert (await users.actor_of_session(identity)).is_admin is False  # type: ignore[union-attr]
    assert (await users.set_admin(alice.email, True))["is_admin"] is True
    assert (await users.actor_of_session(identity)).is_admin is True  # type: ignore[union-attr]
    await users.set_admin(alice.email, False)
    assert (await users.actor_of_session(identity)).is_admin is False  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        await users.set_admin("nobody@example.com", True)


async def test_a_time_zone_is_checked_kept_and_cleared(domain: Runtime) -> None:
    users = domain.services.users
    alice = await person(domain, "alice@example.com")
    assert await users.timezone_of(alice) is None
    assert await users.set_timezone(alice, " Europe/Berlin ") == "Europe/Berlin"
    assert await users.timezone_of(alice) == "Europe/Berlin"
    with pytest.raises(ValidationFailed, match="unknown time zone 'Europe'") as caught:
        await users.set_timezone(alice, "Europe")
    assert caught.value.details[0]["field"] == "timezone"
    assert await users.timezone_of(alice) == "Europe/Berlin"
    assert await users.set_timezone(alice, "") is None
    assert await users.timezone_of(alice) is None
