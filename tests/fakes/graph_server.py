"""A real HTTP fake of the Graph calendar API (calendars, calendarView, events) for tests.

Calendars live in mailboxes, as in Graph: ``/users/{mailbox}/calendars/{id}`` (GET the
calendar), ``.../calendarView`` and ``.../events`` answer 404 for a calendar of another
mailbox. The older unscoped ``/calendars/{id}/...`` routes stay as aliases for benchmarks.

In tests: ``with FakeGraphServer() as graph: GraphProvider(graph.url)``. As a process:
``python -m tests.fakes.graph_server --port 8081 --latency-ms 20 --events 500`` seeds calendar
``cal-1`` (of ``--mailbox``) and prints the base URL on its first line of stdout. With
``--account EMAIL --redirect-uri URL`` it is a Microsoft tenant too (``tests.fakes.identity``):
discovery, authorize, token and ``/me``, and each delegated token reaches its own mailbox only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import copy
import itertools
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.fakes.identity import FakeIdentity

_STARTUP_TIMEOUT_S = 10.0
_SHUTDOWN_TIMEOUT_S = 10.0
# A hung request is released when the server stops; this only bounds a forgotten one.
_HANG_LIMIT_S = 60.0
_DEFAULT_TOP = 10  # Graph's own default page size for calendarView
_MAX_TOP = 1000
SEED_FIRST_START = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
# The mailbox of calendars added without naming one.
DEFAULT_MAILBOX = "me@example.com"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it (before any injected failure or latency)."""

    method: str
    path: str
    query: str
    authorization: str | None
    client_port: int | None  # tells requests on one kept-alive connection apart from others
    at_s: float  # time.monotonic() on arrival


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    retry_after: str | None
    body: str | None


@dataclass(frozen=True, slots=True)
class _StoredEvent:
    graph: dict[str, Any]
    start: datetime
    end: datetime


class FakeGraphServer:
    """A Graph calendar API on 127.0.0.1 in a background thread, with latency and failure knobs."""

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        base_path: str = "",
        default_mailbox: str = DEFAULT_MAILBOX,
        identity: FakeIdentity | None = None,
    ) -> None:
        self.latency_ms = latency_ms
        # With an identity platform, its tokens are checked: an expired one gets 401, and
        # one of another account than the mailbox in the path gets 403 (as delegated access).
        self.identity = identity
        self.base_path = base_path.rstrip("/")
        self.default_mailbox = default_mailbox.lower()
        self._lock = threading.Lock()
        self._calendars: dict[str, list[_StoredEvent]] = {}
        self._owners: dict[str, str] = {}  # calendar id -> mailbox
        self._names: dict[str, tuple[str, bool]] = {}  # calendar id -> (name, can edit)
        self._failures: collections.deque[_Failure] = collections.deque()
        self._hangs = 0
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None
        user = f"{self.base_path}/users/{{mailbox}}/calendars/{{calendar_id:path}}"
        routes = [
            Route(
                f"{self.base_path}/users/{{mailbox}}/calendars",
                self._list_calendars,
                methods=["GET"],
            ),
            Route(f"{user}/calendarView", self._calendar_view, methods=["GET"]),
            Route(f"{user}/events", self._create_event, methods=["POST"]),
            Route(
                f"{user}/events/{{event_id}}",
                self._change_event,
                methods=["PATCH", "DELETE"],
            ),
            Route(user, self._get_calendar, methods=["GET"]),
            Route(
                f"{self.base_path}/calendars/{{calendar_id:path}}/calendarView",
                self._calendar_view,
                methods=["GET"],
            ),
            Route(
                f"{self.base_path}/calendars/{{calendar_id:path}}/events",
                self._create_event,
                methods=["POST"],
            ),
        ]
        if identity is not None:
            routes.append(Route(f"{self.base_path}/me", self._me, methods=["GET"]))
            routes.extend(identity.routes(lambda: self.origin))
        self._app = Starlette(routes=routes, lifespan=self._lifespan)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL to give GraphProvider (no trailing slash)."""
        if self._socket is None:
            raise RuntimeError("FakeGraphServer is not started; use it as a context manager")
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}{self.base_path}"

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:port`: the identity platform's authority (no base path)."""
        return self.url[: len(self.url) - len(self.base_path)]

    def start(self) -> FakeGraphServer:
        """Serve on a free port of 127.0.0.1 in a daemon thread; return once it accepts requests."""
        if self._thread is not None:
            raise RuntimeError("FakeGraphServer is already started")
        self._socket = _listen("127.0.0.1", 0)
        self._server = self._make_server()
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            daemon=True,
            name="fake-graph-server",
        )
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive():
                self.stop()
                raise RuntimeError("fake Graph server thread exited during start-up")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fake Graph server did not start within {_STARTUP_TIMEOUT_S}s")
            self._thread.join(timeout=0.005)  # returns early if the thread dies
        return self

    def stop(self) -> None:
        """Release hung requests, shut uvicorn down and close the socket; safe to call twice."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None and thread is not None:
            self._release_hung()
            server.should_exit = True
            thread.join(timeout=_SHUTDOWN_TIMEOUT_S)
            if thread.is_alive():
                raise RuntimeError(f"fake Graph server did not stop within {_SHUTDOWN_TIMEOUT_S}s")
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> FakeGraphServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def serve_forever(self, host: str, port: int) -> None:
        """Serve in the calling thread until SIGINT/SIGTERM (the command-line mode)."""
        self._socket = _listen(host, port)
        print(f"fake Graph API listening on {self.url}", flush=True)
        try:
            self._make_server().run(sockets=[self._socket])
        finally:
            self._socket.close()

    def _make_server(self) -> uvicorn.Server:
        # log_config=None: leave the test process's logging configuration alone.
        config = uvicorn.Config(
            self,
            log_config=None,
            access_log=False,
            lifespan="on",
            loop="asyncio",
            http="h11",
        )
        return uvicorn.Server(config)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # The release event must belong to the server's own loop.
        self._loop = asyncio.get_running_loop()
        self._release = asyncio.Event()
        yield

    def _release_hung(self) -> None:
        loop, release = self._loop, self._release
        if loop is not None and release is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(release.set)

    # -- test knobs ------------------------------------------------------------------------

    def add_calendar(
        self,
        calendar_id: str,
        mailbox: str | None = None,
        *,
        name: str | None = None,
        can_edit: bool = True,
    ) -> None:
        """Create an empty calendar in `mailbox` (default: the server's default mailbox).

        Calendars also appear, in the default mailbox, when an event is added to them. Its
        `name` (default `Calendar <id>`) is what GET /users/{mailbox}/calendars lists.
        """
        with self._lock:
            self._calendars.setdefault(calendar_id, [])
            self._owners.setdefault(calendar_id, (mailbox or self.default_mailbox).lower())
            self._names[calendar_id] = (name or f"Calendar {calendar_id}", can_edit)

    def mailbox_of(self, calendar_id: str) -> str | None:
        """The mailbox holding `calendar_id`, or None when there is no such calendar."""
        with self._lock:
            return self._owners.get(calendar_id)

    def add_event(
        self,
        calendar_id: str,
        *,
        start: datetime | str,
        end: datetime | str,
        subject: str = "",
        id: str | None = None,
        location: str = "",
        categories: Sequence[str] = (),
        sensitivity: str = "normal",
        time_zone: str = "UTC",
        show_as: str = "busy",
        importance: str = "normal",
        is_all_day: bool = False,
        series_master_id: str | None = None,
    ) -> dict[str, Any]:
        """Store an event; datetimes are written as wall time in `time_zone`. Returns its JSON.

        With `series_master_id` it is an occurrence of that series, as calendarView lists them.
        """
        graph = {
            "id": id or f"evt-{next(self._ids)}",
            "subject": subject,
            "start": {"dateTime": _wall_time(start, time_zone), "timeZone": time_zone},
            "end": {"dateTime": _wall_time(end, time_zone), "timeZone": time_zone},
            "location": {"displayName": location},
            "categories": list(categories),
            "sensitivity": sensitivity,
            "showAs": show_as,
            "importance": importance,
            "isAllDay": is_all_day,
            "type": "singleInstance" if series_master_id is None else "occurrence",
            "seriesMasterId": series_master_id,
        }
        self._store(calendar_id, graph)
        return copy.deepcopy(graph)

    def seed_events(
        self,
        calendar_id: str,
        count: int,
        *,
        first_start: datetime = SEED_FIRST_START,
        every: timedelta = timedelta(minutes=30),
        duration: timedelta = timedelta(minutes=25),
        mailbox: str | None = None,
    ) -> None:
        """Add `count` back-to-back events; every fifth one is private."""
        self.add_calendar(calendar_id, mailbox)
        for i in range(count):
            start = first_start + i * every
            self.add_event(
                calendar_id,
                start=start,
                end=start + duration,
                subject=f"Seeded event {i}",
                location=f"Room {i % 7}",
                categories=("seeded",) if i % 2 else (),
                sensitivity="private" if i % 5 == 4 else "normal",
            )

    def events(self, calendar_id: str) -> list[dict[str, Any]]:
        """Copies of the stored Graph JSON of `calendar_id`'s events, in insertion order."""
        with self._lock:
            return [copy.deepcopy(e.graph) for e in self._calendars.get(calendar_id, [])]

    def fail_next(
        self,
        status: int,
        count: int = 1,
        retry_after: float | str | None = None,
        body: str | None = None,
    ) -> None:
        """Answer the next `count` requests with `status` (a Graph error body unless `body`)."""
        failure = _Failure(status, None if retry_after is None else str(retry_after), body)
        with self._lock:
            self._failures.extend([failure] * count)

    def hang_next(self, count: int = 1) -> None:
        """Let the next `count` requests stall without answering until the server stops."""
        with self._lock:
            self._hangs += count

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    # -- HTTP ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app: record, add latency, inject hangs/failures, then route."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw_auth = headers.get(b"authorization")
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    method=scope["method"],
                    path=scope["path"],
                    query=scope["query_string"].decode("latin-1"),
                    authorization=raw_auth.decode("latin-1") if raw_auth else None,
                    client_port=scope["client"][1] if scope.get("client") else None,
                    at_s=time.monotonic(),
                )
            )
            failure = self._failures.popleft() if self._failures else None
            hang = self._hangs > 0
            if hang:
                self._hangs -= 1
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)
        if hang:
            assert self._release is not None, "lifespan has run before any request"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), _HANG_LIMIT_S)
            failure = _Failure(503, None, None)
        if failure is not None:
            await _failure_response(failure)(scope, receive, send)
            return
        refused = self._refusal(scope["path"], raw_auth.decode("latin-1") if raw_auth else None)
        if refused is not None:
            await refused(scope, receive, send)
            return
        await self._app(scope, receive, send)

    def _refusal(self, path: str, authorization: str | None) -> Response | None:
        """401/403 for a Graph request whose delegated token is dead or of another account."""
        if self.identity is None or not path.startswith(self.base_path + "/"):
            return None
        rest = path[len(self.base_path) :]
        if not rest.startswith(("/users/", "/me")):
            return None
        holder = self.identity.holder(authorization)
        if holder is False or (holder is None and rest.startswith("/me")):
            return _graph_error(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        if isinstance(holder, str) and rest.startswith("/users/"):
            mailbox = unquote(rest.split("/")[2]).lower()
            if mailbox != holder:
                return _graph_error(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
        return None

    async def _me(self, request: Request) -> Response:
        assert self.identity is not None
        holder = self.identity.holder(request.headers.get("authorization"))
        assert isinstance(holder, str)  # _refusal answered 401 otherwise
        return JSONResponse(self.identity.me(holder))

    def _is_reachable(self, request: Request) -> bool:
        """The calendar exists and, on a /users/{mailbox}/ route, belongs to that mailbox."""
        calendar_id = request.path_params["calendar_id"]
        mailbox = request.path_params.get("mailbox")
        with self._lock:
            owner = self._owners.get(calendar_id)
        if calendar_id not in self._calendars or owner is None:
            return False
        return mailbox is None or owner == mailbox.lower()

    async def _list_calendars(self, request: Request) -> Response:
        mailbox = request.path_params["mailbox"].lower()
        try:
            top = min(int(request.query_params.get("$top", _DEFAULT_TOP)), _MAX_TOP)
            skip = int(request.query_params.get("$skip", 0))
        except ValueError as exc:
            return _graph_error(400, "ErrorInvalidParameter", str(exc))
        with self._lock:
            owned = sorted(c for c, owner in self._owners.items() if owner == mailbox)
            listed = [
                {
                    "id": c,
                    "name": self._names.get(c, (f"Calendar {c}", True))[0],
                    "canEdit": self._names.get(c, ("", True))[1],
                    "owner": {"address": mailbox},
                }
                for c in owned
            ]
        body: dict[str, Any] = {"value": listed[skip : skip + top]}
        if skip + top < len(listed):
            body["@odata.nextLink"] = str(request.url.include_query_params(**{"$skip": skip + top}))
        return JSONResponse(body)

    async def _change_event(self, request: Request) -> Response:
        calendar_id, event_id = request.path_params["calendar_id"], request.path_params["event_id"]
        if not self._is_reachable(request):
            return _not_found(calendar_id)
        with self._lock:
            stored = self._calendars.get(calendar_id, [])
            index = next((i for i, e in enumerate(stored) if e.graph["id"] == event_id), None)
        if index is None:
            return _graph_error(404, "ErrorItemNotFound", f"The event {event_id!r} was not found.")
        if request.method == "DELETE":
            with self._lock:
                stored.pop(index)
            return Response(status_code=204)
        try:
            changes = json.loads(await request.body())
            if not isinstance(changes, dict):
                raise ValueError("the request body must be a JSON object")
            graph = {**stored[index].graph, **changes, "id": event_id}
            updated = _StoredEvent(graph, _event_time(graph["start"]), _event_time(graph["end"]))
        except (ValueError, KeyError, TypeError) as exc:
            return _graph_error(400, "ErrorInvalidRequest", f"invalid event: {exc}")
        with self._lock:
            stored[index] = updated
        return JSONResponse(copy.deepcopy(graph))

    async def _get_calendar(self, request: Request) -> Response:
        calendar_id = request.path_params["calendar_id"]
        if not self._is_reachable(request):
            return _not_found(calendar_id)
        with self._lock:
            name, can_edit = self._names.get(calendar_id, (f"Calendar {calendar_id}", True))
        return JSONResponse({"id": calendar_id, "name": name, "canEdit": can_edit})

    async def _calendar_view(self, request: Request) -> Response:
        calendar_id = request.path_params["calendar_id"]
        if not self._is_reachable(request):
            return _not_found(calendar_id)
        query = request.query_params
        try:
            window_start = _parse_instant(query.get("startDateTime"), "startDateTime")
            window_end = _parse_instant(query.get("endDateTime"), "endDateTime")
            top = min(int(query.get("$top", _DEFAULT_TOP)), _MAX_TOP)
            skip = int(query.get("$skip", 0))
        except ValueError as exc:
            return _graph_error(400, "ErrorInvalidParameter", str(exc))
        if top < 1 or skip < 0:
            return _graph_error(400, "ErrorInvalidParameter", "$top and $skip must be positive")
        with self._lock:
            stored = self._calendars.get(calendar_id)
            if stored is None:
                return _not_found(calendar_id)
            hits = [e for e in stored if e.start < window_end and e.end > window_start]
            hits.sort(key=lambda e: (e.start, e.graph["id"]))
            page = [copy.deepcopy(e.graph) for e in hits[skip : skip + top]]
        body: dict[str, Any] = {"value": page}
        if skip + top < len(hits):
            body["@odata.nextLink"] = str(request.url.include_query_params(**{"$skip": skip + top}))
        return JSONResponse(body)

    async def _create_event(self, request: Request) -> Response:
        calendar_id = request.path_params["calendar_id"]
        if not self._is_reachable(request):
            return _not_found(calendar_id)
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            graph = {**body, "id": f"evt-{next(self._ids)}"}
            stored = self._store(calendar_id, graph)
        except (ValueError, KeyError, TypeError) as exc:
            return _graph_error(400, "ErrorInvalidRequest", f"invalid event: {exc}")
        return JSONResponse(copy.deepcopy(stored.graph), status_code=201)

    def _store(self, calendar_id: str, graph: dict[str, Any]) -> _StoredEvent:
        stored = _StoredEvent(graph, _event_time(graph["start"]), _event_time(graph["end"]))
        with self._lock:
            self._calendars.setdefault(calendar_id, []).append(stored)
            self._owners.setdefault(calendar_id, self.default_mailbox)
        return stored


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # uvicorn wraps an inherited socket as AF_UNIX and so never sets TCP_NODELAY on its
    # connections; Linux copies the option from the listening socket to accepted ones.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        # Listening before uvicorn starts means early connections queue instead of failing.
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _wall_time(moment: datetime | str, time_zone: str) -> str:
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is not None:
        moment = moment.astimezone(_zone(time_zone))
    return moment.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S.%f0")


def _event_time(value: Any) -> datetime:
    """A Graph dateTimeTimeZone as an aware datetime; ValueError/KeyError/TypeError if malformed."""
    moment = datetime.fromisoformat(value["dateTime"])
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(value.get("timeZone") or "UTC"))
    return moment


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as "Europe"
        # Real Graph also speaks Windows zone names; store such events (to test clients that
        # must reject them) and place them in the window as if they were UTC.
        return UTC


def _parse_instant(value: str | None, name: str) -> datetime:
    if not value:
        raise ValueError(f"{name} is required")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an ISO 8601 datetime") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _graph_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _not_found(calendar_id: str) -> JSONResponse:
    return _graph_error(
        404, "ErrorItemNotFound", f"The calendar {calendar_id!r} was not found in the store."
    )


def _failure_response(failure: _Failure) -> Response:
    headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
    if failure.body is not None:
        return Response(failure.body, failure.status, headers, media_type="application/json")
    body = {"error": {"code": "InjectedFailure", "message": f"injected {failure.status}"}}
    return JSONResponse(body, failure.status, headers)


def main(argv: Iterable[str] | None = None) -> None:
    """Run the fake Graph API in the foreground (for benchmarks and manual testing)."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.graph_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    parser.add_argument("--events", type=int, default=0, help="events seeded into --calendar")
    parser.add_argument("--calendar", default="cal-1", help="calendar id to seed (default cal-1)")
    parser.add_argument("--base-path", default="", help="URL prefix, e.g. /v1.0")
    parser.add_argument(
        "--mailbox", default=DEFAULT_MAILBOX, help=f"mailbox of --calendar ({DEFAULT_MAILBOX})"
    )
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        help="serve a fake Microsoft tenant too, where this address can sign in (repeatable)",
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        help="a redirect URI the fake tenant accepts (the app's /login/microsoft/callback)",
    )
    args = parser.parse_args(None if argv is None else list(argv))
    identity = None
    if args.account:
        identity = FakeIdentity(redirect_uris=set(args.redirect_uri))
        for email in args.account:
            identity.add_account(email)
    fake = FakeGraphServer(
        latency_ms=args.latency_ms,
        base_path=args.base_path,
        default_mailbox=args.mailbox,
        identity=identity,
    )
    fake.seed_events(args.calendar, args.events)
    fake.serve_forever(args.host, args.port)


if __name__ == "__main__":
    main()
