"""Stored Microsoft accounts: look-ups by user and by subject, and revoking their tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import MicrosoftAccount

__all__ = ["MicrosoftAccountRepository"]


class MicrosoftAccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def of_user(self, user_id: int) -> MicrosoftAccount | None:
        return await self.session.scalar(
            select(MicrosoftAccount).where(MicrosoftAccount.user_id == user_id)
        )

    async def by_subject(self, subject: str) -> MicrosoftAccount | None:
        return await self.session.scalar(
            select(MicrosoftAccount).where(MicrosoftAccount.subject == subject)
        )

    async def add(self, account: MicrosoftAccount) -> MicrosoftAccount:
        self.session.add(account)
        await self.session.flush()
        return account

    async def delete(self, account: MicrosoftAccount) -> None:
        await self.session.delete(account)
        await self.session.flush()

    async def revoke(self, user_id: int, at: datetime, reason: str) -> int:
        """Erase the user's stored tokens (they must reconnect); how many accounts had some."""
        result = await self.session.execute(
            update(MicrosoftAccount)
            .where(
                MicrosoftAccount.user_id == user_id,
                MicrosoftAccount.refresh_token.is_not(None),
            )
            .values(
                access_token=None,
                refresh_token=None,
                expires_at=None,
                revoked_at=at,
                reconnect_reason=reason,
                updated_at=at,
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
