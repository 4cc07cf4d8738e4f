"""Every parity case, written once and run against both backends (see conftest.py for how).

A case is a list of calls made as one identity from the seeded state of `_seed.py`. Per
endpoint: a sample call (run as the happy path, through a /login session cookie, and with
every kind of bad credential), then the endpoint's own cases: empty results, pagination
edges, DST windows, not found, another user's rows, validation, malformed bodies.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.routing import Match

from asgi_gateway.endpoints import routes
from tests.parity._contract import Call, Case, Who, parse_mask
from tests.parity._seed import (
    ARCHIVE,
    BOB_ARCHIVE,
    BOB_CONFIG,
    BOB_ONE,
    BOB_REMOTE_ID,
    BOB_WORK,
    DOCTOR,
    NEXT_APPOINTMENT,
    NEXT_CALENDAR,
    NEXT_CONFIG,
    PAUSED,
    REMOTE,
    REVIEW,
    SCRATCH,
    SCRATCH_NOTE,
    SPARE,
    STANDUP,
    STANDUP_COPY,
    WORK,
    WORK_ARCHIVE,
)

_NOTHING: Any = object()
MAX_BODY_BYTES = 1024 * 1024  # the AA_MAX_BODY_BYTES default

# -- ignore rules, per endpoint -----------------------------------------------------------------

_STAMPS = ("$.created_at", "$.updated_at")
_LISTED_STAMPS = ("$.data[*].created_at", "$.data[*].updated_at")
_RUN_CLOCK = ("$.started_at", "$.finished_at", "$.duration_ms")
_TOKEN_STAMPS = ("$.data[*].created_at", "$.data[*].last_used_at", "$.data[*].expires_at")
IGNORE: dict[str, tuple[str, ...]] = {
    "auth.me": (),
    "auth.change_password": (),
    "auth.sign_out_everywhere": (),
    "tokens.list": _TOKEN_STAMPS,
    # The secret is random; the dates come from each server's clock.
    "tokens.create": ("$.token", "$.created_at", "$.expires_at"),
    "tokens.delete": (),
    "calendars.list": _LISTED_STAMPS,
    "calendars.create": _STAMPS,
    "calendars.get": _STAMPS,
    "calendars.update": _STAMPS,
    "calendars.delete": (),
    "calendars.remote_events": (),
    "appointments.list": _LISTED_STAMPS,
    "appointments.create": _STAMPS,
    "appointments.get": _STAMPS,
    "appointments.update": _STAMPS,
    "appointments.delete": (),
    "archive_configs.list": _LISTED_STAMPS,
    "archive_configs.create": _STAMPS,
    "archive_configs.get": _STAMPS,
    "archive_configs.update": _STAMPS,
    "archive_configs.delete": (),
    "archive.run": _RUN_CLOCK,
    "archive.log": tuple(p.replace("$.", "$.data[*].") for p in _RUN_CLOCK),
}


def endpoint_of(method: str, path: str) -> str | None:
    """The async route (endpoint id) a request would be routed to, if any."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for route in routes:
        if route.matches(scope)[0] is Match.FULL:
            return route.name
    return None


def masks_for(case: Case, call: Call) -> list[tuple[str | int | None, ...]]:
    endpoint = endpoint_of(call.method, call.path) or case.endpoint
    return [parse_mask(p) for p in (*IGNORE[endpoint], *case.ignore)]


# -- building calls -----------------------------------------------------------------------------


def get(
    path: str,
    query: str = "",
    who: Who = "alice",
    headers: Sequence[tuple[str, str]] = (),
    *,
    method: str = "GET",
    served_by: Any = None,
) -> Call:
    params = tuple(parse_qsl(query, keep_blank_values=True))
    return Call(method, path, who, params, None, tuple(headers), served_by=served_by)


def send(
    method: str,
    path: str,
    body: Any = _NOTHING,
    who: Who = "alice",
    *,
    raw: bytes | None = None,
    content_type: str | None = "application/json",
    headers: Sequence[tuple[str, str]] = (),
    chunked: bool = False,
    served_by: Any = None,
) -> Call:
    """A request with a body: `body` as JSON, or `raw` bytes sent as `content_type`."""
    if body is not _NOTHING:
        raw = json.dumps(body).encode()
    extra = tuple(headers)
    if content_type is not None and raw is not None:
        extra = (("Content-Type", content_type), *extra)
    return Call(method, path, who, (), raw, extra, chunked, served_by)


def post(path: str, body: Any = _NOTHING, who: Who = "alice", **options: Any) -> Call:
    return send("POST", path, body, who, **options)


def patch(path: str, body: Any = _NOTHING, who: Who = "alice", **options: Any) -> Call:
    return send("PATCH", path, body, who, **options)


def delete(path: str, who: Who = "alice") -> Call:
    return Call("DELETE", path, who)


def as_(call: Call, who: Who, *headers: tuple[str, str]) -> Call:
    return dataclasses.replace(call, who=who, headers=(*call.headers, *headers))


CASES: list[Case] = []


def case(
    endpoint: str,
    name: str,
    *calls: Call,
    readback: Sequence[Call] = (),
    ignore: Sequence[str] = (),
    known_bug: str | None = None,
) -> None:
    CASES.append(Case(endpoint, name, tuple(calls), tuple(readback), tuple(ignore), known_bug))


def oversized(field: str, **others: Any) -> bytes:
    """A JSON object just over the body limit."""
    return json.dumps({**others, field: "x" * (MAX_BODY_BYTES + 16)}).encode()


# -- paths --------------------------------------------------------------------------------------

ME = "/api/me"
CALENDARS = "/api/calendars"
APPOINTMENTS = "/api/appointments"
CONFIGS = "/api/archive-configs"
LOG = "/api/action-log"
PASSWORD = "/api/me/password"
EVERYWHERE = "/api/me/sign-out-everywhere"
TOKENS = "/api/tokens"
# API token ids: one per seeded person, in creation order (tests/parity/conftest.py)
ADMIN_TOKEN, ALICE_TOKEN, BOB_TOKEN, CAROL_TOKEN = 1, 2, 3, 4
NEXT_TOKEN = 5
ALICE_PASSWORD = "pw-alice@example.com"  # tests/conftest.py::create_person


def token(token_id: int) -> str:
    return f"{TOKENS}/{token_id}"


def cal(calendar_id: int) -> str:
    return f"{CALENDARS}/{calendar_id}"


def events(calendar_id: int) -> str:
    return f"{CALENDARS}/{calendar_id}/remote-events"


def appt(appointment_id: int) -> str:
    return f"{APPOINTMENTS}/{appointment_id}"


def config(config_id: int) -> str:
    return f"{CONFIGS}/{config_id}"


def run(config_id: int) -> str:
    return f"{CONFIGS}/{config_id}/run"


NEW_APPOINTMENT = {
    "calendar_id": WORK,
    "subject": "Planning",
    "start": "2026-06-01T09:00:00+02:00",
    "end": "2026-06-01T10:00:00+02:00",
    "location": "Room 4",
    "categories": ["Work", "Focus", "Work"],
    "is_private": False,
    "provider_event_id": "evt-planning",
}
NEW_CONFIG = {
    "name": "Scratch archive",
    "source_calendar_id": SCRATCH,
    "archive_calendar_id": ARCHIVE,
    "timezone": "America/New_York",
    "days_back": 14,
    "days_forward": 1,
    "excluded_categories": ["Personal"],
    "schedule": "daily",
}

# -- the sample call of each endpoint, with what to read back after it -----------------------

SAMPLES: dict[str, tuple[Call, tuple[Call, ...]]] = {
    "auth.me": (get(ME), ()),
    "calendars.list": (get(CALENDARS), ()),
    "calendars.create": (
        post(CALENDARS, {"name": "Team", "role": "source"}),
        (get(cal(NEXT_CALENDAR)), get(CALENDARS, "per_page=3&page=3")),
    ),
    "calendars.get": (get(cal(WORK)), ()),
    "calendars.update": (
        patch(cal(WORK), {"name": "Work (renamed)", "role": "archive"}),
        (get(cal(WORK)),),
    ),
    "calendars.delete": (delete(cal(SCRATCH)), (get(cal(SCRATCH)), get(appt(SCRATCH_NOTE)))),
    "calendars.remote_events": (
        get(events(WORK), "start=2026-03-29&end=2026-03-29&tz=Europe/Berlin"),
        (),
    ),
    "appointments.list": (get(APPOINTMENTS, f"calendar_id={WORK}&per_page=5"), ()),
    "appointments.create": (
        post(APPOINTMENTS, NEW_APPOINTMENT),
        (
            get(appt(NEXT_APPOINTMENT)),
            get(
                APPOINTMENTS, f"calendar_id={WORK}&start=2026-06-01&end=2026-06-01&tz=Europe/Berlin"
            ),
        ),
    ),
    "appointments.get": (get(appt(1)), ()),
    "appointments.update": (
        patch(appt(1), {"subject": "Renamed", "location": "Cafe", "categories": ["a", " b ", "a"]}),
        (get(appt(1)),),
    ),
    "appointments.delete": (
        delete(appt(SCRATCH_NOTE)),
        (get(appt(SCRATCH_NOTE)), get(APPOINTMENTS, f"calendar_id={SCRATCH}")),
    ),
    "archive_configs.list": (get(CONFIGS), ()),
    "archive_configs.create": (post(CONFIGS, NEW_CONFIG), (get(config(NEXT_CONFIG)), get(CONFIGS))),
    "archive_configs.get": (get(config(WORK_ARCHIVE)), ()),
    "archive_configs.update": (
        patch(
            config(WORK_ARCHIVE), {"days_back": 3, "is_active": False, "excluded_categories": []}
        ),
        (get(config(WORK_ARCHIVE)),),
    ),
    "archive_configs.delete": (
        delete(config(PAUSED)),
        (get(config(PAUSED)), get(CONFIGS), get(LOG)),
    ),
    "archive.run": (
        post(run(WORK_ARCHIVE), {"start": "2026-03-28", "end": "2026-03-30"}),
        (get(LOG, f"config_id={WORK_ARCHIVE}"), get(APPOINTMENTS, f"calendar_id={ARCHIVE}")),
    ),
    "archive.log": (get(LOG), ()),
    "auth.change_password": (
        post(PASSWORD, {"current_password": ALICE_PASSWORD, "new_password": "a-new-password"}),
        (),
    ),
    "auth.sign_out_everywhere": (post(EVERYWHERE), ()),
    "tokens.list": (get(TOKENS), ()),
    "tokens.create": (
        post(TOKENS, {"name": "laptop", "expires_in_days": 30}),
        (get(TOKENS),),
    ),
    "tokens.delete": (delete(token(ALICE_TOKEN)), ()),
}


def add_sample_cases(samples: dict[str, tuple[Call, tuple[Call, ...]]]) -> None:
    """Each endpoint's sample call: the happy path and every kind of credential."""
    for endpoint, (call, readback) in samples.items():
        _add_sample_cases(endpoint, call, readback)


def _add_sample_cases(endpoint: str, call: Call, readback: tuple[Call, ...]) -> None:
    case(endpoint, "happy path", call, readback=readback)
    case(
        endpoint,
        "session cookie from the /login form",
        as_(call, "alice_cookie"),
        readback=readback,
    )
    case(endpoint, "anonymous", as_(call, "anonymous"), readback=readback)
    case(
        endpoint,
        "unknown bearer token",
        as_(call, "anonymous", ("Authorization", "Bearer aa_not-a-real-token")),
    )
    case(
        endpoint,
        "Basic credentials",
        as_(call, "anonymous", ("Authorization", "Basic YWxpY2U6c2VjcmV0")),
    )
    case(
        endpoint,
        "Bearer scheme without a token",
        as_(call, "anonymous", ("Authorization", "Bearer")),
    )
    case(
        endpoint,
        "tampered session cookie",
        as_(call, "anonymous", ("Cookie", "aa_session=eyJ1c2VyX2lkIjoyfQ.forged.signature")),
    )
    case(
        endpoint,
        "bad bearer token beats a good session cookie",
        as_(call, "alice_cookie", ("Authorization", "Bearer aa_wrong")),
    )


add_sample_cases(SAMPLES)

# -- auth.me ------------------------------------------------------------------------------------

case("auth.me", "admin", get(ME, who="admin"))
case("auth.me", "admin through a session cookie", get(ME, who="admin_cookie"))
case("auth.me", "user without any data", get(ME, who="carol"))
case(
    "auth.me",
    "bearer token wins over another user's session cookie",
    get(ME, who="admin_cookie", headers=[("Authorization", "Bearer {alice}")]),
)
case(
    "auth.me",
    "backend override from a non-admin is ignored",
    get(ME, headers=[("X-Backend-Override", "legacy")]),
    get(ME, headers=[("X-Backend-Override", "async")]),
)
case(
    "auth.me",
    "lower-case bearer scheme",
    get(ME, who="anonymous", headers=[("Authorization", "bearer {alice}")]),
)
case("auth.me", "HEAD", get(ME, method="HEAD"))
case(
    "auth.me",
    "unrouted method is answered by Flask",
    Call("DELETE", ME, "alice", served_by="legacy"),
)

# -- calendars ----------------------------------------------------------------------------------

case("calendars.list", "admin sees every calendar", get(CALENDARS, who="admin"))
case("calendars.list", "another user sees only theirs", get(CALENDARS, who="bob"))
case("calendars.list", "empty", get(CALENDARS, who="carol"))
case("calendars.list", "empty past the first page", get(CALENDARS, "page=2", who="carol"))
for _query in (
    "per_page=2",
    "per_page=2&page=2",
    "per_page=2&page=3",
    "per_page=2&page=4",
    "per_page=2&page=99",
    "per_page=1&page=5",
    "per_page=200",
    "page=&per_page=",
    "per_page=2&page=2&name=Work&name=Spare",
    "page=0",
    "page=-1",
    "page=abc",
    "page=1.5",
    "per_page=0",
    "per_page=500",
    "per_page=abc",
    "page=0&per_page=500",
    "page=2&page=1&per_page=2",
    "per_page=2&page=1&per_page=3",
):
    case("calendars.list", f"pagination {_query}", get(CALENDARS, _query))

case(
    "calendars.create",
    "graph provider with its id",
    post(
        CALENDARS,
        {"name": " Outlook ", "role": "archive", "provider": "graph", "provider_id": "AAMk-1"},
    ),
    readback=[get(cal(NEXT_CALENDAR))],
)
case(
    "calendars.create",
    "by an admin",
    post(CALENDARS, {"name": "Ops", "role": "source"}, "admin"),
    readback=[get(CALENDARS, who="admin")],
)
case(
    "calendars.create",
    "two in a row get consecutive ids",
    post(CALENDARS, {"name": "One", "role": "source"}),
    post(CALENDARS, {"name": "Two", "role": "archive"}),
    readback=[get(cal(NEXT_CALENDAR + 1))],
)
case(
    "calendars.create",
    "graph provider without its id",
    post(CALENDARS, {"name": "Outlook", "role": "source", "provider": "graph"}),
)
case("calendars.create", "missing fields", post(CALENDARS, {}))
case(
    "calendars.create",
    "wrong types",
    post(CALENDARS, {"name": 5, "role": True, "provider": None, "provider_id": 7}),
)
case(
    "calendars.create",
    "unknown field",
    post(CALENDARS, {"name": "Team", "role": "source", "colour": "red", "owner_id": 3}),
)
case(
    "calendars.create",
    "blank and overlong values",
    post(CALENDARS, {"name": "   ", "role": "source"}),
    post(CALENDARS, {"name": "n" * 201, "role": "source"}),
)
case(
    "calendars.create",
    "unknown role and provider",
    post(CALENDARS, {"name": "Team", "role": "backup", "provider": "exchange"}),
)
case(
    "calendars.create",
    "non-ASCII name",
    post(CALENDARS, {"name": "Büro ☕ 東京", "role": "source"}),
    readback=[get(cal(NEXT_CALENDAR))],
)

# -- body handling: every endpoint that reads a JSON body gets the same malformed bodies --------

_BODY_SAMPLES = {
    "calendars.create": (CALENDARS, "POST", {"name": "Team", "role": "source"}),
    "calendars.update": (cal(WORK), "PATCH", {"name": "Team"}),
    "appointments.create": (APPOINTMENTS, "POST", NEW_APPOINTMENT),
    "appointments.update": (appt(1), "PATCH", {"subject": "Renamed"}),
    "archive_configs.create": (CONFIGS, "POST", NEW_CONFIG),
    "archive_configs.update": (config(WORK_ARCHIVE), "PATCH", {"name": "Renamed"}),
    "archive.run": (run(WORK_ARCHIVE), "POST", {"start": "2026-03-28", "end": "2026-03-30"}),
    "auth.change_password": (
        PASSWORD,
        "POST",
        {"current_password": ALICE_PASSWORD, "new_password": "a-new-password"},
    ),
    "tokens.create": (TOKENS, "POST", {"name": "laptop"}),
}


def add_body_cases(samples: dict[str, tuple[str, str, Any]]) -> None:
    """Malformed, mistyped, oversized and chunked bodies for each endpoint reading JSON."""
    for endpoint, (path, method, good) in samples.items():
        _add_body_cases(endpoint, path, method, good)


def _add_body_cases(endpoint: str, path: str, method: str, good: Any) -> None:
    valid = json.dumps(good).encode()
    first_text = next(k for k, v in good.items() if isinstance(v, str))
    for name, raw, kind in (
        ("deeply nested array", b"[" * 50_000, "application/json"),
        ("deeply nested object", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json"),
        ("nested just over the limit", b"[" * 65 + b"]" * 65, "application/json"),
        ("nested at the limit", b"[" * 64 + b"]" * 64, "application/json"),
        (
            f"lone surrogate in {first_text}",
            json.dumps({**good, first_text: "a\ud800b"}).encode(),
            "application/json",
        ),
        ("malformed JSON", b'{"name": ', "application/json"),
        ("trailing garbage after JSON", valid + b" }", "application/json"),
        ("empty body declared as JSON", b"", "application/json"),
        ("invalid UTF-8", b'{"name": "\xff\xfe"}', "application/json"),
        ("JSON array instead of object", b"[1, 2]", "application/json"),
        ("JSON null", b"null", "application/json"),
        ("JSON string", b'"text"', "application/json"),
        ("JSON sent as text/plain", valid, "text/plain"),
        ("form encoded", b"name=Team&role=source", "application/x-www-form-urlencoded"),
        ("no content type", valid, None),
        ("JSON with charset", valid, "application/json; charset=utf-8"),
        ("vendor +json type", valid, "application/vnd.api+json"),
        ("upper-case content type", valid, "APPLICATION/JSON"),
        ("body over the limit as JSON", oversized("name"), "application/json"),
        ("body over the limit as text/plain", oversized("name"), "text/plain"),
        (
            "body exactly at the limit",
            b" " * (MAX_BODY_BYTES - len(valid)) + valid,
            "application/json",
        ),
    ):
        case(
            endpoint,
            name,
            send(method, path, raw=raw, content_type=kind),
            readback=[get(path)] if method == "PATCH" else [],
        )
    case(
        endpoint,
        "chunked JSON body",
        send(method, path, raw=valid, chunked=True),
        readback=[get(path)] if method == "PATCH" else [],
    )
    case(
        endpoint,
        "chunked body over the limit",
        send(method, path, raw=oversized("name"), chunked=True),
    )
    case(
        endpoint,
        "chunked body exactly at the limit",
        send(method, path, raw=b" " * (MAX_BODY_BYTES - len(valid)) + valid, chunked=True),
    )
    case(endpoint, "chunked empty body", send(method, path, raw=b"", chunked=True))
    case(
        endpoint,
        "anonymous with a malformed body",
        send(method, path, raw=b"{", who="anonymous"),
    )


add_body_cases(_BODY_SAMPLES)

case("calendars.get", "another user's calendar", get(cal(BOB_WORK)))
case("calendars.get", "admin reads another user's calendar", get(cal(BOB_WORK), who="admin"))
case("calendars.get", "graph calendar", get(cal(REMOTE)))
case("calendars.get", "not found", get(cal(999)))
case("calendars.get", "id zero", get(cal(0)))
case("calendars.get", "leading zeros", get(f"{CALENDARS}/0001"))
case(
    "calendars.get",
    "id beyond 64 bits",
    get(f"{CALENDARS}/99999999999999999999"),
)
case(
    "calendars.get",
    "non-numeric id never reaches a twin",
    get(f"{CALENDARS}/abc", served_by="legacy"),
)
case(
    "calendars.get",
    "trailing slash never reaches a twin",
    get(f"{CALENDARS}/1/", served_by="legacy"),
)
case(
    "calendars.get",
    "unrouted method is answered by Flask",
    Call("PUT", cal(WORK), "alice", served_by="legacy"),
)

case(
    "calendars.update",
    "graph without provider id (checked against the stored row)",
    patch(cal(WORK), {"provider": "graph"}),
    readback=[get(cal(WORK))],
)
case(
    "calendars.update",
    "graph with provider id",
    patch(cal(WORK), {"provider": "graph", "provider_id": "AAMk-9"}),
    readback=[get(cal(WORK))],
)
case(
    "calendars.update",
    "clear provider id of a graph calendar",
    patch(cal(REMOTE), {"provider_id": None}),
    readback=[get(cal(REMOTE))],
)
case("calendars.update", "empty object", patch(cal(WORK), {}))
case("calendars.update", "unknown field", patch(cal(WORK), {"owner_id": 3}))
case("calendars.update", "wrong types", patch(cal(WORK), {"name": None, "role": 1}))
case(
    "calendars.update",
    "another user's calendar",
    patch(cal(BOB_WORK), {"name": "Mine"}),
    readback=[get(cal(BOB_WORK))],
)
case(
    "calendars.update",
    "admin updates another user's calendar",
    patch(cal(BOB_WORK), {"name": "Admin was here"}, "admin"),
    readback=[get(cal(BOB_WORK))],
)
case("calendars.update", "not found", patch(cal(999), {"name": "Nobody"}))
case("calendars.update", "not found with an invalid body", patch(cal(999), {"name": 1}))

case(
    "calendars.delete",
    "used by an archive configuration",
    delete(cal(WORK)),
    readback=[get(cal(WORK))],
)
case("calendars.delete", "twice", delete(cal(SCRATCH)), delete(cal(SCRATCH)))
case(
    "calendars.delete",
    "another user's calendar",
    delete(cal(BOB_WORK)),
    readback=[get(cal(BOB_WORK))],
)
case("calendars.delete", "admin, calendar in use", delete(cal(BOB_ARCHIVE), "admin"))
case(
    "calendars.delete",
    "after its configuration is gone",
    delete(config(PAUSED)),
    delete(cal(SPARE)),
    readback=[get(cal(SPARE)), get(CONFIGS)],
)
case(
    "calendars.delete",
    "archive calendar holding copies",
    delete(config(WORK_ARCHIVE)),
    delete(config(PAUSED)),
    delete(cal(ARCHIVE)),
    readback=[get(appt(STANDUP_COPY)), get(appt(STANDUP)), get(LOG)],
)
case("calendars.delete", "not found", delete(cal(999)))

_BERLIN = "tz=Europe/Berlin"
_NEW_YORK = "tz=America/New_York"
for _query in (
    f"start=2026-03-29&end=2026-03-29&{_BERLIN}",
    f"start=2026-03-28&end=2026-03-30&{_BERLIN}",
    "start=2026-03-29&end=2026-03-29",
    f"start=2026-03-29T02:30:00&end=2026-03-29T03:30:00&{_BERLIN}",
    "start=2026-03-29T00:00:00Z&end=2026-03-29T01:00:00%2B00:00",
    f"start=2026-11-01&end=2026-11-01&{_NEW_YORK}",
    f"start=2026-11-01T01:00:00&end=2026-11-01T02:00:00&{_NEW_YORK}",
    f"start=2026-11-01T01:30:00-05:00&end=2026-11-01T02:00:00-05:00&{_NEW_YORK}",
    "start=2026-11-01&end=2026-11-02&tz=Asia/Kolkata",
    "start=2030-01-01&end=2030-01-02",
):
    case("calendars.remote_events", f"window {_query}", get(events(WORK), _query))
for _query in (
    "",
    "start=2026-03-29",
    "end=2026-03-29",
    "start=&end=",
    "start=2026-03-30&end=2026-03-29",
    "start=2026-03-29T10:00:00Z&end=2026-03-29T10:00:00Z",
    "start=yesterday&end=2026-13-01",
    "start=2026-03-29&end=2026-03-29&tz=Mars/Base",
    "start=2026-03-29&end=2026-03-29&tz=",
    "start=2026-03-29&end=2026-03-30&tz=UTC&tz=Europe/Berlin",
    "start=2026-03-28&start=2026-03-29&end=2026-03-30",
):
    case("calendars.remote_events", f"query {_query or '(none)'}", get(events(WORK), _query))
case(
    "calendars.remote_events",
    "empty calendar",
    get(events(SPARE), "start=2026-01-01&end=2026-12-31"),
)
case(
    "calendars.remote_events",
    "another user's calendar",
    get(events(BOB_WORK), "start=2026-05-01&end=2026-05-31"),
)
case(
    "calendars.remote_events",
    "admin reads another user's calendar",
    get(events(BOB_WORK), "start=2026-05-01&end=2026-05-31", "admin"),
)
case("calendars.remote_events", "not found", get(events(999), "start=2026-05-01&end=2026-05-31"))
case("calendars.remote_events", "not found beats a bad query", get(events(999)))
case(
    "calendars.remote_events",
    "graph calendar in the owner's mailbox",
    get(events(REMOTE), "start=2026-05-01&end=2026-05-31&tz=Europe/Berlin"),
)
case(
    "calendars.remote_events",
    "admin reads a graph calendar through its owner's mailbox",
    get(events(REMOTE), "start=2026-05-01&end=2026-05-31", "admin"),
)
case(
    "calendars.remote_events",
    "after writes through the API",
    post(
        APPOINTMENTS,
        {
            **NEW_APPOINTMENT,
            "start": "2026-03-29T01:45:00+01:00",
            "end": "2026-03-29T03:15:00+02:00",
        },
    ),
    get(events(WORK), f"start=2026-03-29&end=2026-03-29&{_BERLIN}"),
)

# -- appointments -------------------------------------------------------------------------------

case("appointments.list", "everything the user owns", get(APPOINTMENTS))
case("appointments.list", "admin sees every appointment", get(APPOINTMENTS, who="admin"))
case(
    "appointments.list",
    "admin, one user's calendar",
    get(APPOINTMENTS, f"calendar_id={BOB_WORK}", "admin"),
)
case("appointments.list", "another user sees only theirs", get(APPOINTMENTS, who="bob"))
case("appointments.list", "empty for a user without calendars", get(APPOINTMENTS, who="carol"))
case("appointments.list", "empty calendar", get(APPOINTMENTS, f"calendar_id={SPARE}"))
case("appointments.list", "empty window", get(APPOINTMENTS, "start=2030-01-01&end=2030-02-01"))
case("appointments.list", "another user's calendar", get(APPOINTMENTS, f"calendar_id={BOB_WORK}"))
case("appointments.list", "calendar not found", get(APPOINTMENTS, "calendar_id=999"))
for _query in (
    "per_page=5&page=1",
    "per_page=5&page=3",
    "per_page=5&page=4",
    "per_page=5&page=50",
    "per_page=1&page=17",
    "per_page=200",
    "page=0",
    "page=-1",
    "page=abc",
    "per_page=0",
    "per_page=500",
    "per_page=-5",
    "page=&per_page=",
    "page=2&page=3&per_page=5",
    "per_page=5&per_page=2",
):
    case(
        "appointments.list",
        f"pagination {_query}",
        get(APPOINTMENTS, f"calendar_id={WORK}&{_query}"),
    )
for _query in (
    f"start=2026-03-29&end=2026-03-29&{_BERLIN}",
    f"start=2026-03-28&end=2026-03-29&{_BERLIN}&per_page=2&page=2",
    f"start=2026-03-29T01:00:00&end=2026-03-29T04:00:00&{_BERLIN}",
    f"start=2026-03-29T02:30:00&end=2026-03-29T03:00:00&{_BERLIN}",
    f"start=2026-03-29&{_BERLIN}",
    f"end=2026-03-29&{_BERLIN}",
    "start=2026-03-29&end=2026-03-29",
    f"start=2026-11-01&end=2026-11-01&{_NEW_YORK}",
    f"start=2026-11-01T01:00:00&end=2026-11-01T02:00:00&{_NEW_YORK}",
    f"start=2026-11-01T01:30:00-05:00&end=2026-11-02&{_NEW_YORK}",
    f"start=2026-10-31&end=2026-11-02&{_NEW_YORK}&per_page=3&page=2",
    "start=2026-11-01&end=2026-11-02&tz=Australia/Lord_Howe",
    "start=2026-03-29T00:00:00Z&end=2026-03-29T12:00:00Z&tz=Europe/Berlin",
):
    case("appointments.list", f"window {_query}", get(APPOINTMENTS, f"calendar_id={WORK}&{_query}"))
for _query in (
    "calendar_id=abc",
    "calendar_id=0",
    "calendar_id=-1",
    "start=soon",
    "start=2026-03-30&end=2026-03-29",
    "tz=Mars/Base",
    "tz=",
    "tz=UTC&tz=Mars/Base",
    "calendar_id=abc&page=0&per_page=500&tz=Nowhere&start=x&end=y",
    f"calendar_id={WORK}&calendar_id={BOB_WORK}",
):
    case("appointments.list", f"query {_query}", get(APPOINTMENTS, _query))

case(
    "appointments.create",
    "minimal body takes the defaults",
    post(
        APPOINTMENTS,
        {
            "calendar_id": WORK,
            "subject": "Quick",
            "start": "2026-06-02T08:00:00Z",
            "end": "2026-06-02T08:15:00Z",
        },
    ),
    readback=[get(appt(NEXT_APPOINTMENT))],
)
case(
    "appointments.create",
    "across the Berlin DST change",
    post(
        APPOINTMENTS,
        {
            **NEW_APPOINTMENT,
            "start": "2026-03-29T01:45:00+01:00",
            "end": "2026-03-29T03:15:00+02:00",
        },
    ),
    readback=[get(APPOINTMENTS, f"calendar_id={WORK}&start=2026-03-29&end=2026-03-29&{_BERLIN}")],
)
case(
    "appointments.create",
    "in the repeated New York hour",
    post(
        APPOINTMENTS,
        {
            **NEW_APPOINTMENT,
            "start": "2026-11-01T01:40:00-05:00",
            "end": "2026-11-01T01:50:00-05:00",
        },
    ),
    readback=[get(APPOINTMENTS, f"calendar_id={WORK}&start=2026-11-01&end=2026-11-01&{_NEW_YORK}")],
)
case(
    "appointments.create",
    "duplicate provider event id",
    post(APPOINTMENTS, NEW_APPOINTMENT),
    post(APPOINTMENTS, NEW_APPOINTMENT),
)
case(
    "appointments.create",
    "provider event id of a seeded event",
    post(APPOINTMENTS, {**NEW_APPOINTMENT, "provider_event_id": "evt-review"}),
)
case(
    "appointments.create",
    "same provider event id in another calendar",
    post(
        APPOINTMENTS, {**NEW_APPOINTMENT, "calendar_id": SCRATCH, "provider_event_id": "evt-review"}
    ),
    readback=[get(appt(NEXT_APPOINTMENT))],
)
case(
    "appointments.create",
    "in another user's calendar",
    post(APPOINTMENTS, {**NEW_APPOINTMENT, "calendar_id": BOB_WORK}),
)
case(
    "appointments.create",
    "admin in another user's calendar",
    post(APPOINTMENTS, {**NEW_APPOINTMENT, "calendar_id": BOB_WORK}, "admin"),
    readback=[get(APPOINTMENTS, f"calendar_id={BOB_WORK}")],
)
case(
    "appointments.create",
    "calendar not found",
    post(APPOINTMENTS, {**NEW_APPOINTMENT, "calendar_id": 999}),
)
case("appointments.create", "missing fields", post(APPOINTMENTS, {}))
case(
    "appointments.create",
    "wrong types",
    post(
        APPOINTMENTS,
        {
            "calendar_id": "1",
            "subject": 5,
            "start": 1774740000,
            "end": None,
            "location": [],
            "categories": "Work",
            "is_private": "yes",
            "provider_event_id": 3,
        },
    ),
)
case(
    "appointments.create",
    "boolean and float calendar ids",
    post(APPOINTMENTS, {**NEW_APPOINTMENT, "calendar_id": True}),
    post(APPOINTMENTS, {**NEW_APPOINTMENT, "calendar_id": 1.0}),
)
case(
    "appointments.create",
    "unknown fields",
    post(APPOINTMENTS, {**NEW_APPOINTMENT, "id": 99, "archived_from_id": 1}),
)
case(
    "appointments.create",
    "naive datetimes",
    post(
        APPOINTMENTS,
        {**NEW_APPOINTMENT, "start": "2026-03-29T02:30:00", "end": "2026-03-29T03:30:00"},
    ),
)
case(
    "appointments.create",
    "end before start",
    post(
        APPOINTMENTS,
        {
            **NEW_APPOINTMENT,
            "start": "2026-06-01T10:00:00+02:00",
            "end": "2026-06-01T09:00:00+02:00",
        },
    ),
)
case(
    "appointments.create",
    "zero length",
    post(
        APPOINTMENTS,
        {**NEW_APPOINTMENT, "start": "2026-06-01T10:00:00+02:00", "end": "2026-06-01T08:00:00Z"},
    ),
)
case(
    "appointments.create",
    "not datetimes",
    post(APPOINTMENTS, {**NEW_APPOINTMENT, "start": "tomorrow", "end": "2026-02-30T10:00:00Z"}),
)
case(
    "appointments.create",
    "too many and too long categories",
    post(APPOINTMENTS, {**NEW_APPOINTMENT, "categories": [f"c{i}" for i in range(51)]}),
    post(APPOINTMENTS, {**NEW_APPOINTMENT, "categories": ["c" * 101]}),
)

case("appointments.get", "archived copy", get(appt(STANDUP_COPY)))
case("appointments.get", "private appointment", get(appt(DOCTOR)))
case("appointments.get", "another user's appointment", get(appt(BOB_ONE)))
case("appointments.get", "admin reads another user's appointment", get(appt(BOB_ONE), who="admin"))
case("appointments.get", "not found", get(appt(999)))
case("appointments.get", "tz parameter does not apply", get(appt(2), "tz=Europe/Berlin"))

case(
    "appointments.update",
    "move across the Berlin DST change",
    patch(appt(1), {"start": "2026-03-29T01:00:00+01:00", "end": "2026-03-29T04:00:00+02:00"}),
    readback=[get(APPOINTMENTS, f"calendar_id={WORK}&start=2026-03-29&end=2026-03-29&{_BERLIN}")],
)
case(
    "appointments.update",
    "end before the stored start",
    patch(appt(1), {"end": "2026-03-28T20:00:00+01:00"}),
    readback=[get(appt(1))],
)
case(
    "appointments.update",
    "start and end reversed",
    patch(appt(1), {"start": "2026-03-29T10:00:00Z", "end": "2026-03-29T09:00:00Z"}),
)
case("appointments.update", "calendar id cannot change", patch(appt(1), {"calendar_id": SCRATCH}))
case("appointments.update", "empty object", patch(appt(1), {}))
case("appointments.update", "wrong types", patch(appt(1), {"is_private": 1, "categories": [1]}))
case(
    "appointments.update",
    "provider event id clash",
    patch(appt(1), {"provider_event_id": "evt-review"}),
    readback=[get(appt(1))],
)
case(
    "appointments.update",
    "provider event id set to null",
    patch(appt(1), {"provider_event_id": None}),
    readback=[get(appt(1))],
)
case(
    "appointments.update",
    "make private",
    patch(appt(1), {"is_private": True}),
    readback=[get(appt(1))],
)
case(
    "appointments.update",
    "another user's appointment",
    patch(appt(BOB_ONE), {"subject": "x"}),
    readback=[get(appt(BOB_ONE))],
)
case(
    "appointments.update",
    "admin updates another user's appointment",
    patch(appt(BOB_ONE), {"subject": "By admin"}, "admin"),
    readback=[get(appt(BOB_ONE))],
)
case("appointments.update", "not found", patch(appt(999), {"subject": "x"}))
case("appointments.update", "not found with an invalid body", patch(appt(999), {"subject": 1}))

case(
    "appointments.delete",
    "source of an archived copy",
    delete(appt(STANDUP)),
    readback=[get(appt(STANDUP_COPY)), get(appt(STANDUP))],
)
case("appointments.delete", "twice", delete(appt(1)), delete(appt(1)))
case(
    "appointments.delete",
    "another user's appointment",
    delete(appt(BOB_ONE)),
    readback=[get(appt(BOB_ONE))],
)
case(
    "appointments.delete",
    "admin deletes another user's appointment",
    delete(appt(BOB_ONE), "admin"),
    readback=[get(APPOINTMENTS, f"calendar_id={BOB_WORK}")],
)
case("appointments.delete", "not found", delete(appt(999)))
case(
    "appointments.delete",
    "then create again",
    delete(appt(REVIEW)),
    post(APPOINTMENTS, {**NEW_APPOINTMENT, "provider_event_id": "evt-review"}),
    readback=[get(APPOINTMENTS, f"calendar_id={WORK}&start=2026-05-01&end=2026-06-30")],
)

# -- archive configurations ---------------------------------------------------------------------

case("archive_configs.list", "admin sees every configuration", get(CONFIGS, who="admin"))
case("archive_configs.list", "another user sees only theirs", get(CONFIGS, who="bob"))
case("archive_configs.list", "empty", get(CONFIGS, who="carol"))
for _query in (
    "per_page=1",
    "per_page=1&page=2",
    "per_page=1&page=3",
    "per_page=2&page=2",
    "page=0",
    "page=-1",
    "page=abc",
    "per_page=500",
    "per_page=0",
    "page=3&page=1&per_page=1",
    "per_page=1&filter=active",
):
    case("archive_configs.list", f"pagination {_query}", get(CONFIGS, _query))
case(
    "archive_configs.list", "admin pagination last page", get(CONFIGS, "per_page=2&page=2", "admin")
)

case(
    "archive_configs.create",
    "defaults",
    post(
        CONFIGS, {"name": "Defaults", "source_calendar_id": SCRATCH, "archive_calendar_id": ARCHIVE}
    ),
    readback=[get(config(NEXT_CONFIG))],
)
case(
    "archive_configs.create",
    "same source and archive calendar",
    post(CONFIGS, {**NEW_CONFIG, "archive_calendar_id": SCRATCH}),
)
case(
    "archive_configs.create",
    "another user's calendars",
    post(
        CONFIGS, {**NEW_CONFIG, "source_calendar_id": BOB_WORK, "archive_calendar_id": BOB_ARCHIVE}
    ),
)
case(
    "archive_configs.create",
    "calendars not found",
    post(CONFIGS, {**NEW_CONFIG, "source_calendar_id": 998, "archive_calendar_id": 999}),
)
case(
    "archive_configs.create",
    "admin with another user's calendars",
    post(
        CONFIGS,
        {**NEW_CONFIG, "source_calendar_id": BOB_WORK, "archive_calendar_id": BOB_ARCHIVE},
        "admin",
    ),
    readback=[get(CONFIGS, who="admin")],
)
case(
    "archive_configs.create",
    "unknown time zone",
    post(CONFIGS, {**NEW_CONFIG, "timezone": "Mars/Base"}),
)
case(
    "archive_configs.create",
    "out of range days",
    post(CONFIGS, {**NEW_CONFIG, "days_back": -1, "days_forward": 3651}),
)
case("archive_configs.create", "missing fields", post(CONFIGS, {}))
case(
    "archive_configs.create",
    "wrong types",
    post(
        CONFIGS,
        {
            "name": [],
            "source_calendar_id": "4",
            "archive_calendar_id": 2.5,
            "timezone": 1,
            "is_active": "no",
            "schedule": 3,
            "days_back": "7",
            "excluded_categories": "Personal",
        },
    ),
)
case("archive_configs.create", "unknown field", post(CONFIGS, {**NEW_CONFIG, "owner_id": 3}))

case("archive_configs.get", "another user's configuration", get(config(BOB_CONFIG)))
case(
    "archive_configs.get",
    "admin reads another user's configuration",
    get(config(BOB_CONFIG), who="admin"),
)
case("archive_configs.get", "paused", get(config(PAUSED)))
case("archive_configs.get", "not found", get(config(999)))

case(
    "archive_configs.update",
    "same source and archive",
    patch(config(WORK_ARCHIVE), {"archive_calendar_id": WORK}),
)
case(
    "archive_configs.update",
    "source same as the stored archive",
    patch(config(WORK_ARCHIVE), {"source_calendar_id": ARCHIVE}),
    readback=[get(config(WORK_ARCHIVE))],
)
case(
    "archive_configs.update",
    "move to another user's calendar",
    patch(config(WORK_ARCHIVE), {"source_calendar_id": BOB_WORK}),
    readback=[get(config(WORK_ARCHIVE))],
)
case(
    "archive_configs.update",
    "switch calendars",
    patch(config(WORK_ARCHIVE), {"source_calendar_id": SCRATCH, "timezone": "America/New_York"}),
    readback=[get(config(WORK_ARCHIVE))],
)
case(
    "archive_configs.update",
    "unknown time zone",
    patch(config(WORK_ARCHIVE), {"timezone": "Berlin"}),
)
case("archive_configs.update", "empty object", patch(config(WORK_ARCHIVE), {}))
case("archive_configs.update", "unknown field", patch(config(WORK_ARCHIVE), {"id": 5}))
case(
    "archive_configs.update",
    "another user's configuration",
    patch(config(BOB_CONFIG), {"name": "Mine"}),
    readback=[get(config(BOB_CONFIG))],
)
case(
    "archive_configs.update",
    "admin updates another user's configuration",
    patch(config(BOB_CONFIG), {"name": "By admin"}, "admin"),
    readback=[get(config(BOB_CONFIG))],
)
case("archive_configs.update", "not found", patch(config(999), {"name": "x"}))

case(
    "archive_configs.delete",
    "with action log rows",
    delete(config(WORK_ARCHIVE)),
    readback=[get(config(WORK_ARCHIVE)), get(LOG), get(LOG, f"config_id={WORK_ARCHIVE}")],
)
case("archive_configs.delete", "twice", delete(config(PAUSED)), delete(config(PAUSED)))
case(
    "archive_configs.delete",
    "another user's configuration",
    delete(config(BOB_CONFIG)),
    readback=[get(config(BOB_CONFIG))],
)
case(
    "archive_configs.delete",
    "admin deletes another user's configuration",
    delete(config(BOB_CONFIG), "admin"),
    readback=[get(CONFIGS, who="admin")],
)
case("archive_configs.delete", "not found", delete(config(999)))

# -- archive runs and the action log -----------------------------------------------------------

_RUN_LOG = (get(LOG), get(APPOINTMENTS, f"calendar_id={ARCHIVE}"))
case(
    "archive.run",
    "rerun of an archived window finds duplicates",
    post(run(WORK_ARCHIVE), {"start": "2026-05-04T00:00:00Z", "end": "2026-05-06T00:00:00Z"}),
    readback=_RUN_LOG,
)
case(
    "archive.run",
    "over the Berlin DST change",
    post(
        run(WORK_ARCHIVE),
        {"start": "2026-03-29T00:00:00+01:00", "end": "2026-03-30T00:00:00+02:00"},
    ),
    readback=_RUN_LOG,
)
case(
    "archive.run",
    "over the New York DST change",
    post(
        run(WORK_ARCHIVE),
        {"start": "2026-11-01T00:00:00-04:00", "end": "2026-11-02T00:00:00-05:00"},
    ),
    readback=_RUN_LOG,
)
case(
    "archive.run",
    "twice: the second run archives nothing new",
    post(run(WORK_ARCHIVE), {"start": "2026-03-01", "end": "2026-12-31"}),
    post(run(WORK_ARCHIVE), {"start": "2026-03-01", "end": "2026-12-31"}),
    readback=_RUN_LOG,
)
case(
    "archive.run",
    "empty window",
    post(run(WORK_ARCHIVE), {"start": "2030-01-01", "end": "2030-01-02"}),
)
case(
    "archive.run",
    "no body: the configuration's own window",
    post(run(WORK_ARCHIVE)),
    readback=_RUN_LOG,
)
case(
    "archive.run",
    "empty text/plain body",
    post(run(WORK_ARCHIVE), raw=b"", content_type="text/plain"),
)
case("archive.run", "empty JSON object", post(run(WORK_ARCHIVE), {}))
case("archive.run", "only a start", post(run(WORK_ARCHIVE), {"start": "2026-03-01"}))
case("archive.run", "only an end far in the past", post(run(WORK_ARCHIVE), {"end": "2020-01-01"}))
case(
    "archive.run",
    "end before start",
    post(run(WORK_ARCHIVE), {"start": "2026-03-30", "end": "2026-03-29"}),
)
case("archive.run", "bad dates", post(run(WORK_ARCHIVE), {"start": "soon", "end": 5}))
case("archive.run", "unknown field", post(run(WORK_ARCHIVE), {"window": "7d"}))
case(
    "archive.run",
    "paused configuration",
    post(run(PAUSED), {"start": "2026-01-01", "end": "2026-12-31"}),
)
case(
    "archive.run",
    "another user's configuration",
    post(run(BOB_CONFIG), {"start": "2026-05-01", "end": "2026-05-31"}),
)
case(
    "archive.run",
    "admin runs another user's configuration",
    post(run(BOB_CONFIG), {"start": "2026-05-01", "end": "2026-05-31"}, "admin"),
    readback=[get(LOG, who="admin")],
)
case("archive.run", "not found", post(run(999), {"start": "2026-05-01", "end": "2026-05-31"}))
case(
    "archive.run",
    "then read the log",
    post(run(WORK_ARCHIVE), {"start": "2026-03-28", "end": "2026-11-03"}),
    get(LOG, f"config_id={WORK_ARCHIVE}"),
)
case(
    "archive.run",
    "unrouted method is answered by Flask",
    get(run(WORK_ARCHIVE), served_by="legacy"),
)

case("archive.log", "admin sees every run", get(LOG, who="admin"))
case("archive.log", "another user sees only theirs", get(LOG, who="bob"))
case("archive.log", "empty", get(LOG, who="carol"))
case("archive.log", "one configuration", get(LOG, f"config_id={WORK_ARCHIVE}"))
case("archive.log", "configuration without runs", get(LOG, f"config_id={PAUSED}"))
case("archive.log", "another user's configuration", get(LOG, f"config_id={BOB_CONFIG}"))
case(
    "archive.log",
    "admin, another user's configuration",
    get(LOG, f"config_id={BOB_CONFIG}", "admin"),
)
case("archive.log", "configuration not found", get(LOG, "config_id=999"))
for _query in (
    "config_id=abc",
    "config_id=0",
    "config_id=",
    "per_page=1",
    "per_page=1&page=2",
    "per_page=1&page=3",
    "page=0",
    "page=abc",
    "per_page=500",
    "config_id=1&config_id=3",
    "config_id=abc&page=0&per_page=0",
):
    case("archive.log", f"query {_query}", get(LOG, _query, "admin"))
case(
    "archive.log",
    "newest first after more runs",
    post(run(WORK_ARCHIVE), {"start": "2026-03-28", "end": "2026-03-30"}),
    post(run(PAUSED), {"start": "2026-03-28", "end": "2026-03-30"}),
    get(LOG, "per_page=2"),
    get(LOG, "per_page=2&page=2"),
)

# -- patching a configuration onto calendars that do not exist ---------------------------------

case(
    "archive_configs.update",
    "source calendar that does not exist",
    patch(config(WORK_ARCHIVE), {"source_calendar_id": 999}),
    readback=[get(config(WORK_ARCHIVE))],
)
case(
    "archive_configs.update",
    "both calendars that do not exist",
    patch(config(WORK_ARCHIVE), {"source_calendar_id": 998, "archive_calendar_id": 999}),
    readback=[get(config(WORK_ARCHIVE))],
)
case(
    "archive_configs.update",
    "archive calendar id beyond 64 bits",
    patch(config(WORK_ARCHIVE), {"archive_calendar_id": 2**64}),
)

# -- sessions: password change and signing out everywhere --------------------------------------

case(
    "auth.change_password",
    "through a session keeps that session and ends the others",
    post(
        PASSWORD,
        {"current_password": ALICE_PASSWORD, "new_password": "a-new-password"},
        "alice_cookie",
    ),
    get(ME, who="alice_cookie"),
)
case(
    "auth.change_password",
    "through a token ends every session",
    post(PASSWORD, {"current_password": ALICE_PASSWORD, "new_password": "a-new-password"}),
    get(ME, who="alice_cookie"),
    get(ME),
)
case(
    "auth.change_password",
    "wrong current password",
    post(PASSWORD, {"current_password": "not-it-at-all", "new_password": "a-new-password"}),
    get(ME, who="alice_cookie"),
)
case(
    "auth.change_password",
    "new password too short",
    post(PASSWORD, {"current_password": ALICE_PASSWORD, "new_password": "short"}),
)
case("auth.change_password", "missing fields", post(PASSWORD, {}))
case(
    "auth.change_password",
    "wrong types",
    post(PASSWORD, {"current_password": 1, "new_password": None, "confirm": "x"}),
)
case(
    "auth.change_password",
    "unrouted method is answered by Flask",
    get(PASSWORD, served_by="legacy"),
)

case(
    "auth.sign_out_everywhere",
    "the session cookie stops working",
    post(EVERYWHERE, who="alice_cookie"),
    get(ME, who="alice_cookie"),
    get(ME),
)
case(
    "auth.sign_out_everywhere",
    "through a token ends the sessions, not the token",
    post(EVERYWHERE),
    get(ME, who="alice_cookie"),
    get(ME, who="admin_cookie"),
    get(ME),
)
case(
    "auth.sign_out_everywhere",
    "with a JSON body",
    post(EVERYWHERE, {"all": True}, "admin"),
    get(ME, who="admin_cookie"),
)

# -- API tokens ---------------------------------------------------------------------------------

case("tokens.list", "admin sees only their own", get(TOKENS, who="admin"))
case("tokens.list", "through a session cookie", get(TOKENS, who="admin_cookie"))
case(
    "tokens.list",
    "after creating and revoking",
    post(TOKENS, {"name": "ci"}),
    delete(token(NEXT_TOKEN)),
    post(TOKENS, {"name": "laptop", "expires_in_days": 1}),
    get(TOKENS),
)
case(
    "tokens.list",
    "unrouted method is answered by Flask",
    Call("PUT", TOKENS, "alice", served_by="legacy"),
)

case("tokens.create", "without expiry", post(TOKENS, {"name": "ci"}), readback=[get(TOKENS)])
case(
    "tokens.create",
    "expiry set to null",
    post(TOKENS, {"name": "ci", "expires_in_days": None}),
)
case("tokens.create", "missing name", post(TOKENS, {"expires_in_days": 3}))
case("tokens.create", "blank name", post(TOKENS, {"name": "   "}))
case(
    "tokens.create",
    "expiry out of range",
    post(TOKENS, {"name": "a", "expires_in_days": 0}),
    post(TOKENS, {"name": "b", "expires_in_days": 3651}),
    post(TOKENS, {"name": "c", "expires_in_days": 1.5}),
    post(TOKENS, {"name": "d", "expires_in_days": "7"}),
)
case("tokens.create", "unknown field", post(TOKENS, {"name": "a", "user_id": 3}))

case(
    "tokens.delete",
    "the token in use stops working at once",
    delete(token(ALICE_TOKEN)),
    get(ME),
    get(ME, who="alice_cookie"),
)
case("tokens.delete", "another user's token", delete(token(BOB_TOKEN)), get(ME, who="bob"))
case(
    "tokens.delete",
    "admin cannot revoke another user's token here",
    delete(token(ALICE_TOKEN), "admin"),
    get(ME),
)
case("tokens.delete", "not found", delete(token(999)))
case("tokens.delete", "id zero", delete(token(0)))
case("tokens.delete", "id beyond 64 bits", delete(f"{TOKENS}/99999999999999999999"))
case(
    "tokens.delete",
    "twice",
    post(TOKENS, {"name": "ci"}),
    delete(token(NEXT_TOKEN)),
    delete(token(NEXT_TOKEN)),
)
case(
    "tokens.delete",
    "non-numeric id never reaches a twin",
    dataclasses.replace(delete(f"{TOKENS}/abc"), served_by="legacy"),
)

# -- remote calendars are bound to their owner's mailbox ---------------------------------------

case(
    "calendars.create",
    "graph calendar of another mailbox",
    post(
        CALENDARS,
        {"name": "Bob's", "role": "source", "provider": "graph", "provider_id": BOB_REMOTE_ID},
    ),
    readback=[get(CALENDARS, "per_page=200", "admin")],
)
case(
    "calendars.create",
    "graph calendar of nobody",
    post(
        CALENDARS,
        {"name": "Gone", "role": "source", "provider": "graph", "provider_id": "AAMk-none"},
    ),
)
case(
    "calendars.create",
    "admin and a user's remote calendar",
    post(
        CALENDARS,
        {"name": "Ops", "role": "source", "provider": "graph", "provider_id": "AAMk-1"},
        "admin",
    ),
)
case(
    "calendars.create",
    "graph id holding a slash, plus and equals",
    post(
        CALENDARS,
        {"name": "Odd", "role": "source", "provider": "graph", "provider_id": "AAMk/with+slash="},
    ),
    readback=[get(cal(NEXT_CALENDAR))],
)
for _bad_id in (
    "..",
    "../AAMk-bob",
    ".",
    "AAMk-1/..",
    "%2e%2e",
    "AAMk-1?x=1",
    "AAMk-1#x",
    " AAMk-1",
    "AAMk\t1",
    "x" * 301,
    "",
):
    case(
        "calendars.create",
        f"provider id {_bad_id[:20]!r}",
        post(
            CALENDARS,
            {"name": "Bad", "role": "source", "provider": "graph", "provider_id": _bad_id},
        ),
    )
case(
    "calendars.update",
    "re-point at another mailbox's calendar",
    patch(cal(REMOTE), {"provider_id": BOB_REMOTE_ID}),
    readback=[get(cal(REMOTE))],
)
case(
    "calendars.update",
    "turn a local calendar into another mailbox's",
    patch(cal(WORK), {"provider": "graph", "provider_id": BOB_REMOTE_ID}),
    readback=[get(cal(WORK))],
)
case(
    "calendars.update",
    "traversal in the provider id",
    patch(cal(REMOTE), {"provider_id": "../../users/bob@example.com/calendars/AAMk-bob"}),
)
case(
    "calendars.update",
    "rename a graph calendar without re-checking it",
    patch(cal(REMOTE), {"name": "Still remote"}),
)

# -- one reading of the session cookie on both backends ----------------------------------------

case(
    "auth.me",
    "two different session cookies are no session at all",
    get(ME, who="anonymous", headers=[("Cookie", "{alice_cookie}; {admin_cookie}")]),
    get(ME, who="anonymous", headers=[("Cookie", "{admin_cookie}; other=1; {alice_cookie}")]),
)
case(
    "auth.me",
    "the same session cookie twice is that session",
    get(ME, who="anonymous", headers=[("Cookie", "{alice_cookie}; {alice_cookie}")]),
)
case(
    "auth.me",
    "a forged second session cookie spoils the real one",
    get(ME, who="anonymous", headers=[("Cookie", "{alice_cookie}; aa_session=eyJ4IjoxfQ.x.y")]),
)
case(
    "auth.me",
    "an empty session cookie beside a real one",
    get(ME, who="anonymous", headers=[("Cookie", "aa_session=; {alice_cookie}")]),
)
# The jobs and archive domain cases live in their own modules; importing them registers them.
from tests.parity import cases_defaults, cases_domain, cases_jobs  # noqa: E402, F401
