"""Reading a request body on the event loop, whole, bounded in size and time, before any work.

A slow client must never hold a WSGI thread (or a twin's resources): the body is read here,
on the loop, and the app gets it in one message. Past the time limit the request is answered
408; past the size limit the app gets `limit + 1` bytes and a matching Content-Length, so an
app that enforces a limit (Flask's MAX_CONTENT_LENGTH) answers its own 413 at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TIMEOUT_BODY = json.dumps(
    {
        "error": {
            "code": "request_timeout",
            "message": "the request body did not arrive in time; send it again, faster",
        }
    }
).encode()
_HEADERS_BODY = json.dumps(
    {
        "error": {
            "code": "headers_too_large",
            "message": "the request headers are too large; send fewer or shorter ones",
        }
    }
).encode()


class BodyInfo(NamedTuple):
    """What the headers say of a request's body, their total size, and the backend override
    asked for (a tuple: built for every request)."""

    has_body: bool
    declared: int | None  # Content-Length, when sent and valid
    header_bytes: int
    override: bytes | None = None  # the X-Backend-Override header, when sent


def inspect_headers(scope: Scope) -> BodyInfo:
    """One pass over the headers: is there a body, its declared length, the headers' size,
    the backend override asked for."""
    has_body = False
    declared: int | None = None
    override: bytes | None = None
    size = 0
    for name, value in scope["headers"]:
        size += len(name) + len(value) + 4
        if name == b"content-length":
            if value.isdigit():
                declared = int(value)
                has_body = has_body or declared > 0
        elif name == b"transfer-encoding":
            has_body = True
        elif name == b"x-backend-override" and override is None:
            override = value
    return BodyInfo(has_body, declared, size, override)


class BodyTimeout(Exception):
    """The client did not send its whole body within the time limit."""


class ClientGone(Exception):
    """The client disconnected while sending its body."""


async def read_body(receive: Receive, *, limit: int, timeout_s: float) -> tuple[bytes, bool]:
    """(body, complete): at most `limit + 1` bytes, all within `timeout_s` seconds.

    `complete` is False when the body was cut at `limit + 1` (the rest is never read).
    Raises BodyTimeout when the deadline passes, ClientGone when the client leaves.
    """
    deadline = time.monotonic() + timeout_s
    chunks = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BodyTimeout
        try:
            message = await asyncio.wait_for(receive(), remaining)
        except TimeoutError:
            raise BodyTimeout from None
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunks += message.get("body", b"")
        if len(chunks) > limit:
            return bytes(chunks[: limit + 1]), False
        if not message.get("more_body", False):
            return bytes(chunks), True


@dataclass(frozen=True, slots=True)
class Buffered:
    """A request whose body has been read: what to hand the app, and the body itself."""

    scope: Scope
    receive: Receive
    send: Send
    body: bytes


async def buffer_request(
    scope: Scope, receive: Receive, send: Send, info: BodyInfo, *, limit: int, timeout_s: float
) -> Buffered | None:
    """The request with its body read whole: scope, receive and send to hand to the app.

    A body declared over `limit` is not read at all: the app gets none, and refuses the
    request on its Content-Length (Flask does; so do admin-assistant's twins). A body found
    over `limit` while reading reaches the app as `limit + 1` bytes. In both cases the
    response closes the connection, the rest of the body unread. Returns None when the
    request was answered here (408) or the client left.
    """
    if info.declared is not None and info.declared > limit:
        body, complete = b"", False
    else:
        try:
            body, complete = await read_body(receive, limit=limit, timeout_s=timeout_s)
        except BodyTimeout:
            await send_timeout(send)
            return None
        except ClientGone:
            return None
        scope = with_body(scope, body)
    return Buffered(scope, replay(body, receive), send if complete else _closing(send), body)


def _closing(send: Send) -> Send:
    """`send` adding `Connection: close`: the rest of the request body was never read."""

    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
        await send(message)

    return send_closing


def with_body(scope: Scope, body: bytes) -> Scope:
    """`scope` whose headers state the buffered body's length (and no chunked encoding)."""
    headers = [
        (name, value)
        for name, value in scope["headers"]
        if name not in (b"content-length", b"transfer-encoding")
    ]
    headers.append((b"content-length", str(len(body)).encode()))
    return {**scope, "headers": headers}


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out `body` in one message, then the real channel (disconnects)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive_replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return receive_replayed


async def send_timeout(send: Send) -> None:
    """Answer 408 and close the connection (the rest of the body is never read)."""
    await _send_error(send, 408, _TIMEOUT_BODY)


async def send_headers_too_large(send: Send) -> None:
    """Answer 431 and close the connection."""
    await _send_error(send, 431, _HEADERS_BODY)


async def _send_error(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
