"""The feature_flags.yaml format: reading, validating with file:line errors, and export entries.

Nothing here does I/O except `load_flag_file`, which only reads the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from asgi_gateway.errors import FlagError, FlagFileError
from asgi_gateway.flag_policy import Guard, Rollout, parse_guard, parse_rollout
from asgi_gateway.flag_values import check_bool, check_percent, parse_duration_s
from asgi_gateway.flags import (
    Compare,
    EndpointRules,
    Flag,
    Shadow,
    check_endpoint,
    check_flag,
    check_mode,
    check_sticky_by,
    parse_compare,
    parse_shadow,
)

_ENTRY_KEYS = (
    "mode",
    "percent",
    "sticky_by",
    "shadow",
    "compare",
    "fallback",
    "fallback_timeout",
    "guard",
    "rollout",
)


@dataclass(frozen=True)
class FlagFile:
    """A parsed feature_flags.yaml: per-endpoint declared flags plus their defaults."""

    path: Path
    default_sticky_by: str
    default_guard: Guard
    flags: Mapping[str, Flag]
    lines: Mapping[str, int]
    default_rollout: Rollout = field(default_factory=Rollout)

    def declared(self, endpoint: str) -> Flag:
        """The endpoint's declared flag, or `legacy` with the file's defaults."""
        flag = self.flags.get(endpoint)
        if flag is not None:
            return flag
        return Flag(
            endpoint,
            sticky_by=self.default_sticky_by,
            guard=self.default_guard,
            rollout=self.default_rollout,
        )


def load_flag_file(path: Path, rules: EndpointRules | None = None) -> FlagFile:
    """Read and validate a flag file; FlagFileError says `file:line: endpoint: reason`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FlagFileError(f"{path}: flag file not found (set AA_FLAGS_FILE)") from None
    except OSError as exc:
        raise FlagFileError(f"{path}: cannot read flag file: {exc.strerror}") from None
    return parse_flag_file(decode_flag_text(raw, path), path, rules)


def decode_flag_text(raw: bytes, path: Path) -> str:
    """A flag file's bytes as text; FlagFileError with `file:line` when it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise FlagFileError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from None


def parse_flag_file(text: str, path: Path, rules: EndpointRules | None = None) -> FlagFile:
    """Parse flag-file text (see `load_flag_file`); `rules` says what the app's endpoints allow."""
    rules = rules or EndpointRules()
    try:
        doc = YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FlagFileError(f"{path}:{line}: not valid YAML: {problem}") from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise FlagFileError(f"{path}:1: the top level must be a mapping with version and routes")

    def fail(line: int, message: str) -> FlagFileError:
        return FlagFileError(f"{path}:{line}: {message}")

    for key in doc:
        if key not in ("version", "defaults", "routes"):
            raise fail(
                _key_line(doc, key),
                f"unknown top-level key {key!r} (expected version, defaults, routes)",
            )
    if doc.get("version", 1) != 1:
        raise fail(
            _key_line(doc, "version"), f"unsupported version {doc.get('version')!r} (expected 1)"
        )
    defaults = doc.get("defaults") or CommentedMap()
    if not isinstance(defaults, CommentedMap):
        raise fail(_key_line(doc, "defaults"), "defaults must be a mapping")
    try:
        sticky_by = check_sticky_by(defaults.get("sticky_by", "user"))
        guard = parse_guard(defaults.get("guard"), Guard())
        rollout = parse_rollout(defaults.get("rollout"), Rollout())
    except FlagError as exc:
        raise fail(
            _key_line(defaults, exc.field or "guard", _key_line(doc, "defaults")),
            f"defaults: {exc.message}",
        ) from None
    routes = doc.get("routes") or CommentedMap()
    if not isinstance(routes, CommentedMap):
        raise fail(_key_line(doc, "routes"), "routes must be a mapping of endpoint id to flag")
    flags: dict[str, Flag] = {}
    lines: dict[str, int] = {}
    for endpoint, entry in routes.items():
        line = _key_line(routes, endpoint)
        try:
            flags[str(endpoint)] = _parse_entry(
                str(endpoint), entry, sticky_by, guard, rollout, rules
            )
        except FlagError as exc:
            raise fail(_entry_line(entry, exc.field, line), f"{endpoint}: {exc.message}") from None
        lines[str(endpoint)] = line
    return FlagFile(path, sticky_by, guard, flags, lines, rollout)


def _parse_entry(
    endpoint: str,
    entry: Any,
    sticky_by: str,
    guard: Guard,
    rollout: Rollout,
    rules: EndpointRules,
) -> Flag:
    check_endpoint(endpoint, rules.known)
    if isinstance(entry, str):
        entry = {"mode": entry}
    if not isinstance(entry, Mapping):
        raise FlagError("entry must be a mapping such as {mode: canary, percent: 10}")
    for key in entry:
        if key not in _ENTRY_KEYS:
            raise FlagError(f"unknown key {key!r} (expected {', '.join(_ENTRY_KEYS)})", field=key)
    if "mode" not in entry:
        raise FlagError("mode is required", field="mode")
    mode = check_mode(entry["mode"])
    if mode == "canary" and "percent" not in entry:
        raise FlagError("mode canary needs a percent", field="mode")
    if mode != "canary" and "percent" in entry:
        raise FlagError(f"percent is only used with mode canary (mode is {mode})", field="percent")
    flag = Flag(
        endpoint=endpoint,
        mode=mode,
        percent=check_percent(entry.get("percent", 0)),
        sticky_by=check_sticky_by(entry.get("sticky_by", sticky_by)),
        compare=parse_compare(entry["compare"], Compare()) if "compare" in entry else Compare(),
        guard=parse_guard(entry.get("guard"), guard),
        shadow=parse_shadow(entry["shadow"], Shadow()) if "shadow" in entry else Shadow(),
        fallback=check_bool(entry.get("fallback", False), "fallback", "fallback"),
        fallback_timeout_s=(
            parse_duration_s(entry["fallback_timeout"], field="fallback_timeout")
            if "fallback_timeout" in entry
            else 5.0
        ),
        rollout=parse_rollout(entry.get("rollout"), rollout),
    )
    return check_flag(flag, rules)


def entry_fields(flag: Flag, file: FlagFile) -> dict[str, Any]:
    """The route entry that parses back to `flag` under `file`'s defaults (for export).

    Only what differs from the defaults is written, so an exported entry stays short.
    """
    entry: dict[str, Any] = {"mode": flag.mode}
    if flag.mode == "canary":
        entry["percent"] = int(flag.percent) if flag.percent.is_integer() else flag.percent
    if flag.sticky_by != file.default_sticky_by:
        entry["sticky_by"] = flag.sticky_by
    shadow = _changed(asdict(flag.shadow), asdict(Shadow()))
    if shadow:
        if "timeout_s" in shadow:
            shadow["timeout"] = _duration(shadow.pop("timeout_s"))
        entry["shadow"] = shadow
    compare = _changed(asdict(flag.compare), asdict(Compare()))
    if compare:
        entry["compare"] = {k: list(v) if isinstance(v, tuple) else v for k, v in compare.items()}
    if flag.fallback:
        entry["fallback"] = True
    if flag.fallback_timeout_s != 5.0:
        entry["fallback_timeout"] = _duration(flag.fallback_timeout_s)
    guard = _changed(asdict(flag.guard), asdict(file.default_guard))
    if guard:
        if "window_s" in guard:
            guard["window"] = _duration(guard.pop("window_s"))
        entry["guard"] = guard
    if flag.rollout != file.default_rollout:
        entry["rollout"] = rollout_entry(flag.rollout, file.default_rollout)
    return entry


def rollout_entry(rollout: Rollout, defaults: Rollout) -> dict[str, Any]:
    """The `rollout:` mapping that parses back to `rollout` over `defaults` (changed keys only)."""
    entry: dict[str, Any] = {}
    if rollout.steps != defaults.steps:
        entry["steps"] = [int(s) if float(s).is_integer() else s for s in rollout.steps]
    if rollout.interval_s != defaults.interval_s:
        entry["interval"] = _duration(rollout.interval_s)
    if rollout.start_from != defaults.start_from:
        entry["from"] = rollout.start_from
    if rollout.shadow_for_s != defaults.shadow_for_s:
        entry["shadow_for"] = _duration(rollout.shadow_for_s)
    return entry


def _changed(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v != defaults[k]}


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def _key_line(mapping: Any, key: Any, default: int = 1) -> int:
    try:
        return int(mapping.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return default


def _entry_line(entry: Any, key: str | None, default: int) -> int:
    if key is not None and isinstance(entry, CommentedMap) and key in entry:
        return _key_line(entry, key, default)
    return default
