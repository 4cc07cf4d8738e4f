"""One provider instance per kind per process, created lazily on the loop that uses it."""

from __future__ import annotations

from shared.config import Settings
from shared.db import Database
from shared.errors import ProviderError
from shared.providers._base import CalendarProvider
from shared.providers.graph import DelegatedTokens, GraphProvider
from shared.providers.local import LocalProvider


class ProviderRegistry:
    """Hands out the process's provider for a calendar's `provider` name."""

    def __init__(
        self, settings: Settings, db: Database, *, credentials: DelegatedTokens | None = None
    ) -> None:
        self.settings = settings
        self.db = db
        # Set when Microsoft 365 sign-in is on: Graph calls carry each user's own token.
        self.credentials = credentials
        self._providers: dict[str, CalendarProvider] = {}

    def get(self, name: str) -> CalendarProvider:
        """The provider for `name` (`local` or `graph`); ProviderError when it is not configured."""
        provider = self._providers.get(name)
        if provider is None:
            provider = self._providers[name] = self._create(name)
        return provider

    def _create(self, name: str) -> CalendarProvider:
        if name == "local":
            return LocalProvider(self.db)
        if name == "graph":
            if not self.settings.graph_url:
                raise ProviderError(
                    "this calendar uses the graph provider but AA_GRAPH_URL is not set"
                )
            return GraphProvider(
                self.settings.graph_url,
                token=self.settings.graph_token,
                timeout_s=self.settings.graph_timeout_s,
                max_retries=self.settings.graph_max_retries,
                credentials=self.credentials,
            )
        raise ProviderError(f"unknown calendar provider {name!r} (expected local or graph)")

    def forget_after_fork(self) -> None:
        """Drop providers inherited over fork: their HTTP connections belong to the parent."""
        self._providers = {}

    async def aclose(self) -> None:
        """Close every provider's connections on the current (bridge or CLI) loop."""
        providers, self._providers = self._providers, {}
        for provider in providers.values():
            await provider.aclose()
