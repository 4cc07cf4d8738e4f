"""The real admin-assistant gateway, served by uvicorn in a child process on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ServerProcess

DEFAULT_FLAGS = """\
version: 1
defaults:
  sticky_by: user
routes:
  appointments.list: {mode: legacy}
"""


@pytest.fixture
def flags_file(environ: dict[str, str]) -> Path:
    path = Path(environ["AA_FLAGS_FILE"])
    path.write_text(DEFAULT_FLAGS)
    return path


@pytest.fixture
def gateway_server(
    environ: dict[str, str], flags_file: Path, spawn: Callable[..., ServerProcess]
) -> ServerProcess:
    """One gateway process (one worker) over the test's SQLite file."""
    return spawn({**environ, "AA_FLAGS_POLL_S": "0.1"})
