"""The legacy Flask app served on its own (the gateway's a2wsgi mount under uvicorn, no routing)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from asgi_gateway.serving.mount import WSGIMount
from legacy_flask import LegacyFlask, create_app
from shared.runtime import Runtime
from tests.conftest import LiveServer


@pytest.fixture
def flask_app(runtime: Runtime) -> LegacyFlask:
    return create_app(runtime=runtime)


@pytest.fixture
def legacy_server(flask_app: LegacyFlask, serve: Callable[..., LiveServer]) -> LiveServer:
    return serve(WSGIMount(flask_app, workers=8))
