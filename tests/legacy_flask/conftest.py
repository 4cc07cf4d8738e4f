"""The legacy Flask app served on its own (a2wsgi under uvicorn), as before the gateway."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from a2wsgi import WSGIMiddleware

from legacy_flask import LegacyFlask, create_app
from shared.runtime import Runtime
from tests.conftest import LiveServer


@pytest.fixture
def flask_app(runtime: Runtime) -> LegacyFlask:
    return create_app(runtime=runtime)


@pytest.fixture
def legacy_server(flask_app: LegacyFlask, serve: Callable[..., LiveServer]) -> LiveServer:
    return serve(WSGIMiddleware(flask_app, workers=8))
