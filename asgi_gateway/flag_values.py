"""Checks of single flag values (percents, fractions, durations, booleans) (pure).

Each value is checked by one function, so every surface refuses the same input with the same
words; `FlagError.field` names the setting it belongs to.
"""

from __future__ import annotations

import re
from typing import Any

from asgi_gateway.errors import FlagError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def check_percent(value: Any) -> float:
    """0-100 with at most two decimals (a bucket is 1/100 of a percent)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FlagError(f"percent must be a number from 0 to 100, got {value!r}", field="percent")
    if not 0 <= value <= 100:
        raise FlagError(f"percent {value} is out of range (0 to 100)", field="percent")
    if abs(value * 100 - round(value * 100)) > 1e-6:
        raise FlagError(f"percent {value} has more than two decimals", field="percent")
    return round(float(value), 2)


def parse_duration_s(value: Any, *, field: str = "window") -> float:
    """`60s`, `5m`, `1h`, `250ms` or a number of seconds, as seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _DURATION.match(str(value).strip()) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise FlagError(f"bad duration {value!r} (expected e.g. 30s, 5m, 1h)", field=field)
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def check_fraction(value: Any, name: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise FlagError(f"{name} must be a number from 0 to 1, got {value!r}", field=field)
    return float(value)


def check_bool(value: Any, name: str, field: str) -> bool:
    if not isinstance(value, bool):
        raise FlagError(f"{name} must be true or false, got {value!r}", field=field)
    return value
