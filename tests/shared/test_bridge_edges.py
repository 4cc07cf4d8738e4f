"""shared.bridge at its edges: failing hooks, a stopped loop, registering twice, new contextvars."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from shared import bridge

trace_id: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id")  # no default


@pytest.fixture(autouse=True)
def pristine_bridge() -> Iterator[None]:
    """No bridge loop before or after the test, and only the test's own shutdown hooks."""
    bridge.shutdown()
    saved_hooks = list(bridge._state.hooks)
    bridge._state.hooks.clear()
    yield
    bridge.shutdown()
    bridge._state.hooks[:] = saved_hooks


def test_a_contextvar_the_caller_never_set_comes_back_from_the_coroutine() -> None:
    def caller() -> str:
        async def handler() -> None:
            trace_id.set("t-1")

        bridge.run(handler())
        return trace_id.get()

    assert contextvars.copy_context().run(caller) == "t-1"


def test_a_failing_shutdown_hook_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    async def first() -> None:
        calls.append("first")

    async def broken() -> None:
        raise OSError("disk gone")

    bridge.on_shutdown(first)
    bridge.on_shutdown(broken)
    bridge.on_shutdown(first)  # registering again keeps one
    loop = bridge.get_loop()
    with caplog.at_level(logging.ERROR, logger="shared.bridge"):
        bridge.shutdown()
    assert calls == ["first"]
    assert loop.is_closed()
    failure = next(r for r in caplog.records if "shutdown hook" in r.getMessage())
    assert "failed" in failure.getMessage()
    assert failure.exc_info is not None and isinstance(failure.exc_info[1], OSError)


def test_a_hook_that_outlives_the_shutdown_timeout_is_logged_and_the_loop_still_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def slow() -> None:
        await asyncio.sleep(30)

    bridge.on_shutdown(slow)
    loop = bridge.get_loop()
    with caplog.at_level(logging.ERROR, logger="shared.bridge"):
        bridge.shutdown(timeout=0.2)
    assert any("a shutdown hook failed" in r.getMessage() for r in caplog.records)
    assert loop.is_closed()


def test_a_bridge_loop_that_stopped_refuses_work_instead_of_queueing_it() -> None:
    loop = bridge.get_loop()
    thread = bridge._state.thread
    assert thread is not None
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    pending = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="the event loop is shutting down"):
        bridge.run(pending)
    assert pending.cr_frame is None  # closed, never left to warn "never awaited"


def test_a_registered_server_loop_runs_the_hooks_and_is_left_running() -> None:
    ready, done = threading.Event(), threading.Event()
    server: dict[str, Any] = {}
    hook_loops: list[asyncio.AbstractEventLoop] = []

    async def hook() -> None:
        hook_loops.append(asyncio.get_running_loop())

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server["loop"], server["stop"] = loop, asyncio.Event()
        bridge.register_loop(loop)
        bridge.register_loop(loop)  # the same loop again is no change
        ready.set()
        await server["stop"].wait()
        await bridge.run_shutdown_hooks()  # the gateway's lifespan does this on its own loop
        bridge.unregister_loop(loop)
        done.set()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    bridge.on_shutdown(hook)
    try:
        assert bridge.get_loop() is server["loop"]
        bridge.shutdown()
        assert hook_loops == [server["loop"]]
        assert server["loop"].is_running()
        assert bridge.get_loop() is server["loop"]
    finally:
        server["loop"].call_soon_threadsafe(server["stop"].set)
        thread.join(5)
    assert done.is_set()
    assert hook_loops == [server["loop"], server["loop"]]
    assert bridge.get_loop() is not server["loop"]
