"""Shadow work waits for a gap in client traffic, and runs one at a time in it.

A twin comparing in the background runs on the same event loop as the client requests; started
while they are in flight, its steps take turns with theirs, and the clients wait for its share.
`ClientGate` counts the client requests in flight in the process. `ClientGate.turn` waits until
there are none and no other work started in a gap is running, then takes that one lane; the
work runs whole, and `release` hands the lane to the next waiting one if the gap lasts. A client
that arrives while such work runs so waits for that one piece of work at most, never for a
crowd of twins started at once.

Work is not parked midway: by then it may hold what clients need too (a pooled database
connection, a lock), and parking it would make them wait for it instead. Under traffic that
leaves no gap, work waits `max_wait_s` at most and then runs like any other task, outside the
lane, so shadow work still progresses (and still counts against its timeout and budget).
"""

from __future__ import annotations

import asyncio
from collections import deque


class ClientGate:
    """Client requests in flight in this process, and the lane for work that gives way."""

    __slots__ = ("_lane_taken", "_waiting", "busy")

    def __init__(self) -> None:
        self.busy = 0
        self._lane_taken = False
        self._waiting: deque[asyncio.Future[bool]] = deque()

    def enter(self) -> None:
        """A client request started."""
        self.busy += 1

    def leave(self) -> None:
        """A client request ended: with none left, the next waiting work may start."""
        self.busy -= 1
        if not self.busy and self._waiting:
            self._hand_on()

    async def turn(self, max_wait_s: float) -> bool:
        """Wait for a gap in client traffic with the lane free, `max_wait_s` at most.

        True: the lane is taken (pass it on with `release(True)` once the work ends); False:
        the wait ran out, and the work runs outside the lane.
        """
        if not self.busy and not self._lane_taken:
            self._lane_taken = True
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiting.append(waiter)
        timer = loop.call_later(max_wait_s, _settle, waiter, False)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release(True)  # handed the lane, then cancelled before using it
            raise
        finally:
            timer.cancel()
            if waiter in self._waiting:  # timed out or cancelled: no longer waiting
                self._waiting.remove(waiter)

    def release(self, holds_lane: bool) -> None:
        """The work that `turn` let go has ended."""
        if holds_lane:
            self._lane_taken = False
            self._hand_on()

    def _hand_on(self) -> None:
        while self._waiting and not self.busy and not self._lane_taken:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self._lane_taken = True
                waiter.set_result(True)


def _settle(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)
