"""The rollout dashboard under /_rollout/: board, per-endpoint page with flip controls, audit.

Server-rendered HTML with inline SVG charts; a few lines of plain JavaScript refresh the board
fragment every few seconds. Flips go through `admin.change_flag`, the same audited path as the
CLI and the admin API, and every form carries a double-submit CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from asgi_gateway import metrics
from asgi_gateway.admin import AdminError, change_flag, require_admin
from asgi_gateway.charts import Line, line_chart
from asgi_gateway.errors import FlagError
from asgi_gateway.flags import MODES, Flag

if TYPE_CHECKING:
    from asgi_gateway.gateway import Gateway, Principal

CSRF_COOKIE = "rollout_csrf"
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
)
_COLORS = {"legacy": "#8250df", "async": "#1a7f37", "share": "#0969da"}


def dashboard_routes(
    gateway: Gateway, *, login_path: str = "/login", retire_after_days: int = 7
) -> list[Route]:
    """Routes of the dashboard; anonymous visitors are sent to `login_path` and back."""

    async def page(request: Request, render: Any) -> Response:
        try:
            principal = await require_admin(gateway, request)
        except AdminError as exc:
            if exc.response.status_code == 401:
                target = quote(
                    request.url.path + (f"?{request.url.query}" if request.url.query else "")
                )
                return RedirectResponse(f"{login_path}?next={target}", status_code=303)
            return _html(
                "denied.html", {"message": "The rollout dashboard is for admins only."}, status=403
            )
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        response = await render(request, principal, token)
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            path="/_rollout",
            secure=request.url.scheme == "https",
        )
        return response

    async def board(request: Request) -> Response:
        async def render(request: Request, principal: Principal, token: str) -> Response:
            data = await board_data(gateway, retire_after_days)
            template = "_board.html" if request.query_params.get("fragment") else "board.html"
            return _html(template, {"board": data, "principal": principal, "csrf": token})

        return await page(request, render)

    async def endpoint_page(request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        if endpoint not in gateway.endpoints:
            return _html("denied.html", {"message": f"Unknown endpoint {endpoint}."}, status=404)

        async def render(request: Request, principal: Principal, token: str) -> Response:
            context = await endpoint_data(gateway, endpoint, retire_after_days)
            context.update(
                principal=principal,
                csrf=token,
                modes=MODES,
                error=request.query_params.get("error"),
            )
            return _html("endpoint.html", context)

        return await page(request, render)

    async def flip(request: Request) -> Response:
        endpoint = request.path_params["endpoint"]

        async def render(request: Request, principal: Principal, token: str) -> Response:
            form = await _form(request)
            sent = str(form.get("csrf_token", ""))
            if not sent or not hmac.compare_digest(sent, request.cookies.get(CSRF_COOKIE, "")):
                return _html(
                    "denied.html",
                    {"message": "The form has expired; reload the page and try again."},
                    status=400,
                )
            mode = str(form.get("mode", ""))
            percent_raw = str(form.get("percent", "")).strip()
            reason = str(form.get("reason", "")).strip()
            back = f"/_rollout/endpoints/{quote(endpoint)}"
            try:
                percent = float(percent_raw) if percent_raw else None
            except ValueError:
                return RedirectResponse(f"{back}?error={quote('percent must be a number')}", 303)
            if not reason:
                return RedirectResponse(f"{back}?error={quote('a reason is required')}", 303)
            if form.get("confirm") != "yes":
                state = await gateway.store.load()  # type: ignore[union-attr]
                current = state.flags.get(endpoint) or _declared(gateway, endpoint)
                return _html(
                    "confirm.html",
                    {
                        "endpoint": endpoint,
                        "current": current,
                        "mode": mode,
                        "percent": percent_raw,
                        "reason": reason,
                        "csrf": token,
                        "principal": principal,
                    },
                )
            try:
                await change_flag(
                    gateway, endpoint, mode, percent, None, actor=principal.name, reason=reason
                )
            except FlagError as exc:
                return RedirectResponse(f"{back}?error={quote(exc.message)}", 303)
            return RedirectResponse(back, status_code=303)

        return await page(request, render)

    async def audit_page(request: Request) -> Response:
        async def render(request: Request, principal: Principal, token: str) -> Response:
            params = request.query_params
            since_key = params.get("since", "7d")
            since = _SINCE.get(since_key)
            entries = await gateway.store.history(  # type: ignore[union-attr]
                params.get("endpoint") or None,
                actor=params.get("actor") or None,
                since=datetime.now(UTC) - since if since else None,
                limit=500,
            )
            return _html(
                "audit.html",
                {
                    "entries": entries,
                    "principal": principal,
                    "endpoints": sorted(gateway.endpoints),
                    "filters": {
                        "endpoint": params.get("endpoint", ""),
                        "actor": params.get("actor", ""),
                        "since": since_key,
                    },
                },
            )

        return await page(request, render)

    async def root(request: Request) -> Response:
        return RedirectResponse("/_rollout/", status_code=307)

    return [
        Route("/_rollout", root, methods=["GET"]),
        Route("/_rollout/", board, methods=["GET"]),
        Route("/_rollout/endpoints/{endpoint}", endpoint_page, methods=["GET"]),
        Route("/_rollout/endpoints/{endpoint}/flip", flip, methods=["POST"]),
        Route("/_rollout/audit", audit_page, methods=["GET"]),
    ]


async def _form(request: Request) -> dict[str, str]:
    # The flip form is a small urlencoded POST; parsing it needs no multipart library.
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > 16 * 1024:
            return {}
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs)


_SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "all": None}


def _html(template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        _templates.get_template(template).render(**context),
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def _declared(gateway: Gateway, endpoint: str) -> Flag:
    return gateway.declared.declared(endpoint) if gateway.declared else Flag(endpoint)


def _side(totals: metrics.Totals | None, minutes: int) -> dict[str, Any]:
    if totals is None or not totals.requests:
        return {"requests": 0, "rpm": 0.0, "error_rate": None, "p50": None, "p95": None}
    return {
        "requests": totals.requests,
        "rpm": totals.requests / minutes,
        "error_rate": totals.error_rate,
        "p50": totals.percentile_ms(0.5),
        "p95": totals.percentile_ms(0.95),
    }


async def board_data(gateway: Gateway, retire_after_days: int) -> dict[str, Any]:
    """Everything the board shows, from the flag store and the merged per-minute stats."""
    store = gateway.store
    assert store is not None
    engine = store.engine
    state = await store.load()
    last = await store.last_changes()
    now_min = int(time.time() // 60)
    hour = await metrics.totals(engine, now_min - 60)
    settled_before = datetime.now(UTC) - timedelta(days=retire_after_days)
    candidates = sorted(
        e
        for e in gateway.twins
        if (state.flags.get(e) or _declared(gateway, e)).mode == "async"
        and e in last
        and last[e].created_at <= settled_before
    )
    long_run = await _long_run(gateway, candidates, now_min - retire_after_days * 1440)
    rows = []
    total_async = total_all = 0
    for endpoint in sorted(gateway.endpoints):
        flag = state.flags.get(endpoint) or _declared(gateway, endpoint)
        declared = _declared(gateway, endpoint)
        legacy, asynchronous = hour.get((endpoint, "legacy")), hour.get((endpoint, "async"))
        n_legacy = legacy.requests if legacy else 0
        n_async = asynchronous.requests if asynchronous else 0
        total_async += n_async
        total_all += n_legacy + n_async
        change = last.get(endpoint)
        rows.append(
            {
                "endpoint": endpoint,
                "has_twin": endpoint in gateway.twins,
                "flag": flag,
                "drift": (flag.mode, flag.percent, flag.sticky_by)
                != (declared.mode, declared.percent, declared.sticky_by),
                "declared": declared,
                "observed_async": n_async / (n_legacy + n_async) if n_legacy + n_async else None,
                "legacy": _side(legacy, 60),
                "async": _side(asynchronous, 60),
                "last_change": change,
                "hint": _hint(endpoint, flag, gateway, long_run, change, retire_after_days),
            }
        )
    served_async = sum(1 for r in rows if r["flag"].mode == "async")
    share, errors = await _charts(engine, now_min - 60, 1, None)
    return {
        "version": state.version,
        "rows": rows,
        "served_async": served_async,
        "total": len(rows),
        "twins": len(gateway.twins),
        "async_share": total_async / total_all if total_all else None,
        "share_chart": share,
        "error_chart": errors,
        "wsgi": {
            "threads": gateway.wsgi_threads,
            "busy": min(gateway.legacy_inflight, gateway.wsgi_threads),
            "queued": max(0, gateway.legacy_inflight - gateway.wsgi_threads),
            "disconnects": sum(t.disconnects for (_, b), t in hour.items() if b == "legacy"),
        },
        "problem": gateway.refresher.problem if gateway.refresher else None,
        "retire_after_days": retire_after_days,
        "generated_at": datetime.now(UTC).strftime("%H:%M:%S UTC"),
    }


_LONG_RUN_TTL_S = 300.0
_long_run_cache: dict[int, tuple[float, tuple[str, ...], dict[tuple[str, str], tuple[int, int]]]]
_long_run_cache = {}


async def _long_run(
    gateway: Gateway, endpoints: list[str], since_minute: int
) -> dict[tuple[str, str], tuple[int, int]]:
    """Requests and errors over the retirement period, for the endpoints that may qualify.

    A week of per-minute rows is the dashboard's heaviest read and the hint moves over days,
    so the answer is kept for a few minutes per gateway.
    """
    if not endpoints:
        return {}
    key = tuple(endpoints)
    cached = _long_run_cache.get(id(gateway))
    if cached is not None and cached[1] == key and cached[0] > time.monotonic():
        return cached[2]
    assert gateway.store is not None
    counts = await metrics.request_counts(gateway.store.engine, since_minute, endpoints)
    _long_run_cache[id(gateway)] = (time.monotonic() + _LONG_RUN_TTL_S, key, counts)
    return counts


def _hint(
    endpoint: str,
    flag: Flag,
    gateway: Gateway,
    long_run: dict[tuple[str, str], tuple[int, int]],
    change: Any,
    days: int,
) -> str | None:
    if endpoint not in gateway.twins:
        return "needs twin"
    if flag.mode != "async" or change is None:
        return None
    if change.created_at > datetime.now(UTC) - timedelta(days=days):
        return None
    legacy_requests, _ = long_run.get((endpoint, "legacy"), (0, 0))
    served, errors = long_run.get((endpoint, "async"), (0, 0))
    if legacy_requests == 0 and served and errors / served <= flag.guard.max_error_rate:
        return "legacy code removable"
    return None


async def _charts(
    engine: Any, since_minute: int, step: int, endpoints: list[str] | None
) -> tuple[Markup, Markup]:
    points = await metrics.series(engine, since_minute, step, endpoints)
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


async def endpoint_data(gateway: Gateway, endpoint: str, retire_after_days: int) -> dict[str, Any]:
    """One endpoint: flag, drift, per-backend stats for 1 h and 24 h, charts, recent changes."""
    store = gateway.store
    assert store is not None
    state = await store.load()
    flag = state.flags.get(endpoint) or _declared(gateway, endpoint)
    now_min = int(time.time() // 60)
    hour = await metrics.totals(store.engine, now_min - 60, [endpoint])
    day = await metrics.totals(store.engine, now_min - 1440, [endpoint])
    share_1h, errors_1h = await _charts(store.engine, now_min - 60, 1, [endpoint])
    share_24h, errors_24h = await _charts(store.engine, now_min - 1440, 15, [endpoint])
    history = await store.history(endpoint, limit=20)
    declared = _declared(gateway, endpoint)
    return {
        "endpoint": endpoint,
        "flag": flag,
        "declared": declared,
        "drift": (flag.mode, flag.percent, flag.sticky_by)
        != (declared.mode, declared.percent, declared.sticky_by),
        "has_twin": endpoint in gateway.twins,
        "stats": {
            period: {b: _side(data.get((endpoint, b)), minutes) for b in ("legacy", "async")}
            for period, data, minutes in (("1 h", hour, 60), ("24 h", day, 1440))
        },
        "charts": {"1 h": (share_1h, errors_1h), "24 h": (share_24h, errors_24h)},
        "history": history,
        "version": state.version,
    }
