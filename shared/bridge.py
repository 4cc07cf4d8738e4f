"""The one way sync code runs a coroutine: on one long-lived event loop per process.

Legacy (sync) code must never create event loops of its own: connection pools and HTTP
clients are bound to the loop that created them, and a loop per call is what produced
"Event loop is closed" and "attached to a different loop" in production. Every coroutine a
sync caller needs goes through `run()`, which schedules it on the process's one loop:

* the server's own loop once the gateway registers it at start-up (`register_loop`), so the
  legacy views and the async endpoints share one engine and one pool;
* otherwise (flask run, gunicorn, scripts) a dedicated daemon thread running a loop,
  started on first use.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["get_loop", "on_shutdown", "register_loop", "run", "shutdown", "unregister_loop"]

T = TypeVar("T")
ShutdownHook = Callable[[], Awaitable[None]]

_log = logging.getLogger(__name__)


class _State:
    """The loop of this process, who owns it, and what to do when it stops."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None  # set only for our own loop thread
        self.loop_thread_id: int | None = None
        self.is_registered = False
        self.hooks: list[ShutdownHook] = []


_state = _State()


def register_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Make `loop` (the server's, already running in this thread) the process's bridge loop.

    Call it from inside the loop (the gateway's lifespan does). Raises RuntimeError when a
    dedicated loop thread is already serving calls, since two loops would mean two pools.
    """
    with _state.lock:
        if _state.loop is loop:
            return
        if _state.loop is not None and not _state.loop.is_closed():
            raise RuntimeError(
                "shared.bridge already runs on another event loop; register the server's "
                "loop before any bridge.run() call, or call bridge.shutdown() first"
            )
        _state.loop = loop
        _state.thread = None
        _state.loop_thread_id = threading.get_ident()
        _state.is_registered = True


def unregister_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Forget `loop` as the bridge loop (the gateway's lifespan does so on shutdown)."""
    with _state.lock:
        if _state.loop is loop:
            _state.loop = None
            _state.loop_thread_id = None
            _state.is_registered = False


def on_shutdown(hook: ShutdownHook) -> Callable[[], None]:
    """Register an async callable for `shutdown()` to await on the bridge loop (engine dispose).

    Returns a function that unregisters the hook again (for owners closed some other way).
    """
    with _state.lock:
        if hook not in _state.hooks:
            _state.hooks.append(hook)

    def remove() -> None:
        with _state.lock:
            if hook in _state.hooks:
                _state.hooks.remove(hook)

    return remove


def get_loop() -> asyncio.AbstractEventLoop:
    """The process's bridge loop, starting the dedicated loop thread if none is registered."""
    loop = _state.loop
    if loop is not None and not loop.is_closed():
        return loop
    with _state.lock:
        if _state.loop is None or _state.loop.is_closed():
            _start_loop_thread()
        assert _state.loop is not None
        return _state.loop


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run `coro` on the bridge loop from sync code and return its result (or raise its error).

    The caller's contextvars are visible inside the coroutine, and values it sets come back to
    the caller, as with a plain `await`. With `timeout` (seconds), the coroutine is cancelled
    when it runs over and TimeoutError is raised. Calling from the loop's own thread raises
    RuntimeError instead of deadlocking.
    """
    if not asyncio.iscoroutine(coro):
        raise TypeError(f"shared.bridge.run() takes a coroutine, not {type(coro).__name__}")
    loop = get_loop()
    if threading.get_ident() == _state.loop_thread_id:
        coro.close()
        raise RuntimeError(
            "shared.bridge.run() was called from the event loop's own thread; it would wait "
            "for itself forever. Await the coroutine directly instead."
        )
    if not loop.is_running():
        # A registered server loop that stopped without unregister_loop(): the call would
        # be queued on a loop that never runs it, and wait for ever.
        coro.close()
        if _state.is_registered:
            raise RuntimeError(
                "shared.bridge: the registered event loop is not running (its server stopped "
                "without unregister_loop()); nothing would ever run this coroutine"
            )
        raise RuntimeError("shared.bridge: the event loop is shutting down")
    # Run the task in a copy of the caller's context, then copy what it changed back, so
    # a contextvar set by the coroutine is seen by the caller (asgiref does the same).
    context = contextvars.copy_context()
    result: concurrent.futures.Future[T] = concurrent.futures.Future()
    task_box: list[asyncio.Task[T]] = []

    def start() -> None:
        if not result.set_running_or_notify_cancel():
            coro.close()
            return
        task = loop.create_task(coro, context=context)
        task_box.append(task)
        task.add_done_callback(finish)

    def finish(task: asyncio.Task[T]) -> None:
        if task.cancelled():
            result.set_exception(asyncio.CancelledError("the bridged coroutine was cancelled"))
            return
        exc = task.exception()
        if exc is not None:
            result.set_exception(exc)
        else:
            result.set_result(task.result())

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError as exc:  # the loop closed between get_loop() and here
        coro.close()
        raise RuntimeError("shared.bridge: the event loop is shutting down") from exc
    try:
        value = result.result(timeout)
    except concurrent.futures.TimeoutError:
        # Cancel on the loop's thread: tasks are not thread-safe. If the coroutine never
        # started, cancelling the future makes start() close it instead.
        if not result.cancel():
            loop.call_soon_threadsafe(_cancel_tasks, task_box)
        raise TimeoutError(f"bridged coroutine did not finish within {timeout} s") from None
    finally:
        _copy_back(context)
    return value


def shutdown(timeout: float = 10.0) -> None:
    """Await the shutdown hooks (engine dispose, clients) on the loop, then stop our loop thread.

    A registered server loop is left running (its owner stops it); only the hooks run there.
    """
    if _state.loop_thread_id is not None and threading.get_ident() == _state.loop_thread_id:
        raise RuntimeError(
            "shared.bridge.shutdown() was called from the event loop's own thread; it would "
            "wait for itself. Call it from another thread, or await run_shutdown_hooks()."
        )
    with _state.lock:
        loop, thread, hooks = _state.loop, _state.thread, list(_state.hooks)
    if loop is None or loop.is_closed():
        return
    if hooks:
        try:
            run(_run_hooks(hooks), timeout=timeout)
        except Exception:
            _log.exception("shared.bridge: a shutdown hook failed")
    if thread is None:
        return
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout)
    with _state.lock:
        if _state.loop is loop:
            _state.loop = None
            _state.thread = None
            _state.loop_thread_id = None
    if not thread.is_alive():
        loop.close()


async def run_shutdown_hooks() -> None:
    """Await the registered hooks on the current loop (for owners of a registered loop)."""
    with _state.lock:
        hooks = list(_state.hooks)
    await _run_hooks(hooks)


async def _run_hooks(hooks: list[ShutdownHook]) -> None:
    for hook in reversed(hooks):
        try:
            await hook()
        except Exception:
            _log.exception("shared.bridge: shutdown hook %r failed", hook)


def _cancel_tasks(task_box: list[asyncio.Task[Any]]) -> None:
    for task in task_box:
        task.cancel()


def _copy_back(context: contextvars.Context) -> None:
    for var, value in context.items():
        try:
            if var.get() is value:
                continue
        except LookupError:
            pass
        var.set(value)


def _start_loop_thread() -> None:
    """Start the dedicated loop thread; the caller holds _state.lock."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        _state.loop_thread_id = threading.get_ident()
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=serve, name="shared-bridge-loop", daemon=True)
    thread.start()
    ready.wait()
    # Published only once it runs: get_loop()'s lock-free path may hand it out at once.
    _state.loop = loop
    _state.thread = thread
    _state.is_registered = False


def _reset_after_fork() -> None:
    # The child inherits the parent's loop object but not its thread: using it would hang.
    # Forget it (without closing: its selector's fds are shared with the parent) and start
    # afresh on first use. Hooks stay registered; their owners reset their own state.
    _state.lock = threading.Lock()
    _state.loop = None
    _state.thread = None
    _state.loop_thread_id = None
    _state.is_registered = False


os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(shutdown)
