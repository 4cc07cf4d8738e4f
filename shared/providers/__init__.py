"""Calendar providers behind one interface: `local` (our database), `graph` (a Graph API)."""

from __future__ import annotations

from shared.providers._base import CalendarProvider, CalendarRef, ProviderEvent
from shared.providers._registry import ProviderRegistry
from shared.providers.graph import GraphProvider
from shared.providers.local import LocalProvider

__all__ = [
    "CalendarProvider",
    "CalendarRef",
    "GraphProvider",
    "LocalProvider",
    "ProviderEvent",
    "ProviderRegistry",
]
