"""Instants as people read them in their own zone ("Tue 3 Oct, 08:00-08:30"); pure functions."""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from markupsafe import Markup, escape

__all__ = ["readable_day", "readable_moment", "readable_span", "time_element"]


def _parse(moment: str | datetime, zone: tzinfo) -> datetime:
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.astimezone(zone)


def readable_day(day: date, today: date | None = None) -> str:
    """`Tue 3 Oct`, with the year when it is not `today`'s."""
    text = f"{day:%a} {day.day} {day:%b}"
    if today is not None and day.year != today.year:
        text += f" {day.year}"
    return text


def readable_moment(moment: str | datetime, zone: tzinfo, today: date | None = None) -> str:
    """An instant in `zone` as `Tue 3 Oct, 08:00`."""
    local = _parse(moment, zone)
    return f"{readable_day(local.date(), today)}, {local:%H:%M}"


def readable_span(
    start: str | datetime,
    end: str | datetime,
    zone: tzinfo,
    today: date | None = None,
    *,
    is_all_day: bool = False,
) -> str:
    """A start and end in `zone`: `Tue 3 Oct, 08:00-08:30`, or across days
    `Tue 3 Oct, 22:00 - Wed 4 Oct, 01:00`; all-day ones as `Tue 3 Oct, all day`."""
    first, last = _parse(start, zone), _parse(end, zone)
    if is_all_day:
        days = (last - first).days
        if days <= 1:
            return f"{readable_day(first.date(), today)}, all day"
        return f"{readable_day(first.date(), today)} - {readable_day(last.date(), today)}, all day"
    if first.date() == last.date():
        return f"{readable_day(first.date(), today)}, {first:%H:%M}-{last:%H:%M}"
    return f"{readable_moment(first, zone, today)} - {readable_moment(last, zone, today)}"


def time_element(moment: str | None, text: str) -> Markup:
    """`<time datetime="...">text</time>`: readable text, the exact instant for machines."""
    if moment is None:
        return Markup("-")
    return Markup('<time datetime="{}">{}</time>').format(escape(moment), escape(text))
