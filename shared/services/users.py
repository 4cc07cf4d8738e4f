"""Users and credentials: create users and tokens; resolve a password, token or id to an Actor."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from shared.auth import Actor, hash_password, hash_token, new_api_token, verify_password
from shared.db import Database
from shared.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from shared.models import ApiToken, User, utcnow
from shared.repositories import TokenRepository, UserRepository
from shared.representation import user_json

MIN_PASSWORD_LENGTH = 8


def actor_of(user: User) -> Actor:
    return Actor(user_id=user.id, email=user.email, is_admin=user.is_admin, name=user.name)


class UserService:
    def __init__(self, db: Database) -> None:
        self.db = db

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
        """The Actor owning an active API token, recording its last use; Unauthorized otherwise."""
        async with self.db.session() as session:
            row = await TokenRepository(session).active_by_hash(hash_token(token))
            if row is None:
                raise Unauthorized("invalid or revoked API token")
            now = utcnow()
            # Only write when the minute changed: a token used on every request would
            # otherwise turn every read into a write.
            if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
                row.last_used_at = now
            return actor_of(row.user)

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
        async with self.db.read_session() as session:
            user = await UserRepository(session).get(user_id)
        return actor_of(user) if user is not None else None

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
