"""FlagStore over a real SQLite file: schema, YAML apply, audited flips, history, and export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.control.export import export_flags
from asgi_gateway.control.store import FlagStore
from asgi_gateway.flags import Flag, FlagFile, make_flag, parse_flag_file
from asgi_gateway.tables import audit_table
from shared.config import Settings
from shared.db import engine_for_url

PATH = Path("feature_flags.yaml")

YAML = """\
# Declared rollout: reviewed like code.
version: 1
defaults:
  sticky_by: user            # user | session | ip | header:<Name> | random
routes:
  # The busiest read, in canary.
  appointments.list: {mode: canary, percent: 25}
  appointments.get: {mode: shadow}   # diffs reported
  calendars.list: {mode: legacy}
"""


def declared(text: str = YAML) -> FlagFile:
    return parse_flag_file(text, PATH)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine created on this test's loop, disposed on it."""
    engine = engine_for_url(settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def store(engine: AsyncEngine) -> FlagStore:
    store = FlagStore(engine)
    await store.ensure_schema()
    return store


async def audit_count(store: FlagStore) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(audit_table)) or 0)


# -- schema --------------------------------------------------------------------------------------


async def test_ensure_schema_is_idempotent(engine: AsyncEngine) -> None:
    store = FlagStore(engine)

    await store.ensure_schema()
    await store.ensure_schema()

    assert await store.version() == 0
    state = await store.load()
    assert (state.version, dict(state.flags)) == (0, {})


async def test_ensure_schema_keeps_existing_state(store: FlagStore) -> None:
    await store.apply(declared())

    await store.ensure_schema()

    assert await store.version() == 1
    assert set((await store.load()).flags) == {
        "appointments.list",
        "appointments.get",
        "calendars.list",
    }


# -- apply ---------------------------------------------------------------------------------------


async def test_first_apply_takes_every_entry_and_audits_it(store: FlagStore) -> None:
    changed = await store.apply(declared())

    assert sorted(changed) == ["appointments.get", "appointments.list", "calendars.list"]
    state = await store.load()
    assert state.version == 1
    assert state.flags == declared().flags
    entries = await store.history("appointments.list")
    assert [(e.actor, e.action, e.before, e.reason) for e in entries] == [
        ("feature_flags.yaml", "apply", None, "feature_flags.yaml entry changed")
    ]
    assert entries[0].after == declared().flags["appointments.list"].to_dict()


async def test_reapplying_the_same_yaml_changes_nothing(store: FlagStore) -> None:
    await store.apply(declared())
    audits = await audit_count(store)

    assert await store.apply(declared()) == []
    assert (await store.load()).flags == declared().flags
    assert await audit_count(store) == audits


async def test_runtime_flip_survives_reapplying_the_same_yaml(store: FlagStore) -> None:
    await store.apply(declared())
    flipped = Flag("appointments.list", mode="async")
    await store.set_flag(flipped, actor="ops@example.com", reason="canary clean for a week")

    assert await store.apply(declared()) == []

    assert (await store.load()).flags["appointments.list"] == flipped


async def test_a_comment_only_change_keeps_the_runtime_flip(store: FlagStore) -> None:
    await store.apply(declared())
    flipped = Flag("appointments.list", mode="legacy")
    await store.set_flag(flipped, actor="ops@example.com", reason="errors up")

    reworded = YAML.replace("# The busiest read, in canary.", "# Reworded: still 25%.")
    assert await store.apply(declared(reworded)) == []

    assert (await store.load()).flags["appointments.list"] == flipped


async def test_a_changed_yaml_entry_wins_over_the_runtime_flip(store: FlagStore) -> None:
    await store.apply(declared())
    await store.set_flag(
        Flag("appointments.list", mode="legacy"), actor="ops@example.com", reason="errors up"
    )
    await store.set_flag(
        Flag("calendars.list", mode="async"), actor="ops@example.com", reason="twin is ready"
    )

    raised = YAML.replace("{mode: canary, percent: 25}", "{mode: canary, percent: 50}")
    changed = await store.apply(declared(raised), actor="deploy")

    assert changed == ["appointments.list"]
    state = await store.load()
    assert state.flags["appointments.list"] == Flag("appointments.list", mode="canary", percent=50)
    assert state.flags["calendars.list"].mode == "async"  # unchanged entry: runtime kept
    latest = (await store.history("appointments.list", limit=1))[0]
    assert (latest.actor, latest.action) == ("deploy", "apply")
    assert (latest.before or {})["mode"] == "legacy"
    assert (latest.after or {})["percent"] == 50.0


async def test_a_new_yaml_entry_is_added_and_others_are_kept(store: FlagStore) -> None:
    await store.apply(declared())
    await store.set_flag(Flag("appointments.get", mode="async"), actor="ops", reason="done")

    grown = YAML + "  calendars.get: {mode: async}\n"
    assert await store.apply(declared(grown)) == ["calendars.get"]

    flags = (await store.load()).flags
    assert flags["calendars.get"].mode == "async"
    assert flags["appointments.get"].mode == "async"


# -- set_flag ------------------------------------------------------------------------------------


async def test_set_flag_bumps_the_version_and_writes_an_audit_row(store: FlagStore) -> None:
    await store.apply(declared())
    version = await store.version()
    old = declared().flags["appointments.list"]
    new = make_flag("appointments.list", mode="canary", percent=50, base=old)

    before, after = await store.set_flag(new, actor="admin@example.com", reason="error rate ok")

    assert (before, after) == (old, new)
    assert await store.version() == version + 1
    assert (await store.load()).flags["appointments.list"] == new
    entry = (await store.history("appointments.list", limit=1))[0]
    assert (entry.endpoint, entry.actor, entry.action, entry.reason) == (
        "appointments.list",
        "admin@example.com",
        "set",
        "error rate ok",
    )
    assert entry.before == old.to_dict()
    assert entry.after == new.to_dict()
    assert entry.created_at.tzinfo is not None


async def test_set_flag_on_an_endpoint_without_row_has_no_before(store: FlagStore) -> None:
    flag = Flag("calendars.get", mode="async")

    before, after = await store.set_flag(flag, actor="ops", reason="first flip", action="rollback")

    assert (before, after) == (None, flag)
    entry = (await store.history())[0]
    assert (entry.before, entry.after, entry.action) == (None, flag.to_dict(), "rollback")
    assert await store.version() == 1


async def test_every_flip_bumps_the_version_once(store: FlagStore) -> None:
    for i, mode in enumerate(["async", "legacy", "shadow"], start=1):
        await store.set_flag(
            Flag("appointments.list", mode=mode),
            actor="ops",  # type: ignore[arg-type]
            reason=f"flip {i}",
        )
        assert await store.version() == i


# -- history -------------------------------------------------------------------------------------


async def test_history_is_newest_first_and_filters(store: FlagStore) -> None:
    await store.set_flag(Flag("appointments.list", mode="async"), actor="alice", reason="one")
    await store.set_flag(Flag("appointments.get", mode="async"), actor="bob", reason="two")
    await store.set_flag(Flag("appointments.list", mode="legacy"), actor="bob", reason="three")

    assert [e.reason for e in await store.history()] == ["three", "two", "one"]
    assert [e.reason for e in await store.history("appointments.list")] == ["three", "one"]
    assert [e.reason for e in await store.history(actor="bob")] == ["three", "two"]
    assert [e.reason for e in await store.history("appointments.list", actor="bob")] == ["three"]
    assert [e.reason for e in await store.history(limit=2)] == ["three", "two"]
    assert await store.history("calendars.list") == []


async def test_audit_entries_serialize_to_json_ready_dicts(store: FlagStore) -> None:
    await store.set_flag(Flag("appointments.list", mode="async"), actor="ops", reason="go")

    data = (await store.history())[0].to_dict()

    assert set(data) == {
        "id",
        "endpoint",
        "actor",
        "action",
        "before",
        "after",
        "reason",
        "created_at",
    }
    assert isinstance(data["created_at"], str)


# -- export --------------------------------------------------------------------------------------


async def test_export_writes_runtime_values_and_keeps_comments(store: FlagStore) -> None:
    await store.apply(declared())
    await store.set_flag(Flag("appointments.list", mode="async"), actor="ops", reason="done")
    await store.set_flag(
        make_flag("appointments.get", mode="canary", percent=12.5, sticky_by="session"),
        actor="ops",
        reason="start canary",
    )
    state = await store.load()

    text = export_flags(YAML, declared(), state.flags)

    for line in YAML.splitlines():
        if "#" in line:
            assert line[line.index("#") :] in text  # every comment survives
    assert "appointments.list: {mode: async}" in text
    assert "calendars.list: {mode: legacy}" in text
    exported = declared(text)
    assert exported.flags["appointments.list"] == state.flags["appointments.list"]
    get = exported.flags["appointments.get"]
    assert (get.mode, get.percent, get.sticky_by) == ("canary", 12.5, "session")


async def test_a_second_export_is_a_no_op(store: FlagStore) -> None:
    await store.apply(declared())
    await store.set_flag(
        Flag("appointments.list", mode="canary", percent=75), actor="ops", reason="wider"
    )
    state = await store.load()
    first = export_flags(YAML, declared(), state.flags)

    second = export_flags(first, declared(first), state.flags)

    assert second == first
    assert "appointments.list: {mode: canary, percent: 75}" in first


async def test_export_of_an_unchanged_rollout_leaves_the_file_alone(store: FlagStore) -> None:
    await store.apply(declared())

    assert export_flags(YAML, declared(), (await store.load()).flags) == YAML


async def test_export_adds_a_runtime_only_endpoint(store: FlagStore) -> None:
    await store.apply(declared())
    await store.set_flag(Flag("calendars.get", mode="async"), actor="ops", reason="ready")

    text = export_flags(YAML, declared(), (await store.load()).flags)

    assert declared(text).flags["calendars.get"].mode == "async"
    assert text.startswith(YAML.splitlines()[0])


async def test_exported_yaml_once_marked_does_not_reapply(store: FlagStore) -> None:
    await store.apply(declared())
    await store.set_flag(Flag("appointments.list", mode="async"), actor="ops", reason="done")
    state = await store.load()
    exported = declared(export_flags(YAML, declared(), state.flags))

    await store.mark_exported({e: f.fingerprint() for e, f in exported.flags.items()})

    assert await store.apply(exported) == []
    assert (await store.load()).flags == state.flags
