"""Parity cases of the jobs endpoints (registered into cases.CASES when cases.py imports this)."""

from __future__ import annotations

from tests.parity._contract import Call
from tests.parity._seed import (
    BOB_CONFIG,
    JOB_BOB,
    JOB_BUSY,
    JOB_DISABLED,
    JOB_WORK,
    NEXT_JOB,
    PAUSED,
    WORK_ARCHIVE,
)
from tests.parity.cases import (
    IGNORE,
    add_body_cases,
    add_sample_cases,
    case,
    config,
    delete,
    get,
    patch,
    post,
)

JOBS = "/api/jobs"
HEALTH = "/api/jobs/health"


def job(job_id: int) -> str:
    return f"{JOBS}/{job_id}"


def trigger(job_id: int) -> str:
    return f"{JOBS}/{job_id}/trigger"


def runs(job_id: int) -> str:
    return f"{JOBS}/{job_id}/runs"


# Computed from the clock when written: the next run, and a run queued "now".
_JOB_CLOCK = ("$.created_at", "$.updated_at", "$.next_run_at", "$.last_run.scheduled_for")
IGNORE.update(
    {
        "jobs.list": tuple(p.replace("$.", "$.data[*].") for p in _JOB_CLOCK),
        "jobs.create": _JOB_CLOCK,
        "jobs.health": ("$.next_runs[*].next_run_at", "$.next_runs[*].next_run_local"),
        "jobs.get": _JOB_CLOCK,
        "jobs.update": _JOB_CLOCK,
        "jobs.delete": (),
        "jobs.trigger": ("$.scheduled_for",),
        "jobs.runs": ("$.data[*].scheduled_for",),
    }
)

NEW_JOB = {
    "archive_config_id": WORK_ARCHIVE,
    "schedule": "daily@03:15",
    "timezone": "America/New_York",
    "misfire": "skip",
    "days_back": 2,
    "days_forward": 0,
}

add_sample_cases(
    {
        "jobs.list": (get(JOBS), ()),
        "jobs.create": (post(JOBS, NEW_JOB), (get(job(NEXT_JOB)), get(JOBS))),
        "jobs.health": (get(HEALTH), ()),
        "jobs.get": (get(job(JOB_WORK)), ()),
        "jobs.update": (
            patch(job(JOB_WORK), {"schedule": "weekly@fri 18:00", "misfire": "skip"}),
            (get(job(JOB_WORK)),),
        ),
        "jobs.delete": (delete(job(JOB_WORK)), (get(job(JOB_WORK)), get(JOBS))),
        "jobs.trigger": (post(trigger(JOB_WORK)), (get(runs(JOB_WORK)), get(job(JOB_WORK)))),
        "jobs.runs": (get(runs(JOB_BUSY)), ()),
    }
)
add_body_cases(
    {
        "jobs.create": (JOBS, "POST", NEW_JOB),
        "jobs.update": (job(JOB_WORK), "PATCH", {"schedule": "every 15m"}),
    }
)

# -- list -----------------------------------------------------------------------------------------

case("jobs.list", "admin sees every job", get(JOBS, who="admin"))
case("jobs.list", "another user sees only theirs", get(JOBS, who="bob"))
case("jobs.list", "empty", get(JOBS, who="carol"))
for _query in ("per_page=1", "per_page=2&page=2", "per_page=1&page=9", "page=0", "per_page=abc"):
    case("jobs.list", f"pagination {_query}", get(JOBS, _query))

# -- create ---------------------------------------------------------------------------------------

_CREATED = (get(job(NEXT_JOB)),)
case(
    "jobs.create",
    "defaults: the configuration's time zone, run_once, its window",
    post(JOBS, {"archive_config_id": WORK_ARCHIVE, "schedule": "0 2 * * *"}),
    readback=_CREATED,
)
case(
    "jobs.create",
    "explicit null time zone is the configuration's",
    post(JOBS, {"archive_config_id": BOB_CONFIG, "schedule": "every 1h", "timezone": None}, "bob"),
    readback=_CREATED,
)
case(
    "jobs.create",
    "disabled from the start has no next run",
    post(JOBS, {**NEW_JOB, "enabled": False}),
    readback=_CREATED,
)
for _schedule in (" Weekly@MON  02:00 ", "every 90s", "*/5 9-17 * * mon-fri"):
    case(
        "jobs.create",
        f"schedule {_schedule.strip()}",
        post(JOBS, {**NEW_JOB, "schedule": _schedule}),
        readback=_CREATED,
    )
for _schedule in (
    "61 * * * *",
    "0 2 * *",
    "0 0 31 2 *",
    "daily@25:00",
    "weekly@xyz 02:00",
    "every 0s",
    "every 15d",
    "",
    "x" * 101,
    "0 2 * * *\x00",
):
    case(
        "jobs.create",
        f"bad schedule {_schedule[:20]!r}",
        post(JOBS, {**NEW_JOB, "schedule": _schedule}),
    )
case("jobs.create", "unknown time zone", post(JOBS, {**NEW_JOB, "timezone": "Mars/Base"}))
case(
    "jobs.create",
    "someone else's configuration",
    post(JOBS, {**NEW_JOB, "archive_config_id": BOB_CONFIG}),
)
case("jobs.create", "configuration not found", post(JOBS, {**NEW_JOB, "archive_config_id": 999}))
case(
    "jobs.create",
    "admin schedules another user's configuration",
    post(JOBS, {**NEW_JOB, "archive_config_id": BOB_CONFIG}, "admin"),
    readback=[get(JOBS, who="admin")],
)
case("jobs.create", "paused configuration", post(JOBS, {**NEW_JOB, "archive_config_id": PAUSED}))
case("jobs.create", "missing fields", post(JOBS, {}))
case(
    "jobs.create",
    "wrong types",
    post(
        JOBS,
        {
            "archive_config_id": "1",
            "schedule": 5,
            "timezone": 1,
            "enabled": "yes",
            "misfire": "later",
            "days_back": -1,
            "days_forward": 3651,
        },
    ),
)
case("jobs.create", "unknown field", post(JOBS, {**NEW_JOB, "next_run_at": "2030-01-01"}))

# -- get ------------------------------------------------------------------------------------------

case("jobs.get", "with a queued run", get(job(JOB_BUSY)))
case("jobs.get", "disabled", get(job(JOB_DISABLED)))
case("jobs.get", "another user's job", get(job(JOB_BOB)))
case("jobs.get", "admin reads another user's job", get(job(JOB_BOB), who="admin"))
case("jobs.get", "not found", get(job(999)))
case("jobs.get", "id zero", get(job(0)))
case("jobs.get", "id beyond 64 bits", get(f"{JOBS}/99999999999999999999"))
case("jobs.get", "non-numeric id never reaches a twin", get(f"{JOBS}/abc", served_by="legacy"))
case(
    "jobs.get",
    "unrouted method is answered by Flask",
    Call("PUT", job(JOB_WORK), "alice", served_by="legacy"),
)

# -- update ---------------------------------------------------------------------------------------

_READ = (get(job(JOB_WORK)),)
case("jobs.update", "disable", patch(job(JOB_WORK), {"enabled": False}), readback=_READ)
case(
    "jobs.update",
    "enable a disabled job",
    patch(job(JOB_DISABLED), {"enabled": True}),
    readback=[get(job(JOB_DISABLED))],
)
case(
    "jobs.update",
    "window override and back to the configuration's",
    patch(job(JOB_WORK), {"days_back": 30, "days_forward": 1}),
    patch(job(JOB_WORK), {"days_back": None}),
    readback=_READ,
)
case(
    "jobs.update",
    "move to another configuration of one's own",
    patch(job(JOB_WORK), {"archive_config_id": PAUSED}),
    readback=_READ,
)
case(
    "jobs.update",
    "move to someone else's configuration",
    patch(job(JOB_WORK), {"archive_config_id": BOB_CONFIG}),
    readback=_READ,
)
case("jobs.update", "bad schedule", patch(job(JOB_WORK), {"schedule": "every other day"}))
case("jobs.update", "unknown time zone", patch(job(JOB_WORK), {"timezone": "Berlin"}))
case("jobs.update", "null time zone", patch(job(JOB_WORK), {"timezone": None}))
case("jobs.update", "null enabled", patch(job(JOB_WORK), {"enabled": None}))
case("jobs.update", "empty object", patch(job(JOB_WORK), {}))
case("jobs.update", "unknown field", patch(job(JOB_WORK), {"owner_id": 3}))
case(
    "jobs.update",
    "another user's job",
    patch(job(JOB_BOB), {"enabled": False}),
    readback=[get(job(JOB_BOB))],
)
case(
    "jobs.update",
    "admin updates another user's job",
    patch(job(JOB_BOB), {"schedule": "daily@07:00"}, "admin"),
    readback=[get(job(JOB_BOB))],
)
case("jobs.update", "not found", patch(job(999), {"enabled": False}))
case("jobs.update", "not found with an invalid body", patch(job(999), {"schedule": 1}))

# -- delete ---------------------------------------------------------------------------------------

case("jobs.delete", "twice", delete(job(JOB_WORK)), delete(job(JOB_WORK)))
case(
    "jobs.delete",
    "with its runs",
    delete(job(JOB_BUSY)),
    readback=[get(runs(JOB_BUSY)), get(JOBS)],
)
case("jobs.delete", "another user's job", delete(job(JOB_BOB)), readback=[get(job(JOB_BOB))])
case("jobs.delete", "admin deletes another user's job", delete(job(JOB_BOB), "admin"))
case("jobs.delete", "not found", delete(job(999)))
case(
    "jobs.delete",
    "deleting the configuration deletes its jobs",
    delete(config(WORK_ARCHIVE)),
    delete(job(JOB_WORK)),
    readback=[get(JOBS)],
)

# -- trigger --------------------------------------------------------------------------------------

case(
    "jobs.trigger",
    "twice: the second is refused while the first waits",
    post(trigger(JOB_WORK)),
    post(trigger(JOB_WORK)),
    readback=[get(runs(JOB_WORK))],
)
case("jobs.trigger", "a job with a run queued", post(trigger(JOB_BUSY)))
case("jobs.trigger", "a disabled job", post(trigger(JOB_DISABLED)))
case("jobs.trigger", "another user's job", post(trigger(JOB_BOB)))
case(
    "jobs.trigger",
    "admin triggers another user's job",
    post(trigger(JOB_BOB), who="admin"),
    readback=[get(runs(JOB_BOB))],
)
case("jobs.trigger", "not found", post(trigger(999)))
case("jobs.trigger", "a body is ignored", post(trigger(JOB_WORK), {"now": True}))
case(
    "jobs.trigger",
    "unrouted method is answered by Flask",
    get(trigger(JOB_WORK), served_by="legacy"),
)

# -- runs -----------------------------------------------------------------------------------------

case("jobs.runs", "a job without runs", get(runs(JOB_WORK)))
case("jobs.runs", "another user's job", get(runs(JOB_BUSY), who="bob"))
case("jobs.runs", "admin reads another user's runs", get(runs(JOB_BUSY), who="admin"))
case("jobs.runs", "not found", get(runs(999)))
for _query in ("per_page=1", "per_page=1&page=2", "page=0", "per_page=201"):
    case("jobs.runs", f"pagination {_query}", get(runs(JOB_BUSY), _query))
case(
    "jobs.runs",
    "after a trigger",
    post(trigger(JOB_WORK)),
    get(runs(JOB_WORK)),
)

# -- health ---------------------------------------------------------------------------------------

case("jobs.health", "admin sees every job's next run", get(HEALTH, who="admin"))
case("jobs.health", "another user sees their own", get(HEALTH, who="bob"))
case("jobs.health", "a user without jobs", get(HEALTH, who="carol"))
case(
    "jobs.health",
    "after a new job and a trigger",
    post(JOBS, NEW_JOB),
    post(trigger(JOB_WORK)),
    get(HEALTH),
)
case("jobs.health", "unrouted method is answered by Flask", post(HEALTH, served_by="legacy"))
