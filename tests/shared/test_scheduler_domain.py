"""Scheduled runs of replace-mode and timesheet configurations, and their action items."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.config import load_settings
from shared.inputs.appointments import parse_appointment
from shared.inputs.archive import parse_action_item_query
from shared.pagination import PageRequest
from shared.runtime import Runtime
from tests.shared.test_jobs import make_actor, make_config, make_job, runs_of
from tests.shared.test_scheduler import scheduler, until


@pytest.fixture
async def domain(environ: dict[str, str]) -> AsyncIterator[Runtime]:
    runtime = Runtime(load_settings(environ))
    yield runtime
    await runtime.aclose()


async def test_a_job_runs_a_replace_timesheet_configuration_and_leaves_decisions_open(
    domain: Runtime,
) -> None:
    alice = await make_actor(domain, "alice@example.com")
    config_id = await make_config(
        domain, alice, mode="replace", purpose="timesheet", days_back=1, timezone="UTC"
    )
    config = await domain.services.archive.get_config(alice, config_id)
    yesterday = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(
        days=1
    )
    for subject, offset_min in (("Client A", 0), ("Client B", 30)):
        start = yesterday + timedelta(minutes=offset_min)
        body = {
            "calendar_id": config["source_calendar_id"],
            "subject": subject,
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
            "categories": ["Billable"],
        }
        await domain.services.appointments.create(alice, parse_appointment(body))
    job = await make_job(domain, alice, config_id, schedule="every 1s")
    jobs = scheduler(domain)
    await jobs.start()
    try:

        async def succeeded() -> list[Any]:
            return [r for r in await runs_of(domain, job["id"]) if r.status == "succeeded"]

        async def two() -> list[Any] | None:
            done = await succeeded()
            return done if len(done) >= 2 else None

        await until("two runs", two)
    finally:
        await jobs.stop()
    log = (await domain.services.archive.action_log(alice, config_id, PageRequest())).items
    assert {e["mode"] for e in log} == {"replace"}
    assert all(
        e["details"]["held"] == sorted(e["details"]["held"]) and len(e["details"]["held"]) == 2
        for e in log
    )
    items = await domain.services.action_items.list(alice, parse_action_item_query({}))
    assert items.total == 1 and items.items[0]["state"] == "open"
    history = await domain.services.jobs.history(alice, job["id"], PageRequest())
    assert history.items[0]["counts"]["held"] == 2
