"""Soak: mixed traffic on both backends of a two-worker gateway while a flag flips every second.

The old failure mode (a loop per call, pools bound to dead loops) showed up only under
concurrency and over time, as 500s and "Event loop is closed" in the logs: this runs long
enough, on enough threads, through every kind of legacy view (sync views on the bridge, an
`async def` view, pages) and the async twin, to bring it back if it ever returns. It runs
on SQLite and on PostgreSQL: asyncpg connections belong to the loop that opened them, so a
second loop anywhere turns into 500s at once there, while aiosqlite mostly tolerates it.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.asgi_gateway.conftest import DEFAULT_FLAGS
from tests.asgi_gateway.test_live_flips import pg_person
from tests.conftest import Person, ServerProcess

SOAK_S = 20.0
TRAFFIC_THREADS = 6
MAX_REQUESTS_PER_THREAD = 20_000
FLIP_EVERY_S = 1.0
FLIP_MODES = (("async", None), ("canary", 50), ("legacy", None))
BAD_LOG_LINES = (
    "Event loop is closed",
    "different event loop",
    "attached to a different loop",
    "Traceback",
)

Call = Callable[[httpx.Client], httpx.Response]


@dataclass
class Tally:
    """What the traffic threads saw; appended to from several threads (list.append is atomic)."""

    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    served_by: dict[str, int] = field(default_factory=lambda: {"legacy": 0, "async": 0})
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, name: str, response: httpx.Response) -> None:
        with self.lock:
            by_status = self.statuses.setdefault(name, {})
            by_status[response.status_code] = by_status.get(response.status_code, 0) + 1
            backend = response.headers.get("x-served-by")
            if backend in self.served_by:
                self.served_by[backend] += 1
        if response.status_code >= 500 or backend not in ("legacy", "async"):
            self.failures.append(
                f"{name}: {response.status_code} {backend} {response.text[:300]!r}"
            )


def arrange(client: httpx.Client) -> dict[str, int]:
    """Two calendars, a few appointments and an archive configuration, through the API."""
    ids: dict[str, int] = {}
    for role in ("source", "archive"):
        response = client.post("/api/calendars", json={"name": f"soak {role}", "role": role})
        assert response.status_code == 201, response.text
        ids[role] = response.json()["id"]
    for hour in range(3):
        response = client.post("/api/appointments", json=appointment(ids["source"], hour))
        assert response.status_code == 201, response.text
        ids["appointment"] = response.json()["id"]
    response = client.post(
        "/api/archive-configs",
        json={
            "name": "soak",
            "source_calendar_id": ids["source"],
            "archive_calendar_id": ids["archive"],
        },
    )
    assert response.status_code == 201, response.text
    ids["config"] = response.json()["id"]
    return ids


def appointment(calendar_id: int, n: int) -> dict[str, object]:
    day, hour = divmod(n % 2000, 20)
    return {
        "calendar_id": calendar_id,
        "subject": f"soak {n}",
        "start": f"2024-03-{1 + day % 28:02d}T{hour:02d}:00:00Z",
        "end": f"2024-03-{1 + day % 28:02d}T{hour:02d}:30:00Z",
    }


def traffic(ids: dict[str, int]) -> list[tuple[str, int, Call]]:
    """(name, weight, call) of each kind of request in the mix."""
    source, counter = ids["source"], itertools.count(100)
    window = "start=2024-03-01&end=2024-03-31&tz=Europe/Berlin"
    return [
        (
            "async twin: appointments.list",
            6,
            lambda c: c.get(f"/api/appointments?calendar_id={source}&{window}"),
        ),
        ("calendars.list", 3, lambda c: c.get("/api/calendars")),
        ("appointments.get", 3, lambda c: c.get(f"/api/appointments/{ids['appointment']}")),
        (
            "appointments.create",
            2,
            lambda c: c.post("/api/appointments", json=appointment(source, next(counter))),
        ),
        ("archive_configs.list", 2, lambda c: c.get("/api/archive-configs")),
        ("archive_configs.get", 1, lambda c: c.get(f"/api/archive-configs/{ids['config']}")),
        ("auth.me (async def view)", 3, lambda c: c.get("/api/me")),
        (
            "calendars.remote_events (async def view)",
            1,
            lambda c: c.get(
                f"/api/calendars/{source}/remote-events?start=2024-03-01&end=2024-03-08"
            ),
        ),
        ("page /", 1, lambda c: c.get("/")),
        ("page /appointments", 1, lambda c: c.get(f"/appointments?calendar_id={source}&{window}")),
        ("page /archive-configs", 1, lambda c: c.get("/archive-configs")),
        ("healthz", 1, lambda c: c.get("/healthz")),
    ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> tuple[dict[str, str], Person, Person]:
    """(environ, admin, alice) on SQLite, or on PostgreSQL, whose asyncpg connections are
    bound to the loop that opened them: any use from another loop fails loudly there.
    """
    if request.param == "sqlite":
        environ = request.getfixturevalue("environ")
        admin = request.getfixturevalue("admin")
        alice = request.getfixturevalue("alice")
    else:
        environ = request.getfixturevalue("pg_environ")
        admin = pg_person(environ, "admin@example.com", is_admin=True)
        alice = pg_person(environ, "alice@example.com")
    Path(environ["AA_FLAGS_FILE"]).write_text(DEFAULT_FLAGS)
    return environ, admin, alice


@pytest.mark.slow
def test_mixed_traffic_under_flips_gives_no_5xx_and_no_loop_errors(
    database: tuple[dict[str, str], Person, Person],
    spawn: Callable[..., ServerProcess],
) -> None:
    environ, admin, alice = database
    server = spawn(environ, workers=2)
    with server.client(headers=alice.headers) as client:
        ids = arrange(client)
    mix = traffic(ids)
    names = [name for name, _, _ in mix]
    weights = [weight for _, weight, _ in mix]
    calls = {name: call for name, _, call in mix}
    tally = Tally()
    flips: list[str] = []
    stop = threading.Event()
    started = time.monotonic()
    ends_at = started + SOAK_S

    def drive(seed: int) -> None:
        rng = random.Random(seed)
        # Keep-alive clients, and every few requests a new one: both reuse and fresh
        # connections (landing on either worker) are part of real traffic.
        client = server.client(headers=alice.headers)
        try:
            for n in range(MAX_REQUESTS_PER_THREAD):
                if stop.is_set() or time.monotonic() > ends_at:
                    return
                if n % 25 == 24:
                    client.close()
                    client = server.client(headers=alice.headers)
                name = rng.choices(names, weights)[0]
                try:
                    tally.note(name, calls[name](client))
                except httpx.HTTPError as exc:
                    tally.failures.append(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            client.close()

    def flip() -> None:
        with server.client(headers=admin.headers) as client:
            for n, (mode, percent) in enumerate(
                itertools.islice(itertools.cycle(FLIP_MODES), int(SOAK_S / FLIP_EVERY_S))
            ):
                # On a fixed schedule (a slow flip does not push the next ones back);
                # Event.wait paces them and ends them as soon as the soak is over.
                if stop.wait(max(0.0, started + (n + 1) * FLIP_EVERY_S - time.monotonic())):
                    return
                if time.monotonic() > ends_at:
                    return
                body: dict[str, object] = {"mode": mode, "reason": f"soak flip to {mode}"}
                if percent is not None:
                    body["percent"] = percent
                try:
                    response = client.patch("/_rollout/api/flags/appointments.list", json=body)
                except httpx.HTTPError as exc:
                    tally.failures.append(f"flip to {mode}: {type(exc).__name__}: {exc}")
                    continue
                if response.status_code != 200:
                    tally.failures.append(
                        f"flip to {mode}: {response.status_code} {response.text[:300]!r}"
                    )
                flips.append(mode)

    threads = [
        threading.Thread(target=drive, args=(seed,), name=f"soak-{seed}")
        for seed in range(TRAFFIC_THREADS)
    ]
    threads.append(threading.Thread(target=flip, name="soak-flipper"))
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join(SOAK_S + 60)
    finally:
        stop.set()
    assert not any(thread.is_alive() for thread in threads), "a soak thread hung"

    assert tally.failures == [], "\n".join(tally.failures[:20])
    total = sum(sum(by_status.values()) for by_status in tally.statuses.values())
    assert total > 500, f"only {total} requests in {SOAK_S} s: {tally.statuses}"
    assert len(flips) >= SOAK_S / FLIP_EVERY_S - 2, flips
    # Both backends answered, and every kind of request was made and succeeded.
    assert tally.served_by["async"] > 50 and tally.served_by["legacy"] > 50, tally.served_by
    unexpected = {
        name: by_status for name, by_status in tally.statuses.items() if set(by_status) - {200, 201}
    }
    assert unexpected == {}, unexpected
    assert set(tally.statuses) == set(names), set(names) - set(tally.statuses)
    # Healthy twins under flips and mixed traffic: the guard never flipped anything.
    with server.client(headers=admin.headers) as client:
        rollbacks = client.get("/_rollout/api/audit", params={"actor": "guard"})
    assert rollbacks.status_code == 200, rollbacks.text
    assert rollbacks.json()["data"] == [], rollbacks.json()["data"]

    assert server.stop() == 0, server.logs()[-3000:]
    log = server.logs()
    bad = [line for line in log.splitlines() if any(text in line for text in BAD_LOG_LINES)]
    assert bad == [], "\n".join(bad[:20]) + "\n...\n" + log[-3000:]
