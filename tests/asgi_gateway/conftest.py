"""The real admin-assistant gateway, served by uvicorn in a child process on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.asgi_gateway.custom_app import FLAGS as CUSTOM_FLAGS
from tests.conftest import ServerProcess
from tests.fakes.webhook_receiver import WebhookReceiver

CUSTOM_APP = "tests.asgi_gateway.custom_app:app"
CUSTOM_WSGI_THREADS = 4

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


@pytest.fixture
def custom_environ(tmp_path: Path) -> dict[str, str]:
    """The environment of the third-party test app behind `build_gateway` (custom_app.py)."""
    flags = tmp_path / "custom_flags.yaml"
    flags.write_text(CUSTOM_FLAGS)
    return {
        "CUSTOM_FLAGS_FILE": str(flags),
        "CUSTOM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'custom.db'}",
        "CUSTOM_WSGI_THREADS": str(CUSTOM_WSGI_THREADS),
    }


@pytest.fixture
def custom_server(
    custom_environ: dict[str, str], spawn: Callable[..., ServerProcess]
) -> ServerProcess:
    """The third-party test app behind `build_gateway`, in its own uvicorn process."""
    return spawn(custom_environ, app=CUSTOM_APP)


LAB_APP = "tests.asgi_gateway.lab_app:app"


@pytest.fixture
def lab_environ(tmp_path: Path) -> dict[str, str]:
    """The environment of the misbehaving-twins test app (lab_app.py)."""
    from tests.asgi_gateway.lab_app import FLAGS as LAB_FLAGS

    flags = tmp_path / "lab_flags.yaml"
    flags.write_text(LAB_FLAGS)
    return {
        "LAB_FLAGS_FILE": str(flags),
        "LAB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'lab.db'}",
    }


@pytest.fixture
def lab_server(lab_environ: dict[str, str], spawn: Callable[..., ServerProcess]) -> ServerProcess:
    """The lab app behind `build_gateway`, one worker in its own uvicorn process."""
    return spawn(lab_environ, app=LAB_APP)


ROLLOUT_APP = "tests.asgi_gateway.rollout_app:app"


@pytest.fixture
def rollout_environ(tmp_path: Path) -> dict[str, str]:
    """The environment of the guard and rollout test app (rollout_app.py), on SQLite; the test
    writes ROLLOUT_FLAGS_FILE before it starts a server. Metrics are summed over workers."""
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    return {
        "ROLLOUT_FLAGS_FILE": str(tmp_path / "rollout_flags.yaml"),
        "ROLLOUT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'rollout.db'}",
        "ROLLOUT_BEHAVIOUR_FILE": str(tmp_path / "behaviour.json"),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
    }


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A real webhook receiver on 127.0.0.1 (tests/fakes/webhook_receiver.py)."""
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """The test's SQLite file, then the test PostgreSQL (async driver URLs), for tests that
    ask for it: the same behaviour on both backends."""
    if request.param == "sqlite":
        url: str = request.getfixturevalue("settings").database_url
        return url
    pg: str = request.getfixturevalue("pg_environ")["AA_DATABASE_URL"]
    return pg.replace("postgresql://", "postgresql+asyncpg://")
