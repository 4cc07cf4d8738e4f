"""The rollout dashboard under <rollout prefix>/: board, endpoint pages with flip controls, audit.

Server-rendered HTML with inline SVG charts; a few lines of plain JavaScript refresh the board
fragment every few seconds. Flips go through `ControlPlane.flip`, the same audited path as the
CLI and the admin API. Every form carries a CSRF token bound to the signed-in session: an HMAC
of the session cookie under the gateway's secret, so it changes with every sign-in and cannot
be forged with a cookie/form pair of the attacker's choosing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from asgi_gateway.control.board import board_data, endpoint_data
from asgi_gateway.control.plane import AccessDenied, ControlPlane, IdentityUnavailable
from asgi_gateway.control.rollout_api import parse_action
from asgi_gateway.control.store import Change, describe
from asgi_gateway.errors import FlagConflict, FlagError, FlagStoreUnavailable, RolloutConflict
from asgi_gateway.flags import MODES
from asgi_gateway.serving.identity import Principal, cookie, header

MAX_FORM_BYTES = 16 * 1024
_SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "all": None}
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
)
_NO_VALUE = Markup('<span class="muted">\u2013</span>')  # an en dash


def _percent(share: float | None) -> str:
    """A share as the dashboard prints it (`12.3%`), or a muted dash."""
    return _NO_VALUE if share is None else f"{share * 100:.1f}%"


def _milliseconds(latency_ms: float | None) -> str:
    """A latency as the dashboard prints it (`25 ms`), or a muted dash."""
    return _NO_VALUE if latency_ms is None else f"{latency_ms:.0f} ms"


# Python, not template macros: the board calls them about 400 times a view, and a macro call
# costs Jinja ten times as much.
_templates.globals.update(pct=_percent, ms=_milliseconds)
Render = Callable[[Request, Principal, str], Awaitable[Response]]


class _FormTooLarge(Exception):
    """The posted form is over MAX_FORM_BYTES."""


def csrf_token(plane: ControlPlane, request: Request) -> str:
    """The session's CSRF token: HMAC of its session cookie (or bearer credential)."""
    binding = cookie(request.scope, plane.session_cookie) or (
        (header(request.scope, b"authorization") or b"").decode("latin-1")
    )
    digest = hmac.new(
        plane.secret_key, b"rollout-csrf\x00" + binding.encode("latin-1", "replace"), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def dashboard_routes(plane: ControlPlane) -> list[Route]:
    """Routes of the dashboard; anonymous visitors are sent to the app's login and back."""
    base = plane.rollout_prefix

    def html(template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
        return render_html(template, {"base": base, **context}, status=status)

    async def page(request: Request, render: Render) -> Response:
        try:
            principal = await plane.require_admin(request)
            return await render(request, principal, csrf_token(plane, request))
        except AccessDenied as exc:
            if exc.status == 401:
                target = quote(
                    request.url.path + (f"?{request.url.query}" if request.url.query else "")
                )
                return RedirectResponse(f"{plane.login_path}?next={target}", status_code=303)
            return html(
                "denied.html", {"message": "The rollout dashboard is for admins only."}, status=403
            )
        except (IdentityUnavailable, FlagStoreUnavailable) as exc:
            response = html(
                "denied.html",
                {
                    "message": "The rollout dashboard cannot reach its database right now; "
                    f"requests keep being served with the last known flags. ({exc})",
                    "back": request.url.path,
                    "back_label": "Try again",
                },
                status=503,
            )
            response.headers["Retry-After"] = "5"
            return response

    async def board(request: Request) -> Response:
        async def render(request: Request, principal: Principal, token: str) -> Response:
            data = await board_data(plane)
            template = "_board.html" if request.query_params.get("fragment") else "board.html"
            return html(template, {"board": data, "principal": principal, "csrf": token})

        return await page(request, render)

    async def endpoint_page(request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        if endpoint not in plane.endpoints:
            return html("denied.html", {"message": f"Unknown endpoint {endpoint}."}, status=404)

        async def render(request: Request, principal: Principal, token: str) -> Response:
            context = await endpoint_data(plane, endpoint)
            context.update(
                principal=principal,
                csrf=token,
                modes=MODES,
                error=request.query_params.get("error"),
            )
            return html("endpoint.html", context)

        return await page(request, render)

    async def flip(request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        back = f"{base}/endpoints/{quote(endpoint)}"

        async def render(request: Request, principal: Principal, token: str) -> Response:
            form, refused = await checked_form(request, token, back)
            if refused is not None:
                return refused
            mode = form.get("mode", "")
            percent_raw = form.get("percent", "").strip() if mode == "canary" else ""
            reason = form.get("reason", "").strip()
            expected = form.get("etag") or None
            try:
                percent = float(percent_raw) if percent_raw else None
            except ValueError:
                return RedirectResponse(f"{back}?error={quote('percent must be a number')}", 303)
            if not reason:
                return RedirectResponse(f"{back}?error={quote('a reason is required')}", 303)
            if form.get("confirm") != "yes":
                state = await plane.require_store().load()
                current = plane.effective(endpoint, state)
                return html(
                    "confirm.html",
                    {
                        "endpoint": endpoint,
                        "current": current,
                        "mode": mode,
                        "percent": percent_raw,
                        "reason": reason,
                        "etag": expected or "",
                        "csrf": token,
                        "principal": principal,
                    },
                )
            try:
                await plane.flip(
                    endpoint,
                    Change(mode, percent),
                    actor=principal.name,
                    reason=reason,
                    expected_etag=expected,
                )
            except (FlagError, FlagConflict) as exc:
                message = exc.message if isinstance(exc, FlagError) else str(exc)
                return RedirectResponse(f"{back}?error={quote(message)}", 303)
            return RedirectResponse(back, status_code=303)

        return await page(request, render)

    async def rollout_action(request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        back = f"{base}/endpoints/{quote(endpoint)}"

        async def render(request: Request, principal: Principal, token: str) -> Response:
            form, refused = await checked_form(request, token, back)
            if refused is not None:
                return refused
            steps_raw = form.get("steps", "").strip()
            interval_raw = form.get("interval", "").strip()
            body: dict[str, Any] = {
                "action": form.get("action", ""),
                "reason": form.get("reason", ""),
            }
            if body["action"] == "start":
                if steps_raw:
                    try:
                        body["steps"] = [float(s) for s in steps_raw.replace(" ", "").split(",")]
                    except ValueError:
                        message = f"steps: {steps_raw!r} is not a list of numbers such as 1,5,100"
                        return RedirectResponse(f"{back}?error={quote(message)}#rollout", 303)
                if interval_raw:
                    body["interval"] = interval_raw
            try:
                action, reason, steps, interval_s = parse_action(body)
            except FlagError as exc:
                return RedirectResponse(f"{back}?error={quote(exc.message)}#rollout", 303)
            if form.get("confirm") != "yes":
                return html(
                    "rollout_confirm.html",
                    {
                        "endpoint": endpoint,
                        "action": action,
                        "reason": reason,
                        "steps": steps_raw if action == "start" else "",
                        "interval": interval_raw if action == "start" else "",
                        "csrf": token,
                        "principal": principal,
                    },
                )
            rollouts = plane.rollouts()
            try:
                if action == "start":
                    await rollouts.start(
                        endpoint,
                        actor=principal.name,
                        reason=reason,
                        steps=steps,
                        interval_s=interval_s,
                    )
                else:
                    act = {
                        "pause": rollouts.pause,
                        "resume": rollouts.resume,
                        "abort": rollouts.abort,
                    }[action]
                    await act(endpoint, actor=principal.name, reason=reason)
            except (FlagError, FlagConflict, RolloutConflict) as exc:
                message = exc.message if isinstance(exc, FlagError) else str(exc)
                return RedirectResponse(f"{back}?error={quote(message)}#rollout", 303)
            return RedirectResponse(f"{back}#rollout", status_code=303)

        return await page(request, render)

    async def checked_form(
        request: Request, token: str, back: str
    ) -> tuple[dict[str, str], Response | None]:
        """The posted form, or the page refusing it (too large, or a bad CSRF token)."""
        try:
            form = await read_form(request)
        except _FormTooLarge:
            return {}, html(
                "denied.html",
                {
                    "message": f"The form is too large (limit {MAX_FORM_BYTES // 1024} KiB); "
                    "shorten the reason and try again.",
                    "back": back,
                    "back_label": "Back to the endpoint",
                },
                status=413,
            )
        sent = form.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent, token):
            return form, html(
                "denied.html",
                {
                    "message": "The form has expired or was not sent from this dashboard; "
                    "reload the page and try again.",
                    "back": back,
                    "back_label": "Back to the endpoint",
                },
                status=400,
            )
        return form, None

    async def audit_page(request: Request) -> Response:
        async def render(request: Request, principal: Principal, token: str) -> Response:
            params = request.query_params
            since_key = params.get("since", "7d")
            since = _SINCE.get(since_key)
            entries = await plane.require_store().history(
                params.get("endpoint") or None,
                actor=params.get("actor") or None,
                since=datetime.now(UTC) - since if since else None,
                limit=500,
            )
            return html(
                "audit.html",
                {
                    "entries": entries,
                    "principal": principal,
                    "endpoints": sorted(plane.endpoints),
                    "filters": {
                        "endpoint": params.get("endpoint", ""),
                        "actor": params.get("actor", ""),
                        "since": since_key,
                    },
                },
            )

        return await page(request, render)

    async def root(request: Request) -> Response:
        return RedirectResponse(f"{base}/", status_code=307)

    return [
        Route(base, root, methods=["GET"]),
        Route(f"{base}/", board, methods=["GET"]),
        Route(base + "/endpoints/{endpoint}", endpoint_page, methods=["GET"]),
        Route(base + "/endpoints/{endpoint}/flip", flip, methods=["POST"]),
        Route(base + "/endpoints/{endpoint}/rollout", rollout_action, methods=["POST"]),
        Route(f"{base}/audit", audit_page, methods=["GET"]),
    ]


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form (no multipart library needed); _FormTooLarge past the limit."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise _FormTooLarge
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def render_html(template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    """A dashboard template as an uncached HTML response."""
    return HTMLResponse(
        _templates.get_template(template).render(describe=describe, **context),
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )
