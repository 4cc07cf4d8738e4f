"""Edges of the shadow runner: oversized answers, unfinished twins, writes without a dry run,
and every way a dry-run write can end (not pinned in time, conflicted, failing, timing out)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asgi_gateway.flags import Compare, Flag, Shadow
from asgi_gateway.serving.decision import CompiledFlag
from asgi_gateway.serving.findings import Findings
from asgi_gateway.serving.shadow import MAX_CAPTURE_BYTES, ShadowRunner

Message = dict[str, Any]
ENDPOINT = "thing"


def compiled(**changes: Any) -> CompiledFlag:
    flag = Flag(ENDPOINT, mode="shadow", compare=Compare(noise_sample=0.0))
    return CompiledFlag.of(replace(flag, **changes))


def request_scope(method: str = "GET") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": "/thing",
        "raw_path": b"/thing",
        "root_path": "",
        "query_string": b"q=1",
        "headers": [(b"content-type", b"application/json")],
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1234),
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }


def json_app(body: Any, status: int = 200) -> Any:
    """A legacy ASGI app answering `body` as JSON."""
    return JSONResponse(body, status_code=status)


class Client:
    """What the client received from the runner (it must always be legacy's whole answer)."""

    def __init__(self) -> None:
        self.status = 0
        self.body = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        else:
            self.body += message.get("body", b"")


async def no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Run:
    def __init__(self, **runner: Any) -> None:
        self.registry = CollectorRegistry()
        self.findings = Findings(self.registry)
        self.runner = ShadowRunner(self.findings, runner.pop("legacy", json_app({})), **runner)

    def count(self, result: str) -> float:
        labels = {"endpoint": ENDPOINT, "result": result}
        return self.registry.get_sample_value("gateway_shadow_total", labels) or 0.0

    async def serve(
        self, twin: Any, legacy: Any, flag: CompiledFlag, method: str = "GET", body: bytes = b""
    ) -> Client:
        client = Client()
        route = Route("/thing", twin, methods=[method])
        await self.runner.serve(
            request_scope(method), {}, route, flag, body, no_body, client.send, legacy
        )
        return client

    async def settled(self) -> None:
        """Every twin spawned so far has finished (the runner's own budget is back to zero)."""
        while self.runner.tasks:
            await asyncio.gather(*self.runner.tasks, return_exceptions=True)
        assert self.runner.in_flight == 0


async def same(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def test_an_oversized_legacy_answer_reaches_the_client_whole_and_is_not_compared() -> None:
    run = Run()
    big = {"blob": "x" * (MAX_CAPTURE_BYTES + 10)}
    client = await run.serve(same, json_app(big), compiled())
    await run.settled()
    assert json.loads(client.body) == big
    assert (run.count("skipped"), run.count("match"), run.count("mismatch")) == (1, 0, 0)


async def test_the_twin_reads_the_body_once_then_sees_the_client_gone() -> None:
    async def twin(request: Request) -> Response:
        body = await request.body()
        after = await request.receive()
        return JSONResponse({"body": body.decode(), "after": after["type"]})

    run = Run()
    legacy = json_app({"body": "payload", "after": "http.disconnect"})
    await run.serve(twin, legacy, compiled(), body=b"payload")
    await run.settled()
    assert run.count("match") == 1


async def test_a_twin_that_never_finishes_its_answer_counts_as_an_error() -> None:
    class Unfinished:
        """A raw ASGI twin (not a request function) that returns mid-answer."""

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{", "more_body": True})

    run = Run()
    client = await run.serve(Unfinished(), json_app({"ok": True}), compiled())
    await run.settled()
    assert (client.status, json.loads(client.body)) == (200, {"ok": True})
    assert (run.count("error"), run.count("mismatch")) == (1, 0)


async def test_a_write_without_a_dry_run_is_answered_by_legacy_and_skipped() -> None:
    twin_calls = 0

    async def twin(request: Request) -> Response:
        nonlocal twin_calls
        twin_calls += 1
        return JSONResponse({})

    run = Run()
    client = await run.serve(twin, json_app({"id": 1}, 201), compiled(), method="POST")
    await run.settled()
    assert (client.status, twin_calls, run.count("skipped")) == (201, 0, 1)


async def test_a_read_whose_legacy_raises_frees_the_budget_and_compares_nothing() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("legacy fell over")

    run = Run()
    with pytest.raises(RuntimeError, match="legacy fell over"):
        await run.serve(same, broken, compiled())
    assert run.runner.in_flight == 0
    assert not run.runner.tasks
    assert run.findings.events == {}


async def test_a_failing_noise_probe_counts_as_an_error() -> None:
    async def second_time_broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("legacy asked twice")

    run = Run(legacy=second_time_broken)
    flag = compiled(compare=Compare(noise_sample=1.0))
    client = await run.serve(same, json_app({"ok": True}), flag)
    await run.settled()
    assert json.loads(client.body) == {"ok": True}
    assert (run.count("error"), run.count("match")) == (1, 0)


async def test_kept_bodies_travel_with_the_mismatch() -> None:
    async def twin(request: Request) -> Response:
        return JSONResponse({"name": "gadget"})

    run = Run()
    flag = compiled(compare=Compare(noise_sample=0.0, keep_bodies=True))
    await run.serve(twin, json_app({"name": "widget"}), flag)
    await run.settled()
    [record] = run.findings.mismatches
    assert record.bodies == {"legacy": '{"name":"widget"}', "async": '{"name":"gadget"}'}
    assert (record.method, record.path, record.query) == ("GET", "/thing", "q=1")


# -- writes in a dry run -----------------------------------------------------------------------


class Handle:
    def __init__(self, conflicted: bool = False) -> None:
        self.conflicted = conflicted
        self.prepared = False

    async def prepare(self) -> None:
        self.prepared = True


def dry_run_of(handle: Handle, *, pin_after: asyncio.Event | None = None, fail: bool = False):  # type: ignore[no-untyped-def]
    entered: list[dict[str, Any]] = []

    @contextlib.asynccontextmanager
    async def dry_run(scope: dict[str, Any]) -> AsyncIterator[Handle]:
        entered.append(scope)
        if pin_after is not None:
            await pin_after.wait()
        if fail:
            raise RuntimeError("the dry run could not start")
        yield handle

    dry_run.entered = entered  # type: ignore[attr-defined]
    return dry_run


WRITES = Shadow(writes="dry_run", timeout_s=5.0)


async def test_a_dry_run_write_that_matches_is_prepared_and_compared() -> None:
    async def twin(request: Request) -> Response:
        return JSONResponse({"id": 1}, status_code=201)

    handle = Handle()
    dry_run = dry_run_of(handle)
    run = Run(dry_run=dry_run)
    client = await run.serve(twin, json_app({"id": 1}, 201), compiled(shadow=WRITES), "POST")
    await run.settled()
    assert client.status == 201
    assert handle.prepared
    assert dry_run.entered[0]["asgi_gateway.shadow"] is True  # type: ignore[attr-defined]
    assert run.count("match") == 1


async def test_a_dry_run_that_cannot_pin_in_time_is_skipped_and_legacy_answers() -> None:
    never = asyncio.Event()
    run = Run(dry_run=dry_run_of(Handle(), pin_after=never))
    client = await run.serve(same, json_app({"id": 1}, 201), compiled(shadow=WRITES), "POST")
    await run.settled()
    assert client.status == 201
    assert (run.count("skipped"), run.count("match")) == (1, 0)


async def test_a_conflicted_dry_run_is_skipped() -> None:
    run = Run(dry_run=dry_run_of(Handle(conflicted=True)))
    await run.serve(same, json_app({"ok": True}), compiled(shadow=WRITES), "POST")
    await run.settled()
    assert (run.count("skipped"), run.count("match")) == (1, 0)


async def test_a_failing_dry_run_hook_counts_as_an_error_and_legacy_still_answers() -> None:
    run = Run(dry_run=dry_run_of(Handle(), fail=True))
    client = await run.serve(same, json_app({"id": 2}, 201), compiled(shadow=WRITES), "POST")
    await run.settled()
    assert (client.status, json.loads(client.body)) == (201, {"id": 2})
    assert run.count("error") == 1


@pytest.mark.parametrize(("how", "result"), [("raise", "error"), ("hang", "timeout")])
async def test_a_dry_run_twin_that_raises_or_hangs_is_counted(how: str, result: str) -> None:
    async def twin(request: Request) -> Response:
        if how == "raise":
            raise RuntimeError("twin broke")
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    run = Run(dry_run=dry_run_of(Handle()))
    flag = compiled(shadow=Shadow(writes="dry_run", timeout_s=0.05))
    client = await run.serve(twin, json_app({"id": 3}, 201), flag, "POST")
    await run.settled()
    assert client.status == 201
    assert (run.count(result), run.count("match")) == (1, 0)


async def test_drain_cancels_twins_still_running_at_shutdown() -> None:
    cancelled = asyncio.Event()

    async def twin(request: Request) -> Response:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    run = Run()
    await run.serve(twin, json_app({}), compiled(shadow=Shadow(timeout_s=60.0)))
    assert run.runner.in_flight == 1
    await run.runner.drain()  # waits its 5 s for the twin, then cancels it
    await run.settled()
    assert cancelled.is_set()
    assert run.count("match") == 0
