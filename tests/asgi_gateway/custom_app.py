"""A small third-party Flask app behind `asgi_gateway.build_gateway`: the gateway is not ours alone.

Serve it with `uvicorn tests.asgi_gateway.custom_app:app` and CUSTOM_FLAGS_FILE,
CUSTOM_DATABASE_URL (an async SQLAlchemy URL), CUSTOM_WSGI_THREADS and CUSTOM_BODY_TIMEOUT_S
in the environment.
Its views raise, stream, upload and download slowly, and count what is still running, so
tests can see from outside what the WSGI threads are doing; `/busy` has an async twin, which
answers from the event loop even when every WSGI thread is taken.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from werkzeug.exceptions import HTTPException

from asgi_gateway import FlagSource, Gateway, build_gateway

FLAGS = """\
version: 1
routes:
  busy: {mode: async}
  echo: {mode: async}
"""
STREAM_CHUNK_BYTES = 4096

flask_app = Flask(__name__)
# Let an unhandled exception leave the WSGI app, as a debug-configured app does: the
# gateway must still answer (and not hang) when the app itself does not.
flask_app.config["PROPAGATE_EXCEPTIONS"] = True
MAX_CONTENT_LENGTH = 1024 * 1024
flask_app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH

_running = {"upload": 0, "download": 0, "sleep": 0}
_running_lock = threading.Lock()


class _Running:
    """Counts a view (or a streaming generator) while it runs."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __enter__(self) -> None:
        with _running_lock:
            _running[self.kind] += 1

    def __exit__(self, *exc: object) -> None:
        with _running_lock:
            _running[self.kind] -= 1


def stream_chunk(n: int) -> bytes:
    """Chunk `n` of /stream: deterministic, distinct bytes, so a test can check the whole."""
    seed = hashlib.sha256(n.to_bytes(8, "big")).digest()
    return (seed * (STREAM_CHUNK_BYTES // len(seed) + 1))[:STREAM_CHUNK_BYTES]


def busy_report() -> dict[str, Any]:
    with _running_lock:
        running = dict(_running)
    wsgi = [t.name for t in threading.enumerate() if t.name.startswith("WSGI")]
    return {"running": running, "threads": threading.active_count(), "wsgi_threads": len(wsgi)}


class ApiError(Exception):
    """The app's own error, answered in its JSON error shape."""


@flask_app.errorhandler(Exception)
def _api_error(error: Exception) -> Any:
    if isinstance(error, HTTPException):
        return error
    if request.path.startswith("/api/"):
        body = {"error": {"code": "internal_error", "message": "internal server error"}}
        return jsonify(body), 500
    raise error


@flask_app.get("/api/boom")
def boom() -> Any:
    raise ApiError("secret detail that must not reach the client")


@flask_app.get("/crash")
def crash() -> Any:
    raise RuntimeError("secret detail that must not reach the client")


@flask_app.get("/stream")
def stream() -> Response:
    chunks = int(request.args.get("chunks", "64"))

    def generate() -> Iterator[bytes]:
        for n in range(chunks):
            yield stream_chunk(n)

    return Response(generate(), mimetype="application/octet-stream")


@flask_app.get("/stream-crash")
def stream_crash() -> Response:
    chunks = int(request.args.get("chunks", "1"))

    def generate() -> Iterator[bytes]:
        for n in range(chunks):
            yield stream_chunk(n)
        raise RuntimeError("secret detail that must not reach the client")

    return Response(generate(), mimetype="application/octet-stream")


@flask_app.post("/upload-slow")
def upload_slow() -> Any:
    with _Running("upload"):
        digest = hashlib.sha256()
        size = 0
        while True:
            piece = request.stream.read(1024)
            if not piece:
                break
            size += len(piece)
            digest.update(piece)
        return jsonify({"bytes": size, "sha256": digest.hexdigest()})


@flask_app.get("/download-slow")
def download_slow() -> Response:
    chunks = int(request.args.get("chunks", "100"))
    delay_s = int(request.args.get("delay_ms", "50")) / 1000

    def generate() -> Iterator[bytes]:
        with _Running("download"):
            for n in range(chunks):
                yield stream_chunk(n)
                time.sleep(delay_s)

    return Response(generate(), mimetype="application/octet-stream")


@flask_app.get("/sleep")
def sleep() -> Any:
    with _Running("sleep"):
        time.sleep(int(request.args.get("ms", "100")) / 1000)
    return jsonify({"slept": True})


@flask_app.get("/busy", endpoint="busy")
def busy_legacy() -> Any:
    return jsonify({**busy_report(), "backend": "legacy"})


async def busy_async(request: Request) -> JSONResponse:
    return JSONResponse({**busy_report(), "backend": "async"})


@flask_app.post("/echo", endpoint="echo")
def echo_legacy() -> Any:
    body = request.get_data()
    return jsonify({"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()})


async def echo_async(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()})


routes = [
    Route("/busy", busy_async, methods=["GET"], name="busy"),
    Route("/echo", echo_async, methods=["POST"], name="echo"),
]


def create_gateway() -> Gateway:
    """The gateway over this app, configured from the environment."""
    flags_file = Path(os.environ["CUSTOM_FLAGS_FILE"])
    return build_gateway(
        flask_app,
        routes,
        FlagSource(flags_file, os.environ["CUSTOM_DATABASE_URL"], poll_interval_s=0.2),
        wsgi_threads=int(os.environ.get("CUSTOM_WSGI_THREADS", "4")),
        body_timeout_s=float(os.environ.get("CUSTOM_BODY_TIMEOUT_S", "10")),
    )


def __getattr__(name: str) -> Any:
    # Built on first access: importing the module (a test does, for stream_chunk) reads
    # no environment.
    if name == "app":
        gateway = create_gateway()
        globals()["app"] = gateway
        return gateway
    raise AttributeError(name)
