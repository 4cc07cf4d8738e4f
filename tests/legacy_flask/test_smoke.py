from __future__ import annotations

from tests.conftest import LiveServer, Person


def test_me_answers_for_a_bearer_token(legacy_server: LiveServer, alice: Person) -> None:
    with legacy_server.client() as client:
        response = client.get("/api/me", headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["email"] == "alice@example.com"
