"""Users and credentials: create users and tokens; resolve a password, token or id to an Actor."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError

from shared.auth import Actor, hash_password, hash_token, new_api_token, verify_password
from shared.db import Database
from shared.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from shared.models import ApiToken, User, utcnow
from shared.repositories import TokenRepository, UserRepository
from shared.representation import user_json

MIN_PASSWORD_LENGTH = 8
# Enough for every token and session user a busy process sees within one cache period.
ACTOR_CACHE_MAX = 4096


def actor_of(user: User) -> Actor:
    return Actor(user_id=user.id, email=user.email, is_admin=user.is_admin, name=user.name)


class ActorCache:
    """Recently authenticated Actors by credential, each kept for `ttl_s` seconds.

    Every API request authenticates; without this, each one pays a database read (a token
    lookup, or the session's user) before its own work. The price is staleness: a revoked
    token, a deleted user or a changed admin bit takes effect within `ttl_s` in every process.
    `ttl_s=0` turns the cache off. Only successes are kept, so a new token works at once.
    Used from the one event loop of the process, so it needs no lock.
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

    def put(self, key: Any, actor: Actor) -> None:
        """Keep `actor` for `key` until the period ends (no-op when the cache is off)."""
        if self.ttl_s <= 0:
            return
        now = self._clock()
        if len(self._entries) >= self.max_entries:
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key] = (now + self.ttl_s, actor)


class UserService:
    def __init__(self, db: Database, *, actor_cache_s: float | None = None) -> None:
        self.db = db
        ttl = db.settings.auth_cache_s if actor_cache_s is None else actor_cache_s
        self.actors = ActorCache(ttl)

    async def create(
        self, email: str, password: str, *, name: str = "", is_admin: bool = False
    ) -> dict[str, Any]:
        """Create a user; 409 when the email is taken, 422 for a bad email or short password."""
        email = email.strip().lower()
        if "@" not in email or len(email) > 320:
            raise ValidationFailed(
                f"invalid email {email!r}", details=[{"field": "email", "message": "not an email"}]
            )
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ValidationFailed(
                f"password too short (at least {MIN_PASSWORD_LENGTH} characters)",
                details=[{"field": "password", "message": "too short"}],
            )
        try:
            async with self.db.session() as session:
                user = await UserRepository(session).add(
                    User(
                        email=email,
                        name=name,
                        password_hash=hash_password(password),
                        is_admin=is_admin,
                    )
                )
                return user_json(user)
        except IntegrityError:
            raise Conflict(f"a user with email {email!r} already exists") from None

    async def authenticate_password(self, email: str, password: str) -> Actor:
        """The Actor for a correct email and password; Unauthorized otherwise (same message)."""
        async with self.db.read_session() as session:
            user = await UserRepository(session).by_email(email.strip())
        if user is None or not verify_password(password, user.password_hash):
            raise Unauthorized("wrong email or password")
        return actor_of(user)

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
            if row is None:
                raise Unauthorized("invalid or revoked API token")
            now = utcnow()
            # Only write when the minute changed: a token used on every request would
            # otherwise turn every read into a write.
            if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
                row.last_used_at = now
            actor = actor_of(row.user)
        self.actors.put(("token", digest), actor)
        return actor

    async def resolve(self, authorization: str | None, session_user_id: Any) -> Actor | None:
        """The Actor of a request: its bearer token if it sends one, else its session's user.

        A malformed or unknown token is an error even when a session is present, so a client
        never silently acts as someone other than the token it sent.
        """
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("malformed Authorization header (expected 'Bearer <token>')")
            return await self.authenticate_token(token.strip())
        if isinstance(session_user_id, int) and not isinstance(session_user_id, bool):
            return await self.actor_by_id(session_user_id)
        return None

    async def actor_by_id(self, user_id: int) -> Actor | None:
        """The Actor for a session's user id, or None when the user no longer exists."""
        cached = self.actors.get(("user", user_id))
        if cached is not None:
            return cached
        async with self.db.read_session() as session:
            user = await UserRepository(session).get(user_id)
        if user is None:
            return None
        actor = actor_of(user)
        self.actors.put(("user", user_id), actor)
        return actor

    async def create_token(self, email: str, *, name: str = "") -> str:
        """Issue a new API token for `email`; returns the token, which is never stored in clear."""
        async with self.db.session() as session:
            user = await UserRepository(session).by_email(email.strip())
            if user is None:
                raise NotFound(f"user {email!r} not found (create it with 'users create')")
            token, digest = new_api_token()
            await TokenRepository(session).add(
                ApiToken(user_id=user.id, token_hash=digest, name=name)
            )
            return token

    async def me(self, actor: Actor) -> dict[str, Any]:
        async with self.db.read_session() as session:
            user = await UserRepository(session).get(actor.user_id)
        if user is None:
            raise Unauthorized("the signed-in user no longer exists")
        return user_json(user)
