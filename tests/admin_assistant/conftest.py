"""The console script as a child process, with the test's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

CLI = Path(sys.executable).parent / "admin-assistant"
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(environ: dict[str, str], tmp_path: Path) -> Run:
    """Run the console script with the test's environment (and no AA_* from outside)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AA_")}
    env.update(environ)

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLI), *args],
            env={**env, **extra_env},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run
