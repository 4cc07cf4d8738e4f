"""One request's channel through the gateway: tags the answer, notes status and disconnects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgi_gateway.serving.decision import Backend

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_SERVED_BY = {"legacy": (b"x-served-by", b"legacy"), "async": (b"x-served-by", b"async")}


class Exchange:
    """One request's channel: tags the response, and notes status, errors and disconnects."""

    __slots__ = (
        "_receive",
        "_send",
        "backend",
        "disconnected",
        "done",
        "error",
        "response_started",
        "status",
    )

    def __init__(self, receive: Receive, send: Send, backend: Backend) -> None:
        self._receive = receive
        self._send = send
        self.backend = backend
        self.status = 500  # until the app starts a response
        self.error = False
        self.disconnected = False
        self.done = False
        self.response_started = False

    async def receive(self) -> dict[str, Any]:
        message = await self._receive()
        if message["type"] == "http.disconnect" and not self.done:
            self.disconnected = True
            if not self.response_started:
                self.status = 499  # the client left first: not a server error
        return message

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.response_started = True
            message["headers"] = [*message.get("headers", ()), _SERVED_BY[self.backend]]
        elif kind == "http.response.body" and not message.get("more_body", False):
            self.done = True
        try:
            await self._send(message)
        except OSError:
            self.disconnected = True
            raise
