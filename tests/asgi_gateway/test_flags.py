"""feature_flags.yaml parsing and validation, make_flag, and flag fingerprints (pure, no I/O)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asgi_gateway.app import endpoint_rules_of
from asgi_gateway.errors import FlagError, FlagFileError, UnknownEndpoint
from asgi_gateway.flag_file import FlagFile, entry_fields, load_flag_file, parse_flag_file
from asgi_gateway.flag_policy import Rollout
from asgi_gateway.flags import (
    Compare,
    EndpointRules,
    Flag,
    Guard,
    drift,
    effective_flag,
    make_flag,
)
from shared.config import Settings

PATH = Path("/etc/rollout/feature_flags.yaml")
KNOWN = frozenset(
    {"appointments.list", "appointments.get", "calendars.list", "auth.me", "pages.index"}
)
TWINS = frozenset({"appointments.list", "appointments.get", "calendars.list", "auth.me"})
RULES = EndpointRules(known=KNOWN, twins=TWINS)

HEAD = """\
version: 1
defaults:
  sticky_by: user
routes:
"""

GOOD = """\
# The declared rollout.
version: 1
defaults:
  sticky_by: session         # a comment after a value
  guard: {max_error_rate: 0.05, min_requests: 10, window: 5m, max_latency_ratio: 3}
routes:
  auth.me: async             # the short form: just the mode
  calendars.list: {mode: shadow, compare: {ignore: ["$.meta.generated_at"]}}
  appointments.list:
    mode: canary
    percent: 12.5
    sticky_by: header:X-Tenant
    guard: {window: 250ms}
  appointments.get: {mode: legacy}
"""


def parse(text: str) -> FlagFile:
    return parse_flag_file(text, PATH, RULES)


def expect_error(text: str, line: int, reason: str) -> str:
    """Parse `text`, expecting FlagFileError `PATH:line: ...reason...`; returns the message."""
    with pytest.raises(FlagFileError) as caught:
        parse(text)
    message = str(caught.value)
    assert message.startswith(f"{PATH}:{line}: "), message
    assert reason in message, message
    return message


# -- a good file ---------------------------------------------------------------------------------


def test_good_file_parses_every_field() -> None:
    declared = parse_flag_file(GOOD, PATH, RULES)

    assert declared.path == PATH
    assert declared.default_sticky_by == "session"
    assert declared.default_guard == Guard(0.05, 10, 300.0, 3.0)
    assert set(declared.flags) == {
        "auth.me",
        "calendars.list",
        "appointments.list",
        "appointments.get",
    }
    assert declared.flags["auth.me"] == Flag(
        "auth.me", mode="async", sticky_by="session", guard=Guard(0.05, 10, 300.0, 3.0)
    )
    shadow = declared.flags["calendars.list"]
    assert (shadow.mode, shadow.compare.ignore) == ("shadow", ("$.meta.generated_at",))
    canary = declared.flags["appointments.list"]
    assert (canary.mode, canary.percent, canary.sticky_by) == ("canary", 12.5, "header:X-Tenant")
    # An entry's guard overrides only the keys it names; the rest come from the defaults.
    assert canary.guard == Guard(0.05, 10, 0.25, 3.0)
    assert declared.lines == {
        "auth.me": 7,
        "calendars.list": 8,
        "appointments.list": 9,
        "appointments.get": 14,
    }


def test_an_undeclared_endpoint_is_legacy_with_the_files_defaults() -> None:
    declared = parse_flag_file(GOOD, PATH, RULES)

    assert declared.declared("pages.index") == Flag(
        "pages.index", mode="legacy", sticky_by="session", guard=Guard(0.05, 10, 300.0, 3.0)
    )


def test_an_empty_file_declares_nothing() -> None:
    declared = parse_flag_file("", PATH)

    assert declared.flags == {}
    assert declared.default_sticky_by == "user"
    assert declared.default_guard == Guard()


def test_the_shipped_flag_file_is_valid_for_admin_assistant(settings: Settings) -> None:
    shipped = Path(__file__).resolve().parents[2] / "feature_flags.yaml"

    declared = load_flag_file(shipped, endpoint_rules_of(settings))

    assert "appointments.list" in declared.flags
    # Its shadowed endpoints compare; its canary reads fall back to legacy.
    assert {e for e, f in declared.flags.items() if f.mode == "shadow"} == {
        "appointments.get",
        "archive_configs.get",
        "archive.log",
    }
    assert all(
        f.fallback for f in declared.flags.values() if f.mode == "canary" and "list" in f.endpoint
    )


def test_a_missing_file_names_the_path_and_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(
        FlagFileError,
        match=rf"^{re.escape(str(missing))}: flag file not found "
        r"\(set AA_FLAGS_FILE\)$",
    ):
        load_flag_file(missing)


# -- bad files: each names file, line and reason -------------------------------------------------


def test_unknown_endpoint_id() -> None:
    expect_error(
        HEAD + "  appointments.lst: {mode: legacy}\n",
        5,
        "appointments.lst: unknown endpoint id 'appointments.lst'",
    )


def test_unknown_mode() -> None:
    expect_error(
        HEAD + "  appointments.list: {mode: sideways}\n",
        5,
        "appointments.list: unknown mode 'sideways' (expected legacy, shadow, canary, async)",
    )


def test_percent_out_of_range_points_at_the_percent_line() -> None:
    expect_error(
        HEAD + "  appointments.list:\n    mode: canary\n    percent: 150\n",
        7,
        "appointments.list: percent 150 is out of range (0 to 100)",
    )


def test_negative_percent() -> None:
    expect_error(
        HEAD + "  appointments.list: {mode: canary, percent: -1}\n", 5, "percent -1 is out of range"
    )


def test_percent_with_more_than_two_decimals() -> None:
    expect_error(
        HEAD + "  appointments.list: {mode: canary, percent: 12.345}\n",
        5,
        "appointments.list: percent 12.345 has more than two decimals",
    )


def test_percent_that_is_not_a_number() -> None:
    expect_error(
        HEAD + "  appointments.list: {mode: canary, percent: lots}\n",
        5,
        "percent must be a number from 0 to 100, got 'lots'",
    )


def test_canary_without_percent() -> None:
    expect_error(
        HEAD + "  appointments.list: {mode: canary}\n",
        5,
        "appointments.list: mode canary needs a percent",
    )


def test_percent_given_for_a_mode_other_than_canary() -> None:
    expect_error(
        HEAD + "  appointments.list:\n    mode: async\n    percent: 10\n",
        7,
        "appointments.list: percent is only used with mode canary (mode is async)",
    )


def test_missing_mode() -> None:
    expect_error(
        HEAD + "  appointments.list: {sticky_by: ip}\n", 5, "appointments.list: mode is required"
    )


@pytest.mark.parametrize("sticky", ["cookie", "'header:'", "'header:Bad Name'", "USER"])
def test_bad_sticky_key(sticky: str) -> None:
    expect_error(
        HEAD + f"  appointments.list: {{mode: legacy, sticky_by: {sticky}}}\n",
        5,
        "appointments.list: bad sticky key",
    )


def test_bad_default_sticky_key_points_at_the_defaults() -> None:
    expect_error(
        "version: 1\ndefaults:\n  sticky_by: cookie\nroutes: {}\n",
        3,
        "defaults: bad sticky key 'cookie' (expected user, session, ip, random, header:<Name>)",
    )


def test_bad_duration_in_an_entrys_guard_window_points_at_the_guard() -> None:
    expect_error(
        HEAD + "  appointments.list:\n    mode: legacy\n    guard: {window: soon}\n",
        7,
        "appointments.list: guard.window: bad duration 'soon' (expected e.g. 30s, 5m, 1h)",
    )


@pytest.mark.parametrize("window", ["10x", "0s", "-5s", "s", "'1 minute'"])
def test_bad_duration_in_the_default_guard_window(window: str) -> None:
    text = (
        f"version: 1\ndefaults:\n  sticky_by: user\n  guard: {{window: {window}}}\nroutes: {{}}\n"
    )
    expect_error(text, 4, "defaults: guard.window: bad duration")


@pytest.mark.parametrize(
    ("guard", "reason"),
    [
        ("{max_error_rate: 2}", "guard.max_error_rate must be a number from 0 to 1, got 2"),
        ("{min_requests: 0}", "guard.min_requests must be a whole number >= 1, got 0"),
        ("{max_latency_ratio: 0.5}", "guard.max_latency_ratio must be >= 1, got 0.5"),
        ("{window: 5s, bogus: 1}", "unknown guard key 'bogus'"),
        ("[1, 2]", "guard must be a mapping"),
    ],
)
def test_bad_guard_values(guard: str, reason: str) -> None:
    expect_error(
        HEAD + f"  appointments.list:\n    mode: legacy\n    guard: {guard}\n",
        7,
        f"appointments.list: {reason}",
    )


def test_unknown_key_in_an_entry() -> None:
    expect_error(
        HEAD + "  appointments.list:\n    mode: legacy\n    percnt: 5\n",
        7,
        "appointments.list: unknown key 'percnt' (expected mode, percent, sticky_by, "
        "shadow, compare, fallback, fallback_timeout, guard, rollout)",
    )


def test_unknown_top_level_key() -> None:
    expect_error(
        HEAD + "  appointments.list: {mode: legacy}\nextras: 1\n",
        6,
        "unknown top-level key 'extras' (expected version, defaults, routes)",
    )


def test_unsupported_version() -> None:
    expect_error(
        "# v2 is not out yet\nversion: 2\nroutes: {}\n", 2, "unsupported version 2 (expected 1)"
    )


def test_top_level_that_is_not_a_mapping() -> None:
    expect_error("- appointments.list\n", 1, "the top level must be a mapping")


def test_routes_that_are_not_a_mapping() -> None:
    expect_error(
        "version: 1\nroutes:\n  - appointments.list\n",
        2,
        "routes must be a mapping of endpoint id to flag",
    )


def test_bad_compare_ignore_paths() -> None:
    expect_error(
        HEAD + "  appointments.list: {mode: shadow, compare: {ignore: [meta]}}\n",
        5,
        "appointments.list: bad JSON path 'meta': it must start with $",
    )


def test_invalid_yaml_syntax_names_the_line() -> None:
    text = HEAD + "  appointments.list: {mode: legacy\n  calendars.list: {mode: async}\n"
    expect_error(text, 6, "not valid YAML: expected ',' or '}'")


def test_mode_async_for_an_endpoint_without_twin() -> None:
    expect_error(
        HEAD + "  pages.index: {mode: async}\n",
        5,
        "pages.index: endpoint 'pages.index' has no async twin, so mode async is impossible "
        "(only legacy can serve it)",
    )


@pytest.mark.parametrize("mode", ["shadow", "canary"])
def test_other_non_legacy_modes_need_a_twin_too(mode: str) -> None:
    percent = ", percent: 5" if mode == "canary" else ""
    expect_error(
        HEAD + f"  pages.index: {{mode: {mode}{percent}}}\n",
        5,
        f"pages.index: endpoint 'pages.index' has no async twin, so mode {mode} is impossible",
    )


def test_legacy_is_fine_for_an_endpoint_without_twin() -> None:
    declared = parse_flag_file(HEAD + "  pages.index: {mode: legacy}\n", PATH, RULES)

    assert declared.flags["pages.index"].mode == "legacy"


def test_the_first_error_is_reported_with_its_own_line() -> None:
    text = HEAD + (
        "  appointments.list: {mode: legacy}\n"
        "  appointments.get: {mode: nope}\n"
        "  calendars.list: {mode: alsonope}\n"
    )
    expect_error(text, 6, "appointments.get: unknown mode 'nope'")


def test_load_flag_file_reports_the_real_path(tmp_path: Path) -> None:
    path = tmp_path / "feature_flags.yaml"
    path.write_text(HEAD + "  appointments.list: {mode: sideways}\n")

    with pytest.raises(
        FlagFileError,
        match=rf"^{re.escape(str(path))}:5: appointments.list: "
        r"unknown mode 'sideways'",
    ):
        load_flag_file(path, RULES)


def test_a_flag_file_that_is_not_utf8_names_the_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "feature_flags.yaml"
    path.write_bytes(HEAD.encode() + b"  auth.me: {mode: async}  # caf\xe9\n")

    with pytest.raises(
        FlagFileError,
        match=rf"^{re.escape(str(path))}:5: not UTF-8 text \(byte 0xe9 at offset \d+\); "
        r"save the file as UTF-8$",
    ):
        load_flag_file(path, RULES)


# -- make_flag: the validation shared by the CLI, the admin API and the dashboard --------------


def test_make_flag_starts_from_its_base() -> None:
    base = Flag(
        "appointments.list",
        mode="canary",
        percent=25,
        sticky_by="session",
        compare=Compare(ignore=("$.x",)),
        guard=Guard(window_s=5.0),
    )

    flag = make_flag("appointments.list", mode="canary", percent=50, base=base, rules=RULES)

    assert flag == Flag(
        "appointments.list",
        mode="canary",
        percent=50.0,
        sticky_by="session",
        compare=Compare(ignore=("$.x",)),
        guard=Guard(window_s=5.0),
    )


def test_make_flag_keeps_the_percent_when_none_is_given() -> None:
    base = Flag("appointments.list", mode="canary", percent=25)

    assert make_flag("appointments.list", mode="canary", base=base).percent == 25.0
    assert make_flag("appointments.list", base=base) == base


def test_make_flag_changes_only_the_fields_given() -> None:
    base = Flag("appointments.list", mode="canary", percent=25, sticky_by="user")

    assert make_flag("appointments.list", percent=30, base=base) == Flag(
        "appointments.list", mode="canary", percent=30
    )
    assert make_flag("appointments.list", sticky_by="session", base=base) == Flag(
        "appointments.list", mode="canary", percent=25, sticky_by="session"
    )


def test_a_flag_outside_canary_has_no_percent() -> None:
    """canary 25 then async: the 25 means nothing any more, and is not kept to drift on."""
    base = Flag("appointments.list", mode="canary", percent=25)

    flag = make_flag("appointments.list", mode="async", base=base)

    assert flag.percent == 0.0
    assert flag == Flag("appointments.list", mode="async")
    assert Flag("appointments.list", mode="shadow", percent=40) == Flag(
        "appointments.list", mode="shadow"
    )
    assert drift(flag, Flag("appointments.list", mode="async")) == ()


def test_make_flag_refuses_a_percent_outside_canary() -> None:
    with pytest.raises(
        FlagError, match=r"percent is only used with mode canary \(mode is async\)"
    ) as caught:
        make_flag("appointments.list", mode="async", percent=30)
    assert caught.value.field == "percent"


def test_drift_names_each_differing_runtime_field() -> None:
    declared = Flag("appointments.list", mode="canary", percent=25)

    assert drift(declared, declared) == ()
    assert drift(Flag("appointments.list", mode="canary", percent=30), declared) == ("percent",)
    assert drift(Flag("appointments.list", mode="async", sticky_by="session"), declared) == (
        "mode",
        "percent",
        "sticky_by",
    )
    assert drift(
        Flag("appointments.list", "canary", 25, compare=Compare(ignore=("$.x",))), declared
    ) == ("compare",)


def test_effective_flag_is_the_runtime_row_else_the_declared_entry() -> None:
    declared = parse(GOOD)
    runtime = {"auth.me": Flag("auth.me", mode="legacy")}

    assert effective_flag("auth.me", runtime, declared) == runtime["auth.me"]
    assert (
        effective_flag("appointments.get", runtime, declared) == declared.flags["appointments.get"]
    )
    assert effective_flag("pages.index", runtime, declared) == declared.declared("pages.index")
    assert effective_flag("pages.index", {}, None) == Flag("pages.index")


def test_make_flag_rounds_and_sets_sticky_by() -> None:
    flag = make_flag("appointments.list", mode="canary", percent=12.34, sticky_by="header:X-Id")

    assert (flag.percent, flag.sticky_by) == (12.34, "header:X-Id")


def test_make_flag_unknown_endpoint() -> None:
    with pytest.raises(UnknownEndpoint, match=r"unknown endpoint id 'nope\.list'"):
        make_flag("nope.list", mode="legacy", rules=RULES)


def test_make_flag_unknown_mode() -> None:
    with pytest.raises(
        FlagError,
        match=r"unknown mode 'sideways' \(expected legacy, shadow, "
        r"canary, async\)",
    ) as caught:
        make_flag("appointments.list", mode="sideways")
    assert caught.value.field == "mode"


@pytest.mark.parametrize(
    ("percent", "reason"),
    [
        (100.5, r"percent 100\.5 is out of range \(0 to 100\)"),
        (-0.01, r"percent -0\.01 is out of range"),
        (1.005, r"percent 1\.005 has more than two decimals"),
        ("10", r"percent must be a number from 0 to 100, got '10'"),
        (True, r"percent must be a number from 0 to 100, got True"),
    ],
)
def test_make_flag_bad_percent(percent: object, reason: str) -> None:
    with pytest.raises(FlagError, match=reason) as caught:
        make_flag("appointments.list", mode="canary", percent=percent)
    assert caught.value.field == "percent"


@pytest.mark.parametrize("base", [None, Flag("appointments.list", mode="async")])
def test_make_flag_canary_needs_a_percent_unless_already_canary(base: Flag | None) -> None:
    with pytest.raises(FlagError, match=r"mode canary needs a percent") as caught:
        make_flag("appointments.list", mode="canary", base=base)
    assert caught.value.field == "percent"


def test_make_flag_bad_sticky_key() -> None:
    with pytest.raises(FlagError, match=r"bad sticky key 'cookie'") as caught:
        make_flag("appointments.list", mode="legacy", sticky_by="cookie")
    assert caught.value.field == "sticky_by"


def test_make_flag_refuses_a_non_legacy_mode_without_twin() -> None:
    with pytest.raises(
        FlagError,
        match=r"endpoint 'pages\.index' has no async twin, so mode async is impossible "
        r"\(only legacy can serve it\)",
    ):
        make_flag("pages.index", mode="async", rules=RULES)

    assert make_flag("pages.index", mode="legacy", rules=RULES).mode == "legacy"


# -- fingerprints --------------------------------------------------------------------------------


def test_fingerprint_is_a_published_value() -> None:
    # Stored in the database as "the YAML entry last applied". If this digest changes, every
    # server start after the upgrade re-applies every YAML entry and silently undoes the
    # operators' runtime flips. Change it only on purpose, with a migration note.
    assert Flag("appointments.list").fingerprint() == "fed64a3c5e4ccfac"
    assert Flag("appointments.list", mode="canary", percent=25).fingerprint() == "eea20df494ba1e2f"


def test_equal_flags_have_equal_fingerprints() -> None:
    assert (
        Flag("appointments.list", mode="canary", percent=25).fingerprint()
        == Flag("appointments.list", mode="canary", percent=25.0).fingerprint()
    )


def test_fingerprint_ignores_comments_and_layout() -> None:
    flow = parse(HEAD + "  appointments.list: {mode: canary, percent: 25}\n")
    block = parse(
        "# a new comment\n"
        + HEAD
        + "  # why we are at 25\n  appointments.list:\n    mode: canary\n"
        "    percent: 25.0   # trailing\n"
    )

    assert (
        flow.flags["appointments.list"].fingerprint()
        == block.flags["appointments.list"].fingerprint()
    )


@pytest.mark.parametrize(
    "other",
    [
        Flag("appointments.list", mode="canary", percent=26),
        Flag("appointments.list", mode="async", percent=25),
        Flag("appointments.list", mode="canary", percent=25, sticky_by="ip"),
        Flag("appointments.list", mode="canary", percent=25, compare=Compare(ignore=("$.x",))),
        Flag("appointments.list", mode="canary", percent=25, guard=Guard(min_requests=51)),
        Flag("appointments.get", mode="canary", percent=25),
    ],
)
def test_fingerprint_changes_with_every_field(other: Flag) -> None:
    assert Flag("appointments.list", mode="canary", percent=25).fingerprint() != other.fingerprint()


# -- guard and rollout settings --------------------------------------------------------------------


def test_rollout_and_mismatch_settings_per_route_and_in_defaults() -> None:
    file = parse(
        "version: 1\n"
        "defaults:\n"
        "  guard: {max_mismatch_rate: 0.05}\n"
        "  rollout: {interval: 5m}\n"
        "routes:\n"
        "  appointments.list:\n"
        "    mode: legacy\n"
        "    rollout: {steps: [10, 50, 100], from: shadow, shadow_for: 30m}\n"
        "  appointments.get: {mode: legacy}\n"
    )
    listed = file.flags["appointments.list"]
    assert listed.rollout == Rollout(
        steps=(10, 50, 100), interval_s=300, start_from="shadow", shadow_for_s=1800
    )
    assert listed.guard.max_mismatch_rate == 0.05
    assert file.flags["appointments.get"].rollout == Rollout(interval_s=300)
    assert file.declared("calendars.list").rollout == Rollout(interval_s=300)


@pytest.mark.parametrize(
    ("rollout", "reason"),
    [
        (
            "{steps: [1, 5]}",
            "rollout.steps must end at 100 (the endpoint then serves async), not 5",
        ),
        ("{steps: [5, 1, 100]}", "rollout.steps must rise: 1 comes after 5"),
        ("{steps: [0, 100]}", "rollout.steps: every step must be above 0"),
        ("{steps: [1.255, 100]}", "rollout.steps: step 1.255 has more than two decimals"),
        ("{steps: []}", "rollout.steps must be a list of percents ending at 100"),
        ("{steps: [1, 101]}", "rollout.steps: step 101 is out of range (0 to 100)"),
        ("{interval: soon}", "rollout.interval: bad duration 'soon'"),
        ("{interval: 500ms}", "rollout.interval must be from 1s to 7d, got '500ms'"),
        ("{shadow_for: 8d}", "rollout.shadow_for: bad duration '8d'"),
        ("{from: legacy}", "rollout.from must be canary or shadow, got 'legacy'"),
        (
            "{step: [100]}",
            "unknown rollout key 'step' (expected steps, interval, from, shadow_for)",
        ),
        ("[1, 100]", "rollout must be a mapping such as {steps: [1, 5, 25, 50, 100]"),
    ],
)
def test_bad_rollout_settings_name_the_line(rollout: str, reason: str) -> None:
    text = HEAD + f"  appointments.list:\n    mode: legacy\n    rollout: {rollout}\n"
    expect_error(text, 7, f"appointments.list: {reason}")


def test_a_bad_mismatch_rate_names_the_line() -> None:
    text = HEAD + "  appointments.list:\n    mode: legacy\n    guard: {max_mismatch_rate: 2}\n"
    expect_error(text, 7, "guard.max_mismatch_rate must be a number from 0 to 1, got 2")


def test_new_settings_at_their_defaults_keep_every_fingerprint() -> None:
    # Flags stored by the version before guard.max_mismatch_rate and rollout existed must
    # not look changed, or the upgrade would re-apply every YAML entry over runtime state.
    explicit = Flag(
        "appointments.list",
        mode="canary",
        percent=25,
        guard=Guard(max_mismatch_rate=0.01),
        rollout=Rollout(steps=(1, 5, 25, 50, 100), interval_s=600),
    )
    assert explicit.fingerprint() == "eea20df494ba1e2f"


@pytest.mark.parametrize(
    "other",
    [
        Flag("appointments.list", mode="canary", percent=25, guard=Guard(max_mismatch_rate=0.1)),
        Flag("appointments.list", mode="canary", percent=25, rollout=Rollout(interval_s=60)),
        Flag("appointments.list", mode="canary", percent=25, rollout=Rollout(steps=(50, 100))),
        Flag("appointments.list", mode="canary", percent=25, rollout=Rollout(start_from="shadow")),
    ],
)
def test_new_settings_count_when_set(other: Flag) -> None:
    assert other.fingerprint() != Flag("appointments.list", mode="canary", percent=25).fingerprint()


def test_a_rollout_plan_changed_at_runtime_drifts() -> None:
    declared = Flag("appointments.list")
    started = make_flag(
        "appointments.list", rollout={"steps": [10, 100], "interval": "2s"}, base=declared
    )
    assert drift(started, declared) == ("rollout",)
    assert started.rollout == Rollout(steps=(10, 100), interval_s=2)


def test_an_exported_rollout_parses_back_to_itself() -> None:
    file = parse(HEAD + "  appointments.list: {mode: legacy}\n")
    flag = Flag(
        "appointments.list",
        rollout=Rollout(steps=(2.5, 50, 100), interval_s=90, start_from="shadow", shadow_for_s=0.5),
        guard=Guard(max_mismatch_rate=0.2),
    )
    entry = entry_fields(flag, file)
    assert entry["rollout"] == {
        "steps": [2.5, 50, 100],
        "interval": "90s",
        "from": "shadow",
        "shadow_for": "500ms",
    }
    assert entry["guard"] == {"max_mismatch_rate": 0.2}
    # 500ms is refused as a duration of a rollout (at least 1s), so export the valid one.
    flag = Flag("appointments.list", rollout=Rollout(steps=(2.5, 50, 100), interval_s=90))
    text = (
        HEAD
        + "  appointments.list:\n"
        + "".join(f"    {key}: {value}\n" for key, value in entry_fields(flag, file).items())
    )
    assert parse(text).flags["appointments.list"] == flag


def test_a_stored_flag_reads_back_to_the_same_digest() -> None:
    flag = Flag("appointments.list", rollout=Rollout(steps=(10.0, 100.0), interval_s=2.0))
    stored = flag.to_dict()
    stored["rollout"] = {"steps": [10, 100], "interval_s": 2, "start_from": "canary"}
    again = Flag.from_dict(stored)
    assert again == flag and again.fingerprint() == flag.fingerprint()
