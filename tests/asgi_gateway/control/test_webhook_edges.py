"""Webhook notices (asgi_gateway/control/webhook.py) delivered, retried, given up and pruned."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.control.database import ensure_schema, open_engine
from asgi_gateway.control.webhook import (
    KEEP_NOTICES,
    MAX_ATTEMPTS,
    MAX_BACKOFF_S,
    WebhookSender,
    backoff_s,
    prune_notices,
)
from asgi_gateway.tables import notices_table
from tests.fakes.webhook_receiver import WebhookReceiver


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = open_engine(f"sqlite+aiosqlite:///{tmp_path / 'flags.db'}")
    await ensure_schema(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


async def queue(
    engine: AsyncEngine, *, attempts: int = 0, created_at: datetime | None = None
) -> int:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(notices_table).values(
                endpoint="appointments.list",
                event="step",
                payload={"event": "step", "endpoint": "appointments.list", "percent": 5},
                created_at=created_at or now,
                attempts=attempts,
                next_attempt_at=now,
                status="pending",
            )
        )
        return int(result.inserted_primary_key[0])


async def notice(engine: AsyncEngine, notice_id: int) -> Any:
    async with engine.connect() as conn:
        query = select(notices_table).where(notices_table.c.id == notice_id)
        return (await conn.execute(query)).one()


async def deliver_once(engine: AsyncEngine, url: str) -> int:
    sender = WebhookSender(engine, url, timeout_s=5)
    sender.start()
    try:
        return await sender.deliver_due()
    finally:
        await sender.stop()


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    for attempts, base in ((1, 1.0), (2, 2.0), (4, 8.0), (30, MAX_BACKOFF_S)):
        assert 0.8 * base <= backoff_s(attempts) <= 1.2 * base


async def test_a_delivered_notice_is_marked_and_not_sent_again(
    engine: AsyncEngine, hook: WebhookReceiver
) -> None:
    notice_id = await queue(engine)
    assert await deliver_once(engine, hook.url) == 1
    row = await notice(engine, notice_id)
    assert (row.status, row.attempts, row.claimed_until) == ("delivered", 1, None)
    assert hook.events("step") == [{"event": "step", "endpoint": "appointments.list", "percent": 5}]
    assert await deliver_once(engine, hook.url) == 0


async def test_an_unreachable_receiver_is_retried_later_with_the_reason(
    engine: AsyncEngine,
) -> None:
    notice_id = await queue(engine)
    before = datetime.now(UTC)
    assert await deliver_once(engine, closed_url()) == 1
    row = await notice(engine, notice_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("ClientConnectorError")
    assert row.next_attempt_at.replace(tzinfo=UTC) > before
    assert await deliver_once(engine, closed_url()) == 0  # not due yet


async def test_a_notice_failing_its_last_attempt_is_given_up_and_logged(
    engine: AsyncEngine, hook: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    notice_id = await queue(engine, attempts=MAX_ATTEMPTS - 1)
    hook.fail_always()
    with caplog.at_level(logging.WARNING, logger="asgi_gateway.control.webhook"):
        await deliver_once(engine, hook.url)
    row = await notice(engine, notice_id)
    assert (row.status, row.attempts, row.last_error) == ("failed", MAX_ATTEMPTS, "HTTP 500")
    assert any(
        f"gave up on webhook notice {notice_id} (step of appointments.list)" in r.getMessage()
        for r in caplog.records
    )


async def test_old_notices_are_pruned_and_recent_ones_kept(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    old = await queue(engine, created_at=now - KEEP_NOTICES - timedelta(hours=1))
    recent = await queue(engine, created_at=now - timedelta(hours=1))
    assert await prune_notices(engine, now) == 1
    async with engine.connect() as conn:
        ids = list((await conn.execute(select(notices_table.c.id))).scalars())
    assert ids == [recent] and old not in ids


async def test_the_sender_survives_a_database_it_cannot_read_and_delivers_once_it_can(
    tmp_path: Path, hook: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    engine = open_engine(f"sqlite+aiosqlite:///{tmp_path / 'later.db'}")  # no tables yet
    sender = WebhookSender(engine, hook.url, poll_s=0.05)
    try:
        with caplog.at_level(logging.WARNING, logger="asgi_gateway.control.webhook"):
            sender.start()
            sender.start()  # already delivering: no second loop
            deadline = time.monotonic() + 20
            while not any(
                "cannot read the webhook notices" in r.getMessage() for r in caplog.records
            ):
                assert time.monotonic() < deadline, "the failed read was not reported"
                await asyncio.sleep(0.05)
        await ensure_schema(engine)
        await queue(engine)
        sender.wake()
        deadline = time.monotonic() + 20
        while not hook.events("step"):
            assert time.monotonic() < deadline, "the notice was not delivered"
            await asyncio.sleep(0.05)
    finally:
        await sender.stop()
        await sender.stop()  # stopping twice is harmless
        await engine.dispose()
