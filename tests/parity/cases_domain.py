"""Parity cases of the archive domain: calendars by URI and remote discovery, action items,
replace mode, timesheets, recurrence, immutable copies and the audit log (registered into
cases.CASES when cases.py imports this)."""

from __future__ import annotations

from tests.parity._seed import (
    ARCHIVE,
    BILLABLE_COPY,
    BOB_CONFIG,
    CLIENT_CALL,
    NEXT_CALENDAR,
    NEXT_CONFIG,
    OPEN_ITEM,
    REMOTE,
    REVIEW,
    SCRATCH,
    SERIES,
    STANDUP,
    STANDUP_COPY,
    TEAM_LUNCH_COPY,
    TIMESHEET_CAL,
    TIMESHEET_CONFIG,
    WORK,
    WORK_ARCHIVE,
)
from tests.parity.cases import (
    APPOINTMENTS,
    CALENDARS,
    CONFIGS,
    IGNORE,
    LOG,
    NEW_APPOINTMENT,
    add_sample_cases,
    appt,
    cal,
    case,
    config,
    delete,
    get,
    patch,
    post,
    run,
)

REMOTE_LIST = "/api/calendars/remote"
ITEMS = "/api/action-items"
AUDIT = "/api/audit"


def item(item_id: int) -> str:
    return f"{ITEMS}/{item_id}"


def resolve(item_id: int) -> str:
    return f"{ITEMS}/{item_id}/resolve"


def timesheet(config_id: int) -> str:
    return f"{CONFIGS}/{config_id}/timesheet"


_ITEM_CLOCK = ("$.created_at", "$.updated_at", "$.resolved_at")
IGNORE.update(
    {
        "calendars.remote": (),
        "action_items.list": tuple(p.replace("$.", "$.data[*].") for p in _ITEM_CLOCK),
        "action_items.get": _ITEM_CLOCK,
        "action_items.resolve": _ITEM_CLOCK,
        "archive_configs.timesheet": (),
        "audit.list": ("$.data[*].created_at",),
    }
)
# Copies written during a case carry each server's clock.
IGNORE["appointments.list"] = (*IGNORE["appointments.list"], "$.data[*].archived_at")
IGNORE["appointments.get"] = (*IGNORE["appointments.get"], "$.archived_at")

_MAY7 = "start=2026-05-07&end=2026-05-07"
_ARCHIVED = get(APPOINTMENTS, f"calendar_id={ARCHIVE}&per_page=50")

add_sample_cases(
    {
        "calendars.remote": (get(REMOTE_LIST), ()),
        "action_items.list": (get(ITEMS), ()),
        "action_items.get": (get(item(OPEN_ITEM)), ()),
        "action_items.resolve": (
            post(resolve(OPEN_ITEM), {"keep": ["evt-client"]}),
            (get(item(OPEN_ITEM)), _ARCHIVED),
        ),
        "archive_configs.timesheet": (get(timesheet(TIMESHEET_CONFIG), _MAY7), ()),
        "audit.list": (get(AUDIT, "per_page=5"), ()),
    }
)

# -- discovery ------------------------------------------------------------------------------------

case("calendars.remote", "own mailbox named", get(REMOTE_LIST, "mailbox=ALICE@example.com"))
case(
    "calendars.remote", "another mailbox is for admins", get(REMOTE_LIST, "mailbox=bob@example.com")
)
case(
    "calendars.remote",
    "admin lists a user's mailbox",
    get(REMOTE_LIST, "mailbox=alice@example.com", "admin"),
)
case("calendars.remote", "one calendar", get(REMOTE_LIST, who="bob"))
case("calendars.remote", "a mailbox without calendars", get(REMOTE_LIST, who="carol"))
for _bad in ("not-an-address", "a@b", "x" * 400, "alice@example.com/../bob"):
    case("calendars.remote", f"bad mailbox {_bad[:20]!r}", get(REMOTE_LIST, f"mailbox={_bad}"))
case(
    "calendars.remote",
    "an added calendar shows its id",
    post(CALENDARS, {"uri": "msgraph://me/calendars/Birthdays", "role": "source"}),
    get(REMOTE_LIST),
)
case(
    "calendars.remote",
    "unrouted method is answered by Flask",
    post(REMOTE_LIST, {}, served_by="legacy"),
)

# -- calendars by URI -----------------------------------------------------------------------------

_NEW = (get(cal(NEXT_CALENDAR)),)
for _uri, _what in (
    ("msgraph://me/calendars/Calendar", "by remote name"),
    ("msgraph://me/calendars/BIRTHDAYS", "by name, any case"),
    ("msgraph://me/calendars/AAMk-9", "by remote id"),
    ("msgraph://me/calendars/AAMk%2Fwith+slash=", "by an id holding a slash"),
    ("MSGRAPH://me/calendars/Odd%20one", "percent-encoded name"),
    ("local://Team", "local by name"),
    ("local://Caf%C3%A9", "local name percent-encoded"),
):
    case(
        "calendars.create",
        f"uri {_what}",
        post(CALENDARS, {"uri": _uri, "role": "source"}),
        readback=_NEW,
    )
for _uri, _what in (
    ("msgraph://me/calendars/team", "ambiguous remote name"),
    ("msgraph://me/calendars/Nope", "no such remote calendar"),
    ("msgraph://users/bob@example.com/calendars/Calendar", "another mailbox as a user"),
    ("msgraph://users/not-a-mailbox/calendars/x", "a bad mailbox"),
    ("local://work", "a local name taken"),
    ("ftp://x", "not a calendar URI"),
    ("local://", "empty local name"),
    ("msgraph://me/calendars/", "empty remote name"),
):
    case("calendars.create", f"uri {_what}", post(CALENDARS, {"uri": _uri, "role": "source"}))
case(
    "calendars.create",
    "admin adds another mailbox's calendar",
    post(
        CALENDARS,
        {"uri": "msgraph://users/bob@example.com/calendars/Calendar", "role": "source"},
        "admin",
    ),
    readback=_NEW,
)
case(
    "calendars.create",
    "uri with a name of its own",
    post(
        CALENDARS, {"uri": "msgraph://me/calendars/Calendar", "role": "archive", "name": "Outlook"}
    ),
    readback=_NEW,
)
case(
    "calendars.create",
    "uri and provider together",
    post(CALENDARS, {"uri": "local://X", "role": "source", "provider": "local"}),
)
case("calendars.create", "uri of the wrong type", post(CALENDARS, {"uri": 5, "role": "source"}))
case("calendars.create", "uri null", post(CALENDARS, {"uri": None, "role": "source"}))
case("calendars.create", "uri without a role", post(CALENDARS, {"uri": "local://X"}))
case(
    "calendars.update",
    "re-point by uri",
    patch(cal(REMOTE), {"uri": "msgraph://me/calendars/Calendar"}),
    readback=[get(cal(REMOTE))],
)
case(
    "calendars.update",
    "re-point at another mailbox by uri",
    patch(cal(REMOTE), {"uri": "msgraph://users/bob@example.com/calendars/Calendar"}),
)
case(
    "calendars.update",
    "a local calendar renamed by uri",
    patch(cal(SCRATCH), {"uri": "local://Notes"}),
    readback=[get(cal(SCRATCH))],
)

# -- configurations by URI, overlaps, modes, purposes ---------------------------------------------

_BY_URI = {
    "name": "By URI",
    "source_calendar": "local://scratch",
    "archive_calendar": "local://Archive",
}
_NEW_CONFIG = (get(config(NEXT_CONFIG)),)
case("archive_configs.create", "calendars by uri", post(CONFIGS, _BY_URI), readback=_NEW_CONFIG)
case(
    "archive_configs.create",
    "a remote source by uri",
    post(CONFIGS, {**_BY_URI, "source_calendar": "msgraph://me/calendars/Remote"}),
    readback=_NEW_CONFIG,
)
case(
    "archive_configs.create",
    "a remote calendar not added",
    post(CONFIGS, {**_BY_URI, "source_calendar": "msgraph://me/calendars/Birthdays"}),
)
case(
    "archive_configs.create",
    "an ambiguous local name",
    post(CALENDARS, {"name": "SCRATCH", "role": "source"}),
    post(CONFIGS, _BY_URI),
)
case(
    "archive_configs.create",
    "an unknown local name",
    post(CONFIGS, {**_BY_URI, "archive_calendar": "local://Nope"}),
)
case(
    "archive_configs.create",
    "uri and id together",
    post(CONFIGS, {**_BY_URI, "source_calendar_id": SCRATCH}),
)
case(
    "archive_configs.create",
    "the same calendar twice by uri",
    post(CONFIGS, {**_BY_URI, "source_calendar": "local://archive"}),
)
case(
    "archive_configs.create",
    "someone else's mailbox by uri",
    post(
        CONFIGS,
        {**_BY_URI, "source_calendar": "msgraph://users/bob@example.com/calendars/Calendar"},
    ),
)
case(
    "archive_configs.create",
    "a timesheet gets the default categories",
    post(CONFIGS, {**_BY_URI, "purpose": "timesheet", "mode": "replace", "allow_overlaps": True}),
    readback=_NEW_CONFIG,
)
case(
    "archive_configs.create",
    "bad mode, purpose and categories",
    post(
        CONFIGS,
        {
            **_BY_URI,
            "mode": "sideways",
            "purpose": "fun",
            "allow_overlaps": "no",
            "timesheet_categories": "Billable",
        },
    ),
)
case(
    "archive_configs.update",
    "archive calendar by uri, replace mode",
    patch(config(WORK_ARCHIVE), {"archive_calendar": "local://Timesheet", "mode": "replace"}),
    readback=[get(config(WORK_ARCHIVE))],
)
case("archive_configs.update", "uri null", patch(config(WORK_ARCHIVE), {"source_calendar": None}))

# -- runs: replace mode, recurrence, action items -------------------------------------------------

_MAY = {"start": "2026-05-04", "end": "2026-05-05"}
case(
    "archive.run",
    "replace after a change, a cancellation and an addition; again changes nothing",
    patch(
        appt(REVIEW),
        {
            "subject": "Review (moved)",
            "start": "2026-05-05T12:00:00Z",
            "end": "2026-05-05T13:00:00Z",
        },
    ),
    delete(appt(STANDUP)),
    post(
        APPOINTMENTS,
        {**NEW_APPOINTMENT, "start": "2026-05-05T15:00:00Z", "end": "2026-05-05T16:00:00Z"},
    ),
    post(run(WORK_ARCHIVE), {**_MAY, "mode": "replace"}),
    post(run(WORK_ARCHIVE), {**_MAY, "mode": "replace"}),
    readback=[_ARCHIVED, get(LOG, f"config_id={WORK_ARCHIVE}&per_page=2")],
)
case(
    "archive.run", "append is the default mode", post(run(WORK_ARCHIVE), _MAY), readback=[_ARCHIVED]
)
case("archive.run", "an unknown mode", post(run(WORK_ARCHIVE), {**_MAY, "mode": "sideways"}))
case(
    "archive.run",
    "a recurring series with a cancelled and a moved occurrence",
    post(run(WORK_ARCHIVE), {"start": "2026-06-01", "end": "2026-07-10"}),
    readback=[get(APPOINTMENTS, f"calendar_id={ARCHIVE}&start=2026-06-01&end=2026-07-10")],
)
case(
    "archive.run",
    "an overlap seen again keeps its one action item",
    post(run(WORK_ARCHIVE), {"start": "2026-05-06", "end": "2026-05-06"}),
    readback=[get(ITEMS)],
)
case(
    "archive.run",
    "an overlap gone supersedes its action item",
    delete(appt(CLIENT_CALL)),
    post(run(WORK_ARCHIVE), {"start": "2026-05-06", "end": "2026-05-06"}),
    readback=[get(item(OPEN_ITEM)), _ARCHIVED],
)
case(
    "archive.run",
    "a timesheet run keeps business time only",
    post(run(TIMESHEET_CONFIG), {"start": "2026-05-04", "end": "2026-05-07"}),
    readback=[get(APPOINTMENTS, f"calendar_id={TIMESHEET_CAL}")],
)

# -- archived copies are immutable ----------------------------------------------------------------

case("appointments.update", "an archived copy", patch(appt(STANDUP_COPY), {"subject": "Edited"}))
case(
    "appointments.delete",
    "an archived copy",
    delete(appt(TEAM_LUNCH_COPY)),
    readback=[get(appt(TEAM_LUNCH_COPY))],
)
case(
    "appointments.update",
    "an admin cannot change a copy either",
    patch(appt(BILLABLE_COPY), {"location": "x"}, "admin"),
)

# -- appointment fields, series and exceptions ----------------------------------------------------

_NEW_APPT = (get(appt(36)),)
case(
    "appointments.create",
    "availability, importance, sensitivity, all day",
    post(
        APPOINTMENTS,
        {
            **NEW_APPOINTMENT,
            "show_as": "workingElsewhere",
            "importance": "high",
            "sensitivity": "confidential",
            "is_all_day": True,
            "start": "2026-06-01T00:00:00+02:00",
            "end": "2026-06-02T00:00:00+02:00",
        },
    ),
    readback=_NEW_APPT,
)
case(
    "appointments.create",
    "bad availability, importance and sensitivity",
    post(
        APPOINTMENTS,
        {
            **NEW_APPOINTMENT,
            "show_as": "away",
            "importance": "urgent",
            "sensitivity": "secret",
            "is_all_day": "yes",
        },
    ),
)
case(
    "appointments.create",
    "sensitivity contradicting is_private",
    post(APPOINTMENTS, {**NEW_APPOINTMENT, "is_private": True, "sensitivity": "normal"}),
)
case(
    "appointments.create",
    "all day not at midnight",
    post(APPOINTMENTS, {**NEW_APPOINTMENT, "is_all_day": True}),
)
case(
    "appointments.create",
    "a series",
    post(
        APPOINTMENTS,
        {
            **NEW_APPOINTMENT,
            "recurrence": {
                "rrule": "RRULE:FREQ=DAILY;COUNT=3;UNTIL=20260610T000000Z",
                "timezone": "Europe/Berlin",
            },
        },
    ),
    readback=_NEW_APPT,
)
for _rule, _what in (
    ({"rrule": "FREQ=HOURLY"}, "hourly"),
    ({"rrule": "FREQ=WEEKLY;BYDAY=XX"}, "a bad day"),
    ({"rrule": ""}, "an empty rule"),
    ({"rrule": "DTSTART:20260101T000000\nRRULE:FREQ=DAILY"}, "a DTSTART"),
    ({"rrule": "FREQ=DAILY", "timezone": "Mars/Base"}, "an unknown zone"),
    ({"rrule": "FREQ=DAILY", "exdates": ["2026-06-02"]}, "an exdate without offset"),
    ({"rrule": "FREQ=DAILY", "every": 2}, "an unknown key"),
    ("FREQ=DAILY", "a string"),
):
    case(
        "appointments.create",
        f"recurrence {_what}",
        post(APPOINTMENTS, {**NEW_APPOINTMENT, "recurrence": _rule}),
    )
_EXCEPTION = {
    **NEW_APPOINTMENT,
    "series_id": SERIES,
    "start": "2026-06-09T12:00:00+02:00",
    "end": "2026-06-09T13:00:00+02:00",
}
case(
    "appointments.create",
    "an exception of an occurrence",
    post(APPOINTMENTS, {**_EXCEPTION, "original_start": "2026-06-08T09:00:00+02:00"}),
    readback=_NEW_APPT,
)
case(
    "appointments.create",
    "an exception of no occurrence",
    post(APPOINTMENTS, {**_EXCEPTION, "original_start": "2026-06-08T10:00:00+02:00"}),
)
case("appointments.create", "an exception without its start", post(APPOINTMENTS, _EXCEPTION))
case(
    "appointments.create",
    "an exception of a single appointment",
    post(
        APPOINTMENTS, {**_EXCEPTION, "series_id": REVIEW, "original_start": "2026-05-05T10:00:00Z"}
    ),
)
case(
    "appointments.update",
    "a series' rule",
    patch(appt(SERIES), {"recurrence": {"rrule": "FREQ=WEEKLY;COUNT=2"}}),
    readback=[get(appt(SERIES))],
)
case(
    "appointments.update",
    "a series' bad rule",
    patch(appt(SERIES), {"recurrence": {"rrule": "FREQ=MINUTELY"}}),
)

# -- action items ---------------------------------------------------------------------------------

for _query in (
    "state=open",
    "state=resolved",
    f"config_id={WORK_ARCHIVE}",
    f"config_id={TIMESHEET_CONFIG}",
    "per_page=1&page=2",
):
    case("action_items.list", f"filter {_query}", get(ITEMS, _query))
for _query in ("state=closed", "config_id=abc", "config_id=0", "per_page=500"):
    case("action_items.list", f"bad {_query}", get(ITEMS, _query))
case("action_items.list", "another user's configuration", get(ITEMS, f"config_id={BOB_CONFIG}"))
case("action_items.list", "a user without items", get(ITEMS, who="bob"))
case("action_items.list", "admin sees every item", get(ITEMS, who="admin"))
case("action_items.get", "another user's item", get(item(OPEN_ITEM), who="bob"))
case("action_items.get", "admin reads a user's item", get(item(OPEN_ITEM), who="admin"))
case("action_items.get", "not found", get(item(999)))
case("action_items.get", "id zero", get(item(0)))
case(
    "action_items.get",
    "non-numeric id never reaches a twin",
    get(f"{ITEMS}/abc", served_by="legacy"),
)

_RESOLVED = (get(item(OPEN_ITEM)), _ARCHIVED, get(AUDIT, "target=action_item:1", "admin"))
case(
    "action_items.resolve",
    "keep all",
    post(resolve(OPEN_ITEM), {"keep_all": True}),
    readback=_RESOLVED,
)
case(
    "action_items.resolve",
    "then archived once: a later run follows the decision",
    post(resolve(OPEN_ITEM), {"keep": ["evt-design"]}),
    post(run(WORK_ARCHIVE), {"start": "2026-05-06", "end": "2026-05-06"}),
    readback=_RESOLVED,
)
case(
    "action_items.resolve",
    "twice",
    post(resolve(OPEN_ITEM), {"keep_all": True}),
    post(resolve(OPEN_ITEM), {"keep_all": True}),
)
case(
    "action_items.resolve",
    "an event not in the item",
    post(resolve(OPEN_ITEM), {"keep": ["evt-review"]}),
)
case(
    "action_items.resolve",
    "keep and keep_all",
    post(resolve(OPEN_ITEM), {"keep": ["evt-client"], "keep_all": True}),
)
case("action_items.resolve", "keep_all false", post(resolve(OPEN_ITEM), {"keep_all": False}))
case("action_items.resolve", "nothing chosen", post(resolve(OPEN_ITEM), {}))
case("action_items.resolve", "an empty keep", post(resolve(OPEN_ITEM), {"keep": []}))
case(
    "action_items.resolve",
    "keep of the wrong type",
    post(resolve(OPEN_ITEM), {"keep": "evt-client"}),
)
case(
    "action_items.resolve",
    "an unknown field",
    post(resolve(OPEN_ITEM), {"keep_all": True, "note": "x"}),
)
case("action_items.resolve", "malformed JSON", post(resolve(OPEN_ITEM), raw=b'{"keep": '))
case("action_items.resolve", "JSON null", post(resolve(OPEN_ITEM), raw=b"null"))
case(
    "action_items.resolve",
    "not JSON",
    post(resolve(OPEN_ITEM), raw=b"keep=all", content_type="application/x-www-form-urlencoded"),
)
case("action_items.resolve", "no body", post(resolve(OPEN_ITEM)))
case(
    "action_items.resolve",
    "another user's item",
    post(resolve(OPEN_ITEM), {"keep_all": True}, "bob"),
)
case(
    "action_items.resolve",
    "admin resolves a user's item",
    post(resolve(OPEN_ITEM), {"keep": ["evt-design"]}, "admin"),
    readback=_RESOLVED,
)
case("action_items.resolve", "not found", post(resolve(999), {"keep_all": True}))
case(
    "action_items.resolve",
    "unrouted method is answered by Flask",
    get(resolve(OPEN_ITEM), served_by="legacy"),
)

# -- timesheets -----------------------------------------------------------------------------------

case("archive_configs.timesheet", "CSV", get(timesheet(TIMESHEET_CONFIG), _MAY7 + "&format=csv"))
case(
    "archive_configs.timesheet",
    "a week in CSV",
    get(timesheet(TIMESHEET_CONFIG), "start=2026-05-04&end=2026-05-10&format=csv"),
)
case(
    "archive_configs.timesheet",
    "start alone",
    get(timesheet(TIMESHEET_CONFIG), "start=2026-05-07&end=2026-05-08"),
)
for _query in (
    "format=xml",
    "start=2026-05-08&end=2026-05-07",
    "start=yesterday",
    "start=2026-02-30",
    "start=2026-01-01&end=2027-06-01",
    "end=2026-13-01",
):
    case("archive_configs.timesheet", f"bad {_query}", get(timesheet(TIMESHEET_CONFIG), _query))
case("archive_configs.timesheet", "a general configuration", get(timesheet(WORK_ARCHIVE), _MAY7))
case(
    "archive_configs.timesheet",
    "another user's configuration",
    get(timesheet(TIMESHEET_CONFIG), _MAY7, "bob"),
)
case(
    "archive_configs.timesheet",
    "admin reads a user's timesheet",
    get(timesheet(TIMESHEET_CONFIG), _MAY7 + "&format=csv", "admin"),
)
case("archive_configs.timesheet", "not found", get(timesheet(999), _MAY7))
case(
    "archive_configs.timesheet",
    "after a run of the week",
    post(run(TIMESHEET_CONFIG), {"start": "2026-05-04", "end": "2026-05-10"}),
    get(timesheet(TIMESHEET_CONFIG), "start=2026-05-04&end=2026-05-10"),
)

# -- audit ----------------------------------------------------------------------------------------

case("audit.list", "admin reads it", get(AUDIT, who="admin"))
case("audit.list", "admin through a session cookie", get(AUDIT, "per_page=3", "admin_cookie"))
for _query in (
    "target=calendar:1",
    "actor=alice@example.com&per_page=3",
    "action=job.",
    "action=calendar.create",
    "action=archive_config.create&per_page=1&page=2",
):
    case("audit.list", f"filter {_query}", get(AUDIT, _query, "admin"))
for _query in ("per_page=0", "page=abc", "target=" + "x" * 301):
    case("audit.list", f"bad {_query[:30]}", get(AUDIT, _query, "admin"))
case(
    "audit.list",
    "a change is recorded with before and after",
    patch(cal(WORK), {"name": "Work (renamed)"}),
    patch(config(WORK_ARCHIVE), {"days_back": 2}),
    delete(cal(SCRATCH)),
    get(AUDIT, "per_page=3", "admin"),
)
case("audit.list", "a user is refused", get(AUDIT, who="bob"))
