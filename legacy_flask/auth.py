"""Sign-in and sign-out with the Flask session; `GET /api/me`, password change, sign-out everywhere.

The cookie names a server-side session row (`sid`), so signing out ends it for good: a copy of
the cookie saved before `POST /logout` no longer works, on either backend.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, flash, jsonify, redirect, render_template, request, session, url_for

from legacy_flask.api import (
    api_login_required,
    current_actor,
    current_actor_async,
    current_session,
    json_body,
    no_content,
    require_actor,
    services,
)
from legacy_flask.csrf import check_csrf
from shared import bridge
from shared.auth import Actor
from shared.errors import Forbidden, TooManyRequests, Unauthorized
from shared.validation import parse_password_change

bp = Blueprint("auth", __name__)


@bp.get("/api/me")
async def me() -> Any:
    # An `async def` view: LegacyFlask runs it on the bridge loop, so it awaits directly.
    actor = require_actor(await current_actor_async())
    return jsonify(await services().users.me(actor))


@bp.post("/api/me/password", endpoint="change_password")
@api_login_required
def change_password(actor: Actor) -> Any:
    values = parse_password_change(json_body())
    bridge.run(
        services().users.change_password(
            actor, values["current_password"], values["new_password"], keep=current_session()
        )
    )
    return no_content()


@bp.post("/api/me/sign-out-everywhere", endpoint="sign_out_everywhere")
@api_login_required
def sign_out_everywhere(actor: Actor) -> Any:
    bridge.run(services().users.sign_out_everywhere(actor))
    return no_content()


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_actor() is not None:
            return redirect(next_url)
        return render_template("login.html", next=next_url)
    check_csrf()
    email = request.form.get("email", "")
    password = request.form.get("password", "")
    users = services().users
    try:
        signed_in = bridge.run(users.sign_in(email, password, address=request.remote_addr))
    except TooManyRequests as exc:
        flash(exc.message, "error")
        page = render_template("login.html", next=next_url, email=email)
        return page, 429, {"Retry-After": str(exc.retry_after_s)}
    except (Unauthorized, Forbidden) as exc:
        flash(exc.message, "error")
        return render_template("login.html", next=next_url, email=email), exc.status
    # A session the browser held before (another user, or the same) ends here.
    bridge.run(users.sign_out(current_session()))
    session.clear()
    session.permanent = True
    session["user_id"] = signed_in.actor.user_id
    session["sid"] = signed_in.sid
    return redirect(next_url)


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    if request.method == "GET":
        return render_template("logout.html")
    check_csrf()
    bridge.run(services().users.sign_out(current_session()))
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


def safe_next(target: str | None) -> str:
    """`target` when it is a path of this site, else the home page (never an open redirect)."""
    # Only same-site paths: an absolute or scheme-relative URL would be an open redirect.
    # Browsers read a backslash as a slash, so "/\\evil.example" is "//evil.example" to them.
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or urlsplit(target).netloc
    ):
        return url_for("pages.index")
    return target
