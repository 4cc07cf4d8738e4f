"""Starting and stopping the control plane: flag file, tables, snapshot, refresher (and its
flag channel), recorder, the guard and the rollout webhook."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgi_gateway.control.guard import GuardConfig, Guardian
from asgi_gateway.control.listener import FlagChannel, is_notifiable
from asgi_gateway.control.plane import ControlPlane
from asgi_gateway.control.refresher import FlagRefresher
from asgi_gateway.control.store import FlagStore
from asgi_gateway.control.webhook import WebhookSender
from asgi_gateway.errors import FlagStoreUnavailable
from asgi_gateway.flag_file import load_flag_file
from asgi_gateway.serving.options import FlagSource
from asgi_gateway.serving.recorder import Recorder

_log = logging.getLogger(__name__)


@asynccontextmanager
async def run_flags(
    plane: ControlPlane, source: FlagSource, recorder: Recorder, guard: GuardConfig
) -> AsyncIterator[None]:
    """Read and apply the flag file, load the snapshot and keep it fresh, guard the endpoints
    and move their rollouts; stop it all on exit.

    Raises FlagFileError or FlagStoreUnavailable when the gateway cannot serve its flags.
    """
    plane.declared = load_flag_file(source.path, plane.rules)
    engine = source.open()
    store = plane.store = FlagStore(engine)
    refresher: FlagRefresher | None = None
    guardian: Guardian | None = None
    sender: WebhookSender | None = None
    try:
        await store.ensure_schema()
        changed = await store.apply(plane.declared)
        if changed:
            _log.warning("applied changed flag file entries: %s", ", ".join(changed))
        channel = None
        if source.notify and is_notifiable(engine):
            channel = FlagChannel(engine, retry_s=source.notify_retry_s)
        refresher = FlagRefresher(
            store,
            interval_s=source.poll_interval_s,
            channel=channel,
            fallback_interval_s=source.fallback_poll_s,
        )
        await refresher.refresh()
        if refresher.problem is not None:
            raise FlagStoreUnavailable(refresher.problem)
        plane.refresher = refresher
        refresher.start()
        await recorder.start(engine)
        if guard.webhook_url:
            sender = WebhookSender(engine, guard.webhook_url)
            sender.start()
            plane.notify = sender.wake
        guardian = Guardian(plane.rollouts, plane.twins, guard.metrics, tick_s=guard.tick_s)
        guardian.start()
        yield
    finally:
        if guardian is not None:
            await guardian.stop()
        plane.notify = None
        if sender is not None:
            await sender.stop()
        plane.refresher = None
        if refresher is not None:
            await refresher.stop()
        try:
            await recorder.stop()
        finally:
            plane.store = None
            await engine.dispose()
            source.engine = None
