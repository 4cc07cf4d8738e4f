"""The overlap rules, as a table of cases: who yields to whom, and what stays unresolved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.archive_plan import plan_run
from shared.overlaps import find_overlaps, resolve_overlaps
from shared.providers import ProviderEvent

DAY = datetime(2026, 5, 4, tzinfo=UTC)


def event(
    event_id: str,
    start: str,
    end: str,
    show_as: str = "busy",
    importance: str = "normal",
    **extra: object,
) -> ProviderEvent:
    def at(clock: str) -> datetime:
        hours, minutes = map(int, clock.split(":"))
        return DAY + timedelta(hours=hours, minutes=minutes)

    return ProviderEvent(
        event_id,
        event_id,
        at(start),
        at(end),
        show_as=show_as,
        importance=importance,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("events", "kept", "yielded", "conflicts"),
    [
        # no overlap: everything kept
        ([event("a", "09:00", "10:00"), event("b", "10:00", "11:00")], ["a", "b"], [], []),
        # a free one yields to a busy one
        (
            [event("a", "09:00", "10:00", "free"), event("b", "09:30", "10:30")],
            ["b"],
            [("a", "b", "availability")],
            [],
        ),
        # tentative yields to accepted (busy), whatever the order
        (
            [event("a", "09:00", "10:00"), event("b", "09:30", "10:30", "tentative")],
            ["a"],
            [("b", "a", "availability")],
            [],
        ),
        # working elsewhere yields to tentative; out of office ranks with busy
        (
            [
                event("a", "09:00", "12:00", "workingElsewhere"),
                event("b", "10:00", "11:00", "tentative"),
            ],
            ["b"],
            [("a", "b", "availability")],
            [],
        ),
        ([event("a", "09:00", "10:00", "oof"), event("b", "09:30", "10:30")], [], [], [["a", "b"]]),
        # lower importance yields to higher
        (
            [event("a", "09:00", "10:00", importance="low"), event("b", "09:30", "10:30")],
            ["b"],
            [("a", "b", "importance")],
            [],
        ),
        # availability first, then importance
        (
            [
                event("a", "09:00", "10:00", "tentative", "high"),
                event("b", "09:30", "10:30", "busy", "low"),
            ],
            ["b"],
            [("a", "b", "availability")],
            [],
        ),
        # equal rank: unresolved
        ([event("a", "09:00", "10:00"), event("b", "09:30", "10:30")], [], [], [["a", "b"]]),
        # a chain: a yields to b; b and c conflict
        (
            [
                event("a", "09:00", "09:45", "free"),
                event("b", "09:30", "10:30"),
                event("c", "10:00", "11:00"),
            ],
            [],
            [("a", "b", "availability")],
            [["b", "c"]],
        ),
        # an all-day appointment never conflicts with a timed one
        (
            [event("a", "00:00", "24:00", is_all_day=True), event("b", "09:30", "10:30")],
            ["a", "b"],
            [],
            [],
        ),
        # two separate conflicts
        (
            [
                event("a", "09:00", "10:00"),
                event("b", "09:30", "10:30"),
                event("c", "14:00", "15:00"),
                event("d", "14:30", "15:30"),
            ],
            [],
            [],
            [["a", "b"], ["c", "d"]],
        ),
    ],
)
def test_the_rules(
    events: list[ProviderEvent],
    kept: list[str],
    yielded: list[tuple[str, str, str]],
    conflicts: list[list[str]],
) -> None:
    outcome = resolve_overlaps(events)
    assert sorted(e.event_id for e in outcome.kept) == kept
    assert [(y.loser, y.winner, y.rule) for y in outcome.yielded] == yielded
    assert [list(c.event_ids) for c in outcome.conflicts] == conflicts


def test_a_short_overlap_recommends_keeping_all_a_long_one_the_first() -> None:
    short = resolve_overlaps([event("a", "09:00", "10:10"), event("b", "10:00", "11:00")])
    assert short.conflicts[0].recommendation.action == "keep_all"
    long = resolve_overlaps([event("b", "09:30", "10:30"), event("a", "09:00", "10:00")])
    assert long.conflicts[0].recommendation.to_json() == {
        "action": "keep",
        "keep": ["a"],
        "reason": "equal availability and importance; 'a' starts first",
    }


def test_find_overlaps_pairs_ids_by_start() -> None:
    events = [
        event("b", "09:30", "10:30"),
        event("a", "09:00", "10:00"),
        event("c", "12:00", "13:00"),
    ]
    assert find_overlaps(events) == [("a", "b")]


def _plan(
    events: list[ProviderEvent], decisions: dict[str, bool]
) -> tuple[list[str], list[str], list[str]]:
    plan = plan_run(
        events,
        excluded_categories=[],
        allow_overlaps=False,
        purpose="general",
        timesheet_categories=[],
        decisions=decisions,
    )
    return [e.event_id for e in plan.selected], sorted(plan.held_ids), plan.declined


def test_decisions_settle_a_conflict_and_a_newcomer_reopens_it() -> None:
    a, b = event("a", "09:00", "10:00"), event("b", "09:30", "10:30")
    assert _plan([a, b], {}) == ([], ["a", "b"], [])
    assert _plan([a, b], {"a": True, "b": False}) == (["a"], [], ["b"])
    assert _plan([a, b], {"a": True, "b": True}) == (["a", "b"], [], [])
    c = event("c", "09:45", "10:15")
    assert _plan([a, b, c], {"a": True, "b": False}) == ([], ["a", "c"], ["b"])


def test_a_timesheet_plan_keeps_business_time_only() -> None:
    events = [
        event("billable", "09:00", "10:00", categories=("Billable",)),
        event("none", "10:00", "11:00"),
        event("personal", "11:00", "12:00", categories=("Billable",), sensitivity="personal"),
        event("private", "12:00", "13:00", categories=("Travel",), is_private=True),
    ]
    plan = plan_run(
        events,
        excluded_categories=[],
        allow_overlaps=True,
        purpose="timesheet",
        timesheet_categories=["Billable", "Travel"],
        decisions={},
    )
    assert [e.event_id for e in plan.selected] == ["billable"]
    assert plan.skipped == ["none", "personal", "private"]
