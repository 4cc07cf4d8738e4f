"""Dry runs: service calls inside one database transaction that is always rolled back, with
remote calendar writes recorded instead of made.

Used by the gateway's shadow of write endpoints: the twin runs inside `Database.dry_run()`,
which is entered before the real (legacy) request runs. Entering fixes the transaction's view
of the data, so the twin sees the data as the real request saw it:

* PostgreSQL: a REPEATABLE READ transaction whose snapshot is taken on entry; a write that
  collides with one the real request made since fails (a serialization or unique error) and
  the dry run reports an error, never a second write.
* SQLite: a WAL read snapshot taken on entry (BEGIN, then a read); the first write upgrades it
  to the database's one write lock, or fails at once when the real request wrote first. A
  short busy timeout keeps the dry run from queueing; while it holds the lock, a real write
  waits at most for the rest of the dry run (bounded by the shadow timeout).

Either way, everything is rolled back when the block ends, and a dry run whose write
collided with the real one says so (`conflicted`): its answer is not compared.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["DryRun", "current_dry_run"]


@dataclass
class DryRun:
    """One dry run: its connection (in the transaction to roll back) and the remote writes."""

    connection: AsyncConnection
    remote_writes: list[dict[str, Any]] = field(default_factory=list)
    # Set when a write collided with the real request's (the dry run could not do the same).
    conflicted: bool = False

    def record_remote_write(self, provider: str, action: str, target: str, body: Any) -> str:
        """Note a remote write that a dry run does not make; returns a stand-in id for it."""
        self.remote_writes.append(
            {"provider": provider, "action": action, "target": target, "body": body}
        )
        return f"dry-run-{len(self.remote_writes)}"


_current: ContextVar[DryRun | None] = ContextVar("admin_assistant_dry_run", default=None)


def current_dry_run() -> DryRun | None:
    """The dry run this code runs inside, if any."""
    return _current.get()


def enter(dry_run: DryRun) -> Any:
    """Make `dry_run` current for this context; returns the token for `leave`."""
    return _current.set(dry_run)


def leave(token: Any) -> None:
    """Undo `enter`."""
    _current.reset(token)
