"""What shadowing costs the client: an endpoint in `mode: shadow` against the same endpoint in
`mode: legacy`, on two gateways over copies of one database, A/B interleaved.

    .venv/bin/python bench/shadow.py [--duration 5 --rounds 3 --connections 16]

Cases (see bench/shadow.md):

* `read at half load, sample 1.0`: GET /api/appointments/{id}; both sides are offered the same
  fixed load, half of legacy's saturated throughput (measured first in the same run), by wrk
  connections that pause between requests, the pause calibrated on legacy at that load.
  Target: client p50 ratio <= 1.05.
* `read at saturation, sample 0.1`: the same GET as fast as wrk can. Target: throughput
  ratio >= 0.90.
* `write at a quarter load, dry run`: POST /api/calendars with `shadow: {writes: dry_run}` on
  SQLite, offered a quarter of legacy's saturated throughput: what the dry runs cost legacy's
  own writes (no target; the stall).

Also reports each server's CPU per request and the shadow result counts of the shadow side.
Results go to bench/results/shadow.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import RunInfo, write_results  # noqa: E402
from bench.gateway import Run, Server, prepare, run_wrk  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "shadow.json"
P50_RATIO_TARGET = 1.05
RPS_RATIO_TARGET = 0.90
READ = "appointments.get"
WRITE = "calendars.create"


@dataclass(frozen=True)
class Case:
    name: str
    endpoint: str
    method: str
    path: str
    shadow: str  # the flag entry of the shadow side
    load: float | None  # offered this share of legacy's saturated throughput; None: saturate


CASES = (
    Case(
        "read at half load, sample 1.0",
        READ,
        "GET",
        "/api/appointments/1",
        "{mode: shadow, shadow: {sample: 1.0}, compare: {noise_sample: 0}}",
        load=0.5,
    ),
    Case(
        "read at saturation, sample 0.1",
        READ,
        "GET",
        "/api/appointments/1",
        "{mode: shadow, shadow: {sample: 0.1}, compare: {noise_sample: 0}}",
        load=None,
    ),
    Case(
        "write at a quarter load, dry run",
        WRITE,
        "POST",
        "/api/calendars",
        '{mode: shadow, shadow: {writes: dry_run}, compare: {ignore: ["$.id", "$.created_at", '
        '"$.updated_at"], headers: [content-type]}}',
        load=0.25,
    ),
)


def flags(shadowed: Mapping[str, str]) -> str:
    lines = ["version: 1", "routes:"]
    lines += [f"  {endpoint}: {entry}" for endpoint, entry in shadowed.items()]
    return "\n".join(lines) + "\n"


def write_lua(path: Path, *, method: str, body: str | None, delay_ms: float) -> None:
    """A wrk script: the request, a pause of `delay_ms` before each one, and the JSON report."""
    report = (ROOT / "bench" / "_report.lua").read_text()
    request = f'wrk.method = "{method}"\n'
    if body is not None:
        request += f"wrk.body = {json.dumps(body)}\n"
        request += 'wrk.headers["Content-Type"] = "application/json"\n'
    pause = f"function delay()\n  return {delay_ms:.3f}\nend\n" if delay_ms > 0 else ""
    path.write_text(request + pause + report)


def run_case(
    server: Server, case: Case, token: str, opts: argparse.Namespace, delay_ms: float, tmp: Path
) -> Run:
    script = tmp / f"{server.name}-{abs(hash(case.name))}.lua"
    body = '{"name": "Bench", "role": "source"}' if case.method == "POST" else None
    write_lua(script, method=case.method, body=body, delay_ms=delay_ms)
    return run_wrk(server, case.path, token, _with_script(opts, script), opts.duration)


def _with_script(opts: argparse.Namespace, script: Path) -> argparse.Namespace:
    copy = argparse.Namespace(**vars(opts))
    copy.script = script
    return copy


def shadow_counts(server: Server, token: str, endpoint: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        report = httpx.get(
            f"{server.url}/_rollout/api/shadow/{endpoint}",
            params={"window": "1h"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        if time.monotonic() > deadline or report.get("compared", 0) > 0:
            return {k: report[k] for k in report if k not in ("recent", "noise")}
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--case", action="append", help="only cases whose name has this text")
    opts = parser.parse_args(argv)
    info = RunInfo(opts)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aa-bench-shadow-") as tmp_dir:
        tmp = Path(tmp_dir)
        environ, token = prepare(tmp)
        for case in CASES:
            if opts.case and not any(text in case.name for text in opts.case):
                continue
            results[case.name] = measure_case(case, environ, token, opts, tmp)
    output = {
        "meta": info.meta(targets={"p50_ratio": P50_RATIO_TARGET, "rps_ratio": RPS_RATIO_TARGET}),
        "cases": results,
    }
    write_results(opts.output, output)
    print_report(results)
    print(f"\nwrote {opts.output}")
    return 0


def measure_case(
    case: Case, environ: Mapping[str, str], token: str, opts: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    print(f"{case.name}:", flush=True)
    with _pair(case, environ, token, tmp) as (legacy, shadow):
        delay_ms = 0.0
        offered = None
        if case.load is not None:
            # A share of legacy's saturated throughput, offered by connections that pause:
            # c connections at about delay + latency per request each.
            saturated = run_case(legacy, case, token, opts, 0.0, tmp)
            offered = saturated.rps * case.load
            delay_ms = calibrate(legacy, case, token, opts, tmp, offered, saturated)
            print(
                f"  legacy saturates at {saturated.rps:.0f} req/s; offering ~{offered:.0f} "
                f"(a pause of {delay_ms:.1f} ms before each request)"
            )
        for side in (legacy, shadow):
            run_wrk_warmup(side, case, token, opts, delay_ms, tmp)
        runs: dict[str, list[Run]] = {"legacy": [], "shadow": []}
        for n in range(opts.rounds):
            order = [("legacy", legacy), ("shadow", shadow)]
            for role, server in order if n % 2 == 0 else reversed(order):
                run = run_case(server, case, token, opts, delay_ms, tmp)
                runs[role].append(run)
                print(
                    f"  round {n + 1} {role:<7} {run.rps:8.1f} req/s  p50 {run.p50_ms:6.2f} ms  "
                    f"p99 {run.p99_ms:6.2f} ms  cpu/req {run.cpu_ms_per_request or 0:.2f} ms",
                    flush=True,
                )
        counts = shadow_counts(shadow, token, case.endpoint)
    pairs = list(zip(runs["shadow"], runs["legacy"], strict=True))
    return {
        "offered_rps": offered,
        "delay_ms": delay_ms,
        "legacy": _side(runs["legacy"]),
        "shadow": _side(runs["shadow"]),
        "rps_ratio": statistics.median(s.rps / b.rps for s, b in pairs),
        "p50_ratio": statistics.median(s.p50_ms / b.p50_ms for s, b in pairs),
        "p99_ratio": statistics.median(s.p99_ms / b.p99_ms for s, b in pairs),
        "p50_ratio_rounds": [s.p50_ms / b.p50_ms for s, b in pairs],
        "rps_ratio_rounds": [s.rps / b.rps for s, b in pairs],
        "shadow_results": counts,
    }


def calibrate(
    legacy: Server,
    case: Case,
    token: str,
    opts: argparse.Namespace,
    tmp: Path,
    offered: float,
    saturated: Run,
) -> float:
    """The pause before each request that makes legacy serve `offered` req/s.

    Each connection loops pause + response time, so the pause depends on the response time at
    that load, which is much shorter than at saturation: measure it, twice, and adjust.
    """
    cycle_ms = opts.connections / offered * 1000
    delay_ms = max(cycle_ms - saturated.p50_ms, 0.0)
    probe_opts = argparse.Namespace(**vars(opts))
    probe_opts.duration = max(3, opts.duration // 2)
    for _ in range(3):
        probe = run_case(legacy, case, token, probe_opts, delay_ms, tmp)
        response_ms = max(opts.connections / probe.rps * 1000 - delay_ms, 0.0)
        delay_ms = max(cycle_ms - response_ms, 0.0)
        print(f"  calibrating: {probe.rps:.0f} req/s, next pause {delay_ms:.1f} ms", flush=True)
    return delay_ms


def run_wrk_warmup(
    server: Server, case: Case, token: str, opts: argparse.Namespace, delay_ms: float, tmp: Path
) -> None:
    warm = argparse.Namespace(**vars(opts))
    warm.duration = opts.warmup
    run_case(server, case, token, warm, delay_ms, tmp)


def _side(runs: list[Run]) -> dict[str, Any]:
    return {
        "rps": statistics.median(r.rps for r in runs),
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "cpu_ms_per_request": statistics.median(
            r.cpu_ms_per_request for r in runs if r.cpu_ms_per_request is not None
        ),
        "non_2xx": sum(r.non_2xx for r in runs),
        "runs": [asdict(r) for r in runs],
    }


@contextlib.contextmanager
def _pair(
    case: Case, environ: Mapping[str, str], token: str, tmp: Path
) -> Iterator[tuple[Server, Server]]:
    """Two gateways over two copies of the seeded database: legacy, and shadow for the case."""
    started: list[Server] = []
    try:
        for role, entry in (("legacy", "{mode: legacy}"), ("shadow", case.shadow)):
            folder = tmp / f"{role}-{abs(hash(case.name))}"
            folder.mkdir()
            shutil.copy(tmp / "bench.db", folder / "bench.db")
            (folder / "flags.yaml").write_text(flags({case.endpoint: entry}))
            env = {
                **environ,
                "AA_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
                "AA_FLAGS_FILE": str(folder / "flags.yaml"),
                "AA_SCHEDULER": "off",
                "AA_SHADOW_CONCURRENCY": "64",
                "AA_STATS_FLUSH_S": "1",
            }
            server = Server(role, "asgi_gateway.app:app", env, folder / "server.log")
            started.append(server)
            server.start("/readyz", {"Authorization": f"Bearer {token}"})
        yield started[0], started[1]
    finally:
        for server in reversed(started):
            server.stop()


def print_report(results: Mapping[str, Mapping[str, Any]]) -> None:
    print(f"\n{'case':<34} {'rps':>7} {'rps':>6} {'p50':>6} {'p99':>6} {'cpu/req ms':>12}  shadow")
    print(f"{'':<34} {'legacy':>7} {'ratio':>6} {'ratio':>6} {'ratio':>6} {'leg / shd':>12}")
    for name, r in results.items():
        counts = r["shadow_results"]
        summary = ", ".join(
            f"{k} {counts[k]}"
            for k in ("compared", "matched", "mismatched", "errors", "timeouts", "skipped")
        )
        print(
            f"{name:<34} {r['legacy']['rps']:7.1f} {r['rps_ratio']:6.3f} {r['p50_ratio']:6.3f} "
            f"{r['p99_ratio']:6.3f} {r['legacy']['cpu_ms_per_request']:5.2f} / "
            f"{r['shadow']['cpu_ms_per_request']:4.2f}  {summary}"
        )
    print(
        f"(targets: half load sample 1.0 p50 ratio <= {P50_RATIO_TARGET}; saturation sample "
        f"0.1 rps ratio >= {RPS_RATIO_TARGET})"
    )


if __name__ == "__main__":
    sys.exit(main())
