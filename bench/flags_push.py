"""Flags pushed, not polled: flip-to-every-worker latency across two processes, and the flag
store's query rate with 2 and 16 workers, with LISTEN/NOTIFY against polling only.

Latency: two uvicorn processes (one worker each) of tests/asgi_gateway/rollout_app.py per
mode, each mode on its own new PostgreSQL database: `push` (the defaults: notifications on,
a fallback poll every 30 s) and `poll` (notifications off, a poll every 0.25 s: the previous
behaviour, the baseline). Each flip is a FlagStore.set_flag from this process (as the CLI
does); each worker reports when (wall clock, the same machine's) it installed the new flag
version (`GET /_rollout/lab/flags`), so the figure does not depend on how often the bench
asks. Flip-to-every-worker is the last of the two installs, counted from the commit (when
set_flag returned) and from the flip's start. Modes alternate round by round; a random
pause before each flip puts it anywhere in the poll period.

Query rate: `--pollers` simulated workers (a FlagRefresher with its own engine, and its own
flag channel in `push`) in this process on a third new database; every statement their
engines execute is counted, idle and with one flip a second.

Measures, never asserts. Results go to bench/results/flags_push.json.

    .venv/bin/python bench/flags_push.py [--rounds 6] [--flips 10] [--pollers 2,16] [--window 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asgi_gateway.control.database import open_engine  # noqa: E402
from asgi_gateway.control.listener import FlagChannel  # noqa: E402
from asgi_gateway.control.refresher import FlagRefresher  # noqa: E402
from asgi_gateway.control.store import FlagStore  # noqa: E402
from asgi_gateway.flags import Flag, Mode  # noqa: E402
from bench._common import RunInfo, write_results  # noqa: E402
from shared import bridge  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "flags_push.json"
ADMIN_DSN = os.environ.get("AA_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
ENDPOINT = "widget"
FLAGS = f"version: 1\nroutes:\n  {ENDPOINT}: {{mode: legacy, sticky_by: random}}\n"
MODES: dict[str, dict[str, str]] = {
    "push": {},  # the gateway's defaults
    "poll": {"ROLLOUT_FLAGS_NOTIFY": "off"},
}
TARGET_P50_MS = 100.0


# -- databases and servers -----------------------------------------------------------------------


@contextmanager
def databases(count: int) -> Iterator[list[str]]:
    """`count` new, empty PostgreSQL databases (asyncpg URLs), dropped at the end."""
    names = [f"bench_flags_{os.getpid()}_{uuid.uuid4().hex[:6]}" for _ in range(count)]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    created: list[str] = []
    try:
        for name in names:
            bridge.run(admin(f'CREATE DATABASE "{name}"'), timeout=30)
            created.append(name)
        yield [f"{base}/{name}" for name in names]
    finally:
        for name in created:
            bridge.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'), timeout=30)


class Server:
    """`uvicorn tests.asgi_gateway.rollout_app:app`, one worker, on a socket bound here."""

    def __init__(self, work: Path, database_url: str, extra_env: dict[str, str], n: int) -> None:
        flags = work / "flags.yaml"
        flags.write_text(FLAGS)
        behaviour = work / "behaviour.json"
        behaviour.write_text("{}")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.set_inheritable(True)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        env = {
            **os.environ,
            "ROLLOUT_FLAGS_FILE": str(flags),
            "ROLLOUT_DATABASE_URL": database_url,
            "ROLLOUT_BEHAVIOUR_FILE": str(behaviour),
            **extra_env,
        }
        command = [sys.executable, "-m", "uvicorn", "tests.asgi_gateway.rollout_app:app"]
        command += ["--fd", str(self.sock.fileno()), "--log-level", "warning"]
        self.log = open(work / f"server-{n}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            command,
            env=env,
            pass_fds=(self.sock.fileno(),),
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()
        self.log.close()


# -- latency -------------------------------------------------------------------------------------


async def _installed(client: httpx.AsyncClient, url: str, version: int) -> float:
    """When (epoch s) the process at `url` installed flag version `version` or a newer one."""
    deadline = time.monotonic() + 30
    while True:
        state = (await client.get(url + "/_rollout/lab/flags")).json()
        if state["version"] >= version:
            return float(state["installed_at"])
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not reach flag version {version} in 30 s")
        await asyncio.sleep(0.02)


async def _flips(store: FlagStore, urls: list[str], flips: int) -> list[tuple[float, float]]:
    """`flips` flips through `store`; for each, the seconds until every process at `urls`
    installed it, counted from the flip's start and from its commit (when set_flag returned)."""
    latencies: list[tuple[float, float]] = []
    async with httpx.AsyncClient(timeout=10) as client:
        for n in range(flips):
            await asyncio.sleep(random.uniform(0.3, 0.8))
            version = await store.version() + 1
            mode: Mode = "async" if n % 2 == 0 else "legacy"
            started = time.time()
            await store.set_flag(
                Flag(ENDPOINT, mode=mode, sticky_by="random"), actor="bench", reason="bench"
            )
            committed = time.time()
            seen = await asyncio.gather(*(_installed(client, u, version) for u in urls))
            latencies.append((max(seen) - started, max(seen) - committed))
    return latencies


def measure_latency(
    rounds: int, flips: int, urls: dict[str, list[str]], db: dict[str, str]
) -> tuple[dict[str, dict[str, list[float]]], list[dict[str, float]]]:
    """Per mode, every flip's flip-to-every-worker latency (s) from its start and from its
    commit, modes alternating by round."""
    samples: dict[str, dict[str, list[float]]] = {
        mode: {"from_start": [], "from_commit": []} for mode in MODES
    }
    per_round: list[dict[str, float]] = []
    engines = {mode: open_engine(db[mode], pool_size=1, max_overflow=0) for mode in MODES}
    try:
        order = list(MODES)
        for n in range(rounds):
            figures: dict[str, float] = {}
            for mode in order if n % 2 == 0 else order[::-1]:
                store = FlagStore(engines[mode])
                got = bridge.run(_flips(store, urls[mode], flips), timeout=600)
                samples[mode]["from_start"].extend(start for start, _ in got)
                samples[mode]["from_commit"].extend(commit for _, commit in got)
                figures[f"{mode}_p50_ms"] = round(statistics.median(c for _, c in got) * 1000, 1)
            per_round.append(figures)
            print(f"latency round {n + 1} (from commit): {json.dumps(figures)}", flush=True)
    finally:
        for engine in engines.values():
            bridge.run(engine.dispose())
    return samples, per_round


# -- query rate ----------------------------------------------------------------------------------


@asynccontextmanager
async def _pollers(url: str, count: int, push: bool) -> AsyncIterator[list[int]]:
    """`count` simulated workers on `url`, started; yields per-worker statement counters."""
    counts = [0] * count
    engines: list[AsyncEngine] = []
    refreshers: list[FlagRefresher] = []

    def counter(index: int) -> Any:
        def count_statement(*_args: Any) -> None:
            counts[index] += 1

        return count_statement

    try:
        for index in range(count):
            engine = open_engine(url, pool_size=1, max_overflow=0)
            engines.append(engine)
            event.listen(engine.sync_engine, "before_cursor_execute", counter(index))
            channel = FlagChannel(engine) if push else None
            refresher = FlagRefresher(FlagStore(engine), channel=channel)
            await refresher.refresh()
            refresher.start()
            refreshers.append(refresher)
        deadline = time.monotonic() + 30
        while push and not all(r.is_pushed for r in refreshers):
            if time.monotonic() > deadline:
                raise RuntimeError("the simulated workers' channels did not connect in 30 s")
            await asyncio.sleep(0.05)
        yield counts
    finally:
        for refresher in refreshers:
            await refresher.stop()
        for engine in engines:
            await engine.dispose()


async def _query_rate(url: str, count: int, push: bool, window_s: float) -> dict[str, Any]:
    writer = open_engine(url, pool_size=1, max_overflow=0)
    store = FlagStore(writer)
    await store.ensure_schema()
    try:
        async with _pollers(url, count, push) as counts:
            await asyncio.sleep(1.0)  # settle: start-up reads are not the steady state
            before, started = sum(counts), time.perf_counter()
            await asyncio.sleep(window_s)
            idle = (sum(counts) - before) / (time.perf_counter() - started)
            before, started = sum(counts), time.perf_counter()
            for n in range(int(window_s)):
                mode: Mode = "async" if n % 2 == 0 else "legacy"
                await store.set_flag(Flag(ENDPOINT, mode=mode), actor="bench", reason="bench")
                await asyncio.sleep(1.0)
            busy = (sum(counts) - before) / (time.perf_counter() - started)
    finally:
        await writer.dispose()
    return {"idle_per_s": round(idle, 2), "one_flip_a_second_per_s": round(busy, 2)}


def measure_query_rate(url: str, sizes: list[int], window_s: float) -> dict[str, Any]:
    """Statements per second the simulated workers' engines run, per mode and worker count."""
    rates: dict[str, Any] = {}
    for count in sizes:
        for mode in MODES:
            got = bridge.run(_query_rate(url, count, mode == "push", window_s), timeout=600)
            rates[f"{mode}_{count}"] = got
            print(f"query rate, {mode}, {count} workers: {json.dumps(got)}", flush=True)
    return rates


# -- report --------------------------------------------------------------------------------------


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = statistics.quantiles(ordered, n=20, method="inclusive")[18]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(p95 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "flips": len(ordered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--flips", type=int, default=10, help="flips per mode and round")
    parser.add_argument("--pollers", default="2,16", help="simulated worker counts")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per rate window")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    info = RunInfo(args)
    sizes = [int(n) for n in args.pollers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-flags-push-"))
    with databases(3) as urls:
        db = dict(zip(MODES, urls[:2], strict=True))
        servers: dict[str, list[Server]] = {mode: [] for mode in MODES}
        try:
            for mode, extra in MODES.items():
                for n in range(2):
                    folder = work / f"{mode}-{n}"
                    folder.mkdir()
                    servers[mode].append(Server(folder, db[mode], extra, n))
            for group in servers.values():
                for server in group:
                    server.wait_ready()
            time.sleep(1.0)  # the push servers' channels connect right after start-up
            urls_by_mode = {mode: [s.url for s in group] for mode, group in servers.items()}
            samples, per_round = measure_latency(args.rounds, args.flips, urls_by_mode, db)
        finally:
            for group in servers.values():
                for server in group:
                    server.stop()
        rates = measure_query_rate(urls[2], sizes, args.window)
    latency = {
        mode: {since: _percentiles(got) for since, got in by_since.items()}
        for mode, by_since in samples.items()
    }
    push, poll = latency["push"]["from_commit"], latency["poll"]["from_commit"]
    small, large = min(sizes), max(sizes)
    summary = {
        "latency": {
            **latency,
            "p50_ratio_push_to_poll": round(push["p50_ms"] / poll["p50_ms"], 3),
            "p95_ratio_push_to_poll": round(push["p95_ms"] / poll["p95_ms"], 3),
            "target_p50_ms": TARGET_P50_MS,
            "meets_target": push["p50_ms"] <= TARGET_P50_MS,
            "rounds": per_round,
        },
        "query_rate": {
            **rates,
            "growth_idle_push": _growth(rates, "push", small, large, "idle_per_s"),
            "growth_idle_poll": _growth(rates, "poll", small, large, "idle_per_s"),
            "window_s": args.window,
        },
    }
    report = {
        "meta": info.meta(
            target=f"push p50 <= {TARGET_P50_MS:g} ms across two processes; idle query rate "
            "that no longer grows with the worker count",
            settings={"push": "defaults (fallback poll 30 s)", "poll": "notify off, poll 0.25 s"},
        ),
        **summary,
    }
    write_results(args.output, report)
    print(
        f"flip (commit) to every worker: push p50 {push['p50_ms']} ms p95 {push['p95_ms']} ms; "
        f"poll p50 {poll['p50_ms']} ms p95 {poll['p95_ms']} ms; "
        f"ratio p50 {summary['latency']['p50_ratio_push_to_poll']}; from the flip's start: "
        f"push p50 {latency['push']['from_start']['p50_ms']} ms, "
        f"poll p50 {latency['poll']['from_start']['p50_ms']} ms"
    )
    for mode in MODES:
        print(
            f"{mode}: statements/s idle {rates[f'{mode}_{small}']['idle_per_s']} ({small} workers) "
            f"-> {rates[f'{mode}_{large}']['idle_per_s']} ({large} workers); one flip a second "
            f"{rates[f'{mode}_{small}']['one_flip_a_second_per_s']} -> "
            f"{rates[f'{mode}_{large}']['one_flip_a_second_per_s']}"
        )
    print(f"wrote {args.output}")


def _growth(rates: dict[str, Any], mode: str, small: int, large: int, key: str) -> float | None:
    low, high = rates[f"{mode}_{small}"][key], rates[f"{mode}_{large}"][key]
    return round(high / low, 2) if low else None


if __name__ == "__main__":
    main()
