"""Microsoft 365 accounts against the fake identity platform and Graph over real HTTP: sign-in
creates or links users, tokens are encrypted at rest, refreshed before expiry, marked for
reconnection when refused, revoked on sign-out everywhere and disabling; each user's Graph
calls carry that user's own token, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update

from shared.auth import Actor
from shared.config import load_settings
from shared.delegation import acting_for
from shared.errors import (
    Conflict,
    Forbidden,
    M365ReconnectRequired,
    M365SignInFailed,
    NotFound,
    RemoteCalendarNotFound,
    Unauthorized,
)
from shared.inputs.archive import parse_archive_config
from shared.inputs.calendars import parse_calendar
from shared.models import ActionLog, MicrosoftAccount, utcnow
from shared.runtime import Runtime
from shared.services import MicrosoftAccountService
from shared.services.users import SignIn
from shared.sessions import SessionIdentity
from tests.fakes.graph_server import FakeGraphServer
from tests.fakes.identity import FakeIdentity, consent, m365_environ
from tests.shared.test_jobs import make_job, runs_of
from tests.shared.test_scheduler import scheduler, until

ALICE, BOB = "alice@contoso.com", "bob@contoso.com"
REDIRECT = "http://127.0.0.1:9/login/microsoft/callback"
WINDOW = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))


@pytest.fixture
def identity() -> FakeIdentity:
    tenant = FakeIdentity(redirect_uris={REDIRECT})
    tenant.add_account(ALICE, "Alice Archer")
    tenant.add_account(BOB, "Bob Baker")
    return tenant


@pytest.fixture
def graph(identity: FakeIdentity) -> Iterator[FakeGraphServer]:
    with FakeGraphServer(base_path="/v1.0", identity=identity) as server:
        server.seed_events("alice-cal", 3, mailbox=ALICE)
        server.seed_events("bob-cal", 3, mailbox=BOB)
        yield server


@pytest.fixture
async def runtime(db_environ: dict[str, str], graph: FakeGraphServer) -> AsyncIterator[Runtime]:
    # No kept tokens: these tests change the stored ones behind the service's back.
    environ = {
        **db_environ,
        **m365_environ(graph.origin, graph.url, REDIRECT),
        "AA_AUTH_CACHE_S": "0",
    }
    runtime = Runtime(load_settings(environ))
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def caching(db_environ: dict[str, str], graph: FakeGraphServer) -> AsyncIterator[Runtime]:
    """A runtime that keeps opened tokens for a minute."""
    environ = {
        **db_environ,
        **m365_environ(graph.origin, graph.url, REDIRECT),
        "AA_AUTH_CACHE_S": "60",
    }
    runtime = Runtime(load_settings(environ))
    yield runtime
    await runtime.aclose()


def accounts(runtime: Runtime) -> MicrosoftAccountService:
    assert runtime.services.microsoft is not None
    return runtime.services.microsoft


async def sign_in(runtime: Runtime, email: str, *, connecting: Actor | None = None) -> SignIn:
    """The whole round trip as a browser makes it: authorize, consent, redeem the code."""
    service = accounts(runtime)
    request = await service.begin_sign_in()
    answer = await asyncio.to_thread(consent, request.url, email)
    assert answer["state"] == request.state
    signed_in = await service.complete_sign_in(
        answer["code"], request.code_verifier, connecting=connecting
    )
    if connecting is None:
        assert signed_in is not None
        return signed_in
    return SignIn(connecting, "")


async def stored(runtime: Runtime, user_id: int) -> MicrosoftAccount:
    async with runtime.db.read_session() as session:
        row = await session.scalar(
            select(MicrosoftAccount).where(MicrosoftAccount.user_id == user_id)
        )
    assert row is not None
    return row


async def expire_soon(runtime: Runtime, user_id: int, *, in_s: float) -> None:
    async with runtime.db.session() as session:
        await session.execute(
            update(MicrosoftAccount)
            .where(MicrosoftAccount.user_id == user_id)
            .values(expires_at=utcnow() + timedelta(seconds=in_s))
        )


async def test_first_sign_in_creates_the_user_bound_to_its_mailbox(runtime: Runtime) -> None:
    signed_in = await sign_in(runtime, ALICE)
    me = await runtime.services.users.me(signed_in.actor)
    assert me["email"] == ALICE and me["name"] == "Alice Archer" and not me["is_admin"]
    # The session is a real one: it resolves like a password sign-in's.
    actor = await runtime.services.users.actor_of_session(
        SessionIdentity(signed_in.actor.user_id, signed_in.sid)
    )
    assert actor is not None and actor.email == ALICE
    # A Microsoft-only user has no password that works.
    with pytest.raises(Unauthorized):
        await runtime.services.users.sign_in(ALICE, "!microsoft")
    again = await sign_in(runtime, ALICE)
    assert again.actor.user_id == signed_in.actor.user_id


async def test_sign_in_links_an_existing_user_by_mail_address(runtime: Runtime) -> None:
    created = await runtime.services.users.create(BOB.upper(), "long-password", is_admin=True)
    signed_in = await sign_in(runtime, BOB)
    assert signed_in.actor.user_id == created["id"] and signed_in.actor.is_admin
    assert (await stored(runtime, created["id"])).email == BOB


async def test_tokens_are_encrypted_at_rest(runtime: Runtime, identity: FakeIdentity) -> None:
    signed_in = await sign_in(runtime, ALICE)
    issued = [t for t, v in identity.tokens.items() if v.email == ALICE]
    async with runtime.db.read_session() as session:
        rows = (await session.execute(text("SELECT * FROM microsoft_accounts"))).all()
    dump = repr(rows)
    assert issued and not any(token in dump for token in issued)
    token = await accounts(runtime).bearer(signed_in.actor.user_id)
    assert token in issued


async def test_a_token_near_its_end_is_refreshed_before_use(
    runtime: Runtime, identity: FakeIdentity
) -> None:
    user_id = (await sign_in(runtime, ALICE)).actor.user_id
    first = await accounts(runtime).bearer(user_id)
    assert await accounts(runtime).bearer(user_id) == first  # fresh: no refresh
    assert identity.grants("refresh_token") == []
    await expire_soon(runtime, user_id, in_s=60)  # inside the refresh margin
    second = await accounts(runtime).bearer(user_id)
    assert second != first and len(identity.grants("refresh_token")) == 1
    row = await stored(runtime, user_id)
    assert row.expires_at is not None and row.expires_at > utcnow() + timedelta(minutes=30)
    # The rotated refresh token was stored: a second refresh works.
    await expire_soon(runtime, user_id, in_s=-5)
    assert await accounts(runtime).bearer(user_id) not in (first, second)


async def test_concurrent_callers_share_one_refresh(
    runtime: Runtime, identity: FakeIdentity
) -> None:
    user_id = (await sign_in(runtime, ALICE)).actor.user_id
    await expire_soon(runtime, user_id, in_s=-1)
    tokens = await asyncio.gather(*(accounts(runtime).bearer(user_id) for _ in range(5)))
    assert len(set(tokens)) == 1
    # One rotation: the fake refuses a refresh token used twice, so a second would have failed.
    assert [r.status for r in identity.grants("refresh_token")] == [200]


async def test_a_refused_refresh_asks_the_user_to_reconnect(
    runtime: Runtime, identity: FakeIdentity
) -> None:
    user_id = (await sign_in(runtime, ALICE)).actor.user_id
    identity.revoke_refresh_tokens(ALICE)
    await expire_soon(runtime, user_id, in_s=-1)
    with pytest.raises(M365ReconnectRequired, match="reconnect Microsoft 365") as raised:
        await accounts(runtime).bearer(user_id)
    assert raised.value.status == 409 and raised.value.code == "m365_reconnect_required"
    status = await accounts(runtime).status(user_id)
    assert status is not None and status.needs_reconnect and "invalid_grant" in str(status.reason)
    # Signing in again clears it.
    await sign_in(runtime, ALICE)
    status = await accounts(runtime).status(user_id)
    assert status is not None and not status.needs_reconnect
    await accounts(runtime).bearer(user_id)


async def test_the_pkce_verifier_is_checked_by_the_identity_platform(runtime: Runtime) -> None:
    service = accounts(runtime)
    request = await service.begin_sign_in()
    answer = await asyncio.to_thread(consent, request.url, ALICE)
    with pytest.raises(M365SignInFailed, match="Code_Verifier does not match"):
        await service.complete_sign_in(answer["code"], "x" * 64)


async def test_remote_discovery_uses_the_callers_own_token(
    runtime: Runtime, graph: FakeGraphServer, identity: FakeIdentity
) -> None:
    alice = (await sign_in(runtime, ALICE)).actor
    bob = (await sign_in(runtime, BOB)).actor
    listed = await runtime.services.calendars.remote(alice, None)
    assert [c["id"] for c in listed["data"]] == ["alice-cal"]
    sent = graph.requests[-1].authorization
    assert sent is not None and identity.holder(sent) == ALICE
    # Even a mailbox planted on bob's row reaches nothing of alice's: Graph refuses his token.
    async with runtime.db.session() as session:
        await session.execute(
            text("UPDATE users SET mailbox = :m WHERE id = :i"), {"m": ALICE, "i": bob.user_id}
        )
    with pytest.raises(RemoteCalendarNotFound, match="403"):
        await runtime.services.calendars.remote(bob, None)


async def test_a_user_never_reads_another_users_calendar(runtime: Runtime) -> None:
    alice = (await sign_in(runtime, ALICE)).actor
    bob = (await sign_in(runtime, BOB)).actor
    mine = await runtime.services.calendars.create(
        alice,
        parse_calendar(
            {"name": "A", "role": "source", "provider": "graph", "provider_id": "alice-cal"}
        ),
    )
    events = await runtime.services.calendars.remote_events(alice, mine["id"], *WINDOW, UTC)
    assert len(events) == 3
    with pytest.raises(NotFound):
        await runtime.services.calendars.remote_events(bob, mine["id"], *WINDOW, UTC)
    with pytest.raises(Forbidden):
        await runtime.services.calendars.create(
            bob,
            parse_calendar(
                {"name": "B", "role": "source", "provider": "graph", "provider_id": "alice-cal"}
            ),
        )


async def test_a_run_with_dead_access_fails_with_a_message_and_never_crashes(
    runtime: Runtime, identity: FakeIdentity
) -> None:
    alice = (await sign_in(runtime, ALICE)).actor

    def remote(name: str, provider_id: str, role: str) -> dict[str, object]:
        return parse_calendar(
            {"name": name, "role": role, "provider": "graph", "provider_id": provider_id}
        )

    source = await runtime.services.calendars.create(alice, remote("S", "alice-cal", "source"))
    archive = await runtime.services.calendars.create(
        alice, parse_calendar({"name": "Vault", "role": "archive"})
    )
    config = await runtime.services.archive.create_config(
        alice,
        {
            "name": "Nightly",
            "source_calendar_id": source["id"],
            "archive_calendar_id": archive["id"],
        },
    )
    identity.revoke_refresh_tokens(ALICE)
    await expire_soon(runtime, alice.user_id, in_s=-1)
    # As the scheduler runs it: no actor, the job owner's token.
    with acting_for(alice.user_id), pytest.raises(M365ReconnectRequired):
        await runtime.services.archive.run(None, config["id"], start=WINDOW[0], end=WINDOW[1])
    async with runtime.db.read_session() as session:
        log = (await session.scalars(select(ActionLog))).one()
    assert log.status == "failed" and "reconnect Microsoft 365" in log.errors[0]


async def test_sign_out_everywhere_and_disabling_revoke_the_stored_tokens(
    runtime: Runtime,
) -> None:
    alice = (await sign_in(runtime, ALICE)).actor
    await runtime.services.users.sign_out_everywhere(alice)
    row = await stored(runtime, alice.user_id)
    assert row.access_token is None and row.refresh_token is None and row.revoked_at
    with pytest.raises(M365ReconnectRequired, match="you signed out everywhere"):
        await accounts(runtime).bearer(alice.user_id)
    bob = (await sign_in(runtime, BOB)).actor
    await runtime.services.users.set_disabled(BOB, True)
    with pytest.raises(M365ReconnectRequired, match="disabled"):
        await accounts(runtime).bearer(bob.user_id)
    with pytest.raises(Unauthorized, match="disabled"):
        await sign_in(runtime, BOB)


async def test_connecting_needs_the_users_own_address(runtime: Runtime) -> None:
    created = await runtime.services.users.create("carol@example.com", "long-password")
    carol = Actor(created["id"], created["email"], False)
    with pytest.raises(Conflict, match="is not yours"):
        await sign_in(runtime, ALICE, connecting=carol)
    await runtime.services.users.set_mailbox("carol@example.com", ALICE)
    await sign_in(runtime, ALICE, connecting=carol)
    assert (await stored(runtime, carol.user_id)).email == ALICE
    assert await accounts(runtime).disconnect(carol)
    assert await accounts(runtime).status(carol.user_id) is None
    with pytest.raises(M365ReconnectRequired, match="has not connected"):
        await accounts(runtime).bearer(carol.user_id)


async def test_a_token_microsoft_ended_early_is_renewed_once(
    runtime: Runtime, identity: FakeIdentity
) -> None:
    alice = (await sign_in(runtime, ALICE)).actor
    identity.expire_access_tokens(ALICE)  # stored expiry still an hour away
    listed = await runtime.services.calendars.remote(alice, None)
    assert [c["id"] for c in listed["data"]] == ["alice-cal"]
    assert [r.status for r in identity.grants("refresh_token")] == [200]
    # Ended again and the renewal refused: the user is asked to reconnect.
    identity.expire_access_tokens(ALICE)
    identity.revoke_refresh_tokens(ALICE)
    with pytest.raises(M365ReconnectRequired, match="invalid_grant"):
        await runtime.services.calendars.remote(alice, None)


async def test_a_scheduled_job_uses_its_owners_token_and_survives_dead_access(
    runtime: Runtime, graph: FakeGraphServer, identity: FakeIdentity
) -> None:
    alice = (await sign_in(runtime, ALICE)).actor
    await sign_in(runtime, BOB)  # another user's token exists, and must not be used
    source = await runtime.services.calendars.create(
        alice,
        parse_calendar(
            {"name": "S", "role": "source", "provider": "graph", "provider_id": "alice-cal"}
        ),
    )
    vault = await runtime.services.calendars.create(
        alice, parse_calendar({"name": "Vault", "role": "archive"})
    )
    config = await runtime.services.archive.create_config(
        alice,
        parse_archive_config(
            {"name": "N", "source_calendar_id": source["id"], "archive_calendar_id": vault["id"]}
        ),
    )
    job = await make_job(runtime, alice, config["id"], schedule="every 1s")
    jobs = scheduler(runtime)
    await jobs.start()
    try:

        async def finished(status: str) -> list[Any]:
            return [r for r in await runs_of(runtime, job["id"]) if r.status == status]

        await until("a successful run", lambda: finished("succeeded"))
        views = [r for r in graph.requests if r.path.endswith("/calendarView")]
        assert views and {identity.holder(r.authorization) for r in views} == {ALICE}

        identity.revoke_refresh_tokens(ALICE)
        identity.expire_access_tokens(ALICE)
        await expire_soon(runtime, alice.user_id, in_s=-1)
        failed = (await until("a failed run", lambda: finished("failed")))[0]
        assert "reconnect Microsoft 365" in str(failed.error)

        async def failed_twice() -> bool:
            return len(await finished("failed")) >= 2

        # The scheduler keeps going: the next scheduled time is claimed and fails the same way.
        await until("a second failed run", failed_twice)
    finally:
        await jobs.stop()
    status = await accounts(runtime).status(alice.user_id)
    assert status is not None and status.needs_reconnect


async def test_kept_tokens_spare_the_database_and_revocation_drops_them_at_once(
    caching: Runtime, identity: FakeIdentity
) -> None:
    alice = (await sign_in(caching, ALICE)).actor
    first = await accounts(caching).bearer(alice.user_id)
    async with caching.db.session() as session:  # another process ends it: unseen for a while
        await session.execute(update(MicrosoftAccount).values(access_token="unreadable"))
    assert await accounts(caching).bearer(alice.user_id) == first
    await caching.services.users.sign_out_everywhere(alice)  # this process: at once
    with pytest.raises(M365ReconnectRequired, match="you signed out everywhere"):
        await accounts(caching).bearer(alice.user_id)


async def test_a_kept_token_graph_refuses_is_never_reused(
    caching: Runtime, identity: FakeIdentity
) -> None:
    alice = (await sign_in(caching, ALICE)).actor
    await caching.services.calendars.remote(alice, None)
    identity.expire_access_tokens(ALICE)
    await caching.services.calendars.remote(alice, None)  # renewed past the kept one
    assert [r.status for r in identity.grants("refresh_token")] == [200]
    identity.expire_access_tokens(ALICE)
    identity.revoke_refresh_tokens(ALICE)
    with pytest.raises(M365ReconnectRequired):
        await caching.services.calendars.remote(alice, None)


async def test_tokens_sealed_with_another_key_ask_for_reconnection(
    runtime: Runtime, db_environ: dict[str, str], graph: FakeGraphServer
) -> None:
    alice = (await sign_in(runtime, ALICE)).actor
    environ = {
        **db_environ,
        **m365_environ(graph.origin, graph.url, REDIRECT),
        "AA_TOKEN_KEY": "another-key-" + "k" * 32,
    }
    rekeyed = Runtime(load_settings(environ))
    try:
        with pytest.raises(M365ReconnectRequired, match="cannot be decrypted"):
            await accounts(rekeyed).bearer(alice.user_id)
        status = await accounts(rekeyed).status(alice.user_id)
        assert status is not None and status.needs_reconnect
        # Signing in again seals new tokens with the new key.
        await sign_in(rekeyed, ALICE)
        await accounts(rekeyed).bearer(alice.user_id)
    finally:
        await rekeyed.aclose()
