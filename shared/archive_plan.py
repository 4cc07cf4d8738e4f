"""What an archive run archives: the rules applied to the source's events, as a plan; pure.

Private events and excluded categories are skipped (a timesheet run keeps business time
only: `shared.timesheet_rules`). Unless the configuration allows overlaps, the overlap rules
(`shared.overlaps`) decide; a conflict they leave open is decided by a person (an action
item): events a resolution declined are dropped, events it kept are archived, and a
conflict still undecided holds its events back (neither archived nor, in replace mode,
removed) until someone resolves it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shared.overlaps import Conflict, Yielded, find_overlaps, resolve_overlaps
from shared.providers._base import ProviderEvent
from shared.timesheet_rules import timesheet_category

__all__ = ["RunPlan", "conflict_key", "plan_run"]


def conflict_key(event_ids: Sequence[str]) -> str:
    """One stable key per set of conflicting events (their sorted ids, hashed)."""
    return hashlib.sha256("\n".join(sorted(event_ids)).encode()).hexdigest()


@dataclass
class RunPlan:
    """The events to archive and why the others are not."""

    selected: list[ProviderEvent] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    overlaps: list[tuple[str, str]] = field(default_factory=list)
    yielded: list[Yielded] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)
    held: list[ProviderEvent] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def overlap_count(self) -> int:
        return len({event_id for pair in self.overlaps for event_id in pair})

    @property
    def held_ids(self) -> set[str]:
        return {e.event_id for e in self.held}


def plan_run(
    events: Sequence[ProviderEvent],
    *,
    excluded_categories: Sequence[str],
    allow_overlaps: bool,
    purpose: str,
    timesheet_categories: Sequence[str],
    decisions: Mapping[str, bool],
) -> RunPlan:
    """Apply the configuration's rules and the decisions made so far (event id -> kept)."""
    plan = RunPlan()
    excluded = {c.casefold() for c in excluded_categories}
    candidates = []
    for event in events:
        is_excluded = event.is_private or any(c.casefold() in excluded for c in event.categories)
        if purpose == "timesheet" and not is_excluded:
            is_excluded = (
                timesheet_category(event.categories, event.sensitivity, timesheet_categories)
                is None
            )
        if is_excluded:
            plan.skipped.append(event.event_id)
        else:
            candidates.append(event)
    plan.overlaps = find_overlaps(candidates)
    if allow_overlaps:
        plan.selected = candidates
        return plan
    outcome = resolve_overlaps(candidates)
    plan.selected = list(outcome.kept)
    plan.yielded = list(outcome.yielded)
    for conflict in outcome.conflicts:
        remaining = []
        for event in conflict.events:
            decided = decisions.get(event.event_id)
            if decided is False:
                plan.declined.append(event.event_id)
            else:
                remaining.append(event)
        if all(decisions.get(e.event_id) is True for e in remaining):
            plan.selected.extend(remaining)
            continue
        # Someone decided part of it and a new event joined: what is left is a conflict of
        # its own, if its events still overlap.
        again = resolve_overlaps(remaining)
        plan.selected.extend(again.kept)
        plan.yielded.extend(again.yielded)
        for left in again.conflicts:
            plan.held.extend(left.events)
            plan.conflicts.append(left)
    plan.selected.sort(key=lambda e: (e.start, e.end, e.event_id))
    return plan
