"""What the dashboard shows: the migration board and one endpoint's page, as plain data.

Built from the flag store, the audit trail and the merged per-minute stats; rendering is
`dashboard.py`'s job.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncConnection

from asgi_gateway.control import stats
from asgi_gateway.control.analysis import format_duration
from asgi_gateway.control.charts import Line, line_chart
from asgi_gateway.control.plane import ControlPlane
from asgi_gateway.control.progress import GUARD
from asgi_gateway.control.rollout_view import rollout_views
from asgi_gateway.control.store import AuditEntry, etag
from asgi_gateway.flags import Flag, drift

_COLORS = {"legacy": "#8250df", "async": "#1a7f37", "share": "#0969da", "mismatch": "#cf222e"}
_LONG_RUN_TTL_S = 300.0


def _side(totals: stats.Totals | None, minutes: int) -> dict[str, Any]:
    if totals is None or not totals.requests:
        return {"requests": 0, "rpm": 0.0, "error_rate": None, "p50": None, "p95": None}
    return {
        "requests": totals.requests,
        "rpm": totals.requests / minutes,
        "error_rate": totals.error_rate,
        "p50": totals.percentile_ms(0.5),
        "p95": totals.percentile_ms(0.95),
    }


async def board_data(plane: ControlPlane) -> dict[str, Any]:
    """Everything the board shows, from the flag store and the merged per-minute stats."""
    store = plane.require_store()
    state = await store.load()
    last = await store.last_changes()
    now_min = int(time.time() // 60)
    days = plane.retire_after_days
    settled_before = datetime.now(UTC) - timedelta(days=days)
    candidates = sorted(
        e
        for e in plane.twins
        if plane.effective(e, state).mode == "async"
        and e in last
        and last[e].created_at <= settled_before
    )
    async with store.engine.connect() as conn:
        hour = await stats.totals(conn, now_min - 60)
        shadow_hour = await stats.shadow_summaries(conn, now_min - 60)
        long_run = await _long_run(plane, conn, candidates, now_min - days * 1440)
        points = await stats.series(conn, now_min - 60, 1)
    progress = await plane.rollouts().read_all()
    rows = []
    total_async = total_all = 0
    for endpoint in sorted(plane.endpoints):
        flag = plane.effective(endpoint, state)
        declared = plane.declared_flag(endpoint)
        legacy, asynchronous = hour.get((endpoint, "legacy")), hour.get((endpoint, "async"))
        n_legacy = legacy.requests if legacy else 0
        n_async = asynchronous.requests if asynchronous else 0
        total_async += n_async
        total_all += n_legacy + n_async
        change = last.get(endpoint)
        rows.append(
            {
                "endpoint": endpoint,
                "has_twin": endpoint in plane.twins,
                "flag": flag,
                "drift": bool(drift(flag, declared)),
                "declared": declared,
                "observed_async": n_async / (n_legacy + n_async) if n_legacy + n_async else None,
                "legacy": _side(legacy, 60),
                "async": _side(asynchronous, 60),
                "last_change": change,
                "shadow": shadow_hour.get(endpoint),
                "hint": _hint(endpoint, flag, plane, long_run, change),
                "rollout": progress.get(endpoint),
                # The guard's rollback stands until a person flips it or starts a rollout.
                "rolled_back": change is not None and change.actor == GUARD,
            }
        )
    served_async = sum(1 for r in rows if r["flag"].mode == "async")
    share, errors = _charts(points, now_min - 60)
    pool = plane.pool_health()
    return {
        "version": state.version,
        "rows": rows,
        "served_async": served_async,
        "total": len(rows),
        "twins": len(plane.twins),
        "async_share": total_async / total_all if total_all else None,
        "share_chart": share,
        "error_chart": errors,
        "wsgi": {
            "threads": pool.threads,
            "busy": pool.busy,
            "queued": pool.queued,
            "disconnects": sum(t.disconnects for (_, b), t in hour.items() if b == "legacy"),
        },
        "problem": plane.problems().get("flags"),
        "retire_after_days": days,
        "generated_at": datetime.now(UTC).strftime("%H:%M:%S UTC"),
    }


async def _long_run(
    plane: ControlPlane, conn: AsyncConnection, endpoints: list[str], since_minute: int
) -> dict[tuple[str, str], tuple[int, int]]:
    """Requests and errors over the retirement period, for the endpoints that may qualify.

    A week of per-minute rows is the dashboard's heaviest read and the hint moves over days,
    so the answer is kept for a few minutes (per gateway, on its control plane).
    """
    if not endpoints:
        return {}
    key = tuple(endpoints)
    cached = plane.cache.get("long_run")
    if cached is not None and cached[1] == key and cached[0] > time.monotonic():
        return cached[2]  # type: ignore[no-any-return]
    counts = await stats.request_counts(conn, since_minute, endpoints)
    plane.cache["long_run"] = (time.monotonic() + _LONG_RUN_TTL_S, key, counts)
    return counts


def _hint(
    endpoint: str,
    flag: Flag,
    plane: ControlPlane,
    long_run: dict[tuple[str, str], tuple[int, int]],
    change: AuditEntry | None,
) -> str | None:
    if endpoint not in plane.twins:
        return "needs twin"
    if flag.mode != "async" or change is None:
        return None
    if change.created_at > datetime.now(UTC) - timedelta(days=plane.retire_after_days):
        return None
    legacy_requests, _ = long_run.get((endpoint, "legacy"), (0, 0))
    served, errors = long_run.get((endpoint, "async"), (0, 0))
    if legacy_requests == 0 and served and errors / served <= flag.guard.max_error_rate:
        return "legacy code removable"
    return None


def _charts(points: list[dict[str, Any]], since_minute: int) -> tuple[Markup, Markup]:
    """The share-served-async and error-rate charts of `stats.series` points."""
    x_range = (float(since_minute), float(int(time.time() // 60)))
    share = [
        (
            p["minute"],
            p["async"][0] / (p["async"][0] + p["legacy"][0])
            if p["async"][0] + p["legacy"][0]
            else None,
        )
        for p in points
    ]
    errors = {
        b: [(p["minute"], p[b][1] / p[b][0] if p[b][0] else None) for p in points]
        for b in ("legacy", "async")
    }
    share_svg = line_chart(
        [Line("async share", _COLORS["share"], share)],
        x_range=x_range,
        y_max=1.0,
        percent=True,
        y_label="share of traffic served async",
    )
    error_svg = line_chart(
        [Line(b, _COLORS[b], errors[b]) for b in ("legacy", "async")],
        x_range=x_range,
        percent=True,
        y_label="error rate per backend",
    )
    return Markup(share_svg), Markup(error_svg)


async def endpoint_data(plane: ControlPlane, endpoint: str) -> dict[str, Any]:
    """One endpoint: flag, drift, per-backend stats for 1 h and 24 h, charts, recent changes."""
    store = plane.require_store()
    state = await store.load()
    flag = plane.effective(endpoint, state)
    now_min = int(time.time() // 60)
    async with store.engine.connect() as conn:
        hour = await stats.totals(conn, now_min - 60, [endpoint])
        day = await stats.totals(conn, now_min - 1440, [endpoint])
        points_1h = await stats.series(conn, now_min - 60, 1, [endpoint])
        points_24h = await stats.series(conn, now_min - 1440, 15, [endpoint])
        shadow = await _shadow(conn, endpoint, now_min)
    share_1h, errors_1h = _charts(points_1h, now_min - 60)
    share_24h, errors_24h = _charts(points_24h, now_min - 1440)
    history = await store.history(endpoint, limit=20)
    declared = plane.declared_flag(endpoint)
    (rollout,) = await rollout_views(plane.rollouts(), [endpoint], plane.twins)
    return {
        "endpoint": endpoint,
        "flag": flag,
        "etag": etag(flag),
        "declared": declared,
        "drift": bool(drift(flag, declared)),
        "has_twin": endpoint in plane.twins,
        "stats": {
            period: {b: _side(data.get((endpoint, b)), minutes) for b in ("legacy", "async")}
            for period, data, minutes in (("1 h", hour, 60), ("24 h", day, 1440))
        },
        "charts": {"1 h": (share_1h, errors_1h), "24 h": (share_24h, errors_24h)},
        "history": history,
        "shadow": shadow,
        "version": state.version,
        "rollout": rollout,
        "durations": {
            "interval": format_duration(rollout["interval_s"]),
            "shadow_for": format_duration(rollout["shadow_for_s"]),
            "window": format_duration(flag.guard.window_s),
        },
    }


async def _shadow(conn: AsyncConnection, endpoint: str, now_min: int) -> dict[str, Any]:
    """The endpoint's shadow results over 1 h, its mismatch-rate charts, recent diffs, noise."""
    summary = (await stats.shadow_summaries(conn, now_min - 60, [endpoint])).get(
        endpoint, stats.ShadowSummary()
    )
    charts = {}
    for period, since, step in (("1 h", now_min - 60, 1), ("24 h", now_min - 1440, 15)):
        points = await stats.mismatch_series(conn, since, step, endpoint)
        rate = [(float(t), m / c if c else None) for t, c, m in points]
        charts[period] = Markup(
            line_chart(
                [Line("mismatch rate", _COLORS["mismatch"], rate)],
                x_range=(float(since), float(now_min)),
                percent=True,
                y_label="share of compared requests whose answers differed",
            )
        )
    return {
        "summary": summary,
        "charts": charts,
        "recent": await stats.recent_mismatches(conn, endpoint, now_min - 1440, limit=10),
        "noise": await stats.noise_paths(conn, endpoint),
    }
