"""Sign in with Microsoft: start the authorization request, take the redirect back, connect
and disconnect a signed-in user's Microsoft 365 account, and its status for pages and API.

The state and PKCE verifier wait in the signed session cookie between the two legs, so the
redirect is honoured only in the browser that started it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, session

from legacy_flask.api import api_login_required, current_actor, current_session, services
from legacy_flask.auth import safe_next
from legacy_flask.csrf import check_csrf
from shared import bridge
from shared.auth import Actor
from shared.errors import AppError, NotFound
from shared.identity_platform import check_redirect
from shared.services import MicrosoftAccountService

bp = Blueprint("microsoft", __name__)

_FLOW = "m365_flow"


def microsoft_service() -> MicrosoftAccountService | None:
    """The Microsoft 365 accounts service, or None when sign-in with Microsoft is off."""
    return services().microsoft


def _required_service() -> MicrosoftAccountService:
    service = microsoft_service()
    if service is None:
        abort(404, description="Sign in with Microsoft is not configured on this site")
    return service


@bp.get("/login/microsoft")
def start() -> Any:
    """Send the browser to Microsoft; a signed-in user connects their account instead."""
    service = _required_service()
    sign_in = bridge.run(service.begin_sign_in())
    session[_FLOW] = {
        "state": sign_in.state,
        "verifier": sign_in.code_verifier,
        "at": sign_in.started_at,
        "next": safe_next(request.args.get("next")),
        "connect": current_actor() is not None,
    }
    return redirect(sign_in.url)


@bp.get("/login/microsoft/callback")
def callback() -> Any:
    """Finish the round trip: check state, redeem the code (PKCE), sign in or connect."""
    service = _required_service()
    flow = session.pop(_FLOW, None)
    if not isinstance(flow, dict):
        flow = {}
    next_url = flow.get("next") or safe_next(None)
    actor = current_actor() if flow.get("connect") else None
    try:
        code = check_redirect(request.args, flow.get("state"), flow.get("at"))
        signed_in = bridge.run(
            service.complete_sign_in(code, str(flow.get("verifier", "")), connecting=actor)
        )
    except AppError as exc:
        if actor is not None:  # connecting: the user stays signed in
            page = render_template("error.html", status=exc.status, message=exc.message)
            return page, exc.status
        flash(exc.message, "error")
        return render_template("login.html", next=next_url), exc.status
    if signed_in is None:
        flash("Microsoft 365 is connected.", "info")
        return redirect(next_url)
    # A session the browser held before ends here, as with a password sign-in.
    bridge.run(services().users.sign_out(current_session()))
    session.clear()
    session.permanent = True
    session["user_id"] = signed_in.actor.user_id
    session["sid"] = signed_in.sid
    return redirect(next_url)


@bp.post("/account/microsoft/disconnect")
def disconnect() -> Any:
    """Forget the signed-in user's Microsoft account and its tokens."""
    check_csrf()
    actor = current_actor()
    if actor is None:
        return redirect(safe_next(None))
    service = _required_service()
    if bridge.run(service.disconnect(actor)):
        flash("Microsoft 365 is disconnected; its tokens are deleted.", "info")
    return redirect(safe_next(request.form.get("next")))


@bp.get("/api/me/microsoft")
@api_login_required
def status(actor: Actor) -> Any:
    """`{"configured", "connected", "email", "needs_reconnect", "reason", "expires_at"}`."""
    service = microsoft_service()
    if service is None:
        return jsonify({"configured": False, "connected": False})
    account = bridge.run(service.status(actor.user_id))
    if account is None:
        return jsonify({"configured": True, "connected": False})
    return jsonify({"configured": True, **account.to_json()})


@bp.delete("/api/me/microsoft")
@api_login_required
def delete(actor: Actor) -> Any:
    """Disconnect over the API (204); 404 when no Microsoft account is linked."""
    service = microsoft_service()
    if service is None or not bridge.run(service.disconnect(actor)):
        raise NotFound("no Microsoft 365 account is connected to this user")
    return "", 204


@bp.app_context_processor
def _microsoft_globals() -> dict[str, Any]:
    # Pages show "Sign in with Microsoft" when configured, and a banner when the signed-in
    # user's access has ended: one read per page, only for signed-in users.
    service = microsoft_service()
    if service is None:
        return {"m365_enabled": False, "m365_required": False, "m365_account": None}
    m365 = service.db.settings.m365
    account = None
    try:
        actor = current_actor()
        if actor is not None:
            account = bridge.run(service.status(actor.user_id))
    except AppError:  # an error page is being drawn (the database is down): no banner
        account = None
    return {
        "m365_enabled": True,
        "m365_required": m365 is not None and m365.is_required,
        "m365_account": account,
    }
