"""Progressive rollouts on a live third-party app behind `build_gateway` (rollout_app.py): every
step audited and announced, pause, resume, abort, waiting for traffic, a person's flip, a shadow
phase that disagrees, restarts of every worker, two processes on one PostgreSQL database, and
the admin API's answers to bad input."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.asgi_gateway.test_guard_live import (
    ADMIN,
    act,
    audit,
    flag,
    flip,
    metric,
    misbehave,
    rollout,
    start,
    wait_until,
)
from tests.asgi_gateway.traffic import Traffic
from tests.conftest import ServerProcess
from tests.fakes.webhook_receiver import WebhookReceiver

# The rollouts here are judged on errors only: on a busy test machine a twin's p95 can be twice
# legacy's for a moment, and a latency abort would stop a rollout these tests watch finish.
FLAGS = """\
version: 1
defaults:
  guard: {min_requests: 10, max_latency_ratio: 1000}
routes:
  widget: {mode: legacy, sticky_by: random, rollout: {steps: [10, 50, 100], interval: 2s}}
  gizmo:
    mode: legacy
    sticky_by: random
    rollout: {from: shadow, shadow_for: 2s, steps: [50, 100], interval: 2s}
    guard: {window: 2s}
"""
QUICK = {"ROLLOUT_STATS_FLUSH_S": "0.5", "ROLLOUT_GUARD_TICK_S": "0.25"}


def state_is(server: ServerProcess, endpoint: str, *states: str) -> dict[str, Any] | None:
    view = rollout(server, endpoint)
    return view if view["state"] in states else None


def finished(server: ServerProcess, endpoint: str) -> dict[str, Any]:
    """Wait for the rollout to end, and fail with its reason unless it ended done."""
    view = wait_until(
        lambda: state_is(server, endpoint, "done", "aborted"), "the rollout to finish", 60
    )
    assert view["state"] == "done", view["reason"]
    return view


def steps_audited(server: ServerProcess, endpoint: str) -> list[tuple[str, str, str]]:
    """(actor, action, after) of the endpoint's audit rows, oldest first."""
    rows = reversed(audit(server, endpoint=endpoint))
    return [
        (
            row["actor"],
            row["action"],
            f"canary {row['after']['percent']:g}%"
            if row["after"]["mode"] == "canary"
            else row["after"]["mode"],
        )
        for row in rows
    ]


def test_a_rollout_reaches_async_through_every_step_each_audited_and_announced(
    spawn: Callable[..., ServerProcess],
    rollout_environ: dict[str, str],
    webhook: WebhookReceiver,
) -> None:
    server = start(spawn, rollout_environ, FLAGS, ROLLOUT_WEBHOOK=webhook.url, **QUICK)
    with Traffic(server.url, "/lab/widget", rate=60):
        response = act(server, "widget", action="start", reason="ship the twin")
        assert response.status_code == 200, response.text
        started = response.json()
        assert (started["state"], started["step_index"], started["percent"]) == ("running", 0, 10)
        assert started["steps"] == [10, 50, 100] and started["interval_s"] == 2.0
        assert started["next_step_at"] is not None
        view = finished(server, "widget")
    assert (view["step_index"], view["percent"], view["mode"]) == (2, 100, "async")
    assert flag(server, "widget")["mode"] == "async"
    assert steps_audited(server, "widget")[-3:] == [
        ("rollout-admin", "rollout_start", "canary 10%"),
        ("rollout", "rollout_step", "canary 50%"),
        ("rollout", "rollout_step", "async"),
    ]
    assert [h["event"] for h in reversed(view["history"]) if h["event"] != "wait"] == [
        "start",
        "step",
        "step",
    ]
    steps = webhook.wait_for("step", "widget", count=2)
    assert [(s["from"]["text"], s["to"]["text"]) for s in steps] == [
        ("canary 10%", "canary 50%"),
        ("canary 50%", "async"),
    ]
    assert steps[-1]["rollout"]["state"] == "done"
    assert steps[0]["figures"]["verdict"] == "healthy"
    assert webhook.events("start", "widget")[0]["actor"] == "rollout-admin"
    gauge = 'gateway_rollout_step{endpoint="widget"}'
    assert wait_until(lambda: metric(server, gauge) == 100.0, "the step gauge at 100")
    assert audit(server, actor="guard") == []


def test_pause_holds_resume_goes_on_abort_goes_back_to_legacy(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(spawn, rollout_environ, FLAGS, **QUICK)
    with Traffic(server.url, "/lab/widget", rate=60):
        assert act(server, "widget", action="start", reason="go").status_code == 200
        paused = act(server, "widget", action="pause", reason="hold on")
        assert paused.status_code == 200, paused.text
        assert (paused.json()["state"], paused.json()["reason"]) == (
            "paused",
            "paused by rollout-admin: hold on",
        )
        assert paused.json()["next_step_at"] is None
        # Three intervals with plenty of healthy traffic: a paused rollout does not move.
        held_until = time.monotonic() + 6
        while time.monotonic() < held_until:
            assert (rollout(server, "widget")["step_index"], flag(server, "widget")["percent"]) == (
                0,
                10,
            )
            time.sleep(0.25)
        assert act(server, "widget", action="resume", reason="go on").json()["state"] == "running"
        wait_until(lambda: rollout(server, "widget")["step_index"] == 1, "the next step")
        aborted = act(server, "widget", action="abort", reason="changed my mind")
    assert aborted.status_code == 200, aborted.text
    assert (aborted.json()["state"], aborted.json()["mode"]) == ("aborted", "legacy")
    assert [action for _, action, _ in steps_audited(server, "widget")][-5:] == [
        "rollout_start",
        "rollout_pause",
        "rollout_resume",
        "rollout_step",
        "rollout_abort",
    ]


def test_too_little_traffic_waits_and_says_so_until_there_is(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(spawn, rollout_environ, FLAGS, workers=1, **QUICK)
    assert act(server, "widget", action="start", reason="quiet day").status_code == 200
    view = wait_until(lambda: state_is(server, "widget", "waiting"), "the rollout to wait")
    assert view["reason"].startswith(
        "waiting: too little traffic: 0 async requests of 10 needed over "
    )
    assert (view["step_index"], flag(server, "widget")["percent"]) == (0, 10)
    with Traffic(server.url, "/lab/widget", rate=60):
        wait_until(lambda: rollout(server, "widget")["step_index"] == 1, "the next step")
    assert rollout(server, "widget")["state"] == "running"


def test_a_persons_flip_pauses_the_rollout_with_the_reason(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(spawn, rollout_environ, FLAGS, workers=1, **QUICK)
    assert act(server, "widget", action="start", reason="go").status_code == 200
    flip(server, "widget", percent=30, reason="customers first")
    view = rollout(server, "widget")
    assert view["state"] == "paused"
    assert view["reason"] == (
        "paused: rollout-admin changed the flag (canary 10% -> canary 30%): customers first"
    )
    assert view["history"][0]["event"] == "pause"


def test_a_disagreeing_shadow_phase_never_starts_its_canary(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(spawn, rollout_environ, FLAGS, **QUICK)
    misbehave(rollout_environ, "gizmo", "differ")
    with Traffic(server.url, "/lab/gizmo", rate=60):
        started = act(server, "gizmo", action="start", reason="shadow first").json()
        assert (started["state"], started["phase"], started["mode"]) == (
            "running",
            "shadow",
            "shadow",
        )
        view = wait_until(
            lambda: (
                (r := rollout(server, "gizmo"))
                and sum(h["event"] == "stay" for h in r["history"]) >= 2
                and r
            ),
            "two shadow periods",
        )
        assert view["state"] == "waiting" and view["reason"].startswith("not promotable: ")
        assert view["promotable"] is False
        assert flag(server, "gizmo")["mode"] == "shadow"
        assert [a for _, a, _ in steps_audited(server, "gizmo") if a == "rollout_step"] == []
        # The same rollout goes on once the twin agrees (so the wait above was shadow's doing).
        misbehave(rollout_environ, "gizmo", "ok")
        wait_until(lambda: flag(server, "gizmo")["mode"] == "canary", "the first canary step")
    assert flag(server, "gizmo")["percent"] == 50


def test_restarting_every_worker_mid_rollout_goes_on_from_the_database(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    flags = FLAGS.replace("interval: 2s}}", "interval: 4s}}")
    server = start(spawn, rollout_environ, flags, **QUICK)
    with Traffic(server.url, "/lab/widget", rate=60) as traffic:
        assert act(server, "widget", action="start", reason="go").status_code == 200
        wait_until(lambda: rollout(server, "widget")["step_index"] == 1, "the second step")
        before = rollout(server, "widget")
        traffic.stop()
    assert server.stop() == 0
    # Every worker is gone for longer than the interval; new ones take it from the database.
    time.sleep(5)
    again = start(spawn, rollout_environ, flags, **QUICK)
    after = rollout(again, "widget")
    assert (after["state"], after["step_index"], after["next_step_at"]) == (
        before["state"],
        1,
        before["next_step_at"],
    )
    assert flag(again, "widget")["percent"] == 50
    with Traffic(again.url, "/lab/widget", rate=60):
        finished(again, "widget")
    steps = [s for _, a, s in steps_audited(again, "widget") if a == "rollout_step"]
    assert steps == ["canary 50%", "async"]


def test_a_failing_webhook_is_retried_and_never_holds_the_rollout(
    spawn: Callable[..., ServerProcess],
    rollout_environ: dict[str, str],
    webhook: WebhookReceiver,
) -> None:
    webhook.fail_always()
    server = start(spawn, rollout_environ, FLAGS, ROLLOUT_WEBHOOK=webhook.url, **QUICK)
    with Traffic(server.url, "/lab/widget", rate=60):
        assert act(server, "widget", action="start", reason="go").status_code == 200
        finished(server, "widget")
    assert webhook.attempts >= 3 and webhook.events() == []
    webhook.recover()
    # Retried with backoff: every notice arrives, once, after the receiver recovers.
    steps = webhook.wait_for("step", "widget", count=2, timeout_s=60)
    (started,) = webhook.wait_for("start", "widget", timeout_s=60)
    assert len(steps) == 2 and started["to"]["text"] == "canary 10%"


# -- the admin API -------------------------------------------------------------------------


BAD_REQUESTS: list[tuple[dict[str, Any], int, str | None, str]] = [
    ({"action": "go", "reason": "x"}, 422, "action", "action must be one of start, pause"),
    ({"action": "start"}, 422, "reason", "a reason is required"),
    ({"action": "start", "reason": "  "}, 422, "reason", "a reason is required"),
    (
        {"action": "pause", "reason": "x", "steps": [50, 100]},
        422,
        "steps",
        "steps is only used with action start",
    ),
    (
        {"action": "resume", "reason": "x", "interval": "1m"},
        422,
        "interval",
        "interval is only used with action start",
    ),
    (
        {"action": "start", "reason": "x", "steps": [50, 20]},
        422,
        "steps",
        "steps must rise: 20 comes after 50",
    ),
    (
        {"action": "start", "reason": "x", "interval": "soon"},
        422,
        "interval",
        "interval: bad duration 'soon'",
    ),
    ({"action": "start", "reason": "x", "from": "shadow"}, 422, "from", "unknown field"),
    ({"action": "pause", "reason": "x"}, 409, None, "cannot pause the rollout of widget"),
]


def test_bad_rollout_requests_are_refused_naming_the_field(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(spawn, rollout_environ, FLAGS, workers=1)
    for body, status, field, message in BAD_REQUESTS:
        response = act(server, "widget", **body)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert message in error["message"], (body, error)
        if field is not None:
            assert error["details"][0]["field"] == field, (body, error)
    not_json = httpx.post(server.url + "/_rollout/api/rollouts/widget", content=b"{", headers=ADMIN)
    assert not_json.status_code == 415
    assert rollout(server, "widget")["state"] == "none"
    assert flag(server, "widget")["mode"] == "legacy"


def test_the_rollouts_api_is_for_admins_and_knows_its_endpoints(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(spawn, rollout_environ, FLAGS, workers=1)
    assert httpx.get(server.url + "/_rollout/api/rollouts").status_code == 401
    post = httpx.post(server.url + "/_rollout/api/rollouts/widget", json={"action": "start"})
    assert post.status_code == 401
    unknown = httpx.get(server.url + "/_rollout/api/rollouts/nope", headers=ADMIN)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    listed = httpx.get(server.url + "/_rollout/api/rollouts", headers=ADMIN).json()
    views = {view["endpoint"]: view for view in listed["data"]}
    assert set(views) == {"widget", "gizmo", "doohickey"}
    widget = views["widget"]
    assert set(widget) >= {
        "endpoint",
        "state",
        "steps",
        "step_index",
        "percent",
        "interval_s",
        "next_step_at",
        "promotable",
        "last_analysis",
        "history",
    }
    assert (widget["state"], widget["steps"], widget["promotable"]) == ("none", [10, 50, 100], True)
    assert widget["last_analysis"] is None  # legacy: nothing to judge
    assert act(server, "widget", action="start", reason="one").status_code == 200
    twice = act(server, "widget", action="start", reason="two")
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "conflict")
    assert "already running" in twice.json()["error"]["message"]


def test_the_audit_trail_lists_the_guards_rollbacks(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(spawn, rollout_environ, FLAGS, workers=1, **QUICK)
    misbehave(rollout_environ, "widget", "raise")
    with Traffic(server.url, "/lab/widget", rate=60):
        assert (
            act(server, "widget", action="start", reason="go", steps=[50, 100]).status_code == 200
        )
        wait_until(lambda: state_is(server, "widget", "aborted"), "the rollout to abort")
    view = rollout(server, "widget")
    assert view["reason"].startswith("aborted: async error rate 100.0%")
    assert view["mode"] == "legacy"
    (rollback,) = audit(server, actor="guard")
    assert (rollback["endpoint"], rollback["action"]) == ("widget", "rollback")
    assert all(row["actor"] == "guard" for row in audit(server, actor="guard"))


@pytest.mark.postgres
@pytest.mark.slow
def test_two_gateway_processes_on_postgresql_never_step_or_roll_back_twice(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str], pg_environ: dict[str, str]
) -> None:
    database = pg_environ["AA_DATABASE_URL"].replace("postgresql://", "postgresql+asyncpg://", 1)
    environ = {**rollout_environ, "ROLLOUT_DATABASE_URL": database}
    flags = FLAGS.replace(
        "steps: [10, 50, 100], interval: 2s", "steps: [5, 25, 50, 75, 100], interval: 1s"
    )
    first = start(spawn, environ, flags, **QUICK)
    second = start(spawn, environ, flags, **QUICK)
    with Traffic(first.url, "/lab/widget", rate=40), Traffic(second.url, "/lab/widget", rate=40):
        assert act(first, "widget", action="start", reason="go").status_code == 200
        finished(second, "widget")
        # Now a breach that four guards see at once.
        misbehave(environ, "widget", "fail")
        wait_until(lambda: flag(first, "widget")["mode"] == "legacy", "the rollback")
        # Every guard of both processes gets several ticks with the breach in its figures.
        watched_until = time.monotonic() + 2
        while time.monotonic() < watched_until:
            assert len(audit(second, actor="guard")) == 1
            time.sleep(0.2)
    steps = [s for _, a, s in steps_audited(first, "widget") if a == "rollout_step"]
    assert steps == ["canary 25%", "canary 50%", "canary 75%", "async"]
    assert flag(second, "widget")["mode"] == "legacy"
