"""GraphProvider against a real HTTP fake of the Graph calendar API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socketserver
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from shared.errors import ProviderError, ProviderTimeout, RemoteCalendarNotFound
from shared.providers import CalendarRef, GraphProvider, ProviderEvent
from tests.fakes.graph_server import DEFAULT_MAILBOX, FakeGraphServer

CAL = CalendarRef(id=1, provider_id="cal-1", mailbox=DEFAULT_MAILBOX)
JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN = "s3cret-graph-token"


@pytest.fixture
def graph() -> Iterator[FakeGraphServer]:
    with FakeGraphServer(base_path="/v1.0") as server:
        server.add_calendar("cal-1")
        yield server


@pytest.fixture
async def provider(graph: FakeGraphServer) -> AsyncIterator[GraphProvider]:
    graph_provider = GraphProvider(graph.url, token=TOKEN, timeout_s=2.0)
    yield graph_provider
    await graph_provider.aclose()


def make_provider(graph: FakeGraphServer, **options: object) -> GraphProvider:
    return GraphProvider(graph.url, **options)  # type: ignore[arg-type]


# -- reading -------------------------------------------------------------------------------


async def test_list_events_follows_next_link_across_pages(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    graph.seed_events("cal-1", 250, first_start=JAN_1)

    events = await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=30))

    assert len(events) == 250
    assert [e.subject for e in events] == [f"Seeded event {i}" for i in range(250)]
    assert graph.request_count == 3  # pages of 100, 100 and 50
    assert all(parse_qs(r.query)["$top"] == ["100"] for r in graph.requests)


async def test_list_events_returns_only_events_overlapping_the_window_sorted_by_start(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    nine = JAN_1.replace(hour=9)
    graph.add_event(
        "cal-1", id="late", start=nine + timedelta(hours=2), end=nine + timedelta(hours=3)
    )
    graph.add_event("cal-1", id="before", start=nine - timedelta(hours=1), end=nine)
    graph.add_event(
        "cal-1", id="early", start=nine - timedelta(minutes=30), end=nine + timedelta(minutes=30)
    )
    graph.add_event(
        "cal-1", id="after", start=nine + timedelta(hours=4), end=nine + timedelta(hours=5)
    )

    events = await provider.list_events(CAL, nine, nine + timedelta(hours=4))

    assert [e.event_id for e in events] == ["early", "late"]


async def test_list_events_maps_graph_fields(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    graph.add_event(
        "cal-1",
        id="AAMk=/+x",
        subject="Budget review",
        start="2026-01-05T09:00:00.0000000",
        end="2026-01-05T10:30:00.0000000",
        location="Room 4",
        categories=["Finance", "Blue category"],
    )

    [event] = await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=7))

    assert event == ProviderEvent(
        event_id="AAMk=/+x",
        subject="Budget review",
        start=datetime(2026, 1, 5, 9, tzinfo=UTC),
        end=datetime(2026, 1, 5, 10, 30, tzinfo=UTC),
        location="Room 4",
        categories=("Finance", "Blue category"),
        is_private=False,
    )


@pytest.mark.parametrize(
    ("time_zone", "wall_time", "utc_time"),
    [
        ("UTC", "2026-01-15T09:00:00.0000000", datetime(2026, 1, 15, 9, tzinfo=UTC)),
        ("Europe/Berlin", "2026-01-15T09:00:00.0000000", datetime(2026, 1, 15, 8, tzinfo=UTC)),
        ("America/New_York", "2026-07-15T09:00:00.0000000", datetime(2026, 7, 15, 13, tzinfo=UTC)),
    ],
)
async def test_list_events_reads_graph_time_zones_as_aware_utc(
    graph: FakeGraphServer,
    provider: GraphProvider,
    time_zone: str,
    wall_time: str,
    utc_time: datetime,
) -> None:
    graph.add_event("cal-1", start=wall_time, end=wall_time, time_zone=time_zone)

    [event] = await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=365))

    assert event.start == utc_time
    assert event.start.utcoffset() == timedelta(0)


@pytest.mark.parametrize("zone", ["Pacific Standard Time", "Europe"])
async def test_list_events_rejects_a_time_zone_it_cannot_read(
    graph: FakeGraphServer, provider: GraphProvider, zone: str
) -> None:
    graph.add_event(
        "cal-1",
        id="e1",
        start="2026-01-02T09:00:00",
        end="2026-01-02T10:00:00",
        time_zone=zone,
    )

    with pytest.raises(ProviderError, match=rf"event 'e1' has start.timeZone '{zone}'"):
        await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=7))


@pytest.mark.parametrize(
    ("sensitivity", "is_private"),
    [("normal", False), ("personal", False), ("private", True), ("confidential", True)],
)
async def test_private_and_confidential_events_are_private(
    graph: FakeGraphServer, provider: GraphProvider, sensitivity: str, is_private: bool
) -> None:
    graph.add_event("cal-1", start=JAN_1, end=JAN_1 + timedelta(hours=1), sensitivity=sensitivity)

    [event] = await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))

    assert event.is_private is is_private


async def test_concurrent_reads_overlap_instead_of_queueing(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    graph.latency_ms = 200
    began = time.monotonic()

    await asyncio.gather(
        *(provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1)) for _ in range(10))
    )

    assert time.monotonic() - began < 1.0  # ten sequential reads would take 2 s


async def test_sequential_requests_reuse_one_pooled_connection(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    for _ in range(3):
        await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))

    assert len({r.client_port for r in graph.requests}) == 1


async def test_bearer_token_is_sent_and_never_appears_in_error_messages(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    echo = {"error": {"code": "InvalidAuthenticationToken", "message": f"bad token {TOKEN}"}}
    graph.fail_next(401, body=json.dumps(echo))

    with pytest.raises(ProviderError, match="answered 401: InvalidAuthenticationToken") as caught:
        await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))

    assert graph.requests[0].authorization == f"Bearer {TOKEN}"
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(provider)


async def test_naive_window_is_rejected(provider: GraphProvider) -> None:
    with pytest.raises(ValueError, match=r"start='2026-01-01T00:00:00' must be timezone-aware"):
        await provider.list_events(CAL, datetime(2026, 1, 1), JAN_1 + timedelta(days=1))


# -- failures ------------------------------------------------------------------------------


async def test_429_is_retried_after_the_retry_after_delay(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    graph.add_event("cal-1", start=JAN_1, end=JAN_1 + timedelta(hours=1))
    graph.fail_next(429, retry_after=1)

    events = await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))

    assert len(events) == 1
    first, second = graph.requests
    assert second.at_s - first.at_s >= 0.95


async def test_retry_after_is_capped_by_max_retry_after_s(graph: FakeGraphServer) -> None:
    graph.fail_next(429, retry_after=3600)

    async with contextlib.aclosing(make_provider(graph, max_retry_after_s=0.1)) as capped:
        # Fail fast rather than sleep an hour if the cap is ignored.
        async with asyncio.timeout(5):
            await capped.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))

    first, second = graph.requests
    assert second.at_s - first.at_s < 1.0


async def test_503_without_retry_after_backs_off_exponentially(graph: FakeGraphServer) -> None:
    graph.fail_next(503, count=2)

    async with contextlib.aclosing(make_provider(graph)) as backing_off:
        await backing_off.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))

    first, second, third = (r.at_s for r in graph.requests)
    assert second - first >= 0.04
    assert third - second >= 0.09


async def test_503_beyond_max_retries_raises_provider_error_naming_the_status(
    graph: FakeGraphServer,
) -> None:
    graph.fail_next(503, count=5, retry_after=0)

    async with contextlib.aclosing(make_provider(graph, max_retries=2)) as impatient:
        with pytest.raises(ProviderError, match="answered 503 after 3 attempts") as caught:
            await impatient.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))

    assert graph.request_count == 3
    assert caught.value.status == 503


async def test_other_4xx_is_not_retried(graph: FakeGraphServer, provider: GraphProvider) -> None:
    graph.fail_next(400)

    with pytest.raises(ProviderError, match="answered 400: InjectedFailure: injected 400"):
        await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))

    assert graph.request_count == 1


async def test_unknown_calendar_raises_provider_error_with_the_remote_message(
    provider: GraphProvider,
) -> None:
    missing = CalendarRef(id=9, provider_id="no-such-cal", mailbox=DEFAULT_MAILBOX)

    with pytest.raises(
        ProviderError,
        match=r"calendars/no-such-cal/calendarView answered 404: ErrorItemNotFound: .*not found",
    ):
        await provider.list_events(missing, JAN_1, JAN_1 + timedelta(days=1))


async def test_hung_server_raises_provider_timeout(graph: FakeGraphServer) -> None:
    graph.hang_next()

    async with contextlib.aclosing(make_provider(graph, timeout_s=0.2)) as hasty:
        with pytest.raises(ProviderTimeout, match=r"did not answer within 0.2s") as caught:
            await hasty.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))

    assert caught.value.status == 504


async def test_refused_connection_raises_provider_error() -> None:
    with FakeGraphServer() as stopped:
        url = stopped.url

    async with contextlib.aclosing(GraphProvider(url)) as unreachable:
        with pytest.raises(ProviderError, match="calendarView failed: ClientConnectorError"):
            await unreachable.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))


async def test_malformed_json_raises_provider_error(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    graph.fail_next(200, body="{not json")

    with pytest.raises(ProviderError, match="answered 200 with a body that is not JSON"):
        await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))


async def test_next_link_to_another_host_is_refused(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    page = {"value": [], "@odata.nextLink": "https://elsewhere.example/steal?$skip=1"}
    graph.fail_next(200, body=json.dumps(page))

    with pytest.raises(
        ProviderError, match=r"refusing @odata\.nextLink 'https://elsewhere\.example"
    ):
        await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))

    assert graph.request_count == 1


async def test_calendar_without_provider_id_raises_before_any_request(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    with pytest.raises(ProviderError, match="calendar 7 has no provider_id"):
        await provider.list_events(
            CalendarRef(id=7, provider_id=None, mailbox=DEFAULT_MAILBOX), JAN_1, JAN_1
        )

    assert graph.request_count == 0


# -- writing -------------------------------------------------------------------------------


async def test_create_event_round_trips(graph: FakeGraphServer, provider: GraphProvider) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    event = ProviderEvent(
        event_id="ignored-by-graph",
        subject="Archived: standup",
        start=datetime(2026, 3, 2, 9, 0, tzinfo=berlin),
        end=datetime(2026, 3, 2, 9, 15, tzinfo=berlin),
        location="Room 1",
        categories=("Archived",),
        is_private=True,
    )

    new_id = await provider.create_event(CAL, event)
    [stored] = graph.events("cal-1")
    [read_back] = await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=90))

    assert stored["id"] == new_id
    assert stored["start"] == {"dateTime": "2026-03-02T08:00:00.0000000", "timeZone": "UTC"}
    assert stored["sensitivity"] == "private"
    assert read_back == ProviderEvent(
        event_id=new_id,
        subject=event.subject,
        start=event.start,
        end=event.end,
        location=event.location,
        categories=event.categories,
        is_private=True,
    )


async def test_create_event_in_unknown_calendar_raises_provider_error(
    provider: GraphProvider,
) -> None:
    event = ProviderEvent("x", "s", JAN_1, JAN_1 + timedelta(hours=1))

    with pytest.raises(ProviderError, match=r"POST .*/calendars/gone/events answered 404"):
        await provider.create_event(
            CalendarRef(id=3, provider_id="gone", mailbox=DEFAULT_MAILBOX), event
        )


# -- lifecycle -----------------------------------------------------------------------------


async def test_aclose_makes_later_calls_fail_clearly(provider: GraphProvider) -> None:
    await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))
    await provider.aclose()
    await provider.aclose()  # idempotent

    with pytest.raises(ProviderError, match="graph provider is closed"):
        await provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))


async def test_aclose_leaves_a_passed_in_client_open(graph: FakeGraphServer) -> None:
    async with aiohttp.ClientSession() as client:
        shared_client_provider = make_provider(graph, client=client)
        await shared_client_provider.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))
        await shared_client_provider.aclose()

        assert not client.closed
        async with client.get(f"{graph.url}/calendars/cal-1/calendarView") as response:
            assert response.status == 400  # the client still works; the window was missing


# -- proxies -------------------------------------------------------------------------------


class RecordingProxy:
    """A TCP listener standing in for an HTTP proxy: records each request line, answers 502."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        lines = self.lines

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                lines.append(self.rfile.readline().decode().strip())
                while self.rfile.readline() not in (b"\r\n", b""):
                    pass
                self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")

        return Handler

    def __enter__(self) -> RecordingProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


async def test_http_proxy_from_the_environment_is_used(
    graph: FakeGraphServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RecordingProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with contextlib.aclosing(make_provider(graph, max_retries=0)) as proxied:
            with pytest.raises(ProviderError, match="answered 502"):
                await proxied.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))

    assert len(proxy.lines) == 1
    calendar_view = f"{graph.url}/users/{DEFAULT_MAILBOX}/calendars/cal-1/calendarView?"
    assert proxy.lines[0].startswith(f"GET {calendar_view}")
    assert graph.request_count == 0


async def test_no_proxy_exempts_the_graph_host(
    graph: FakeGraphServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RecordingProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with contextlib.aclosing(make_provider(graph)) as direct:
            await direct.list_events(CAL, JAN_1, JAN_1 + timedelta(days=1))

    assert proxy.lines == []
    assert graph.request_count == 1


# -- mailboxes -------------------------------------------------------------------------------


async def test_a_calendar_is_only_reached_in_its_own_mailbox(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    graph.add_calendar("bob-cal", mailbox="bob@example.com")
    graph.add_event("bob-cal", start=JAN_1, end=JAN_1 + timedelta(hours=1), subject="Bob's")
    as_alice = CalendarRef(id=4, provider_id="bob-cal", mailbox="alice@example.com")
    as_bob = CalendarRef(id=4, provider_id="bob-cal", mailbox="bob@example.com")
    event = ProviderEvent("x", "Planted", JAN_1, JAN_1 + timedelta(hours=1))

    assert await provider.has_calendar(as_bob)
    assert not await provider.has_calendar(as_alice)
    with pytest.raises(RemoteCalendarNotFound, match=r"not in mailbox alice@example\.com") as read:
        await provider.list_events(as_alice, JAN_1, JAN_1 + timedelta(days=1))
    with pytest.raises(RemoteCalendarNotFound, match=r"not in mailbox alice@example\.com"):
        await provider.create_event(as_alice, event)

    assert read.value.status == 403
    assert [e["subject"] for e in graph.events("bob-cal")] == ["Bob's"]
    assert {r.path for r in graph.requests if "alice" in r.path} == {
        "/v1.0/users/alice@example.com/calendars/bob-cal",
        "/v1.0/users/alice@example.com/calendars/bob-cal/calendarView",
        "/v1.0/users/alice@example.com/calendars/bob-cal/events",
    }


async def test_an_id_with_slashes_and_plus_signs_stays_one_path_segment(
    graph: FakeGraphServer, provider: GraphProvider
) -> None:
    odd = "AAMk/ab+cd=="
    graph.add_calendar(odd)
    graph.add_event(odd, start=JAN_1, end=JAN_1 + timedelta(hours=1), subject="found")

    events = await provider.list_events(
        CalendarRef(id=2, provider_id=odd, mailbox=DEFAULT_MAILBOX), JAN_1, JAN_1 + timedelta(1)
    )

    assert [e.subject for e in events] == ["found"]


@pytest.mark.parametrize(
    ("provider_id", "mailbox"),
    [
        ("..", DEFAULT_MAILBOX),
        ("../../users/bob@example.com/calendars/bob-cal", DEFAULT_MAILBOX),
        ("%2e%2e", DEFAULT_MAILBOX),
        ("cal-1?$select=x", DEFAULT_MAILBOX),
        ("cal-1#x", DEFAULT_MAILBOX),
        ("cal 1", DEFAULT_MAILBOX),
        ("cal-1", ".."),
        ("cal-1", "bob@example.com/calendars/bob-cal#"),
        ("cal-1", None),
    ],
)
async def test_ids_that_could_change_the_remote_path_never_leave_the_process(
    graph: FakeGraphServer, provider: GraphProvider, provider_id: str, mailbox: str | None
) -> None:
    ref = CalendarRef(id=5, provider_id=provider_id, mailbox=mailbox)

    with pytest.raises(ProviderError, match="calendar 5"):
        await provider.list_events(ref, JAN_1, JAN_1 + timedelta(days=1))
    with pytest.raises(ProviderError, match="calendar 5"):
        await provider.has_calendar(ref)

    assert graph.request_count == 0
