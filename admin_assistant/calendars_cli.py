"""`admin-assistant calendars ...` (a user's calendars, by URI, and remote discovery) and
`admin-assistant timesheet export`."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from admin_assistant.runner import run_command
from shared.auth import Actor
from shared.date_phrases import parse_date_phrase
from shared.inputs.archive import TimesheetQuery
from shared.inputs.calendars import parse_calendar
from shared.pagination import PageRequest
from shared.runtime import Runtime

# The command line is an operator's tool: it sees every configuration, as an admin does.
_OPERATOR = Actor(user_id=0, email="cli", is_admin=True)


@click.group()
def calendars() -> None:
    """Calendars by URI (local://<name>, msgraph://me/calendars/<name-or-id>)."""


@calendars.command("list")
@click.option("--user", "email", help="Whose calendars (default: everyone's).")
@click.option("--remote", is_flag=True, help="The remote calendars of the user's mailbox instead.")
@click.option("--mailbox", help="With --remote: another mailbox (the user must be an admin).")
def calendars_list(email: str | None, remote: bool, mailbox: str | None) -> None:
    """List calendars with their URIs; with --remote, discover a mailbox's calendars."""
    if remote and email is None:
        raise click.UsageError("--remote lists a user's mailbox: name the user with --user")

    async def command(runtime: Runtime) -> list[dict[str, Any]]:
        actor = _OPERATOR if email is None else await runtime.services.users.actor_for(email)
        if remote:
            found = await runtime.services.calendars.remote(actor, mailbox)
            return list(found["data"])
        listed: list[dict[str, Any]] = []
        page = 1
        while True:
            result = await runtime.services.calendars.list(actor, PageRequest(page, 200))
            listed += [c for c in result.items if email is None or c["owner_id"] == actor.user_id]
            if page >= result.pages:
                return listed
            page += 1

    rows = run_command(command)
    if remote:
        click.echo(f"{'ADDED':>5} {'EDIT':4} {'NAME':30} URI")
        for row in rows:
            added = "-" if row["calendar_id"] is None else str(row["calendar_id"])
            edit = "yes" if row["can_edit"] else "no"
            click.echo(f"{added:>5} {edit:4} {row['name'][:30]:30} {row['uri']}")
        return
    click.echo(f"{'ID':>5} {'OWNER':>5} {'ROLE':8} {'NAME':30} URI")
    for row in rows:
        name = row["name"][:30]
        click.echo(f"{row['id']:>5} {row['owner_id']:>5} {row['role']:8} {name:30} {row['uri']}")


@calendars.command("add")
@click.argument("uri")
@click.option("--user", "email", required=True, help="The calendar's owner.")
@click.option("--role", type=click.Choice(["source", "archive"]), required=True)
@click.option("--name", default=None, help="Default: the name the URI resolves to.")
def calendars_add(uri: str, email: str, role: str, name: str | None) -> None:
    """Add a calendar by URI for a user (msgraph:// ones are looked up in their mailbox)."""
    body: dict[str, Any] = {"uri": uri, "role": role}
    if name is not None:
        body["name"] = name
    values = parse_calendar(body)

    async def command(runtime: Runtime) -> dict[str, Any]:
        actor = await runtime.services.users.actor_for(email)
        return await runtime.services.calendars.create(actor, values)

    created = run_command(command)
    click.echo(f"added calendar {created['id']} {created['name']!r}: {created['uri']}")


@click.group()
def timesheet() -> None:
    """Timesheets of timesheet configurations."""


@timesheet.command("export")
@click.argument("config_id", type=int)
@click.option("--start", help="First day: a date or a phrase (last month, last 7 days, ...).")
@click.option("--end", help="Last day, included (default: the phrase's last day, or today).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout.")
def timesheet_export(
    config_id: int, start: str | None, end: str | None, fmt: str, output: Path | None
) -> None:
    """Hours per category and per day of a timesheet configuration's archive."""
    for option, value in (("--start", start), ("--end", end)):
        if value is not None:
            try:
                parse_date_phrase(value)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint=option) from None

    async def command(runtime: Runtime) -> str:
        config = await runtime.services.archive.get_config(_OPERATOR, config_id)
        today = datetime.now(ZoneInfo(config["timezone"])).date()
        first = parse_date_phrase(start)(today) if start else None
        last = parse_date_phrase(end)(today) if end else None
        query = TimesheetQuery(
            first.first if first else None,
            last.last if last else (first.last if first else None),
            "csv" if fmt == "csv" else "json",
        )
        if fmt == "csv":
            text, _ = await runtime.services.timesheets.csv(_OPERATOR, config_id, query)
            return text
        summary = await runtime.services.timesheets.summary(_OPERATOR, config_id, query)
        return json.dumps(summary, indent=2) + "\n"

    text = run_command(command)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8", newline="")
        click.echo(f"wrote {output}", err=True)
