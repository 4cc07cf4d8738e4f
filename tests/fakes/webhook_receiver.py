"""A real HTTP webhook receiver for tests: records every JSON POST, fails on demand.

``with WebhookReceiver() as hook: ... hook.url ... hook.events()``; ``hook.fail_next(3)``
answers the next three posts with 500, ``hook.fail_always()`` every post until
``hook.recover()``.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class WebhookReceiver:
    """Starlette on 127.0.0.1 in a background thread; `posts` holds what was received."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.attempts = 0
        self._failures_left = 0
        self._failing = False
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/hook", self._receive, methods=["POST"])])
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/hook"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, args=([self._sock],), daemon=True)

    async def _receive(self, request: Request) -> Response:
        payload = await request.json()
        with self._lock:
            self.attempts += 1
            if self._failing or self._failures_left > 0:
                self._failures_left = max(self._failures_left - 1, 0)
                return JSONResponse({"error": "try again"}, status_code=500)
            self.posts.append(payload)
        return JSONResponse({"ok": True})

    def fail_next(self, n: int) -> None:
        with self._lock:
            self._failures_left = n

    def fail_always(self) -> None:
        with self._lock:
            self._failing = True

    def recover(self) -> None:
        with self._lock:
            self._failing = False
            self._failures_left = 0

    def events(self, event: str | None = None, endpoint: str | None = None) -> list[dict[str, Any]]:
        """The received payloads, optionally of one event and endpoint, in arrival order."""
        with self._lock:
            return [
                p
                for p in self.posts
                if (event is None or p.get("event") == event)
                and (endpoint is None or p.get("endpoint") == endpoint)
            ]

    def wait_for(
        self, event: str, endpoint: str | None = None, *, count: int = 1, timeout_s: float = 30.0
    ) -> list[dict[str, Any]]:
        """The payloads of `event` once `count` have arrived (fewer at the deadline)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.events(event, endpoint)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("webhook receiver did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
