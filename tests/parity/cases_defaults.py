"""Parity cases of each user's default archive configuration: `is_default` in every
configuration, set and cleared by PATCH (and on create), its bad values, another user's id, an
admin acting for the owner, and deleting the default (registered into cases.CASES when cases.py
imports this).

In the seed, alice's first configuration (WORK_ARCHIVE) and bob's (BOB_CONFIG) are defaults.
"""

from __future__ import annotations

from tests.parity._seed import (
    ARCHIVE,
    BOB_CONFIG,
    PAUSED,
    SCRATCH,
    TIMESHEET_CONFIG,
    WORK_ARCHIVE,
)
from tests.parity.cases import CALENDARS, CONFIGS, case, config, delete, get, patch, post

_ALICES = (get(CONFIGS, who="alice"),)
_EVERYONES = (get(CONFIGS, "per_page=50"),)

case("archive_configs.get", "the default is marked", get(config(WORK_ARCHIVE)))
case("archive_configs.get", "another is not the default", get(config(PAUSED)))
case(
    "archive_configs.update",
    "make another the default",
    patch(config(PAUSED), {"is_default": True}),
    get(CONFIGS),
    readback=_EVERYONES,
)
case(
    "archive_configs.update",
    "make the default the default again",
    patch(config(WORK_ARCHIVE), {"is_default": True}),
    readback=_EVERYONES,
)
case(
    "archive_configs.update",
    "unset the default leaves none",
    patch(config(WORK_ARCHIVE), {"is_default": False}),
    get(CONFIGS),
    readback=_EVERYONES,
)
case(
    "archive_configs.update",
    "unset one that is not the default",
    patch(config(TIMESHEET_CONFIG), {"is_default": False}),
    readback=_EVERYONES,
)
case(
    "archive_configs.update",
    "the default with other fields",
    patch(config(TIMESHEET_CONFIG), {"is_default": True, "name": "Hours", "is_active": False}),
    readback=_EVERYONES,
)
for _bad in ("yes", 1, 0, None, [], {"value": True}):
    case(
        "archive_configs.update",
        f"is_default {_bad!r}",
        patch(config(PAUSED), {"is_default": _bad}),
        readback=_EVERYONES,
    )
case(
    "archive_configs.update",
    "another user's configuration as default is not found",
    patch(config(BOB_CONFIG), {"is_default": True}),
    readback=_EVERYONES,
)
case(
    "archive_configs.update",
    "another user's default cannot be unset",
    patch(config(BOB_CONFIG), {"is_default": False}),
    readback=_EVERYONES,
)
case(
    "archive_configs.update",
    "an admin sets the owner's default",
    patch(config(PAUSED), {"is_default": True}, who="admin"),
    readback=_EVERYONES,
)
case(
    "archive_configs.update",
    "by session cookie",
    patch(config(PAUSED), {"is_default": True}, who="alice_cookie"),
    readback=_ALICES,
)

_NEW = {"name": "Scratch archive", "source_calendar_id": SCRATCH, "archive_calendar_id": ARCHIVE}
case(
    "archive_configs.create",
    "made the default on create",
    post(CONFIGS, {**_NEW, "is_default": True}),
    readback=_EVERYONES,
)
case(
    "archive_configs.create",
    "not the default when one exists",
    post(CONFIGS, _NEW),
    readback=_EVERYONES,
)
case(
    "archive_configs.create",
    "the first of a user becomes the default",
    post(CALENDARS, {"name": "Mine", "role": "source"}, who="carol"),
    post(CALENDARS, {"name": "Kept", "role": "archive"}, who="carol"),
    post(
        CONFIGS,
        {"name": "Carol's", "source_calendar": "local://Mine", "archive_calendar": "local://Kept"},
        who="carol",
    ),
    post(
        CONFIGS,
        {"name": "Second", "source_calendar": "local://Mine", "archive_calendar": "local://Kept"},
        who="carol",
    ),
    readback=_EVERYONES,
)
case(
    "archive_configs.create",
    "is_default must be a boolean",
    post(CONFIGS, {**_NEW, "is_default": "true"}),
)
case(
    "archive_configs.delete",
    "deleting the default leaves none",
    delete(config(WORK_ARCHIVE)),
    get(CONFIGS),
    readback=_EVERYONES,
)
case(
    "archive_configs.list",
    "no default after unsetting it",
    patch(config(WORK_ARCHIVE), {"is_default": False}),
    get(CONFIGS),
)
