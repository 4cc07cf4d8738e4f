"""Bad shadow, compare and fallback settings in a flag file: `file:line: endpoint: reason`."""

from __future__ import annotations

from pathlib import Path

import pytest

from asgi_gateway.errors import FlagError, FlagFileError
from asgi_gateway.flag_file import load_flag_file, parse_flag_file
from asgi_gateway.flag_values import check_bool, parse_duration_s
from asgi_gateway.flags import EndpointRules, make_flag

PATH = Path("/srv/feature_flags.yaml")
RULES = EndpointRules(
    known=frozenset({"items.list", "items.create", "items.purge"}),
    twins=frozenset({"items.list", "items.create", "items.purge"}),
    methods={"items.list": {"GET", "HEAD"}, "items.create": {"POST"}, "items.purge": {"DELETE"}},
    has_dry_run=False,
)


def error_of(entry: str, rules: EndpointRules = RULES) -> str:
    text = f"version: 1\nroutes:\n  items.list:\n    mode: shadow\n{entry}"
    with pytest.raises(FlagFileError) as caught:
        parse_flag_file(text, PATH, rules)
    return str(caught.value)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("    shadow: 0.5\n", "shadow must be a mapping such as {sample: 0.5, timeout: 2s}"),
        ("    shadow: {rate: 1}\n", "unknown shadow key 'rate' (expected sample, timeout, writes)"),
        ("    shadow: {sample: 2}\n", "shadow.sample must be a number from 0 to 1, got 2"),
        ("    shadow: {timeout: soon}\n", "shadow.timeout: bad duration 'soon'"),
        ("    shadow: {writes: always}\n", "shadow.writes must be dry_run (or none), got 'always'"),
        ("    compare: [x]\n", "compare must be a mapping such as {ignore: [$.updated_at]}"),
        ("    compare: {diff: 1}\n", "unknown compare key 'diff'"),
        ("    compare: {ignore: $.x}\n", "compare.ignore must be a list of JSON paths"),
        ("    compare: {ignore: [1]}\n", "compare.ignore must be a list of JSON paths"),
        ("    compare: {headers: [Bad Header]}\n", "compare.headers must be a list of header"),
        ("    compare: {headers: x}\n", "compare.headers must be a list of header names"),
        ("    compare: {noise_sample: -1}\n", "compare.noise_sample must be a number from 0 to 1"),
        ("    compare: {learn_noise: yes please}\n", "compare.learn_noise must be true or false"),
        ("    fallback: 1\n", "fallback must be true or false, got 1"),
        ("    fallback_timeout: 0s\n", "bad duration '0s'"),
    ],
)
def test_a_bad_setting_names_its_line_endpoint_and_reason(entry: str, reason: str) -> None:
    message = error_of(entry)
    assert message.startswith(f"{PATH}:5: items.list: "), message
    assert reason in message, message


def test_compare_settings_are_read_and_header_names_lowered() -> None:
    text = (
        "version: 1\nroutes:\n  items.list:\n    mode: shadow\n"
        "    compare: {ignore: null, headers: [Content-Type, ETag], noise_sample: 0.5, "
        "learn_noise: true, keep_bodies: true}\n"
        "    shadow: {sample: 0.5, timeout: 250ms, writes: none}\n"
    )
    flag = parse_flag_file(text, PATH, RULES).flags["items.list"]
    assert flag.compare.ignore == ()
    assert flag.compare.headers == ("content-type", "etag")
    assert (flag.compare.noise_sample, flag.compare.learn_noise, flag.compare.keep_bodies) == (
        0.5,
        True,
        True,
    )
    assert (flag.shadow.sample, flag.shadow.timeout_s) == (0.5, 0.25)


def test_a_write_endpoint_in_shadow_needs_a_dry_run_the_app_provides() -> None:
    text = "version: 1\nroutes:\n  items.create: {mode: shadow}\n"
    with pytest.raises(FlagFileError, match=r"items.create writes \(POST\): in shadow its twin"):
        parse_flag_file(text, PATH, RULES)
    text = "version: 1\nroutes:\n  items.create: {mode: shadow, shadow: {writes: dry_run}}\n"
    with pytest.raises(FlagFileError, match="dry_run needs a dry-run hook from the app"):
        parse_flag_file(text, PATH, RULES)


def test_fallback_is_only_for_endpoints_with_safe_methods() -> None:
    text = "version: 1\nroutes:\n  items.purge: {mode: async, fallback: true}\n"
    with pytest.raises(FlagFileError, match=r"fallback only replays safe requests .* items.purge"):
        parse_flag_file(text, PATH, RULES)
    text = (
        "version: 1\nroutes:\n  items.list: {mode: async, fallback: true, fallback_timeout: 2s}\n"
    )
    flag = parse_flag_file(text, PATH, RULES).flags["items.list"]
    assert (flag.fallback, flag.fallback_timeout_s) == (True, 2.0)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("version: 1\ndefaults: [1]\n", 2, "defaults must be a mapping"),
        ("version: 1\nroutes:\n  items.list: [legacy]\n", 3, "entry must be a mapping"),
        ("version: 1\ndefaults:\n  rollout: {steps: [5, 1]}\n", 3, "defaults: rollout.steps must"),
    ],
)
def test_misshapen_parts_of_the_file_are_named(text: str, line: int, reason: str) -> None:
    with pytest.raises(FlagFileError) as caught:
        parse_flag_file(text, PATH, RULES)
    assert str(caught.value).startswith(f"{PATH}:{line}: ")
    assert reason in str(caught.value)


def test_an_unreadable_flag_file_says_why(tmp_path: Path) -> None:
    with pytest.raises(FlagFileError, match=r"cannot read flag file: Is a directory"):
        load_flag_file(tmp_path)


def test_single_values_accept_numbers_and_refuse_non_booleans() -> None:
    assert parse_duration_s(2) == 2.0
    assert parse_duration_s("1.5m") == 90.0
    with pytest.raises(FlagError, match="bad duration True"):
        parse_duration_s(True)
    with pytest.raises(FlagError, match="x must be true or false, got 'yes'"):
        check_bool("yes", "x", "x")


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"shadow": 0.5}, "shadow", "shadow must be a mapping"),
        ({"shadow": {"rate": 1}}, "shadow", "unknown shadow key 'rate'"),
        ({"compare": ["$.x"]}, "compare", "compare must be a mapping"),
        ({"compare": {"ignore": "$.x"}}, "compare", "compare.ignore must be a list"),
    ],
)
def test_a_misshapen_change_from_the_api_or_cli_is_a_flag_error_naming_the_field(
    change: dict[str, object], field: str, reason: str
) -> None:
    # These were TypeErrors (a 500 from the admin API, a traceback from the CLI).
    with pytest.raises(FlagError, match=reason) as caught:
        make_flag("items.list", mode="shadow", rules=RULES, **change)  # type: ignore[arg-type]
    assert caught.value.field == field
