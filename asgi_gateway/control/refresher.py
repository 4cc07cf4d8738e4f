"""Keeps a worker's flag snapshot current: told of changes by the flag channel where there is
one, polling the store's version otherwise (always off the hot path)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from asgi_gateway.control.listener import FlagChannel
from asgi_gateway.control.store import FlagStore
from asgi_gateway.errors import FlagStoreUnavailable
from asgi_gateway.serving.decision import EMPTY_SNAPSHOT, Snapshot

_log = logging.getLogger(__name__)


class FlagRefresher:
    """Owns `snapshot`; swaps it by one reference assignment when the stored version moves.

    Without a channel (SQLite) it polls the version every `interval_s`. With one (PostgreSQL)
    it re-reads when a notification announces a newer version, and polls only every
    `fallback_interval_s` in case a notice went missing; while the channel is down it polls
    every `interval_s` again. If the database cannot be read the last snapshot keeps
    serving, and `problem` says why (reported on /readyz) until a read succeeds again.
    """

    def __init__(
        self,
        store: FlagStore,
        *,
        interval_s: float = 0.25,
        channel: FlagChannel | None = None,
        fallback_interval_s: float = 30.0,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.channel = channel
        self.fallback_interval_s = fallback_interval_s
        self.snapshot: Snapshot = EMPTY_SNAPSHOT
        self.problem: str | None = None
        self.last_ok_monotonic = 0.0
        self.installed_at = 0.0  # wall-clock time (epoch s) `snapshot` was installed
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._announced = 0  # the newest version a notification named, not yet loaded

    @property
    def is_pushed(self) -> bool:
        """True while flag changes arrive as notifications (polling is only the fallback)."""
        return self.channel is not None and self.channel.is_listening

    @property
    def push_state(self) -> str:
        """How this worker learns of flips: `polling` (no channel), or its channel's state
        (`listening`, `connecting`, `reconnecting`: polling meanwhile)."""
        if self.channel is None:
            return "polling"
        return self.channel.state

    async def refresh(self) -> bool:
        """Read the version (or trust an announced one), load the flags when it moved; True
        when a new snapshot was installed. Never raises for store errors."""
        try:
            if self._announced <= self.snapshot.version or self.snapshot is EMPTY_SNAPSHOT:
                version = await self.store.version()
                if version == self.snapshot.version and self.snapshot is not EMPTY_SNAPSHOT:
                    self._ok()
                    return False
            state = await self.store.load()
        except FlagStoreUnavailable as exc:
            if self.problem is None:
                _log.warning(
                    "flag store unreadable, serving flags version %s: %s",
                    self.snapshot.version,
                    exc,
                )
            self.problem = f"flag store unreadable; serving version {self.snapshot.version}"
            return False
        # Two refreshes may overlap (a notice, and a flip on this worker): versions only
        # grow, so the one that read an older state must not replace a newer snapshot.
        if state.version < self.snapshot.version:
            self._ok()
            return False
        self.snapshot = Snapshot.build(state.version, state.flags)
        self.installed_at = time.time()
        self._ok()
        return True

    def _ok(self) -> None:
        if self.problem is not None:
            _log.warning("flag store readable again at version %s", self.snapshot.version)
        self.problem = None
        self.last_ok_monotonic = time.monotonic()

    def start(self) -> None:
        """Refresh in a task of the running loop (and listen, with a channel) until stop()."""
        if self._task is None:
            if self.channel is not None:
                self.channel.start(self._heard)
            self._task = asyncio.get_running_loop().create_task(self._run(), name="flag-refresher")

    async def stop(self) -> None:
        """Stop refreshing and close the channel."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.channel is not None:
            await self.channel.stop()

    def _heard(self, version: int | None) -> None:
        # Called on the loop by the channel: a notice of `version`, or None when the channel
        # connected or was lost (notices may have gone unheard: check the version now).
        if version is None:
            self._wake.set()
        elif version > self.snapshot.version:
            self._announced = max(self._announced, version)
            self._wake.set()

    async def _run(self) -> None:
        while True:
            interval_s = self.fallback_interval_s if self.is_pushed else self.interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval_s)
            self._wake.clear()
            try:
                await self.refresh()
            except Exception:  # keep refreshing: a dead refresher would freeze the flags silently
                _log.exception("flag refresh failed")
