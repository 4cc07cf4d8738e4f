"""Mounting a WSGI app: a2wsgi's adapter, with the body read on the loop before a thread is
taken, and a streamed response stopped when the client leaves."""

from __future__ import annotations

import asyncio
from typing import Any

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import WSGIResponder

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
        responder = _WSGIResponder(self.app, self.executor, self.send_queue_size)
        await responder(scope, receive, send)
        if responder.watched:
            self.watchers_started += 1


class _WSGIResponder(WSGIResponder):
    """Watches for http.disconnect while a streamed response is being sent; the WSGI thread
    then raises _ClientGone at its next send, which ends the app's loop and closes its
    iterable.

    a2wsgi sends every chunk with more_body=True and ends with an empty body message, so a
    one-piece response is one chunk "with more" and then the end. The watcher starts at the
    second chunk with more_body, i.e. only for a response that really streams: the common
    one-piece response costs no extra task. By then the body has been handed over whole, so
    the watcher never takes a body message from `receive`.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.client_gone = False
        self.watched = False
        self.chunks_sent = 0
        self._receive: Receive | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        self._receive = receive
        try:
            await super().__call__(scope, receive, send)  # type: ignore[arg-type]
        except _ClientGone:
            pass  # nobody left to answer; the app's iterable has been closed
        finally:
            if self._watcher is not None:
                self._watcher.cancel()

    def _watch_later(self) -> None:  # on the event loop
        if self._watcher is None and self._receive is not None:
            self.watched = True
            self._watcher = self.loop.create_task(self._watch(self._receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.client_gone = True

    def send(self, message: Any) -> None:  # runs in the WSGI thread
        if self.client_gone:
            raise _ClientGone("the client disconnected")
        if (
            message is not None
            and message.get("type") == "http.response.body"
            and message.get("more_body", False)
        ):
            self.chunks_sent += 1
            if self.chunks_sent == 2:
                self.loop.call_soon_threadsafe(self._watch_later)
        super().send(message)
