"""Fallback on the lab app: a failing twin's safe request is answered by legacy, and counted."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.asgi_gateway.lab_app import ADMIN_TOKEN
from tests.asgi_gateway.serving.test_shadow import behave, lab_state
from tests.conftest import ServerProcess

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def scrape(server: ServerProcess) -> str:
    return httpx.get(server.url + "/metrics").text


def counter(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_for_counter(server: ServerProcess, line_start: str, value: float) -> str:
    deadline = time.monotonic() + 10
    while True:
        text = scrape(server)
        if counter(text, line_start) >= value or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


@pytest.mark.parametrize("how", ["raise", "fail_5xx", "hang"])
def test_a_failing_twin_is_replaced_by_legacys_answer_and_counted(
    lab_server: ServerProcess, how: str
) -> None:
    behave(lab_server, "fallible", how)
    for _ in range(3):
        response = httpx.get(lab_server.url + "/lab/fallible", timeout=10)
        assert response.status_code == 200
        assert response.json() == {"served_by": "legacy"}
        assert response.headers["x-served-by"] == "legacy"
        assert response.headers["x-fallback"] == "async-error"
    text = wait_for_counter(lab_server, 'gateway_fallbacks_total{endpoint="fallible"}', 3)
    assert counter(text, 'gateway_fallbacks_total{endpoint="fallible"}') == 3
    # The failure stays visible: each one is an async error too.
    assert counter(text, 'gateway_errors_total{backend="async",endpoint="fallible"}') == 3
    assert counter(text, 'gateway_errors_total{backend="legacy",endpoint="fallible"}') == 0


def test_a_healthy_twin_answers_itself(lab_server: ServerProcess) -> None:
    response = httpx.get(lab_server.url + "/lab/fallible")
    assert response.json() == {"served_by": "async"}
    assert response.headers["x-served-by"] == "async"
    assert "x-fallback" not in response.headers


def test_a_slow_twin_under_the_timeout_still_answers(lab_server: ServerProcess) -> None:
    behave(lab_server, "fallible", "slow")  # 300 ms, under the 1 s fallback timeout
    response = httpx.get(lab_server.url + "/lab/fallible")
    assert response.json() == {"served_by": "async"}


def test_a_twin_that_failed_after_starting_its_answer_is_not_replayed(
    lab_server: ServerProcess,
) -> None:
    behave(lab_server, "fallible", "fail_after_start")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(lab_server.url + "/lab/fallible")
    assert counter(scrape(lab_server), 'gateway_fallbacks_total{endpoint="fallible"}') == 0


def test_a_write_is_never_replayed(lab_server: ServerProcess) -> None:
    behave(lab_server, "fallible_write", "raise")
    response = httpx.post(lab_server.url + "/lab/fallible-write")
    assert response.status_code == 500
    assert response.headers["x-served-by"] == "async"
    assert "x-fallback" not in response.headers
    state: dict[str, Any] = lab_state(lab_server)
    assert (state["writes"], state["legacy_writes"]) == (1, 0)


def test_fallback_on_a_write_only_endpoint_is_refused(lab_server: ServerProcess) -> None:
    response = httpx.patch(
        lab_server.url + "/_rollout/api/flags/fallible_write",
        json={"fallback": True, "reason": "try"},
        headers=ADMIN,
    )
    assert response.status_code == 422
    assert "fallback only replays safe requests" in response.json()["error"]["message"]
