"""Overlapping appointments and the rules that decide between them; pure functions.

Two appointments overlap when one starts before the other ends. An all-day appointment marks
a day (a holiday, working elsewhere) and never conflicts with a timed one; all-day ones may
conflict with each other. Within each overlap, an appointment **yields** to one it overlaps
that ranks higher, compared in this order:

1. availability (`show_as`): free < workingElsewhere < tentative < busy = oof
   (so a free one yields to a busy one, a tentative one to an accepted one);
2. importance: low < normal < high.

A yielding appointment is not archived. Appointments still overlapping after that rank
alike: the conflict is **unresolved** and becomes an action item, with a recommendation:
keep all when no two overlap by more than `SHORT_OVERLAP` (back-to-back meetings running
over), otherwise keep the one that starts first (the longer one on a tie).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from shared.providers._base import ProviderEvent

__all__ = [
    "AVAILABILITY",
    "IMPORTANCE_RANK",
    "SHORT_OVERLAP",
    "Conflict",
    "OverlapOutcome",
    "Recommendation",
    "Yielded",
    "find_overlaps",
    "overlapping_pairs",
    "resolve_overlaps",
]

AVAILABILITY = {"free": 0, "workingElsewhere": 1, "tentative": 2, "busy": 3, "oof": 3}
IMPORTANCE_RANK = {"low": 0, "normal": 1, "high": 2}
SHORT_OVERLAP = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Yielded:
    """`loser` is not archived: it overlaps `winner`, which ranks higher by `rule`."""

    loser: str
    winner: str
    rule: Literal["availability", "importance"]


@dataclass(frozen=True, slots=True)
class Recommendation:
    action: Literal["keep", "keep_all"]
    keep: tuple[str, ...]
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"action": self.action, "keep": list(self.keep), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Conflict:
    """Appointments that overlap, rank alike, and need a person's decision."""

    events: tuple[ProviderEvent, ...]
    recommendation: Recommendation

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(sorted(e.event_id for e in self.events))


@dataclass(frozen=True, slots=True)
class OverlapOutcome:
    """What the rules made of a set of appointments: kept, yielded, and unresolved."""

    kept: tuple[ProviderEvent, ...]
    yielded: tuple[Yielded, ...]
    conflicts: tuple[Conflict, ...]


def overlapping_pairs(events: Sequence[ProviderEvent]) -> list[tuple[ProviderEvent, ProviderEvent]]:
    """Pairs (earlier, later) of overlapping appointments (all-day only with all-day)."""
    ordered = sorted(events, key=lambda e: (e.start, e.end, e.event_id))
    pairs: list[tuple[ProviderEvent, ProviderEvent]] = []
    active: list[ProviderEvent] = []
    for event in ordered:
        active = [a for a in active if a.end > event.start]
        pairs.extend((a, event) for a in active if a.is_all_day == event.is_all_day)
        active.append(event)
    return pairs


def find_overlaps(events: Sequence[ProviderEvent]) -> list[tuple[str, str]]:
    """Pairs (earlier, later) of the ids of overlapping appointments."""
    return [(a.event_id, b.event_id) for a, b in overlapping_pairs(events)]


def _rank(event: ProviderEvent) -> tuple[int, int]:
    return AVAILABILITY.get(event.show_as, 3), IMPORTANCE_RANK.get(event.importance, 1)


def resolve_overlaps(events: Sequence[ProviderEvent]) -> OverlapOutcome:
    """Apply the rules: who yields, who is kept, which overlaps stay unresolved (by start)."""
    pairs = overlapping_pairs(events)
    yielded: dict[str, Yielded] = {}
    for a, b in pairs:
        rank_a, rank_b = _rank(a), _rank(b)
        if rank_a == rank_b:
            continue
        loser, winner = (a, b) if rank_a < rank_b else (b, a)
        rule: Literal["availability", "importance"] = (
            "availability" if rank_a[0] != rank_b[0] else "importance"
        )
        current = yielded.get(loser.event_id)
        if current is None:
            yielded[loser.event_id] = Yielded(loser.event_id, winner.event_id, rule)
    survivors = [e for e in events if e.event_id not in yielded]
    groups = _components(
        [(a, b) for a, b in pairs if a.event_id not in yielded and b.event_id not in yielded]
    )
    in_conflict = {e.event_id for group in groups for e in group}
    conflicts = tuple(Conflict(group, _recommend(group)) for group in groups)
    kept = tuple(e for e in survivors if e.event_id not in in_conflict)
    return OverlapOutcome(kept, tuple(yielded.values()), conflicts)


def _components(
    pairs: Sequence[tuple[ProviderEvent, ProviderEvent]],
) -> list[tuple[ProviderEvent, ...]]:
    """Groups of appointments connected by overlaps, each by start, groups by first start."""
    parent: dict[str, str] = {}
    by_id: dict[str, ProviderEvent] = {}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for a, b in pairs:
        for event in (a, b):
            by_id[event.event_id] = event
            parent.setdefault(event.event_id, event.event_id)
        parent[root(a.event_id)] = root(b.event_id)
    groups: dict[str, list[ProviderEvent]] = {}
    for key, event in by_id.items():
        groups.setdefault(root(key), []).append(event)
    ordered = [
        tuple(sorted(group, key=lambda e: (e.start, e.end, e.event_id)))
        for group in groups.values()
    ]
    return sorted(ordered, key=lambda g: (g[0].start, g[0].event_id))


def _recommend(group: Sequence[ProviderEvent]) -> Recommendation:
    longest = max(
        (min(a.end, b.end) - max(a.start, b.start) for a, b in overlapping_pairs(group)),
        default=timedelta(0),
    )
    if longest <= SHORT_OVERLAP:
        minutes = int(longest.total_seconds() // 60)
        return Recommendation(
            "keep_all",
            tuple(e.event_id for e in group),
            f"they overlap by {minutes} minutes at most: both likely took place",
        )
    first = min(group, key=lambda e: (e.start, -(e.end - e.start).total_seconds(), e.event_id))
    return Recommendation(
        "keep",
        (first.event_id,),
        f"equal availability and importance; {first.subject!r} starts first",
    )
