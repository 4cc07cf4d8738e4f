"""API tokens: issue (optionally expiring), list without secrets, and revoke.

Operators manage anyone's tokens from the CLI; the JSON API lets a user manage their own.
Revoking forgets the token in this process's actor cache at once; other processes stop
accepting it within `AA_AUTH_CACHE_S`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.auth import Actor, new_api_token
from shared.db import Database
from shared.errors import NotFound, ValidationFailed
from shared.models import ApiToken, utcnow
from shared.repositories import TokenRepository, UserRepository
from shared.representation import instant, token_json
from shared.services.users import ActorCache

MAX_EXPIRES_IN_DAYS = 3650


class TokenService:
    def __init__(self, db: Database, actors: ActorCache) -> None:
        self.db = db
        self.actors = actors

    async def create(
        self, email: str, *, name: str = "", expires_in: timedelta | None = None
    ) -> str:
        """Issue a token for `email`; returns the token, which is never stored in clear."""
        async with self.db.session() as session:
            user = await UserRepository(session).by_email(email.strip())
            if user is None:
                raise NotFound(f"user {email!r} not found (create it with 'users create')")
            _row, token = await self._issue(session, user.id, name, expires_in)
            return token

    async def create_own(
        self, actor: Actor, *, name: str, expires_in_days: int | None
    ) -> dict[str, Any]:
        """Issue a token for the caller: its listing plus `token`, shown this once."""
        expires_in = None if expires_in_days is None else timedelta(days=expires_in_days)
        async with self.db.session() as session:
            row, token = await self._issue(session, actor.user_id, name, expires_in)
            return {**token_json(row), "token": token}

    async def list_own(self, actor: Actor) -> list[dict[str, Any]]:
        """The caller's tokens that are not revoked (expired ones too, with `expires_at`)."""
        async with self.db.read_session() as session:
            rows = await TokenRepository(session).listed(actor.user_id, include_revoked=False)
        return [token_json(row) for row in rows]

    async def revoke_own(self, actor: Actor, token_id: int) -> None:
        """Revoke one of the caller's tokens; 404 for anyone else's or an already revoked one."""
        async with self.db.session() as session:
            row = await TokenRepository(session).get(token_id)
            if row is None or row.user_id != actor.user_id or row.revoked_at is not None:
                raise NotFound(f"API token {token_id} not found")
            row.revoked_at = utcnow()
            digest = row.token_hash
        self.actors.forget(("token", digest))

    async def listing(self, email: str | None) -> list[dict[str, Any]]:
        """Every token (of `email` when given), revoked ones included, for operators."""
        async with self.db.read_session() as session:
            user_id = None
            if email is not None:
                user = await UserRepository(session).by_email(email.strip())
                if user is None:
                    raise NotFound(f"user {email!r} not found")
                user_id = user.id
            rows = await TokenRepository(session).listed(user_id, include_revoked=True)
            return [
                {
                    **token_json(row),
                    "user": row.user.email,
                    "revoked_at": instant(row.revoked_at),
                }
                for row in rows
            ]

    async def revoke(self, token_id: int) -> dict[str, Any]:
        """Revoke any token by id (operators); 404 when there is no such token."""
        async with self.db.session() as session:
            row = await TokenRepository(session).get(token_id)
            if row is None:
                raise NotFound(f"API token {token_id} not found (see 'tokens list')")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            result = {**token_json(row), "user": row.user.email}
            digest = row.token_hash
        self.actors.forget(("token", digest))
        return result

    async def _issue(
        self, session: Any, user_id: int, name: str, expires_in: timedelta | None
    ) -> tuple[ApiToken, str]:
        if expires_in is not None and not (
            timedelta(0) < expires_in <= timedelta(days=MAX_EXPIRES_IN_DAYS)
        ):
            raise ValidationFailed(
                "invalid token: check expires_in",
                details=[
                    {
                        "field": "expires_in",
                        "message": f"must be more than 0 and at most {MAX_EXPIRES_IN_DAYS} days",
                    }
                ],
            )
        token, digest = new_api_token()
        expires_at = None if expires_in is None else utcnow() + expires_in
        row = await TokenRepository(session).add(
            ApiToken(user_id=user_id, token_hash=digest, name=name, expires_at=expires_at)
        )
        return row, token
