"""Per-call latency of shared.bridge.run from worker threads, against the two ways it replaced.

    .venv/bin/python bench/bridge.py [--threads 8] [--calls 2000] [--rounds 3]

Each worker thread calls a small coroutine (`await asyncio.sleep(0)`: a real suspension and
resume on the loop, nothing else) through

* `bridge`        - shared.bridge.run: one long-lived loop for the whole process;
* `asyncio.run`   - a new event loop per call (the old legacy helpers);
* `async_to_sync` - asgiref.sync.async_to_sync, Flask's default for async views.

The coroutine touches no database: a loop per call cannot share a pool at all (that is the
bug the bridge fixes), so only the per-call overhead is comparable. The three are measured in
interleaved rounds (A B C, then B C A, ...) so machine noise hits each alike, and every figure
is reported as a ratio to async_to_sync measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asgiref.sync import async_to_sync  # noqa: E402

from shared import bridge  # noqa: E402

RESULTS = Path(__file__).with_name("results") / "bridge.json"


async def tick() -> int:
    await asyncio.sleep(0)
    return 1


def via_bridge() -> int:
    return bridge.run(tick())


def via_asyncio_run() -> int:
    return asyncio.run(tick())  # the old pattern, measured as a baseline


_tick_sync = async_to_sync(tick)


def via_async_to_sync() -> int:
    return _tick_sync()


METHODS: dict[str, Callable[[], int]] = {
    "bridge": via_bridge,
    "asyncio.run": via_asyncio_run,
    "async_to_sync": via_async_to_sync,
}


def measure(call: Callable[[], int], threads: int, calls: int) -> list[float]:
    """Per-call latencies (µs) of `calls` calls in each of `threads` concurrent threads."""
    samples: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def worker(out: list[float]) -> None:
        barrier.wait()
        clock = time.perf_counter
        for _ in range(calls):
            start = clock()
            call()
            out.append((clock() - start) * 1e6)

    pool = [threading.Thread(target=worker, args=(out,)) for out in samples]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return [x for out in samples for x in out]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    for call in METHODS.values():  # warm up: imports, the bridge's loop thread
        measure(call, 2, 50)
    names = list(METHODS)
    per_method: dict[str, list[float]] = {name: [] for name in names}
    round_p50: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            samples = measure(METHODS[name], args.threads, args.calls)
            per_method[name].extend(samples)
            round_p50[name].append(statistics.median(samples))
    bridge.shutdown()

    baseline = per_method["async_to_sync"]
    report = {"threads": args.threads, "calls_per_thread": args.calls, "rounds": args.rounds,
              "methods": {}}
    print(f"{args.threads} threads x {args.calls} calls x {args.rounds} rounds, interleaved")
    print(f"{'method':14} {'p50 µs':>9} {'p90 µs':>9} {'p99 µs':>9}  {'p50 vs a2s':>10} "
          f"{'p99 vs a2s':>10}  per-round p50 µs")
    for name in names:
        values = per_method[name]
        row = {q: percentile(values, p) for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
        ratios = {f"{q}_vs_async_to_sync": row[q] / percentile(baseline, p)
                  for q, p in (("p50", 0.5), ("p99", 0.99))}
        report["methods"][name] = {**row, **ratios, "round_p50": round_p50[name]}
        print(f"{name:14} {row['p50']:9.1f} {row['p90']:9.1f} {row['p99']:9.1f}  "
              f"{ratios['p50_vs_async_to_sync']:10.3f} {ratios['p99_vs_async_to_sync']:10.3f}  "
              + ", ".join(f"{x:.1f}" for x in round_p50[name]))
    target = report["methods"]["bridge"]["p50_vs_async_to_sync"]
    print(f"target: bridge p50 <= 0.25 x async_to_sync p50 -> {target:.3f} "
          f"({'met' if target <= 0.25 else 'missed'})")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
