"""Time to rollback: from a twin's first failure until every worker serves legacy again.

Serves the guard's test app (tests/asgi_gateway/rollout_app.py) with uvicorn and the gateway's
defaults (guard, stats flush, guard tick, flag poll), drives steady traffic, makes the twin fail
on every request, turns the canary on, and measures from the first failed answer to the last
answer served by the twin. Measures, never asserts; the issue's target is 10 s at 20 async
requests a second or more. Results go to bench/results/guard.json.

    .venv/bin/python bench/guard.py [--workers 2] [--rate 40] [--percent 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.asgi_gateway.rollout_app import ADMIN_TOKEN, behave  # noqa: E402
from tests.asgi_gateway.traffic import Traffic  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "guard.json"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TARGET_S = 10.0


def one_round(workers: int, rate: float, percent: float, database: str | None) -> dict[str, Any]:
    """Serve, fail, flip, measure; returns this round's figures."""
    work = Path(tempfile.mkdtemp(prefix="bench-guard-"))
    flags = work / "flags.yaml"
    flags.write_text("version: 1\nroutes:\n  widget: {mode: legacy, sticky_by: random}\n")
    behaviour = work / "behaviour.json"
    metrics = work / "prometheus"
    metrics.mkdir()
    env = {
        **os.environ,
        "ROLLOUT_FLAGS_FILE": str(flags),
        "ROLLOUT_DATABASE_URL": database or f"sqlite+aiosqlite:///{work / 'gateway.db'}",
        "ROLLOUT_BEHAVIOUR_FILE": str(behaviour),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
    }
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(True)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with open(work / "server.log", "wb") as log:
        command = [sys.executable, "-m", "uvicorn", "tests.asgi_gateway.rollout_app:app"]
        command += ["--fd", str(sock.fileno()), "--workers", str(workers), "--log-level", "warning"]
        server = subprocess.Popen(
            command,
            env=env,
            pass_fds=(sock.fileno(),),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(url)
            with Traffic(url, "/lab/widget", rate=rate, threads=8) as traffic:
                time.sleep(2)  # warm: connections, every worker serving
                behave(behaviour, "widget", "fail")
                time.sleep(0.2)  # the twins read their behaviour at most every 50 ms
                flipped = time.monotonic()
                response = httpx.patch(
                    f"{url}/_rollout/api/flags/widget",
                    json={"mode": "canary", "percent": percent, "reason": "bench"},
                    headers=ADMIN,
                )
                response.raise_for_status()
                while _mode(url) != "legacy":
                    if time.monotonic() - flipped > 60:
                        raise RuntimeError("no rollback within 60 s")
                    time.sleep(0.05)
                time.sleep(3)  # answers after the rollback, from every worker
            audit = httpx.get(f"{url}/_rollout/api/audit?actor=guard", headers=ADMIN).json()
        finally:
            server.terminate()
            server.wait(30)
            sock.close()
    failures = [a.at for a in traffic.answers if a.status >= 500]
    last_async = max(a.at for a in traffic.answers if a.served_by == "async")
    after = [a for a in traffic.answers if a.at > last_async]
    async_rate = sum(
        1 for a in traffic.answers if a.served_by == "async" and flipped <= a.at <= last_async
    ) / max(last_async - flipped, 1e-9)
    return {
        "time_to_rollback_s": round(last_async - failures[0], 2),
        "async_requests_per_s": round(async_rate, 1),
        "failed_answers": len(failures),
        "rollbacks": len(audit["data"]),
        "reason": audit["data"][0]["reason"] if audit["data"] else None,
        "workers_serving_legacy_after": len({a.pid for a in after if a.pid}),
        "twin_answers_after": sum(1 for a in after if a.served_by == "async"),
    }


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not become ready")


def _mode(url: str) -> str:
    return str(httpx.get(f"{url}/_rollout/api/flags/widget", headers=ADMIN).json()["mode"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second, total")
    parser.add_argument("--percent", type=float, default=50.0, help="canary percent")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", help="gateway database URL (default: a new SQLite file)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    rounds = []
    for n in range(args.rounds):
        figures = one_round(args.workers, args.rate, args.percent, args.database)
        rounds.append(figures)
        print(f"round {n + 1}: {json.dumps(figures)}", flush=True)
    times = [r["time_to_rollback_s"] for r in rounds]
    summary = {
        "workers": args.workers,
        "rate": args.rate,
        "percent": args.percent,
        "median_s": statistics.median(times),
        "max_s": max(times),
        "target_s": TARGET_S,
        "meets_target": max(times) <= TARGET_S,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rounds": rounds,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2))
    print(
        f"time to rollback: median {summary['median_s']} s, max {summary['max_s']} s "
        f"(target {TARGET_S:g} s) over {args.rounds} rounds; wrote {args.output}"
    )


if __name__ == "__main__":
    main()
