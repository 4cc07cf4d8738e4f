"""Fallback: a safe request whose async twin fails before its first byte is answered by legacy.

"Fails" means it raises, runs past `fallback_timeout`, or starts a 5xx answer. The client then
gets legacy's answer with `X-Served-By: legacy` and `X-Fallback: async-error`; the failure
still counts as an async error everywhere. A twin that has started a non-5xx answer cannot
fall back any more: what it sent cannot be taken back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]

FALLBACK_HEADER = (b"x-fallback", b"async-error")


class Failed(Exception):
    """The twin failed before answering; `status` is how its failure is counted."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class GuardedSend:
    """Forwards the twin's answer unless it starts with a 5xx; stops the deadline once sent."""

    __slots__ = ("deadline", "failed_status", "forwarded", "send")

    def __init__(self, send: Send, deadline: asyncio.Timeout) -> None:
        self.send = send
        self.deadline = deadline
        self.forwarded = False
        self.failed_status = 0

    async def __call__(self, message: Message) -> None:
        if self.failed_status:
            return  # the rest of a failed answer goes nowhere
        if message["type"] == "http.response.start" and not self.forwarded:
            if message["status"] >= 500:
                self.failed_status = message["status"]
                return
            self.forwarded = True
            self.deadline.reschedule(None)  # answering: the fallback deadline no longer applies
        await self.send(message)


async def run_twin(handle: Callable[[Send], Awaitable[None]], send: Send, timeout_s: float) -> None:
    """Run the twin (`handle(send)`); raise Failed when legacy should answer instead."""
    try:
        async with asyncio.timeout(timeout_s) as deadline:
            guarded = GuardedSend(send, deadline)
            await handle(guarded)
    except TimeoutError:
        if guarded.forwarded:
            raise  # the twin's own timeout, mid-answer
        raise Failed(504) from None
    except Exception:
        if guarded.forwarded:
            raise  # mid-answer: only the server can end the connection now
        raise Failed(500) from None
    if guarded.failed_status:
        raise Failed(guarded.failed_status)
    if not guarded.forwarded:
        raise Failed(500)  # ended without answering


def with_fallback_header(send: Send) -> Send:
    """`send` adding `X-Fallback: async-error` to the answer."""

    async def send_tagged(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), FALLBACK_HEADER]
        await send(message)

    return send_tagged
