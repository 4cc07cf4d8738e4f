"""The zone a page shows times in (the user's setting, else their browser's, else UTC), and the
template filters that show times in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from flask import Blueprint, g, session
from markupsafe import Markup

from legacy_flask.api import current_actor, services
from legacy_flask.local_times import readable_moment, readable_span, time_element
from shared import bridge
from shared.validation import Problems, parse_timezone

__all__ = ["BROWSER_ZONE", "ZONE_NAMES", "DisplayZone", "bp", "display_zone"]

# The session key of the zone the browser reported (for users without a zone of their own).
BROWSER_ZONE = "browser_tz"
# What the time zone fields offer (any IANA name is accepted).
ZONE_NAMES = tuple(sorted(available_timezones() - {"localtime", "Factory"}))
_UTC = ZoneInfo("UTC")
# No routes: it registers the filters `span` and `moment` and the global `display_zone`.
bp = Blueprint("zones", __name__)


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


@bp.app_template_filter("span")
def _span_filter(
    start: str | None, end: str | None, is_all_day: bool = False, zone_name: str | None = None
) -> Markup:
    """`{{ a.start|span(a.end) }}`: a readable start-end in the page's zone (or `zone_name`)."""
    if start is None or end is None:
        return Markup("-")
    zone = ZoneInfo(zone_name) if zone_name else display_zone().zone
    today = datetime.now(zone).date()
    text = readable_span(start, end, zone, today, is_all_day=is_all_day)
    return time_element(start, text)


@bp.app_template_filter("moment")
def _moment_filter(moment: str | None) -> Markup:
    """`{{ e.started_at|moment }}`: a readable instant in the page's zone."""
    if moment is None:
        return Markup("-")
    zone = display_zone().zone
    return time_element(moment, readable_moment(moment, zone, datetime.now(zone).date()))


@bp.app_context_processor
def _zone_globals() -> dict[str, Any]:
    return {"display_zone": display_zone}
