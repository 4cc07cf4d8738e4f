"""The guard's analysis (pure): verdicts, reasons, p95 interpolation, durations, round trips."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from asgi_gateway.control.analysis import (
    LATENCY_FLOOR_MS,
    Analysis,
    Figures,
    Side,
    analyse,
    format_duration,
)
from asgi_gateway.flag_policy import Guard
from asgi_gateway.tables import BUCKETS_MS

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GUARD = Guard()  # 2% errors, 50 requests, 60s, 2.0x latency, 1% mismatches


def side(requests: int, errors: int = 0, at_ms: float = 5) -> Side:
    """`requests` all in the latency bucket of `at_ms`."""
    buckets = [0] * len(BUCKETS_MS)
    buckets[next(i for i, bound in enumerate(BUCKETS_MS) if at_ms <= bound)] = requests
    return Side(requests, errors, tuple(buckets))


def judge(figures: Figures, mode: str = "canary", guard: Guard = GUARD) -> Analysis:
    return analyse(mode, figures, guard, window_s=60, at=AT)


@pytest.mark.parametrize(
    ("figures", "verdict", "reason"),
    [
        (
            Figures(twin=side(312, 312)),
            "breach",
            "async error rate 100.0% (312/312) > 2.0% over 60s",
        ),
        (Figures(twin=side(100, 3)), "breach", "async error rate 3.0% (3/100) > 2.0% over 60s"),
        (Figures(twin=side(100, 2)), "healthy", "async error rate 2.0% (2/100) <= 2.0%"),
        (Figures(twin=side(49, 49)), "insufficient", "too little traffic: 49 async requests of 50"),
        (Figures(), "insufficient", "too little traffic: 0 async requests of 50 needed over 60s"),
        (
            Figures(legacy=side(100, at_ms=40), twin=side(100, at_ms=400)),
            "breach",
            "async p95 latency 488 ms is 10.0x legacy's 49 ms > 2x over 60s",
        ),
        (
            Figures(legacy=side(100, at_ms=40), twin=side(100, at_ms=80)),
            "healthy",
            "p95 2.0x legacy's <= 2x",
        ),
        # Under the floor, a slower twin is not judged: the buckets are too coarse there.
        (
            Figures(legacy=side(100, at_ms=3), twin=side(100, at_ms=20)),
            "healthy",
            f"(under {LATENCY_FLOOR_MS:g} ms, not judged)",
        ),
        # Legacy without traffic (mode async): latency cannot be compared; errors still are.
        (
            Figures(twin=side(100, at_ms=2000)),
            "healthy",
            "latency not judged (legacy: 0 requests of 50 needed)",
        ),
        (
            Figures(legacy=side(10, at_ms=5), twin=side(100, at_ms=2000)),
            "healthy",
            "latency not judged (legacy: 10 requests of 50 needed)",
        ),
    ],
)
def test_canary_verdicts_and_their_reasons(figures: Figures, verdict: str, reason: str) -> None:
    analysis = judge(figures)
    assert analysis.verdict == verdict
    assert reason in analysis.reason


def test_errors_are_judged_before_latency() -> None:
    analysis = judge(Figures(legacy=side(100, at_ms=40), twin=side(100, 100, at_ms=400)))
    assert analysis.reason.startswith("async error rate 100.0%")


def test_async_mode_is_judged_like_canary() -> None:
    assert judge(Figures(twin=side(60, 60)), mode="async").is_breach


@pytest.mark.parametrize(
    ("compared", "mismatched", "verdict", "reason"),
    [
        (200, 60, "breach", "mismatch rate 30.0% (60/200) > 1.0% over 60s"),
        (200, 2, "healthy", "mismatch rate 1.0% (2/200) <= 1.0% over 60s"),
        (49, 49, "insufficient", "too little shadow traffic: 49 compared of 50 needed over 60s"),
    ],
)
def test_shadow_verdicts(compared: int, mismatched: int, verdict: str, reason: str) -> None:
    analysis = judge(Figures(compared=compared, mismatched=mismatched), mode="shadow")
    assert (analysis.verdict, analysis.reason) == (verdict, reason)


def test_the_guards_thresholds_are_its_own() -> None:
    strict = Guard(max_error_rate=0.0, min_requests=5, max_mismatch_rate=0.0)
    assert judge(Figures(twin=side(5, 1)), guard=strict).is_breach
    assert judge(Figures(compared=5, mismatched=1), mode="shadow", guard=strict).is_breach
    lenient = Guard(max_latency_ratio=20.0)
    slow = Figures(legacy=side(100, at_ms=40), twin=side(100, at_ms=400))
    assert judge(slow, guard=lenient).verdict == "healthy"


def test_p95_is_interpolated_inside_its_bucket() -> None:
    # 100 requests: 90 under 5 ms, 10 in (50, 100]: the 95th is halfway into that bucket.
    buckets = [0] * len(BUCKETS_MS)
    buckets[0], buckets[BUCKETS_MS.index(100)] = 90, 10
    assert Side(100, 0, tuple(buckets)).quantile_ms(0.95) == pytest.approx(75.0)
    assert Side(100, 0, tuple(buckets)).quantile_ms(0.5) == pytest.approx(50 / 18)
    assert Side().quantile_ms(0.95) is None


def test_p95_in_the_open_bucket_is_the_last_bound() -> None:
    buckets = [0] * len(BUCKETS_MS)
    buckets[-1] = 10
    assert Side(10, 0, tuple(buckets)).quantile_ms(0.95) == BUCKETS_MS[-2]


def test_an_analysis_survives_its_json_form() -> None:
    analysis = judge(Figures(legacy=side(100, at_ms=40), twin=side(100, 3, at_ms=80)))
    data = analysis.to_dict()
    assert set(data) >= {
        "at",
        "window_s",
        "async_requests",
        "error_rate",
        "latency_ratio",
        "mismatch_rate",
        "verdict",
        "reason",
    }
    again = Analysis.from_dict(data)
    assert (again.verdict, again.reason, again.at, again.async_requests) == (
        analysis.verdict,
        analysis.reason,
        AT,
        100,
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(60, "60s"), (59.6, "60s"), (600, "10m"), (90, "90s"), (7200, "2h"), (2.5, "2.5s"), (0, "0s")],
)
def test_durations_read_as_reasons_name_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
