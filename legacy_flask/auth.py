"""Sign-in and sign-out with the Flask session, and `GET /api/me`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, flash, jsonify, redirect, render_template, request, session, url_for

from legacy_flask.api import current_actor, current_actor_async, require_actor, services
from legacy_flask.csrf import check_csrf
from shared import bridge
from shared.errors import Unauthorized

bp = Blueprint("auth", __name__)


@bp.get("/api/me")
async def me() -> Any:
    # An `async def` view: LegacyFlask runs it on the bridge loop, so it awaits directly.
    actor = require_actor(await current_actor_async())
    return jsonify(await services().users.me(actor))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_actor() is not None:
            return redirect(next_url)
        return render_template("login.html", next=next_url)
    check_csrf()
    email = request.form.get("email", "")
    password = request.form.get("password", "")
    try:
        actor = bridge.run(services().users.authenticate_password(email, password))
    except Unauthorized as exc:
        flash(exc.message, "error")
        return render_template("login.html", next=next_url, email=email), 401
    session.clear()
    session.permanent = True
    session["user_id"] = actor.user_id
    return redirect(next_url)


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    if request.method == "GET":
        return render_template("logout.html")
    check_csrf()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str:
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
