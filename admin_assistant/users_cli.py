"""`admin-assistant users ...` and `tokens ...`: accounts, their sign-in, and API tokens."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import click

from admin_assistant.runner import run_command
from shared.runtime import Runtime

_DURATION = re.compile(r"(\d+)([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


# -- users -------------------------------------------------------------------------------------


@click.group()
def users() -> None:
    """User accounts."""


@users.command("create")
@click.argument("email")
@click.option("--password", required=True, help="At least 8 characters.")
@click.option("--name", default="")
@click.option("--admin", is_flag=True, help="Give the user admin rights.")
def users_create(email: str, password: str, name: str, admin: bool) -> None:
    """Create a user."""

    async def command(runtime: Runtime) -> None:
        user = await runtime.services.users.create(email, password, name=name, is_admin=admin)
        click.echo(f"created user {user['id']} {user['email']}{' (admin)' if admin else ''}")

    run_command(command)


@users.command("disable")
@click.argument("email")
def users_disable(email: str) -> None:
    """Disable a user: sign-in is refused, every session and API token is revoked."""

    async def command(runtime: Runtime) -> dict[str, Any]:
        return await runtime.services.users.set_disabled(email, True)

    user = run_command(command)
    click.echo(
        f"disabled user {user['id']} {user['email']}: sessions ended, "
        f"{user['tokens_revoked']} API token(s) revoked"
    )


@users.command("enable")
@click.argument("email")
def users_enable(email: str) -> None:
    """Enable a disabled user again (revoked tokens stay revoked; issue new ones)."""

    async def command(runtime: Runtime) -> dict[str, Any]:
        return await runtime.services.users.set_disabled(email, False)

    user = run_command(command)
    click.echo(f"enabled user {user['id']} {user['email']}")


@users.command("set-password")
@click.argument("email")
@click.option("--password", required=True, help="At least 8 characters.")
def users_set_password(email: str, password: str) -> None:
    """Set a user's password; every session of the user ends."""

    async def command(runtime: Runtime) -> None:
        await runtime.services.users.set_password(email, password)

    run_command(command)
    click.echo(f"password of {email} changed; its sessions are signed out")


@users.command("set-mailbox")
@click.argument("email")
@click.argument("mailbox")
def users_set_mailbox(email: str, mailbox: str) -> None:
    """Bind a user to the remote (Graph) mailbox whose calendars they may use."""

    async def command(runtime: Runtime) -> dict[str, Any]:
        return await runtime.services.users.set_mailbox(email, mailbox)

    user = run_command(command)
    click.echo(f"user {user['email']} now reaches the calendars of mailbox {user['mailbox']}")


# -- tokens ------------------------------------------------------------------------------------


@click.group()
def tokens() -> None:
    """API tokens."""


def parse_duration(value: str | None) -> timedelta | None:
    """`30d`, `12h` or `90m` as a timedelta; click's BadParameter for anything else."""
    if value is None:
        return None
    match = _DURATION.fullmatch(value.strip())
    if match is None or int(match.group(1)) == 0:
        raise click.BadParameter(
            f"{value!r} is not a duration (use e.g. 30d, 12h or 90m)", param_hint="--expires-in"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@tokens.command("create")
@click.option("--user", "email", required=True, help="Email of the token's owner.")
@click.option("--name", default="", help="A label for the token.")
@click.option("--expires-in", help="Lifetime such as 30d, 12h or 90m (default: no expiry).")
def tokens_create(email: str, name: str, expires_in: str | None) -> None:
    """Issue an API token; it is printed once, alone on the last line."""
    lifetime = parse_duration(expires_in)

    async def command(runtime: Runtime) -> str:
        return await runtime.services.tokens.create(email, name=name, expires_in=lifetime)

    token = run_command(command)
    click.echo("store this token now; it cannot be shown again:", err=True)
    click.echo(token)


@tokens.command("list")
@click.option("--user", "email", help="Only this user's tokens.")
def tokens_list(email: str | None) -> None:
    """List tokens (never their secrets): id, owner, name, state, dates."""

    async def command(runtime: Runtime) -> list[dict[str, Any]]:
        return await runtime.services.tokens.listing(email)

    rows = run_command(command)
    if not rows:
        click.echo("no tokens")
        return
    click.echo(f"{'ID':>5}  {'USER':<30} {'NAME':<20} {'STATE':<8} EXPIRES / LAST USED")
    for row in rows:
        state = "revoked" if row["revoked_at"] else "active"
        click.echo(
            f"{row['id']:>5}  {row['user']:<30} {row['name'] or '-':<20} {state:<8} "
            f"{row['expires_at'] or 'never'} / {row['last_used_at'] or 'never'}"
        )


@tokens.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke a token by id; other processes stop accepting it within AA_AUTH_CACHE_S."""

    async def command(runtime: Runtime) -> dict[str, Any]:
        return await runtime.services.tokens.revoke(token_id)

    row = run_command(command)
    click.echo(f"revoked token {row['id']} of {row['user']}")
