"""Mounting a WSGI app: a2wsgi's adapter, with the body read on the loop before a thread is
taken, a one-piece response handed to the loop in one go, and a streamed response stopped when
the client leaves."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from typing import Any

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import Body, WSGIResponder, build_environ

from asgi_gateway.serving.body import (
    BodyInfo,
    Receive,
    Scope,
    Send,
    buffer_request,
    inspect_headers,
)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class _ClientGone(Exception):
    """Raised in a WSGI thread at its next send once the client has disconnected."""


class WSGIMount(WSGIMiddleware):
    """a2wsgi's adapter, with what any mounted WSGI app needs behind a public server.

    * The request body is read on the event loop, whole, before a thread is taken
      (`asgi_gateway.serving.body`): a slow or stalled client gets a 408 after
      `body_timeout_s` instead of holding a thread, and a chunked body reaches the app
      with a Content-Length (a2wsgi's wsgi.input does not say where a chunked body ends, so
      Werkzeug read it as empty). Past `max_body_bytes` (default: a Flask app's
      MAX_CONTENT_LENGTH, else 1 MiB) the app gets `max_body_bytes + 1` bytes and answers its
      own 413.
    * A response the app gives in one piece (the usual Flask response: headers, then one body)
      is handed to the event loop once, when the app returns, instead of one cross-thread
      round trip per message as in a2wsgi; a response that streams (a second chunk, or the
      `write` callable twice) goes through a2wsgi's queue from then on, with its backpressure.
    * A client who leaves stops a streaming WSGI response. uvicorn drops what is sent after a
      disconnect without an error, and a2wsgi reads `receive` only for the request body, so a
      streamed response kept its WSGI thread until the generator ended; an endless stream
      held it for good.
    """

    def __init__(
        self,
        app: Any,
        workers: int = 10,
        *,
        max_body_bytes: int | None = None,
        body_timeout_s: float = 10.0,
        **options: Any,
    ) -> None:
        if max_body_bytes is None:
            max_body_bytes = (
                getattr(app, "config", {}).get("MAX_CONTENT_LENGTH") or DEFAULT_MAX_BODY_BYTES
            )
        super().__init__(app, workers=workers, **options)
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.watchers_started = 0  # streamed responses watched for a disconnect (for tests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)  # type: ignore[arg-type]
            return
        await self.serve(scope, receive, send, inspect_headers(scope))

    async def serve(self, scope: Scope, receive: Receive, send: Send, info: BodyInfo) -> None:
        """Serve one HTTP request whose headers were already inspected (the gateway's path)."""
        body = b""
        if info.has_body:
            buffered = await buffer_request(
                scope,
                receive,
                send,
                info,
                limit=self.max_body_bytes,
                timeout_s=self.body_timeout_s,
            )
            if buffered is None:
                return  # answered 408, or the client left
            scope, receive, send = buffered.scope, buffered.receive, buffered.send
            body = buffered.body
        responder = _WSGIResponder(self.app, self.executor, self.send_queue_size)
        await responder(scope, receive, send, body)
        if responder.watched:
            self.watchers_started += 1


class _ReadBody(Body):
    """wsgi.input over a body already read on the loop: no thread ever waits for `receive`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, receive: Receive, body: bytes) -> None:
        super().__init__(loop, receive)
        self.buffer.extend(body)
        self._has_more = False


class _WSGIResponder(WSGIResponder):
    """a2wsgi's responder, holding a one-piece response until the app returns.

    In the WSGI thread, `send` keeps the response start and the first body chunk. When the app
    ends with no more chunks, the loop sends them as two messages (start, then the whole body)
    after the thread returns: no sender task, no queue, no cross-thread call per message. A
    second chunk means the response streams: the held messages go through a2wsgi's queue, and
    everything after them, as in a2wsgi.

    While a response streams, a task watches for http.disconnect; the WSGI thread then raises
    _ClientGone at its next send, which ends the app's loop and closes its iterable. The watcher
    starts at the second chunk, so a one-piece response costs no extra task, and by then the
    body has been handed over whole, so the watcher never takes a body message from `receive`.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.client_gone = False
        self.watched = False
        self._held: list[dict[str, Any]] | None = []  # None once the response streams
        self._receive: Receive | None = None
        self._send: Send | None = None
        self._sender: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def __call__(  # type: ignore[override]
        self, scope: Scope, receive: Receive, send: Send, body: bytes = b""
    ) -> None:
        self._receive, self._send = receive, send
        environ = build_environ(scope, _ReadBody(self.loop, receive, body))  # type: ignore[arg-type]
        run_app = functools.partial(contextvars.copy_context().run, self.wsgi)
        try:
            await self.loop.run_in_executor(self.executor, run_app, environ, self.start_response)
            if self._sender is None:
                for message in self._held or ():
                    await send(message)
            else:
                await self.send_queue.put(None)
                await self._sender  # re-raises what the client's send raised
            if self.exc_info is not None:
                raise self.exc_info[0].with_traceback(self.exc_info[1], self.exc_info[2])
        except _ClientGone:
            pass  # nobody left to answer; the app's iterable has been closed
        finally:
            for task in (self._sender, self._watcher):
                if task is not None and not task.done():
                    task.cancel()

    def send(self, message: Any) -> None:  # runs in the WSGI thread
        held = self._held
        if held is not None:
            kind = message["type"]
            if kind == "http.response.start" or not held or held[-1]["type"] != kind:
                held.append(message)  # the start, then the first chunk
                return
            if not message.get("more_body", False):  # the end: the held chunk becomes the body
                held[-1] = {"type": kind, "body": held[-1]["body"] + message.get("body", b"")}
                return
            self._stream(held)  # a second chunk: the response streams
        if self.client_gone:
            raise _ClientGone("the client disconnected")
        super().send(message)

    def _stream(self, held: list[dict[str, Any]]) -> None:  # runs in the WSGI thread
        self._held = None
        asyncio.run_coroutine_threadsafe(self._start_streaming(), self.loop).result()
        for message in held:
            super().send(message)

    async def _start_streaming(self) -> None:  # on the event loop
        assert self._send is not None and self._receive is not None
        self._sender = self.loop.create_task(self.sender(self._send))
        self.watched = True
        self._watcher = self.loop.create_task(self._watch(self._receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.client_gone = True
