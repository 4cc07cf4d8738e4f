"""The guard's analysis of one endpoint's traffic over a window: figures in, verdict out (pure).

The guard (every tick, over `guard.window`) and the rollout engine (over each step's interval)
both judge an endpoint with `analyse`: in canary or async by the twin's error rate and its p95
latency against legacy's, in shadow by the mismatch rate. Nothing decides on fewer than
`guard.min_requests` requests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from asgi_gateway.flag_policy import Guard
from asgi_gateway.tables import BUCKETS_MS

Verdict = Literal["healthy", "breach", "insufficient"]
# Latency is judged only when the twin's p95 is at least this: below it the p95s come from the
# finest buckets, where a ratio says more about the buckets than about the twin, and no user
# can tell the difference anyway.
LATENCY_FLOOR_MS = 50.0
_NO_BUCKETS = (0,) * len(BUCKETS_MS)


@dataclass(frozen=True, slots=True)
class Side:
    """One backend's requests over a window: how many, how many failed, latency buckets."""

    requests: int = 0
    errors: int = 0
    buckets: tuple[int, ...] = _NO_BUCKETS

    def quantile_ms(self, q: float) -> float | None:
        """The q-quantile of latency, interpolated inside its bucket (None without traffic).

        Like Prometheus' histogram_quantile: linear within the bucket holding the rank; a rank
        in the open last bucket is reported as the last finite bound.
        """
        total = sum(self.buckets)
        if not total:
            return None
        rank = q * total
        seen = 0
        lower = 0.0
        for bound, count in zip(BUCKETS_MS, self.buckets, strict=True):
            if count and seen + count >= rank:
                if math.isinf(bound):
                    return lower
                return lower + (bound - lower) * max(rank - seen, 0.0) / count
            seen += count
            lower = bound
        return lower


@dataclass(frozen=True, slots=True)
class Figures:
    """What was measured for one endpoint over a window, all workers and machines merged."""

    legacy: Side = field(default_factory=Side)
    twin: Side = field(default_factory=Side)  # the async backend
    compared: int = 0  # shadowed requests whose answers were compared
    mismatched: int = 0
    fallbacks: int = 0  # already counted in twin.errors as well


@dataclass(frozen=True, slots=True)
class Analysis:
    """One verdict on one endpoint over one window, with the figures it was drawn from."""

    at: datetime
    window_s: float
    mode: str
    verdict: Verdict
    reason: str
    async_requests: int = 0
    async_errors: int = 0
    error_rate: float | None = None
    legacy_requests: int = 0
    async_p95_ms: float | None = None
    legacy_p95_ms: float | None = None
    latency_ratio: float | None = None
    compared: int = 0
    mismatched: int = 0
    mismatch_rate: float | None = None
    fallbacks: int = 0

    @property
    def is_breach(self) -> bool:
        return self.verdict == "breach"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (admin API `last_analysis`, stored rows, webhook `figures`)."""
        return {
            "at": self.at.isoformat(timespec="seconds"),
            "window_s": round(self.window_s, 1),
            "mode": self.mode,
            "async_requests": self.async_requests,
            "async_errors": self.async_errors,
            "error_rate": _round(self.error_rate),
            "legacy_requests": self.legacy_requests,
            "async_p95_ms": _round(self.async_p95_ms, 1),
            "legacy_p95_ms": _round(self.legacy_p95_ms, 1),
            "latency_ratio": _round(self.latency_ratio, 2),
            "compared": self.compared,
            "mismatched": self.mismatched,
            "mismatch_rate": _round(self.mismatch_rate),
            "fallbacks": self.fallbacks,
            "verdict": self.verdict,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Analysis:
        """The Analysis of a `to_dict()` form."""
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["at"] = datetime.fromisoformat(data["at"])
        return cls(**values)


def analyse(
    mode: str, figures: Figures, guard: Guard, *, window_s: float, at: datetime | None = None
) -> Analysis:
    """Judge `figures` of an endpoint in `mode` over `window_s` seconds against `guard`.

    canary/async: a breach when the twin's error rate (5xx, exceptions, timeouts, fallbacks)
    is above `max_error_rate`, or its p95 is more than `max_latency_ratio` times legacy's
    (judged only when both sides have `min_requests` and the twin's p95 is at least
    LATENCY_FLOOR_MS). shadow: a breach when the mismatch rate is above `max_mismatch_rate`.
    Fewer than `min_requests` requests (compared requests in shadow): `insufficient`.
    """
    at = at or datetime.now(UTC)
    over = f"over {format_duration(window_s)}"
    twin, legacy, needed = figures.twin, figures.legacy, guard.min_requests
    error_rate = twin.errors / twin.requests if twin.requests else None
    async_p95, legacy_p95 = twin.quantile_ms(0.95), legacy.quantile_ms(0.95)
    both_sides = twin.requests >= needed and legacy.requests >= needed
    ratio = (
        async_p95 / legacy_p95
        if both_sides and async_p95 is not None and legacy_p95  # legacy_p95 > 0
        else None
    )
    mismatch_rate = figures.mismatched / figures.compared if figures.compared else None
    common = {
        "at": at,
        "window_s": window_s,
        "mode": mode,
        "async_requests": twin.requests,
        "async_errors": twin.errors,
        "error_rate": error_rate,
        "legacy_requests": legacy.requests,
        "async_p95_ms": async_p95,
        "legacy_p95_ms": legacy_p95,
        "latency_ratio": ratio,
        "compared": figures.compared,
        "mismatched": figures.mismatched,
        "mismatch_rate": mismatch_rate,
        "fallbacks": figures.fallbacks,
    }

    def verdict(kind: Verdict, reason: str) -> Analysis:
        return Analysis(verdict=kind, reason=reason, **common)  # type: ignore[arg-type]

    if mode == "shadow":
        if figures.compared < needed or mismatch_rate is None:
            return verdict(
                "insufficient",
                f"too little shadow traffic: {figures.compared} compared of {needed} needed {over}",
            )
        counts = f"({figures.mismatched}/{figures.compared})"
        mismatches = f"mismatch rate {_pct(mismatch_rate)} {counts}"
        if mismatch_rate > guard.max_mismatch_rate:
            return verdict("breach", f"{mismatches} > {_pct(guard.max_mismatch_rate)} {over}")
        return verdict("healthy", f"{mismatches} <= {_pct(guard.max_mismatch_rate)} {over}")
    if twin.requests < needed or error_rate is None:
        return verdict(
            "insufficient",
            f"too little traffic: {twin.requests} async requests of {needed} needed {over}",
        )
    errors = f"async error rate {_pct(error_rate)} ({twin.errors}/{twin.requests})"
    if error_rate > guard.max_error_rate:
        return verdict("breach", f"{errors} > {_pct(guard.max_error_rate)} {over}")
    if (
        ratio is not None
        and async_p95 is not None
        and legacy_p95 is not None
        and async_p95 >= LATENCY_FLOOR_MS
        and ratio > guard.max_latency_ratio
    ):
        return verdict(
            "breach",
            f"async p95 latency {async_p95:.0f} ms is {ratio:.1f}x legacy's {legacy_p95:.0f} ms "
            f"> {guard.max_latency_ratio:g}x {over}",
        )
    if ratio is not None:
        latency = f"p95 {ratio:.1f}x legacy's <= {guard.max_latency_ratio:g}x"
        if async_p95 is not None and async_p95 < LATENCY_FLOOR_MS and ratio > 1:
            latency = f"p95 {async_p95:.0f} ms (under {LATENCY_FLOOR_MS:g} ms, not judged)"
    else:
        latency = f"latency not judged (legacy: {legacy.requests} requests of {needed} needed)"
    return verdict("healthy", f"{errors} <= {_pct(guard.max_error_rate)}; {latency} {over}")


def format_duration(seconds: float) -> str:
    """`60s`, `10m`, `2h`, `1.5s`: a window as the reasons name it."""
    whole = round(seconds)
    if whole >= 3600 and whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole >= 120 and whole % 60 == 0:
        return f"{whole // 60}m"
    if seconds < 10 and abs(seconds - whole) >= 0.05:
        return f"{seconds:.1f}s"
    return f"{whole}s"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
