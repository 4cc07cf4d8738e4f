"""Calendar providers behind one interface: `local` (our database), `graph` (a Graph API)."""

from __future__ import annotations

from shared.providers._base import (
    IMPORTANCE,
    SENSITIVITY,
    SHOW_AS,
    CalendarProvider,
    CalendarRef,
    ProviderEvent,
    RemoteCalendar,
)
from shared.providers._registry import ProviderRegistry
from shared.providers.graph import GraphProvider
from shared.providers.local import LocalProvider

__all__ = [
    "IMPORTANCE",
    "SENSITIVITY",
    "SHOW_AS",
    "CalendarProvider",
    "CalendarRef",
    "GraphProvider",
    "LocalProvider",
    "ProviderEvent",
    "ProviderRegistry",
    "RemoteCalendar",
]
