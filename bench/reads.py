"""The async read path against its floor: `GET /api/appointments?per_page=50` on both databases.

    .venv/bin/python bench/reads.py [--database sqlite|postgresql|both] [--duration 5 --rounds 4]

Two servers per database, one uvicorn worker each, same options, same seeded data, measured
as three sides:

* `async`: the full gateway (`asgi_gateway.app:app`) with `appointments.list` in mode async:
  authentication, validation, pooling, metrics, routing, the service, the twin;
* `legacy`: the same gateway after a flip to mode legacy through the admin API (the Flask
  view, the same service), flipped back before each async run;
* `floor`: `bench/_floor.py`, the same page written plainly (a count and a page through one
  aiosqlite or asyncpg connection, `json.dumps`), whose body is byte for byte the API's.

Every round runs wrk against each server in turn, the first one rotating (A B C, B C A, ...),
and each figure is a ratio to the floor in that round. The issue's target: async >= 0.5x the
floor's throughput on both databases. Results go to bench/results/reads.json; see
bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))

from bench._common import RunInfo, write_results  # noqa: E402
from bench.endpoints import running, settle  # noqa: E402
from bench.gateway import DEMO_USER, SECRET, Run, Server, _cli, run_wrk  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "reads.json"
PATH = "/api/appointments?per_page=50"
SIDES = ("async", "legacy", "floor")
TARGET = 0.5  # async throughput / floor throughput, on each database
PG_ADMIN_DSN = os.environ.get("AA_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


# -- databases ---------------------------------------------------------------------------------


@contextmanager
def sqlite_database(tmp: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp / 'bench.db'}"


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throw-away database on the local PostgreSQL, dropped afterwards."""
    import asyncpg

    from shared import bridge

    name = f"aa_bench_reads_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    bridge.run(admin(f'CREATE DATABASE "{name}"'), timeout=30)
    try:
        yield PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + (
            "/" + name
        )
    finally:
        bridge.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'), timeout=30)


def seed(tmp: Path, database_url: str) -> tuple[dict[str, str], str]:
    """Migrate and seed the demo data into `database_url`; (AA_* environment, admin token)."""
    environ = {
        "AA_ENV": "testing",
        "AA_SECRET_KEY": SECRET,
        "AA_VAR_DIR": str(tmp / "var"),
        "AA_DATABASE_URL": database_url,
        "AA_SCHEDULER": "off",
    }
    cli = str(Path(sys.executable).parent / "admin-assistant")
    for args in (["db", "upgrade"], ["db", "seed", "--demo"]):
        _cli(cli, args, environ)
    token = _cli(cli, ["tokens", "create", "--user", DEMO_USER], environ).strip().splitlines()[-1]
    return environ, token


def servers_for(base: Mapping[str, str], tmp: Path, label: str) -> dict[str, Server]:
    """One gateway (both of its sides: the flag is flipped before each run) and the floor."""
    (tmp / f"{label}-flags.yaml").write_text(
        "version: 1\nroutes:\n  appointments.list: {mode: async}\n"
    )
    environ = {**base, "AA_FLAGS_FILE": str(tmp / f"{label}-flags.yaml")}
    gateway = Server("gateway", "asgi_gateway.app:app", environ, tmp / f"{label}-gateway.log")
    floor_environ = {"AA_DATABASE_URL": base["AA_DATABASE_URL"]}
    floor = Server("floor", "bench._floor:app", floor_environ, tmp / f"{label}-floor.log")
    return {"async": gateway, "legacy": gateway, "floor": floor}


def serve_from(servers: Mapping[str, Server], side: str, token: str) -> None:
    """Flip `appointments.list` to `side` through the admin API (the floor has no flags)."""
    if side == "floor":
        return
    response = httpx.patch(
        servers[side].url + "/_rollout/api/flags/appointments.list",
        json={"mode": side, "reason": "bench/reads.py"},
        headers={"Authorization": f"Bearer {token}"},
    )
    if response.status_code != 200:
        raise RuntimeError(f"flipping to {side}: {response.status_code} {response.text[:300]}")


# -- measuring ---------------------------------------------------------------------------------


def check_bodies(servers: Mapping[str, Server], token: str) -> None:
    """Each side answers 200 (the gateway from the backend its flag names), all the same bytes."""
    bodies = {}
    for side, server in servers.items():
        serve_from(servers, side, token)
        response = httpx.get(server.url + PATH, headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            raise RuntimeError(f"{side}: {response.status_code} {response.text[:300]}")
        if side != "floor" and response.headers.get("x-served-by") != side:
            raise RuntimeError(f"{side} was served by {response.headers.get('x-served-by')!r}")
        bodies[side] = response.content
    if len(set(bodies.values())) != 1:
        raise RuntimeError("the three bodies differ: the floor no longer does the same work")


def measure(
    servers: Mapping[str, Server], token: str, opts: argparse.Namespace
) -> dict[str, list[Run]]:
    """Warm-up, then `rounds` rounds of every side, the first side rotating each round."""
    wrk = argparse.Namespace(connections=opts.connections, threads=2)
    for side, server in servers.items():
        serve_from(servers, side, token)
        run_wrk(server, PATH, token, wrk, opts.warmup)
    runs: dict[str, list[Run]] = {side: [] for side in servers}
    sides = list(servers)
    for n in range(opts.rounds):
        for side in sides[n % len(sides) :] + sides[: n % len(sides)]:
            serve_from(servers, side, token)
            settle(*servers.values())
            run = run_wrk(servers[side], PATH, token, wrk, opts.duration)
            runs[side].append(run)
            print(
                f"  round {n + 1} {side:<7} {run.rps:8.1f} req/s  p50 {run.p50_ms:6.2f} ms  "
                f"cpu {run.cpu_ms_per_request or 0:5.2f} ms/req  errors {run.non_2xx}"
                f"/{run.socket_errors}",
                flush=True,
            )
    return runs


def summarize(runs: Mapping[str, list[Run]]) -> dict[str, Any]:
    """Each side's medians, and the medians of its per-round ratios to the floor."""
    floor = runs["floor"]
    summary: dict[str, Any] = {}
    for side, side_runs in runs.items():
        rps = [r.rps / f.rps for r, f in zip(side_runs, floor, strict=True)]
        cpu = [
            f.cpu_ms_per_request / r.cpu_ms_per_request
            for r, f in zip(side_runs, floor, strict=True)
            if r.cpu_ms_per_request and f.cpu_ms_per_request
        ]
        summary[side] = {
            "rps": statistics.median(r.rps for r in side_runs),
            "p50_ms": statistics.median(r.p50_ms for r in side_runs),
            "cpu_ms_per_request": statistics.median(
                r.cpu_ms_per_request for r in side_runs if r.cpu_ms_per_request is not None
            ),
            "rps_ratio_to_floor": statistics.median(rps),
            "rps_ratio_to_floor_rounds": rps,
            # The floor's CPU per request over this side's: the same ratio, free of wrk's share.
            "cpu_ratio_to_floor": statistics.median(cpu) if cpu else None,
            "errors": sum(r.non_2xx + r.socket_errors for r in side_runs),
            "runs": [asdict(r) for r in side_runs],
        }
    summary["async_over_legacy_rps"] = statistics.median(
        a.rps / b.rps for a, b in zip(runs["async"], runs["legacy"], strict=True)
    )
    # A side that failed requests has no meaningful throughput.
    clean = not any(summary[side]["errors"] for side in runs)
    summary["meets_target"] = clean and summary["async"]["rps_ratio_to_floor"] >= TARGET
    return summary


def print_report(results: Mapping[str, Any]) -> None:
    print(
        f"\n{'database':<11} {'side':<7} {'req/s':>8} {'p50 ms':>7} {'cpu ms':>7} "
        f"{'x floor':>8} {'cpu x floor':>11}"
    )
    for database, summary in results.items():
        for side in SIDES:
            s = summary[side]
            cpu_ratio = (
                "n/a" if s["cpu_ratio_to_floor"] is None else f"{s['cpu_ratio_to_floor']:.2f}"
            )
            print(
                f"{database:<11} {side:<7} {s['rps']:8.1f} {s['p50_ms']:7.2f} "
                f"{s['cpu_ms_per_request']:7.2f} {s['rps_ratio_to_floor']:8.2f} {cpu_ratio:>11}"
            )
        verdict = "met" if summary["meets_target"] else "MISSED"
        for side in SIDES:
            if summary[side]["errors"]:
                print(f"{database:<11} {side}: {summary[side]['errors']} failed requests")
        print(
            f"{database:<11} async/legacy {summary['async_over_legacy_rps']:.2f}; target async >= "
            f"{TARGET}x floor: {verdict} (per round: "
            + " ".join(f"{r:.2f}" for r in summary["async"]["rps_ratio_to_floor_rounds"])
            + ")"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of every side")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per side")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    info = RunInfo(opts)
    databases = ("sqlite", "postgresql") if opts.database == "both" else (opts.database,)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aa-bench-reads-") as tmp_dir:
        tmp = Path(tmp_dir)
        for database in databases:
            print(f"{database}:", flush=True)
            opened = sqlite_database(tmp) if database == "sqlite" else postgres_database()
            with opened as url:
                base, token = seed(tmp, url)
                servers = servers_for(base, tmp, database)
                distinct = {id(s): s for s in servers.values()}.values()
                with running([(s, "/readyz") for s in distinct], token):
                    check_bodies(servers, token)
                    results[database] = summarize(measure(servers, token, opts))
    report = {
        "meta": info.meta(
            path=PATH, target=f"async >= {TARGET}x the floor's req/s on each database"
        ),
        "databases": results,
    }
    write_results(opts.output, report)
    print_report(results)
    print(f"\nwrote {opts.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
