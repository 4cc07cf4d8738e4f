"""The Users page, for admins: create users, give or take admin rights, disable (ending every
session and API token of the user at once) and enable again."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from legacy_flask.api import services
from legacy_flask.csrf import check_csrf
from legacy_flask.forms import FormState, form_errors, is_checked
from legacy_flask.pages import login_required
from shared import bridge
from shared.auth import Actor
from shared.errors import Conflict, ValidationFailed
from shared.validation import Field, parse_body, parse_page, text

bp = Blueprint("admin_pages", __name__)
_FIELDS = ("email", "name", "password", "is_admin")
_NAME: list[Field] = [("name", text(200, allow_empty=True), "")]


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Signed-in admins only: others get a 403 page (visitors go to /login first)."""

    @functools.wraps(view)
    def wrapper(actor: Actor, *args: Any, **kwargs: Any) -> Any:
        if not actor.is_admin:
            abort(403, description="the users page is for admins only")
        return view(actor, *args, **kwargs)

    return login_required(wrapper)


def _page(form: FormState, status: int = 200) -> Any:
    page = bridge.run(services().users.listing(parse_page(request.args)))
    return render_template("users.html", page=page, form=form), status


@bp.get("/admin/users")
@admin_required
def users(actor: Actor) -> Any:
    return _page(FormState({"is_admin": False}))


@bp.post("/admin/users")
@admin_required
def create_user(actor: Actor) -> Any:
    check_csrf()
    form = request.form
    try:
        name = parse_body({"name": form.get("name", "")}, _NAME, partial=False, what="user")["name"]
        user = bridge.run(
            services().users.create(
                form.get("email", ""),
                form.get("password", ""),
                name=name,
                is_admin=is_checked(form, "is_admin"),
            )
        )
    except (ValidationFailed, Conflict) as exc:
        errors = form_errors(exc, _FIELDS)
        if isinstance(exc, Conflict):
            errors["email"] = errors.pop("", exc.message)
        typed = {**form, "is_admin": is_checked(form, "is_admin"), "password": ""}
        return _page(FormState(typed, errors), exc.status)
    role = "an admin" if user["is_admin"] else "a user"
    flash(f"{user['email']} can now sign in as {role}.", "info")
    return redirect(url_for("admin_pages.users"))


def _other_user(actor: Actor, user_id: int, what: str) -> dict[str, Any] | None:
    """The user `user_id` (404 if none); None, with a message, when it is the actor."""
    user = bridge.run(services().users.account(user_id))
    if user["id"] == actor.user_id:
        flash(f"You cannot {what} your own account; ask another admin.", "error")
        return None
    return user


@bp.post("/admin/users/<int:user_id>/admin")
@admin_required
def set_admin(actor: Actor, user_id: int) -> Any:
    check_csrf()
    is_admin = request.form.get("is_admin") == "1"
    user = _other_user(actor, user_id, "change the rights of")
    if user is not None:
        bridge.run(services().users.set_admin(user["email"], is_admin))
        state = "is now an admin" if is_admin else "is no longer an admin"
        flash(f"{user['email']} {state}.", "info")
    return redirect(url_for("admin_pages.users"))


@bp.post("/admin/users/<int:user_id>/disabled")
@admin_required
def set_disabled(actor: Actor, user_id: int) -> Any:
    """Disable (`disabled=1`: sessions end, tokens are revoked) or enable (`disabled=0`)."""
    check_csrf()
    disabled = request.form.get("disabled") == "1"
    user = _other_user(actor, user_id, "disable" if disabled else "enable")
    if user is not None:
        result = bridge.run(services().users.set_disabled(user["email"], disabled))
        if disabled:
            flash(
                f"{user['email']} is disabled: signed out everywhere, "
                f"{result['tokens_revoked']} API token(s) revoked.",
                "info",
            )
        else:
            flash(f"{user['email']} can sign in again (revoked tokens stay revoked).", "info")
    return redirect(url_for("admin_pages.users"))
