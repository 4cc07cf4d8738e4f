"""Process settings from the AA_* environment variables, validated once at start-up."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shared.errors import ConfigError

Environment = Literal["development", "production", "testing"]
ProviderName = Literal["local", "graph"]

_ENVIRONMENTS: tuple[Environment, ...] = ("development", "production", "testing")
_PROVIDERS: tuple[ProviderName, ...] = ("local", "graph")
_log = logging.getLogger(__name__)


M365_DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
# What a delegated token may do: read the user's profile (its mail, for sign-in) and read
# and write the calendars the user can reach; offline_access brings a refresh token.
M365_SCOPES = ("openid", "profile", "email", "offline_access", "User.Read", "Calendars.ReadWrite")
_M365_PARTS = ("AA_M365_TENANT", "AA_M365_CLIENT_ID", "AA_M365_CLIENT_SECRET")


@dataclass(frozen=True)
class M365Settings:
    """Sign in with Microsoft: the app registration and where its identity platform is."""

    tenant: str
    client_id: str
    client_secret: str = field(repr=False)
    authority: str = M365_DEFAULT_AUTHORITY
    # Where the identity platform sends the browser back: the registered redirect URI.
    redirect_uri: str | None = None
    # Every user signs in with Microsoft; the password form is refused.
    is_required: bool = False

    @property
    def discovery_url(self) -> str:
        """The OpenID configuration of the tenant (v2.0 endpoints)."""
        return f"{self.authority}/{self.tenant}/v2.0/.well-known/openid-configuration"


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know about its environment; immutable once built."""

    env: Environment
    database_url: str
    secret_key: str
    flags_file: Path
    calendar_provider: ProviderName
    graph_url: str | None
    graph_token: str | None
    var_dir: Path
    db_pool_size: int
    db_max_overflow: int
    max_body_bytes: int
    wsgi_threads: int
    graph_timeout_s: float
    graph_max_retries: int
    flags_poll_s: float
    retire_after_days: int
    stats_retention_days: int
    auth_cache_s: float = 5.0
    body_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024
    metrics_token: str | None = None
    shadow_concurrency: int = 8
    stats_flush_s: float = 2.0
    login_failures_per_account: int = 5
    login_failures_per_address: int = 50
    login_failure_window_s: int = 900
    scheduler_enabled: bool = True
    scheduler_tick_s: float = 1.0
    job_lease_s: float = 60.0
    job_misfire_grace_s: float = 60.0
    job_shutdown_grace_s: float = 10.0
    guard_tick_s: float = 1.0
    rollout_webhook: str | None = None
    # Microsoft 365 sign-in (all four M365 settings, or none); None: password sign-in only.
    m365: M365Settings | None = None
    # Key material for the delegated tokens stored at rest (default: derived from secret_key).
    token_key: str | None = None
    flags_notify: bool = True
    flags_fallback_poll_s: float = 30.0
    flags_notify_retry_s: float = 2.0

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_production(self) -> bool:
        return self.env == "production"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `environ` (default `os.environ`); ConfigError names a bad variable."""
    env_map = os.environ if environ is None else environ
    env = env_map.get("AA_ENV", "development")
    if env not in _ENVIRONMENTS:
        raise ConfigError(
            f"AA_ENV={env!r} is not valid (expected one of {', '.join(_ENVIRONMENTS)})"
        )
    var_dir = Path(env_map.get("AA_VAR_DIR", "./var")).resolve()
    database_url = normalize_database_url(
        env_map.get("AA_DATABASE_URL") or f"sqlite:///{var_dir / 'admin_assistant.db'}"
    )
    provider = env_map.get("AA_CALENDAR_PROVIDER", "local")
    if provider not in _PROVIDERS:
        raise ConfigError(
            f"AA_CALENDAR_PROVIDER={provider!r} is not valid "
            f"(expected one of {', '.join(_PROVIDERS)})"
        )
    graph_url = env_map.get("AA_GRAPH_URL") or None
    if graph_url is not None and not graph_url.startswith(("http://", "https://")):
        raise ConfigError(f"AA_GRAPH_URL={graph_url!r} must be an http:// or https:// URL")
    if provider == "graph" and graph_url is None:
        raise ConfigError("AA_CALENDAR_PROVIDER=graph needs AA_GRAPH_URL (the Graph API base URL)")
    pool_size = _int(env_map, "AA_DB_POOL_SIZE", 10, minimum=1)
    return Settings(
        env=env,  # type: ignore[arg-type]
        database_url=database_url,
        secret_key=_secret_key(env_map, env, var_dir),
        flags_file=Path(env_map.get("AA_FLAGS_FILE", "./feature_flags.yaml")).resolve(),
        calendar_provider=provider,  # type: ignore[arg-type]
        graph_url=graph_url.rstrip("/") if graph_url else None,
        graph_token=env_map.get("AA_GRAPH_TOKEN") or None,
        var_dir=var_dir,
        db_pool_size=pool_size,
        db_max_overflow=_int(env_map, "AA_DB_MAX_OVERFLOW", 5, minimum=0),
        max_body_bytes=_int(env_map, "AA_MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
        # Each WSGI thread may hold one pooled connection while its view runs; more threads
        # than connections only queue on the pool, so size the pool of threads to match it.
        wsgi_threads=_int(env_map, "AA_WSGI_THREADS", pool_size + 2, minimum=1),
        graph_timeout_s=_float(env_map, "AA_GRAPH_TIMEOUT_S", 10.0),
        graph_max_retries=_int(env_map, "AA_GRAPH_MAX_RETRIES", 3, minimum=0),
        flags_poll_s=_float(env_map, "AA_FLAGS_POLL_S", 0.25),
        retire_after_days=_int(env_map, "AA_RETIRE_AFTER_DAYS", 7, minimum=1),
        stats_retention_days=_int(env_map, "AA_STATS_RETENTION_DAYS", 7, minimum=7),
        auth_cache_s=_float(env_map, "AA_AUTH_CACHE_S", 5.0, allow_zero=True),
        body_timeout_s=_float(env_map, "AA_BODY_TIMEOUT_S", 10.0),
        max_header_bytes=_int(env_map, "AA_MAX_HEADER_BYTES", 64 * 1024, minimum=4096),
        metrics_token=_metrics_token(env_map),
        shadow_concurrency=_int(env_map, "AA_SHADOW_CONCURRENCY", 8, minimum=0),
        stats_flush_s=_float(env_map, "AA_STATS_FLUSH_S", 2.0),
        login_failures_per_account=_int(env_map, "AA_LOGIN_FAILURES_PER_ACCOUNT", 5, minimum=1),
        login_failures_per_address=_int(env_map, "AA_LOGIN_FAILURES_PER_ADDRESS", 50, minimum=1),
        login_failure_window_s=_int(env_map, "AA_LOGIN_FAILURE_WINDOW_S", 900, minimum=1),
        scheduler_enabled=_switch(env_map, "AA_SCHEDULER", default=True),
        scheduler_tick_s=_float(env_map, "AA_SCHEDULER_TICK_S", 1.0),
        job_lease_s=_lease(env_map),
        job_misfire_grace_s=_float(env_map, "AA_JOB_MISFIRE_GRACE_S", 60.0),
        job_shutdown_grace_s=_float(env_map, "AA_JOB_SHUTDOWN_GRACE_S", 10.0, allow_zero=True),
        guard_tick_s=_float(env_map, "AA_GUARD_TICK_S", 1.0),
        rollout_webhook=_webhook_url(env_map),
        m365=_m365(env_map, graph_url),
        token_key=_token_key(env_map),
        flags_notify=_switch(env_map, "AA_FLAGS_NOTIFY", default=True),
        flags_fallback_poll_s=_float(env_map, "AA_FLAGS_FALLBACK_POLL_S", 30.0),
        flags_notify_retry_s=_float(env_map, "AA_FLAGS_NOTIFY_RETRY_S", 2.0),
    )


def normalize_database_url(url: str) -> str:
    """Map plain `sqlite:`/`postgresql:` URLs to their async drivers; reject anything else."""
    if url.startswith("sqlite+aiosqlite:") or url.startswith("postgresql+asyncpg:"):
        return url
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    for prefix in ("postgresql:", "postgres:"):
        if url.startswith(prefix):
            return "postgresql+asyncpg:" + url[len(prefix) :]
    scheme = url.split(":", 1)[0]
    raise ConfigError(
        f"AA_DATABASE_URL scheme {scheme!r} is not supported "
        "(use sqlite:///path/to/file.db or postgresql://user@host/db)"
    )


MIN_SECRET_LENGTH = 16


def _secret_key(environ: Mapping[str, str], env: str, var_dir: Path) -> str:
    key = environ.get("AA_SECRET_KEY")
    if key is not None and key != "":
        return _checked_secret(key, "AA_SECRET_KEY")
    if env == "production":
        raise ConfigError(
            "AA_SECRET_KEY is required when AA_ENV=production "
            f"(set it to at least {MIN_SECRET_LENGTH} random characters)"
        )
    # Development: generate once and keep it, so sessions survive restarts and every
    # worker of the process group signs cookies with the same key.
    path = var_dir / "secret_key"
    try:
        return _checked_secret(path.read_text(), str(path))
    except FileNotFoundError:
        pass
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    # Written whole under another name, then linked into place: a worker racing us sees
    # either no file or the complete key, never an empty file.
    draft = var_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    try:
        os.link(draft, path)
    except FileExistsError:  # another worker won the race; use its key
        return _checked_secret(path.read_text(), str(path))
    finally:
        draft.unlink()
    _log.warning("AA_SECRET_KEY is not set; generated a development key in %s", path)
    return key


def _m365(environ: Mapping[str, str], graph_url: str | None) -> M365Settings | None:
    """The M365 settings: all of tenant, client id and secret, or none (a partial set is an
    error naming what is missing); the authority and redirect URI must be http(s) URLs."""
    present = {name: environ.get(name, "").strip() for name in _M365_PARTS}
    required = _switch(environ, "AA_M365_REQUIRED", default=False)
    extras = [n for n in ("AA_M365_AUTHORITY", "AA_M365_REDIRECT_URI") if environ.get(n)]
    if not any(present.values()):
        if required or extras:
            named = "AA_M365_REQUIRED=on" if required else " and ".join(extras)
            raise ConfigError(
                f"{named} needs Microsoft 365 sign-in configured: set "
                f"{', '.join(_M365_PARTS)} and AA_M365_REDIRECT_URI (or unset {named})"
            )
        return None
    missing = [name for name, value in present.items() if not value]
    redirect_uri = environ.get("AA_M365_REDIRECT_URI", "").strip()
    if not redirect_uri:
        missing.append("AA_M365_REDIRECT_URI")
    if missing:
        given = ", ".join(name for name, value in present.items() if value)
        raise ConfigError(
            f"Microsoft 365 sign-in is partly configured ({given} set) but "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: set all of "
            f"{', '.join(_M365_PARTS)} and AA_M365_REDIRECT_URI, or none of them"
        )
    tenant = present["AA_M365_TENANT"]
    if tenant.lower() in ("common", "organizations", "consumers"):
        raise ConfigError(
            f"AA_M365_TENANT={tenant!r} lets accounts of any organisation sign in, and sign-in "
            "links users by mail address, which only your own tenant vouches for: set your "
            "tenant's id or domain (e.g. contoso.onmicrosoft.com)"
        )
    authority = (environ.get("AA_M365_AUTHORITY") or M365_DEFAULT_AUTHORITY).rstrip("/")
    for name, url in (("AA_M365_AUTHORITY", authority), ("AA_M365_REDIRECT_URI", redirect_uri)):
        if not url.startswith(("http://", "https://")) or " " in url:
            raise ConfigError(f"{name}={url!r} must be an http:// or https:// URL")
    if not redirect_uri.endswith("/login/microsoft/callback"):
        raise ConfigError(
            f"AA_M365_REDIRECT_URI={redirect_uri!r} must be this site's "
            "/login/microsoft/callback URL, e.g. https://aa.example.com/login/microsoft/callback"
            " (register the same URL with the app in Microsoft Entra)"
        )
    if graph_url is None:
        raise ConfigError(
            "Microsoft 365 sign-in needs AA_GRAPH_URL (e.g. https://graph.microsoft.com/v1.0): "
            "it reads the signed-in user's mail address from /me"
        )
    return M365Settings(
        tenant=tenant,
        client_id=present["AA_M365_CLIENT_ID"],
        client_secret=present["AA_M365_CLIENT_SECRET"],
        authority=authority,
        redirect_uri=redirect_uri,
        is_required=required,
    )


def _token_key(environ: Mapping[str, str]) -> str | None:
    key = environ.get("AA_TOKEN_KEY")
    if key is None or key == "":
        return None
    if len(key.strip()) < 32 or key != key.strip():
        raise ConfigError(
            "AA_TOKEN_KEY must be at least 32 characters without surrounding spaces "
            "(use a random string, e.g. from `openssl rand -hex 32`)"
        )
    return key


def _metrics_token(environ: Mapping[str, str]) -> str | None:
    token = environ.get("AA_METRICS_TOKEN")
    if token is None or token == "":
        return None
    if len(token.strip()) < 16 or token != token.strip():
        raise ConfigError(
            "AA_METRICS_TOKEN must be at least 16 characters without surrounding spaces "
            "(use a random string, e.g. from `openssl rand -hex 24`)"
        )
    return token


def _webhook_url(environ: Mapping[str, str]) -> str | None:
    url = environ.get("AA_ROLLOUT_WEBHOOK") or None
    if url is not None and (not url.startswith(("http://", "https://")) or " " in url):
        raise ConfigError(
            f"AA_ROLLOUT_WEBHOOK={url!r} must be an http:// or https:// URL "
            "(it receives a JSON POST for every rollout step, pause, abort and rollback)"
        )
    return url


def _checked_secret(key: str, source: str) -> str:
    """`key` without surrounding whitespace; ConfigError when blank or too short."""
    stripped = key.strip()
    is_file = source != "AA_SECRET_KEY"
    if not stripped:
        raise ConfigError(
            f"{source} is empty or only whitespace: a secret key must be at least "
            f"{MIN_SECRET_LENGTH} random characters"
            + (" (delete the file to have a new one generated)" if is_file else "")
        )
    if len(stripped) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{source} is too short ({len(stripped)} characters; use at least "
            f"{MIN_SECRET_LENGTH} random characters)"
        )
    return stripped if is_file else key


def _switch(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() not in ("on", "off"):
        raise ConfigError(f"{name}={raw!r} is not valid (expected on or off)")
    return raw.lower() == "on"


def _lease(environ: Mapping[str, str]) -> float:
    # A run's heartbeat is written every quarter lease; below a second the beats would be
    # as frequent as the ticks and a slow database write could lapse a healthy run.
    lease_s = _float(environ, "AA_JOB_LEASE_S", 60.0)
    if lease_s < 1:
        raise ConfigError(f"AA_JOB_LEASE_S={lease_s} is too small (minimum 1 second)")
    return lease_s


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is too small (minimum {minimum})")
    return value


def _float(
    environ: Mapping[str, str], name: str, default: float, *, allow_zero: bool = False
) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < 0 or (value == 0 and not allow_zero) or value != value:
        expected = "zero or more" if allow_zero else "greater than zero"
        raise ConfigError(f"{name}={value} must be {expected}")
    return value
