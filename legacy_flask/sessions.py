"""Flask's session, read by the one shared cookie reader (`shared.sessions`).

Flask signs and writes the cookie as it always did; reading goes through the same code the
async twins and the gateway's sticky key use, so duplicate or forged cookies get one answer.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from shared.sessions import SessionReader

_READER = "admin_assistant.session_reader"


class SharedSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened with `shared.sessions.SessionReader`."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not app.secret_key:
            return None
        return self.session_class(self._reader(app).read(request.headers.get("Cookie")))

    def _reader(self, app: Flask) -> SessionReader:
        reader: Any = app.extensions.get(_READER)
        if reader is None:
            reader = app.extensions[_READER] = SessionReader(
                str(app.secret_key),
                cookie_name=self.get_cookie_name(app),
                max_age_s=int(app.permanent_session_lifetime.total_seconds()),
                # Flask's tagged JSON: flashed messages are tuples, which plain JSON loses.
                payload=self.serializer,
            )
        return reader  # type: ignore[no-any-return]
