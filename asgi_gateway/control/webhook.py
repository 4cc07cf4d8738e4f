"""The rollout webhook: delivers the queued notices (`rollout_notices`) as JSON POSTs.

Notices are written in the same transaction as the step, pause, abort or rollback they tell of,
so none is lost and none is sent for a change that did not happen. Any worker may deliver one:
it claims it for a while with a compare-and-set, posts it, and marks it delivered, or schedules
a retry with exponential backoff (giving up after MAX_ATTEMPTS). The webhook's failures never
reach the guard or the rollouts: they only wait in this table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.tables import notices_table

_log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
MAX_BACKOFF_S = 300.0
CLAIM_S = 30.0  # a claimed notice not settled within this (its worker died) is claimed again
KEEP_NOTICES = timedelta(days=7)
_BATCH = 20


def backoff_s(attempts: int) -> float:
    """Seconds before retry number `attempts` (1, 2, 4, ... up to MAX_BACKOFF_S), jittered."""
    return min(2.0 ** (attempts - 1), MAX_BACKOFF_S) * random.uniform(0.8, 1.2)


class WebhookSender:
    """Posts due notices to `url` from one worker; `wake()` makes it look at once."""

    def __init__(
        self,
        engine: AsyncEngine,
        url: str,
        *,
        poll_s: float = 1.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.engine = engine
        self.url = url
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Open the HTTP client and start delivering (on the running loop)."""
        if self._task is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers={"User-Agent": "asgi-gateway-rollouts"},
            )
            self._task = asyncio.get_running_loop().create_task(self._run(), name="webhook")

    async def stop(self) -> None:
        """Stop delivering; notices not yet sent stay queued for any worker."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def wake(self) -> None:
        """A notice was just queued: deliver it now rather than at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            try:
                while await self.deliver_due() == _BATCH:
                    pass
            except (SQLAlchemyError, OSError) as exc:
                if not failing:
                    _log.warning("cannot read the webhook notices (will retry): %s", exc)
                failing = True
            except Exception:  # keep delivering
                _log.exception("webhook delivery failed")
            else:
                failing = False

    async def deliver_due(self) -> int:
        """Claim and post the notices that are due; returns how many were claimed."""
        now = datetime.now(UTC)
        due = (
            select(notices_table.c.id)
            .where(
                notices_table.c.status == "pending",
                notices_table.c.next_attempt_at <= now,
                _unclaimed(now),
            )
            .order_by(notices_table.c.id)
            .limit(_BATCH)
        )
        async with self.engine.connect() as conn:
            ids = list((await conn.execute(due)).scalars())
        for notice_id in ids:
            claimed = await self._claim(notice_id, now)
            if claimed is not None:
                await self._post(notice_id, *claimed)
        return len(ids)

    async def _claim(self, notice_id: int, now: datetime) -> tuple[dict[str, Any], int] | None:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(notices_table)
                .where(
                    notices_table.c.id == notice_id,
                    notices_table.c.status == "pending",
                    _unclaimed(now),
                )
                .values(claimed_until=now + timedelta(seconds=CLAIM_S))
            )
            if result.rowcount != 1:
                return None  # another worker has it
            row = (
                await conn.execute(
                    select(notices_table.c.payload, notices_table.c.attempts).where(
                        notices_table.c.id == notice_id
                    )
                )
            ).one()
        return dict(row.payload), int(row.attempts)

    async def _post(self, notice_id: int, payload: dict[str, Any], attempts: int) -> None:
        session = self._session
        assert session is not None, "start() opens the HTTP client"
        error: str | None = None
        try:
            async with session.post(self.url, json=payload) as response:
                if not 200 <= response.status < 300:
                    error = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        attempts += 1
        now = datetime.now(UTC)
        if error is None:
            values: dict[str, Any] = {"status": "delivered", "attempts": attempts}
        elif attempts >= MAX_ATTEMPTS:
            values = {"status": "failed", "attempts": attempts, "last_error": error}
            _log.warning(
                "gave up on webhook notice %s (%s of %s) after %s attempts: %s",
                notice_id,
                payload.get("event"),
                payload.get("endpoint"),
                attempts,
                error,
            )
        else:
            retry_at = now + timedelta(seconds=backoff_s(attempts))
            values = {"attempts": attempts, "last_error": error, "next_attempt_at": retry_at}
            _log.info("webhook notice %s failed (%s); retrying at %s", notice_id, error, retry_at)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(notices_table)
                .where(notices_table.c.id == notice_id)
                .values(claimed_until=None, **values)
            )


async def prune_notices(engine: AsyncEngine, now: datetime | None = None) -> int:
    """Delete notices older than KEEP_NOTICES (sent, given up, or never sent for want of a
    webhook); returns how many."""
    oldest = (now or datetime.now(UTC)) - KEEP_NOTICES
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(notices_table).where(notices_table.c.created_at < oldest)
        )
    return int(result.rowcount or 0)


def _unclaimed(now: datetime) -> Any:
    return or_(notices_table.c.claimed_until.is_(None), notices_table.c.claimed_until < now)
