"""The admin API (/_rollout/api), /readyz, X-Served-By and X-Backend-Override on a live gateway."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.conftest import Person, ServerProcess

FLAG = "/_rollout/api/flags/appointments.list"


def patch(client: httpx.Client, body: dict[str, Any], path: str = FLAG) -> httpx.Response:
    return client.patch(path, json=body)


def assert_error(response: httpx.Response, status: int, code: str, text: str = "") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert text in error["message"], error


# -- reading flags -------------------------------------------------------------------------------


def test_list_flags_as_admin(gateway_server: ServerProcess, admin: Person) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        response = client.get("/_rollout/api/flags")

    assert response.status_code == 200
    body = response.json()
    flags = {flag["endpoint"]: flag for flag in body["data"]}
    assert body["meta"]["total"] == len(body["data"])
    assert isinstance(body["meta"]["version"], int)
    listed = flags["appointments.list"]
    assert (listed["mode"], listed["has_twin"], listed["drift"]) == ("legacy", True, False)
    assert listed["declared"]["mode"] == "legacy"
    assert any(not flag["has_twin"] for flag in flags.values())  # pages have no twin


def test_get_one_flag_as_admin(gateway_server: ServerProcess, admin: Person) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        response = client.get(FLAG)

    assert response.status_code == 200
    flag = response.json()
    assert flag["endpoint"] == "appointments.list"
    assert (flag["mode"], flag["percent"], flag["sticky_by"]) == ("legacy", 0.0, "user")
    assert set(flag["guard"]) == {
        "max_error_rate",
        "min_requests",
        "window_s",
        "max_latency_ratio",
        "max_mismatch_rate",
    }
    assert flag["rollout"] == {
        "steps": [1.0, 5.0, 25.0, 50.0, 100.0],
        "interval_s": 600.0,
        "start_from": "canary",
        "shadow_for_s": 600.0,
    }


def test_unknown_endpoint_is_404(gateway_server: ServerProcess, admin: Person) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        got = client.get("/_rollout/api/flags/appointments.nope")
        patched = patch(
            client, {"mode": "async", "reason": "x"}, "/_rollout/api/flags/appointments.nope"
        )
        unknown_page = client.get("/_rollout/api/nothing-here")

    assert_error(got, 404, "not_found", "unknown endpoint id 'appointments.nope'")
    assert_error(patched, 404, "not_found", "unknown endpoint id 'appointments.nope'")
    assert_error(unknown_page, 404, "not_found", "/_rollout/api/nothing-here")


# -- changing flags ------------------------------------------------------------------------------


def test_patch_flips_the_flag_and_returns_before_and_after(
    gateway_server: ServerProcess, admin: Person
) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        version = client.get("/_rollout/api/flags").json()["meta"]["version"]
        response = patch(client, {"mode": "canary", "percent": 10, "reason": "start canary"})
        after = client.get(FLAG).json()
        listed = client.get("/_rollout/api/flags").json()["meta"]["version"]

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["before"]["mode"] == "legacy"
    assert (body["after"]["mode"], body["after"]["percent"], body["after"]["drift"]) == (
        "canary",
        10.0,
        True,
    )
    assert (after["mode"], after["percent"], after["declared"]["mode"]) == (
        "canary",
        10.0,
        "legacy",
    )
    assert listed == version + 1


def test_patch_keeps_what_it_does_not_name(gateway_server: ServerProcess, admin: Person) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        patch(client, {"mode": "canary", "percent": 10, "sticky_by": "session", "reason": "a"})
        response = patch(client, {"mode": "canary", "percent": 20.5, "reason": "b"})

    after = response.json()["after"]
    assert (after["percent"], after["sticky_by"]) == (20.5, "session")


NO_REASON = [
    {"mode": "async"},
    {"mode": "async", "reason": ""},
    {"mode": "async", "reason": "   "},
    {"mode": "async", "reason": 42},
]

INVALID = [
    ({"mode": "sideways"}, "mode", "unknown mode 'sideways'"),
    ({"mode": "canary", "percent": 150}, "percent", "percent 150 is out of range (0 to 100)"),
    ({"mode": "canary", "percent": 1.005}, "percent", "has more than two decimals"),
    ({"mode": "canary", "percent": "10"}, "percent", "percent must be a number"),
    ({"mode": "canary"}, "percent", "mode canary needs a percent"),
    ({"mode": "async", "sticky_by": "cookie"}, "sticky_by", "bad sticky key 'cookie'"),
    ({"mode": "async", "colour": "red"}, "colour", "unknown field 'colour'"),
    ({"mode": "async", "percent": 30}, "percent", "percent is only used with mode canary"),
]


# One server per test keeps the suite quick; each case is still checked on its own.
def test_patch_without_reason_is_422(gateway_server: ServerProcess, admin: Person) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        for body in NO_REASON:
            response = patch(client, body)
            assert_error(response, 422, "validation_error", "a reason is required")
            assert response.json()["error"]["details"] == [
                {"field": "reason", "message": "is required"}
            ]
        after = client.get(FLAG).json()

    assert after["mode"] == "legacy"


def test_invalid_patch_is_422_with_the_reason(gateway_server: ServerProcess, admin: Person) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        for body, field, reason in INVALID:
            response = patch(client, {**body, "reason": "try it"})
            assert_error(response, 422, "validation_error", reason)
            assert response.json()["error"]["details"][0]["field"] == field, body
        after = client.get(FLAG).json()
        audit = client.get("/_rollout/api/audit").json()["data"]

    assert after["mode"] == "legacy"
    assert [e for e in audit if e["action"] != "apply"] == []


def test_a_non_legacy_mode_needs_a_twin(gateway_server: ServerProcess, admin: Person) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        no_twin = next(
            f["endpoint"]
            for f in client.get("/_rollout/api/flags").json()["data"]
            if not f["has_twin"]
        )
        response = patch(client, {"mode": "async", "reason": "x"}, f"/_rollout/api/flags/{no_twin}")

    assert_error(response, 422, "validation_error", "has no async twin")


def test_malformed_json_is_400(gateway_server: ServerProcess, admin: Person) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        broken = client.patch(
            FLAG, content=b'{"mode": "async",', headers={"Content-Type": "application/json"}
        )
        not_object = client.patch(
            FLAG, content=b'["async"]', headers={"Content-Type": "application/json"}
        )

    assert_error(broken, 400, "malformed_json", "request body is not valid JSON")
    assert_error(not_object, 400, "malformed_json", "must be a JSON object")


def test_deeply_nested_json_is_400_not_500(gateway_server: ServerProcess, admin: Person) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        response = client.patch(
            FLAG, content=b"[" * 50_000, headers={"Content-Type": "application/json"}
        )

    assert_error(response, 400, "malformed_json", "nested too deeply")


def test_a_patch_may_name_only_what_it_changes(
    gateway_server: ServerProcess, admin: Person
) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        patch(client, {"mode": "canary", "percent": 10, "reason": "start"})
        wider = patch(client, {"percent": 30, "reason": "wider"})
        sticky = patch(client, {"sticky_by": "session", "reason": "by session"})

    assert (wider.status_code, sticky.status_code) == (200, 200)
    after = sticky.json()["after"]
    assert (after["mode"], after["percent"], after["sticky_by"]) == ("canary", 30.0, "session")


def test_concurrent_patches_both_apply_and_each_audit_row_shows_its_own_change(
    gateway_server: ServerProcess, admin: Person
) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        patch(client, {"mode": "canary", "percent": 10, "reason": "start"})
    bodies = [{"percent": 30, "reason": "wider"}, {"sticky_by": "session", "reason": "sticky"}]
    with ThreadPoolExecutor(2) as pool:
        responses = list(
            pool.map(
                lambda body: httpx.patch(
                    gateway_server.url + FLAG, json=body, headers=admin.headers, timeout=10
                ),
                bodies,
            )
        )
    assert [r.status_code for r in responses] == [200, 200]
    with gateway_server.client(headers=admin.headers) as client:
        flag = client.get(FLAG).json()
        audit = client.get("/_rollout/api/audit", params={"endpoint": "appointments.list"})
    assert (flag["percent"], flag["sticky_by"]) == (30.0, "session")
    for entry in audit.json()["data"][:2]:
        changed = {k for k in entry["after"] if entry["after"][k] != entry["before"].get(k)}
        assert changed == ({"percent"} if entry["reason"] == "wider" else {"sticky_by"})


def test_if_match_with_a_stale_etag_is_409_and_changes_nothing(
    gateway_server: ServerProcess, admin: Person
) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        seen = client.get(FLAG)
        assert seen.headers["etag"] == f'"{seen.json()["etag"]}"'
        patch(client, {"mode": "canary", "percent": 10, "reason": "someone else"})
        stale = client.patch(
            FLAG,
            json={"mode": "async", "reason": "from what I saw"},
            headers={"If-Match": seen.headers["etag"]},
        )
        fresh_tag = client.get(FLAG).headers["etag"]
        fresh = client.patch(
            FLAG, json={"mode": "async", "reason": "now"}, headers={"If-Match": fresh_tag}
        )

    assert_error(stale, 409, "conflict", "changed since it was read (now canary 10%)")
    assert fresh.status_code == 200
    assert fresh.json()["after"]["mode"] == "async"


def test_wrong_content_type_is_415(gateway_server: ServerProcess, admin: Person) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        form = client.patch(FLAG, data={"mode": "async", "reason": "x"})
        none = client.patch(FLAG, content=b'{"mode": "async", "reason": "x"}')

    assert_error(form, 415, "unsupported_media_type", "Content-Type: application/json")
    assert_error(none, 415, "unsupported_media_type")


def test_oversized_body_is_413(gateway_server: ServerProcess, admin: Person) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        response = patch(client, {"mode": "async", "reason": "x" * 70_000})

    assert_error(response, 413, "payload_too_large")


# -- who may ------------------------------------------------------------------------------------

ADMIN_ONLY = [
    ("GET", "/_rollout/api/flags"),
    ("GET", FLAG),
    ("PATCH", FLAG),
    ("GET", "/_rollout/api/audit"),
]


def test_non_admin_is_403_and_anonymous_401(gateway_server: ServerProcess, alice: Person) -> None:
    with gateway_server.client() as client:
        for method, path in ADMIN_ONLY:
            body = {"json": {"mode": "async", "reason": "let me"}} if method == "PATCH" else {}
            as_alice = client.request(method, path, headers=alice.headers, **body)
            anonymous = client.request(method, path, **body)
            wrong_token = client.request(
                method, path, headers={"Authorization": "Bearer nope"}, **body
            )
            not_bearer = client.request(
                method, path, headers={"Authorization": "Basic YTpi"}, **body
            )

            assert_error(as_alice, 403, "forbidden", "alice@example.com is not an admin")
            assert_error(anonymous, 401, "unauthorized")
            assert_error(wrong_token, 401, "unauthorized")
            assert_error(not_bearer, 401, "unauthorized")


def test_refused_patch_changes_nothing(
    gateway_server: ServerProcess, admin: Person, alice: Person
) -> None:
    with gateway_server.client() as client:
        client.patch(FLAG, json={"mode": "async", "reason": "let me"}, headers=alice.headers)
        client.patch(FLAG, json={"mode": "async", "reason": "let me"})
        flag = client.get(FLAG, headers=admin.headers).json()
        audit = client.get("/_rollout/api/audit", headers=admin.headers).json()["data"]

    assert flag["mode"] == "legacy"
    assert [e for e in audit if e["action"] != "apply"] == []


# -- audit ---------------------------------------------------------------------------------------


def test_audit_shows_the_patch(gateway_server: ServerProcess, admin: Person) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        patch(client, {"mode": "async", "reason": "  twin verified in shadow  "})
        audit = client.get("/_rollout/api/audit").json()["data"]
        mine = client.get(
            "/_rollout/api/audit",
            params={"endpoint": "appointments.list", "actor": admin.email, "limit": "1"},
        ).json()["data"]
        bad_limit = client.get("/_rollout/api/audit", params={"limit": "many"})

    entry = audit[0]
    assert (entry["endpoint"], entry["actor"], entry["action"], entry["reason"]) == (
        "appointments.list",
        "admin@example.com",
        "set",
        "twin verified in shadow",
    )
    assert entry["before"]["mode"] == "legacy"
    assert entry["after"]["mode"] == "async"
    assert mine == [entry]
    assert_error(bad_limit, 422, "validation_error", "limit must be a whole number")


# -- serving -------------------------------------------------------------------------------------


def test_after_patch_to_async_a_plain_request_is_served_async(
    gateway_server: ServerProcess, admin: Person, alice: Person
) -> None:
    with gateway_server.client() as client:
        before = client.get("/api/appointments", headers=alice.headers)
        client.patch(FLAG, json={"mode": "async", "reason": "go"}, headers=admin.headers)
        after = client.get("/api/appointments", headers=alice.headers)
        back = client.patch(FLAG, json={"mode": "legacy", "reason": "back"}, headers=admin.headers)
        again = client.get("/api/appointments", headers=alice.headers)

    assert (before.status_code, before.headers["x-served-by"]) == (200, "legacy")
    assert (after.status_code, after.headers["x-served-by"]) == (200, "async")
    assert back.status_code == 200
    assert again.headers["x-served-by"] == "legacy"
    assert before.json() == after.json()


def test_override_is_honoured_for_admins(gateway_server: ServerProcess, admin: Person) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        forced_async = client.get("/api/appointments", headers={"X-Backend-Override": "async"})
        client.patch(FLAG, json={"mode": "async", "reason": "go"})
        forced_legacy = client.get("/api/appointments", headers={"X-Backend-Override": "legacy"})
        junk = client.get("/api/appointments", headers={"X-Backend-Override": "sideways"})

    assert forced_async.headers["x-served-by"] == "async"
    assert forced_legacy.headers["x-served-by"] == "legacy"
    assert junk.headers["x-served-by"] == "async"  # an unknown value falls back to the flag


def test_override_is_ignored_for_non_admins(
    gateway_server: ServerProcess, admin: Person, alice: Person
) -> None:
    with gateway_server.client() as client:
        as_alice = client.get(
            "/api/appointments", headers={**alice.headers, "X-Backend-Override": "async"}
        )
        anonymous = client.get("/api/appointments", headers={"X-Backend-Override": "async"})
        wrong_token = client.get(
            "/api/appointments",
            headers={"Authorization": "Bearer nope", "X-Backend-Override": "async"},
        )
        client.patch(FLAG, json={"mode": "async", "reason": "go"}, headers=admin.headers)
        back_to_legacy = client.get(
            "/api/appointments", headers={**alice.headers, "X-Backend-Override": "legacy"}
        )

    assert (as_alice.status_code, as_alice.headers["x-served-by"]) == (200, "legacy")
    assert (anonymous.status_code, anonymous.headers["x-served-by"]) == (401, "legacy")
    assert (wrong_token.status_code, wrong_token.headers["x-served-by"]) == (401, "legacy")
    assert back_to_legacy.headers["x-served-by"] == "async"


EVERYWHERE = [
    ("GET", "/login"),
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/no/such/page"),
    ("GET", "/api/no-such-endpoint"),
    ("GET", "/api/appointments/999999"),
    ("GET", "/api/appointments"),
    ("DELETE", "/api/appointments"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/_rollout/api/flags"),
    ("GET", "/_rollout/nothing"),
]


def test_every_response_says_who_served_it(gateway_server: ServerProcess, alice: Person) -> None:
    with gateway_server.client(headers=alice.headers) as client:
        for method, path in EVERYWHERE:
            response = client.request(method, path)
            assert response.headers.get("x-served-by") in ("legacy", "async"), (
                method,
                path,
                response.status_code,
                dict(response.headers),
            )


# -- readiness -----------------------------------------------------------------------------------


def test_readyz_shows_flags_ok_and_the_version(
    gateway_server: ServerProcess, admin: Person
) -> None:
    with gateway_server.client() as client:
        ready = client.get("/readyz")
        version = client.get("/_rollout/api/flags", headers=admin.headers).json()["meta"]
        client.patch(FLAG, json={"mode": "async", "reason": "go"}, headers=admin.headers)
        after = client.get("/readyz")

    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"]["flags"] == "ok"
    assert ready.json()["checks"]["flags_version"] == version["version"]
    assert after.json()["checks"]["flags_version"] == version["version"] + 1
