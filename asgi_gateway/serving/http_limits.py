"""uvicorn's httptools protocol with a cap on the request line and headers (431 past it).

uvicorn's h11 protocol caps an incomplete request at `h11_max_incomplete_event_size`; its
httptools protocol (the faster one) has no cap at all, so a client could send megabytes of
headers and have them held in memory. This subclass counts the bytes of the request line
and headers as they arrive and answers 431 once they pass the same setting
(default 64 KiB). Use it with `uvicorn.run(..., http=HTTP_PROTOCOL)`; the gateway itself
also refuses oversized headers, for any server.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

HTTP_PROTOCOL = "asgi_gateway.serving.http_limits:LimitedHttpToolsProtocol"
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
_MESSAGE = b"request line and headers too large"


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol answering 431 once a request's line and headers pass the cap.

    httptools reports a header only once it is whole, so the bytes are counted as they
    arrive: after each read the parser has not finished the head of, its size is added;
    past the cap the connection is answered 431 and closed, holding at most the cap plus
    one read in memory.
    """

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.max_header_bytes = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEADER_BYTES
        self.head_bytes = 0
        self.in_head = True

    def on_message_begin(self) -> None:
        self.head_bytes = 0
        self.in_head = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self.in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.in_head = True
        self.head_bytes = 0
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.in_head or self.transport.is_closing():
            return
        self.head_bytes += len(data)
        if self.head_bytes > self.max_header_bytes:
            self._send_431()

    def _send_431(self) -> None:
        self.logger.warning("request headers over %d bytes refused", self.max_header_bytes)
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[431],
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: " + str(len(_MESSAGE)).encode() + b"\r\n",
                    b"connection: close\r\n\r\n",
                    _MESSAGE,
                ]
            )
        )
        self.transport.close()


__all__ = ["DEFAULT_MAX_HEADER_BYTES", "HTTP_PROTOCOL", "LimitedHttpToolsProtocol"]
