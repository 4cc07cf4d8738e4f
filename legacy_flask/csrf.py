"""CSRF tokens for the server-rendered forms: one random token per session, checked on POST."""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session


def csrf_token() -> str:
    """The session's CSRF token (created on first use); templates put it in every form."""
    token = session.get("csrf_token")
    if not isinstance(token, str):
        token = session["csrf_token"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Abort with 400 unless the posted `csrf_token` matches the session's."""
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf_token")
    if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        abort(
            400, description="the form has expired or was not sent from this site; reload and retry"
        )
