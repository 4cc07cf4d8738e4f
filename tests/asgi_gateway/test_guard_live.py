"""The guard on a live third-party app behind `build_gateway` (rollout_app.py), two workers:
a failing twin is rolled back within the target, once, audited and announced; a slow twin is
rolled back on latency; disagreeing shadow traffic makes an endpoint not promotable; too
little traffic never decides."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.asgi_gateway.conftest import ROLLOUT_APP
from tests.asgi_gateway.rollout_app import ADMIN_TOKEN, behave
from tests.asgi_gateway.traffic import Traffic
from tests.conftest import ServerProcess
from tests.fakes.webhook_receiver import WebhookReceiver

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# With async failing on every request at 20 req/s or more and the default guard settings,
# every worker serves legacy within this of the first failure (the target).
TARGET_S = 10.0
DEADLINE_S = 30.0


def start(
    spawn: Callable[..., ServerProcess],
    environ: dict[str, str],
    flags: str,
    *,
    workers: int = 2,
    **extra: str,
) -> ServerProcess:
    Path(environ["ROLLOUT_FLAGS_FILE"]).write_text(flags)
    return spawn({**environ, **extra}, app=ROLLOUT_APP, workers=workers)


def misbehave(environ: dict[str, str], twin: str, how: str) -> None:
    behave(Path(environ["ROLLOUT_BEHAVIOUR_FILE"]), twin, how)


def flag(server: ServerProcess, endpoint: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/_rollout/api/flags/{endpoint}", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def flip(server: ServerProcess, endpoint: str, **body: Any) -> None:
    response = httpx.patch(
        f"{server.url}/_rollout/api/flags/{endpoint}",
        json={"reason": "test", **body},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text


def rollout(server: ServerProcess, endpoint: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/_rollout/api/rollouts/{endpoint}", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def act(server: ServerProcess, endpoint: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/_rollout/api/rollouts/{endpoint}", json=body, headers=ADMIN, timeout=30
    )


def audit(server: ServerProcess, **params: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/_rollout/api/audit", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = DEADLINE_S) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def metric(server: ServerProcess, line_start: str) -> float | None:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


REASON = re.compile(r"^async error rate \d+\.\d% \(\d+/\d+\) > 2\.0% over \d+(\.\d)?s$")


def test_a_failing_canary_is_rolled_back_within_the_target_once_and_announced(
    spawn: Callable[..., ServerProcess],
    rollout_environ: dict[str, str],
    webhook: WebhookReceiver,
) -> None:
    # The defaults everywhere: guard, stats flush, guard tick, flag poll.
    server = start(
        spawn,
        rollout_environ,
        "version: 1\nroutes:\n  widget: {mode: legacy, sticky_by: random}\n",
        ROLLOUT_WEBHOOK=webhook.url,
    )
    misbehave(rollout_environ, "widget", "fail")
    with Traffic(server.url, "/lab/widget", rate=40) as traffic:  # canary 50%: 20 async/s
        flip(server, "widget", mode="canary", percent=50)
        wait_until(lambda: flag(server, "widget")["mode"] == "legacy", "the guard's rollback")
        rolled_back = time.monotonic()
        # Every worker serves legacy: later answers come from both, and none from the twin.
        wait_until(
            lambda: len({a.pid for a in traffic.since(rolled_back + 1) if a.pid}) == 2,
            "answers from both workers",
        )
    failures = [a for a in traffic.answers if a.status == 503]
    assert failures, "the twin never failed"
    last_async = max(a.at for a in traffic.answers if a.served_by == "async")
    assert last_async - failures[0].at <= TARGET_S, last_async - failures[0].at
    assert all(a.served_by == "legacy" for a in traffic.since(last_async))
    assert traffic.errors == []

    (rollback,) = audit(server, actor="guard")
    assert (rollback["endpoint"], rollback["action"]) == ("widget", "rollback")
    assert (rollback["before"]["mode"], rollback["after"]["mode"]) == ("canary", "legacy")
    assert REASON.match(rollback["reason"]), rollback["reason"]
    (notice,) = webhook.wait_for("rollback", "widget")
    assert notice["reason"] == rollback["reason"]
    assert (notice["from"]["text"], notice["to"]["text"], notice["actor"]) == (
        "canary 50%",
        "legacy",
        "guard",
    )
    assert notice["figures"]["verdict"] == "breach" and notice["figures"]["async_requests"] >= 50
    assert notice["time"]
    rollbacks = 'gateway_guard_rollbacks_total{endpoint="widget"}'
    assert wait_until(lambda: metric(server, rollbacks), "the rollback metric") == 1.0
    # It stays legacy: no flapping, no second rollback, until a person flips it.
    assert flag(server, "widget")["mode"] == "legacy"
    assert len(audit(server, actor="guard")) == 1


def test_a_slow_twin_is_rolled_back_on_latency(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(
        spawn,
        rollout_environ,
        "version: 1\ndefaults:\n  guard: {min_requests: 20}\n"
        "routes:\n  widget: {mode: canary, percent: 50, sticky_by: random}\n",
        ROLLOUT_STATS_FLUSH_S="0.5",
    )
    misbehave(rollout_environ, "widget", "slow")  # 300 ms against legacy's few
    with Traffic(server.url, "/lab/widget", rate=40, threads=8):
        wait_until(lambda: flag(server, "widget")["mode"] == "legacy", "the latency rollback")
    (rollback,) = audit(server, actor="guard")
    assert re.match(
        r"^async p95 latency \d+ ms is \d+\.\dx legacy's \d+ ms > 2x over \d+(\.\d)?s$",
        rollback["reason"],
    ), rollback["reason"]


def test_a_healthy_canary_is_left_alone(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(
        spawn,
        rollout_environ,
        "version: 1\ndefaults:\n  guard: {min_requests: 20}\n"
        "routes:\n  widget: {mode: canary, percent: 50, sticky_by: random}\n",
        ROLLOUT_STATS_FLUSH_S="0.5",
    )
    with Traffic(server.url, "/lab/widget", rate=40):
        view = wait_until(
            lambda: (
                (r := rollout(server, "widget"))["last_analysis"]["async_requests"] >= 100 and r
            ),
            "100 analysed async requests",
        )
    assert view["last_analysis"]["verdict"] == "healthy", view["last_analysis"]
    assert flag(server, "widget")["mode"] == "canary"
    assert audit(server, actor="guard") == []


def test_under_min_requests_the_guard_never_decides(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(
        spawn,
        rollout_environ,
        "version: 1\ndefaults:\n  guard: {min_requests: 30}\nroutes:\n  widget: {mode: async}\n",
        workers=1,
        ROLLOUT_STATS_FLUSH_S="0.2",
        ROLLOUT_GUARD_TICK_S="0.2",
    )
    misbehave(rollout_environ, "widget", "fail")
    with httpx.Client(base_url=server.url) as client:
        assert {client.get("/lab/widget").status_code for _ in range(29)} == {503}
        # The analysis sees all 29 failures, and still there is nothing to decide on...
        view = wait_until(
            lambda: (r := rollout(server, "widget"))["last_analysis"]["async_requests"] == 29 and r,
            "29 analysed requests",
        )
        assert view["last_analysis"]["verdict"] == "insufficient"
        assert (
            "too little traffic: 29 async requests of 30 needed" in view["last_analysis"]["reason"]
        )
        seen_at = time.monotonic()
        while time.monotonic() < seen_at + 2:  # ten guard ticks
            assert flag(server, "widget")["mode"] == "async"
            time.sleep(0.2)
        # ...until the 30th.
        assert client.get("/lab/widget").status_code == 503
    wait_until(lambda: flag(server, "widget")["mode"] == "legacy", "the rollback at 30")
    (rollback,) = audit(server, actor="guard")
    assert rollback["reason"].startswith("async error rate 100.0% (30/30) > 2.0% over ")


def test_shadow_disagreement_makes_an_endpoint_not_promotable_without_a_flip(
    spawn: Callable[..., ServerProcess], rollout_environ: dict[str, str]
) -> None:
    server = start(
        spawn,
        rollout_environ,
        "version: 1\ndefaults:\n  guard: {min_requests: 20, window: 5s}\n"
        "routes:\n  gizmo: {mode: shadow}\n",
        ROLLOUT_STATS_FLUSH_S="0.5",
    )
    misbehave(rollout_environ, "gizmo", "differ")
    with Traffic(server.url, "/lab/gizmo", rate=40):
        view = wait_until(
            lambda: not (r := rollout(server, "gizmo"))["promotable"] and r, "not promotable"
        )
        assert re.match(
            r"^mismatch rate \d+\.\d% \(\d+/\d+\) > 1\.0% over \d+(\.\d)?s$",
            view["promotable_reason"],
        ), view["promotable_reason"]
        # Shown on the board as well, and no flip: shadow stays.
        board = httpx.get(server.url + "/_rollout/?fragment=1", headers=ADMIN).text
        assert "not promotable" in board
        assert flag(server, "gizmo")["mode"] == "shadow"
        assert audit(server, actor="guard") == []
        # Once the twin agrees again, a later window makes it promotable.
        misbehave(rollout_environ, "gizmo", "ok")
        wait_until(lambda: rollout(server, "gizmo")["promotable"], "promotable again")
