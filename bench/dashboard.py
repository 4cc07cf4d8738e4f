"""How fast the rollout dashboard loads with 50 endpoints and a week of per-minute stats.

    .venv/bin/python bench/dashboard.py [--duration 5 --rounds 3 --stats-days 7]

A synthetic Flask app (10 resources x 5 JSON endpoints) and its 50 Starlette twins run behind
`asgi_gateway.build_gateway`; `uvicorn bench.dashboard:app` serves them (this module is both
the benchmark and the app). `rollout_stats` is seeded with one row per minute x endpoint x
backend for `--stats-days` days (about 1M rows for 7), plus audit rows. wrk then loads the
board, its fragment and one endpoint page at c=1 and c=4, each paired with `/readyz` of the
same gateway in the same round (A B, B A, ...). Afterwards every SQL statement each page runs
is timed in the gateway, and the slow ones are re-run with EXPLAIN QUERY PLAN and with a
candidate index on a copy of the database. Results go to bench/results/dashboard.json; see
bench/endpoints.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from flask import Blueprint, Flask, jsonify
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))

from asgi_gateway import Flag, FlagSource, Gateway, Principal, build_gateway  # noqa: E402
from asgi_gateway.control.rollout import history_entry  # noqa: E402
from asgi_gateway.serving.identity import header  # noqa: E402
from asgi_gateway.tables import (  # noqa: E402
    COUNT_COLUMNS,
    RECENT_KEEP_S,
    recent_stats_table,
    stats_table,
)
from bench.endpoints import running, settle  # noqa: E402
from bench.gateway import Run, Server, run_wrk  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "dashboard.json"
TOKEN = "bench-dashboard-admin-token"
SECRET = "bench-dashboard-secret-0123456789"
RESOURCES = 10
VIEWS = (  # (view, method, path suffix): five endpoints per resource
    ("list", "GET", ""),
    ("create", "POST", ""),
    ("get", "GET", "/<int:item_id>"),
    ("update", "PATCH", "/<int:item_id>"),
    ("delete", "DELETE", "/<int:item_id>"),
)
# 20 async, 10 each of the others; shadow falls on the `list` views (shadowing a write needs a
# dry-run strategy), canary on the `get` views.
MODES = ("shadow", "async", "canary", "async", "legacy")
ENDPOINT_PAGE = "res03.get"
CASES = {  # name -> path; every case is paired with BASELINE
    "board": "/_rollout/",
    "board fragment": "/_rollout/?fragment=1",
    f"endpoint page {ENDPOINT_PAGE}": f"/_rollout/endpoints/{ENDPOINT_PAGE}",
}
BASELINE = "/readyz"
CONNECTIONS = (1, 4)
LOAD_TARGET_MS = 500.0  # "loads in well under a second", read as p99 under half a second
SQL_TRACE_PATH = "/_rollout/bench-sql"
CANDIDATE_INDEX = "CREATE INDEX ix_bench_stats_endpoint_minute ON rollout_stats (endpoint, minute)"
_ENV_DB = "BENCH_DASHBOARD_DATABASE_URL"
_ENV_FLAGS = "BENCH_DASHBOARD_FLAGS_FILE"


# -- the app under test -----------------------------------------------------------------------


def endpoint_ids() -> list[str]:
    """The 50 endpoint ids, `resNN.view`."""
    return [f"res{r:02d}.{view}" for r in range(RESOURCES) for view, _, _ in VIEWS]


def declared_flags() -> dict[str, Flag]:
    """The rollout the flag file declares: 20 async, 10 canary, 10 shadow, 10 legacy."""
    flags = {}
    for n, endpoint in enumerate(endpoint_ids()):
        mode = MODES[n % len(MODES)]
        percent = float(5 * (1 + n % 10)) if mode == "canary" else 0.0
        flags[endpoint] = Flag(endpoint, mode=mode, percent=percent)  # type: ignore[arg-type]
    return flags


def flag_yaml() -> str:
    lines = ["version: 1", "routes:"]
    for endpoint, flag in declared_flags().items():
        extra = f", percent: {flag.percent:g}" if flag.mode == "canary" else ""
        lines.append(f"  {endpoint}: {{mode: {flag.mode}{extra}}}")
    return "\n".join(lines) + "\n"


def create_flask_app() -> Flask:
    """Ten blueprints `resNN`, each with list/create/get/update/delete returning small JSON."""
    app = Flask("bench_dashboard")
    app.secret_key = SECRET
    for r in range(RESOURCES):
        blueprint = Blueprint(f"res{r:02d}", __name__)
        for view, method, suffix in VIEWS:
            blueprint.add_url_rule(
                f"/api/res{r:02d}{suffix}",
                endpoint=view,
                view_func=_flask_view(f"res{r:02d}.{view}"),
                methods=[method],
            )
        app.register_blueprint(blueprint)
    return app


def _flask_view(endpoint: str) -> Callable[..., Any]:
    def view(**params: Any) -> Any:
        return jsonify({"endpoint": endpoint, "params": params})

    view.__name__ = endpoint.replace(".", "_")
    return view


def async_routes() -> list[Route]:
    """The Starlette twins: same ids, paths and methods as the Flask views."""
    routes = []
    for r in range(RESOURCES):
        for view, method, suffix in VIEWS:
            endpoint = f"res{r:02d}.{view}"
            path = f"/api/res{r:02d}" + suffix.replace("<int:item_id>", "{item_id:int}")
            routes.append(Route(path, _twin(endpoint), methods=[method], name=endpoint))
    return routes


def _twin(endpoint: str) -> Callable[[Request], Any]:
    async def twin(request: Request) -> Response:
        return JSONResponse({"endpoint": endpoint, "params": request.path_params})

    return twin


async def authenticate(scope: dict[str, Any]) -> Principal | None:
    """The fixed bench token is an admin; anyone else is anonymous."""
    if header(scope, b"authorization") == f"Bearer {TOKEN}".encode():
        return Principal("bench-admin", is_admin=True)
    return None


class SqlTrace:
    """Wall time of every statement the gateway's engine runs, by SQL text and parameters.

    Measured around the DBAPI cursor call, so it includes the hop to aiosqlite's thread.
    """

    def __init__(self) -> None:
        self.stats: dict[str, dict[str, Any]] = {}

    def attach(self, engine: AsyncEngine) -> None:
        sync_engine = engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", self._before)
        event.listen(sync_engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        elapsed_ms = (time.perf_counter() - conn.info["bench_started"].pop()) * 1000
        values = list(params or ())
        # Keyed by the parameters too: one text serves the 1 h and the 24 h window.
        key = statement + "\0" + json.dumps(values, default=str)
        entry = self.stats.setdefault(
            key, {"sql": statement, "params": values, "count": 0, "total_ms": 0.0, "max_ms": 0.0}
        )
        entry["count"] += 1
        entry["total_ms"] += elapsed_ms
        entry["max_ms"] = max(entry["max_ms"], elapsed_ms)

    async def endpoint(self, request: Request) -> Response:
        # GET: the statements since the last DELETE, slowest total first. DELETE: reset.
        if request.method == "DELETE":
            self.stats = {}
            return Response(status_code=204)
        return JSONResponse(sorted(self.stats.values(), key=lambda e: -e["total_ms"]))


@dataclass
class _TracedFlagSource(FlagSource):
    """A FlagSource whose engine (the dashboard's only engine) reports to a SqlTrace."""

    trace: SqlTrace | None = None

    def open(self) -> AsyncEngine:
        is_new = self.engine is None
        engine = super().open()
        if is_new and self.trace is not None:
            self.trace.attach(engine)
        return engine


def create_dashboard_gateway(environ: Mapping[str, str] | None = None) -> Gateway:
    """The synthetic app behind the gateway, configured by BENCH_DASHBOARD_* variables."""
    environ = os.environ if environ is None else environ
    trace = SqlTrace()
    source = _TracedFlagSource(Path(environ[_ENV_FLAGS]), environ[_ENV_DB], trace=trace)
    return build_gateway(
        create_flask_app(),
        async_routes(),
        source,
        authenticate=authenticate,
        extra_routes=[Route(SQL_TRACE_PATH, trace.endpoint, methods=["GET", "DELETE"])],
    )


def __getattr__(name: str) -> Any:
    # `app` is built on first access (by uvicorn), so importing this module reads no environment.
    if name == "app":
        gateway = create_dashboard_gateway()
        globals()["app"] = gateway
        return gateway
    raise AttributeError(name)


# -- seeding ------------------------------------------------------------------------------------


def seed(db_path: Path, days: int, now_minute: int) -> dict[str, Any]:
    """Per-minute stats for every endpoint x backend over `days` days, and audit history.

    Async-mode endpoints with an even index get no legacy traffic, and their last flip is
    older than a week, so the board's "legacy code removable" hint has work to do.
    """
    started = time.perf_counter()
    flags = declared_flags()
    columns = [c.name for c in stats_table.columns]
    rng = random.Random(42)
    templates: dict[tuple[str, str], list[tuple[int, ...]]] = {}
    for n, endpoint in enumerate(flags):
        for backend in ("legacy", "async"):
            is_idle = backend == "legacy" and flags[endpoint].mode == "async" and n % 2 == 0
            templates[(endpoint, backend)] = [
                _counts(rng, 0 if is_idle else rng.randint(5, 120), backend) for _ in range(31)
            ]
    first = now_minute - days * 1440 + 1
    placeholders = ", ".join("?" * len(columns))
    insert = f"INSERT INTO rollout_stats ({', '.join(columns)}) VALUES ({placeholders})"
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("DELETE FROM rollout_stats")
        rows = 0
        batch: list[tuple[Any, ...]] = []
        for minute in range(first, now_minute + 1):
            for (endpoint, backend), options in templates.items():
                batch.append((minute, endpoint, backend, *options[minute % 31]))
            if len(batch) >= 50_000:
                conn.executemany(insert, batch)
                rows += len(batch)
                batch = []
        conn.executemany(insert, batch)
        rows += len(batch)
        _fill_quarters(conn)
        audits = _seed_audit(conn, flags, now_minute)
        shadow = _seed_shadow(conn, flags, first, now_minute)
        recent = _seed_recent(conn, templates, now_minute)
        progress = _seed_progress(conn, flags, now_minute)
        conn.commit()
    finally:
        conn.close()
    return {
        "stats_rows": rows,
        "audit_rows_added": audits,
        **shadow,
        "recent_stats_rows": recent,
        "progress_rows": progress,
        "days": days,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _fill_quarters(conn: sqlite3.Connection) -> None:
    """The per-quarter rows the recorder writes beside the minutes (none before they existed)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'rollout_quarter_stats'")
    if not found.fetchall():
        return
    columns = ", ".join(COUNT_COLUMNS)
    sums = ", ".join(f"sum({c})" for c in COUNT_COLUMNS)
    conn.execute("DELETE FROM rollout_quarter_stats")
    conn.execute(
        f"INSERT INTO rollout_quarter_stats (quarter, endpoint, backend, {columns}) "
        f"SELECT minute / 15, endpoint, backend, {sums} FROM rollout_stats "
        "GROUP BY minute / 15, endpoint, backend"
    )


def _counts(rng: random.Random, requests: int, backend: str) -> tuple[int, ...]:
    """One minute's counters: status classes, errors, latency sum and 10 latency buckets."""
    s5xx = sum(rng.random() < 0.004 for _ in range(requests))
    s4xx = sum(rng.random() < 0.03 for _ in range(requests))
    s3xx = 0
    s2xx = requests - s4xx - s5xx
    scale = 20.0 if backend == "legacy" else 12.0
    latencies = [rng.expovariate(1 / scale) for _ in range(requests)]
    bounds = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, float("inf"))
    buckets = [0] * len(bounds)
    for ms in latencies:
        buckets[next(i for i, b in enumerate(bounds) if ms <= b)] += 1
    return (requests, s2xx, s3xx, s4xx, s5xx, s5xx, 0, round(sum(latencies)), *buckets)


def _seed_audit(conn: sqlite3.Connection, flags: Mapping[str, Flag], now_minute: int) -> int:
    """About 20 flips per endpoint over eight days, each ending at its declared flag."""
    rng = random.Random(7)
    now = datetime.fromtimestamp(now_minute * 60, UTC)
    rows = []
    for n, (endpoint, flag) in enumerate(flags.items()):
        count = 20
        oldest = now - timedelta(days=8)
        # The last flip of even async endpoints is older than the 7-day retirement window.
        newest = now - timedelta(days=7, hours=1) if flag.mode == "async" and n % 2 == 0 else now
        times = sorted(oldest + (newest - oldest) * rng.random() for _ in range(count))
        before: dict[str, Any] | None = Flag(endpoint).to_dict()
        for i, at in enumerate(times):
            after = (
                flag.to_dict()
                if i == count - 1
                else Flag(endpoint, mode="canary", percent=float(rng.randint(1, 99))).to_dict()
            )
            rows.append(
                (
                    endpoint,
                    "ops@example.com",
                    "set",
                    json.dumps(before),
                    json.dumps(after),
                    f"bench flip {i}",
                    at.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f"),
                )
            )
            before = after
    conn.executemany(
        "INSERT INTO rollout_audit (endpoint, actor, action, before, after, reason, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return len(rows)


def _seed_shadow(
    conn: sqlite3.Connection, flags: Mapping[str, Flag], first: int, now_minute: int
) -> dict[str, int]:
    """Shadow results as the recorder writes them: every minute for shadow endpoints, and for
    canary ones over the first three days (their shadow phase); mismatch records (three an
    hour), noise paths, and a fallback now and then for canaries."""
    rng = random.Random(11)
    events: list[tuple[int, str, str, int]] = []
    mismatches: list[tuple[Any, ...]] = []
    noise: list[tuple[Any, ...]] = []
    now = datetime.fromtimestamp(now_minute * 60, UTC)
    for endpoint, flag in flags.items():
        if flag.mode not in ("shadow", "canary"):
            continue
        last = now_minute if flag.mode == "shadow" else first + 3 * 1440
        for minute in range(first, last + 1):
            matched = rng.randint(5, 60)
            events.append((minute, endpoint, "shadow_match", matched))
            if minute % 7 == 0:
                events.append((minute, endpoint, "shadow_mismatch", rng.randint(1, 3)))
            if minute % 11 == 0:
                events.append((minute, endpoint, "shadow_noise", 1))
            if flag.mode == "canary" and minute % 97 == 0:
                events.append((minute, endpoint, "fallback", 1))
            if minute % 20 == 0:
                at = datetime.fromtimestamp(minute * 60 + rng.randint(0, 59), UTC)
                mismatches.append(
                    (
                        endpoint,
                        minute,
                        at.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f"),
                        "GET",
                        "/api/" + endpoint.split(".")[0],
                        f"page={rng.randint(1, 9)}",
                        200,
                        200,
                        json.dumps(
                            [
                                {"path": "$.items[0].title", "legacy": '"a"', "async": '"b"'},
                                {"path": "$.meta.total", "legacy": "10", "async": "11"},
                            ]
                        ),
                    )
                )
        for path in ("$.meta.generated_at", "$.meta.request_id"):
            noise.append((endpoint, path, now.replace(tzinfo=None).isoformat(" "), 40))
    conn.executemany("INSERT INTO rollout_events VALUES (?, ?, ?, ?)", events)
    conn.executemany(
        "INSERT INTO rollout_mismatches (endpoint, minute, at, method, path, query, "
        "status_legacy, status_async, diffs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        mismatches,
    )
    conn.executemany("INSERT INTO rollout_noise VALUES (?, ?, ?, ?)", noise)
    return {"event_rows": len(events), "mismatch_rows": len(mismatches)}


def _seed_recent(
    conn: sqlite3.Connection,
    templates: Mapping[tuple[str, str], list[tuple[int, ...]]],
    now_minute: int,
) -> int:
    """Per-second rows of the last RECENT_KEEP_S (the guard's windows), one a second per side."""
    columns = [c.name for c in recent_stats_table.columns]
    insert = (
        f"INSERT INTO rollout_recent_stats ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )
    rows = []
    now_s = now_minute * 60
    for (endpoint, backend), options in templates.items():
        counts = options[0]
        if not counts[0]:
            continue
        one = (1, 1, 0, 0, 0, 0, 0, max(1, counts[7] // counts[0]), *_one_bucket(counts[8:]))
        for second in range(now_s - RECENT_KEEP_S, now_s):
            rows.append((second, endpoint, backend, *one))
    conn.executemany(insert, rows)
    return len(rows)


def _one_bucket(buckets: tuple[int, ...]) -> tuple[int, ...]:
    """One request in the most common latency bucket of a minute."""
    top = max(range(len(buckets)), key=lambda i: buckets[i])
    return tuple(int(i == top) for i in range(len(buckets)))


def _seed_progress(conn: sqlite3.Connection, flags: Mapping[str, Flag], now_minute: int) -> int:
    """A rollout row for every canary and shadow endpoint, in every state, with history."""
    rng = random.Random(5)
    now = datetime.fromtimestamp(now_minute * 60, UTC)
    states = ("running", "waiting", "paused", "running", "done", "aborted")
    rows = []
    for n, (endpoint, flag) in enumerate(
        (e, f) for e, f in flags.items() if f.mode in ("canary", "shadow")
    ):
        state = states[n % len(states)]
        steps = [1.0, 5.0, 25.0, 50.0, 100.0]
        index = None if flag.mode == "shadow" else min(n % 4, 3)
        started = now - timedelta(hours=rng.randint(2, 48))
        history = [
            history_entry(
                started + timedelta(minutes=10 * i),
                ("start", "step", "wait", "step")[min(i, 3)],
                actor="rollout" if i else "ops@example.com",
                reason=f"bench step {i}",
                before="canary 1%",
                after="canary 5%",
            )
            for i in range(30)
        ]
        analysis = {
            "at": now.isoformat(timespec="seconds"),
            "window_s": 600.0,
            "mode": flag.mode,
            "async_requests": 400,
            "async_errors": 1,
            "error_rate": 0.0025,
            "legacy_requests": 1200,
            "async_p95_ms": 25.0,
            "legacy_p95_ms": 50.0,
            "latency_ratio": 0.5,
            "compared": 0,
            "mismatched": 0,
            "mismatch_rate": None,
            "fallbacks": 0,
            "verdict": "healthy",
            "reason": "within every threshold",
        }
        is_open = state in ("running", "waiting", "paused")
        rows.append(
            (
                endpoint,
                state,
                json.dumps(steps),
                3600.0,  # no step falls within a run
                "shadow",
                3600.0,
                index,
                _naive(now - timedelta(minutes=3)) if is_open else None,
                _naive(now + timedelta(hours=1)) if state in ("running", "waiting") else None,
                f"bench rollout {state}",
                "ops@example.com",
                _naive(started),
                n % 3 != 0,
                None if n % 3 else "shadow disagreed: 2.1% mismatches",
                json.dumps(analysis),
                json.dumps(history),
                len(history),
                _naive(now),
            )
        )
    conn.executemany(
        f"INSERT INTO rollout_progress VALUES ({', '.join('?' * 18)})",
        rows,
    )
    return len(rows)


def _naive(at: datetime) -> str:
    return at.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


# -- load ---------------------------------------------------------------------------------------


def measure(
    server: Server, opts: argparse.Namespace, old: Server | None = None
) -> dict[str, dict[str, dict[str, list[Run]]]]:
    """Per case and concurrency, `rounds` of (case, baseline[, the case on `old`]), the order
    rotating each round."""
    roles = ["page", "baseline", *(["old"] if old is not None else [])]
    runs: dict[str, dict[str, dict[str, list[Run]]]] = {
        name: {f"c={c}": {role: [] for role in roles} for c in CONNECTIONS} for name in CASES
    }
    for path in (*CASES.values(), BASELINE):
        run_wrk(server, path, TOKEN, _wrk_opts(4), opts.warmup)
    if old is not None:
        for path in CASES.values():
            run_wrk(old, path, TOKEN, _wrk_opts(4), opts.warmup)
    for n in range(opts.rounds):
        for name, path in CASES.items():
            for connections in CONNECTIONS:
                order = [("page", server, path), ("baseline", server, BASELINE)]
                if old is not None:
                    order.append(("old", old, path))
                shift = n % len(order)
                for role, target, url in order[shift:] + order[:shift]:
                    settle(server, *([old] if old is not None else []))
                    run = run_wrk(target, url, TOKEN, _wrk_opts(connections), opts.duration)
                    runs[name][f"c={connections}"][role].append(run)
                    print(
                        f"  round {n + 1} {name:<28} c={connections} {role:<8} "
                        f"{run.rps:8.1f} req/s  p50 {run.p50_ms:8.2f} ms  "
                        f"p99 {run.p99_ms:8.2f} ms  n={run.requests} "
                        f"errors {run.non_2xx}/{run.socket_errors}",
                        flush=True,
                    )
    return runs


def _wrk_opts(connections: int) -> argparse.Namespace:
    return argparse.Namespace(connections=connections, threads=min(2, connections))


def summarize(runs: Mapping[str, Mapping[str, Mapping[str, list[Run]]]]) -> dict[str, Any]:
    """Medians of each side and of the per-round ratios page / baseline (and page / old)."""
    summary: dict[str, Any] = {}
    for name, by_connections in runs.items():
        for connections, sides in by_connections.items():
            # A run that finished no request (a page slower than the run) has no latency.
            pairs = [
                (p, b)
                for p, b in zip(sides["page"], sides["baseline"], strict=True)
                if p.requests and b.requests
            ]
            page, base = _side(sides["page"]), _side(sides["baseline"])
            entry = {
                "page": page,
                "baseline": base,
                "p50_ratio": _median([p.p50_ms / b.p50_ms for p, b in pairs]),
                "p99_ratio": _median([p.p99_ms / b.p99_ms for p, b in pairs]),
                "rps_ratio": _median([p.rps / b.rps for p, b in pairs]),
                "p50_ratio_rounds": [p.p50_ms / b.p50_ms for p, b in pairs],
                "under_target": page["p99_ms"] is not None and page["p99_ms"] < LOAD_TARGET_MS,
            }
            if "old" in sides:
                olds = [
                    (p, o)
                    for p, o in zip(sides["page"], sides["old"], strict=True)
                    if p.requests and o.requests
                ]
                entry["old"] = _side(sides["old"])
                entry["p50_vs_old"] = _median([p.p50_ms / o.p50_ms for p, o in olds])
                entry["p50_vs_old_rounds"] = [p.p50_ms / o.p50_ms for p, o in olds]
            summary[f"{name} {connections}"] = entry
    return summary


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _side(runs: list[Run]) -> dict[str, Any]:
    done = [r for r in runs if r.requests]
    return {
        "rps": statistics.median(r.rps for r in runs),
        "p50_ms": _median([r.p50_ms for r in done]),
        "p99_ms": _median([r.p99_ms for r in done]),
        # The server's CPU (every thread, the guard's ticks included) per request answered.
        "cpu_ms": _median([r.cpu_ms_per_request for r in done if r.cpu_ms_per_request]),
        "requests": sum(r.requests for r in runs),
        "non_2xx": sum(r.non_2xx for r in runs),
        "socket_errors": sum(r.socket_errors for r in runs),
        "runs": [asdict(r) for r in runs],
    }


def first_loads(server: Server) -> dict[str, float]:
    """Wall ms of one request per page right after start-up (cold caches)."""
    timings = {}
    for name, path in {**CASES, "baseline": BASELINE}.items():
        started = time.perf_counter()
        response = httpx.get(server.url + path, headers=_auth(), timeout=60)
        timings[name] = round((time.perf_counter() - started) * 1000, 1)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
    return timings


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


# -- SQL profile --------------------------------------------------------------------------------


def trace_queries(server: Server, loads: int) -> dict[str, list[dict[str, Any]]]:
    """Per page: every statement its loads ran (count, total and max ms), via the SQL trace."""
    traced = {}
    for name, path in CASES.items():
        httpx.delete(server.url + SQL_TRACE_PATH, timeout=10).raise_for_status()
        for _ in range(loads):
            httpx.get(server.url + path, headers=_auth(), timeout=60).raise_for_status()
        statements = httpx.get(server.url + SQL_TRACE_PATH, timeout=10).json()
        for entry in statements:
            entry["mean_ms"] = round(entry["total_ms"] / entry["count"], 2)
            entry["per_load"] = entry["count"] / loads
        traced[name] = statements
    return traced


def explain_slow(
    db_path: Path,
    work_dir: Path,
    traced: Mapping[str, list[dict[str, Any]]],
    slow_ms: float,
    now_minute: int,
) -> list[dict[str, Any]]:
    """Each distinct statement slower than `slow_ms` in the trace, re-run outside the server.

    For each: best-of-3 ms and query plan as the app runs it, then under each what-if of
    WHAT_IFS, each on a fresh copy of the database.
    """
    slow: dict[str, dict[str, Any]] = {}
    for page, statements in traced.items():
        for entry in statements:
            if entry["mean_ms"] >= slow_ms:
                found = slow.setdefault(
                    entry["sql"] + "\0" + json.dumps(entry["params"], default=str),
                    {
                        "label": _label(entry["sql"], entry["params"], now_minute),
                        "sql": " ".join(entry["sql"].split()),
                        "params": entry["params"],
                        "pages": [],
                        "traced_mean_ms": {},
                    },
                )
                if page not in found["pages"]:
                    found["pages"].append(page)
                found["traced_mean_ms"][page] = entry["mean_ms"]
    if not slow:
        return []
    for name, ddl, rewrite in WHAT_IFS:
        copy = work_dir / "explain.db"
        shutil.copy(db_path, copy)
        conn = sqlite3.connect(copy)
        try:
            if ddl:
                conn.execute(ddl)
            conn.execute("ANALYZE")
            for entry in slow.values():
                sql: str | None = entry["sql"]
                if rewrite is not None:
                    sql = rewrite(entry["sql"], entry["label"])
                if sql is None:
                    continue
                ms, plan = _time_and_plan(conn, sql, entry["params"])
                entry.setdefault("runs", {})[name] = {"ms": ms, "plan": plan}
                if rewrite is not None:
                    entry["runs"][name]["sql"] = sql
        finally:
            conn.close()
            copy.unlink()
    return sorted(slow.values(), key=lambda e: -e["runs"]["as is"]["ms"])


def _narrow_totals(sql: str, label: str) -> str | None:
    """The board's 7-day totals (the retire hint) summing only the requests and errors it reads.

    `sql` has its whitespace collapsed; None for every other statement: the 1 h and 24 h
    totals also feed latency percentiles, so they need every bucket column.
    """
    select, found, rest = sql.partition(" FROM rollout_stats")
    if not found or not select.startswith(_TOTALS_PREFIX) or not label.startswith("totals last 7d"):
        return None
    return (
        f"{_TOTALS_PREFIX}, sum(rollout_stats.requests), sum(rollout_stats.errors)"
        f" FROM rollout_stats{rest}"
    )


_TOTALS_PREFIX = "SELECT rollout_stats.endpoint, rollout_stats.backend"
# (name, DDL run on a fresh copy, rewrite of the statement or None to run it unchanged)
WHAT_IFS: tuple[tuple[str, str | None, Callable[[str, str], str | None] | None], ...] = (
    ("as is", None, None),
    ("index (endpoint, minute)", CANDIDATE_INDEX, None),
    (
        "covering index, totals narrowed to requests and errors",
        "CREATE INDEX ix_bench_stats_covering "
        "ON rollout_stats (endpoint, backend, minute, requests, errors)",
        _narrow_totals,
    ),
)


def _label(sql: str, params: list[Any], now_minute: int) -> str:
    """A short name: which query, over which window, for how many endpoints."""
    sql = " ".join(sql.split())
    if " AS t," in sql:
        kind = "series"
    elif sql.startswith(_TOTALS_PREFIX):
        kind = "totals"
    else:
        return "query of " + sql.split(" FROM ", 1)[-1].split()[0]
    minutes = [p for p in params if isinstance(p, int) and p > 1_000_000]
    window = f" last {_span(now_minute - minutes[0])}" if minutes else ""
    names = sum(isinstance(p, str) for p in params)
    return f"{kind}{window}, {names or 'all'} endpoint{'s' if names != 1 else ''}"


def _span(minutes: int) -> str:
    if minutes >= 1440 - 5:
        return f"{round(minutes / 1440)}d"
    return f"{round(minutes / 60)}h" if minutes >= 55 else f"{minutes}min"


def _time_and_plan(
    conn: sqlite3.Connection, sql: str, params: list[Any]
) -> tuple[float, list[str]]:
    plan = [row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        conn.execute(sql, params).fetchall()
        best = min(best, (time.perf_counter() - started) * 1000)
    return round(best, 1), plan


# -- report -------------------------------------------------------------------------------------


def print_report(summary: Mapping[str, Any], cold: Mapping[str, float]) -> None:
    has_old = any("old" in s for s in summary.values())
    extra = f" {'old p50':>9} {'new/old':>8} {'old cpu':>8}" if has_old else ""
    print(
        f"\n{'case':<40} {'p50 ms':>9} {'p99 ms':>9} {'cpu ms':>7} {'n':>5} {'readyz p50':>10} "
        f"{'p50 ratio':>10} {'p99 ratio':>10}{extra}"
    )
    for name, s in summary.items():
        page, base = s["page"], s["baseline"]
        mark = "" if s["under_target"] else f"  MISSED (p99 >= {LOAD_TARGET_MS:.0f} ms)"
        versus = (
            f" {_fmt(s['old']['p50_ms'])} {_fmt(s['p50_vs_old'], 8, 2)} "
            f"{_fmt(s['old']['cpu_ms'], 8)}"
            if has_old
            else ""
        )
        print(
            f"{name:<40} {_fmt(page['p50_ms'])} {_fmt(page['p99_ms'])} "
            f"{_fmt(page['cpu_ms'], 7)} {page['requests']:5d} "
            f"{_fmt(base['p50_ms'], 10, 2)} {_fmt(s['p50_ratio'], 10)} "
            f"{_fmt(s['p99_ratio'], 10)}{versus}{mark}"
        )
    print("first load after start (ms): " + ", ".join(f"{k} {v}" for k, v in cold.items()))


def _fmt(value: float | None, width: int = 9, digits: int = 1) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:{width}.{digits}f}"


def print_sql(
    traced: Mapping[str, list[dict[str, Any]]], explained: list[dict[str, Any]], loads: int
) -> None:
    for name, statements in traced.items():
        total = sum(e["total_ms"] for e in statements) / loads
        print(f"\nSQL of {name}: {total:.1f} ms a load in {len(statements)} distinct statements")
        for entry in statements[:5]:
            print(
                f"  {entry['mean_ms']:8.2f} ms x{entry['per_load']:g}  "
                f"{' '.join(entry['sql'].split())[:110]}"
            )
    for entry in explained:
        print(f"\nslow statement: {entry['label']} (pages: {', '.join(entry['pages'])})")
        print(f"  {entry['sql'][:200]}")
        for name, run in entry["runs"].items():
            print(f"  {run['ms']:8.1f} ms  {name}: {'; '.join(run['plan'])}")


def _export(ref: str, into: Path) -> Path:
    """The gateway package as of git `ref`, beside this checkout's `bench` (for --against)."""
    into.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "asgi_gateway"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    # A copy, not a link: the module puts its own checkout first on sys.path.
    shutil.copytree(ROOT / "bench", into / "bench", ignore=shutil.ignore_patterns("results"))
    return into


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="page/baseline pairs per case")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per URL")
    parser.add_argument("--stats-days", type=int, default=7, help="days of per-minute stats")
    parser.add_argument("--trace-loads", type=int, default=3, help="loads per page, SQL trace")
    parser.add_argument("--slow-ms", type=float, default=5.0, help="explain statements >= this")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON")
    parser.add_argument(
        "--against",
        metavar="REF",
        help="also serve a copy of the database with the gateway code of this git ref "
        "(e.g. main), measured in the same rounds",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    load_before = os.getloadavg()
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="aa-bench-dashboard-") as tmp_dir:
        tmp = Path(tmp_dir)
        db_path = tmp / "dashboard.db"
        (tmp / "flags.yaml").write_text(flag_yaml())
        environ = {
            _ENV_DB: f"sqlite+aiosqlite:///{db_path}",
            _ENV_FLAGS: str(tmp / "flags.yaml"),
        }

        def server() -> Server:
            return Server("dashboard", "bench.dashboard:app", environ, tmp / "gw.log")

        # A first start creates the gateway's tables and applies the flag file.
        with running([(server(), BASELINE)], TOKEN):
            pass
        print(f"seeding {opts.stats_days} days of per-minute stats ...", flush=True)
        now_minute = int(time.time() // 60)
        seeded = seed(db_path, opts.stats_days, now_minute)
        print(f"  {seeded}", flush=True)
        gateway = server()
        servers = [(gateway, BASELINE)]
        old = None
        if opts.against:
            old = Server(
                f"dashboard@{opts.against}",
                "bench.dashboard:app",
                {**environ, _ENV_DB: f"sqlite+aiosqlite:///{tmp / 'old.db'}"},
                tmp / "old.log",
            )
            old.cwd = _export(opts.against, tmp / "old")
            shutil.copy(db_path, tmp / "old.db")
            servers.append((old, BASELINE))
        with running(servers, TOKEN):
            cold = first_loads(gateway)
            runs = measure(gateway, opts, old)
            traced = trace_queries(gateway, opts.trace_loads)
        # The trace ran minutes after seeding: label its windows against the clock now.
        explained = explain_slow(db_path, tmp, traced, opts.slow_ms, int(time.time() // 60))
    summary = summarize(runs)
    for name, by_connections in runs.items():
        for connections, sides in by_connections.items():
            empty = sum(not r.requests for r in sides["page"])
            if empty:
                notes.append(
                    f"{name} {connections}: {empty} of {len(sides['page'])} runs finished no "
                    f"request within {opts.duration} s (left out of the medians)"
                )
    for name, s in summary.items():
        for role in ("page", "baseline"):
            if s[role]["non_2xx"] or s[role]["socket_errors"]:
                notes.append(
                    f"{name} {role}: {s[role]['non_2xx']} non-2xx, "
                    f"{s[role]['socket_errors']} socket errors"
                )
    result = {
        "meta": {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
            "against": opts.against,
            "started": started,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "endpoints": len(endpoint_ids()),
            "modes": {m: sum(f.mode == m for f in declared_flags().values()) for m in set(MODES)},
            "seeded": seeded,
            "target_ms": LOAD_TARGET_MS,
        },
        "first_load_ms": cold,
        "cases": summary,
        "sql": traced,
        "slow_statements": explained,
        "notes": notes,
    }
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(result, indent=2) + "\n")
    print_report(summary, cold)
    print_sql(traced, explained, opts.trace_loads)
    for note in notes:
        print(f"note: {note}")
    print(f"\nwrote {opts.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
