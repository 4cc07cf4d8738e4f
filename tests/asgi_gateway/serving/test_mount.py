"""A Flask app mounted in the gateway behaves as it does on its own.

Redirects built by url_for, errors raised in views, streamed responses, and clients that
go away mid-request: first for admin-assistant's legacy app (against the same app served
standalone), then for a small third-party app (`custom_app.py`) that only the gateway's
public `build_gateway` knows about.
"""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_gateway.serving.mount import WSGIMount
from legacy_flask import create_app
from shared.runtime import Runtime
from tests.asgi_gateway.conftest import CUSTOM_WSGI_THREADS
from tests.asgi_gateway.custom_app import (
    MAX_CONTENT_LENGTH,
    STREAM_CHUNK_BYTES,
    stream_chunk,
)
from tests.conftest import LiveServer, Person, ServerProcess

DEADLINE_S = 10.0
SECRET = "secret detail"


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


# -- admin-assistant's legacy app ----------------------------------------------------------------


@pytest.fixture
def standalone(runtime: Runtime, serve: Callable[..., LiveServer]) -> LiveServer:
    """The same legacy app on its own (a2wsgi under uvicorn, no gateway), same database."""
    return serve(WSGIMount(create_app(runtime=runtime), workers=4))


def redirect_of(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    response = httpx.get(url + path, headers=headers, follow_redirects=False, timeout=10)
    return response.status_code, response.headers.get("location", "")


REDIRECTS = [
    # (path, signed in, expected status, expected Location)
    ("/", False, 302, "/login?next=/"),
    ("/calendars?page=2", False, 302, "/login?next=/calendars?page%3D2"),
    (
        "/action-log?config_id=3&page=1",
        False,
        302,
        "/login?next=/action-log?config_id%3D3%26page%3D1",
    ),
    ("/login", True, 302, "/"),
    ("/login?next=/calendars", True, 302, "/calendars"),
    ("/login?next=//evil.example/", True, 302, "/"),
    ("/appointments?start=not-a-date", True, 302, "/appointments"),
]


def test_url_for_redirects_are_the_same_through_the_gateway_as_standalone(
    gateway_server: ServerProcess, standalone: LiveServer, alice: Person
) -> None:
    for path, signed_in, status, location in REDIRECTS:
        headers = alice.headers if signed_in else None
        through_gateway = redirect_of(gateway_server.url, path, headers)
        on_its_own = redirect_of(standalone.url, path, headers)
        assert through_gateway == on_its_own == (status, location), path


def test_a_created_resource_location_is_the_same_through_the_gateway_as_standalone(
    gateway_server: ServerProcess, standalone: LiveServer, alice: Person
) -> None:
    locations = []
    for url in (gateway_server.url, standalone.url):
        response = httpx.post(
            url + "/api/calendars",
            json={"name": "c", "role": "source"},
            headers=alice.headers,
            timeout=10,
        )
        assert response.status_code == 201, response.text
        locations.append((response.headers["location"], response.json()["id"]))
    assert [loc for loc, _ in locations] == [f"/api/calendars/{i}" for _, i in locations]


def test_under_a_root_path_the_gateway_routes_and_redirects_as_standalone(
    environ: dict[str, str],
    flags_file: Path,
    runtime: Runtime,
    alice: Person,
    spawn: Callable[..., ServerProcess],
    serve: Callable[..., LiveServer],
) -> None:
    """Behind a proxy that strips /aa (`--root-path /aa`): url_for builds /aa/... links, the
    twins and the gateway's own pages are still found, as Starlette would find them.
    """
    flags_file.write_text("version: 1\nroutes:\n  appointments.list: {mode: async}\n")
    gateway = spawn(environ, extra_args=["--root-path", "/aa"])
    standalone = serve(WSGIMount(create_app(runtime=runtime), workers=4), root_path="/aa")
    for path, signed_in, *_ in REDIRECTS:
        headers = alice.headers if signed_in else None
        assert redirect_of(gateway.url, path, headers) == redirect_of(
            standalone.url, path, headers
        ), path
    assert redirect_of(gateway.url, "/") == (302, "/aa/login?next=/")

    twin = httpx.get(gateway.url + "/api/appointments", headers=alice.headers, timeout=10)
    assert (twin.status_code, twin.headers["x-served-by"]) == (200, "async")
    readyz = httpx.get(gateway.url + "/readyz", timeout=10)  # the gateway's, not Flask's
    assert readyz.status_code == 200
    assert readyz.json()["checks"]["flags"] == "ok", readyz.text


@contextmanager
def table_hidden(environ: dict[str, str], table: str) -> Iterator[None]:
    """Rename `table` away for the block: every query on it fails inside the view."""
    path = environ["AA_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=10) as conn:
        conn.execute(f"ALTER TABLE {table} RENAME TO {table}_hidden")
    try:
        yield
    finally:
        with sqlite3.connect(path, timeout=10) as conn:
            conn.execute(f"ALTER TABLE {table}_hidden RENAME TO {table}")


def test_an_exception_in_a_view_gives_the_error_shape_on_both_backends_never_a_hang(
    environ: dict[str, str], gateway_server: ServerProcess, admin: Person
) -> None:
    # The client's timeout (30 s) is the hang detector throughout.
    with (
        table_hidden(environ, "appointments"),
        gateway_server.client(headers=admin.headers) as client,
    ):
        bodies = {}
        for backend in ("legacy", "async"):
            response = client.get("/api/appointments", headers={"X-Backend-Override": backend})
            assert response.status_code == 500, response.text
            assert response.headers["x-served-by"] == backend
            assert response.headers["content-type"].startswith("application/json")
            bodies[backend] = response.json()
            assert "appointments_hidden" not in response.text
            assert "Traceback" not in response.text
        assert (
            bodies["legacy"]
            == bodies["async"]
            == {
                "error": {
                    "code": "internal_error",
                    "message": "internal server error; it has been logged",
                }
            }
        )
        page = client.get("/appointments")
        assert page.status_code == 500
        assert page.headers["content-type"].startswith("text/html")
        assert "Traceback" not in page.text and "appointments_hidden" not in page.text
    # The server is fine afterwards: the same requests succeed again.
    with gateway_server.client(headers=admin.headers) as client:
        assert client.get("/api/appointments").status_code == 200
        assert client.get("/appointments").status_code == 200


# -- a third-party Flask app: tests/asgi_gateway/custom_app.py -----------------------------------


def busy(server: ServerProcess) -> dict[str, Any]:
    """What the app's WSGI threads are running, from the async twin (no WSGI thread needed)."""
    response = httpx.get(server.url + "/busy", timeout=5)
    assert response.status_code == 200
    assert response.headers["x-served-by"] == "async"
    return response.json()


def assert_every_wsgi_thread_is_free(server: ServerProcess) -> None:
    """As many concurrent requests as there are WSGI threads all finish in about one go."""
    sleep_s = 1.0
    clients = [server.client() for _ in range(CUSTOM_WSGI_THREADS)]

    def one(client: httpx.Client) -> int:
        return client.get(f"/sleep?ms={int(sleep_s * 1000)}").status_code

    try:
        started = time.monotonic()
        with ThreadPoolExecutor(CUSTOM_WSGI_THREADS) as pool:
            statuses = list(pool.map(one, clients))
        elapsed = time.monotonic() - started
    finally:
        for client in clients:
            client.close()
    assert statuses == [200] * CUSTOM_WSGI_THREADS
    # Queued behind a busy thread, some request would take at least twice as long.
    assert elapsed < 1.8 * sleep_s, f"{elapsed:.2f} s: a WSGI thread was still busy"


def test_the_gateway_serves_a_third_party_flask_app_and_its_twin(
    custom_server: ServerProcess,
) -> None:
    with custom_server.client() as client:
        twin = client.get("/busy")
        legacy = client.get("/sleep?ms=1")
        missing = client.get("/no-such-page")
    assert (twin.status_code, twin.headers["x-served-by"], twin.json()["backend"]) == (
        200,
        "async",
        "async",
    )
    assert (legacy.status_code, legacy.headers["x-served-by"]) == (200, "legacy")
    assert (missing.status_code, missing.headers["x-served-by"]) == (404, "legacy")
    assert busy(custom_server)["running"] == {"upload": 0, "download": 0, "sleep": 0}


def test_an_exception_in_a_third_party_view_is_answered_never_a_hang(
    custom_server: ServerProcess,
) -> None:
    with custom_server.client() as client:
        handled = client.get("/api/boom")  # the app's own JSON error handler
        assert (handled.status_code, handled.headers["x-served-by"]) == (500, "legacy")
        assert handled.json() == {
            "error": {"code": "internal_error", "message": "internal server error"}
        }
        # Unhandled by the app (PROPAGATE_EXCEPTIONS): still a 500, no detail, no hang.
        for _ in range(CUSTOM_WSGI_THREADS + 1):
            crashed = client.get("/crash")
            assert crashed.status_code == 500
            assert SECRET not in crashed.text and "Traceback" not in crashed.text
        # Failing after its first chunk: nothing has left yet (a response is held until it
        # streams), so the client gets a clean 500 instead of a truncated 200.
        early = client.get("/stream-crash?chunks=1")
        assert (early.status_code, early.headers["x-served-by"]) == (500, "legacy")
        assert early.json()["error"]["code"] == "internal_error"
        assert SECRET not in early.text
        # Failing mid-stream: the response is cut short, visibly, and promptly.
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/stream-crash?chunks=3")
    assert_every_wsgi_thread_is_free(custom_server)


def test_a_streamed_flask_response_arrives_intact(custom_server: ServerProcess) -> None:
    chunks = 300  # 1.2 MB, far more than one socket buffer
    expected = hashlib.sha256(b"".join(stream_chunk(n) for n in range(chunks)))
    received = hashlib.sha256()
    size = 0
    with (
        custom_server.client() as client,
        client.stream("GET", f"/stream?chunks={chunks}") as response,
    ):
        assert response.status_code == 200
        assert response.headers["x-served-by"] == "legacy"
        assert response.headers.get("transfer-encoding") == "chunked"
        for piece in response.iter_raw():
            size += len(piece)
            received.update(piece)
    assert size == chunks * STREAM_CHUNK_BYTES
    assert received.hexdigest() == expected.hexdigest()


def open_request(server: ServerProcess, head: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S)
    sock.sendall(head.encode() + b"\r\n\r\n" + body)
    return sock


def test_clients_leaving_mid_upload_never_take_a_wsgi_thread(
    custom_server: ServerProcess,
) -> None:
    declared = 1_000_000
    sockets = [
        open_request(
            custom_server,
            f"POST /upload-slow HTTP/1.1\r\nHost: t\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {declared}",
            b"x" * 10_000,
        )
        for _ in range(CUSTOM_WSGI_THREADS * 2)
    ]
    # The bodies are being read on the event loop: no view runs, every thread stays free.
    assert_every_wsgi_thread_is_free(custom_server)
    assert busy(custom_server)["running"]["upload"] == 0
    for sock in sockets:
        sock.close()  # gone, with most of the body unsent

    assert_every_wsgi_thread_is_free(custom_server)
    assert busy(custom_server)["running"]["upload"] == 0
    # And a whole upload still arrives whole.
    body = bytes(range(256)) * 1000
    response = httpx.post(custom_server.url + "/upload-slow", content=body, timeout=DEADLINE_S)
    assert response.json() == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def chunked(body: bytes, size: int = 16_384) -> Iterator[bytes]:
    """`body` as an iterator, which httpx sends with Transfer-Encoding: chunked."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_chunked_upload_reaches_a_third_party_app_whole(custom_server: ServerProcess) -> None:
    body = bytes(range(256)) * 1200  # 300 KiB, under the app's MAX_CONTENT_LENGTH
    response = httpx.post(
        custom_server.url + "/upload-slow", content=chunked(body), timeout=DEADLINE_S
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.json() == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_a_chunked_upload_over_the_apps_limit_is_its_own_413(
    custom_server: ServerProcess,
) -> None:
    body = b"x" * (MAX_CONTENT_LENGTH + 1)
    response = httpx.post(
        custom_server.url + "/upload-slow", content=chunked(body), timeout=DEADLINE_S
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413
    assert busy(custom_server)["running"]["upload"] == 0  # refused before the view ran


def test_clients_leaving_mid_download_leak_no_wsgi_thread(custom_server: ServerProcess) -> None:
    # Each download would stream for a minute; its client reads a little and leaves.
    sockets = [
        open_request(
            custom_server, "GET /download-slow?chunks=1200&delay_ms=50 HTTP/1.1\r\nHost: t"
        )
        for _ in range(CUSTOM_WSGI_THREADS)
    ]
    for sock in sockets:
        assert sock.recv(STREAM_CHUNK_BYTES).startswith(b"HTTP/1.1 200 ")
    assert busy(custom_server)["running"]["download"] == CUSTOM_WSGI_THREADS
    for sock in sockets:
        sock.close()

    wait_for(
        lambda: busy(custom_server)["running"]["download"] == 0,
        "the abandoned downloads to stop streaming",
    )
    assert_every_wsgi_thread_is_free(custom_server)


def test_the_wsgi_thread_count_stays_bounded_after_many_disconnects(
    custom_server: ServerProcess,
) -> None:
    before = busy(custom_server)["threads"]
    for _ in range(3):
        sockets = [
            open_request(
                custom_server, "GET /download-slow?chunks=1200&delay_ms=20 HTTP/1.1\r\nHost: t"
            )
            for _ in range(CUSTOM_WSGI_THREADS)
        ]
        for sock in sockets:
            sock.recv(100)
            sock.close()
        wait_for(
            lambda: busy(custom_server)["running"]["download"] == 0,
            "the abandoned downloads to stop streaming",
        )
    report = busy(custom_server)
    assert report["wsgi_threads"] <= CUSTOM_WSGI_THREADS, report
    assert report["threads"] <= before + CUSTOM_WSGI_THREADS, (before, report)
