"""Per-call latency of shared.bridge.run from worker threads, against the two ways it replaces.

    .venv/bin/python bench/bridge.py [--threads 8 --calls 2000 --rounds 4 --warmup 50]

Three ways for sync code in worker threads to run one coroutine, measured in one process:
`shared.bridge.run` (one long-lived loop), `asyncio.run` per call (the legacy pattern), and
`asgiref.sync.async_to_sync` (which, outside an async context, starts a thread and an
`asyncio.run` per call). Rounds interleave the three (A B C, B C A, ...) so machine noise falls
on all of them. Results go to bench/results/bridge.json; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from shared import bridge
from shared.config import load_settings
from shared.db import create_engine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "bridge.json"
BASELINE = "async_to_sync"
P50_RATIO_TARGET = 0.25  # the issue: bridge p50 <= 1/4 of async_to_sync's p50
METHODS = ("bridge", "asyncio.run", "async_to_sync")
PERCENTILES = (50, 90, 99)

CoroutineFunction = Callable[[], Coroutine[Any, Any, object]]


@dataclass(frozen=True)
class Workload:
    """One coroutine function for the bridge, and its twin for the loop-per-call methods."""

    name: str
    on_bridge: CoroutineFunction
    on_fresh_loop: CoroutineFunction
    note: str
    has_target: bool  # the target is about the call's own cost, not the database's


@dataclass
class Run:
    """One method's latencies in one round."""

    latencies_ns: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0


# -- workloads -----------------------------------------------------------------------------------


async def tick() -> None:
    await asyncio.sleep(0)


def select_one(engine: AsyncEngine) -> CoroutineFunction:
    async def query() -> object:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT 1"))).scalar_one()

    return query


@contextmanager
def workloads(tmp: Path, threads: int) -> Iterator[list[Workload]]:
    """The workloads, on a SQLite file under `tmp`; engines disposed on their loops on exit."""
    settings = load_settings(
        {
            "AA_ENV": "testing",
            "AA_SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "AA_DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
            "AA_VAR_DIR": str(tmp),
            # One connection per calling thread: the pool never makes a caller wait.
            "AA_DB_POOL_SIZE": str(threads),
            "AA_DB_MAX_OVERFLOW": "0",
        }
    )
    pooled = create_engine(settings)
    # A loop per call cannot share a pool (its queue and connections bind to the first loop:
    # tests/shared/test_bridge.py reproduces it), so that pattern, to be correct at all, opens
    # and closes a connection per call. That cost is the point of the comparison.
    unpooled = create_async_engine(
        settings.database_url, poolclass=NullPool, connect_args={"timeout": 5}
    )
    # Even without a pool, the engine's first connect (dialect initialisation) holds an
    # asyncio lock bound to the loop it ran on: concurrent first connects from fresh loops
    # fail with "bound to a different event loop" or hang. Connect once before the threads.
    asyncio.run(select_one(unpooled)())
    try:
        yield [
            Workload(
                "sleep(0)",
                tick,
                tick,
                "await asyncio.sleep(0): the cost of the call itself",
                has_target=True,
            ),
            Workload(
                "SELECT 1",
                select_one(pooled),
                select_one(unpooled),
                "bridge: pooled aiosqlite engine; asyncio.run and async_to_sync: the same "
                "SQLite file through NullPool (connect per call), the only correct way for them",
                has_target=False,
            ),
        ]
    finally:
        bridge.run(pooled.dispose())
        asyncio.run(unpooled.dispose())


def callers(workload: Workload) -> dict[str, Callable[[], object]]:
    """Each method as a no-argument sync call running the workload once."""
    # Built once, as a legacy module would wrap a function once and call it many times.
    wrapped = async_to_sync(workload.on_fresh_loop)
    return {
        "bridge": lambda: bridge.run(workload.on_bridge()),
        "asyncio.run": lambda: asyncio.run(workload.on_fresh_loop()),
        "async_to_sync": wrapped,
    }


# -- measuring -----------------------------------------------------------------------------------


def run_threads(call: Callable[[], object], threads: int, calls: int) -> Run:
    """`calls` timed calls from each of `threads` threads released together."""
    run = Run()
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)

    def work() -> None:
        latencies: list[int] = []
        errors: list[str] = []
        clock = time.perf_counter_ns
        start.wait()
        for _ in range(calls):
            began = clock()
            try:
                call()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(clock() - began)
        with lock:
            run.latencies_ns.extend(latencies)
            run.errors.extend(errors)

    workers = [threading.Thread(target=work, name=f"bench-{n}") for n in range(threads)]
    for worker in workers:
        worker.start()
    gc.collect()  # the previous round's garbage is not this one's cost
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    run.wall_s = time.perf_counter() - began
    return run


def measure(
    workload: Workload, opts: argparse.Namespace, *, log: Callable[[str], None]
) -> dict[str, list[Run]]:
    """Warm every method up, then `opts.rounds` rounds, rotating which method goes first."""
    calls = callers(workload)
    for method in METHODS:
        run_threads(calls[method], opts.threads, opts.warmup)
    per_round = max(1, opts.calls // opts.rounds)
    runs: dict[str, list[Run]] = {method: [] for method in METHODS}
    for n in range(opts.rounds):
        order = METHODS[n % len(METHODS) :] + METHODS[: n % len(METHODS)]
        for method in order:
            run = run_threads(calls[method], opts.threads, per_round)
            runs[method].append(run)
            p50 = percentile_us(run.latencies_ns, 50) if run.latencies_ns else float("nan")
            log(
                f"  round {n + 1} {workload.name:<9} {method:<14} p50 {p50:9.1f} µs  "
                f"{len(run.latencies_ns) / run.wall_s:8.0f} calls/s  errors {len(run.errors)}"
            )
    return runs


def percentile_us(latencies_ns: list[int], pct: int) -> float:
    cuts = statistics.quantiles(latencies_ns, n=100, method="inclusive")
    return cuts[pct - 1] / 1000


# -- summary -------------------------------------------------------------------------------------


def summarize(runs: Mapping[str, list[Run]], *, has_target: bool) -> dict[str, Any]:
    """Per method: pooled percentiles; against each baseline: ratios, also per round for p50."""
    methods: dict[str, Any] = {}
    for method, method_runs in runs.items():
        latencies = [ns for run in method_runs for ns in run.latencies_ns]
        calls = len(latencies)
        wall_s = sum(run.wall_s for run in method_runs)
        methods[method] = {
            "calls": calls,
            "errors": sum(len(run.errors) for run in method_runs),
            "first_errors": sorted({e for run in method_runs for e in run.errors})[:5],
            **{f"p{p}_us": percentile_us(latencies, p) for p in PERCENTILES},
            "mean_us": statistics.fmean(latencies) / 1000,
            "calls_per_s": calls / wall_s,
            "p50_us_rounds": [percentile_us(run.latencies_ns, 50) for run in method_runs],
        }
    for stats in methods.values():
        for baseline in ("async_to_sync", "asyncio.run"):
            base = methods[baseline]
            stats[f"vs_{baseline}"] = {
                **{f"p{p}": stats[f"p{p}_us"] / base[f"p{p}_us"] for p in PERCENTILES},
                "p50_rounds": [
                    ours / theirs
                    for ours, theirs in zip(
                        stats["p50_us_rounds"], base["p50_us_rounds"], strict=True
                    )
                ],
            }
    bridge_p50_ratio = methods["bridge"][f"vs_{BASELINE}"]["p50"]
    return {
        "methods": methods,
        "bridge_p50_vs_async_to_sync": bridge_p50_ratio,
        "meets_target": (
            bridge_p50_ratio <= P50_RATIO_TARGET and not methods["bridge"]["errors"]
            if has_target
            else None
        ),
    }


def print_report(results: Mapping[str, Mapping[str, Any]], workloads_: list[Workload]) -> None:
    header = (
        f"\n{'workload':<9} {'method':<14} {'p50 µs':>9} {'p90 µs':>9} {'p99 µs':>9} "
        f"{'calls/s':>8}  {'÷ async_to_sync p50/p90/p99':<27}  {'÷ asyncio.run p50/p90/p99':<25}"
    )
    print(header)
    for workload in workloads_:
        summary = results[workload.name]
        for method, s in summary["methods"].items():
            vs_a2s = "/".join(f"{s['vs_async_to_sync'][f'p{p}']:.3f}" for p in PERCENTILES)
            vs_run = "/".join(f"{s['vs_asyncio.run'][f'p{p}']:.3f}" for p in PERCENTILES)
            errors = f"  {s['errors']} errors" if s["errors"] else ""
            print(
                f"{workload.name:<9} {method:<14} {s['p50_us']:9.1f} {s['p90_us']:9.1f} "
                f"{s['p99_us']:9.1f} {s['calls_per_s']:8.0f}  {vs_a2s:<27}  {vs_run:<25}{errors}"
            )
        rounds = " ".join(
            f"{r:.3f}" for r in summary["methods"]["bridge"]["vs_async_to_sync"]["p50_rounds"]
        )
        mark = "(no target: database-bound)"
        if summary["meets_target"] is not None:
            mark = "ok" if summary["meets_target"] else f"MISSED (target <= {P50_RATIO_TARGET})"
        print(
            f"{'':<9} bridge p50 ÷ async_to_sync p50 = "
            f"{summary['bridge_p50_vs_async_to_sync']:.3f}  (rounds: {rounds})  {mark}"
        )
    for workload in workloads_:
        print(f"{workload.name}: {workload.note}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=8, help="calling threads")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per thread and method")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (calls split)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls per thread first")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aa-bench-bridge-") as tmp_dir:
        with workloads(Path(tmp_dir), opts.threads) as workloads_:
            for workload in workloads_:
                runs = measure(workload, opts, log=lambda line: print(line, flush=True))
                summary = summarize(runs, has_target=workload.has_target)
                results[workload.name] = {"note": workload.note, **summary}
        bridge.shutdown()
    report = {
        "meta": {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "target": f"bridge p50 <= {P50_RATIO_TARGET} x {BASELINE} p50",
        },
        "workloads": results,
    }
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(report, indent=2) + "\n")
    print_report(results, workloads_)
    print(f"\nwrote {opts.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
