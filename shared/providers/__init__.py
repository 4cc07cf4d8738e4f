"""Calendar providers behind one interface: `local` (our database) and `graph` (Graph-compatible API)."""

from __future__ import annotations

from typing import Any

from shared.providers._base import CalendarProvider, CalendarRef, ProviderEvent
from shared.providers._registry import ProviderRegistry
from shared.providers.local import LocalProvider

__all__ = [
    "CalendarProvider",
    "CalendarRef",
    "GraphProvider",
    "LocalProvider",
    "ProviderEvent",
    "ProviderRegistry",
]


def __getattr__(name: str) -> Any:
    if name == "GraphProvider":
        from shared.providers.graph import GraphProvider

        return GraphProvider
    raise AttributeError(name)
