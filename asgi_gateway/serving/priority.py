"""Shadow work gives way to client requests, one step at a time.

A coroutine runs as a series of steps, one between each of its awaits, and asyncio runs ready
steps in turn: a twin comparing in the background would take turns with every client request
served meanwhile, and the client would wait for the twin's share. `ClientGate` counts the client
requests in flight; `Yielding` drives a coroutine itself and, before each step, parks it while
any client request is in flight. When the last one ends, parked coroutines go on one at a time:
the first takes a step, and when that step ends the next one is woken, so the loop looks for new
client requests between any two of them instead of running a crowd of twin steps first. A client
request that arrives while twins run so waits for one twin step at most (a fraction of a
millisecond), not for whole twins.

Under sustained load the gaps may not come: a coroutine that has been parked for `max_wait_s`
in all runs on like any other task from then on, so shadow work still progresses, and still
counts against its own timeout and the shadow budget.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine, Generator
from typing import Any


class ClientGate:
    """The client requests in flight in this process, and the coroutines parked meanwhile."""

    __slots__ = ("_parked", "busy")

    def __init__(self) -> None:
        self.busy = 0
        self._parked: deque[asyncio.Future[None]] = deque()

    def enter(self) -> None:
        """A client request started."""
        self.busy += 1

    def leave(self) -> None:
        """A client request ended: with none left, the first parked coroutine goes on."""
        self.busy -= 1
        if not self.busy and self._parked:
            self.pass_on()

    def pass_on(self) -> None:
        """Wake the next parked coroutine, if no client request is in flight."""
        while self._parked and not self.busy:
            waiter = self._parked.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def park(self, timeout_s: float) -> asyncio.Future[None]:
        """A future done when this coroutine's turn comes, or after `timeout_s`."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._parked.append(waiter)
        timer = loop.call_later(timeout_s, _release, waiter)
        waiter.add_done_callback(lambda _: timer.cancel())
        return waiter


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Yielding:
    """Await a coroutine, running its steps one at a time only while `gate` has no client.

    The coroutine's own awaits pass through unchanged (same task, same context; cancellation
    and exceptions reach it as usual); only the moments between them are held back, for at
    most `max_wait_s` in all.
    """

    __slots__ = ("_coro", "_gate", "_max_wait_s")

    def __init__(self, coro: Coroutine[Any, Any, Any], gate: ClientGate, max_wait_s: float) -> None:
        self._coro = coro
        self._gate = gate
        self._max_wait_s = max_wait_s

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, gate = self._coro, self._gate
        loop = asyncio.get_running_loop()
        left_s = self._max_wait_s
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                while gate.busy and left_s > 0 and error is None:
                    parked_at = loop.time()
                    try:
                        yield from gate.park(left_s)
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # cancelled while parked: tell the coroutine
                        error = exc
                    left_s -= loop.time() - parked_at
                try:
                    signal = coro.send(value) if error is None else coro.throw(error)
                except StopIteration as stop:
                    return stop.value
                finally:
                    gate.pass_on()  # this step is over: the next parked coroutine's turn
                value, error = None, None
                try:
                    value = yield signal
                except GeneratorExit:
                    raise
                except BaseException as exc:  # thrown into the task: it is the coroutine's
                    error = exc
                if isinstance(error, asyncio.CancelledError):
                    left_s = 0.0  # cancelled: let it clean up without waiting for a gap
        except GeneratorExit:
            coro.close()
            raise
