"""The one session cookie reader: Flask's format, duplicates, forgeries, expiry, the sticky key."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from flask import request
from flask.json.tag import TaggedJSONSerializer
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from asgi_gateway.app import sticky_user_key
from legacy_flask import create_app
from shared.config import Settings
from shared.sessions import SessionIdentity, SessionReader, cookie_values, session_identity

SECRET = "a-test-secret-key-of-some-length"


def flask_cookie(data: dict[str, Any], *, secret: str = SECRET, age_s: float = 0) -> str:
    """A session cookie exactly as Flask signs one (salt, key derivation, tagged JSON)."""

    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_s)

    serializer = URLSafeTimedSerializer(
        secret,
        salt="cookie-session",
        serializer=TaggedJSONSerializer(),
        signer=Signer,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
    )
    return serializer.dumps(data)


ALICE = flask_cookie({"user_id": 2, "sid": "alice-sid"})
ADMIN = flask_cookie({"user_id": 1, "sid": "admin-sid"})


def test_a_cookie_signed_by_flask_reads_back() -> None:
    reader = SessionReader(SECRET)
    assert reader.read(f"aa_session={ALICE}") == {"user_id": 2, "sid": "alice-sid"}
    assert reader.identity(f"theme=dark; aa_session={ALICE}") == SessionIdentity(2, "alice-sid")


def test_the_legacy_app_reads_the_same_cookie_through_the_shared_reader(
    settings: Settings,
) -> None:
    app = create_app(settings=settings, defer_runtime=True)
    cookie = flask_cookie({"user_id": 2, "sid": "alice-sid"}, secret=settings.secret_key)
    with app.test_request_context(headers={"Cookie": f"aa_session={cookie}"}):
        opened = app.session_interface.open_session(app, request)
        assert dict(opened or {}) == {"user_id": 2, "sid": "alice-sid"}
    duplicate = f"aa_session={cookie}; aa_session={flask_cookie({'user_id': 1, 'sid': 'x'})}"
    with app.test_request_context(headers={"Cookie": duplicate}):
        opened = app.session_interface.open_session(app, request)
        assert dict(opened or {}) == {}


@pytest.mark.parametrize(
    "header",
    [
        f"aa_session={ALICE}; aa_session={ADMIN}",  # werkzeug took the first, Starlette the last
        f"aa_session={ADMIN}, aa_session={ALICE}",  # two Cookie headers, joined by the server
        f"aa_session=; aa_session={ALICE}",
        f'aa_session={ALICE}; aa_session="{ADMIN}"',
    ],
)
def test_two_different_session_cookies_are_no_session(header: str) -> None:
    assert SessionReader(SECRET).read(header) == {}


def test_the_same_cookie_twice_is_one_cookie() -> None:
    header = f'aa_session={ALICE}; x=1; aa_session="{ALICE}"'
    assert SessionReader(SECRET).identity(header) == SessionIdentity(2, "alice-sid")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "other=1",
        "aa_session=",
        "aa_session=eyJ1c2VyX2lkIjoyfQ.forged.signature",
        f"aa_session={flask_cookie({'user_id': 2, 'sid': 's'}, secret='another-secret-key-123')}",
        f"aa_session={flask_cookie(['not', 'a', 'dict'])}",  # type: ignore[arg-type]
        f"xaa_session={ALICE}",
    ],
)
def test_missing_forged_or_foreign_cookies_read_as_empty(header: str | None) -> None:
    assert SessionReader(SECRET).read(header) == {}


def test_an_expired_cookie_reads_as_empty() -> None:
    old = flask_cookie({"user_id": 2, "sid": "s"}, age_s=3600)
    assert SessionReader(SECRET, max_age_s=7200).read(f"aa_session={old}") != {}
    assert SessionReader(SECRET, max_age_s=60).read(f"aa_session={old}") == {}


@pytest.mark.parametrize(
    "data",
    [
        {"user_id": 2},  # signed in before sessions were server-side: no sid
        {"user_id": True, "sid": "s"},
        {"user_id": "2", "sid": "s"},
        {"user_id": 2, "sid": ""},
        {"user_id": 2, "sid": 5},
        {"csrf_token": "t"},
    ],
)
def test_only_a_user_id_with_a_session_id_is_an_identity(data: dict[str, Any]) -> None:
    assert session_identity(data) is None


def test_cookie_values_keeps_order_and_drops_quotes() -> None:
    assert cookie_values('a=1; aa_session="x"; b=2, aa_session=y', "aa_session") == ["x", "y"]
    assert cookie_values(None, "aa_session") == []


def test_the_sticky_key_follows_the_reader_and_falls_back_to_the_token() -> None:
    key = sticky_user_key(SessionReader(SECRET))

    def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
        return {"headers": list(headers)}

    assert key(scope((b"cookie", f"aa_session={ALICE}".encode()))) == "u:2"
    # Two Cookie headers are read joined, as the legacy side reads them.
    split = scope((b"cookie", b"theme=dark"), (b"cookie", f"aa_session={ADMIN}".encode()))
    assert key(split) == "u:1"
    bearer = (b"authorization", b"Bearer aa_token")
    duplicate = (b"cookie", f"aa_session={ALICE}; aa_session={ADMIN}".encode())
    token_key = key(scope(bearer))
    assert token_key is not None and token_key.startswith("t:")
    assert key(scope(duplicate, bearer)) == token_key
    assert key(scope(duplicate)) is None


def test_the_sticky_key_cache_stays_bounded() -> None:
    reader = SessionReader(SECRET)
    for n in range(5000):
        reader.user_key(f"aa_session={ALICE}; n={n}")
    assert len(reader._keys) <= 4096
    assert reader.user_key(f"aa_session={ALICE}") == "u:2"
