"""Fixtures of the domain tests: one Runtime per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.config import load_settings
from shared.runtime import Runtime


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_environ(request: pytest.FixtureRequest) -> dict[str, str]:
    """The test's AA_* environment on each database in turn."""
    name = "environ" if request.param == "sqlite" else "pg_environ"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
async def domain(db_environ: dict[str, str]) -> AsyncIterator[Runtime]:
    """The services over `db_environ`'s database, closed after the test."""
    runtime = Runtime(load_settings(db_environ))
    yield runtime
    await runtime.aclose()
