"""The guard: judges every served endpoint from the gateway's own measurements, rolls a failing
twin back to legacy, marks shadow disagreement "not promotable", and drives the rollouts.

Each worker runs one `Guardian` task beside the request path (which only records). Every tick
it reads the flags and the merged stats of all workers and machines from the database and acts
through compare-and-set transactions, so however many guards run, a breach flips an endpoint
once and a rollout step is taken once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from asgi_gateway.control.analysis import Analysis, Figures, analyse
from asgi_gateway.control.database import describe_error
from asgi_gateway.control.progress import (
    GUARD,
    ROLLOUT,
    Flipped,
    add_notice,
    read_progress,
    write_progress,
)
from asgi_gateway.control.rollout import Progress, decide, history_entry, with_entry
from asgi_gateway.control.rollouts import Rollouts
from asgi_gateway.control.stats import windows_figures
from asgi_gateway.control.store import Change, FlagState, etag
from asgi_gateway.control.webhook import prune_notices
from asgi_gateway.errors import FlagConflict, FlagStoreUnavailable, RolloutConflict
from asgi_gateway.flags import Flag, describe

_log = logging.getLogger(__name__)
GUARDED_MODES = ("canary", "async", "shadow")
_PRUNE_EVERY_S = 3600.0


class RolloutMetrics:
    """`gateway_guard_rollbacks_total{endpoint}` and `gateway_rollout_step{endpoint}`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rollbacks = Counter(
            "gateway_guard_rollbacks_total",
            "Endpoints flipped back to legacy by the guard",
            ["endpoint"],
            registry=registry,
        )
        # Every worker sets it from the database: the newest value of the live ones is right.
        self.step = Gauge(
            "gateway_rollout_step",
            "Canary percent of the rollout's current step (0 in its shadow phase, 100 when done)",
            ["endpoint"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )

    def show(self, rollouts: dict[str, Progress]) -> None:
        """Set the step gauge of every endpoint that has had a rollout."""
        for endpoint, progress in rollouts.items():
            if progress.state == "none":
                continue
            if progress.state == "aborted":
                value = 0.0
            else:
                target = progress.target()
                value = {"async": 100.0, "shadow": 0.0}.get(target.mode, target.percent or 0.0)
            self.step.labels(endpoint).set(value)


@dataclass(frozen=True)
class GuardConfig:
    """How a gateway guards: its metrics, how often it looks, where its webhook posts."""

    metrics: RolloutMetrics
    tick_s: float = 1.0
    webhook_url: str | None = None


async def roll_back(
    rollouts: Rollouts,
    endpoint: str,
    flag: Flag,
    changed_at: datetime | None,
    analysis: Analysis,
    *,
    rollout: Progress | None = None,
) -> bool:
    """The guard's rollback to legacy (actor `guard`), aborting a rollout under way.

    Only if the flag is still `flag`, unchanged since `changed_at` (and the rollout still at
    `rollout`'s revision): an analysis of an older state never flips a newer one, and of the
    guards that saw one breach, one flips. False when it lost that race.
    """

    async def effect(conn: AsyncConnection, flipped: Flipped) -> None:
        if flipped.changed_at != changed_at:
            raise FlagConflict(f"the flag of {endpoint} changed since it was analysed")
        read = await read_progress(conn, endpoint)
        if rollout is not None and (read is None or read.revision != rollout.revision):
            raise RolloutConflict(f"the rollout of {endpoint} changed meanwhile")
        stored = None
        if read is not None and read.is_open:
            why = f"aborted: {analysis.reason}"
            entry = history_entry(
                datetime.now(UTC),
                "rollback",
                actor=GUARD,
                reason=analysis.reason,
                before=describe(flipped.before),
                after="legacy",
            )
            aborted = replace(
                read,
                state="aborted",
                reason=why,
                next_step_at=None,
                last_analysis=analysis.to_dict(),
                history=with_entry(read.history, entry),
            )
            stored = await write_progress(conn, aborted, read=read)
            await _notice(conn, "abort", ROLLOUT, why, flipped, analysis, stored)
        await _notice(conn, "rollback", GUARD, analysis.reason, flipped, analysis, stored)

    try:
        async with rollouts.store.transaction(f"the rollback of {endpoint}") as conn:
            await rollouts.store.flip_in(
                conn,
                endpoint,
                Change(mode="legacy"),
                declared=rollouts.declared,
                rules=rollouts.rules,
                actor=GUARD,
                action="rollback",
                reason=analysis.reason,
                expected_etag=etag(flag),
                effect=effect,
            )
    except (FlagConflict, RolloutConflict):
        return False
    await rollouts.changed()
    return True


async def judge_shadow(rollouts: Rollouts, endpoint: str, flag: Flag, analysis: Analysis) -> bool:
    """Record whether the endpoint's shadow traffic allows promotion; True when that changed.

    A breach makes it not promotable, a healthy window promotable again; too little traffic
    changes nothing. Written only on a change, with a compare-and-set.
    """
    if analysis.verdict == "insufficient":
        return False
    promotable = not analysis.is_breach
    try:
        async with rollouts.store.transaction(f"the rollout of {endpoint}", bump=False) as conn:
            read = await read_progress(conn, endpoint)
            if (read.promotable if read is not None else True) == promotable:
                return False  # nothing new (an endpoint without a row is promotable)
            base = read or Progress(endpoint, plan=flag.rollout)
            event = "promotable" if promotable else "not_promotable"
            entry = history_entry(datetime.now(UTC), event, actor=GUARD, reason=analysis.reason)
            judged = replace(
                base,
                promotable=promotable,
                promotable_reason=None if promotable else analysis.reason,
                history=with_entry(base.history, entry) if base.is_open else base.history,
            )
            await write_progress(conn, judged, read=read)
    except RolloutConflict:
        return False
    if promotable:
        _log.info("%s is promotable again: %s", endpoint, analysis.reason)
    else:
        _log.warning("%s is not promotable: %s", endpoint, analysis.reason)
    return True


async def _notice(
    conn: AsyncConnection,
    event: str,
    actor: str,
    reason: str,
    flipped: Flipped,
    analysis: Analysis,
    progress: Progress | None,
) -> None:
    await add_notice(
        conn,
        event,
        endpoint=flipped.endpoint,
        actor=actor,
        reason=reason,
        before=flipped.before,
        after=flipped.after,
        figures=analysis.to_dict(),
        progress=progress,
    )


class Guardian:
    """One per worker: every `tick_s`, guards each served endpoint and moves due rollouts."""

    def __init__(
        self,
        rollouts: Callable[[], Rollouts],
        twins: frozenset[str] | None,
        metrics: RolloutMetrics,
        *,
        tick_s: float = 1.0,
    ) -> None:
        self.rollouts = rollouts
        self.twins = twins
        self.metrics = metrics
        self.tick_s = tick_s
        self._task: asyncio.Task[None] | None = None
        self._pruned_at = 0.0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="guard")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.tick()
            except FlagStoreUnavailable as exc:  # the database is away: try again next tick
                if not failing:
                    _log.warning("the guard cannot read its figures: %s", exc)
                failing = True
            except Exception:  # keep guarding: a dead guard would let failures run on
                _log.exception("guard tick failed")
            else:
                failing = False

    async def tick(self) -> None:
        """Judge every endpoint in canary, async or shadow; then move every due rollout."""
        rollouts = self.rollouts()
        state = await rollouts.store.load()
        now = datetime.now(UTC)
        windows: dict[str, float] = {}
        for endpoint, flag in state.flags.items():
            if flag.mode not in GUARDED_MODES or (
                self.twins is not None and endpoint not in self.twins
            ):
                continue
            with self._each(endpoint):
                windows[endpoint] = _window_start(state, endpoint, flag, now)
        # Every guarded endpoint's figures at once: a few statements per tick, not a few per
        # endpoint (most windows start at the same second).
        figures = await self._figures(rollouts, windows, now)
        flipped: set[str] = set()
        for endpoint, since in windows.items():
            with self._each(endpoint):
                flag = state.flags[endpoint]
                analysis = _judged(flag.mode, flag, figures[endpoint], since, now)
                if await self._guard(rollouts, state, endpoint, flag, analysis):
                    flipped.add(endpoint)
        progress = await rollouts.read_all()
        for endpoint, read in progress.items():
            if endpoint in flipped or not read.is_active:
                continue
            if read.next_step_at is not None and now >= read.next_step_at:
                with self._each(endpoint):
                    await self._advance(rollouts, state, read, now)
        self.metrics.show(await rollouts.read_all() if flipped else progress)
        if now.timestamp() - self._pruned_at >= _PRUNE_EVERY_S:
            self._pruned_at = now.timestamp()
            await prune_notices(rollouts.store.engine)

    @contextlib.contextmanager
    def _each(self, endpoint: str) -> Iterator[None]:
        """One endpoint's failure (its flag no longer valid, say) never stops the others'
        guarding; the database being away does (the whole tick is tried again)."""
        try:
            yield
        except FlagStoreUnavailable:
            raise
        except Exception:
            _log.exception("guarding %s failed", endpoint)

    async def _guard(
        self, rollouts: Rollouts, state: FlagState, endpoint: str, flag: Flag, analysis: Analysis
    ) -> bool:
        if flag.mode == "shadow":
            await judge_shadow(rollouts, endpoint, flag, analysis)
            return False
        if not analysis.is_breach:
            return False
        changed_at = state.changed_at.get(endpoint)
        if not await roll_back(rollouts, endpoint, flag, changed_at, analysis):
            return False  # another guard did it (or the flag changed meanwhile)
        self.metrics.rollbacks.labels(endpoint).inc()
        _log.warning("guard rolled %s back to legacy: %s", endpoint, analysis.reason)
        return True

    async def _advance(
        self, rollouts: Rollouts, state: FlagState, read: Progress, now: datetime
    ) -> None:
        flag = state.flags.get(read.endpoint)
        if flag is None or read.step_started_at is None:
            return
        mode = "shadow" if read.in_shadow_phase else flag.mode
        since = read.step_started_at.timestamp()
        analysis = await self._analyse(rollouts, read.endpoint, mode, flag, since, now)
        decision = decide(read, analysis, now)
        if decision is None:
            return
        if decision.action == "abort":
            changed_at = state.changed_at.get(read.endpoint)
            if await roll_back(rollouts, read.endpoint, flag, changed_at, analysis, rollout=read):
                self.metrics.rollbacks.labels(read.endpoint).inc()
                _log.warning("rollout of %s aborted: %s", read.endpoint, analysis.reason)
            return
        if await rollouts.carry_out(read, flag, decision, analysis):
            log = _log.info if decision.action == "wait" else _log.warning
            log("rollout of %s: %s", read.endpoint, decision.reason)

    async def _analyse(
        self,
        rollouts: Rollouts,
        endpoint: str,
        mode: str,
        flag: Flag,
        since_s: float,
        now: datetime,
    ) -> Analysis:
        figures = await self._figures(rollouts, {endpoint: since_s}, now)
        return _judged(mode, flag, figures[endpoint], since_s, now)

    async def _figures(
        self, rollouts: Rollouts, windows: dict[str, float], now: datetime
    ) -> dict[str, Figures]:
        if not windows:
            return {}
        try:
            return await windows_figures(rollouts.store.engine, windows, now.timestamp())
        except (SQLAlchemyError, OSError) as exc:
            what = next(iter(windows)) if len(windows) == 1 else f"{len(windows)} endpoints"
            raise FlagStoreUnavailable(
                f"cannot read the stats of {what}: {describe_error(exc)}"
            ) from exc


def _window_start(state: FlagState, endpoint: str, flag: Flag, now: datetime) -> float:
    """Where the guard's window of `endpoint` starts: `window_s` back, or at its last flip."""
    since = now.timestamp() - flag.guard.window_s
    changed_at = state.changed_at.get(endpoint)
    if changed_at is not None:
        since = max(since, changed_at.timestamp())  # judge only the current flag's traffic
    return since


def _judged(mode: str, flag: Flag, figures: Figures, since_s: float, now: datetime) -> Analysis:
    window_s = max(now.timestamp() - since_s, 0.0)
    return analyse(mode, figures, flag.guard, window_s=window_s, at=now)
