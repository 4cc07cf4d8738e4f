"""A runtime: settings, one database, providers and services, and their teardown on one loop."""

from __future__ import annotations

import os
import weakref

from shared.config import Settings
from shared.db import Database
from shared.identity_platform import IdentityPlatform
from shared.providers import ProviderRegistry
from shared.services import MicrosoftAccountService, Services
from shared.sessions import SessionReader
from shared.token_vault import TokenVault

__all__ = ["Runtime"]

_live: weakref.WeakSet[Runtime] = weakref.WeakSet()


class Runtime:
    """Everything holding a connection, created once per app or command and closed on its loop.

    The engine and HTTP clients bind to the first loop that uses them, so all use of one
    Runtime must happen on one loop: the bridge loop, the server loop, or the CLI's loop.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings)
        # Sign in with Microsoft, when configured: its OAuth client, and each user's tokens.
        self.identity: IdentityPlatform | None = None
        microsoft: MicrosoftAccountService | None = None
        if settings.m365 is not None and settings.graph_url is not None:
            self.identity = IdentityPlatform(
                settings.m365, settings.graph_url, timeout_s=settings.graph_timeout_s
            )
            vault = TokenVault(settings.token_key or settings.secret_key)
            microsoft = MicrosoftAccountService(self.db, self.identity, vault)
        self.providers = ProviderRegistry(settings, self.db, credentials=microsoft)
        self.services = Services(self.db, self.providers, microsoft=microsoft)
        # The async side's reader of the session cookie (the legacy app has its own instance
        # of the same reader, fed Flask's tagged JSON).
        self.sessions = SessionReader(settings.secret_key)
        _live.add(self)

    async def aclose(self) -> None:
        """Close provider clients and dispose the engine; await on the loop that used them."""
        await self.providers.aclose()
        if self.identity is not None:
            await self.identity.aclose()
        await self.db.dispose()

    def forget_after_fork(self) -> None:
        """In a forked child, drop the parent's pooled connections and HTTP clients unclosed."""
        self.db.forget_pool_after_fork()
        self.providers.forget_after_fork()
        if self.identity is not None:
            self.identity.forget_after_fork()


def _after_fork_in_child() -> None:
    for runtime in list(_live):
        runtime.forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
