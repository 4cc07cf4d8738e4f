"""Slow and huge requests: bodies read on the loop with a deadline, heads capped, both backends."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from asgi_gateway.serving.http_limits import HTTP_PROTOCOL
from tests.asgi_gateway.conftest import CUSTOM_APP
from tests.conftest import LiveServer, ServerProcess

DEADLINE_S = 10.0


def stalled(server: ServerProcess | LiveServer, head: str, body: bytes = b"") -> socket.socket:
    """A connection that sends `head` and the start of a body, then nothing more."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S)
    sock.sendall(head.encode() + b"\r\n\r\n" + body)
    return sock


def answer_of(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response from `sock` (until the server closes it)."""
    data = b""
    while True:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def test_slow_login_bodies_never_stall_the_legacy_app(
    environ: dict[str, str], flags_file: Path, spawn: Callable[..., ServerProcess]
) -> None:
    """The reported attack: 14 clients trickling `POST /login` bodies on 4 WSGI threads."""
    server = spawn({**environ, "AA_WSGI_THREADS": "4", "AA_BODY_TIMEOUT_S": "3"})
    sockets = [
        stalled(
            server,
            "POST /login HTTP/1.1\r\nHost: t\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000",
            b"email=a",
        )
        for _ in range(14)
    ]
    try:
        with httpx.Client(base_url=server.url, timeout=2) as client:
            # Answered at once, though every thread would be stalled if one were taken.
            for _ in range(8):
                assert client.get("/healthz").status_code == 200
                assert client.get("/login").status_code == 200
        for sock in sockets:
            status, headers, body = answer_of(sock)
            assert status == 408
            assert headers["connection"] == "close"
            assert headers["x-served-by"] == "legacy"
            assert json.loads(body)["error"]["code"] == "request_timeout"
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def custom_quick(
    custom_environ: dict[str, str], spawn: Callable[..., ServerProcess]
) -> ServerProcess:
    """The third-party app with a one-second body deadline."""
    return spawn({**custom_environ, "CUSTOM_BODY_TIMEOUT_S": "1"}, app=CUSTOM_APP)


@pytest.mark.parametrize(("path", "backend"), [("/echo", "async"), ("/upload-slow", "legacy")])
def test_a_stalled_upload_gets_408_from_either_backend(
    custom_quick: ServerProcess, path: str, backend: str
) -> None:
    sock = stalled(
        custom_quick,
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 5000",
        b"x" * 100,
    )
    with sock:
        status, headers, body = answer_of(sock)
    assert (status, headers["x-served-by"]) == (408, backend)
    assert json.loads(body) == {
        "error": {
            "code": "request_timeout",
            "message": "the request body did not arrive in time; send it again, faster",
        }
    }


def chunked(body: bytes, size: int = 16_384) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("path", ["/echo", "/upload-slow"])
def test_whole_bodies_reach_either_backend_intact(custom_server: ServerProcess, path: str) -> None:
    body = bytes(range(256)) * 1200
    expected = {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    with custom_server.client() as client:
        plain = client.post(path, content=body)
        streamed = client.post(path, content=chunked(body))
    assert plain.json() == expected
    assert streamed.json() == expected
    assert streamed.request.headers["transfer-encoding"] == "chunked"


def test_a_body_declared_over_the_limit_reaches_no_twin_and_closes(
    custom_server: ServerProcess,
) -> None:
    # The twin reads what it is given: nothing, since the declared body is over the limit.
    sock = stalled(
        custom_server, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000", b"x" * 10
    )
    with sock:
        status, headers, body = answer_of(sock)
    assert (status, headers["connection"], json.loads(body)["bytes"]) == (200, "close", 0)


def test_huge_headers_are_refused_with_431_by_the_gateway(custom_server: ServerProcess) -> None:
    started = time.monotonic()
    response = httpx.get(
        custom_server.url + "/busy", headers={"X-Big": "a" * 200_000}, timeout=DEADLINE_S
    )
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "headers_too_large"
    assert time.monotonic() - started < DEADLINE_S
    # Headers under the cap are fine.
    assert httpx.get(custom_server.url + "/busy", headers={"X-Big": "a" * 1000}).status_code == 200


async def tiny_app(scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_the_limited_httptools_protocol_refuses_an_8_mb_head(
    serve: Callable[..., LiveServer],
) -> None:
    """What `admin-assistant serve` runs: the head is refused before it is all in memory."""
    server = serve(
        tiny_app, lifespan="off", http=HTTP_PROTOCOL, h11_max_incomplete_event_size=64 * 1024
    )
    assert isinstance(server.server.config, uvicorn.Config)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S)
    with sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ")
        try:
            for _ in range(8 * 16):  # 8 MB in 64 KiB pieces, stopping once refused
                sock.sendall(b"a" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, headers, _ = answer_of(sock)
    assert (status, headers["connection"]) == (431, "close")
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/", headers={"X-Small": "b" * 1000}).text == "ok"
