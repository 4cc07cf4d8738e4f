"""Async vs legacy through the real gateway: a database read and the I/O-bound provider read.

    .venv/bin/python bench/endpoints.py [--duration 5 --rounds 3 --profile]

Two gateways (`uvicorn asgi_gateway.app:app`, one worker each) serve copies of one seeded
database; each has its own flag file, forcing `appointments.list` and
`calendars.remote_events` to `async` on one and `legacy` on the other. wrk drives each case
against both in alternating order (A B, B A, ...) and every figure is the ratio async / legacy
of one round. The provider read goes to the fake Graph server (tests.fakes.graph_server, 20 ms
latency), whose own capacity is measured in the same rounds. With --profile, py-spy samples
each gateway under the provider-read load. Results go to bench/results/endpoints.json; see
bench/endpoints.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))

from bench._common import RunInfo, write_results  # noqa: E402
from bench.gateway import (  # noqa: E402
    DEMO_USER,
    START_TIMEOUT_S,
    Run,
    Server,
    prepare,
    run_wrk,
)

RESULTS = ROOT / "bench" / "results" / "endpoints.json"
PROFILES = ROOT / "bench" / "results" / "profiles"
SIDES = ("async", "legacy")
GRAPH_LATENCY_MS = 20
GRAPH_EVENTS = 50
# The seeded events start 2026-01-01 08:00, one every 30 minutes: all 50 fall in this window.
WINDOW = "start=2026-01-01&end=2026-01-03"
FAKE_PATH = (
    "/calendars/cal-1/calendarView?startDateTime=2026-01-01T00:00:00Z"
    "&endDateTime=2026-01-03T23:59:59Z&$top=100"
)
# The targets for the provider read at c=64.
P50_RATIO_TARGET = 0.33
RPS_RATIO_TARGET = 3.0
FAKE_CONNECTIONS = (1, 64)


@dataclass(frozen=True)
class Case:
    """One URL (with `{calendar}` filled in at run time) at one wrk concurrency."""

    name: str
    path: str
    connections: int
    has_targets: bool = False


CASES = (
    Case("appointments.list c=8", "/api/appointments?per_page=50", 8),
    Case("appointments.list c=64", "/api/appointments?per_page=50", 64),
    Case(
        "remote_events c=64",
        "/api/calendars/{calendar}/remote-events?" + WINDOW,
        64,
        has_targets=True,
    ),
)


# -- setup -------------------------------------------------------------------------------------


def side_environ(base: Mapping[str, str], tmp: Path, side: str, graph_url: str) -> dict[str, str]:
    """A copy of the seeded database and a flag file forcing both endpoints to `side`."""
    home = tmp / side
    home.mkdir()
    source = Path(base["AA_DATABASE_URL"].removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", home / f"bench.db{suffix}")
    (home / "flags.yaml").write_text(
        "version: 1\nroutes:\n"
        f"  appointments.list: {{mode: {side}}}\n"
        f"  calendars.remote_events: {{mode: {side}}}\n"
    )
    return {
        **base,
        "AA_VAR_DIR": str(home / "var"),
        "AA_DATABASE_URL": f"sqlite:///{home / 'bench.db'}",
        "AA_FLAGS_FILE": str(home / "flags.yaml"),
        "AA_GRAPH_URL": graph_url,
    }


class FakeGraph(Server):
    """`python -m tests.fakes.graph_server` in its own process, measurable like a Server."""

    def __init__(self, log_path: Path) -> None:
        super().__init__("fake graph", "", {}, log_path)
        # The fake binds its own port; the socket Server bound only picked a free one.
        self.port = self.sock.getsockname()[1]
        self.sock.close()
        self.args = [
            sys.executable,
            "-m",
            "tests.fakes.graph_server",
            "--port",
            str(self.port),
            "--latency-ms",
            str(GRAPH_LATENCY_MS),
            "--events",
            str(GRAPH_EVENTS),
            # The calendar belongs to the demo user's mailbox, the only one it may reach.
            "--mailbox",
            DEMO_USER,
        ]

    def start(self, ready_path: str, headers: Mapping[str, str]) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.args, env=self.environ, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fake Graph server exited: {self.log_path.read_text()}")
            if b"fake Graph API listening on" in self.log_path.read_bytes():
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(self.url + ready_path, timeout=2).is_success:
                        return
            time.sleep(0.1)
        raise TimeoutError(f"fake Graph server not ready; see {self.log_path}")


def create_graph_calendar(server: Server, token: str) -> int:
    """POST the graph-backed calendar through the API; returns its id."""
    response = httpx.post(
        server.url + "/api/calendars",
        json={"name": "Remote", "role": "source", "provider": "graph", "provider_id": "cal-1"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    if response.status_code != 201:
        raise RuntimeError(
            f"creating the graph calendar on {server.name}: {response.status_code} "
            f"{response.text[:300]}"
        )
    return int(response.json()["id"])


def check_case(path: str, servers: Mapping[str, Server], token: str) -> list[str]:
    """Both sides answer 200, each from the backend its flags force, with equal bodies."""
    bodies = {}
    for side in SIDES:
        response = httpx.get(
            servers[side].url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        if response.status_code != 200:
            raise RuntimeError(f"{path} on {side}: {response.status_code} {response.text[:300]}")
        served_by = response.headers.get("x-served-by")
        if served_by != side:
            raise RuntimeError(f"{path} on the {side} gateway was served by {served_by!r}")
        bodies[side] = response.content
    if bodies["async"] != bodies["legacy"]:
        return [f"{path}: async and legacy bodies differ"]
    return []


# -- load --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One wrk run, with the server's and the machine's CPU use over it."""

    run: Run
    server_cores: float | None  # the server process's CPU seconds per second (1.0: one core)
    machine_busy_pct: float  # all CPUs of the machine, every process (wrk, fake, others)


def wrk_opts(connections: int) -> argparse.Namespace:
    return argparse.Namespace(connections=connections, threads=min(2, connections))


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def settle(*servers: Server, idle_cores: float = 0.15, timeout_s: float = 20.0) -> None:
    """Wait until every server is near idle (CPU below `idle_cores`), or `timeout_s` passes.

    wrk stops with up to one request per connection still in flight; the server finishes
    them after the run, which would otherwise eat into the next run (possibly the other side).
    """
    deadline = time.monotonic() + timeout_s
    for server in servers:
        before = server.cpu_s()
        while before is not None and time.monotonic() < deadline:
            time.sleep(0.2)
            after = server.cpu_s()
            if after is None or (after - before) / 0.2 < idle_cores:
                break
            before = after


def sample(server: Server, path: str, token: str, connections: int, duration_s: int) -> Sample:
    """bench.gateway.run_wrk, plus CPU use of the server and of the whole machine."""
    busy_before, total_before = machine_ticks()
    run = run_wrk(server, path, token, wrk_opts(connections), duration_s)
    busy_after, total_after = machine_ticks()
    cores = None if run.cpu_ms_per_request is None else run.cpu_ms_per_request * run.rps / 1000
    busy = 100 * (busy_after - busy_before) / max(1, total_after - total_before)
    return Sample(run, cores, busy)


def measure(
    servers: Mapping[str, Server],
    fake: Server,
    calendar_id: int,
    token: str,
    opts: argparse.Namespace,
) -> tuple[dict[str, dict[str, list[Sample]]], dict[str, list[Sample]]]:
    """Warm up, then `rounds` rounds of every case on both sides, order swapped each round.

    Each round also measures the fake Graph server alone (latency at c=1, capacity at c=64),
    under the same noise as the gateways.
    """
    cases = selected_cases(opts)
    runs: dict[str, dict[str, list[Sample]]] = {c.name: {s: [] for s in SIDES} for c in cases}
    fake_runs: dict[str, list[Sample]] = {f"c={c}": [] for c in FAKE_CONNECTIONS}
    for case in cases:
        for side in SIDES:
            path = case.path.format(calendar=calendar_id)
            run_wrk(servers[side], path, token, wrk_opts(case.connections), opts.warmup)
    run_wrk(fake, FAKE_PATH, token, wrk_opts(64), opts.warmup)
    for n in range(opts.rounds):
        order = SIDES if n % 2 == 0 else SIDES[::-1]
        for case in cases:
            path = case.path.format(calendar=calendar_id)
            for side in order:
                settle(*servers.values(), fake)
                done = sample(servers[side], path, token, case.connections, opts.duration)
                runs[case.name][side].append(done)
                _print_sample(n, case.name, side, done)
        for connections in FAKE_CONNECTIONS:
            settle(*servers.values(), fake)
            done = sample(fake, FAKE_PATH, token, connections, opts.duration)
            fake_runs[f"c={connections}"].append(done)
            _print_sample(n, f"fake Graph alone c={connections}", "-", done)
    return runs, fake_runs


def _print_sample(n: int, case: str, side: str, done: Sample) -> None:
    run = done.run
    cpu = (
        ""
        if run.cpu_ms_per_request is None or done.server_cores is None
        else f"  cpu {run.cpu_ms_per_request:5.2f} ms/req {done.server_cores:4.2f} cores"
    )
    print(
        f"  round {n + 1} {case:<24} {side:<6} {run.rps:8.1f} req/s  "
        f"p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms  "
        f"errors {run.non_2xx}/{run.socket_errors}{cpu}  machine {done.machine_busy_pct:3.0f}%",
        flush=True,
    )


def summarize(runs: Mapping[str, Mapping[str, list[Sample]]]) -> dict[str, dict[str, Any]]:
    """Per case: each side's medians, and the medians of the per-round ratios async / legacy."""
    summary: dict[str, dict[str, Any]] = {}
    for case in (c for c in CASES if c.name in runs):
        sides = runs[case.name]
        pairs = [(a.run, b.run) for a, b in zip(sides["async"], sides["legacy"], strict=True)]
        ratios = {
            "rps": [a.rps / b.rps for a, b in pairs],
            "p50": [a.p50_ms / b.p50_ms for a, b in pairs],
            "p99": [a.p99_ms / b.p99_ms for a, b in pairs],
        }
        entry: dict[str, Any] = {
            "connections": case.connections,
            "async": side_summary(sides["async"]),
            "legacy": side_summary(sides["legacy"]),
            **{f"{k}_ratio": statistics.median(v) for k, v in ratios.items()},
            **{f"{k}_ratio_rounds": v for k, v in ratios.items()},
        }
        if case.has_targets:
            entry["targets"] = {
                "p50_ratio_max": P50_RATIO_TARGET,
                "rps_ratio_min": RPS_RATIO_TARGET,
            }
            entry["meets_p50_target"] = entry["p50_ratio"] <= P50_RATIO_TARGET
            entry["meets_rps_target"] = entry["rps_ratio"] >= RPS_RATIO_TARGET
        summary[case.name] = entry
    return summary


def side_summary(samples: list[Sample]) -> dict[str, Any]:
    """Medians over rounds of one side, error totals, and every raw run."""
    runs = [s.run for s in samples]
    cpu = [r.cpu_ms_per_request for r in runs if r.cpu_ms_per_request is not None]
    cores = [s.server_cores for s in samples if s.server_cores is not None]
    return {
        "rps": statistics.median(r.rps for r in runs),
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "cpu_ms_per_request": statistics.median(cpu) if cpu else None,
        "server_cores": statistics.median(cores) if cores else None,
        "machine_busy_pct": statistics.median(s.machine_busy_pct for s in samples),
        "non_2xx": sum(r.non_2xx for r in runs),
        "socket_errors": sum(r.socket_errors for r in runs),
        "runs": [
            {
                **asdict(s.run),
                "server_cores": s.server_cores,
                "machine_busy_pct": s.machine_busy_pct,
            }
            for s in samples
        ],
    }


# -- profile -----------------------------------------------------------------------------------

# Self time by package: each sample goes to the innermost frame whose file matches.
_PACKAGES = (
    ("import machinery (failed imports)", "<frozen importlib"),
    ("sqlite3 in aiosqlite threads", "aiosqlite/core.py:6"),
    ("aiosqlite", "aiosqlite/"),
    ("sqlalchemy", "sqlalchemy"),
    ("httpx/httpcore/anyio", "httpx/"),
    ("httpx/httpcore/anyio", "httpcore/"),
    ("httpx/httpcore/anyio", "anyio/"),
    ("json", "json/"),
    ("flask/werkzeug", "flask/"),
    ("flask/werkzeug", "werkzeug/"),
    ("a2wsgi", "a2wsgi/"),
    ("uvicorn/h11", "uvicorn/"),
    ("uvicorn/h11", "h11/"),
    ("starlette", "starlette/"),
    ("gateway (asgi_gateway)", "asgi_gateway/"),
    ("app (shared, legacy_flask)", "shared/"),
    ("app (shared, legacy_flask)", "legacy_flask/"),
    ("app (shared, legacy_flask)", "services/"),
    ("app (shared, legacy_flask)", "providers/"),
    ("app (shared, legacy_flask)", "repositories.py"),
    ("app (shared, legacy_flask)", "representation.py"),
    ("app (shared, legacy_flask)", "db.py"),
    ("threads, queues, futures", "threading.py"),
    ("threads, queues, futures", "concurrent/"),
    ("threads, queues, futures", "queue.py"),
    ("asyncio", "asyncio/"),
    ("asyncio", "selectors.py"),
)
# Inclusive share of samples under these functions (py-spy frame names).
_FUNCTIONS = (
    "UserService.authenticate_token",
    "CalendarRepository.get",
    "AppointmentRepository.page",
    "appointment_json",
    "GraphProvider.list_events",
    "GraphProvider._request",
    "current_async_library",
    "_parse_event",
    "bridge",
    "WSGIResponder",
)
PROFILE_CASES = ("appointments.list c=64", "remote_events c=64")


def profile(
    servers: Mapping[str, Server],
    calendar_id: int,
    token: str,
    duration_s: int,
    cases: Sequence[Case] = CASES,
) -> dict[str, Any]:
    """py-spy (--gil: the thread holding the GIL) on each gateway under two cases' load."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        return {"error": "py-spy not installed (.venv/bin/pip install py-spy)"}
    PROFILES.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    for case in (c for c in cases if c.name in PROFILE_CASES):
        for side in SIDES:
            server = servers[side]
            assert server.proc is not None
            raw = PROFILES / f"endpoints-{case.name.split()[0]}-{side}.txt"
            spy = subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(server.proc.pid),
                    "--rate",
                    "200",
                    "--duration",
                    str(duration_s),
                    "--gil",
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            settle(*servers.values())
            time.sleep(0.5)  # let py-spy attach before the load starts
            done = sample(
                server, case.path.format(calendar=calendar_id), token, case.connections, duration_s
            )
            _, err = spy.communicate(timeout=duration_s + 60)
            key = f"{case.name} {side}"
            if spy.returncode != 0 or not raw.exists():
                report[key] = {"error": f"py-spy failed ({spy.returncode}): {err.decode()[-300:]}"}
                continue
            report[key] = {
                "rps_under_profiler": done.run.rps,
                "cpu_ms_per_request": done.run.cpu_ms_per_request,
                **summarize_stacks(raw, duration_s * 200),
                "collapsed_stacks": str(raw.relative_to(ROOT)),
            }
    return report


def summarize_stacks(raw: Path, possible: int) -> dict[str, Any]:
    """GIL busy share, self time by package, inclusive share of key functions, top frames."""
    total = 0
    by_package: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    self_frames: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        self_frames[frames[-1]] += count
        by_package[_package_of(frames)] += count
        for name in _FUNCTIONS:
            if name in stack:
                by_function[name] += count
    if not total:
        return {"samples": 0}

    def pct(count: int) -> float:
        return round(100 * count / total, 1)

    return {
        "samples": total,
        # Share of the wall time some thread of the gateway held the GIL (1.0: never released).
        "gil_busy": round(total / possible, 2),
        "self_pct_by_package": {k: pct(c) for k, c in by_package.most_common()},
        "inclusive_pct": {k: pct(by_function[k]) for k in _FUNCTIONS},
        "top_self_frames_pct": {f: pct(c) for f, c in self_frames.most_common(12)},
    }


def _package_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for package, needle in _PACKAGES:
            if needle in frame:
                return package
    return "other"


# -- report ------------------------------------------------------------------------------------


def print_report(summary: Mapping[str, Any], fake: Mapping[str, Any]) -> None:
    print(
        f"\n{'case':<24} {'async':>7} {'legacy':>7} {'rps':>6} {'p50':>6} {'p99':>6}  "
        f"{'async p50/p99 ms':>17} {'legacy p50/p99 ms':>18} {'cpu ms/req a/l':>15}"
    )
    print(f"{'':<24} {'rps':>7} {'rps':>7} {'ratio':>6} {'ratio':>6} {'ratio':>6}")
    for name, s in summary.items():
        a, b = s["async"], s["legacy"]
        print(
            f"{name:<24} {a['rps']:7.1f} {b['rps']:7.1f} {s['rps_ratio']:6.2f} "
            f"{s['p50_ratio']:6.3f} {s['p99_ratio']:6.3f}  "
            f"{a['p50_ms']:8.1f}/{a['p99_ms']:<8.1f} {b['p50_ms']:8.1f}/{b['p99_ms']:<8.1f} "
            f"{_num(a['cpu_ms_per_request'])}/{_num(b['cpu_ms_per_request'])}"
        )
        print(
            f"{'':<24} per round: rps "
            + " ".join(f"{r:.2f}" for r in s["rps_ratio_rounds"])
            + "  p50 "
            + " ".join(f"{r:.3f}" for r in s["p50_ratio_rounds"])
        )
        if "targets" in s:
            print(
                f"{'':<24} targets: p50 ratio <= {P50_RATIO_TARGET} "
                f"{'met' if s['meets_p50_target'] else 'MISSED'}; rps ratio >= "
                f"{RPS_RATIO_TARGET} {'met' if s['meets_rps_target'] else 'MISSED'}"
            )
    for name, f in fake.items():
        print(
            f"fake Graph alone {name}: {f['rps']:.1f} req/s, p50 {f['p50_ms']:.1f} ms, "
            f"p99 {f['p99_ms']:.1f} ms, cpu {_num(f['cpu_ms_per_request'])} ms/req "
            f"(configured latency {GRAPH_LATENCY_MS} ms)"
        )


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="A/B pairs per case")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per side")
    parser.add_argument("--profile", action="store_true", help="py-spy each gateway afterwards")
    parser.add_argument("--profile-duration", type=int, default=10, help="seconds per profile")
    parser.add_argument(
        "--wsgi-threads", type=int, default=None, help="AA_WSGI_THREADS for both gateways"
    )
    parser.add_argument(
        "--case",
        action="append",
        default=[],
        help="run only the cases whose name contains this (repeatable), e.g. remote_events",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON")
    opts = parser.parse_args(argv)
    if not selected_cases(opts):
        parser.error(f"--case {opts.case} matches none of: {', '.join(c.name for c in CASES)}")
    return opts


def selected_cases(opts: argparse.Namespace) -> tuple[Case, ...]:
    """The cases `--case` picks (every case when it is not given)."""
    return tuple(c for c in CASES if not opts.case or any(part in c.name for part in opts.case))


@contextlib.contextmanager
def running(servers: list[tuple[Server, str]], token: str) -> Iterator[None]:
    """Start each (server, readiness path); stop every one that started, last first."""
    started: list[Server] = []
    try:
        for server, ready_path in servers:
            started.append(server)
            server.start(ready_path, {"Authorization": f"Bearer {token}"})
        yield
    finally:
        for server in reversed(started):
            server.stop()


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    info = RunInfo(opts)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="aa-bench-endpoints-") as tmp_dir:
        tmp = Path(tmp_dir)
        base, token = prepare(tmp)
        fake = FakeGraph(tmp / "fake-graph.log")
        if opts.wsgi_threads is not None:
            base["AA_WSGI_THREADS"] = str(opts.wsgi_threads)
        environs = {side: side_environ(base, tmp, side, fake.url) for side in SIDES}
        servers = {
            side: Server(side, "asgi_gateway.app:app", environs[side], tmp / f"{side}.log")
            for side in SIDES
        }
        with running([(fake, FAKE_PATH), *((servers[s], "/readyz") for s in SIDES)], token):
            ids = {side: create_graph_calendar(servers[side], token) for side in SIDES}
            if ids["async"] != ids["legacy"]:
                raise RuntimeError(f"the database copies diverged: calendar ids {ids}")
            calendar_id = ids["async"]
            for case in selected_cases(opts):
                notes += check_case(case.path.format(calendar=calendar_id), servers, token)
            runs, fake_runs = measure(servers, fake, calendar_id, token, opts)
            profiles = (
                profile(servers, calendar_id, token, opts.profile_duration, selected_cases(opts))
                if opts.profile
                else None
            )
    summary = summarize(runs)
    fake_summary = {name: side_summary(samples) for name, samples in fake_runs.items()}
    for name, s in summary.items():
        for side in SIDES:
            if s[side]["non_2xx"] or s[side]["socket_errors"]:
                notes.append(
                    f"{name} {side}: {s[side]['non_2xx']} non-2xx responses, "
                    f"{s[side]['socket_errors']} socket errors"
                )
    result = {
        "meta": info.meta(
            graph={"latency_ms": GRAPH_LATENCY_MS, "events": GRAPH_EVENTS},
            wsgi_threads=opts.wsgi_threads or "default (AA_DB_POOL_SIZE 10 + 2 = 12)",
        ),
        "cases": summary,
        "fake_graph_alone": fake_summary,
        "profile": profiles,
        "notes": notes,
    }
    write_results(opts.output, result)
    print_report(summary, fake_summary)
    if profiles:
        print("\nprofiles (py-spy --gil, self time by package and key functions, % of samples):")
        for key, data in profiles.items():
            brief = {k: v for k, v in data.items() if k != "top_self_frames_pct"}
            print(f"  {key}: {json.dumps(brief)}")
    for note in notes:
        print(f"note: {note}")
    print(f"\nwrote {opts.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
