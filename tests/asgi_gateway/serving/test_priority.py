"""Shadow work gives way to client requests: `ClientGate` and `Yielding`, step by step.

Each coroutine here records its steps in a shared log, and the tests drive the gate by hand
(enter/leave as the gateway does around a client request), so the order of steps is the
proof: no timers decide anything, except where a test shows the bound on waiting.
"""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from asgi_gateway.serving.priority import ClientGate, Yielding

LONG_S = 60.0  # never reached: the tests open the gate themselves


async def settle() -> None:
    """Let every ready callback run (a few loop turns)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def stepper(log: list[str], name: str, steps: int) -> str:
    for n in range(steps):
        log.append(f"{name}{n}")
        await asyncio.sleep(0)
    return f"{name} done"


async def test_nothing_runs_while_a_client_request_is_in_flight() -> None:
    gate, log = ClientGate(), []
    gate.enter()
    task = asyncio.ensure_future(Yielding(stepper(log, "t", 3), gate, LONG_S))
    await settle()
    assert log == []
    gate.leave()
    assert await task == "t done"
    assert log == ["t0", "t1", "t2"]


async def test_a_client_request_arriving_midway_parks_the_rest() -> None:
    gate, log = ClientGate(), []
    first_step = asyncio.Event()

    async def work() -> None:
        log.append("a")
        first_step.set()
        await asyncio.sleep(0)
        log.append("b")

    task = asyncio.ensure_future(Yielding(work(), gate, LONG_S))
    await first_step.wait()
    gate.enter()  # a client request arrives between the two steps
    await settle()
    assert log == ["a"]
    gate.leave()
    await task
    assert log == ["a", "b"]


async def test_parked_coroutines_go_on_one_step_at_a_time() -> None:
    gate, log = ClientGate(), []
    gate.enter()
    tasks = [asyncio.ensure_future(Yielding(stepper(log, name, 2), gate, LONG_S)) for name in "xyz"]
    await settle()
    gate.leave()
    # Only the first is woken; each step hands the turn on. A client request arriving now
    # finds at most one step ahead of it, not all three coroutines.
    await asyncio.sleep(0)
    gate.enter()
    await settle()
    assert log == ["x0"]
    gate.leave()
    await asyncio.gather(*tasks)
    assert sorted(log) == ["x0", "x1", "y0", "y1", "z0", "z1"]


async def test_results_exceptions_and_context_pass_through() -> None:
    gate = ClientGate()
    marker = contextvars.ContextVar("marker", default="unset")

    async def reads_context() -> tuple[str, asyncio.Task[object] | None]:
        await asyncio.sleep(0)
        return marker.get(), asyncio.current_task()

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("the twin's own error")

    async def outer() -> tuple[str, bool]:
        marker.set("set in the task")
        seen, task = await Yielding(reads_context(), gate, LONG_S)
        return seen, task is asyncio.current_task()

    assert await asyncio.create_task(outer()) == ("set in the task", True)
    with pytest.raises(ValueError, match="the twin's own error"):
        await Yielding(fails(), gate, LONG_S)


async def test_cancelling_a_parked_coroutine_lets_it_clean_up_and_wakes_no_one_twice() -> None:
    gate, log = ClientGate(), []

    async def cleans_up() -> None:
        try:
            log.append("started")
            await asyncio.sleep(0)
            log.append("never")
        finally:
            log.append("cleaned up")

    task = asyncio.ensure_future(Yielding(cleans_up(), gate, LONG_S))
    await asyncio.sleep(0)
    assert log == ["started"]
    gate.enter()
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["started", "cleaned up"]  # while the client request is still in flight
    other = asyncio.ensure_future(Yielding(stepper(log, "n", 1), gate, LONG_S))
    await settle()
    gate.leave()
    await other
    assert log[-1] == "n0"


async def test_a_hanging_twin_is_still_cancelled_by_its_timeout() -> None:
    gate = ClientGate()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(Yielding(asyncio.sleep(3600), gate, LONG_S), 0.05)


async def test_under_constant_client_traffic_the_wait_is_bounded() -> None:
    gate, log = ClientGate(), []
    gate.enter()  # and never leaves
    assert await Yielding(stepper(log, "s", 2), gate, 0.05) == "s done"
    assert log == ["s0", "s1"]
    gate.leave()
