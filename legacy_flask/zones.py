"""The zone a page shows times in: the user's setting, else their browser's, else UTC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo, available_timezones

from flask import g, session

from legacy_flask.api import current_actor, services
from shared import bridge
from shared.validation import Problems, parse_timezone

__all__ = ["BROWSER_ZONE", "ZONE_NAMES", "DisplayZone", "display_zone"]

# The session key of the zone the browser reported (for users without a zone of their own).
BROWSER_ZONE = "browser_tz"
# What the time zone fields offer (any IANA name is accepted).
ZONE_NAMES = tuple(sorted(available_timezones() - {"localtime", "Factory"}))
_UTC = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class DisplayZone:
    """The zone a page shows times in, and where it came from."""

    zone: ZoneInfo
    source: Literal["setting", "browser", "default"]

    @property
    def name(self) -> str:
        return self.zone.key


def display_zone() -> DisplayZone:
    """The signed-in user's zone, else the browser's (as posted), else UTC; once per request."""
    if "display_zone" in g:
        return g.display_zone  # type: ignore[no-any-return]
    actor = current_actor()
    found = DisplayZone(_UTC, "default")
    setting = bridge.run(services().users.timezone_of(actor)) if actor is not None else None
    if setting:
        found = DisplayZone(ZoneInfo(setting), "setting")
    elif actor is not None and isinstance(session.get(BROWSER_ZONE), str):
        problems = Problems()
        zone = parse_timezone(session[BROWSER_ZONE], problems)
        if not problems.details:
            found = DisplayZone(zone, "browser")
    g.display_zone = found
    return found


def forget_display_zone() -> None:
    """After the user's zone changed: the next `display_zone` reads it again."""
    g.pop("display_zone", None)
