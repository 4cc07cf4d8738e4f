"""The rollouts admin API: read every endpoint's rollout; start, pause, resume or abort one."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asgi_gateway.control.admin import admin_endpoint, error, json_object
from asgi_gateway.control.plane import ControlPlane
from asgi_gateway.control.rollout_view import rollout_views
from asgi_gateway.errors import FlagError, UnknownEndpoint
from asgi_gateway.flag_policy import check_interval, check_steps
from asgi_gateway.serving.identity import Principal

ACTIONS = ("start", "pause", "resume", "abort")
_FIELDS = ("action", "reason", "steps", "interval")


def rollout_api_routes(plane: ControlPlane) -> list[Route]:
    """`GET <prefix>/api/rollouts[/{endpoint}]` and `POST <prefix>/api/rollouts/{endpoint}`."""
    base = plane.rollout_prefix + "/api/rollouts"

    def known(endpoint: str) -> None:
        if endpoint not in plane.endpoints:
            raise UnknownEndpoint(f"unknown endpoint id {endpoint!r}")

    async def list_rollouts(request: Request, principal: Principal) -> Response:
        views = await rollout_views(plane.rollouts(), sorted(plane.endpoints), plane.twins)
        return JSONResponse({"data": views, "meta": {"total": len(views)}})

    async def get_rollout(request: Request, principal: Principal) -> Response:
        endpoint = request.path_params["endpoint"]
        known(endpoint)
        (view,) = await rollout_views(plane.rollouts(), [endpoint], plane.twins)
        return JSONResponse(view)

    async def act(request: Request, principal: Principal) -> Response:
        endpoint = request.path_params["endpoint"]
        known(endpoint)
        body = await json_object(request)
        try:
            action, reason, steps, interval_s = parse_action(body)
        except FlagError as exc:
            return error(
                422,
                "validation_error",
                exc.message,
                [{"field": exc.field or "action", "message": exc.message}],
            )
        rollouts = plane.rollouts()
        if action == "start":
            await rollouts.start(
                endpoint, actor=principal.name, reason=reason, steps=steps, interval_s=interval_s
            )
        elif action == "pause":
            await rollouts.pause(endpoint, actor=principal.name, reason=reason)
        elif action == "resume":
            await rollouts.resume(endpoint, actor=principal.name, reason=reason)
        else:
            await rollouts.abort(endpoint, actor=principal.name, reason=reason)
        (view,) = await rollout_views(rollouts, [endpoint], plane.twins)
        return JSONResponse(view)

    return [
        Route(base, admin_endpoint(plane, list_rollouts), methods=["GET"]),
        Route(base + "/{endpoint}", admin_endpoint(plane, get_rollout), methods=["GET"]),
        Route(base + "/{endpoint}", admin_endpoint(plane, act), methods=["POST"]),
    ]


def parse_action(
    body: dict[str, Any],
) -> tuple[str, str, tuple[float, ...] | None, float | None]:
    """(action, reason, steps, interval_s) of a rollout request; FlagError naming the field."""
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise FlagError(
            f"unknown field {unknown[0]!r} (expected {', '.join(_FIELDS)})", field=unknown[0]
        )
    action = body.get("action")
    if action not in ACTIONS:
        raise FlagError(
            f"action must be one of {', '.join(ACTIONS)}, got {action!r}", field="action"
        )
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise FlagError("a reason is required for every rollout action", field="reason")
    steps = body.get("steps")
    interval = body.get("interval")
    for name, value in (("steps", steps), ("interval", interval)):
        if value is not None and action != "start":
            raise FlagError(f"{name} is only used with action start", field=name)
    return (
        action,
        reason.strip(),
        check_steps(steps, field="steps") if steps is not None else None,
        check_interval(interval, field="interval") if interval is not None else None,
    )
