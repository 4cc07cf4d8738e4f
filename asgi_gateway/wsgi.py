"""Mounting a WSGI app: a2wsgi's adapter, reading chunked request bodies, and stopping a
streamed response when the client leaves."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import WSGIResponder

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _ClientGone(Exception):
    """Raised in a WSGI thread at its next send once the client has disconnected."""


class WSGIMount(WSGIMiddleware):
    """a2wsgi's adapter, with two fixes any mounted WSGI app needs.

    * A client who leaves stops a streaming WSGI response. uvicorn drops what is sent after a
      disconnect without an error, and a2wsgi reads `receive` only for the request body, so
      a streamed response (a generator, a slow download) kept its WSGI thread until the
      generator ended, however long after the client had gone; an endless stream held it
      for good, and enough of them starved the pool.
    * A chunked request body reaches the app with a Content-Length (see `ChunkedBodyBuffer`).
      For a Flask app, `max_body_bytes` defaults to its MAX_CONTENT_LENGTH.
    """

    def __init__(
        self, app: Any, workers: int = 10, *, max_body_bytes: int | None = None, **options: Any
    ) -> None:
        if max_body_bytes is None:
            max_body_bytes = getattr(app, "config", {}).get("MAX_CONTENT_LENGTH")
        super().__init__(ChunkedBodyBuffer(app, max_body_bytes), workers=workers, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)  # type: ignore[arg-type]
            return
        responder = _WSGIResponder(self.app, self.executor, self.send_queue_size)
        await responder(scope, receive, send)


class _WSGIResponder(WSGIResponder):
    """Watches for http.disconnect while a streamed response is being sent; the WSGI thread
    then raises _ClientGone at its next send, which ends the app's loop and closes its
    iterable.

    The watcher starts only for a streamed response (a body message with more_body), and
    only once the app has read the whole request body, so it never takes a body message from
    `receive`. A one-piece response, the common case, costs no extra task.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.client_gone = False
        self._streaming = False
        self._body_read = False
        self._receive: Receive | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        # A request without a body has its one (empty) message read here, so a streamed
        # answer to it can be watched at once; the app gets the message if it asks for it.
        self._receive = receive
        first = None if _has_body(scope) else await receive()

        def note(message: dict[str, Any]) -> dict[str, Any]:
            if message["type"] != "http.request" or not message.get("more_body", False):
                self._body_read = True
                self._maybe_watch()
            return message

        async def receive_body() -> dict[str, Any]:
            nonlocal first
            if first is not None:
                message, first = first, None
                return message
            return note(await receive())

        if first is not None:
            note(first)
        try:
            await super().__call__(scope, receive_body, send)  # type: ignore[arg-type]
        except _ClientGone:
            pass  # nobody left to answer; the app's iterable has been closed
        finally:
            if self._watcher is not None:
                self._watcher.cancel()

    def _maybe_watch(self) -> None:  # on the event loop
        if self._streaming and self._body_read and self._watcher is None:
            assert self._receive is not None
            self._watcher = self.loop.create_task(self._watch(self._receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.client_gone = True

    def send(self, message: Any) -> None:  # runs in the WSGI thread
        if self.client_gone:
            raise _ClientGone("the client disconnected")
        if (
            not self._streaming
            and message is not None
            and message.get("type") == "http.response.body"
            and message.get("more_body", False)
        ):
            self._streaming = True
            self.loop.call_soon_threadsafe(self._maybe_watch)
        super().send(message)


class ChunkedBodyBuffer:
    """WSGI middleware: hand a chunked body to the app with a Content-Length, as a buffering
    proxy in front of it would.

    a2wsgi's wsgi.input ends with the body but does not say so (no `wsgi.input_terminated`),
    so Werkzeug read a chunked body as empty: a POST lost its JSON and 400'd, and a run with
    an optional body silently took its defaults. Reading the body here and stating its
    length fixes that for any app. With a `limit`, at most limit + 1 bytes are read: the
    stated length is then over the limit, and an app that enforces one (Flask's
    MAX_CONTENT_LENGTH) refuses it with its usual 413 before reading any of it.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], limit: int | None) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            stream = environ["wsgi.input"]
            body = stream.read(self.limit + 1) if self.limit is not None else stream.read()
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]  # Werkzeug ignores a length beside chunked
        return self.app(environ, start_response)


def _has_body(scope: Scope) -> bool:
    return any(
        (name == b"content-length" and value != b"0") or name == b"transfer-encoding"
        for name, value in scope.get("headers", ())
    )
