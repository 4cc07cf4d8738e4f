"""The gateway's signing key and flag source (asgi_gateway/serving/options.py), and timestamps."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.dialects import postgresql, sqlite

from asgi_gateway.serving.options import FlagSource, secret_bytes
from asgi_gateway.tables import Timestamp


def test_the_signing_key_is_the_option_else_flasks_else_a_random_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flask_app = Flask(__name__)
    flask_app.config["SECRET_KEY"] = "from-flask"
    assert secret_bytes("given", flask_app) == b"given"
    assert secret_bytes(b"raw", None) == b"raw"
    assert secret_bytes(None, flask_app) == b"from-flask"
    with caplog.at_level(logging.WARNING, logger="asgi_gateway.serving.options"):
        first, second = secret_bytes(None, None), secret_bytes(None, Flask(__name__))
    assert len(first) == 32 and first != second
    assert "no secret_key for the gateway" in caplog.text


async def test_a_flag_source_opens_one_engine_on_first_use(tmp_path: Path) -> None:
    source = FlagSource(tmp_path / "flags.yaml", f"sqlite+aiosqlite:///{tmp_path / 'f.db'}")
    engine = source.open()
    try:
        assert source.open() is engine
        assert "engine" not in repr(source)
    finally:
        await engine.dispose()


def test_timestamps_are_stored_in_utc_and_naive_ones_refused() -> None:
    stamp = Timestamp()
    moment = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    assert stamp.process_bind_param(moment, sqlite.dialect()) == datetime(2026, 5, 4, 9, 0)
    assert stamp.process_bind_param(moment, postgresql.dialect()) == moment
    assert stamp.process_bind_param(None, sqlite.dialect()) is None
    with pytest.raises(ValueError, match=r"naive datetime .* pass a timezone-aware one"):
        stamp.process_bind_param(datetime(2026, 5, 4, 9, 0), sqlite.dialect())
    assert stamp.process_result_value(datetime(2026, 5, 4, 9, 0), sqlite.dialect()) == moment
    assert stamp.process_result_value(None, sqlite.dialect()) is None
