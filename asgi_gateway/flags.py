"""Flags: the rollout of one endpoint, its validation, and the feature_flags.yaml format (pure).

Nothing here does I/O except `load_flag_file`, which only reads the file; parsing and
validation are plain functions over plain data.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from asgi_gateway.errors import FlagError, FlagFileError, UnknownEndpoint

Mode = Literal["legacy", "shadow", "canary", "async"]
MODES: tuple[Mode, ...] = ("legacy", "shadow", "canary", "async")
STICKY_CHOICES = ("user", "session", "ip", "random", "header:<Name>")
_HEADER_NAME = re.compile(r"^header:([A-Za-z0-9!#$%&'*+.^_`|~-]+)$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True, slots=True)
class Guard:
    """When an async rollout counts as unhealthy (read by the auto-rollback guard)."""

    max_error_rate: float = 0.02
    min_requests: int = 50
    window_s: float = 60.0
    max_latency_ratio: float = 2.0


@dataclass(frozen=True, slots=True)
class Flag:
    """Who answers one endpoint: `legacy`, `async`, a sticky `canary` percent, or `shadow`.

    Always normal: `percent` means something only in canary and is 0 in every other mode,
    so two flags that route alike compare equal (and never show as drift).
    """

    endpoint: str
    mode: Mode = "legacy"
    percent: float = 0.0
    sticky_by: str = "user"
    compare_ignore: tuple[str, ...] = ()
    guard: Guard = field(default_factory=Guard)

    def __post_init__(self) -> None:
        if self.mode != "canary" and self.percent:
            object.__setattr__(self, "percent", 0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (API, audit rows, export)."""
        data = asdict(self)
        data["compare_ignore"] = list(self.compare_ignore)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Flag:
        """The Flag of a `to_dict()` form (stored rows, audit); unknown keys are ignored."""
        guard = data.get("guard") or {}
        return cls(
            endpoint=data["endpoint"],
            mode=data.get("mode", "legacy"),
            percent=round(float(data.get("percent") or 0), 2),
            sticky_by=data.get("sticky_by", "user"),
            compare_ignore=tuple(data.get("compare_ignore") or ()),
            guard=replace(Guard(), **{k: v for k, v in guard.items() if k in Guard.__slots__}),
        )

    def fingerprint(self) -> str:
        """A stable digest of the declared flag, to tell whether its YAML entry changed."""
        data = self.to_dict()
        data["percent"] = float(self.percent)  # equal flags, equal digests: 25 == 25.0
        raw = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FlagFile:
    """A parsed feature_flags.yaml: per-endpoint declared flags plus their defaults."""

    path: Path
    default_sticky_by: str
    default_guard: Guard
    flags: Mapping[str, Flag]
    lines: Mapping[str, int]

    def declared(self, endpoint: str) -> Flag:
        """The endpoint's declared flag, or `legacy` with the file's defaults."""
        flag = self.flags.get(endpoint)
        if flag is not None:
            return flag
        return Flag(endpoint, sticky_by=self.default_sticky_by, guard=self.default_guard)


# -- runtime against declared: the one place drift is computed --------------------------------

# What an operator may change at runtime, and so what may drift from the YAML.
RUNTIME_FIELDS = ("mode", "percent", "sticky_by", "compare_ignore")


def effective_flag(endpoint: str, runtime: Mapping[str, Flag], declared: FlagFile | None) -> Flag:
    """The flag an endpoint is served with: its runtime row, else its declared (YAML) entry."""
    flag = runtime.get(endpoint)
    if flag is not None:
        return flag
    return declared.declared(endpoint) if declared is not None else Flag(endpoint)


def drift(flag: Flag, declared: Flag) -> tuple[str, ...]:
    """The runtime-changeable fields in which `flag` differs from its declared entry.

    Empty when they agree; admin API, dashboard, CLI and `flags export` all ask this.
    """
    return tuple(f for f in RUNTIME_FIELDS if getattr(flag, f) != getattr(declared, f))


# -- validation of single values (shared by YAML, CLI, admin API and dashboard) ---------------


def check_mode(value: Any) -> Mode:
    if value not in MODES:
        raise FlagError(f"unknown mode {value!r} (expected {', '.join(MODES)})", field="mode")
    return value  # type: ignore[no-any-return]


def check_percent(value: Any) -> float:
    """0-100 with at most two decimals (a bucket is 1/100 of a percent)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FlagError(f"percent must be a number from 0 to 100, got {value!r}", field="percent")
    if not 0 <= value <= 100:
        raise FlagError(f"percent {value} is out of range (0 to 100)", field="percent")
    if abs(value * 100 - round(value * 100)) > 1e-6:
        raise FlagError(f"percent {value} has more than two decimals", field="percent")
    return round(float(value), 2)


def check_sticky_by(value: Any) -> str:
    if value in ("user", "session", "ip", "random") or (
        isinstance(value, str) and _HEADER_NAME.match(value)
    ):
        return value  # type: ignore[no-any-return]
    raise FlagError(
        f"bad sticky key {value!r} (expected {', '.join(STICKY_CHOICES)})", field="sticky_by"
    )


def parse_duration_s(value: Any) -> float:
    """`60s`, `5m`, `1h`, `250ms` or a number of seconds, as seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _DURATION.match(str(value).strip()) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise FlagError(f"bad duration {value!r} (expected e.g. 30s, 5m, 1h)", field="window")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def check_endpoint(endpoint: str, known: Collection[str] | None) -> None:
    if known is not None and endpoint not in known:
        raise UnknownEndpoint(f"unknown endpoint id {endpoint!r} (no Flask endpoint has that name)")


def make_flag(
    endpoint: str,
    *,
    mode: Any = None,
    percent: Any = None,
    sticky_by: Any = None,
    base: Flag | None = None,
    known: Collection[str] | None = None,
    twins: Collection[str] | None = None,
) -> Flag:
    """A validated Flag from loose input (CLI, API, dashboard), starting from `base`.

    Fields given as None keep `base`'s value, so a change may name only what it changes.
    """
    check_endpoint(endpoint, known)
    flag = base or Flag(endpoint)
    mode = flag.mode if mode is None else check_mode(mode)
    new_percent = flag.percent if percent is None else check_percent(percent)
    if percent is not None and mode != "canary":
        raise FlagError(f"percent is only used with mode canary (mode is {mode})", field="percent")
    if mode == "canary" and percent is None and flag.mode != "canary":
        raise FlagError("mode canary needs a percent (e.g. --percent 10)", field="percent")
    if twins is not None and mode != "legacy" and endpoint not in twins:
        raise FlagError(
            f"endpoint {endpoint!r} has no async twin; only mode legacy is possible", field="mode"
        )
    return replace(
        flag,
        mode=mode,
        percent=new_percent,
        sticky_by=flag.sticky_by if sticky_by is None else check_sticky_by(sticky_by),
    )


# -- the YAML file ------------------------------------------------------------------------------


def load_flag_file(
    path: Path, *, known: Collection[str] | None = None, twins: Collection[str] | None = None
) -> FlagFile:
    """Read and validate a flag file; FlagFileError says `file:line: endpoint: reason`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FlagFileError(f"{path}: flag file not found (set AA_FLAGS_FILE)") from None
    except OSError as exc:
        raise FlagFileError(f"{path}: cannot read flag file: {exc.strerror}") from None
    return parse_flag_file(decode_flag_text(raw, path), path, known=known, twins=twins)


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


def parse_flag_file(
    text: str,
    path: Path,
    *,
    known: Collection[str] | None = None,
    twins: Collection[str] | None = None,
) -> FlagFile:
    """Parse flag-file text (see `load_flag_file`)."""
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
        guard = _parse_guard(defaults.get("guard"), Guard())
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
                str(endpoint), entry, sticky_by, guard, known, twins
            )
        except FlagError as exc:
            raise fail(_entry_line(entry, exc.field, line), f"{endpoint}: {exc.message}") from None
        lines[str(endpoint)] = line
    return FlagFile(path, sticky_by, guard, flags, lines)


_ENTRY_KEYS = ("mode", "percent", "sticky_by", "compare", "guard")


def _parse_entry(
    endpoint: str,
    entry: Any,
    sticky_by: str,
    guard: Guard,
    known: Collection[str] | None,
    twins: Collection[str] | None,
) -> Flag:
    check_endpoint(endpoint, known)
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
    percent = check_percent(entry.get("percent", 0))
    if twins is not None and mode != "legacy" and endpoint not in twins:
        raise FlagError(f"has no async twin, so mode {mode} is impossible", field="mode")
    compare = entry.get("compare") or {}
    if not isinstance(compare, Mapping) or set(compare) - {"ignore"}:
        raise FlagError("compare must be a mapping with an ignore list", field="compare")
    ignore = compare.get("ignore") or []
    if not isinstance(ignore, list) or not all(
        isinstance(p, str) and p.startswith("$") for p in ignore
    ):
        raise FlagError(
            "compare.ignore must be a list of JSON paths starting with $", field="compare"
        )
    return Flag(
        endpoint=endpoint,
        mode=mode,
        percent=percent,
        sticky_by=check_sticky_by(entry.get("sticky_by", sticky_by)),
        compare_ignore=tuple(ignore),
        guard=_parse_guard(entry.get("guard"), guard),
    )


def entry_fields(flag: Flag, file: FlagFile) -> dict[str, Any]:
    """The route entry that parses back to `flag` under `file`'s defaults (for export).

    Only what differs from the defaults is written, so an exported entry stays short.
    """
    entry: dict[str, Any] = {"mode": flag.mode}
    if flag.mode == "canary":
        entry["percent"] = int(flag.percent) if flag.percent.is_integer() else flag.percent
    if flag.sticky_by != file.default_sticky_by:
        entry["sticky_by"] = flag.sticky_by
    if flag.compare_ignore:
        entry["compare"] = {"ignore": list(flag.compare_ignore)}
    if flag.guard != file.default_guard:
        base, guard = file.default_guard, flag.guard
        entry["guard"] = {
            key: (f"{guard.window_s:g}s" if key == "window" else getattr(guard, attr))
            for key, attr in _GUARD_KEYS.items()
            if getattr(guard, attr) != getattr(base, attr)
        }
    return entry


_GUARD_KEYS = {
    "max_error_rate": "max_error_rate",
    "min_requests": "min_requests",
    "window": "window_s",
    "max_latency_ratio": "max_latency_ratio",
}


def _parse_guard(raw: Any, base: Guard) -> Guard:
    if raw is None:
        return base
    if not isinstance(raw, Mapping):
        raise FlagError("guard must be a mapping", field="guard")
    unknown = set(raw) - {"max_error_rate", "min_requests", "window", "max_latency_ratio"}
    if unknown:
        raise FlagError(f"unknown guard key {sorted(unknown)[0]!r}", field="guard")
    guard = base
    if "max_error_rate" in raw:
        rate = raw["max_error_rate"]
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise FlagError(
                f"guard.max_error_rate must be between 0 and 1, got {rate!r}", field="guard"
            )
        guard = replace(guard, max_error_rate=float(rate))
    if "min_requests" in raw:
        count = raw["min_requests"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise FlagError(
                f"guard.min_requests must be a whole number >= 1, got {count!r}", field="guard"
            )
        guard = replace(guard, min_requests=count)
    if "window" in raw:
        try:
            window_s = parse_duration_s(raw["window"])
        except FlagError as exc:
            # field "guard": the error line is the guard's, not its parent's
            raise FlagError(f"guard.window: {exc.message}", field="guard") from None
        guard = replace(guard, window_s=window_s)
    if "max_latency_ratio" in raw:
        ratio = raw["max_latency_ratio"]
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or ratio < 1:
            raise FlagError(f"guard.max_latency_ratio must be >= 1, got {ratio!r}", field="guard")
        guard = replace(guard, max_latency_ratio=float(ratio))
    return guard


def _key_line(mapping: Any, key: Any, default: int = 1) -> int:
    try:
        return int(mapping.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return default


def _entry_line(entry: Any, key: str | None, default: int) -> int:
    if key is not None and isinstance(entry, CommentedMap) and key in entry:
        return _key_line(entry, key, default)
    return default
