"""The sticky `user` key read from a Flask app's signed session cookie, and from bearer tokens."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from asgi_gateway.serving.identity import FlaskSessionUser, bearer_key, cookie


def flask_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update({"SECRET_KEY": "identity-secret-0123456789", **config})
    return app


def signed(app: Flask, data: dict[str, Any]) -> str:
    """The session cookie value Flask itself would set for `data`."""
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    assert serializer is not None
    return serializer.dumps(data)  # type: ignore[no-any-return]


def scope(*headers: tuple[str, str]) -> dict[str, Any]:
    return {"type": "http", "headers": [(k.encode(), v.encode("latin-1")) for k, v in headers]}


def test_a_signed_session_gives_the_users_key() -> None:
    app = flask_app()
    reader = FlaskSessionUser(app)
    value = signed(app, {"user_id": 42})
    assert reader(scope(("cookie", f"theme=dark; session={value}"))) == "u:42"


def test_a_quoted_cookie_value_is_unquoted() -> None:
    app = flask_app()
    value = signed(app, {"user_id": 7})
    assert cookie(scope(("cookie", f'session="{value}"')), "session") == value
    assert FlaskSessionUser(app)(scope(("cookie", f'session="{value}"'))) == "u:7"


def test_an_empty_or_missing_cookie_is_no_key() -> None:
    assert cookie(scope(("cookie", "session=; other=1")), "session") is None
    assert cookie(scope(("cookie", "other=1")), "session") is None
    assert cookie(scope(), "session") is None


def test_a_forged_signature_is_no_user_and_falls_back_to_the_token() -> None:
    app = flask_app()
    other = flask_app(SECRET_KEY="another-secret-0123456789")
    forged = signed(other, {"user_id": 1})
    reader = FlaskSessionUser(app)
    assert reader(scope(("cookie", f"session={forged}"))) is None
    token_caller = scope(("cookie", f"session={forged}"), ("authorization", "Bearer tok-123"))
    expected = "t:" + hashlib.sha256(b"tok-123").hexdigest()[:24]
    assert reader(token_caller) == expected


def test_a_session_without_the_user_is_no_key() -> None:
    app = flask_app()
    reader = FlaskSessionUser(app)
    assert reader(scope(("cookie", f"session={signed(app, {'theme': 'dark'})}"))) is None
    assert reader(scope(("cookie", "theme=dark"))) is None


def test_an_expired_session_is_no_user() -> None:
    app = flask_app(PERMANENT_SESSION_LIFETIME=timedelta(seconds=-1))
    value = signed(app, {"user_id": 3})
    assert FlaskSessionUser(app)(scope(("cookie", f"session={value}"))) is None


def test_the_apps_cookie_name_and_user_key_are_used() -> None:
    app = flask_app(SESSION_COOKIE_NAME="app_session")
    reader = FlaskSessionUser(app, user_key="account")
    value = signed(app, {"account": "acme", "user_id": 9})
    assert reader(scope(("cookie", f"session=junk; app_session={value}"))) == "u:acme"


def test_an_app_without_a_secret_key_has_no_session_users() -> None:
    app = Flask(__name__)
    reader = FlaskSessionUser(app)
    assert reader(scope(("cookie", "session=anything"))) is None
    assert reader(scope(("cookie", "session=x"), ("authorization", "bearer abc"))) == (
        "t:" + hashlib.sha256(b"abc").hexdigest()[:24]
    )


def test_a_returning_cookie_is_answered_from_the_cache_and_the_cache_is_bounded() -> None:
    app = flask_app()
    reader = FlaskSessionUser(app)
    value = signed(app, {"user_id": 5})
    raw = scope(("cookie", f"session={value}"))
    assert reader(raw) == "u:5"
    assert reader._cache == {f"session={value}".encode(): "u:5"}
    assert reader(raw) == "u:5"
    for n in range(4096):
        reader(scope(("cookie", f"n={n}")))
    assert len(reader._cache) <= 4096
    assert reader(raw) == "u:5"


def test_bearer_keys_are_stable_digests_and_other_schemes_are_no_key() -> None:
    first = bearer_key(scope(("authorization", "Bearer secret-token")))
    assert first == bearer_key(scope(("authorization", "bearer secret-token")))
    assert first is not None and "secret-token" not in first
    assert bearer_key(scope(("authorization", "Basic dXNlcjpwdw=="))) is None
    assert bearer_key(scope()) is None
