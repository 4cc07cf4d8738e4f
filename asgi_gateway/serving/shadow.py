"""Shadow traffic: legacy answers the client; the async twin runs on a copy and is compared.

The client's answer never waits for the twin. A safe request's twin starts once legacy's
answer has been sent; a write's twin (only with `shadow: {writes: dry_run}`) runs inside the
app's dry-run hook, entered before legacy is dispatched so the twin sees the data as legacy
saw it, and always rolled back. The hook's object may have an async `prepare()`, awaited
after legacy was let go and before the twin runs (admin-assistant copies the snapshot
there), and a `conflicted` attribute: true when the dry run's write collided with the real
one, which makes the comparison count as skipped. At most `concurrency` twins run at once per
process; past that, comparisons are skipped (and counted), never queued behind client traffic.
A read's twin also waits for a gap in client traffic and runs one at a time in it
(`priority.py`), for at most a quarter of its timeout, and then like any other task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from starlette.routing import Route

from asgi_gateway.flags import SAFE_METHODS
from asgi_gateway.serving.compare import (
    Answer,
    Matcher,
    compare_answers,
    diff_paths,
    generalize,
    parse_path,
)
from asgi_gateway.serving.decision import CompiledFlag
from asgi_gateway.serving.findings import Findings, Mismatch
from asgi_gateway.serving.priority import ClientGate

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ServeLegacy = Callable[[Scope, Receive, Send], Awaitable[None]]
DryRun = Callable[[Scope], contextlib.AbstractAsyncContextManager[object]]

MAX_CAPTURE_BYTES = 1024 * 1024  # answers larger than this are not compared
_PIN_TIMEOUT_S = 0.5
# The share of its timeout a read's twin waits at most for a gap in client traffic.
_MAX_GIVE_WAY = 0.25
_log = logging.getLogger(__name__)


class Capture:
    """A `send` that forwards every message and keeps a copy of the answer (bounded)."""

    __slots__ = ("body", "done", "headers", "overflow", "send", "status")

    def __init__(self, send: Send | None = None) -> None:
        self.send = send
        self.status = 0
        self.headers: tuple[tuple[str, str], ...] = ()
        self.body = bytearray()
        self.overflow = False
        self.done = False

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = tuple(
                (bytes(n).decode("latin-1").lower(), bytes(v).decode("latin-1"))
                for n, v in message.get("headers", ())
            )
        elif kind == "http.response.body":
            if not self.overflow:
                self.body += message.get("body", b"")
                if len(self.body) > MAX_CAPTURE_BYTES:
                    self.overflow, self.body = True, bytearray()
            if not message.get("more_body", False):
                self.done = True
        if self.send is not None:
            await self.send(message)

    def answer(self) -> Answer:
        return Answer(self.status, self.headers, bytes(self.body))


def request_copy(scope: Scope, child: Scope) -> Scope:
    """The twin's own scope: the same request (method, path, query, headers, identity)."""
    copy = {**scope, **child, "headers": list(scope["headers"])}
    copy["asgi_gateway.shadow"] = True  # lets an app tell its twin is being shadowed
    return copy


def replayed(body: bytes) -> Receive:
    """A receive handing out `body`, then reporting the client as gone (nothing more comes)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


class ShadowRunner:
    """Runs and compares the twins of shadowed requests within a per-process budget."""

    def __init__(
        self,
        findings: Findings,
        legacy: ServeLegacy,
        clients: ClientGate | None = None,
        *,
        concurrency: int = 8,
        dry_run: DryRun | None = None,
    ) -> None:
        self.findings = findings
        self.legacy = legacy  # asks legacy a second time, to learn noise
        self.clients = clients or ClientGate()  # a read's twin gives way to client requests
        self.concurrency = concurrency
        self.dry_run = dry_run
        self.in_flight = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def wants(self, compiled: CompiledFlag, method: str) -> str | None:
        """None to shadow this request, else why not: `sampled out`, `budget`, `writes`."""
        shadow = compiled.flag.shadow
        if method not in SAFE_METHODS and (shadow.writes != "dry_run" or self.dry_run is None):
            return "writes"
        if shadow.sample < 1.0 and random.random() >= shadow.sample:
            return "sampled out"
        if self.in_flight >= self.concurrency:
            return "budget"
        return None

    async def serve(
        self,
        scope: Scope,
        child: Scope,
        route: Route,
        compiled: CompiledFlag,
        body: bytes,
        receive: Receive,
        send: Send,
        serve_legacy: ServeLegacy,
    ) -> None:
        """Answer from legacy (through `send`) and compare the twin's answer off the path.

        `receive` hands legacy the request body already read (`body`).
        """
        endpoint = compiled.flag.endpoint
        why_not = self.wants(compiled, scope["method"])
        if why_not is not None:
            if why_not != "sampled out":
                self.findings.shadow_result(endpoint, "skipped")
            await serve_legacy(scope, receive, send)
            return
        twin_scope = request_copy(scope, child)
        legacy = Capture(send)
        self.in_flight += 1
        if scope["method"] in SAFE_METHODS:
            try:
                await serve_legacy(scope, receive, legacy)
            except BaseException:
                self.in_flight -= 1
                raise
            self._spawn(self._compare_read(twin_scope, route, compiled, body, legacy, scope))
            return
        await self._serve_write(
            twin_scope, route, compiled, body, legacy, scope, receive, send, serve_legacy
        )

    async def _serve_write(
        self,
        twin_scope: Scope,
        route: Route,
        compiled: CompiledFlag,
        body: bytes,
        legacy: Capture,
        scope: Scope,
        receive: Receive,
        send: Send,
        serve_legacy: ServeLegacy,
    ) -> None:
        # The twin enters the dry-run hook first (which fixes its view of the data), then
        # legacy runs: the twin sees the data as legacy saw it. Only the pinning is waited for.
        pinned = asyncio.Event()
        legacy_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = self._spawn(
            self._compare_write(
                twin_scope, route, compiled, body, legacy, scope, pinned, legacy_done
            )
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pinned.wait(), _PIN_TIMEOUT_S)
        if not pinned.is_set():
            task.cancel()
        try:
            await serve_legacy(scope, receive, legacy)
        finally:
            if not legacy_done.done():
                legacy_done.set_result(None)

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _compare_read(
        self,
        twin_scope: Scope,
        route: Route,
        compiled: CompiledFlag,
        body: bytes,
        legacy: Capture,
        scope: Scope,
    ) -> None:
        endpoint = compiled.flag.endpoint
        try:
            result = await self._run_twin(twin_scope, route, compiled, body)
            if isinstance(result, str):
                self.findings.shadow_result(endpoint, result)
                return
            noise = await self._noise(compiled, scope, body, legacy)
            self._judge(compiled, scope, legacy, result, noise)
        except Exception:
            _log.exception("shadow comparison of %s failed", endpoint)
            self.findings.shadow_result(endpoint, "error")
        finally:
            self.in_flight -= 1

    async def _compare_write(
        self,
        twin_scope: Scope,
        route: Route,
        compiled: CompiledFlag,
        body: bytes,
        legacy: Capture,
        scope: Scope,
        pinned: asyncio.Event,
        legacy_done: asyncio.Future[None],
    ) -> None:
        endpoint = compiled.flag.endpoint
        assert self.dry_run is not None
        try:
            async with self.dry_run(twin_scope) as handle:
                pinned.set()  # the dry run's view is fixed: legacy may run now
                prepare = getattr(handle, "prepare", None)
                if prepare is not None:
                    await prepare()
                result = await self._run_twin(twin_scope, route, compiled, body)
            await legacy_done
            if getattr(handle, "conflicted", False):
                # The dry run's write collided with the real one: nothing to compare.
                self.findings.shadow_result(endpoint, "skipped")
                return
            if isinstance(result, str):
                self.findings.shadow_result(endpoint, result)
                return
            self._judge(compiled, scope, legacy, result, frozenset())
        except asyncio.CancelledError:
            self.findings.shadow_result(endpoint, "skipped")  # could not pin in time
        except Exception:
            _log.warning("dry run of %s failed", endpoint, exc_info=True)
            self.findings.shadow_result(endpoint, "error")
        finally:
            self.in_flight -= 1

    async def _run_twin(
        self, scope: Scope, route: Route, compiled: CompiledFlag, body: bytes
    ) -> Answer | str:
        """The twin's answer, or the result it counts as: `timeout`, `error`."""
        capture = Capture()
        timeout_s = compiled.flag.shadow.timeout_s
        twin = route.handle(scope, replayed(body), capture)
        run: Awaitable[None] = twin
        if scope["method"] in SAFE_METHODS:
            # A read's twin runs in a gap in client traffic (see priority.py); a dry run must
            # not wait: legacy's write waits for it to pin its view of the data.
            run = self._in_a_gap(twin, timeout_s * _MAX_GIVE_WAY)
        try:
            async with asyncio.timeout(timeout_s):  # in this task: no task of its own per twin
                await run
        except TimeoutError:
            return "timeout"
        except Exception:
            _log.warning("twin %s raised in shadow", compiled.flag.endpoint, exc_info=True)
            return "error"
        if not capture.done:
            return "error"
        return capture.answer()

    async def _in_a_gap(self, work: Coroutine[Any, Any, None], max_wait_s: float) -> None:
        """Run `work` once no client request is in flight, one at a time (priority.py)."""
        try:
            holds_lane = await self.clients.turn(max_wait_s)
        except BaseException:
            work.close()  # never started
            raise
        try:
            await work
        finally:
            self.clients.release(holds_lane)

    async def _noise(
        self, compiled: CompiledFlag, scope: Scope, body: bytes, legacy: Capture
    ) -> frozenset[str]:
        """Learn noise from a second legacy answer, for a sample; the endpoint's noise paths."""
        endpoint, compare = compiled.flag.endpoint, compiled.flag.compare
        if compare.noise_sample > 0 and random.random() < compare.noise_sample:
            again = Capture()
            await self._in_a_gap(
                self.legacy(dict(scope), replayed(body), again),
                compiled.flag.shadow.timeout_s * _MAX_GIVE_WAY,
            )
            first, second = _json(legacy.answer()), _json(again.answer())
            if first is not None and second is not None:
                found = diff_paths(first, second, compiled.ignore)
                paths = {generalize(d.path) for d in found.diffs}
                if paths:
                    self.findings.learn_noise(endpoint, paths)
        return self.findings.known_noise.get(endpoint, frozenset())

    def _judge(
        self,
        compiled: CompiledFlag,
        scope: Scope,
        legacy: Capture,
        twin: Answer,
        noise: frozenset[str],
    ) -> None:
        flag = compiled.flag
        endpoint = flag.endpoint
        if legacy.overflow or not legacy.done or len(twin.body) > MAX_CAPTURE_BYTES:
            self.findings.shadow_result(endpoint, "skipped")
            return
        ignore = compiled.ignore
        if flag.compare.learn_noise and noise:
            ignore = Matcher((*ignore.patterns, *Matcher.of(noise).patterns))
        mine = legacy.answer()
        found = compare_answers(mine, twin, headers=flag.compare.headers, ignore=ignore)
        if found.equal:
            self.findings.shadow_result(endpoint, "match")
            return
        noisy = Matcher.of(noise)
        if noise and all(
            d.path.startswith("$") and noisy.covers(parse_path(d.path)) for d in found.diffs
        ):
            self.findings.shadow_result(endpoint, "noise")
            return
        self.findings.shadow_result(endpoint, "mismatch")
        bodies = None
        if flag.compare.keep_bodies:
            bodies = {
                "legacy": mine.body.decode("utf-8", "replace"),
                "async": twin.body.decode("utf-8", "replace"),
            }
        self.findings.mismatch(
            Mismatch(
                endpoint=endpoint,
                at=datetime.now(UTC),
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                status_legacy=mine.status,
                status_async=twin.status,
                diffs=tuple(d.to_dict() for d in found.diffs),
                bodies=bodies,
            )
        )

    async def drain(self) -> None:
        """Wait for the twins still running (at shutdown), cancelling any past their time."""
        tasks = list(self.tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5.0)
            for task in pending:
                task.cancel()


def _json(answer: Answer) -> Any:
    try:
        return json.loads(answer.body)
    except (ValueError, RecursionError):
        return None
