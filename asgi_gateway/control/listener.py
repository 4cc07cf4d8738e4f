"""The flag channel: a worker's own PostgreSQL connection that hears each flag change (NOTIFY).

Every transaction that moves the flag version also sends `NOTIFY gateway_flags, '<version>'`
(see `store._bump`); PostgreSQL delivers it at commit, and only then, to every connection
LISTENing on the channel. A worker therefore learns of a flip in one round trip instead of at
its next poll, and its store is read once per flip rather than several times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.control.database import describe_error
from asgi_gateway.tables import FLAGS_CHANNEL

# How the connection shows in pg_stat_activity, so an operator can tell it from the pool's.
APPLICATION_NAME = "gateway-flags-listener"
_CONNECT_TIMEOUT_S = 10.0
_NOT_YET = "flag notifications: not connected yet; polling meanwhile"
# Options of SQLAlchemy's asyncpg dialect that asyncpg.connect itself does not take.
_DIALECT_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback")

_log = logging.getLogger(__name__)

# Called with the version a notification announced, or with None when the channel connected
# or was lost: then notifications may have been missed and the caller re-reads the version.
Heard = Callable[[int | None], None]


def is_notifiable(engine: AsyncEngine) -> bool:
    """True when the flag store behind `engine` can push changes (PostgreSQL through asyncpg)."""
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg"


class FlagChannel:
    """One dedicated asyncpg connection LISTENing on FLAGS_CHANNEL, reopened whenever it is lost.

    Between losing the connection and having it back (a restart of the database, a killed
    backend, a reset network connection) `problem` says why; the refresher polls meanwhile.
    A connection that dies without a word (no reset ever arrives) looks alive: the
    refresher's slow fallback poll is what bounds that case. The connection
    is opened outside the engine's pool: it is held for the life of the worker and must never
    be handed to a query.
    """

    def __init__(self, engine: AsyncEngine, *, retry_s: float = 2.0) -> None:
        _, options = engine.dialect.create_connect_args(engine.url)
        for name in _DIALECT_ONLY:
            options.pop(name, None)
        settings = dict(options.pop("server_settings", None) or {})
        settings.setdefault("application_name", APPLICATION_NAME)
        self._connect_options: dict[str, Any] = {
            **options,
            "server_settings": settings,
            "timeout": _CONNECT_TIMEOUT_S,
        }
        self.retry_s = retry_s
        self.problem: str | None = _NOT_YET
        self._heard: Heard | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def is_listening(self) -> bool:
        """True while the connection is open and LISTENing: flips arrive as notifications."""
        return self.problem is None

    @property
    def state(self) -> str:
        """`listening`, `connecting` (not yet connected) or `reconnecting` (lost): a word for
        /readyz, which anyone may read; the reason (`problem`) goes only to the log."""
        if self.problem is None:
            return "listening"
        return "connecting" if self.problem == _NOT_YET else "reconnecting"

    def start(self, heard: Heard) -> None:
        """Connect and listen in a task of the running loop; `heard` gets every notice."""
        if self._task is None:
            self._heard = heard
            self._task = asyncio.get_running_loop().create_task(self._run(), name="flag-channel")

    async def stop(self) -> None:
        """Close the connection and stop reconnecting."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep reconnecting: a dead channel would stop all pushes
                self._lost(describe_error(exc))
            await asyncio.sleep(self.retry_s)

    async def _listen(self) -> None:
        """Connect, LISTEN, and return once the connection is lost."""
        lost = asyncio.Event()
        conn = await asyncpg.connect(**self._connect_options)
        try:
            # Registered before LISTEN: a connection dropped during it is still noticed.
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(FLAGS_CHANNEL, self._on_notification)
            self._connected()
            await lost.wait()
            self._lost("the connection was closed by the database or the network")
        finally:
            if not conn.is_closed():
                # Shielded: a stop() during close still closes (a half-closed backend would
                # keep LISTENing until the server notices).
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close(timeout=2.0))

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            version: int | None = int(payload)
        except ValueError:  # someone else's NOTIFY on our channel: just re-read the version
            version = None
        self._tell(version)

    def _connected(self) -> None:
        if self.problem is not None and self.problem != _NOT_YET:
            _log.warning("flag notifications: listening again")
        self.problem = None
        # Changes committed while we were not listening sent notices no one heard.
        self._tell(None)

    def _lost(self, reason: str) -> None:
        was_listening = self.problem is None
        if was_listening or self.problem == _NOT_YET:
            _log.warning(
                "flag notifications: %s; polling meanwhile, reconnecting every %s s",
                reason,
                self.retry_s,
            )
        else:  # still down: said once already
            _log.info("flag notifications: reconnecting failed: %s", reason)
        self.problem = f"flag notifications lost ({reason}); polling until they are back"
        if was_listening:
            # Wake the refresher: it was waiting out the long fallback interval.
            self._tell(None)

    def _tell(self, version: int | None) -> None:
        if self._heard is not None:
            self._heard(version)
