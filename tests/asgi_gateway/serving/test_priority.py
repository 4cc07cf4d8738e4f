"""Shadow work waits for a gap in client traffic and runs one at a time in it (`ClientGate`).

The tests drive the gate by hand, as the gateway does around each client request (enter,
leave), and the work records what it did in a shared log: the order of the log is the proof.
No timer decides anything, except where a test shows the bound on waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from asgi_gateway.serving.priority import ClientGate

LONG_S = 60.0  # never reached: the tests open the gate themselves


async def settle() -> None:
    """Let every ready callback run (a few loop turns)."""
    for _ in range(10):
        await asyncio.sleep(0)


def gapped(
    gate: ClientGate, log: list[str], max_wait_s: float = LONG_S
) -> Callable[..., Awaitable[None]]:
    """Work that waits for its turn, logs its start, runs until `until` is set, logs its end."""

    async def work(name: str, until: asyncio.Event | None = None) -> None:
        holds_lane = await gate.turn(max_wait_s)
        try:
            log.append(f"{name} starts")
            if until is not None:
                await until.wait()
            log.append(f"{name} ends")
        finally:
            gate.release(holds_lane)

    return work


async def test_work_waits_while_a_client_request_is_in_flight() -> None:
    gate, log = ClientGate(), []
    work = gapped(gate, log)
    gate.enter()
    task = asyncio.ensure_future(work("t"))
    await settle()
    assert log == []
    gate.leave()
    await task
    assert log == ["t starts", "t ends"]


async def test_in_a_gap_works_run_one_at_a_time() -> None:
    gate, log = ClientGate(), []
    work = gapped(gate, log)
    first_done = asyncio.Event()
    first = asyncio.ensure_future(work("a", first_done))
    second = asyncio.ensure_future(work("b"))
    await settle()
    # No client in flight, yet the second waits for the first: one piece of work in a gap.
    assert log == ["a starts"]
    first_done.set()
    await asyncio.gather(first, second)
    assert log == ["a starts", "a ends", "b starts", "b ends"]


async def test_the_next_waits_for_the_gap_even_when_the_lane_frees() -> None:
    gate, log = ClientGate(), []
    work = gapped(gate, log)
    first_done = asyncio.Event()
    first = asyncio.ensure_future(work("a", first_done))
    second = asyncio.ensure_future(work("b"))
    await settle()
    gate.enter()  # a client arrives while the first runs: it is not parked midway ...
    first_done.set()
    await first
    await settle()
    assert log == ["a starts", "a ends"]  # ... but the second does not start meanwhile
    gate.leave()
    await second
    assert log[-2:] == ["b starts", "b ends"]


async def test_cancelled_while_waiting_leaves_the_lane_to_the_others() -> None:
    gate, log = ClientGate(), []
    work = gapped(gate, log)
    gate.enter()
    cancelled = asyncio.ensure_future(work("x"))
    other = asyncio.ensure_future(work("y"))
    await settle()
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    gate.leave()
    await other
    assert log == ["y starts", "y ends"]


async def test_handed_the_lane_then_cancelled_before_starting_gives_it_back() -> None:
    gate, log = ClientGate(), []
    work = gapped(gate, log)
    gate.enter()
    first = asyncio.ensure_future(work("x"))
    second = asyncio.ensure_future(work("y"))
    await settle()
    gate.leave()  # the lane goes to the first, which is cancelled before it resumes
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert log == ["y starts", "y ends"]


async def test_under_constant_client_traffic_the_wait_is_bounded() -> None:
    gate, log = ClientGate(), []
    work = gapped(gate, log, max_wait_s=0.05)
    gate.enter()  # and never leaves
    await asyncio.gather(work("s"), work("t"))
    assert sorted(log) == ["s ends", "s starts", "t ends", "t starts"]
    assert not gate._waiting  # the timed-out waiters are gone, not piling up
    gate.leave()
