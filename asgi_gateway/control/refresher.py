"""Keeps a worker's flag snapshot current by polling the store's version (off the hot path)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from asgi_gateway.control.store import FlagStore
from asgi_gateway.errors import FlagStoreUnavailable
from asgi_gateway.serving.decision import EMPTY_SNAPSHOT, Snapshot

_log = logging.getLogger(__name__)


class FlagRefresher:
    """Owns `snapshot`; swaps it by one reference assignment when the stored version moves.

    If the database cannot be read the last snapshot keeps serving, and `problem` says why
    (reported on /readyz) until a read succeeds again.
    """

    def __init__(self, store: FlagStore, *, interval_s: float = 0.25) -> None:
        self.store = store
        self.interval_s = interval_s
        self.snapshot: Snapshot = EMPTY_SNAPSHOT
        self.problem: str | None = None
        self.last_ok_monotonic = 0.0
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> bool:
        """Poll once; True when a new snapshot was installed. Never raises for store errors."""
        try:
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
        self.snapshot = Snapshot.build(state.version, state.flags)
        self._ok()
        return True

    def _ok(self) -> None:
        if self.problem is not None:
            _log.warning("flag store readable again at version %s", self.snapshot.version)
        self.problem = None
        self.last_ok_monotonic = time.monotonic()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="flag-refresher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.refresh()
            except Exception:  # keep polling: a dead refresher would freeze the flags silently
                _log.exception("flag refresh failed")
