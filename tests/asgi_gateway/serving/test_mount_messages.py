"""What the mounted WSGI app's answer becomes on the ASGI side, message by message.

A response in one piece reaches the server as two messages (the start, then the whole body),
sent from the loop once the app has returned; a response that streams goes out chunk by chunk
as it is produced. The request body, read on the loop first, is never asked for from a WSGI
thread. Driven through `WSGIMount` directly, with plain WSGI callables.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import pytest

from asgi_gateway.serving.body import inspect_headers
from asgi_gateway.serving.mount import WSGIMount

Message = dict[str, Any]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def scope_of(method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None) -> Message:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/thing",
        "raw_path": b"/thing",
        "root_path": "",
        "query_string": b"",
        "headers": headers or [],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


class Channel:
    """receive/send of one request: the body to hand out, and every message sent, in order."""

    def __init__(self, body: bytes = b"") -> None:
        self.pending = [{"type": "http.request", "body": body, "more_body": False}]
        self.received = 0
        self.sent: list[Message] = []
        self.sent_from: set[str] = set()
        self.gone = asyncio.Event()  # the client stays until a test lets it go

    async def receive(self) -> Message:
        self.received += 1
        if self.pending:
            return self.pending.pop()
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent_from.add(threading.current_thread().name)
        self.sent.append(message)

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def serve(
    app: WSGIApp,
    channel: Channel,
    scope: Message | None = None,
    send: Callable[[Message], Awaitable[None]] | None = None,
) -> WSGIMount:
    """One request through a new mount of `app`; the mount, its threads ended."""
    mount = WSGIMount(app, workers=2)
    try:
        scope = scope or scope_of()
        await mount.serve(scope, channel.receive, send or channel.send, inspect_headers(scope))
    finally:
        mount.executor.shutdown(wait=True)
    return mount


def app_of(chunks: list[bytes], status: str = "200 OK") -> WSGIApp:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response(status, [("Content-Type", "text/plain")])
        return list(chunks)

    return app


async def test_a_one_piece_response_is_two_messages_sent_from_the_loop() -> None:
    channel = Channel()
    await serve(app_of([b"hello"]), channel)
    assert channel.sent == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        },
        {"type": "http.response.body", "body": b"hello"},
    ]
    assert channel.sent_from == {threading.current_thread().name}


async def test_an_empty_response_ends_with_one_empty_body() -> None:
    channel = Channel()
    await serve(app_of([], "204 No Content"), channel)
    assert [m["type"] for m in channel.sent] == ["http.response.start", "http.response.body"]
    assert channel.sent[0]["status"] == 204
    assert channel.body() == b""
    assert not channel.sent[1].get("more_body", False)


async def test_a_streamed_response_goes_out_chunk_by_chunk_in_order() -> None:
    chunks = [b"%03d" % n for n in range(25)]  # more than a2wsgi's send queue holds
    channel = Channel()
    await serve(app_of(chunks), channel)
    bodies = [m for m in channel.sent if m["type"] == "http.response.body"]
    assert [m["body"] for m in bodies] == [*chunks, b""]
    assert [m.get("more_body", False) for m in bodies] == [True] * 25 + [False]
    assert channel.body() == b"".join(chunks)


async def test_the_first_chunk_leaves_before_the_app_ends_once_it_streams() -> None:
    first_sent = threading.Event()
    channel = Channel()

    async def send(message: Message) -> None:
        await channel.send(message)
        if message.get("body") == b"one":
            first_sent.set()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"one"
        yield b"two"  # streams from here: "one" goes out now
        assert first_sent.wait(5), "the first chunk was held back while the app streams"
        yield b"three"

    await serve(app, channel, send=send)
    assert channel.body() == b"onetwothree"


async def test_the_write_callable_streams_as_in_pep_3333() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        write = start_response("200 OK", [])
        write(b"a")
        write(b"b")
        return [b"c"]

    channel = Channel()
    await serve(app, channel)
    assert channel.body() == b"abc"
    assert channel.sent[0]["type"] == "http.response.start"


async def test_the_request_body_read_on_the_loop_is_what_the_app_reads() -> None:
    seen: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.append(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        seen.append(environ["wsgi.input"].read())  # nothing more, and no wait for it
        start_response("200 OK", [])
        return [b"ok"]

    channel = Channel(b'{"name": "x"}')
    scope = scope_of("POST", [(b"content-length", b"13")])
    await serve(app, channel, scope)
    assert seen == [b'{"name": "x"}', b""]
    assert channel.received == 1  # the body was read once, on the loop


async def test_a_client_who_leaves_mid_stream_stops_the_app() -> None:
    produced: list[int] = []
    closed = threading.Event()
    channel = Channel()

    async def send(message: Message) -> None:
        await channel.send(message)
        if len(channel.sent) == 3:  # the start and two chunks are out: the client leaves
            channel.gone.set()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            for n in range(10_000):
                produced.append(n)
                yield b"x" * 1024
                threading.Event().wait(0.001)
        finally:
            closed.set()

    mount = await serve(app, channel, send=send)
    assert closed.is_set()
    assert len(produced) < 10_000
    assert mount.watchers_started == 1


async def test_an_app_that_fails_before_streaming_has_sent_nothing() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"partial"
        raise RuntimeError("boom")

    channel = Channel()
    with pytest.raises(RuntimeError, match="boom"):
        await serve(app, channel)
    assert channel.sent == []  # the server (or the gateway) can still answer a clean 500


async def test_an_error_reported_through_exc_info_is_raised_after_the_answer() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            raise ValueError("in the view")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"sorry"]

    channel = Channel()
    with pytest.raises(ValueError, match="in the view"):
        await serve(app, channel)
    assert channel.sent[0]["status"] == 500
    assert channel.body() == b"sorry"
