"""The dashboard's rollout controls and marks over HTTP, on the rollout test app: progress, the
last analysis against each threshold, start/pause/resume/abort with reason, confirmation and
CSRF, guard rollbacks marked on the board, the audit trail by actor."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from tests.asgi_gateway.control.test_dashboard import form_value
from tests.asgi_gateway.test_guard_live import (
    ADMIN,
    audit,
    flag,
    misbehave,
    rollout,
    start,
    wait_until,
)
from tests.asgi_gateway.traffic import Traffic
from tests.conftest import ServerProcess

FLAGS = """\
version: 1
defaults:
  guard: {min_requests: 10}
routes:
  widget: {mode: legacy, sticky_by: random, rollout: {steps: [10, 50, 100], interval: 1h}}
  gizmo: {mode: canary, percent: 50, sticky_by: random}
"""
PAGE = "/_rollout/endpoints/widget"
ACTION = PAGE + "/rollout"


def post(client: httpx.Client, token: str, **fields: str) -> httpx.Response:
    return client.post(ACTION, data={"csrf_token": token, **fields})


def test_a_rollout_is_started_paused_resumed_and_aborted_from_the_endpoint_page(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(spawn, rollout_environ, FLAGS, workers=1)
    with httpx.Client(base_url=server.url, headers=ADMIN) as client:
        page = client.get(PAGE)
        token = form_value(page, "csrf_token")
        assert 'id="rollout-state">none<' in page.text
        assert 'id="rollout-start"' in page.text and 'id="rollout-pause"' not in page.text
        assert 'name="steps" id="rollout-steps-input" value="10,50,100"' in page.text

        # Reviewing first: a confirmation page, nothing changed yet.
        review = post(
            client, token, action="start", steps="10, 50, 100", interval="30m", reason="go"
        )
        assert review.status_code == 200
        assert 'id="confirm-steps">10, 50, 100<' in review.text
        assert rollout(server, "widget")["state"] == "none"
        confirmed = post(
            client,
            token,
            action="start",
            steps=form_value(review, "steps"),
            interval=form_value(review, "interval"),
            reason=form_value(review, "reason"),
            confirm="yes",
        )
        assert confirmed.status_code == 303
        view = rollout(server, "widget")
        assert (view["state"], view["interval_s"], view["started_by"]) == (
            "running",
            1800.0,
            "rollout-admin",
        )
        page = client.get(PAGE)
        assert 'id="rollout-state">running<' in page.text
        assert re.search(r'<li class="current">10%</li>', page.text)
        assert 'id="next-step"' in page.text and 'id="rollout-pause"' in page.text

        assert post(client, token, action="pause", reason="hold", confirm="yes").status_code == 303
        assert rollout(server, "widget")["state"] == "paused"
        assert 'id="rollout-resume"' in client.get(PAGE).text
        assert post(client, token, action="resume", reason="go", confirm="yes").status_code == 303
        assert post(client, token, action="abort", reason="stop", confirm="yes").status_code == 303
        assert (rollout(server, "widget")["state"], flag(server, "widget")["mode"]) == (
            "aborted",
            "legacy",
        )
        actions = [row["action"] for row in audit(server, endpoint="widget")]
        assert actions[:4] == ["rollout_abort", "rollout_resume", "rollout_pause", "rollout_start"]


def test_rollout_forms_need_the_sessions_token_and_a_reason(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(spawn, rollout_environ, FLAGS, workers=1)
    with httpx.Client(base_url=server.url, headers=ADMIN) as client:
        token = form_value(client.get(PAGE), "csrf_token")
        forged = post(client, "not-the-token", action="start", reason="x", confirm="yes")
        assert forged.status_code == 400 and "The form has expired" in forged.text
        no_reason = post(client, token, action="start", reason=" ", confirm="yes")
        assert no_reason.status_code == 303
        assert "a%20reason%20is%20required" in no_reason.headers["location"]
        bad_steps = post(client, token, action="start", steps="5,1,100", reason="x", confirm="yes")
        shown = client.get(bad_steps.headers["location"]).text
        assert "steps must rise: 1 comes after 5" in shown
        wrong_state = post(client, token, action="pause", reason="x", confirm="yes")
        assert "cannot pause the rollout of widget: it is none" in client.get(
            wrong_state.headers["location"]
        ).text.replace("&#39;", "'")
    assert rollout(server, "widget")["state"] == "none"


def test_the_last_analysis_is_shown_against_each_threshold_and_the_board_marks_rollbacks(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(spawn, rollout_environ, FLAGS, workers=1, ROLLOUT_STATS_FLUSH_S="0.5")
    with Traffic(server.url, "/lab/gizmo", rate=40):
        wait_until(
            lambda: rollout(server, "gizmo")["last_analysis"]["async_requests"] >= 10,
            "an analysis on enough requests",
        )
        page = httpx.get(server.url + "/_rollout/endpoints/gizmo", headers=ADMIN).text
        assert 'id="analysis"' in page
        assert "at least 10" in page and "at most 2.0%" in page and "at most 2x" in page
        assert re.search(r'id="verdict"><strong>healthy</strong>', page)
        misbehave(rollout_environ, "gizmo", "fail")
        wait_until(lambda: flag(server, "gizmo")["mode"] == "legacy", "the rollback")
    board = httpx.get(server.url + "/_rollout/?fragment=1", headers=ADMIN).text
    row = re.search(r'<tr data-endpoint="gizmo">.*?</tr>', board, re.S)
    assert row is not None and "rolled back by guard" in row.group(0)
    widget = re.search(r'<tr data-endpoint="widget">.*?</tr>', board, re.S)
    assert widget is not None and "rolled back by guard" not in widget.group(0)
    trail = httpx.get(server.url + "/_rollout/audit?actor=guard", headers=ADMIN).text
    rows = re.findall(r'<tr class="rollback">', trail)
    assert len(rows) == 1 and "gizmo" in trail and 'id="guard-rollbacks"' in trail
