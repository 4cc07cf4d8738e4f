"""The gateway's own tables: runtime flags, the version counter, the audit trail, request stats,
rollout progress and its webhook notices.

They live in their own MetaData, so any app's database can hold them beside its own schema;
`asgi_gateway.control.database.ensure_schema` creates (and extends) them at start-up.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Upper bounds (ms) of the latency buckets kept per minute; the last is +Inf.
BUCKETS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, float("inf"))
BUCKET_COLUMNS = tuple(f"le_{int(b)}" if b != float("inf") else "le_inf" for b in BUCKETS_MS)
COUNT_COLUMNS = (
    "requests",
    "s2xx",
    "s3xx",
    "s4xx",
    "s5xx",
    "errors",
    "disconnects",
    "latency_ms_sum",
    *BUCKET_COLUMNS,
)


class Timestamp(TypeDecorator[datetime]):
    """An aware UTC datetime; SQLite stores no offset, so it is written naive and read as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None:
            if value.utcoffset() is None:
                raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None:
            value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value


metadata = MetaData()

flags_table = Table(
    "rollout_flags",
    metadata,
    Column("endpoint", String(200), primary_key=True),
    Column("mode", String(16), nullable=False),
    Column("percent", Float, nullable=False, default=0.0),
    Column("sticky_by", String(120), nullable=False),
    Column("compare_ignore", JSON, nullable=False),
    Column("guard", JSON, nullable=False),
    # The whole flag (`Flag.to_dict()`), so new flag fields need no new columns; the columns
    # above stay for people reading the table. Nullable: rows of older versions lack it.
    Column("settings", JSON, nullable=True),
    # Fingerprint of the YAML entry last applied: a changed entry wins over runtime state.
    Column("declared_fingerprint", String(32), nullable=True),
    Column("updated_at", Timestamp, nullable=False),
    Column("updated_by", String(320), nullable=False),
)

# The PostgreSQL channel on which every move of the flag version is announced (payload: the
# new version); see asgi_gateway.control.listener.
FLAGS_CHANNEL = "gateway_flags"

state_table = Table(
    "rollout_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

audit_table = Table(
    "rollout_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(200), nullable=False, index=True),
    Column("actor", String(320), nullable=False),
    Column("action", String(32), nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("reason", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False, index=True),
)

stats_table = Table(
    "rollout_stats",
    metadata,
    Column("minute", Integer, primary_key=True),  # Unix time // 60
    Column("endpoint", String(200), primary_key=True),
    Column("backend", String(8), primary_key=True),
    *(Column(name, Integer, nullable=False, default=0) for name in COUNT_COLUMNS),
    # Per-endpoint reads (endpoint pages, the retirement hint) would scan every endpoint's
    # rows through the (minute, ...) key; this one also covers the week-long hint query.
    Index("ix_rollout_stats_endpoint", "endpoint", "backend", "minute", "requests", "errors"),
)

# Minutes in a quarter of an hour: the coarser rows below each sum this many minutes.
QUARTER_MINUTES = 15
# The same counts per quarter of an hour (`quarter` = Unix time // 900), written with the
# minute rows in the same transaction: a day's window reads 96 rows per endpoint and backend
# instead of 1,440, a week's 672 instead of 10,080, and the day's chart (15-minute steps) its
# points as they are (`control/stats.py` adds the minutes before the first whole quarter).
quarter_stats_table = Table(
    "rollout_quarter_stats",
    metadata,
    Column("quarter", Integer, primary_key=True),
    Column("endpoint", String(200), primary_key=True),
    Column("backend", String(8), primary_key=True),
    *(Column(name, Integer, nullable=False, default=0) for name in COUNT_COLUMNS),
    # Covers the week-long retirement hint, as ix_rollout_stats_endpoint does for minutes.
    Index(
        "ix_rollout_quarter_stats_endpoint", "endpoint", "backend", "quarter", "requests", "errors"
    ),
)

# The same counts per second, kept RECENT_KEEP_S: the guard and the rollout engine judge windows
# that start at a flip, which a per-minute row cannot tell apart.
recent_stats_table = Table(
    "rollout_recent_stats",
    metadata,
    Column("second", Integer, primary_key=True),  # Unix time, whole seconds
    Column("endpoint", String(200), primary_key=True),
    Column("backend", String(8), primary_key=True),
    *(Column(name, Integer, nullable=False, default=0) for name in COUNT_COLUMNS),
    Index("ix_rollout_recent_stats_endpoint", "endpoint", "second"),
)
RECENT_KEEP_S = 15 * 60

# Counts per minute of things that are not requests: shadow results (`shadow_match`, ...,
# `shadow_skipped`) and fallbacks (`fallback`), merged across workers like rollout_stats.
events_table = Table(
    "rollout_events",
    metadata,
    Column("minute", Integer, primary_key=True),
    Column("endpoint", String(200), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("count", Integer, nullable=False, default=0),
    Index("ix_rollout_events_endpoint", "endpoint", "minute"),
)

# The same counts per second, kept RECENT_KEEP_S (see recent_stats_table).
recent_events_table = Table(
    "rollout_recent_events",
    metadata,
    Column("second", Integer, primary_key=True),
    Column("endpoint", String(200), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("count", Integer, nullable=False, default=0),
    Index("ix_rollout_recent_events_endpoint", "endpoint", "second"),
)

# Shadow mismatches, at most MAX_MISMATCHES_PER_MINUTE per endpoint and minute.
mismatches_table = Table(
    "rollout_mismatches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(200), nullable=False),
    Column("minute", Integer, nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("method", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("query", Text, nullable=False),
    Column("status_legacy", Integer, nullable=False),
    Column("status_async", Integer, nullable=False),
    Column("diffs", JSON, nullable=False),
    Column("bodies", JSON, nullable=True),  # only with compare.keep_bodies
    Index("ix_rollout_mismatches_endpoint", "endpoint", "minute"),
)
MAX_MISMATCHES_PER_MINUTE = 20

# Paths that differ between two answers of legacy itself (noise), per endpoint.
noise_table = Table(
    "rollout_noise",
    metadata,
    Column("endpoint", String(200), primary_key=True),
    Column("path", String(500), primary_key=True),
    Column("first_seen", Timestamp, nullable=False),
    Column("seen", Integer, nullable=False, default=1),
)

# One row per endpoint: its progressive rollout (the last one started) and whether its shadow
# traffic allows promotion. `revision` makes every change a compare-and-set.
progress_table = Table(
    "rollout_progress",
    metadata,
    Column("endpoint", String(200), primary_key=True),
    Column("state", String(16), nullable=False),  # none|running|waiting|paused|done|aborted
    Column("steps", JSON, nullable=False),
    Column("interval_s", Float, nullable=False),
    Column("start_from", String(16), nullable=False),
    Column("shadow_for_s", Float, nullable=False),
    Column("step_index", Integer, nullable=True),  # None: the shadow phase (or no rollout)
    Column("step_started_at", Timestamp, nullable=True),
    Column("next_step_at", Timestamp, nullable=True),
    Column("reason", Text, nullable=False),
    Column("started_by", String(320), nullable=True),
    Column("started_at", Timestamp, nullable=True),
    Column("promotable", Boolean, nullable=False),
    Column("promotable_reason", Text, nullable=True),
    Column("last_analysis", JSON, nullable=True),
    Column("history", JSON, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

# The rollout's events for the webhook (an outbox): written in the transaction that made them,
# delivered by whichever worker claims them first, retried with backoff.
notices_table = Table(
    "rollout_notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(200), nullable=False),
    Column("event", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Timestamp, nullable=False),
    Column("claimed_until", Timestamp, nullable=True),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("last_error", Text, nullable=True),
    Index("ix_rollout_notices_due", "status", "next_attempt_at"),
)

__all__ = [
    "BUCKETS_MS",
    "BUCKET_COLUMNS",
    "COUNT_COLUMNS",
    "FLAGS_CHANNEL",
    "MAX_MISMATCHES_PER_MINUTE",
    "QUARTER_MINUTES",
    "RECENT_KEEP_S",
    "Timestamp",
    "audit_table",
    "events_table",
    "flags_table",
    "metadata",
    "mismatches_table",
    "noise_table",
    "notices_table",
    "progress_table",
    "quarter_stats_table",
    "recent_events_table",
    "recent_stats_table",
    "state_table",
    "stats_table",
]
