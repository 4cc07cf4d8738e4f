"""Fixtures of the control-plane tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.control.database import open_engine
from asgi_gateway.control.store import FlagStore
from asgi_gateway.flag_file import FlagFile
from shared.config import Settings


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's database, created on this test's loop and disposed on it."""
    engine = open_engine(settings.database_url)
    yield engine
    await engine.dispose()


async def applied_store(engine: AsyncEngine, declared: FlagFile) -> FlagStore:
    """A flag store on `engine`, its tables created and `declared` applied."""
    store = FlagStore(engine)
    await store.ensure_schema()
    await store.apply(declared)
    return store
