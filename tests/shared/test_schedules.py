"""Schedule parsing and fire times (shared/schedules.py): tables of cases, DST included."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.schedules import (
    Schedule,
    fires_between,
    last_fire,
    next_fire,
    parse_schedule,
    plan_due,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("text", "normalized", "cron", "interval_s"),
    [
        ("0 2 * * *", "0 2 * * *", "0 2 * * *", None),
        ("  */15   *  * * *  ", "*/15 * * * *", "*/15 * * * *", None),
        ("0 9 * * MON-FRI", "0 9 * * mon-fri", "0 9 * * mon-fri", None),
        ("daily@02:00", "daily@02:00", "0 2 * * *", None),
        ("Daily@7:05", "daily@7:05", "5 7 * * *", None),
        ("weekly@mon 02:00", "weekly@mon 02:00", "0 2 * * 1", None),
        ("weekly@SUN 23:59", "weekly@sun 23:59", "59 23 * * 0", None),
        ("every 15m", "every 15m", None, 900),
        ("every 1s", "every 1s", None, 1),
        ("every 2 h", "every 2h", None, 7200),
        ("every 168h", "every 168h", None, 7 * 24 * 3600),
    ],
)
def test_schedules_parse_to_cron_or_interval(
    text: str, normalized: str, cron: str | None, interval_s: int | None
) -> None:
    schedule = parse_schedule(text)
    assert (schedule.text, schedule.cron, schedule.interval_s) == (normalized, cron, interval_s)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("61 * * * *", "not a valid cron expression"),
        ("0 2 * *", "a cron expression has 5 fields .* got 4"),
        ("0 0 2 * * *", "got 6"),
        ("0 0 31 2 *", "not a valid cron expression"),
        ("daily@25:00", "25:00 is not a time of day"),
        ("daily@02:60", "is not a time of day"),
        ("daily@2", "is not a schedule"),
        ("weekly@xyz 02:00", "unknown day 'xyz'"),
        ("weekly@mon", "is not a schedule"),
        ("every 0s", "between 1s and 168h"),
        ("every 169h", "between 1s and 168h"),
        ("every 15", "is not a schedule"),
        ("every 15d", "is not a schedule"),
        ("hourly", "5 fields"),
    ],
)
def test_bad_schedules_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_schedule(text)


def test_every_hour_is_known_from_the_hour_field() -> None:
    assert parse_schedule("*/15 * * * *").every_hour
    assert parse_schedule("0 0-23 * * *").every_hour
    assert not parse_schedule("0 2 * * *").every_hour
    assert not parse_schedule("every 15m").every_hour


# (schedule, zone, after, the next fire times in local ISO form)
NEXT_FIRES = [
    # Spring forward in Berlin (2026-03-29 02:00 CET -> 03:00 CEST): 02:30 does not exist and
    # is read with the offset before the jump: 03:30 CEST, once.
    (
        "daily@02:30",
        BERLIN,
        "2026-03-27T12:00:00+01:00",
        [
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:30:00+02:00",
            "2026-03-30T02:30:00+02:00",
        ],
    ),
    # Fall back in Berlin (2026-10-25 03:00 CEST -> 02:00 CET): 02:30 happens twice; once.
    (
        "daily@02:30",
        BERLIN,
        "2026-10-24T12:00:00+02:00",
        [
            "2026-10-25T02:30:00+02:00",
            "2026-10-26T02:30:00+01:00",
        ],
    ),
    # ... also when asked from inside the repeated hour, after the first 02:30.
    ("daily@02:30", BERLIN, "2026-10-25T02:10:00+01:00", ["2026-10-26T02:30:00+01:00"]),
    # A clock-like cron fires in both passes of the repeated hour, and skips the missing one.
    (
        "*/30 * * * *",
        BERLIN,
        "2026-10-25T01:45:00+02:00",
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:30:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ],
    ),
    (
        "*/30 * * * *",
        BERLIN,
        "2026-03-29T01:15:00+01:00",
        [
            "2026-03-29T01:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T03:30:00+02:00",
        ],
    ),
    # New York falls back at 02:00 EDT -> 01:00 EST: 01:30 twice, run once.
    (
        "30 1 * * *",
        NEW_YORK,
        "2026-10-31T12:00:00-04:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        "weekly@mon 02:00",
        BERLIN,
        "2026-03-25T00:00:00+01:00",
        ["2026-03-30T02:00:00+02:00", "2026-04-06T02:00:00+02:00"],
    ),
    ("0 2 * * *", KOLKATA, "2026-01-01T02:00:00+05:30", ["2026-01-02T02:00:00+05:30"]),
    # Intervals count elapsed time from the Unix epoch, whatever the zone and its DST.
    (
        "every 15m",
        BERLIN,
        "2026-03-29T01:50:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00"],
    ),
    (
        "every 1h",
        BERLIN,
        "2026-10-25T01:30:00+02:00",
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ],
    ),
    ("every 1s", KOLKATA, "2026-01-01T00:00:00.5+00:00", ["2026-01-01T05:30:01+05:30"]),
]


@pytest.mark.parametrize(("text", "zone", "after", "expected"), NEXT_FIRES)
def test_next_fire_times(text: str, zone: ZoneInfo, after: str, expected: list[str]) -> None:
    schedule = parse_schedule(text)
    moment = utc(after)
    fires = []
    for _ in expected:
        moment = next_fire(schedule, zone, moment)
        assert moment.tzinfo is UTC
        fires.append(moment.astimezone(zone).isoformat())
    assert fires == expected


@pytest.mark.parametrize(("text", "zone", "after", "expected"), NEXT_FIRES)
def test_last_fire_walks_the_same_times_back(
    text: str, zone: ZoneInfo, after: str, expected: list[str]
) -> None:
    schedule = parse_schedule(text)
    fires = [utc(e) for e in expected]
    for earlier, later in itertools.pairwise(fires):
        assert last_fire(schedule, zone, later - timedelta(microseconds=1)) == earlier
        assert last_fire(schedule, zone, later) == later


def test_the_spring_forward_day_has_one_run_and_the_fall_back_day_one_too() -> None:
    schedule = parse_schedule("daily@02:30")
    for day in ("2026-03-29", "2026-10-25"):
        start = datetime.fromisoformat(f"{day}T00:00:00").replace(tzinfo=BERLIN)
        end = start + timedelta(days=1) - timedelta(microseconds=1)
        fires = fires_between(schedule, BERLIN, start, end, limit=10)
        assert len(fires) == 1, (day, fires)
    spring, fall = (
        fires_between(schedule, BERLIN, utc(f"{d}T00:00:00+00:00"), utc(f"{d}T23:00:00+00:00"), 5)
        for d in ("2026-03-29", "2026-10-25")
    )
    assert spring == [utc("2026-03-29T01:30:00+00:00")]  # 03:30 CEST
    assert fall == [utc("2026-10-25T00:30:00+00:00")]  # 02:30 CEST, the first 02:30


def test_fires_between_is_inclusive_and_bounded() -> None:
    schedule = parse_schedule("every 1s")
    start = utc("2026-01-01T00:00:00+00:00")
    assert len(fires_between(schedule, UTC, start, start + timedelta(seconds=4), 100)) == 5
    assert len(fires_between(schedule, UTC, start, start + timedelta(hours=1), 7)) == 7


# -- what a tick does ---------------------------------------------------------------------------

EVERY_MINUTE = parse_schedule("* * * * *")
NOW = utc("2026-05-04T10:00:30+00:00")


def plan(schedule: Schedule, cursor: str, misfire: str, grace_s: float = 60, limit: int = 100):
    return plan_due(
        schedule,
        UTC,
        utc(cursor),
        NOW,
        grace_s=grace_s,
        misfire=misfire,
        limit=limit,  # type: ignore[arg-type]
    )


def test_nothing_is_due_before_the_cursor() -> None:
    result = plan(EVERY_MINUTE, "2026-05-04T10:01:00+00:00", "skip")
    assert (result.runs, result.missed) == ((), None)
    assert result.next_run_at == utc("2026-05-04T10:01:00+00:00")


def test_on_time_runs_run_and_the_cursor_moves_past_now() -> None:
    result = plan(EVERY_MINUTE, "2026-05-04T09:59:00+00:00", "skip", grace_s=120)
    assert result.runs == (utc("2026-05-04T09:59:00+00:00"), utc("2026-05-04T10:00:00+00:00"))
    assert result.missed is None
    assert result.next_run_at == utc("2026-05-04T10:01:00+00:00")


def test_after_downtime_skip_records_the_latest_missed_time_and_runs_nothing() -> None:
    result = plan(parse_schedule("daily@02:00"), "2026-05-01T02:00:00+00:00", "skip")
    assert result.runs == ()
    assert result.missed == utc("2026-05-04T02:00:00+00:00")
    assert result.next_run_at == utc("2026-05-05T02:00:00+00:00")


def test_after_downtime_run_once_catches_up_the_latest_missed_time_once() -> None:
    result = plan(parse_schedule("daily@02:00"), "2026-05-01T02:00:00+00:00", "run_once")
    assert result.runs == (utc("2026-05-04T02:00:00+00:00"),)
    assert result.missed is None
    assert result.next_run_at == utc("2026-05-05T02:00:00+00:00")


def test_a_missed_time_is_not_caught_up_when_an_on_time_run_covers_it() -> None:
    result = plan(EVERY_MINUTE, "2026-05-04T09:00:00+00:00", "run_once", grace_s=45)
    assert result.runs == (utc("2026-05-04T10:00:00+00:00"),)
    assert result.missed == utc("2026-05-04T09:59:00+00:00")


def test_a_long_backlog_is_handled_limit_times_per_tick() -> None:
    result = plan(parse_schedule("every 1s"), "2026-05-04T10:00:00+00:00", "skip", limit=10)
    assert len(result.runs) == 10
    assert result.next_run_at == utc("2026-05-04T10:00:10+00:00")
