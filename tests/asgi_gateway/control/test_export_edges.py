"""`flags export` as plain data (asgi_gateway/control/export.py): every field round-trips."""

from __future__ import annotations

from pathlib import Path

from asgi_gateway.control.export import export_flags
from asgi_gateway.flag_file import EndpointRules, parse_flag_file
from asgi_gateway.flag_policy import Guard, Rollout
from asgi_gateway.flags import Compare, Flag, Shadow

PATH = Path("feature_flags.yaml")
RULES = EndpointRules(
    known=frozenset({"appointments.list", "appointments.create", "auth.me"}),
    twins=frozenset({"appointments.list", "appointments.create", "auth.me"}),
    methods={"appointments.list": {"GET"}, "appointments.create": {"POST"}, "auth.me": {"GET"}},
)
FILE = """\
# Reviewed rollout.
version: 1
defaults:
  sticky_by: session
  guard: {max_error_rate: 0.05}
routes:
  auth.me: async        # the short form
  appointments.list: {mode: legacy}
"""


def test_a_flag_with_every_setting_changed_exports_and_parses_back_to_itself() -> None:
    declared = parse_flag_file(FILE, PATH, RULES)
    flag = Flag(
        "appointments.list",
        mode="canary",
        percent=12.5,
        sticky_by="header:X-Tenant",
        compare=Compare(
            ignore=("$.meta.at",),
            headers=("content-type",),
            noise_sample=0.5,
            learn_noise=True,
            keep_bodies=True,
        ),
        guard=Guard(max_error_rate=0.1, min_requests=5, window_s=0.5, max_latency_ratio=3.0),
        shadow=Shadow(sample=0.25, timeout_s=0.75),
        fallback=True,
        fallback_timeout_s=1.5,
        rollout=Rollout(steps=(10.0, 100.0), interval_s=120.0),
    )
    text = export_flags(FILE, declared, {"appointments.list": flag})
    assert text.startswith("# Reviewed rollout.\n")
    assert "auth.me: async        # the short form" in text
    assert parse_flag_file(text, PATH, RULES).flags["appointments.list"] == flag
    # Exported once, nothing drifts: a second export leaves the text as it is.
    again = parse_flag_file(text, PATH, RULES)
    assert export_flags(text, again, {"appointments.list": flag}) == text


def test_a_short_form_entry_and_a_new_endpoint_become_mappings() -> None:
    declared = parse_flag_file(FILE, PATH, RULES)
    runtime = {
        "auth.me": Flag("auth.me", mode="legacy", sticky_by="session"),
        "appointments.create": Flag(
            "appointments.create",
            mode="shadow",
            sticky_by="session",
            shadow=Shadow(writes="dry_run"),
            guard=declared.default_guard,
        ),
    }
    text = export_flags(FILE, declared, runtime)
    flags = parse_flag_file(text, PATH, RULES).flags
    assert flags["auth.me"] == runtime["auth.me"]
    assert flags["appointments.create"] == runtime["appointments.create"]
    assert "appointments.create: {mode: shadow, shadow: {writes: dry_run}}" in text


def test_an_empty_file_gets_a_version_and_routes() -> None:
    empty = parse_flag_file("", PATH, RULES)
    flag = Flag("auth.me", mode="async")
    text = export_flags("", empty, {"auth.me": flag})
    assert text.startswith("version: 1\n")
    assert parse_flag_file(text, PATH, RULES).flags == {"auth.me": flag}
    no_routes = "version: 1\nroutes:\n"
    text = export_flags(no_routes, parse_flag_file(no_routes, PATH, RULES), {"auth.me": flag})
    assert parse_flag_file(text, PATH, RULES).flags == {"auth.me": flag}


def test_runtime_flags_equal_to_the_declared_ones_leave_the_file_untouched() -> None:
    declared = parse_flag_file(FILE, PATH, RULES)
    runtime = {name: declared.flags[name] for name in declared.flags}
    assert export_flags(FILE, declared, runtime) == FILE
