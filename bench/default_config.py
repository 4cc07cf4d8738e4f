"""What making a configuration the default costs, against a plain edit of the same row.

    .venv/bin/python bench/default_config.py [--database sqlite|postgresql|both] [--calls 200]

Through the service (`ArchiveService.update_config`), one user with two configurations, on a
fresh SQLite file and a throw-away PostgreSQL database:

* `rename`: `{"name": ...}` on one configuration, the baseline (one row and one audit row);
* `make_default`: `{"is_default": true}` on the two configurations in turn, so every call
  moves the default (the owner's lock, the old default cleared, two rows and two audit rows).

Rounds interleave the two sides; each figure is the median latency of a call and its ratio to
the baseline's in the same round. Results go to bench/results/default_config.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))

from bench._common import RunInfo, write_results  # noqa: E402
from bench.reads import postgres_database, sqlite_database  # noqa: E402
from shared import bridge  # noqa: E402
from shared.auth import Actor  # noqa: E402
from shared.config import load_settings  # noqa: E402
from shared.inputs.archive import parse_archive_config  # noqa: E402
from shared.migrate import upgrade  # noqa: E402
from shared.runtime import Runtime  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "default_config.json"
SECRET = "bench-secret-key-0123456789abcdef"


async def _median_ms(call: Callable[[int], Awaitable[Any]], calls: int) -> float:
    times = []
    for n in range(calls):
        started = time.perf_counter()
        await call(n)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def measure(runtime: Runtime, opts: argparse.Namespace) -> list[dict[str, float]]:
    await upgrade(runtime.db.engine)
    svc = runtime.services
    user = await svc.users.create("bench@example.com", "long-password")
    actor = Actor(user["id"], user["email"], False)
    source = await svc.calendars.create(actor, {"name": "Work", "role": "source"})
    archive = await svc.calendars.create(actor, {"name": "Vault", "role": "archive"})
    ids = []
    for name in ("First", "Second"):
        body = {
            "name": name,
            "source_calendar_id": source["id"],
            "archive_calendar_id": archive["id"],
        }
        ids.append((await svc.archive.create_config(actor, parse_archive_config(body)))["id"])

    async def rename(n: int) -> None:
        await svc.archive.update_config(actor, ids[0], {"name": f"First {n}"})

    async def make_default(n: int) -> None:
        await svc.archive.update_config(actor, ids[(n + 1) % 2], {"is_default": True})

    await _median_ms(rename, opts.warmup)
    await _median_ms(make_default, opts.warmup)
    rounds = []
    for index in range(opts.rounds):
        sides = [("rename", rename), ("make_default", make_default)]
        if index % 2:  # alternate which side goes first
            sides.reverse()
        medians = {name: await _median_ms(call, opts.calls) for name, call in sides}
        rounds.append({**medians, "ratio": medians["make_default"] / medians["rename"]})
    return rounds


def run_database(url: str, opts: argparse.Namespace) -> dict[str, Any]:
    runtime = Runtime(
        load_settings({"AA_ENV": "testing", "AA_SECRET_KEY": SECRET, "AA_DATABASE_URL": url})
    )
    try:
        rounds = bridge.run(measure(runtime, opts), timeout=3600)
    finally:
        bridge.run(runtime.aclose())
    return {
        "rounds": rounds,
        "rename_ms": statistics.median(r["rename"] for r in rounds),
        "make_default_ms": statistics.median(r["make_default"] for r in rounds),
        "ratio": statistics.median(r["ratio"] for r in rounds),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per side and round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of both sides")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per side")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    info = RunInfo(opts)
    databases = ("sqlite", "postgresql") if opts.database == "both" else (opts.database,)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for database in databases:
            source = sqlite_database(Path(tmp)) if database == "sqlite" else postgres_database()
            with source as url:
                results[database] = run_database(url, opts)
            figure = results[database]
            print(
                f"{database}: rename {figure['rename_ms']:.2f} ms, make default "
                f"{figure['make_default_ms']:.2f} ms, ratio {figure['ratio']:.2f}x"
            )
    write_results(opts.output, {"meta": info.meta(), "results": results})


if __name__ == "__main__":
    main()
