"""`load_settings` over plain dict environments: defaults, every invalid value, the secret key."""

from __future__ import annotations

import dataclasses
import logging
import stat
from pathlib import Path

import pytest

from shared.config import Settings, load_settings, normalize_database_url
from shared.errors import ConfigError

KEY = "k" * 32


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


def load(var_dir: Path, **environ: str) -> Settings:
    """Settings for `environ`, always with the test's own var dir (the dev key lands there)."""
    return load_settings({"AA_VAR_DIR": str(var_dir), **environ})


def test_defaults(var_dir: Path) -> None:
    settings = load(var_dir, AA_SECRET_KEY=KEY)
    assert settings.env == "development"
    assert settings.database_url == f"sqlite+aiosqlite:///{var_dir.resolve()}/admin_assistant.db"
    assert settings.is_sqlite and not settings.is_production
    assert settings.secret_key == KEY
    assert settings.flags_file == Path("feature_flags.yaml").resolve()
    assert settings.calendar_provider == "local"
    assert settings.graph_url is None and settings.graph_token is None
    assert settings.var_dir == var_dir.resolve()
    assert (settings.db_pool_size, settings.db_max_overflow) == (10, 5)
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.wsgi_threads == 12
    assert (settings.graph_timeout_s, settings.graph_max_retries) == (10.0, 3)
    assert settings.flags_poll_s == 0.25
    assert settings.flags_notify is True
    assert (settings.flags_fallback_poll_s, settings.flags_notify_retry_s) == (30.0, 2.0)
    assert (settings.retire_after_days, settings.stats_retention_days) == (7, 7)
    assert settings.auth_cache_s == 5.0
    assert (settings.stats_flush_s, settings.guard_tick_s) == (2.0, 1.0)
    assert settings.rollout_webhook is None


def test_every_variable_is_read(var_dir: Path, tmp_path: Path) -> None:
    settings = load(
        var_dir,
        AA_ENV="production",
        AA_SECRET_KEY=KEY,
        AA_DATABASE_URL="postgresql://aa@db.internal/aa",
        AA_FLAGS_FILE=str(tmp_path / "flags.yaml"),
        AA_CALENDAR_PROVIDER="graph",
        AA_GRAPH_URL="https://graph.example/v1.0/",
        AA_GRAPH_TOKEN="graph-token",
        AA_DB_POOL_SIZE="3",
        AA_DB_MAX_OVERFLOW="0",
        AA_MAX_BODY_BYTES="2048",
        AA_WSGI_THREADS="9",
        AA_GRAPH_TIMEOUT_S="2.5",
        AA_GRAPH_MAX_RETRIES="0",
        AA_FLAGS_POLL_S="1",
        AA_FLAGS_NOTIFY="off",
        AA_FLAGS_FALLBACK_POLL_S="60",
        AA_FLAGS_NOTIFY_RETRY_S="5",
        AA_RETIRE_AFTER_DAYS="30",
        AA_STATS_RETENTION_DAYS="14",
        AA_AUTH_CACHE_S="0",
        AA_STATS_FLUSH_S="0.5",
        AA_GUARD_TICK_S="0.25",
        AA_ROLLOUT_WEBHOOK="https://hooks.example/rollouts?team=web",
    )
    assert settings.is_production and not settings.is_sqlite
    assert settings.database_url == "postgresql+asyncpg://aa@db.internal/aa"
    assert settings.flags_file == tmp_path / "flags.yaml"
    assert settings.calendar_provider == "graph"
    assert settings.graph_url == "https://graph.example/v1.0"  # trailing slash dropped
    assert settings.graph_token == "graph-token"
    assert (settings.db_pool_size, settings.db_max_overflow, settings.wsgi_threads) == (3, 0, 9)
    assert settings.max_body_bytes == 2048
    assert (settings.graph_timeout_s, settings.graph_max_retries) == (2.5, 0)
    assert settings.flags_poll_s == 1.0
    assert settings.flags_notify is False
    assert (settings.flags_fallback_poll_s, settings.flags_notify_retry_s) == (60.0, 5.0)
    assert (settings.retire_after_days, settings.stats_retention_days) == (30, 14)
    assert settings.auth_cache_s == 0.0  # zero turns the credential cache off
    assert (settings.stats_flush_s, settings.guard_tick_s) == (0.5, 0.25)
    assert settings.rollout_webhook == "https://hooks.example/rollouts?team=web"


def test_wsgi_threads_follow_the_pool_size_by_default(var_dir: Path) -> None:
    assert load(var_dir, AA_SECRET_KEY=KEY, AA_DB_POOL_SIZE="4").wsgi_threads == 6


def test_empty_values_mean_the_default(var_dir: Path) -> None:
    settings = load(
        var_dir,
        AA_SECRET_KEY=KEY,
        AA_DB_POOL_SIZE="",
        AA_GRAPH_TIMEOUT_S="",
        AA_DATABASE_URL="",
        AA_GRAPH_URL="",
    )
    assert settings.db_pool_size == 10
    assert settings.graph_timeout_s == 10.0
    assert settings.is_sqlite
    assert settings.graph_url is None


def test_settings_are_frozen(var_dir: Path) -> None:
    settings = load(var_dir, AA_SECRET_KEY=KEY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.env = "production"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AA_ENV", "staging", r"AA_ENV='staging' is not valid \(expected one of development, "),
        ("AA_CALENDAR_PROVIDER", "outlook", r"AA_CALENDAR_PROVIDER='outlook' is not valid"),
        ("AA_GRAPH_URL", "ftp://graph.example", r"AA_GRAPH_URL='ftp://graph.example' must be an"),
        ("AA_DATABASE_URL", "mysql://db/aa", r"AA_DATABASE_URL scheme 'mysql' is not supported"),
        ("AA_DB_POOL_SIZE", "ten", r"AA_DB_POOL_SIZE='ten' is not a whole number"),
        ("AA_DB_POOL_SIZE", "0", r"AA_DB_POOL_SIZE=0 is too small \(minimum 1\)"),
        ("AA_DB_MAX_OVERFLOW", "-1", r"AA_DB_MAX_OVERFLOW=-1 is too small \(minimum 0\)"),
        ("AA_MAX_BODY_BYTES", "100", r"AA_MAX_BODY_BYTES=100 is too small \(minimum 1024\)"),
        ("AA_MAX_BODY_BYTES", "1.5", r"AA_MAX_BODY_BYTES='1.5' is not a whole number"),
        ("AA_WSGI_THREADS", "0", r"AA_WSGI_THREADS=0 is too small"),
        ("AA_GRAPH_TIMEOUT_S", "soon", r"AA_GRAPH_TIMEOUT_S='soon' is not a number"),
        ("AA_GRAPH_TIMEOUT_S", "0", r"AA_GRAPH_TIMEOUT_S=0.0 must be greater than zero"),
        ("AA_GRAPH_MAX_RETRIES", "-1", r"AA_GRAPH_MAX_RETRIES=-1 is too small"),
        ("AA_FLAGS_POLL_S", "-0.5", r"AA_FLAGS_POLL_S=-0.5 must be greater than zero"),
        ("AA_FLAGS_NOTIFY", "true", r"AA_FLAGS_NOTIFY='true' is not valid \(expected on or off\)"),
        ("AA_FLAGS_FALLBACK_POLL_S", "0", r"AA_FLAGS_FALLBACK_POLL_S=0.0 must be greater than"),
        ("AA_FLAGS_NOTIFY_RETRY_S", "soon", r"AA_FLAGS_NOTIFY_RETRY_S='soon' is not a number"),
        ("AA_AUTH_CACHE_S", "-1", r"AA_AUTH_CACHE_S=-1.0 must be zero or more"),
        ("AA_AUTH_CACHE_S", "nan", r"AA_AUTH_CACHE_S=nan must be zero or more"),
        ("AA_RETIRE_AFTER_DAYS", "0", r"AA_RETIRE_AFTER_DAYS=0 is too small"),
        ("AA_STATS_RETENTION_DAYS", "3", r"AA_STATS_RETENTION_DAYS=3 is too small \(minimum 7\)"),
        ("AA_SECRET_KEY", "short", r"AA_SECRET_KEY is too short"),
        ("AA_SECRET_KEY", " " * 16, r"AA_SECRET_KEY is empty or only whitespace"),
        ("AA_SECRET_KEY", "\t \n" * 8, r"AA_SECRET_KEY is empty or only whitespace"),
        ("AA_SECRET_KEY", "   short-key   ", r"AA_SECRET_KEY is too short \(9 characters"),
        ("AA_LOGIN_FAILURES_PER_ACCOUNT", "0", r"AA_LOGIN_FAILURES_PER_ACCOUNT=0 is too small"),
        ("AA_LOGIN_FAILURES_PER_ADDRESS", "many", r"AA_LOGIN_FAILURES_PER_ADDRESS='many' is not"),
        ("AA_LOGIN_FAILURE_WINDOW_S", "-5", r"AA_LOGIN_FAILURE_WINDOW_S=-5 is too small"),
        ("AA_SCHEDULER", "yes", r"AA_SCHEDULER='yes' is not valid \(expected on or off\)"),
        ("AA_SCHEDULER_TICK_S", "0", r"AA_SCHEDULER_TICK_S=0.0 must be greater than zero"),
        ("AA_JOB_LEASE_S", "0.5", r"AA_JOB_LEASE_S=0.5 is too small \(minimum 1 second\)"),
        ("AA_JOB_LEASE_S", "a minute", r"AA_JOB_LEASE_S='a minute' is not a number"),
        ("AA_JOB_MISFIRE_GRACE_S", "-5", r"AA_JOB_MISFIRE_GRACE_S=-5.0 must be greater than zero"),
        ("AA_JOB_SHUTDOWN_GRACE_S", "-1", r"AA_JOB_SHUTDOWN_GRACE_S=-1.0 must be zero or more"),
        ("AA_GUARD_TICK_S", "0", r"AA_GUARD_TICK_S=0.0 must be greater than zero"),
        ("AA_ROLLOUT_WEBHOOK", "hooks.example/x", r"AA_ROLLOUT_WEBHOOK='hooks.example/x' must be"),
    ],
)
def test_an_invalid_value_names_its_variable(
    var_dir: Path, variable: str, value: str, message: str
) -> None:
    environ = {"AA_SECRET_KEY": KEY, variable: value}
    with pytest.raises(ConfigError, match=message):
        load(var_dir, **environ)


def test_the_graph_provider_needs_a_graph_url(var_dir: Path) -> None:
    with pytest.raises(ConfigError, match="AA_CALENDAR_PROVIDER=graph needs AA_GRAPH_URL"):
        load(var_dir, AA_SECRET_KEY=KEY, AA_CALENDAR_PROVIDER="graph")


@pytest.mark.parametrize("key", [None, ""])
def test_production_requires_a_secret_key(var_dir: Path, key: str | None) -> None:
    environ = (
        {"AA_ENV": "production"} if key is None else {"AA_ENV": "production", "AA_SECRET_KEY": key}
    )
    with pytest.raises(ConfigError, match="AA_SECRET_KEY is required when AA_ENV=production"):
        load(var_dir, **environ)
    assert not (var_dir / "secret_key").exists()


def test_development_generates_a_key_once_and_reuses_it(
    var_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="shared.config"):
        first = load(var_dir).secret_key
    assert "AA_SECRET_KEY is not set; generated a development key" in caplog.text
    key_file = var_dir / "secret_key"
    assert key_file.read_text() == first
    assert len(first) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="shared.config"):
        second = load(var_dir, AA_ENV="testing").secret_key
    assert second == first
    assert caplog.text == ""  # reused silently


def test_an_explicit_key_wins_over_the_generated_one(var_dir: Path) -> None:
    generated = load(var_dir).secret_key
    assert load(var_dir, AA_SECRET_KEY=KEY).secret_key == KEY != generated


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("sqlite:///var/app.db", "sqlite+aiosqlite:///var/app.db"),
        ("sqlite:////abs/app.db", "sqlite+aiosqlite:////abs/app.db"),
        ("sqlite+aiosqlite:///var/app.db", "sqlite+aiosqlite:///var/app.db"),
        ("postgresql://u:p@host:5432/db", "postgresql+asyncpg://u:p@host:5432/db"),
        ("postgres://u@host/db", "postgresql+asyncpg://u@host/db"),
        ("postgresql+asyncpg://u@host/db", "postgresql+asyncpg://u@host/db"),
    ],
)
def test_database_urls_are_mapped_to_async_drivers(url: str, normalized: str) -> None:
    assert normalize_database_url(url) == normalized


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg2://u@host/db", "mysql://u@host/db", "db.sqlite"]
)
def test_other_database_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=r"AA_DATABASE_URL scheme .* is not supported"):
        normalize_database_url(url)


def test_login_throttling_has_sane_defaults(var_dir: Path) -> None:
    settings = load(var_dir, AA_SECRET_KEY=KEY)
    assert (
        settings.login_failures_per_account,
        settings.login_failures_per_address,
        settings.login_failure_window_s,
    ) == (5, 50, 900)


@pytest.mark.parametrize("content", ["", "   \n", "\t\t\n\n"])
def test_an_empty_key_file_is_refused_with_what_to_do(var_dir: Path, content: str) -> None:
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / "secret_key").write_text(content)
    with pytest.raises(
        ConfigError, match=r"secret_key is empty or only whitespace.*delete the file"
    ):
        load(var_dir)


def test_a_short_key_file_is_refused(var_dir: Path) -> None:
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / "secret_key").write_text("tiny\n")
    with pytest.raises(ConfigError, match=r"secret_key is too short \(4 characters"):
        load(var_dir)


def test_a_key_file_is_read_without_its_trailing_newline(var_dir: Path) -> None:
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / "secret_key").write_text(KEY + "\n")
    assert load(var_dir).secret_key == KEY


def test_generating_a_key_leaves_no_draft_behind(var_dir: Path) -> None:
    load(var_dir)
    assert [p.name for p in var_dir.iterdir()] == ["secret_key"]


def test_scheduler_settings(var_dir: Path) -> None:
    defaults = load(var_dir, AA_SECRET_KEY=KEY)
    assert defaults.scheduler_enabled is True
    assert (defaults.scheduler_tick_s, defaults.job_lease_s) == (1.0, 60.0)
    assert (defaults.job_misfire_grace_s, defaults.job_shutdown_grace_s) == (60.0, 10.0)
    tuned = load(
        var_dir,
        AA_SECRET_KEY=KEY,
        AA_SCHEDULER="OFF",
        AA_SCHEDULER_TICK_S="0.5",
        AA_JOB_LEASE_S="15",
        AA_JOB_MISFIRE_GRACE_S="300",
        AA_JOB_SHUTDOWN_GRACE_S="0",
    )
    assert tuned.scheduler_enabled is False
    assert (tuned.scheduler_tick_s, tuned.job_lease_s) == (0.5, 15.0)
    assert (tuned.job_misfire_grace_s, tuned.job_shutdown_grace_s) == (300.0, 0.0)
