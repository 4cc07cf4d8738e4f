"""Does each gateway worker's memory stay flat under a long mixed load?

    .venv/bin/python bench/soak.py [--duration 300 --workers 2 --threads 4 --sample-s 5]

The real app (`asgi_gateway.app:app`, demo data on a SQLite file) runs on `--workers` uvicorn
workers. Driver threads send a weighted mix of reads and
writes on legacy and async endpoints, a canary, shadowed reads and a shadowed write (dry run);
a flipper moves `appointments.list` between async, canary and legacy every few seconds through
the admin API; the dashboard's board and an endpoint page are loaded every few seconds. Every
`--sample-s` each worker's resident set (VmRSS from /proc) is sampled. Growth is the mean of
the last `--tail-s` seconds over the mean of the first `--tail-s` after `--warmup-s`; the target
is at most 5 %. Results go to bench/results/soak.json; see bench/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))

from asgi_gateway.tables import COUNT_COLUMNS  # noqa: E402
from bench.gateway import START_TIMEOUT_S, Server, prepare  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "soak.json"
TARGET_GROWTH_PCT = 5.0
FLAGS_YAML = """\
version: 1
defaults:
  sticky_by: random
routes:
  auth.me: {mode: async}
  calendars.list: {mode: async}
  calendars.get: {mode: legacy}
  appointments.list: {mode: canary, percent: 50, fallback: true}
  appointments.get: {mode: shadow, compare: {ignore: ["$.updated_at"]}}
  appointments.create: {mode: canary, percent: 50}
  appointments.update:
    mode: shadow
    shadow: {writes: dry_run}
    compare: {ignore: ["$.updated_at"]}
  archive_configs.list: {mode: shadow}
"""
FLIPS = (("async", None), ("canary", 50), ("legacy", None))
APP = "asgi_gateway.app:app"
TRACED_APP = "bench._soak_app:app"  # the same, with tracemalloc (--tracemalloc)

Call = Callable[[httpx.Client], httpx.Response]


@dataclass
class Tally:
    """What the driver threads saw (appended to from several threads, under a lock)."""

    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    served_by: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, name: str, response: httpx.Response) -> None:
        backend = response.headers.get("x-served-by", "none")
        with self.lock:
            by_status = self.statuses.setdefault(name, {})
            by_status[response.status_code] = by_status.get(response.status_code, 0) + 1
            self.served_by[backend] = self.served_by.get(backend, 0) + 1
            if response.status_code >= 500 and len(self.failures) < 50:
                self.failures.append(f"{name}: {response.status_code} {response.text[:200]!r}")

    def total(self) -> int:
        with self.lock:
            return sum(sum(s.values()) for s in self.statuses.values())


class Gateway(Server):
    """`uvicorn <app> --workers N` (bench.gateway.Server, with workers)."""

    def __init__(
        self, environ: dict[str, str], workers: int, log_path: Path, app: str = APP
    ) -> None:
        super().__init__("gateway", app, environ, log_path)
        self.args += ["--workers", str(workers)]
        self.workers = workers

    def start_all(self, token: str) -> None:
        """Start, and wait until the gateway answers and every worker is up."""
        self.start("/readyz", {"Authorization": f"Bearer {token}"})
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(self.worker_pids()) < self.workers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway workers not up; see {self.log_path}")
            time.sleep(0.2)

    def worker_pids(self) -> list[int]:
        """The worker processes (children of uvicorn's supervisor), from /proc."""
        if self.proc is None:
            return []
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return sorted(int(pid) for pid in children.split() if _is_worker(int(pid)))

    def exit_code(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None


def _is_worker(pid: int) -> bool:
    # uvicorn spawns its workers through multiprocessing, which also starts a resource tracker.
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"multiprocessing.spawn" in command


def rss_mb(pid: int) -> float | None:
    """Resident set size of `pid` in MiB (VmRSS), None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


# -- traffic ------------------------------------------------------------------------------------


def arrange(client: httpx.Client) -> dict[str, int]:
    """A source and an archive calendar, a few appointments and an archive configuration."""
    ids: dict[str, int] = {}
    for role in ("source", "archive"):
        response = client.post("/api/calendars", json={"name": f"soak {role}", "role": role})
        response.raise_for_status()
        ids[role] = response.json()["id"]
    for n in range(5):
        response = client.post("/api/appointments", json=appointment(ids["source"], n))
        response.raise_for_status()
        ids["appointment"] = response.json()["id"]
    response = client.post(
        "/api/archive-configs",
        json={
            "name": "soak",
            "source_calendar_id": ids["source"],
            "archive_calendar_id": ids["archive"],
        },
    )
    response.raise_for_status()
    ids["config"] = response.json()["id"]
    return ids


def appointment(calendar_id: int, n: int) -> dict[str, object]:
    day, hour = divmod(n % 560, 20)
    return {
        "calendar_id": calendar_id,
        "subject": f"soak {n}",
        "start": f"2024-03-{1 + day:02d}T{hour:02d}:00:00Z",
        "end": f"2024-03-{1 + day:02d}T{hour:02d}:30:00Z",
    }


def mix(ids: dict[str, int]) -> list[tuple[str, int, Call]]:
    """(name, weight, call) of each kind of request: reads and writes on both backends."""
    source, counter = ids["source"], itertools.count(1000)
    created: deque[int] = deque()
    window = "start=2024-03-01&end=2024-03-31"

    def create(c: httpx.Client) -> httpx.Response:
        response = c.post("/api/appointments", json=appointment(source, next(counter)))
        if response.status_code == 201:
            created.append(response.json()["id"])
        return response

    def delete(c: httpx.Client) -> httpx.Response:
        # Keeps the calendar from growing without bound: every create is deleted later.
        try:
            victim = created.popleft() if len(created) > 20 else None
        except IndexError:  # another thread took the last one
            victim = None
        if victim is None:
            return c.get("/healthz")
        return c.delete(f"/api/appointments/{victim}")

    return [
        (
            "appointments.list (canary, flipped)",
            6,
            lambda c: c.get(f"/api/appointments?calendar_id={source}&{window}&per_page=20"),
        ),
        (
            "appointments.get (shadow)",
            4,
            lambda c: c.get(f"/api/appointments/{ids['appointment']}"),
        ),
        ("appointments.create (canary)", 2, create),
        ("appointments.delete (legacy)", 2, delete),
        (
            "appointments.update (shadow, dry run)",
            1,
            lambda c: c.patch(
                f"/api/appointments/{ids['appointment']}",
                json={"subject": f"soak {random.random():.6f}"},
            ),
        ),
        ("calendars.list (async)", 3, lambda c: c.get("/api/calendars")),
        ("calendars.get (legacy)", 3, lambda c: c.get(f"/api/calendars/{source}")),
        ("archive_configs.list (shadow)", 2, lambda c: c.get("/api/archive-configs")),
        ("auth.me (async)", 2, lambda c: c.get("/api/me")),
        ("page /appointments (legacy)", 1, lambda c: c.get(f"/appointments?calendar_id={source}")),
        ("healthz", 1, lambda c: c.get("/healthz")),
    ]


def drive(
    url: str,
    token: str,
    calls: list[tuple[str, int, Call]],
    tally: Tally,
    seed: int,
    stop: threading.Event,
) -> None:
    rng = random.Random(seed)
    names = [name for name, _, _ in calls]
    weights = [weight for _, weight, _ in calls]
    by_name = {name: call for name, _, call in calls}
    headers = {"Authorization": f"Bearer {token}"}
    client = httpx.Client(base_url=url, headers=headers, timeout=30)
    try:
        for n in itertools.count():
            if stop.is_set():
                return
            if n % 50 == 49:  # fresh connections too, landing on either worker
                client.close()
                client = httpx.Client(base_url=url, headers=headers, timeout=30)
            name = rng.choices(names, weights)[0]
            try:
                tally.note(name, by_name[name](client))
            except httpx.HTTPError as exc:
                with tally.lock:
                    tally.failures.append(f"{name}: {type(exc).__name__}: {exc}")
    finally:
        client.close()


def operate(url: str, token: str, tally: Tally, every_s: float, stop: threading.Event) -> None:
    """Flip appointments.list around, and look at the dashboard, as an operator would."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for mode, percent in itertools.cycle(FLIPS):
            if stop.wait(every_s):
                return
            body: dict[str, object] = {"mode": mode, "reason": f"soak flip to {mode}"}
            if percent is not None:
                body["percent"] = percent
            try:
                tally.note("flip", client.patch("/_rollout/api/flags/appointments.list", json=body))
                tally.note("dashboard board", client.get("/_rollout/"))
                tally.note(
                    "dashboard endpoint page", client.get("/_rollout/endpoints/appointments.get")
                )
            except httpx.HTTPError as exc:
                with tally.lock:
                    tally.failures.append(f"operator: {type(exc).__name__}: {exc}")


# -- the run ------------------------------------------------------------------------------------


def seed_history(database: Path, days: int) -> int:
    """`days` of per-minute request stats (and their quarters) for the mix's endpoints, as a
    gateway that has served for a while holds them: a database of a realistic size, whose
    pages the workers' SQLite caches fill during the warm-up, not during the measurement."""
    now_minute = int(time.time() // 60) - 1
    endpoints = [
        "appointments.list",
        "appointments.get",
        "appointments.create",
        "appointments.update",
        "appointments.delete",
        "calendars.list",
        "calendars.get",
        "archive_configs.list",
        "auth.me",
    ]
    columns = ["minute", "endpoint", "backend", *COUNT_COLUMNS]
    counts = dict.fromkeys(COUNT_COLUMNS, 0)
    counts.update(requests=30, s2xx=30, latency_ms_sum=300, le_10=20, le_25=10)
    rows = [
        (minute, endpoint, backend, *counts.values())
        for minute in range(now_minute - days * 1440, now_minute - 60)
        for endpoint in endpoints
        for backend in ("legacy", "async")
    ]
    marks = ", ".join("?" * len(columns))
    quarter_columns = ", ".join(COUNT_COLUMNS)
    sums = ", ".join(f"sum({c})" for c in COUNT_COLUMNS)
    with sqlite3.connect(database, timeout=30) as db:
        db.executemany(f"INSERT INTO rollout_stats ({', '.join(columns)}) VALUES ({marks})", rows)
        db.execute(
            f"INSERT INTO rollout_quarter_stats (quarter, endpoint, backend, {quarter_columns}) "
            f"SELECT minute / 15, endpoint, backend, {sums} FROM rollout_stats "
            f"WHERE minute < ? GROUP BY minute / 15, endpoint, backend",
            (now_minute - 60,),
        )
    return len(rows)


def sample_loop(
    gateway: Gateway, tally: Tally, opts: argparse.Namespace, started: float
) -> list[dict[str, Any]]:
    """Every `--sample-s` until `--duration`: each worker's RSS and the requests so far (and,
    with --tracemalloc, every worker's snapshot after the warm-up and at the end)."""
    curve = []
    snapped = False
    for n in itertools.count():
        due = started + n * opts.sample_s
        if opts.tracemalloc and not snapped and due - started >= opts.warmup_s:
            snap(gateway, "warm")
            snapped = True
        if due - started > opts.duration:
            if opts.tracemalloc:
                snap(gateway, "end")
            return curve
        time.sleep(max(0.0, due - time.monotonic()))
        pids = gateway.worker_pids()
        point = {
            "t_s": round(time.monotonic() - started, 1),
            "requests": tally.total(),
            "rss_mb": {str(pid): _round(rss_mb(pid)) for pid in pids},
            "database_mb": _round(database_mb(opts.database_path)),
        }
        curve.append(point)
        print(_row(point, pids), flush=True)


def snap(gateway: Gateway, name: str) -> None:
    """A tracemalloc snapshot of every worker: new connections until each has answered."""
    pids = set(gateway.worker_pids())
    seen: set[int] = set()
    for _ in range(200):
        if seen >= pids:
            return
        response = httpx.get(f"{gateway.url}/_bench/tracemalloc?{name}", timeout=120)
        seen.add(response.json()["pid"])
    print(f"note: no {name} snapshot from workers {sorted(pids - seen)}")


def leak_report(snapshots: Path, frames: int = 25) -> dict[str, list[str]]:
    """Per worker: the allocation sites that grew most from the warm snapshot to the end."""
    report = {}
    for warm in sorted(snapshots.glob("*-warm.tracemalloc")):
        pid = warm.name.split("-")[0]
        end = snapshots / f"{pid}-end.tracemalloc"
        if not end.exists():
            continue
        ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
        older = tracemalloc.Snapshot.load(str(warm)).filter_traces(ignore)
        newer = tracemalloc.Snapshot.load(str(end)).filter_traces(ignore)
        lines = []
        for stat in newer.compare_to(older, "traceback")[:frames]:
            where = " <- ".join(
                f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno}"
                for f in stat.traceback[:6]
            )
            lines.append(f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {where}")
        report[pid] = lines
    return report


def database_mb(path: Path) -> float:
    """Size of the SQLite file and its write-ahead log, in MiB."""
    files = (path, path.with_name(path.name + "-wal"))
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _row(point: dict[str, Any], pids: list[int]) -> str:
    cells = "  ".join(f"{point['rss_mb'].get(str(pid)) or 0:8.1f}" for pid in pids)
    return (
        f"{point['t_s']:7.1f} s  {point['requests']:8d} req  {cells}"
        f"    database {point['database_mb']:6.1f}"
    )


def growth(curve: list[dict[str, Any]], opts: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Per worker: RSS after warm-up, at the end, the peak, and the growth in percent."""
    workers: dict[str, dict[str, Any]] = {}
    pids = {pid for point in curve for pid in point["rss_mb"]}
    end = curve[-1]["t_s"] if curve else 0.0
    for pid in sorted(pids):
        series = [(p["t_s"], p["rss_mb"].get(pid)) for p in curve]
        values = [(t, v) for t, v in series if v is not None]
        warm = [v for t, v in values if opts.warmup_s <= t < opts.warmup_s + opts.tail_s]
        tail = [v for t, v in values if t > end - opts.tail_s]
        if not warm or not tail:
            continue
        after_warmup, at_end = statistics.mean(warm), statistics.mean(tail)
        workers[pid] = {
            "start_mb": values[0][1],
            "after_warmup_mb": round(after_warmup, 1),
            "end_mb": round(at_end, 1),
            "peak_mb": max(v for _, v in values),
            "growth_pct": round((at_end - after_warmup) / after_warmup * 100, 2),
            "within_target": (at_end - after_warmup) / after_warmup * 100 <= TARGET_GROWTH_PCT,
        }
    return workers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="driver threads")
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--warmup-s", type=float, default=60.0, help="warm-up left out")
    parser.add_argument("--tail-s", type=float, default=30.0, help="seconds averaged per end")
    parser.add_argument("--flip-s", type=float, default=5.0, help="seconds between flips")
    parser.add_argument(
        "--stats-days",
        type=int,
        default=2,
        help="days of stored per-minute stats before the load starts (0: a fresh database)",
    )
    parser.add_argument(
        "--without-dry-runs",
        action="store_true",
        help="leave the shadowed write out (on SQLite each one copies the database into memory)",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="serve bench._soak_app (tracemalloc on) and report what grew after the warm-up",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="aa-bench-soak-") as tmp_dir:
        tmp = Path(tmp_dir)
        environ, token = prepare(tmp)
        opts.database_path = tmp / "bench.db"
        (tmp / "flags.yaml").write_text(FLAGS_YAML)
        if opts.tracemalloc:
            environ["BENCH_SOAK_SNAPSHOTS"] = str(tmp)
        gateway = Gateway(
            environ, opts.workers, tmp / "gateway.log", TRACED_APP if opts.tracemalloc else APP
        )
        tally = Tally()
        stop = threading.Event()
        try:
            gateway.start_all(token)
            with httpx.Client(
                base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            ) as client:
                ids = arrange(client)
            if opts.stats_days:
                print(f"stored {seed_history(opts.database_path, opts.stats_days)} stats rows")
            calls = mix(ids)
            if opts.without_dry_runs:
                calls = [c for c in calls if "dry run" not in c[0]]
            threads = [
                threading.Thread(
                    target=drive, args=(gateway.url, token, calls, tally, seed, stop), daemon=True
                )
                for seed in range(opts.threads)
            ]
            threads.append(
                threading.Thread(
                    target=operate, args=(gateway.url, token, tally, opts.flip_s, stop), daemon=True
                )
            )
            print(
                f"soak: {opts.workers} workers, pids {gateway.worker_pids()}, {opts.duration:.0f} s"
            )
            print(f"{'t':>9}  {'requests':>12}  RSS MiB per worker, database MiB", flush=True)
            started = time.monotonic()
            for thread in threads:
                thread.start()
            curve = sample_loop(gateway, tally, opts, started)
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            gateway.stop()
            exit_code = gateway.exit_code()
        log = (tmp / "gateway.log").read_text(errors="replace")
        leaks = leak_report(tmp) if opts.tracemalloc else {}
    workers = growth(curve, opts)
    bad_lines = [line for line in log.splitlines() if "Traceback" in line or "ERROR" in line]
    result = {
        "meta": {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "target_growth_pct": TARGET_GROWTH_PCT,
        },
        "requests": tally.total(),
        "requests_per_s": round(tally.total() / elapsed, 1),
        "statuses": tally.statuses,
        "served_by": tally.served_by,
        "failures": tally.failures[:50],
        "server_exit_code": exit_code,
        "server_log_errors": bad_lines[:20],
        "workers": workers,
        "tracemalloc_growth": leaks,
        "curve": curve,
    }
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\n{tally.total()} requests in {elapsed:.0f} s ({result['requests_per_s']} req/s), "
        f"served by {tally.served_by}, {len(tally.failures)} failures"
    )
    print(f"{'worker':>8} {'start':>8} {'warm':>8} {'end':>8} {'peak':>8} {'growth':>8}")
    for pid, w in workers.items():
        mark = "" if w["within_target"] else f"  OVER {TARGET_GROWTH_PCT:g} %"
        print(
            f"{pid:>8} {w['start_mb']:8.1f} {w['after_warmup_mb']:8.1f} {w['end_mb']:8.1f} "
            f"{w['peak_mb']:8.1f} {w['growth_pct']:7.2f}%{mark}"
        )
    for pid, lines in leaks.items():
        print(f"\nworker {pid}: allocations that grew after the warm-up (tracemalloc)")
        for line in lines[:15]:
            print(f"  {line}")
    for line in tally.failures[:5] + bad_lines[:5]:
        print(f"note: {line}")
    print(f"wrote {opts.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
