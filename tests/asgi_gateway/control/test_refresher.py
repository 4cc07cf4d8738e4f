"""FlagRefresher and its flag channel on the real PostgreSQL (and SQLite): every version move is
announced, announcements reach a listening worker, a lost channel comes back, polling serves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.control.database import open_engine
from asgi_gateway.control.listener import APPLICATION_NAME, FlagChannel, is_notifiable
from asgi_gateway.control.refresher import FlagRefresher
from asgi_gateway.control.store import Change, FlagStore
from asgi_gateway.flag_file import parse_flag_file
from asgi_gateway.flags import EndpointRules, Flag
from asgi_gateway.tables import FLAGS_CHANNEL, state_table
from shared.config import Settings, normalize_database_url

pytestmark = pytest.mark.postgres

WAIT_S = 20.0  # generous: nothing here measures speed, it only must happen
NEVER_S = 3600.0  # a poll interval that never comes due during a test
YAML = """\
version: 1
routes:
  appointments.list: {mode: legacy}
"""
RULES = EndpointRules()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Return once `condition()` holds; fail naming `what` after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def pg_url(pg_environ: dict[str, str]) -> str:
    return normalize_database_url(pg_environ["AA_DATABASE_URL"])


@pytest.fixture
async def engines(pg_url: str) -> AsyncIterator[Callable[[], AsyncEngine]]:
    """Engines on the test's PostgreSQL database (one per simulated worker), all disposed."""
    opened: list[AsyncEngine] = []

    def open_one() -> AsyncEngine:
        opened.append(open_engine(pg_url))
        return opened[-1]

    yield open_one
    for engine in opened:
        await engine.dispose()


@pytest.fixture
async def store(engines: Callable[[], AsyncEngine]) -> FlagStore:
    store = FlagStore(engines())
    await store.ensure_schema()
    return store


@pytest.fixture
async def refreshers() -> AsyncIterator[list[FlagRefresher]]:
    """Refreshers a test starts; all stopped (channels closed) at the end."""
    started: list[FlagRefresher] = []
    yield started
    for refresher in started:
        await refresher.stop()


async def start_worker(
    engine: AsyncEngine,
    started: list[FlagRefresher],
    *,
    interval_s: float = NEVER_S,
    retry_s: float = 0.2,
    fallback_interval_s: float = NEVER_S,
    channel_engine: AsyncEngine | None = None,
) -> FlagRefresher:
    """A worker's refresher with a channel, loaded and started, as the gateway starts one."""
    channel = FlagChannel(channel_engine or engine, retry_s=retry_s)
    refresher = FlagRefresher(
        FlagStore(engine),
        interval_s=interval_s,
        channel=channel,
        fallback_interval_s=fallback_interval_s,
    )
    await refresher.refresh()
    refresher.start()
    started.append(refresher)
    return refresher


async def listener_pids(pg_url: str) -> list[int]:
    conn = await asyncpg.connect(_plain(pg_url))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = $2",
            APPLICATION_NAME,
            make_url(pg_url).database,
        )
        return [row["pid"] for row in rows]
    finally:
        await conn.close()


async def terminate(pg_url: str, pids: list[int]) -> None:
    conn = await asyncpg.connect(_plain(pg_url))
    try:
        for pid in pids:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


# -- every version move is announced, in its transaction ----------------------------------------


Write = Callable[[FlagStore], Awaitable[object]]
WRITES: dict[str, Write] = {
    "apply": lambda store: store.apply(parse_flag_file(YAML, Path("feature_flags.yaml"))),
    "set_flag": lambda store: store.set_flag(
        Flag("appointments.list", mode="async"), actor="test", reason="set"
    ),
    "flip": lambda store: store.flip(
        "appointments.list",
        Change(mode="async"),
        declared=None,
        rules=RULES,
        actor="admin@example.com",
        reason="flip",
    ),
    "transaction": lambda store: _in_transaction(store),  # the guard's and rollouts' path
}


async def _in_transaction(store: FlagStore) -> None:
    async with store.transaction("a guard rollback") as conn:
        await store.flip_in(
            conn,
            "appointments.list",
            Change(mode="legacy"),
            declared=None,
            rules=RULES,
            actor="guard",
            reason="error rate 0.5 over 0.02",
        )


@pytest.mark.parametrize("write", sorted(WRITES))
async def test_every_write_that_moves_the_version_announces_it(
    write: str, store: FlagStore, pg_url: str
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(_plain(pg_url))
    try:
        await conn.add_listener(FLAGS_CHANNEL, lambda *args: heard.put_nowait(args[-1]))
        await WRITES[write](store)
        payload = await asyncio.wait_for(heard.get(), WAIT_S)
    finally:
        await conn.close()
    assert int(payload) == await store.version() == 1


async def test_a_rolled_back_change_announces_nothing(store: FlagStore, pg_url: str) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(_plain(pg_url))
    try:
        await conn.add_listener(FLAGS_CHANNEL, lambda *args: heard.put_nowait(args[-1]))
        with pytest.raises(RuntimeError, match="changed my mind"):
            async with store.transaction("a change undone"):
                raise RuntimeError("changed my mind")
        await store.set_flag(Flag("appointments.list", mode="async"), actor="t", reason="r")
        # The first notice is the committed change: the rolled back one sent none.
        assert await asyncio.wait_for(heard.get(), WAIT_S) == "1"
    finally:
        await conn.close()


# -- a listening worker --------------------------------------------------------------------------


async def test_a_notification_alone_brings_the_new_flags(
    store: FlagStore,
    engines: Callable[[], AsyncEngine],
    refreshers: list[FlagRefresher],
) -> None:
    worker = await start_worker(engines(), refreshers)  # never polls during the test
    await until(lambda: worker.is_pushed, "the worker to listen")
    assert worker.push_state == "listening"
    installed_at = worker.installed_at

    flipped_at = time.time()
    await store.set_flag(Flag("appointments.list", mode="async"), actor="t", reason="r")

    await until(lambda: worker.snapshot.version == 1, "the worker to load version 1")
    assert worker.snapshot.flags["appointments.list"].mode == "async"
    assert installed_at < flipped_at <= worker.installed_at


async def test_a_change_that_sends_no_notice_is_found_by_the_fallback_poll(
    store: FlagStore,
    engines: Callable[[], AsyncEngine],
    refreshers: list[FlagRefresher],
) -> None:
    worker = await start_worker(engines(), refreshers, fallback_interval_s=0.1)
    await until(lambda: worker.is_pushed, "the worker to listen")

    # What an older release (or a manual UPDATE) does: move the version, announce nothing.
    async with store.engine.begin() as conn:
        await conn.execute(update(state_table).values(version=state_table.c.version + 1))

    await until(lambda: worker.snapshot.version == 1, "the fallback poll to find version 1")
    assert worker.is_pushed  # it never stopped listening: the slow poll found it


async def test_a_killed_channel_reconnects_and_catches_up(
    store: FlagStore,
    engines: Callable[[], AsyncEngine],
    refreshers: list[FlagRefresher],
    pg_url: str,
) -> None:
    # Long retries: the flip below lands while the channel is down, so only the re-read
    # on reconnecting (interval_s never comes due) can bring it.
    worker = await start_worker(engines(), refreshers, retry_s=1.0)
    await until(lambda: worker.is_pushed, "the worker to listen")
    pids = await listener_pids(pg_url)
    assert len(pids) == 1

    await terminate(pg_url, pids)
    await until(lambda: not worker.is_pushed, "the worker to notice the lost channel")
    assert worker.push_state == "reconnecting"
    assert worker.channel is not None and worker.channel.problem is not None
    assert "closed by the database or the network" in worker.channel.problem
    await store.set_flag(Flag("appointments.list", mode="async"), actor="t", reason="r")

    await until(lambda: worker.is_pushed, "the channel to reconnect")
    await until(lambda: worker.snapshot.version == 1, "the worker to catch up")
    assert (await listener_pids(pg_url)) not in ([], pids)

    await store.set_flag(Flag("appointments.list", mode="legacy"), actor="t", reason="r")
    await until(lambda: worker.snapshot.version == 2, "the reconnected channel to deliver")


async def test_without_a_channel_the_worker_polls_at_its_interval(
    store: FlagStore,
    engines: Callable[[], AsyncEngine],
    refreshers: list[FlagRefresher],
    pg_url: str,
) -> None:
    # A channel that can never connect (nothing listens on port 1): the worker must keep its
    # flags current by polling every interval_s.
    unreachable = open_engine(pg_url.replace("127.0.0.1:5432", "127.0.0.1:1"))
    try:
        assert FlagChannel(unreachable).state == "connecting"  # until its first attempt
        worker = await start_worker(
            engines(), refreshers, interval_s=0.05, retry_s=NEVER_S, channel_engine=unreachable
        )
        await until(lambda: worker.push_state == "reconnecting", "a failed connect")
        assert not worker.is_pushed
        problem = worker.channel.problem if worker.channel is not None else None
        assert problem is not None and "flag notifications lost" in problem

        await store.set_flag(Flag("appointments.list", mode="async"), actor="t", reason="r")

        await until(lambda: worker.snapshot.version == 1, "the polling worker to load version 1")
        assert "Connect call failed" in problem or "refused" in problem
    finally:
        await unreachable.dispose()


async def test_an_older_read_never_replaces_a_newer_snapshot(
    store: FlagStore, engines: Callable[[], AsyncEngine]
) -> None:
    refresher = FlagRefresher(FlagStore(engines()))
    await store.set_flag(Flag("appointments.list", mode="async"), actor="t", reason="r")
    await refresher.refresh()
    stale = refresher.snapshot

    await store.set_flag(Flag("appointments.list", mode="legacy"), actor="t", reason="r")
    # Two refreshes race: the notice's and the worker's own flip's. Whichever order their
    # reads finish in, the snapshot ends at the newest version.
    results = await asyncio.gather(refresher.refresh(), refresher.refresh())

    assert refresher.snapshot.version == 2 and refresher.snapshot is not stale
    assert results.count(True) >= 1


# -- SQLite --------------------------------------------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_only_postgresql_through_asyncpg_can_push(
    database: str, settings: Settings, pg_url: str
) -> None:
    url = settings.database_url if database == "sqlite" else pg_url
    engine = open_engine(url)
    try:
        assert is_notifiable(engine) is (database == "postgresql")
        if database == "sqlite":
            store = FlagStore(engine)
            await store.ensure_schema()
            await store.set_flag(Flag("appointments.list", mode="async"), actor="t", reason="r")
            assert await store.version() == 1
    finally:
        await engine.dispose()
