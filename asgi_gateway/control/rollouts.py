"""Rollout actions: start, pause, resume, abort, and each step of the engine.

Each action is one transaction holding both the flag flip (through `FlagStore.flip_in`, audited)
and the progress row's compare-and-set, so the flag and its rollout never disagree and two
processes never both take one step or roll one flag back twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from asgi_gateway.control.analysis import Analysis
from asgi_gateway.control.progress import (
    ROLLOUT,
    Flipped,
    add_notice,
    read_all,
    read_progress,
    write_progress,
)
from asgi_gateway.control.rollout import (
    Decision,
    Progress,
    Target,
    history_entry,
    start_index,
    target_of,
    with_entry,
)
from asgi_gateway.control.store import Change, FlagStore, etag
from asgi_gateway.errors import FlagConflict, RolloutConflict
from asgi_gateway.flag_file import FlagFile
from asgi_gateway.flags import EndpointRules, Flag, describe


class Rollouts:
    """The rollout actions of one gateway (or CLI): a flag store, the declared file, the rules.

    `on_change` runs after every committed change (the gateway refreshes its snapshot, so this
    worker serves the new flag at once, and wakes its webhook sender).
    """

    def __init__(
        self,
        store: FlagStore,
        declared: FlagFile | None,
        rules: EndpointRules,
        *,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.declared = declared
        self.rules = rules
        self.on_change = on_change

    # -- reading --------------------------------------------------------------------------------

    async def read(self, endpoint: str) -> Progress | None:
        """The endpoint's rollout row (None: never started nor judged)."""
        async with self.store.reading("the rollout") as conn:
            return await read_progress(conn, endpoint)

    async def read_all(self, endpoints: Iterable[str] | None = None) -> dict[str, Progress]:
        """Every rollout row (or those of `endpoints`), by endpoint."""
        async with self.store.reading("the rollouts") as conn:
            return await read_all(conn, endpoints)

    # -- a person's actions -------------------------------------------------------------------

    async def start(
        self,
        endpoint: str,
        *,
        actor: str,
        reason: str,
        steps: tuple[float, ...] | None = None,
        interval_s: float | None = None,
    ) -> Progress:
        """Start the endpoint's rollout at its first position; `steps`/`interval_s` change its plan.

        Raises RolloutConflict when one is already under way, the endpoint serves async
        already, or its shadow traffic made it not promotable (unless the plan starts from
        shadow); FlagError when the endpoint cannot take the first position.
        """
        async with self.store.transaction(f"the rollout of {endpoint}") as conn:
            flag, _ = await self._current(conn, endpoint)
            read = await read_progress(conn, endpoint)
            if read is not None and read.is_open:
                raise RolloutConflict(
                    f"a rollout of {endpoint} is already {read.state}; resume or abort it first"
                )
            if flag.mode == "async":
                raise RolloutConflict(f"{endpoint} already serves async: nothing to roll out")
            plan = flag.rollout
            if steps is not None:
                plan = replace(plan, steps=steps)
            if interval_s is not None:
                plan = replace(plan, interval_s=interval_s)
            if read is not None and not read.promotable and plan.start_from != "shadow":
                raise RolloutConflict(
                    f"{endpoint} is not promotable ({read.promotable_reason}); fix the twin "
                    "and let shadow traffic agree, or start a rollout from shadow"
                )
            now = datetime.now(UTC)
            index = start_index(plan, flag)
            target = target_of(plan, index)
            started = Progress(
                endpoint,
                state="done" if target.mode == "async" else "running",
                plan=plan,
                step_index=index,
                step_started_at=now,
                reason=f"started by {actor}: {reason}",
                started_by=actor,
                started_at=now,
                promotable=read.promotable if read is not None else True,
                promotable_reason=read.promotable_reason if read is not None else None,
                history=(
                    history_entry(
                        now,
                        "start",
                        actor=actor,
                        reason=reason,
                        before=describe(flag),
                        after=target.describe(),
                    ),
                ),
            )
            period = started.period_s()
            started = replace(
                started,
                next_step_at=None if started.state == "done" else now + timedelta(seconds=period),
            )
            stored = await self._move(
                conn,
                target,
                started,
                read,
                event="start",
                actor=actor,
                action="rollout_start",
                reason=reason,
                rollout={"steps": list(plan.steps), "interval": plan.interval_s},
            )
        await self.changed()
        return stored

    async def pause(self, endpoint: str, *, actor: str, reason: str) -> Progress:
        """Hold a running or waiting rollout where it is (the flag does not change)."""
        async with self.store.transaction(f"the rollout of {endpoint}") as conn:
            read = await self._expect(conn, endpoint, ("running", "waiting"), "pause")
            flag, _ = await self._current(conn, endpoint)
            now = datetime.now(UTC)
            paused = replace(
                read,
                state="paused",
                reason=f"paused by {actor}: {reason}",
                next_step_at=None,
                history=with_entry(
                    read.history, history_entry(now, "pause", actor=actor, reason=reason)
                ),
            )
            stored = await write_progress(conn, paused, read=read)
            await self.store.audit_only(
                conn, flag, actor=actor, action="rollout_pause", reason=reason
            )
            await add_notice(
                conn,
                "pause",
                endpoint=endpoint,
                actor=actor,
                reason=reason,
                before=flag,
                after=flag,
                progress=stored,
            )
        await self.changed()
        return stored

    async def resume(self, endpoint: str, *, actor: str, reason: str) -> Progress:
        """Put a paused rollout's endpoint back at its current step and start the interval anew."""
        async with self.store.transaction(f"the rollout of {endpoint}") as conn:
            read = await self._expect(conn, endpoint, ("paused",), "resume")
            now = datetime.now(UTC)
            target = read.target()
            resumed = replace(
                read,
                state="running",
                reason=f"resumed by {actor}: {reason}",
                step_started_at=now,
                next_step_at=now + timedelta(seconds=read.period_s()),
                history=with_entry(
                    read.history,
                    history_entry(
                        now, "resume", actor=actor, reason=reason, after=target.describe()
                    ),
                ),
            )
            stored = await self._move(
                conn,
                target,
                resumed,
                read,
                event="resume",
                actor=actor,
                action="rollout_resume",
                reason=reason,
            )
        await self.changed()
        return stored

    async def abort(self, endpoint: str, *, actor: str, reason: str) -> Progress:
        """Stop the rollout and put the endpoint back on legacy."""
        async with self.store.transaction(f"the rollout of {endpoint}") as conn:
            read = await self._expect(conn, endpoint, ("running", "waiting", "paused"), "abort")
            now = datetime.now(UTC)
            aborted = replace(
                read,
                state="aborted",
                reason=f"aborted by {actor}: {reason}",
                next_step_at=None,
                history=with_entry(
                    read.history,
                    history_entry(now, "abort", actor=actor, reason=reason, after="legacy"),
                ),
            )
            stored = await self._move(
                conn,
                Target("legacy"),
                aborted,
                read,
                event="abort",
                actor=actor,
                action="rollout_abort",
                reason=reason,
            )
        await self.changed()
        return stored

    # -- the engine's and the guard's actions ---------------------------------------------------

    async def carry_out(
        self, read: Progress, flag: Flag, decision: Decision, analysis: Analysis
    ) -> bool:
        """Do what `decide` said for a rollout read as `read`; False when another process did
        it first (or anything changed since it was read). An `abort` is the guard's rollback
        (`guard.roll_back`), not done here."""
        assert decision.action != "abort", "a rollout's breach is rolled back by the guard"
        now = datetime.now(UTC)
        entry_of = history_entry(now, decision.action, actor=ROLLOUT, reason=decision.reason)
        if decision.action in ("wait", "stay"):
            moved = replace(
                read,
                state="waiting",
                reason=decision.reason,
                next_step_at=decision.next_step_at,
                step_started_at=now if decision.action == "stay" else read.step_started_at,
                last_analysis=analysis.to_dict(),
                # A rollout waiting for traffic notes it once, not at every look.
                history=(
                    read.history
                    if read.state == "waiting" and decision.action == "wait"
                    else with_entry(read.history, entry_of)
                ),
            )
            try:
                async with self.store.transaction(
                    f"the rollout of {read.endpoint}", bump=False
                ) as conn:
                    await write_progress(conn, moved, read=read)
            except RolloutConflict:
                return False
            return True
        target = decision.target
        assert target is not None and decision.step_index is not None
        moved = replace(
            read,
            state="done" if decision.action == "finish" else "running",
            step_index=decision.step_index,
            step_started_at=now,
            next_step_at=decision.next_step_at,
            reason=decision.reason,
            last_analysis=analysis.to_dict(),
            history=with_entry(
                read.history,
                history_entry(
                    now,
                    "step",
                    actor=ROLLOUT,
                    reason=decision.reason,
                    before=describe(flag),
                    after=target.describe(),
                ),
            ),
        )
        try:
            async with self.store.transaction(f"the rollout of {read.endpoint}") as conn:
                await self._move(
                    conn,
                    target,
                    moved,
                    read,
                    event="step",
                    actor=ROLLOUT,
                    action="rollout_step",
                    reason=decision.reason,
                    expected_etag=etag(flag),
                    analysis=analysis,
                )
        except (FlagConflict, RolloutConflict):
            return False
        await self.changed()
        return True

    # -- internals ------------------------------------------------------------------------------

    async def _current(self, conn: AsyncConnection, endpoint: str) -> tuple[Flag, object]:
        return await self.store.current(conn, endpoint, declared=self.declared, rules=self.rules)

    async def _expect(
        self, conn: AsyncConnection, endpoint: str, states: tuple[str, ...], action: str
    ) -> Progress:
        read = await read_progress(conn, endpoint)
        state = read.state if read is not None else "none"
        if read is None or state not in states:
            raise RolloutConflict(
                f"cannot {action} the rollout of {endpoint}: it is {state} "
                f"(only {' or '.join(states)} rollouts can be {_past(action)})"
            )
        return read

    async def _move(
        self,
        conn: AsyncConnection,
        target: Target,
        progress: Progress,
        read: Progress | None,
        *,
        event: str,
        actor: str,
        action: str,
        reason: str,
        expected_etag: str | None = None,
        rollout: dict[str, object] | None = None,
        analysis: Analysis | None = None,
    ) -> Progress:
        """Flip the endpoint to `target` and store `progress` (a compare-and-set over `read`)
        with its notice, in `conn`'s transaction; returns the stored progress."""
        stored: list[Progress] = []

        async def effect(conn: AsyncConnection, flipped: Flipped) -> None:
            saved = await write_progress(conn, progress, read=read)
            await add_notice(
                conn,
                event,
                endpoint=flipped.endpoint,
                actor=actor,
                reason=reason,
                before=flipped.before,
                after=flipped.after,
                figures=analysis.to_dict() if analysis is not None else None,
                progress=saved,
            )
            stored.append(saved)

        await self.store.flip_in(
            conn,
            progress.endpoint,
            Change(mode=target.mode, percent=target.percent, rollout=rollout),
            declared=self.declared,
            rules=self.rules,
            actor=actor,
            reason=reason,
            action=action,
            expected_etag=expected_etag,
            effect=effect,
        )
        return stored[0]

    async def changed(self) -> None:
        """Tell the gateway a change was committed (see `on_change`)."""
        if self.on_change is not None:
            await self.on_change()


def _past(action: str) -> str:
    return {"pause": "paused", "resume": "resumed", "abort": "aborted"}.get(action, action)
