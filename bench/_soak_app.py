"""The gateway for `bench/soak.py --tracemalloc`: the real app, with tracemalloc started and
a bench-only route that writes this worker's snapshot to a file."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

from asgi_gateway.app import app as gateway

SNAPSHOT_PATH = "/_bench/tracemalloc"
_DIR = Path(os.environ.get("BENCH_SOAK_SNAPSHOTS", "."))
tracemalloc.start(int(os.environ.get("BENCH_SOAK_FRAMES", "12")))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == SNAPSHOT_PATH:
        name = scope.get("query_string", b"").decode() or "snapshot"
        path = _DIR / f"{os.getpid()}-{name}.tracemalloc"
        tracemalloc.take_snapshot().dump(str(path))
        body = json.dumps({"pid": os.getpid(), "path": str(path)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    await gateway(scope, receive, send)
