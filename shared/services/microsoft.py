"""Microsoft 365 accounts: sign in (creating or linking a user by mail address), connect and
disconnect, and each user's delegated Graph token, refreshed before it expires."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from shared.auth import Actor
from shared.db import Database
from shared.errors import (
    Conflict,
    M365ReconnectRequired,
    M365SignInFailed,
    ProviderError,
    Unauthorized,
)
from shared.identity_platform import GrantRefused, IdentityPlatform, SignInRequest, TokenGrant
from shared.microsoft_repository import MicrosoftAccountRepository
from shared.models import MicrosoftAccount, User, utcnow
from shared.repositories import UserRepository
from shared.representation import instant
from shared.services.audit import record
from shared.services.users import SignIn, open_session
from shared.token_vault import TokenVault, UnreadableToken

__all__ = ["REFRESH_MARGIN_S", "AccountStatus", "MicrosoftAccountService"]

_log = logging.getLogger(__name__)

# A token this close to its end is refreshed before use: a Graph call (or a page of them)
# started with it must not find it expired half-way.
REFRESH_MARGIN_S = 300
# Never a password: no argon2 or scrypt hash looks like this, so a password check fails.
NO_PASSWORD = "!microsoft"
_RECONNECT = "reconnect Microsoft 365 (sign in with Microsoft again)"


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """A user's Microsoft 365 link as the pages and the API show it."""

    email: str
    needs_reconnect: bool
    reason: str | None
    expires_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "connected": True,
            "email": self.email,
            "needs_reconnect": self.needs_reconnect,
            "reason": self.reason,
            "expires_at": instant(self.expires_at),
        }


class MicrosoftAccountService:
    """Sign-in with Microsoft and the delegated tokens of every user of one process."""

    def __init__(
        self,
        db: Database,
        platform: IdentityPlatform,
        vault: TokenVault,
        *,
        margin_s: float = REFRESH_MARGIN_S,
    ) -> None:
        self.db = db
        self.platform = platform
        self.vault = vault
        self.margin_s = margin_s
        # One refresh per user at a time in this process (others wait and take its result);
        # across processes the stored refresh token is compared before it is replaced.
        self._locks: dict[int, asyncio.Lock] = {}
        # Opened tokens kept for AA_AUTH_CACHE_S, as sessions and API tokens are: a Graph call
        # then costs no database read. Revocations by this process forget them at once
        # (`forget`), by other processes within that period; a refused token is never reused.
        self.cache_s = db.settings.auth_cache_s
        self._cache: dict[int, tuple[float, str, datetime]] = {}

    # -- signing in -----------------------------------------------------------------------------

    async def begin_sign_in(self) -> SignInRequest:
        """A new authorization request (state and PKCE verifier for the browser's session)."""
        return await self.platform.begin()

    async def complete_sign_in(
        self, code: str, code_verifier: str, *, connecting: Actor | None = None
    ) -> SignIn | None:
        """Redeem the code, read the account's profile and store its tokens.

        Signing in (`connecting` None): the user linked to the account, else the user with
        its mail address (linked now), else a new user; opens a session. Connecting: links
        the account to `connecting`, whose email or mailbox must be the account's address.
        """
        try:
            grant = await self.platform.redeem(code, code_verifier)
        except GrantRefused as exc:
            raise M365SignInFailed(
                f"Microsoft refused the sign-in code ({exc}); start again"
            ) from exc
        profile = await self.platform.profile(grant.access_token)
        now = utcnow()
        try:
            async with self.db.session() as session:
                accounts = MicrosoftAccountRepository(session)
                users = UserRepository(session)
                account = await accounts.by_subject(profile.subject)
                user: User | None
                if connecting is not None:
                    user = await self._connectable(users, account, connecting, profile.email)
                elif account is not None:
                    user = await users.get(account.user_id)
                else:
                    user = await users.by_email(profile.email)
                    if user is None:
                        user = await users.add(
                            User(
                                email=profile.email,
                                name=profile.name,
                                password_hash=NO_PASSWORD,
                                mailbox=profile.email,
                            )
                        )
                        await record(session, profile.email, "user.create", f"user:{user.id}")
                if user is None or user.is_disabled:
                    raise Unauthorized(
                        "this account is disabled; ask an administrator to enable it"
                    )
                if account is None:
                    account = await accounts.of_user(user.id)
                if account is None:
                    account = await accounts.add(
                        MicrosoftAccount(user_id=user.id, subject=profile.subject, email="")
                    )
                account.subject = profile.subject
                account.email = profile.email
                self._store(account, grant, now)
                account.connected_at = now
                if user.mailbox is None:
                    user.mailbox = profile.email
                await record(
                    session,
                    user.email,
                    "m365.connect",
                    f"user:{user.id}",
                    after={"email": profile.email},
                )
                if connecting is not None:
                    return None
                return await open_session(session, user)
        except IntegrityError:
            # Two first sign-ins of one account at once: the other one linked it; retry.
            raise M365SignInFailed(
                "this Microsoft account was being linked by another sign-in at the same time; "
                "start again"
            ) from None

    async def disconnect(self, actor: Actor) -> bool:
        """Forget the actor's Microsoft account and its tokens; False when none was linked."""
        async with self.db.session() as session:
            accounts = MicrosoftAccountRepository(session)
            account = await accounts.of_user(actor.user_id)
            if account is None:
                return False
            before = {"email": account.email}
            await accounts.delete(account)
            self.forget(actor.user_id)
            target = f"user:{actor.user_id}"
            await record(session, actor.label, "m365.disconnect", target, before=before)
        return True

    async def status(self, user_id: int) -> AccountStatus | None:
        """The user's link (and whether it must be reconnected), or None when not linked."""
        async with self.db.read_session() as session:
            account = await MicrosoftAccountRepository(session).of_user(user_id)
        if account is None:
            return None
        reason = account.reconnect_reason
        if reason is None and account.refresh_token is None:
            reason = "no Microsoft 365 token is stored"
        return AccountStatus(account.email, reason is not None, reason, account.expires_at)

    # -- delegated tokens -----------------------------------------------------------------------

    async def bearer(self, user_id: int, *, stale: str | None = None) -> str:
        """A usable access token of the user, refreshed when it ends within the margin (or
        is `stale`: Graph refused it before its time).

        M365ReconnectRequired when the user never connected, or the refresh token is dead
        (the account then shows "reconnect Microsoft 365"); ProviderError when the identity
        platform cannot be reached and the current token has already expired.
        """
        cached = self._cache.get(user_id)
        if cached is not None and stale is None:
            until, token, expires_at = cached
            if until > time.monotonic() and not self._ends_soon(expires_at):
                return token
        self.forget(user_id)
        account = await self._account(user_id)
        if not self._is_due(account, stale):
            return self._keep(account, self._open(account, account.access_token))
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            account = await self._account(user_id)  # another caller may have refreshed it
            if not self._is_due(account, stale):
                return self._keep(account, self._open(account, account.access_token))
            return await self._refresh(account, force=stale is not None)

    def forget(self, user_id: int) -> None:
        """Drop the user's kept token (revoked, disconnected, or refused by Graph)."""
        self._cache.pop(user_id, None)

    def _keep(self, account: MicrosoftAccount, token: str) -> str:
        if self.cache_s > 0 and account.expires_at is not None:
            until = time.monotonic() + self.cache_s
            self._cache[account.user_id] = (until, token, account.expires_at)
        return token

    def _ends_soon(self, expires_at: datetime) -> bool:
        return expires_at - utcnow() <= timedelta(seconds=self.margin_s)

    async def _refresh(self, account: MicrosoftAccount, *, force: bool = False) -> str:
        sealed = account.refresh_token
        assert sealed is not None  # _account() refused an account without one
        try:
            refresh_token = self.vault.decrypt(sealed)
        except UnreadableToken as exc:
            reason = "its stored token cannot be decrypted (AA_TOKEN_KEY or AA_SECRET_KEY changed)"
            await self._mark(account.user_id, sealed, reason)
            raise M365ReconnectRequired(
                f"Microsoft 365 access of {account.email} has ended: {reason}; {_RECONNECT}"
            ) from exc
        try:
            grant = await self.platform.refresh(refresh_token)
        except GrantRefused as exc:
            reason = f"Microsoft refused to renew access ({exc.error})"
            await self._mark(account.user_id, sealed, reason)
            raise M365ReconnectRequired(
                f"Microsoft 365 access of {account.email} has ended: {reason}; {_RECONNECT}"
            ) from exc
        except ProviderError:
            # A passing outage: a token that still works is better than none.
            if not force and account.expires_at is not None and account.expires_at > utcnow():
                _log.warning(
                    "m365: refresh for user %s failed; using the current token", account.user_id
                )
                return self._open(account, account.access_token)
            raise
        now = utcnow()
        async with self.db.session() as session:
            values = _sealed_values(self.vault, grant, now)
            # Only if nobody replaced the refresh token meanwhile (another process refreshed).
            result = await session.execute(
                update(MicrosoftAccount)
                .where(
                    MicrosoftAccount.id == account.id,
                    MicrosoftAccount.refresh_token == sealed,
                )
                .values(**values)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                stored = await MicrosoftAccountRepository(session).of_user(account.user_id)
                if stored is None or stored.access_token is None:
                    raise M365ReconnectRequired(
                        f"Microsoft 365 for user {account.user_id} was disconnected; {_RECONNECT}"
                    )
                return self._open(stored, stored.access_token)
        return grant.access_token

    async def _account(self, user_id: int) -> MicrosoftAccount:
        async with self.db.read_session() as session:
            account = await MicrosoftAccountRepository(session).of_user(user_id)
            owner = await UserRepository(session).get(user_id) if account is None else None
        if account is None:
            email = owner.email if owner else f"user {user_id}"
            raise M365ReconnectRequired(
                f"{email} has not connected Microsoft 365; sign in with Microsoft to let "
                "admin-assistant reach the calendars"
            )
        if account.reconnect_reason is not None or account.refresh_token is None:
            reason = account.reconnect_reason or "no Microsoft 365 token is stored"
            raise M365ReconnectRequired(
                f"Microsoft 365 access of {account.email} has ended: {reason}; {_RECONNECT}"
            )
        return account

    def _is_due(self, account: MicrosoftAccount, stale: str | None = None) -> bool:
        if account.access_token is None or account.expires_at is None:
            return True
        try:
            token = self.vault.decrypt(account.access_token)
        except UnreadableToken:  # the key changed: the refresh token will tell
            return True
        return token == stale or self._ends_soon(account.expires_at)

    def _open(self, account: MicrosoftAccount, sealed: str | None) -> str:
        if sealed is None:
            raise M365ReconnectRequired(f"no Microsoft 365 token of {account.email}; {_RECONNECT}")
        try:
            return self.vault.decrypt(sealed)
        except UnreadableToken as exc:
            raise M365ReconnectRequired(f"{exc}; {_RECONNECT}") from exc

    async def _mark(self, user_id: int, sealed: str, reason: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(MicrosoftAccount)
                .where(
                    MicrosoftAccount.user_id == user_id,
                    MicrosoftAccount.refresh_token == sealed,
                )
                .values(reconnect_reason=reason, updated_at=utcnow())
            )

    def _store(self, account: MicrosoftAccount, grant: TokenGrant, now: datetime) -> None:
        for key, value in _sealed_values(self.vault, grant, now).items():
            setattr(account, key, value)
        account.revoked_at = None

    @staticmethod
    async def _connectable(
        users: UserRepository, account: MicrosoftAccount | None, actor: Actor, email: str
    ) -> User:
        if account is not None and account.user_id != actor.user_id:
            raise Conflict(
                f"the Microsoft account {email} is already linked to another user; "
                "disconnect it there first"
            )
        user = await users.get(actor.user_id)
        if user is None:
            raise Unauthorized("the signed-in user no longer exists")
        if email not in (user.email.lower(), user.calendar_mailbox.lower()):
            raise Conflict(
                f"the Microsoft account {email} is not yours: you are {user.email} (mailbox "
                f"{user.calendar_mailbox}); sign in to Microsoft with that address"
            )
        return user


def _sealed_values(vault: TokenVault, grant: TokenGrant, now: datetime) -> dict[str, Any]:
    return {
        "access_token": vault.encrypt(grant.access_token),
        "refresh_token": vault.encrypt(grant.refresh_token) if grant.refresh_token else None,
        "expires_at": grant.expires_at,
        "scopes": grant.scopes[:1000],
        "reconnect_reason": None,
        "refreshed_at": now,
        "updated_at": now,
    }
