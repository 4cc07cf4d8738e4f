"""FlagStore over a real SQLite file: schema, YAML apply, audited flips, history, and export."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_gateway.control.database import open_engine
from asgi_gateway.control.export import export_flags
from asgi_gateway.control.store import Change, FlagStore, etag
from asgi_gateway.errors import FlagConflict, FlagStoreUnavailable
from asgi_gateway.flag_file import FlagFile, parse_flag_file
from asgi_gateway.flags import Compare, EndpointRules, Flag, drift, make_flag
from asgi_gateway.tables import audit_table

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


async def test_a_load_sees_a_flip_made_through_another_store(
    store: FlagStore, engine: AsyncEngine
) -> None:
    """Loads at an unchanged version reuse the state read last; another process's flip moves
    the version, so the next load reads the flags again."""
    await store.apply(declared())
    first = await store.load()
    assert await store.load() is first  # nothing changed: no row read again

    other = FlagStore(engine)  # another worker, or the CLI
    await other.set_flag(
        make_flag("calendars.list", mode="async"), actor="ops@example.com", reason="twin verified"
    )

    state = await store.load()
    assert state.version == first.version + 1
    assert state.flags["calendars.list"].mode == "async"
    assert first.flags["calendars.list"].mode == "legacy"  # a state read never changes


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


async def test_after_canary_then_async_nothing_drifts_and_export_agrees(store: FlagStore) -> None:
    """The reported defect: a stale percent drifted for ever and export said "matches"."""
    text = YAML.replace("{mode: legacy}", "{mode: async}")
    file = declared(text)
    await store.apply(file)
    known = set(file.flags)
    for change in (Change("canary", 25), Change("async")):
        await store.flip(
            "calendars.list",
            change,
            declared=file,
            rules=EndpointRules(known=known, twins=known),
            actor="ops",
            reason="round trip",
        )
    flag = (await store.load()).flags["calendars.list"]

    assert flag == Flag("calendars.list", mode="async")
    assert drift(flag, file.declared("calendars.list")) == ()
    assert export_flags(text, file, (await store.load()).flags) == text


async def test_export_then_parse_gives_back_every_runtime_field(store: FlagStore) -> None:
    await store.apply(declared())
    wanted = Flag(
        "appointments.get",
        mode="canary",
        percent=12.5,
        sticky_by="header:X-Tenant",
        compare=Compare(ignore=("$.meta.*",)),
    )
    await store.set_flag(wanted, actor="ops", reason="everything at once")

    text = export_flags(YAML, declared(), (await store.load()).flags)

    assert declared(text).flags["appointments.get"] == wanted
    assert drift(wanted, declared(text).declared("appointments.get")) == ()


# -- compare-and-set -----------------------------------------------------------------------------


async def test_concurrent_changes_apply_in_order_and_audit_what_each_changed(
    database_url: str,
) -> None:
    """{percent: 30} and {sticky_by: session} at once, from two engines: neither is lost."""
    file = declared()
    known = set(file.flags)
    engines = [open_engine(database_url), open_engine(database_url)]
    try:
        stores = [FlagStore(engine) for engine in engines]
        await stores[0].ensure_schema()
        for trial in range(15):
            await stores[0].set_flag(
                file.flags["appointments.list"], actor="reset", reason=f"trial {trial}"
            )
            changes = [Change(percent=30), Change(sticky_by="session")]
            await asyncio.gather(
                *(
                    store.flip(
                        "appointments.list",
                        change,
                        declared=file,
                        rules=EndpointRules(known=known, twins=known),
                        actor=f"caller-{i}",
                        reason=f"trial {trial}",
                    )
                    for i, (store, change) in enumerate(zip(stores, changes, strict=True))
                )
            )
            flag = (await stores[0].load()).flags["appointments.list"]
            assert (flag.mode, flag.percent, flag.sticky_by) == ("canary", 30.0, "session")
            entries = await stores[0].history("appointments.list", limit=2)
            by_actor = {e.actor: e for e in entries}
            assert set(by_actor) == {"caller-0", "caller-1"}
            for entry in entries:  # each row changes exactly the field its caller named
                before, after = entry.before or {}, entry.after or {}
                changed = {k for k in after if after[k] != before.get(k)}
                assert changed == ({"percent"} if entry.actor == "caller-0" else {"sticky_by"})
            first, second = sorted(entries, key=lambda e: e.id)
            assert first.after == second.before  # the second started from the first's result
    finally:
        await asyncio.gather(*(engine.dispose() for engine in engines))


async def test_a_flip_with_a_stale_etag_is_refused_and_changes_nothing(store: FlagStore) -> None:
    file = declared()
    await store.apply(file)
    known = set(file.flags)
    seen = etag((await store.load()).flags["appointments.list"])
    await store.flip(
        "appointments.list",
        Change(percent=50),
        declared=file,
        rules=EndpointRules(known=known, twins=known),
        actor="someone else",
        reason="first",
    )
    audits = await audit_count(store)

    with pytest.raises(FlagConflict, match=r"changed since it was read \(now canary 50%\)"):
        await store.flip(
            "appointments.list",
            Change("async"),
            declared=file,
            rules=EndpointRules(known=known, twins=known),
            actor="me",
            reason="based on what I saw",
            expected_etag=seen,
        )

    assert (await store.load()).flags["appointments.list"].percent == 50.0
    assert await audit_count(store) == audits


async def test_store_failures_never_leak_raw_database_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    engine = open_engine(f"sqlite+aiosqlite:///{broken}")
    store = FlagStore(engine)
    file = declared()
    try:
        for call in (
            store.version(),
            store.load(),
            store.apply(file),
            store.set_flag(Flag("a.b"), actor="x", reason="y"),
            store.mark_exported({"a.b": "f"}),
            store.last_changes(),
            store.history(),
        ):
            with pytest.raises(FlagStoreUnavailable, match="file is not a database"):
                await call
    finally:
        await engine.dispose()
