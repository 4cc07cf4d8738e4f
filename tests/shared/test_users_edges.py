"""A user removed behind a signed-in actor's back, and the command line acting for a user."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from shared.config import load_settings
from shared.errors import NotFound, Unauthorized
from shared.runtime import Runtime
from tests.shared.test_jobs import make_actor


@pytest.fixture
async def domain(environ: dict[str, str]) -> AsyncIterator[Runtime]:
    runtime = Runtime(load_settings(environ))
    yield runtime
    await runtime.aclose()


async def test_an_actor_whose_user_row_is_gone_is_unauthorized(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com")
    assert (await domain.services.users.me(alice))["email"] == "alice@example.com"
    async with domain.db.session() as session:
        await session.execute(text("DELETE FROM users WHERE id = :id"), {"id": alice.user_id})
    with pytest.raises(Unauthorized, match="the signed-in user no longer exists"):
        await domain.services.users.me(alice)
    with pytest.raises(Unauthorized, match="the signed-in user no longer exists"):
        await domain.services.users.change_password(
            alice, "pw-alice@example.com", "a-new-password-123"
        )


async def test_the_command_line_acts_for_a_user_by_email(domain: Runtime) -> None:
    alice = await make_actor(domain, "alice@example.com", is_admin=True)
    assert await domain.services.users.actor_for("alice@example.com") == alice
    with pytest.raises(NotFound, match=r"nobody@example\.com"):
        await domain.services.users.actor_for("nobody@example.com")
