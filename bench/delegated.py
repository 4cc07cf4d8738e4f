"""What delegated Microsoft 365 access costs a Graph-backed read.

Question: how much slower is `calendars.remote_events` when each call looks up, decrypts (and
now and then refreshes) the caller's own token than with one static `AA_GRAPH_TOKEN`?
Baseline: the same service call, same SQLite file, same fake Graph server, static token.
Rounds alternate between the two so machine noise lands on both.

    .venv/bin/python bench/delegated.py [--calls 300 --rounds 5 --events 50]

Writes bench/results/delegated.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))

from bench._common import RunInfo, write_results  # noqa: E402
from shared import bridge  # noqa: E402
from shared.auth import Actor  # noqa: E402
from shared.config import load_settings  # noqa: E402
from shared.inputs.calendars import parse_calendar  # noqa: E402
from shared.migrate import upgrade  # noqa: E402
from shared.runtime import Runtime  # noqa: E402
from tests.conftest import make_environ  # noqa: E402
from tests.fakes.graph_server import SEED_FIRST_START, FakeGraphServer  # noqa: E402
from tests.fakes.identity import FakeIdentity, consent, m365_environ  # noqa: E402

ALICE = "alice@contoso.com"
REDIRECT = "http://127.0.0.1:9/login/microsoft/callback"
RESULTS = ROOT / "bench" / "results" / "delegated.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    run = RunInfo(args)
    identity = FakeIdentity(redirect_uris={REDIRECT})
    identity.add_account(ALICE)
    with FakeGraphServer(identity=identity) as graph, tempfile.TemporaryDirectory() as tmp:
        graph.seed_events("alice-cal", args.events, mailbox=ALICE)
        base = make_environ(Path(tmp))
        static = Runtime(
            load_settings(
                {
                    **base,
                    "AA_CALENDAR_PROVIDER": "graph",
                    "AA_GRAPH_URL": graph.url,
                    "AA_GRAPH_TOKEN": "static-application-token",
                }
            )
        )
        delegated = Runtime(load_settings({**base, **m365_environ(graph.url, graph.url, REDIRECT)}))
        try:
            bridge.run(upgrade(static.db.engine))
            actor, calendar_id = bridge.run(_arrange(delegated))
            window = (SEED_FIRST_START, datetime(2027, 1, 1, tzinfo=UTC))
            samples: dict[str, list[float]] = {"static": [], "delegated": []}
            for _ in range(args.rounds):
                for name, runtime in (("static", static), ("delegated", delegated)):
                    samples[name].extend(
                        bridge.run(_time_calls(runtime, actor, calendar_id, window, args.calls))
                    )
            refreshes = len(identity.grants("refresh_token"))
        finally:
            bridge.run(static.aclose())
            bridge.run(delegated.aclose())
    report = {"meta": run.meta(), **_report(samples, args, refreshes)}
    write_results(args.output, report)
    print(json.dumps(report, indent=2))


async def _arrange(runtime: Runtime) -> tuple[Actor, int]:
    service = runtime.services.microsoft
    assert service is not None
    request = await service.begin_sign_in()
    answer = await asyncio.to_thread(consent, request.url, ALICE)
    signed_in = await service.complete_sign_in(answer["code"], request.code_verifier)
    assert signed_in is not None
    calendar = await runtime.services.calendars.create(
        signed_in.actor,
        parse_calendar(
            {"name": "S", "role": "source", "provider": "graph", "provider_id": "alice-cal"}
        ),
    )
    return signed_in.actor, int(calendar["id"])


async def _time_calls(
    runtime: Runtime, actor: Actor, calendar_id: int, window: tuple[datetime, datetime], calls: int
) -> list[float]:
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        await runtime.services.calendars.remote_events(actor, calendar_id, *window, UTC)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _report(samples: dict[str, list[float]], args: Any, refreshes: int) -> dict[str, Any]:
    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "p50_ms": round(statistics.median(ordered), 3),
            "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 3),
        }

    static, delegated = summary(samples["static"]), summary(samples["delegated"])
    return {
        "calls_per_round": args.calls,
        "rounds": args.rounds,
        "events": args.events,
        "static": static,
        "delegated": delegated,
        "p50_ratio": round(delegated["p50_ms"] / static["p50_ms"], 3),
        "refreshes": refreshes,
    }


if __name__ == "__main__":
    main()
