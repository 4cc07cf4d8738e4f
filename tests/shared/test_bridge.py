"""shared.bridge: one loop per process for sync callers, across threads, fork and shutdown."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import gc
import inspect
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import bridge
from shared.config import Settings, load_settings
from shared.db import create_engine
from tests.conftest import PG_ADMIN_DSN

THREADS = 16
CALLS_PER_THREAD = 1_000
HAMMER_DEADLINE_S = 300.0
# A legacy asyncio.run() call that waits on a pool or socket bound to another (dead) loop
# never finishes by itself; bound it so the reproduction reports instead of hanging.
LEGACY_CALL_TIMEOUT_S = 2.0
CHILD_DEADLINE_S = 20
# What one loop per call does to an engine shared between calls: SQLAlchemy's pool queue and
# asyncpg's connections are bound to the loop that first used them.
WRONG_LOOP = re.compile(
    r"attached to a different loop|bound to a different event loop|different event loop"
    r"|Event loop is closed"
)

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
user_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("user_id", default=None)


@pytest.fixture(autouse=True)
def pristine_bridge() -> Iterator[None]:
    """No bridge loop before or after the test, and only the test's own shutdown hooks."""
    bridge.shutdown()  # a real shutdown of any loop left running: every hook runs on it
    # The module's own test may touch its state: hooks other suites registered (their apps'
    # runtimes) stay registered, as shutdown() keeps them, but do not run again in this
    # test's shutdowns.
    saved_hooks = list(bridge._state.hooks)
    bridge._state.hooks.clear()
    yield
    bridge.shutdown()
    bridge._state.hooks[:] = saved_hooks


def small_pool_settings(database_url: str, var_dir: Path) -> Settings:
    """A pool of two connections, far fewer than the calling threads."""
    return load_settings(
        {
            "AA_ENV": "testing",
            "AA_SECRET_KEY": "x" * 32,
            "AA_DATABASE_URL": database_url,
            "AA_VAR_DIR": str(var_dir),
            "AA_DB_POOL_SIZE": "2",
            "AA_DB_MAX_OVERFLOW": "0",
        }
    )


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """A real SQLite file under tmp_path, behind a small pool."""
    return small_pool_settings(f"sqlite:///{tmp_path}/t.db", tmp_path)


@pytest.fixture
def engine(sqlite_settings: Settings) -> Iterator[AsyncEngine]:
    """An engine used through the bridge and disposed on the bridge loop."""
    sqlite_engine = create_engine(sqlite_settings)
    yield sqlite_engine
    bridge.run(sqlite_engine.dispose(), timeout=30)


async def select_one(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT 1"))).scalar_one()


async def running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


async def loop_thread() -> threading.Thread:
    return threading.current_thread()


@dataclass
class Hammering:
    """What many threads calling one function many times got back."""

    results: list[Any] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


def hammer(
    call: Callable[[], Any],
    *,
    is_enough: Callable[[BaseException], bool] = lambda exc: False,
) -> Hammering:
    """Call `call` CALLS_PER_THREAD times from each of THREADS threads started together.

    Every thread stops early once an error satisfies `is_enough`.
    """
    outcome = Hammering()
    lock = threading.Lock()
    start = threading.Barrier(THREADS)
    enough = threading.Event()

    def work() -> None:
        start.wait()
        for _ in range(CALLS_PER_THREAD):
            if enough.is_set():
                return
            try:
                result = call()
            except Exception as exc:
                with lock:
                    outcome.errors.append(exc)
                if is_enough(exc):
                    enough.set()
            else:
                with lock:
                    outcome.results.append(result)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + HAMMER_DEADLINE_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = sum(thread.is_alive() for thread in threads)
    assert stuck == 0, f"{stuck} of {THREADS} threads still running after {HAMMER_DEADLINE_S} s"
    return outcome


def describe(errors: list[BaseException]) -> str:
    kinds = {f"{type(exc).__name__}: {exc}"[:200] for exc in errors}
    return "; ".join(sorted(kinds)[:5]) or "none"


# -- one loop, one pool, many threads --------------------------------------------------------------


@pytest.mark.slow
def test_sixteen_threads_of_a_thousand_queries_share_one_loop_and_pool_without_errors(
    engine: AsyncEngine,
) -> None:
    loops: set[asyncio.AbstractEventLoop] = set()

    async def query() -> int:
        loops.add(asyncio.get_running_loop())
        return await select_one(engine)

    outcome = hammer(lambda: bridge.run(query(), timeout=60))

    assert outcome.errors == [], describe(outcome.errors)
    assert outcome.results == [1] * (THREADS * CALLS_PER_THREAD)
    assert loops == {bridge.get_loop()}


# On SQLite as on PostgreSQL the first failure is SQLAlchemy's pool queue "bound to a different
# event loop"; asyncpg adds "attached to a different loop" and "Event loop is closed", and
# calls waiting on a dead loop hang (cut short by LEGACY_CALL_TIMEOUT_S).
# Unclosed connections of dead loops warn when collected; ignoring ResourceWarning (rather than
# raising it inside __del__) lets their finalizers finish: aiosqlite stops its worker thread and
# asyncio's transport closes its socket only after warning.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize(
    "database_url",
    [
        pytest.param("sqlite:///{tmp_path}/t.db", id="sqlite"),
        pytest.param(PG_ADMIN_DSN, id="postgres", marks=pytest.mark.postgres),
    ],
)
def test_asyncio_run_per_call_on_a_shared_engine_fails_with_wrong_loop_errors(
    tmp_path: Path, database_url: str
) -> None:
    # The legacy pattern the bridge replaces, run only to prove the test above can fail.
    settings = small_pool_settings(database_url.format(tmp_path=tmp_path), tmp_path)
    threads_before = set(threading.enumerate())

    with dead_loop_noise_dropped():
        errors = hammer_with_a_loop_per_call(settings)
        collect_dead_loop_garbage(threads_before)

    assert any(WRONG_LOOP.search(error) for error in errors), f"no wrong-loop error in {errors}"


def hammer_with_a_loop_per_call(settings: Settings) -> list[str]:
    """The errors (as text) of the legacy pattern; nothing of the engine outlives this call."""
    shared_engine = create_engine(settings)

    def legacy_call() -> int:
        return asyncio.run(asyncio.wait_for(select_one(shared_engine), LEGACY_CALL_TIMEOUT_S))

    try:
        outcome = hammer(legacy_call, is_enough=lambda exc: bool(WRONG_LOOP.search(str(exc))))
        # Text only: the exceptions' tracebacks hold the connections of the dead loops.
        return sorted({f"{type(exc).__name__}: {exc}" for exc in outcome.errors})
    finally:
        # Connections bound to closed loops cannot be closed through them: drop the pool.
        shared_engine.sync_engine.dispose(close=False)


@contextlib.contextmanager
def dead_loop_noise_dropped() -> Iterator[None]:
    """Drop log records and unraisable exceptions instead of keeping them for the report.

    Both hold tracebacks whose frames hold the dead loops' connections; kept (as pytest keeps
    them until the test ends), those would be collected, and warn, in some later test.
    """
    previous_disable = logging.root.manager.disable
    previous_hook = sys.unraisablehook
    logging.disable(logging.CRITICAL)
    sys.unraisablehook = lambda unraisable: None
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        logging.disable(previous_disable)


def collect_dead_loop_garbage(threads_before: set[threading.Thread]) -> None:
    # Let the garbage collector close the dead loops' sockets and stop aiosqlite's worker
    # threads now, inside the test, rather than in whichever test happens to run gc next.
    # One pass is not enough: collecting a checked-out connection runs the pool's finalizer,
    # which puts it back in the (dropped) pool, to be found unreachable only by the next pass.
    deadline = time.monotonic() + 10
    while True:
        for _ in range(20):
            if gc.collect() == 0:
                break
        leaked = [t for t in threading.enumerate() if t not in threads_before and not t.daemon]
        if not leaked:
            return
        assert time.monotonic() < deadline, f"threads left behind: {leaked}"
        time.sleep(0.05)


# -- the calling contract --------------------------------------------------------------------------


def test_contextvars_cross_the_bridge_both_ways() -> None:
    def caller() -> None:
        request_id.set("req-7")

        async def handler() -> str:
            user_id.set(42)
            return request_id.get()

        assert bridge.run(handler()) == "req-7"
        assert user_id.get() == 42

    contextvars.copy_context().run(caller)

    async def read_user_id() -> int | None:
        return user_id.get()

    # Another caller's context (here: this test's own) never sees what that coroutine set.
    assert bridge.run(read_user_id()) is None
    assert user_id.get() is None


def test_timeout_cancels_the_coroutine_and_raises_timeout_error() -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def wait_forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError, match=r"did not finish within 0\.2 s"):
        bridge.run(wait_forever(), timeout=0.2)

    assert started.is_set()
    assert cancelled.wait(5), "the coroutine was not cancelled after the timeout"


def test_timeout_before_the_coroutine_starts_closes_it_unrun() -> None:
    loop_is_blocked = threading.Event()
    unblock = threading.Event()

    def block_loop() -> None:
        loop_is_blocked.set()
        unblock.wait(10)  # deliberately hogs the loop so the coroutine cannot start

    async def never_started() -> str:
        return "ran"

    bridge.get_loop().call_soon_threadsafe(block_loop)
    assert loop_is_blocked.wait(5)
    coro = never_started()
    try:
        with pytest.raises(TimeoutError):
            bridge.run(coro, timeout=0.1)
    finally:
        unblock.set()

    assert bridge.run(asyncio.sleep(0, "loop free again")) == "loop free again"
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def test_calling_run_on_the_loop_thread_raises_instead_of_deadlocking() -> None:
    outcome: concurrent.futures.Future[object] = concurrent.futures.Future()

    def sync_code_on_the_loop_thread() -> None:
        try:
            outcome.set_result(bridge.run(asyncio.sleep(0)))
        except BaseException as exc:
            outcome.set_exception(exc)

    bridge.get_loop().call_soon_threadsafe(sync_code_on_the_loop_thread)

    with pytest.raises(RuntimeError, match="called from the event loop's own thread"):
        outcome.result(timeout=5)
    assert bridge.run(asyncio.sleep(0, "still serving")) == "still serving"


class AppointmentMissing(Exception):
    pass


def test_exceptions_reach_the_caller_with_their_type() -> None:
    async def fail() -> None:
        raise AppointmentMissing("appointment 42 not found")

    with pytest.raises(AppointmentMissing, match="appointment 42 not found"):
        bridge.run(fail())


@pytest.mark.parametrize(
    ("argument", "kind"),
    [(select_one, "function"), (None, "NoneType"), (asyncio.sleep, "function")],
    ids=["coroutine-function", "none", "uncalled-sleep"],
)
def test_anything_but_a_coroutine_is_a_type_error(argument: object, kind: str) -> None:
    with pytest.raises(TypeError, match=f"takes a coroutine, not {kind}"):
        bridge.run(argument)  # type: ignore[arg-type]


# -- whose loop ------------------------------------------------------------------------------------


def test_run_uses_a_registered_server_loop_until_it_is_unregistered() -> None:
    registered = threading.Event()
    server: dict[str, Any] = {}

    async def serve() -> None:
        # Stands in for uvicorn's loop and the gateway's lifespan.
        loop = asyncio.get_running_loop()
        server["loop"], server["stopping"] = loop, asyncio.Event()
        bridge.register_loop(loop)
        registered.set()
        try:
            await server["stopping"].wait()
        finally:
            bridge.unregister_loop(loop)

    server_thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    server_thread.start()
    assert registered.wait(5)
    try:
        assert bridge.get_loop() is server["loop"]
        assert bridge.run(running_loop(), timeout=5) is server["loop"]
    finally:
        server["loop"].call_soon_threadsafe(server["stopping"].set)
        server_thread.join(5)

    assert not server_thread.is_alive()
    own_loop = bridge.run(running_loop(), timeout=5)
    assert own_loop is not server["loop"]
    assert own_loop is bridge.get_loop()


def test_a_registered_loop_that_stopped_without_unregistering_fails_fast() -> None:
    # A server whose loop stops (but is not closed) and forgets to unregister it: before,
    # every later run() without a timeout waited for ever.
    loop = asyncio.new_event_loop()

    async def register() -> None:
        bridge.register_loop(asyncio.get_running_loop())

    thread = threading.Thread(target=loop.run_until_complete, args=(register(),))
    thread.start()
    thread.join(5)
    try:
        assert bridge.get_loop() is loop and not loop.is_running()
        pending = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="registered event loop is not running"):
            bridge.run(pending)
        assert pending.cr_frame is None  # closed, so no "never awaited" warning either
    finally:
        bridge.unregister_loop(loop)
        loop.close()


def test_registering_a_loop_while_the_bridge_runs_its_own_is_refused() -> None:
    bridge.run(asyncio.sleep(0))

    async def register() -> None:
        bridge.register_loop(asyncio.get_running_loop())

    with pytest.raises(RuntimeError, match="already runs on another event loop"):
        asyncio.run(register())


# Python 3.12+ warns about fork() in a multi-threaded process; forking with the bridge's loop
# thread alive is the very case under test (gunicorn --preload does it).
@pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")
def test_a_forked_child_gets_a_fresh_loop_and_the_parent_keeps_its_own() -> None:
    parent_loop = bridge.run(running_loop())

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            signal.alarm(CHILD_DEADLINE_S)  # never outlive the test, even if run() hangs
            child_loop = bridge.run(running_loop(), timeout=10)
            if child_loop is not parent_loop and bridge.run(asyncio.sleep(0, 7), timeout=10) == 7:
                code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)

    deadline = time.monotonic() + CHILD_DEADLINE_S
    waited_pid, status = os.waitpid(pid, os.WNOHANG)
    while waited_pid == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        waited_pid, status = os.waitpid(pid, os.WNOHANG)
    if waited_pid == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail(f"forked child {pid} did not finish within {CHILD_DEADLINE_S} s")

    assert os.waitstatus_to_exitcode(status) == 0
    assert bridge.run(running_loop(), timeout=5) is parent_loop


# -- shutdown --------------------------------------------------------------------------------------


def test_shutdown_awaits_hooks_on_the_loop_then_stops_it_and_run_starts_afresh(
    sqlite_settings: Settings,
) -> None:
    engine = create_engine(sqlite_settings)
    closed_connections: list[object] = []

    def count_close(dbapi_connection: object, record: object) -> None:
        closed_connections.append(dbapi_connection)

    event.listen(engine.sync_engine, "close", count_close)
    assert bridge.run(select_one(engine)) == 1
    loop = bridge.run(running_loop())
    thread = bridge.run(loop_thread())
    hook_loops: list[asyncio.AbstractEventLoop] = []

    async def dispose_engine() -> None:
        hook_loops.append(asyncio.get_running_loop())
        await engine.dispose()

    bridge.on_shutdown(dispose_engine)
    bridge.shutdown()

    assert hook_loops == [loop]
    assert len(closed_connections) == 1
    assert not thread.is_alive()
    assert loop.is_closed()

    assert bridge.run(running_loop()) is not loop
    assert bridge.run(loop_thread()).is_alive()
    assert bridge.run(select_one(engine)) == 1  # the disposed engine reconnects on the new loop
    bridge.run(engine.dispose())


def test_a_removed_shutdown_hook_is_not_awaited() -> None:
    calls: list[str] = []

    async def hook() -> None:
        calls.append("ran")

    remove = bridge.on_shutdown(hook)
    remove()
    remove()  # removing twice is harmless
    bridge.run(asyncio.sleep(0))
    bridge.shutdown()
    assert calls == []


def test_shutdown_from_the_loop_thread_raises_instead_of_joining_itself() -> None:
    loop = bridge.get_loop()
    outcome: concurrent.futures.Future[BaseException | None] = concurrent.futures.Future()

    def on_loop() -> None:
        try:
            bridge.shutdown()
        except BaseException as exc:
            outcome.set_result(exc)
        else:
            outcome.set_result(None)

    loop.call_soon_threadsafe(on_loop)
    error = outcome.result(timeout=5)
    assert isinstance(error, RuntimeError)
    assert "own thread" in str(error)
    assert bridge.run(asyncio.sleep(0, result="alive")) == "alive"
