"""Inputs of the audit log endpoint: filters by target, actor and action, and the page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.pagination import PageRequest
from shared.validation import Problems, parse_page

__all__ = ["AuditQuery", "parse_audit_query"]

_LIMITS = {"target": 300, "actor": 320, "action": 100}


@dataclass(frozen=True, slots=True)
class AuditQuery:
    target: str | None
    actor: str | None
    action: str | None
    page: PageRequest


def parse_audit_query(params: Mapping[str, str]) -> AuditQuery:
    """Query of audit.list: `target` (`calendar:5`), `actor`, `action` (or a prefix `job.`)."""
    problems = Problems()
    found: dict[str, str | None] = {}
    for name, limit in _LIMITS.items():
        value = (params.get(name) or "").strip() or None
        if value is not None and (len(value) > limit or "\x00" in value):
            problems.add(name, f"must be at most {limit} characters, without NUL")
            value = None
        found[name] = value
    page = parse_page(params, problems)
    problems.raise_if_any("query")
    return AuditQuery(found["target"], found["actor"], found["action"], page)
