"""Gateway overhead: wrk against the gateway and the same apps served directly, A/B interleaved.

    .venv/bin/python bench/gateway.py [--duration 5 --rounds 3 --connections 16 --threads 2]

Each case pairs one URL on the full gateway (asgi_gateway.app) with the same URL on a
baseline server started in the same run (bench/_apps.py): the async twin on a plain Starlette
app, or the Flask app behind a2wsgi alone. Rounds alternate which side goes first (ABBA), so
slow drift on a noisy machine falls on both sides. Also times one flag decision in-process.
Results go to bench/results/gateway.json; see bench/gateway.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))

from bench._common import RunInfo, write_results  # noqa: E402

REPORT_LUA = ROOT / "bench" / "_report.lua"
RESULTS = ROOT / "bench" / "results" / "gateway.json"
SECRET = "bench-secret-key-0123456789abcdef"
FLAGS_YAML = "version: 1\nroutes:\n  appointments.list: {mode: async}\n"
DEMO_USER = "admin@example.com"
RPS_RATIO_TARGET = 0.97
DECISION_TARGET_NS = 2000.0
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Case:
    """One URL measured through the gateway and on a direct server."""

    name: str
    path: str
    direct: str  # the baseline server: "async", "legacy" or "mount"
    served_by: str  # the X-Served-By the gateway must answer with


CASES = (
    Case("appointments.list async", "/api/appointments?per_page=50", "async", "async"),
    Case("healthz legacy", "/healthz", "legacy", "legacy"),
    Case("calendars.list legacy", "/api/calendars", "legacy", "legacy"),
    # The gateway's own routing alone: the same legacy mount (WSGIMount) served without it.
    Case("healthz vs the mount alone", "/healthz", "mount", "legacy"),
)
SERVERS = {  # name -> (ASGI app, readiness path)
    "gateway": ("asgi_gateway.app:app", "/readyz"),
    "async": ("bench._apps:async_app", "/api/appointments?per_page=1"),
    "legacy": ("bench._apps:legacy_app", "/readyz"),
    "mount": ("bench._apps:mount_app", "/readyz"),
}


@dataclass(frozen=True)
class Run:
    """One wrk run against one server."""

    server: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    cpu_ms_per_request: float | None  # the server process's CPU (all threads) per request


# -- setup -------------------------------------------------------------------------------------


def prepare(tmp: Path) -> tuple[dict[str, str], str]:
    """A migrated, seeded SQLite database and its flag file; returns (AA_* environment, token)."""
    (tmp / "flags.yaml").write_text(FLAGS_YAML)
    environ = {
        "AA_ENV": "testing",
        "AA_SECRET_KEY": SECRET,
        "AA_VAR_DIR": str(tmp / "var"),
        "AA_DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "AA_FLAGS_FILE": str(tmp / "flags.yaml"),
    }
    cli = str(Path(sys.executable).parent / "admin-assistant")
    for args in (["db", "upgrade"], ["db", "seed", "--demo"]):
        _cli(cli, args, environ)
    token = _cli(cli, ["tokens", "create", "--user", DEMO_USER], environ).strip().splitlines()[-1]
    return environ, token


def _cli(cli: str, args: list[str], environ: Mapping[str, str]) -> str:
    done = subprocess.run(
        [cli, *args], env=_child_env(environ), capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"admin-assistant {' '.join(args)} failed ({done.returncode}):\n{done.stderr}"
        )
    return done.stdout


def _child_env(environ: Mapping[str, str]) -> dict[str, str]:
    # Inherited AA_* variables would silently point a server at another database.
    base = {k: v for k, v in os.environ.items() if not k.startswith("AA_")}
    return {**base, **environ, "PYTHONUNBUFFERED": "1"}


class Server:
    """One uvicorn process (one worker) on a socket bound here to 127.0.0.1:0."""

    def __init__(self, name: str, app: str, environ: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # uvicorn wraps an inherited socket as AF_UNIX and so never sets TCP_NODELAY on its
        # connections; Linux copies the option from the listening socket to accepted ones.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.set_inheritable(True)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.args = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--fd",
            str(self.sock.fileno()),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        self.environ = _child_env(environ)
        self.log_path = log_path
        self.cwd = ROOT  # where the app is imported from (bench/dashboard.py's --against moves it)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_path: str, headers: Mapping[str, str]) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                env=self.environ,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(self.sock.fileno(),),
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} server exited with {self.proc.returncode}:\n"
                    f"{self.log_path.read_text(errors='replace')}"
                )
            try:
                if httpx.get(self.url + ready_path, headers=dict(headers), timeout=2).is_success:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name} server not ready after {START_TIMEOUT_S} s; see {self.log_path}"
                )
            time.sleep(0.1)

    def cpu_s(self) -> float | None:
        """CPU seconds (user + system, every thread) the server has used; None off Linux."""
        if self.proc is None:
            return None
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.sock.close()


# -- load --------------------------------------------------------------------------------------


def run_wrk(
    server: Server, path: str, token: str, opts: argparse.Namespace, duration_s: int
) -> Run:
    """One wrk run of `duration_s` seconds; its rps and latency percentiles."""
    cmd = [
        "wrk",
        "-t",
        str(opts.threads),
        "-c",
        str(opts.connections),
        "-d",
        f"{duration_s}s",
        "--timeout",
        "10s",
        "-s",
        str(getattr(opts, "script", None) or REPORT_LUA),
        "-H",
        f"Authorization: Bearer {token}",
        server.url + path,
    ]
    cpu_before = server.cpu_s()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    cpu_after = server.cpu_s()
    line = next((s for s in done.stdout.splitlines() if s.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    errors = data["errors"]
    return Run(
        server=server.name,
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["latency_us"]["p50"] / 1000,
        p99_ms=data["latency_us"]["p99"] / 1000,
        requests=data["requests"],
        non_2xx=errors["status"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        cpu_ms_per_request=None
        if cpu_before is None or cpu_after is None or not data["requests"]
        else (cpu_after - cpu_before) * 1000 / data["requests"],
    )


def check_case(case: Case, gateway: Server, direct: Server, token: str) -> list[str]:
    """Both sides answer 200 with the same body, and the gateway picks the expected backend."""
    headers = {"Authorization": f"Bearer {token}"}
    via_gateway = httpx.get(gateway.url + case.path, headers=headers, timeout=10)
    via_direct = httpx.get(direct.url + case.path, headers=headers, timeout=10)
    for side, response in (("gateway", via_gateway), ("direct", via_direct)):
        if response.status_code != 200:
            raise RuntimeError(
                f"{case.name}: {side} answered {response.status_code}: {response.text[:300]}"
            )
    served_by = via_gateway.headers.get("x-served-by")
    if served_by != case.served_by:
        raise RuntimeError(
            f"{case.name}: gateway served by {served_by!r}, expected "
            f"{case.served_by!r}; check the flag file"
        )
    if via_gateway.content != via_direct.content:
        return [
            f"{case.name}: gateway and direct bodies differ "
            f"({len(via_gateway.content)} vs {len(via_direct.content)} bytes)"
        ]
    return []


def measure(
    cases: tuple[Case, ...], servers: Mapping[str, Server], token: str, opts: argparse.Namespace
) -> dict[str, dict[str, list[Run]]]:
    """Warm every side up, then run each case's pair `rounds` times, swapping order each round."""
    runs: dict[str, dict[str, list[Run]]] = {c.name: {"gateway": [], "direct": []} for c in cases}
    for case in cases:
        for side in ("gateway", case.direct):
            run_wrk(servers[side], case.path, token, opts, opts.warmup)
    for n in range(opts.rounds):
        for case in cases:
            order = [("gateway", "gateway"), ("direct", case.direct)]
            for role, side in order if n % 2 == 0 else reversed(order):
                run = run_wrk(servers[side], case.path, token, opts, opts.duration)
                runs[case.name][role].append(run)
                print(
                    f"  round {n + 1} {case.name:<26} {role:<7} {run.rps:8.1f} req/s  "
                    f"p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms",
                    flush=True,
                )
    return runs


def summarize(runs: Mapping[str, Mapping[str, list[Run]]]) -> dict[str, dict[str, Any]]:
    """Per case: median rps and latency of each side, and the median of the per-round ratios."""
    summary: dict[str, dict[str, Any]] = {}
    for name, sides in runs.items():
        pairs = list(zip(sides["gateway"], sides["direct"], strict=True))
        rps = [g.rps / d.rps for g, d in pairs]
        p50 = [g.p50_ms / d.p50_ms for g, d in pairs]
        p99 = [g.p99_ms / d.p99_ms for g, d in pairs]
        cpu = [
            g.cpu_ms_per_request / d.cpu_ms_per_request
            for g, d in pairs
            if g.cpu_ms_per_request and d.cpu_ms_per_request
        ]
        summary[name] = {
            "gateway": _side(sides["gateway"]),
            "direct": _side(sides["direct"]),
            "rps_ratio": statistics.median(rps),
            "rps_ratio_rounds": rps,
            "p50_ratio": statistics.median(p50),
            "p99_ratio": statistics.median(p99),
            # CPU per request is steadier than throughput on a busy machine: it counts the
            # gateway's own work (routing, metrics, flag polling) whoever else runs.
            "cpu_per_request_ratio": statistics.median(cpu) if cpu else None,
            # All requests of a side over all its time: less sensitive to one odd round.
            "rps_ratio_pooled": _pooled_rps(sides["gateway"]) / _pooled_rps(sides["direct"]),
            "meets_target": statistics.median(rps) >= RPS_RATIO_TARGET,
        }
    return summary


def _side(runs: list[Run]) -> dict[str, Any]:
    return {
        "rps": statistics.median(r.rps for r in runs),
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "cpu_ms_per_request": _median_or_none([r.cpu_ms_per_request for r in runs]),
        "non_2xx": sum(r.non_2xx for r in runs),
        "socket_errors": sum(r.socket_errors for r in runs),
        "runs": [asdict(r) for r in runs],
    }


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _pooled_rps(runs: list[Run]) -> float:
    return sum(r.requests for r in runs) / sum(r.requests / r.rps for r in runs)


# -- flag decision -----------------------------------------------------------------------------


def time_decisions(environ: Mapping[str, str], token: str) -> dict[str, float]:
    """Best-of-5 ns per call of the routing decision's pieces, in this process (no server)."""
    from asgi_gateway.app import create_gateway
    from asgi_gateway.flags import Flag
    from asgi_gateway.serving.decision import CompiledFlag, Snapshot, decide_backend
    from shared.config import load_settings
    from shared.sessions import SessionReader

    endpoint = "appointments.list"
    flag = Flag(endpoint, mode="canary", percent=25.0, sticky_by="user")
    compiled = CompiledFlag.of(flag)
    settings = load_settings(environ)
    gateway = create_gateway(settings)  # built, never started: no I/O
    # What the lifespan's refresher would hold; only `.snapshot` is read on the hot path.
    gateway.plane.refresher = SimpleNamespace(snapshot=Snapshot.build(1, {endpoint: flag}))  # type: ignore[assignment]
    # A signed session cookie as the legacy app writes it (the sticky key reads it unverified
    # against the database: routing does no I/O).
    session = SessionReader(settings.secret_key).serializer.dumps({"user_id": 1, "sid": "bench"})
    base_headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]
    bearer_scope = _scope([*base_headers, (b"authorization", f"Bearer {token}".encode())])
    cookie_scope = _scope([*base_headers, (b"cookie", f"aa_session={session}".encode())])
    if _drive(gateway._choose(bearer_scope, endpoint))[0] not in ("legacy", "async"):
        raise RuntimeError("Gateway._choose returned no backend")
    key = gateway.sticky_key(bearer_scope, compiled)

    def sticky_decide(scope: dict[str, Any]) -> Callable[[], object]:
        return lambda: decide_backend(compiled, endpoint, gateway.sticky_key(scope, compiled))

    timings = {
        "decide_backend canary": lambda: decide_backend(compiled, endpoint, key),
        "sticky_key + decide_backend bearer": sticky_decide(bearer_scope),
        "sticky_key + decide_backend cookie": sticky_decide(cookie_scope),
        # The real method, driven without a loop: it never awaits unless the override
        # header is present, so one send() runs it to completion.
        "Gateway._choose bearer": lambda: _drive(gateway._choose(bearer_scope, endpoint)),
        "RouteMatcher.match": lambda: gateway.matcher.match(bearer_scope),
        # What the lambda and timeit loop cost alone, included in every figure above.
        "empty call (timer overhead)": lambda: None,
    }
    return {name: _ns_per_call(fn) for name, fn in timings.items()}


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/appointments",
        "raw_path": b"/api/appointments",
        "query_string": b"per_page=50",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50123),
        "server": ("127.0.0.1", 8000),
    }


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("Gateway._choose awaited: the decision path did I/O")


def _ns_per_call(fn: Callable[[], object]) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=5, number=number)) / number * 1e9


# -- report ------------------------------------------------------------------------------------


def print_report(summary: Mapping[str, Mapping[str, Any]], decisions: Mapping[str, float]) -> None:
    print(
        f"\n{'case':<24} {'gw rps':>7} {'direct':>7} {'rps':>6} {'p50':>6} {'p99':>6} "
        f"{'cpu/req':>7}  rps ratio per round"
    )
    print(f"{'':<24} {'':>7} {'rps':>7} {'ratio':>6} {'ratio':>6} {'ratio':>6} {'ratio':>7}")
    for name, s in summary.items():
        rounds = " ".join(f"{r:.3f}" for r in s["rps_ratio_rounds"])
        cpu = s["cpu_per_request_ratio"]
        mark = "ok" if s["meets_target"] else f"BELOW {RPS_RATIO_TARGET}"
        print(
            f"{name:<24} {s['gateway']['rps']:7.1f} {s['direct']['rps']:7.1f} "
            f"{s['rps_ratio']:6.3f} {s['p50_ratio']:6.3f} {s['p99_ratio']:6.3f} "
            f"{'n/a' if cpu is None else format(cpu, '.3f'):>7}  {rounds}  {mark}"
        )
    print(f"\n{'flag decision (in-process, best of 5)':<40} {'ns/call':>8}")
    for name, ns in decisions.items():
        print(f"{name:<40} {ns:8.0f}")
    print(f"(targets: rps ratio >= {RPS_RATIO_TARGET}; decision <= {DECISION_TARGET_NS:.0f} ns)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="A/B pairs per case")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per side")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    info = RunInfo(opts)
    with tempfile.TemporaryDirectory(prefix="aa-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        environ, token = prepare(tmp)
        decisions = time_decisions(environ, token)
        with _servers(environ, token, tmp) as servers:
            notes = [
                n
                for c in CASES
                for n in check_case(c, servers["gateway"], servers[c.direct], token)
            ]
            runs = measure(CASES, servers, token, opts)
    summary = summarize(runs)
    for name, s in summary.items():
        for role in ("gateway", "direct"):
            if s[role]["non_2xx"] or s[role]["socket_errors"]:
                notes.append(
                    f"{name} {role}: {s[role]['non_2xx']} non-2xx responses, "
                    f"{s[role]['socket_errors']} socket errors"
                )
    result = {
        "meta": info.meta(
            targets={"rps_ratio": RPS_RATIO_TARGET, "decision_ns": DECISION_TARGET_NS}
        ),
        "cases": summary,
        "decision_ns": decisions,
        "notes": notes,
    }
    write_results(opts.output, result)
    print_report(summary, decisions)
    for note in notes:
        print(f"note: {note}")
    print(f"\nwrote {opts.output}")
    return 0


@contextlib.contextmanager
def _servers(environ: Mapping[str, str], token: str, tmp: Path) -> Iterator[dict[str, Server]]:
    """The gateway and both baselines, running; every one that started is stopped on exit."""
    started: list[Server] = []
    headers = {"Authorization": f"Bearer {token}"}
    try:
        for name, (app, ready_path) in SERVERS.items():
            server = Server(name, app, environ, tmp / f"{name}.log")
            started.append(server)
            server.start(ready_path, headers)
        yield {server.name: server for server in started}
    finally:
        for server in reversed(started):
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
