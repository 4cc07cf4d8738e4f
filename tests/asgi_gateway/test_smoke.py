from __future__ import annotations

from tests.conftest import Person, ServerProcess


def test_admin_override_reaches_the_async_twin(
    gateway_server: ServerProcess, admin: Person
) -> None:
    with gateway_server.client(headers=admin.headers) as client:
        plain = client.get("/api/appointments")
        forced = client.get("/api/appointments", headers={"X-Backend-Override": "async"})
    assert plain.headers["x-served-by"] == "legacy"
    assert forced.headers["x-served-by"] == "async"
    assert plain.json() == forced.json()
