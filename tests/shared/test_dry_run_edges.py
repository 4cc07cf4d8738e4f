"""Snapshot copies given back at once: one blank database is opened, and closing leaves no
connection thread behind (an open one keeps the process alive at exit)."""

from __future__ import annotations

import asyncio
import threading
import time

from shared.dry_run import SnapshotCopies


def connection_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


async def test_copies_given_back_at_once_share_one_blank_and_close_every_thread() -> None:
    before = connection_threads()
    copies = SnapshotCopies(keep=4)
    taken = [await copies.take() for _ in range(3)]
    await asyncio.gather(*(copies.give_back(memory, conn) for memory, conn in taken))
    # Three copies idle and one blank database: four connections, four threads.
    assert len(connection_threads() - before) == 4
    await copies.aclose()
    deadline = time.monotonic() + 10
    # A thread ends on its own after its connection closed: nothing to await but its end.
    while connection_threads() - before and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    assert connection_threads() - before == set()
