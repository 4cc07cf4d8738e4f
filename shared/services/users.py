"""Users and sign-in: create and disable users, sign in and out, resolve a request to an Actor.

A browser session is a row of `user_sessions` named by the signed cookie, so it can be
revoked on the server (sign-out, password change, disabling, "sign out everywhere"). Each
process keeps resolved credentials for `AA_AUTH_CACHE_S`; the process that revokes one
forgets it at once, the others within that period.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from shared.auth import Actor, Passwords, hash_token
from shared.db import Database
from shared.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from shared.models import User, UserSession, utcnow
from shared.pagination import Page, PageRequest
from shared.repositories import SessionRepository, TokenRepository, UserRepository
from shared.representation import instant, user_json
from shared.sessions import SESSION_MAX_AGE_S, SessionIdentity
from shared.throttle import LoginThrottle
from shared.validation import check_mailbox, parse_timezone

MIN_PASSWORD_LENGTH = 8
# Enough for every token and session user a busy process sees within one cache period.
ACTOR_CACHE_MAX = 4096
_WRONG_CREDENTIALS = "wrong email or password"


def actor_of(user: User) -> Actor:
    """The Actor a user acts as (what requests and commands carry, never the row itself)."""
    return Actor(user_id=user.id, email=user.email, is_admin=user.is_admin, name=user.name)


class ActorCache:
    """Recently authenticated Actors by credential, each kept for `ttl_s` seconds.

    Every API request authenticates; without this, each one pays a database read (a token
    lookup, or the session's row) before its own work. The price is staleness in *other*
    processes: a revocation made elsewhere takes effect here within `ttl_s`. The process that
    revokes calls `forget`/`forget_user`, so there it takes effect at once. `ttl_s=0` turns
    the cache off. Only successes are kept, so a new token works at once. Used from the one
    event loop of the process, so it needs no lock.
    """

    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = ACTOR_CACHE_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[Any, tuple[float, Actor]] = {}

    def get(self, key: Any) -> Actor | None:
        """The cached Actor for `key`, or None when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: Any, actor: Actor, *, max_age_s: float | None = None) -> None:
        """Keep `actor` for `key` until the period (or `max_age_s`, if sooner) ends."""
        ttl_s = self.ttl_s if max_age_s is None else min(self.ttl_s, max_age_s)
        if ttl_s <= 0:
            return
        now = self._clock()
        if len(self._entries) >= self.max_entries:
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key] = (now + ttl_s, actor)

    def forget(self, key: Any) -> None:
        """Drop `key` now (its credential was revoked by this process)."""
        self._entries.pop(key, None)

    def forget_user(self, user_id: int) -> None:
        """Drop every credential of `user_id` (disabled, or signed out everywhere)."""
        self._entries = {k: e for k, e in self._entries.items() if e[1].user_id != user_id}


@dataclass(frozen=True, slots=True)
class SignIn:
    """A successful sign-in: who, and the id of the new server-side session."""

    actor: Actor
    sid: str


class UserService:
    def __init__(
        self,
        db: Database,
        *,
        actor_cache_s: float | None = None,
        passwords: Passwords | None = None,
    ) -> None:
        self.db = db
        settings = db.settings
        ttl = settings.auth_cache_s if actor_cache_s is None else actor_cache_s
        self.actors = ActorCache(ttl)
        self.passwords = passwords or Passwords()
        self.throttle = LoginThrottle(
            per_account=settings.login_failures_per_account,
            per_address=settings.login_failures_per_address,
            window_s=settings.login_failure_window_s,
        )

    # -- accounts -----------------------------------------------------------------------------

    async def create(
        self, email: str, password: str, *, name: str = "", is_admin: bool = False
    ) -> dict[str, Any]:
        """Create a user; 409 when the email is taken, 422 for a bad email or short password."""
        email = email.strip().lower()
        if "@" not in email or len(email) > 320:
            raise ValidationFailed(
                f"invalid email {email!r}", details=[{"field": "email", "message": "not an email"}]
            )
        _check_new_password(password, "password")
        password_hash = await self._hash(password)
        try:
            async with self.db.session() as session:
                user = await UserRepository(session).add(
                    User(
                        email=email,
                        name=name,
                        password_hash=password_hash,
                        is_admin=is_admin,
                        mailbox=email,
                    )
                )
                return user_json(user)
        except IntegrityError:
            raise Conflict(f"a user with email {email!r} already exists") from None

    async def set_disabled(self, email: str, disabled: bool) -> dict[str, Any]:
        """Disable (revoking every session and token) or re-enable a user."""
        now = utcnow()
        async with self.db.session() as session:
            user = await self._by_email(session, email)
            if disabled:
                user.disabled_at = user.disabled_at or now
                await SessionRepository(session).revoke_all(user.id, now)
                hashes = await TokenRepository(session).revoke_all(user.id, now)
            else:
                user.disabled_at = None
                hashes = []
            result = {**user_json(user), "tokens_revoked": len(hashes)}
        if disabled:
            self.actors.forget_user(user.id)
        return result

    async def set_admin(self, email: str, is_admin: bool) -> dict[str, Any]:
        """Give or take admin rights; the user's credentials re-resolve with the new rights."""
        async with self.db.session() as session:
            user = await self._by_email(session, email)
            user.is_admin = is_admin
            result = user_json(user)
        self.actors.forget_user(user.id)
        return result

    async def account(self, user_id: int) -> dict[str, Any]:
        """One user as `listing` shows them (for admins); 404 when there is no such user."""
        async with self.db.read_session() as session:
            user = await UserRepository(session).get(user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return _account_json(user)

    async def listing(self, page: PageRequest) -> Page[dict[str, Any]]:
        """Every user by email, with whether they are disabled and since when (for admins)."""
        async with self.db.read_session() as session:
            result = await UserRepository(session).page(page)
        return Page(
            [_account_json(user) for user in result.items],
            result.page,
            result.per_page,
            result.total,
        )

    async def set_password(self, email: str, password: str) -> None:
        """Set a user's password (an operator's reset): every session of the user ends."""
        _check_new_password(password, "password")
        password_hash = await self._hash(password)
        async with self.db.session() as session:
            user = await self._by_email(session, email)
            user.password_hash = password_hash
            await SessionRepository(session).revoke_all(user.id, utcnow())
        self.actors.forget_user(user.id)

    async def set_mailbox(self, email: str, mailbox: str) -> dict[str, Any]:
        """Bind a user to the remote mailbox whose calendars they may reach."""
        mailbox = check_mailbox(mailbox)
        async with self.db.session() as session:
            user = await self._by_email(session, email)
            user.mailbox = mailbox
            return {**user_json(user), "mailbox": mailbox}

    # -- preferences --------------------------------------------------------------------------

    async def timezone_of(self, actor: Actor) -> str | None:
        """The IANA zone the actor's pages show times in; None follows the browser."""
        async with self.db.read_session() as session:
            user = await UserRepository(session).get(actor.user_id)
        return None if user is None else user.timezone

    async def set_timezone(self, actor: Actor, zone: str | None) -> str | None:
        """Set (or, with None or "", clear) the actor's time zone; 422 for an unknown zone."""
        zone = (zone or "").strip() or None
        if zone is not None:
            parse_timezone(zone, field="timezone")
        async with self.db.session() as session:
            user = await UserRepository(session).get(actor.user_id)
            if user is None:
                raise Unauthorized("the signed-in user no longer exists")
            user.timezone = zone
        return zone

    # -- signing in and out -------------------------------------------------------------------

    async def authenticate_password(
        self, email: str, password: str, *, address: str | None = None
    ) -> Actor:
        """The Actor for a correct email and password, opening no session (see `sign_in`)."""
        return actor_of(await self._check_password(email, password, address))

    async def sign_in(self, email: str, password: str, *, address: str | None = None) -> SignIn:
        """Check the password and open a server-side session.

        Unauthorized (one message for every failure) or TooManyRequests once the account or
        the address failed too often. An unknown account costs the same hashing work as a
        known one, and a hash of an older kind or cost is replaced on success.
        """
        user = await self._check_password(email, password, address)
        rehashed = (
            await self._hash(password) if self.passwords.needs_rehash(user.password_hash) else None
        )
        sid = secrets.token_urlsafe(32)
        now = utcnow()
        async with self.db.session() as session:
            if rehashed is not None:
                stored = await UserRepository(session).get(user.id)
                if stored is not None:
                    stored.password_hash = rehashed
            sessions = SessionRepository(session)
            # The user's sessions past their lifetime can never be used again: drop them here,
            # so the table holds live sessions and a week of history, not every sign-in ever.
            await sessions.prune(user.id, now - timedelta(seconds=SESSION_MAX_AGE_S))
            await sessions.add(UserSession(id=sid, user_id=user.id, created_at=now))
        return SignIn(actor_of(user), sid)

    async def _check_password(self, email: str, password: str, address: str | None) -> User:
        self.throttle.check(email, address)
        async with self.db.read_session() as session:
            user = await UserRepository(session).by_email(email.strip())
        if user is None:
            await asyncio.to_thread(self.passwords.verify_unknown, password)
            self.throttle.failed(email, address)
            raise Unauthorized(_WRONG_CREDENTIALS)
        if not await asyncio.to_thread(self.passwords.verify, password, user.password_hash):
            self.throttle.failed(email, address)
            raise Unauthorized(_WRONG_CREDENTIALS)
        if user.is_disabled:
            raise Unauthorized("this account is disabled; ask an administrator to enable it")
        self.throttle.succeeded(email)
        return user

    async def sign_out(self, identity: SessionIdentity | None) -> None:
        """End the session the cookie names (a no-op for an anonymous or dead session)."""
        if identity is None:
            return
        async with self.db.session() as session:
            await SessionRepository(session).revoke(identity.sid, utcnow())
        self.actors.forget(("session", identity.sid))

    async def sign_out_everywhere(self, actor: Actor) -> None:
        """End every session of the actor's user, this one included."""
        async with self.db.session() as session:
            await SessionRepository(session).revoke_all(actor.user_id, utcnow())
        self.actors.forget_user(actor.user_id)

    async def change_password(
        self,
        actor: Actor,
        current: str,
        new: str,
        *,
        keep: SessionIdentity | None = None,
    ) -> None:
        """Change the actor's own password; every other session of the user ends.

        A wrong current password is a 422 on `current_password` and counts as a failed
        sign-in of the account (so it cannot be guessed faster here than at /login).
        """
        self.throttle.check(actor.email, None)
        async with self.db.read_session() as session:
            user = await UserRepository(session).get(actor.user_id)
        if user is None:
            raise Unauthorized("the signed-in user no longer exists")
        if not await asyncio.to_thread(self.passwords.verify, current, user.password_hash):
            self.throttle.failed(actor.email, None)
            raise ValidationFailed(
                "invalid password change: check current_password",
                details=[{"field": "current_password", "message": "is not your password"}],
            )
        self.throttle.succeeded(actor.email)
        _check_new_password(new, "new_password")
        password_hash = await self._hash(new)
        async with self.db.session() as session:
            stored = await UserRepository(session).get(actor.user_id)
            if stored is None:
                raise Unauthorized("the signed-in user no longer exists")
            stored.password_hash = password_hash
            kept = keep.sid if keep is not None and keep.user_id == actor.user_id else None
            await SessionRepository(session).revoke_all(actor.user_id, utcnow(), keep=kept)
        kept_actor = self.actors.get(("session", kept)) if kept else None
        self.actors.forget_user(actor.user_id)
        if kept is not None and kept_actor is not None:
            self.actors.put(("session", kept), kept_actor)

    # -- resolving a request ------------------------------------------------------------------

    async def resolve(
        self, authorization: str | None, session: SessionIdentity | None
    ) -> Actor | None:
        """The Actor of a request: its bearer token if it sends one, else its live session.

        A malformed or unknown token is an error even when a session is present, so a client
        never silently acts as someone other than the token it sent.
        """
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("malformed Authorization header (expected 'Bearer <token>')")
            return await self.authenticate_token(token.strip())
        if session is not None:
            return await self.actor_of_session(session)
        return None

    async def actor_of_session(self, identity: SessionIdentity) -> Actor | None:
        """The Actor of a live (not revoked, not expired) session of an enabled user, or None."""
        key = ("session", identity.sid)
        cached = self.actors.get(key)
        if cached is not None and cached.user_id == identity.user_id:
            return cached
        since = utcnow() - timedelta(seconds=SESSION_MAX_AGE_S)
        async with self.db.read_session() as session:
            row = await SessionRepository(session).live(identity.sid, identity.user_id, since)
            user = await UserRepository(session).get(identity.user_id) if row else None
        if user is None or user.is_disabled:
            return None
        actor = actor_of(user)
        self.actors.put(key, actor)
        return actor

    async def authenticate_token(self, token: str) -> Actor:
        """The Actor owning an active API token, recording its last use; Unauthorized otherwise.

        A token seen within the actor cache's period is answered without the database.
        """
        digest = hash_token(token)
        cached = self.actors.get(("token", digest))
        if cached is not None:
            return cached
        async with self.db.session() as session:
            row = await TokenRepository(session).active_by_hash(digest)
            if row is None or row.user.is_disabled:
                raise Unauthorized("invalid or revoked API token")
            now = utcnow()
            if row.expires_at is not None and row.expires_at <= now:
                raise Unauthorized(
                    f"API token {row.id} expired at {row.expires_at.isoformat(timespec='seconds')}"
                    "; create a new one"
                )
            # Only write when the minute changed: a token used on every request would
            # otherwise turn every read into a write.
            if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
                row.last_used_at = now
            actor = actor_of(row.user)
            left_s = (row.expires_at - now).total_seconds() if row.expires_at else None
        self.actors.put(("token", digest), actor, max_age_s=left_s)
        return actor

    async def me(self, actor: Actor) -> dict[str, Any]:
        async with self.db.read_session() as session:
            user = await UserRepository(session).get(actor.user_id)
        if user is None:
            raise Unauthorized("the signed-in user no longer exists")
        return user_json(user)

    # -- internals ----------------------------------------------------------------------------

    async def actor_for(self, email: str) -> Actor:
        """The Actor of the user with `email` (the command line acting for a user); 404 if none."""
        async with self.db.read_session() as session:
            return actor_of(await self._by_email(session, email))

    async def _hash(self, password: str) -> str:
        # argon2 costs ~0.1 s of CPU: off the event loop, so other requests keep flowing.
        return await asyncio.to_thread(self.passwords.hash, password)

    @staticmethod
    async def _by_email(session: Any, email: str) -> User:
        user = await UserRepository(session).by_email(email.strip())
        if user is None:
            raise NotFound(f"user {email!r} not found (create it with 'users create')")
        return user


def _account_json(user: User) -> dict[str, Any]:
    return {
        **user_json(user),
        "disabled_at": instant(user.disabled_at),
        "created_at": instant(user.created_at),
    }


def _check_new_password(password: Any, field: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"password too short (at least {MIN_PASSWORD_LENGTH} characters)",
            details=[{"field": field, "message": "too short"}],
        )
