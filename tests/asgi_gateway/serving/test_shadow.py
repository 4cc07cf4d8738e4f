"""Shadow traffic on the lab app: differences found and placed, the client never waits, budgets."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.asgi_gateway.conftest import LAB_APP
from tests.asgi_gateway.lab_app import ADMIN_TOKEN
from tests.conftest import ServerProcess

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DEADLINE_S = 15.0


def behave(server: ServerProcess, twin: str, how: str) -> None:
    response = httpx.post(server.url + "/lab/behave", json={"twin": twin, "as": how})
    assert response.status_code == 200, response.text


def lab_state(server: ServerProcess) -> dict[str, Any]:
    return httpx.get(server.url + "/lab/state").json()  # type: ignore[no-any-return]


def report(server: ServerProcess, endpoint: str = "item") -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/_rollout/api/shadow/{endpoint}", params={"window": "1h"}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def settled(
    server: ServerProcess, total: int, endpoint: str = "item", field: str = "all"
) -> dict[str, Any]:
    """The report once `total` outcomes (of `field`, or of any kind) have been recorded."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        data = report(server, endpoint)
        seen = (
            data["compared"] + data["errors"] + data["timeouts"] + data["skipped"]
            if field == "all"
            else data[field]
        )
        if seen >= total or time.monotonic() > deadline:
            return data
        time.sleep(0.1)


def test_a_twin_that_answers_alike_matches(lab_server: ServerProcess) -> None:
    for _ in range(20):
        response = httpx.get(lab_server.url + "/lab/item")
        assert (response.status_code, response.headers["x-served-by"]) == (200, "legacy")
    data = settled(lab_server, 20)
    assert (data["compared"], data["matched"], data["mismatched"]) == (20, 20, 0)
    assert data["mismatch_rate"] == 0.0
    assert data["recent"] == []


@pytest.mark.parametrize(
    ("how", "path", "legacy", "twin"),
    [
        ("field", "$.name", '"widget"', '"gadget"'),
        ("status", "status", "200", "202"),
        ("header", "header:content-type", '"application/json"', '"application/vnd.lab+json"'),
        ("order", "$.tags[0]", '"a"', '"c"'),
    ],
)
def test_each_difference_is_reported_with_its_path_and_both_values(
    lab_server: ServerProcess, how: str, path: str, legacy: str, twin: str
) -> None:
    behave(lab_server, "item", how)
    response = httpx.get(lab_server.url + "/lab/item", params={"color": "blue"})
    assert response.json()["name"] == "widget"  # the client got legacy's answer
    data = settled(lab_server, 1, field="mismatched")
    assert (data["mismatched"], data["mismatch_rate"]) == (1, 1.0)
    (record,) = data["recent"]
    assert (record["method"], record["path"], record["query"]) == (
        "GET",
        "/lab/item",
        "color=blue",
    )
    assert record["status"]["legacy"] == 200
    found = {d["path"]: d for d in record["diffs"]}
    assert path in found, record["diffs"]
    assert (found[path]["legacy"], found[path]["async"]) == (legacy, twin)
    # The ignored path ($.generated_at differs on every answer) is never reported.
    assert not any(d["path"] == "$.generated_at" for d in record["diffs"])


def test_numbers_compare_by_value(lab_server: ServerProcess) -> None:
    behave(lab_server, "item", "number")
    httpx.get(lab_server.url + "/lab/item")
    data = settled(lab_server, 1)
    assert (data["matched"], data["mismatched"]) == (1, 0)


def test_the_client_never_waits_for_a_blocked_twin(lab_server: ServerProcess) -> None:
    behave(lab_server, "item", "block")
    response = httpx.get(lab_server.url + "/lab/item", timeout=5)
    assert response.status_code == 200
    # The client has legacy's answer; the twin is still blocked on an event only the test
    # sets, so the answer cannot have waited for it.
    deadline = time.monotonic() + DEADLINE_S
    while lab_state(lab_server)["blocked"] != 1:
        assert time.monotonic() < deadline, "the twin never started"
        time.sleep(0.02)
    assert report(lab_server)["compared"] == 0
    httpx.post(lab_server.url + "/lab/release")
    data = settled(lab_server, 1)
    assert data["matched"] == 1


def set_item_timeout(server: ServerProcess, timeout: str) -> dict[str, Any]:
    """PATCH the item endpoint's shadow timeout through the admin API; the audited change."""
    response = httpx.patch(
        server.url + "/_rollout/api/flags/item",
        json={"shadow": {"timeout": timeout}, "reason": f"shadow timeout {timeout}"},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_twin_waits_for_a_gap_in_client_traffic(lab_server: ServerProcess) -> None:
    set_item_timeout(lab_server, "60s")  # it may wait a quarter of that for a gap
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(httpx.get, lab_server.url + "/lab/hold", timeout=30)
        deadline = time.monotonic() + DEADLINE_S
        while lab_state(lab_server)["holding"] != 1:
            assert time.monotonic() < deadline, "the held request never arrived"
            time.sleep(0.02)
        assert httpx.get(lab_server.url + "/lab/item").status_code == 200
        # Another client request is in flight: the twin gives way, it has not started.
        for _ in range(10):
            assert lab_state(lab_server)["calls"].get("item", 0) == 0
            time.sleep(0.05)
        httpx.post(lab_server.url + "/lab/let-go")
        assert held.result().status_code == 200
    data = settled(lab_server, 1)
    assert (data["compared"], data["matched"]) == (1, 1)
    assert lab_state(lab_server)["calls"]["item"] == 1


def test_a_hanging_twin_is_cancelled_and_counted_as_a_timeout(lab_server: ServerProcess) -> None:
    assert set_item_timeout(lab_server, "300ms")["after"]["shadow"]["timeout_s"] == 0.3
    behave(lab_server, "item", "hang")
    for _ in range(3):
        assert httpx.get(lab_server.url + "/lab/item").status_code == 200
    data = settled(lab_server, 3, field="timeouts")
    assert (data["timeouts"], data["compared"]) == (3, 0)


def test_a_raising_twin_is_counted_as_an_error_and_never_reaches_the_client(
    lab_server: ServerProcess,
) -> None:
    behave(lab_server, "item", "raise")
    for _ in range(3):
        response = httpx.get(lab_server.url + "/lab/item")
        assert (response.status_code, response.json()["name"]) == (200, "widget")
    data = settled(lab_server, 3, field="errors")
    assert data["errors"] == 3
    assert "Traceback" not in httpx.get(lab_server.url + "/lab/item").text


def test_a_full_budget_skips_and_counts(
    lab_environ: dict[str, str], spawn: Callable[..., ServerProcess]
) -> None:
    server = spawn({**lab_environ, "LAB_SHADOW_CONCURRENCY": "2"}, app=LAB_APP)
    behave(server, "item", "block")
    for _ in range(2):
        assert httpx.get(server.url + "/lab/item").status_code == 200
    deadline = time.monotonic() + DEADLINE_S
    while lab_state(server)["blocked"] != 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # Both twins in flight: the next ones are skipped, never queued, and answered at once.
    for _ in range(5):
        assert httpx.get(server.url + "/lab/item", timeout=5).status_code == 200
    assert lab_state(server)["calls"]["item"] == 2
    httpx.post(server.url + "/lab/release")
    data = settled(server, 7)
    assert (data["skipped"], data["matched"]) == (5, 2)


def test_sampling_compares_about_that_share(lab_server: ServerProcess) -> None:
    response = httpx.patch(
        lab_server.url + "/_rollout/api/flags/item",
        json={"shadow": {"sample": 0.25}, "reason": "sample a quarter"},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    with httpx.Client(base_url=lab_server.url) as client:
        for _ in range(400):
            assert client.get("/lab/item").status_code == 200
    started = lab_state(lab_server)["calls"]["item"]  # twins started, counted as they start
    assert 60 <= started <= 140, started
    assert settled(lab_server, started)["compared"] == started


def test_the_copy_carries_the_callers_identity(lab_server: ServerProcess) -> None:
    headers = {"Authorization": "Bearer someone-elses-token", "Cookie": "lab_session=s3ss10n"}
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda i: httpx.get(
                    lab_server.url + "/lab/whoami", params={"q": str(i)}, headers=headers
                ),
                range(8),
            )
        )
    data = settled(lab_server, 8, endpoint="whoami")
    assert (data["matched"], data["mismatched"]) == (8, 0)
    # And what is kept of a request never holds its credentials.
    behave(lab_server, "whoami", "field")  # (whoami ignores behaviours: still a match)
    assert "s3ss10n" not in str(report(lab_server, "whoami"))


def test_the_admin_api_refuses_a_bad_shadow_setting(lab_server: ServerProcess) -> None:
    for body, text in (
        ({"shadow": {"sample": 2}}, "shadow.sample must be a number from 0 to 1"),
        ({"shadow": {"timeout": "soon"}}, "shadow.timeout: bad duration 'soon'"),
        ({"compare": {"ignore": ["meta"]}}, "bad JSON path 'meta'"),
        ({"compare": {"colour": 1}}, "unknown compare key 'colour'"),
        ({"fallback": "yes"}, "fallback must be true or false"),
    ):
        response = httpx.patch(
            lab_server.url + "/_rollout/api/flags/item",
            json={**body, "reason": "bad"},
            headers=ADMIN,
        )
        assert response.status_code == 422, response.text
        assert text in response.json()["error"]["message"]


def test_the_shadow_report_needs_an_admin_and_a_known_endpoint(lab_server: ServerProcess) -> None:
    assert httpx.get(lab_server.url + "/_rollout/api/shadow/item").status_code == 401
    missing = httpx.get(lab_server.url + "/_rollout/api/shadow/nope", headers=ADMIN)
    assert missing.status_code == 404
    bad = httpx.get(
        lab_server.url + "/_rollout/api/shadow/item", params={"window": "forever"}, headers=ADMIN
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "window"


def test_shadow_counts_reach_prometheus(lab_server: ServerProcess) -> None:
    behave(lab_server, "item", "field")
    httpx.get(lab_server.url + "/lab/item")
    settled(lab_server, 1, field="mismatched")
    text = httpx.get(lab_server.url + "/metrics").text
    assert 'gateway_shadow_total{endpoint="item",result="mismatch"} 1.0' in text


def test_noise_is_learnt_from_two_legacy_answers_and_reported_apart(
    lab_server: ServerProcess,
) -> None:
    # rows[0].at_ns differs between any two answers, legacy's own included: noise.
    for _ in range(5):
        assert httpx.get(lab_server.url + "/lab/noisy").status_code == 200
    data = settled(lab_server, 5, endpoint="noisy")
    assert data["noise"] == ["$.rows[*].at_ns"]
    assert data["mismatched"] == 0
    assert data["compared"] == 5
    # A real difference beside the noise is still a mismatch, and named.
    behave(lab_server, "noisy", "field")
    httpx.get(lab_server.url + "/lab/noisy")
    data = settled(lab_server, 1, endpoint="noisy", field="mismatched")
    assert "$.id" in [d["path"] for d in data["recent"][0]["diffs"]]


def test_learnt_noise_is_ignored_with_learn_noise(lab_server: ServerProcess) -> None:
    response = httpx.patch(
        lab_server.url + "/_rollout/api/flags/noisy",
        json={"compare": {"learn_noise": True}, "reason": "ignore what legacy varies"},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    for _ in range(5):
        httpx.get(lab_server.url + "/lab/noisy")
    data = settled(lab_server, 5, endpoint="noisy")
    assert data["matched"] >= 4  # the first may be compared before any noise was learnt
    assert data["mismatched"] == 0


def test_the_dashboard_shows_mismatch_rates_diffs_and_noise(lab_server: ServerProcess) -> None:
    behave(lab_server, "item", "field")
    for _ in range(4):
        httpx.get(lab_server.url + "/lab/item")
    for _ in range(3):
        httpx.get(lab_server.url + "/lab/noisy")
    settled(lab_server, 4, field="mismatched")
    settled(lab_server, 3, endpoint="noisy")
    board = httpx.get(lab_server.url + "/_rollout/", headers=ADMIN)
    row = board.text.split('data-endpoint="item"', 1)[1].split("</tr>", 1)[0]
    assert "100.0%</span> of 4" in row
    page = httpx.get(lab_server.url + "/_rollout/endpoints/item", headers=ADMIN)
    assert page.status_code == 200
    assert "4 mismatched" in page.text
    assert (
        "<mark>$.name</mark></td><td><code>&#34;widget&#34;</code></td><td><code>&#34;gadget&#34;"
        in page.text
    )
    noisy = httpx.get(lab_server.url + "/_rollout/endpoints/noisy", headers=ADMIN)
    assert "<code>$.rows[*].at_ns</code>" in noisy.text
