"""Flags: the rollout of one endpoint and the validation of every value in it (pure).

Shared by the flag file (`flag_file.py`), the CLI, the admin API and the dashboard: each value
is checked by one function (here, in `flag_values.py`, or for the guard and rollout settings in
`flag_policy.py`), so every surface refuses the same input with the same words.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from asgi_gateway.errors import FlagError, UnknownEndpoint
from asgi_gateway.flag_policy import Guard, Rollout, parse_rollout
from asgi_gateway.flag_values import check_bool, check_fraction, check_percent, parse_duration_s
from asgi_gateway.serving.compare import parse_path

Mode = Literal["legacy", "shadow", "canary", "async"]
MODES: tuple[Mode, ...] = ("legacy", "shadow", "canary", "async")
STICKY_CHOICES = ("user", "session", "ip", "random", "header:<Name>")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_COMPARE_HEADERS = ("content-type", "location", "allow", "content-range")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


@dataclass(frozen=True, slots=True)
class Shadow:
    """How a shadowed endpoint's twin runs: which share of requests, how long, and writes."""

    sample: float = 1.0
    timeout_s: float = 2.0
    writes: Literal["none", "dry_run"] = "none"


@dataclass(frozen=True, slots=True)
class Compare:
    """How the two answers of a shadowed request are compared."""

    ignore: tuple[str, ...] = ()
    headers: tuple[str, ...] = DEFAULT_COMPARE_HEADERS
    noise_sample: float = 0.05
    learn_noise: bool = False
    keep_bodies: bool = False


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
    compare: Compare = field(default_factory=Compare)
    guard: Guard = field(default_factory=Guard)
    shadow: Shadow = field(default_factory=Shadow)
    fallback: bool = False
    fallback_timeout_s: float = 5.0
    rollout: Rollout = field(default_factory=Rollout)

    def __post_init__(self) -> None:
        if self.mode != "canary" and self.percent:
            object.__setattr__(self, "percent", 0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (API, audit rows, stored rows)."""
        data = asdict(self)
        data["compare"]["ignore"] = list(self.compare.ignore)
        data["compare"]["headers"] = list(self.compare.headers)
        data["rollout"]["steps"] = list(self.rollout.steps)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Flag:
        """The Flag of a `to_dict()` form (stored rows, audit); unknown keys are ignored.

        Rows written before shadow settings existed carry `compare_ignore` instead of `compare`.
        """
        compare = dict(data.get("compare") or {})
        if "compare_ignore" in data and "ignore" not in compare:
            compare["ignore"] = data["compare_ignore"]
        return cls(
            endpoint=data["endpoint"],
            mode=data.get("mode", "legacy"),
            percent=round(float(data.get("percent") or 0), 2),
            sticky_by=data.get("sticky_by", "user"),
            compare=_known(Compare, compare, tuples=("ignore", "headers")),
            guard=_known(Guard, data.get("guard") or {}),
            shadow=_known(Shadow, data.get("shadow") or {}),
            fallback=bool(data.get("fallback", False)),
            fallback_timeout_s=float(data.get("fallback_timeout_s", 5.0)),
            rollout=_rollout_of(data.get("rollout") or {}),
        )

    def fingerprint(self) -> str:
        """A stable digest of the declared flag, to tell whether its YAML entry changed.

        Settings added in later versions count only when they differ from their defaults, so
        an upgrade does not make every unchanged entry look changed (and win over runtime).
        """
        # `guard` keeps the keys it had when fingerprints were first published; its later
        # keys, like every later setting, are extras.
        guard = asdict(self.guard)
        data: dict[str, Any] = {
            "endpoint": self.endpoint,
            "mode": self.mode,
            "percent": float(self.percent),  # equal flags, equal digests: 25 == 25.0
            "sticky_by": self.sticky_by,
            "compare_ignore": list(self.compare.ignore),
            "guard": {k: guard[k] for k in _GUARD_PUBLISHED},
        }
        extras = _extras(self)
        default_extras = _extras(Flag(self.endpoint))
        data.update({k: v for k, v in extras.items() if v != default_extras[k]})
        raw = json.dumps(data, sort_keys=True, separators=(",", ":"), default=list)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


_GUARD_PUBLISHED = ("max_error_rate", "min_requests", "window_s", "max_latency_ratio")


def _extras(flag: Flag) -> dict[str, Any]:
    """The settings added after fingerprints were published (they count only when set)."""
    return {
        "compare": {k: v for k, v in asdict(flag.compare).items() if k != "ignore"},
        "shadow": asdict(flag.shadow),
        "fallback": flag.fallback,
        "fallback_timeout_s": flag.fallback_timeout_s,
        "guard_mismatch": flag.guard.max_mismatch_rate,
        "rollout": asdict(flag.rollout),
    }


def _rollout_of(raw: Mapping[str, Any]) -> Rollout:
    rollout: Rollout = _known(Rollout, raw)
    # Floats, as parsed from the file, so a stored flag digests like its declared entry.
    return replace(
        rollout,
        steps=tuple(float(s) for s in rollout.steps),
        interval_s=float(rollout.interval_s),
        shadow_for_s=float(rollout.shadow_for_s),
    )


def _known(cls: Any, raw: Mapping[str, Any], tuples: tuple[str, ...] = ()) -> Any:
    names = {f.name for f in fields(cls)}
    values = {k: (tuple(v) if k in tuples else v) for k, v in raw.items() if k in names}
    return cls(**values)


def describe(flag: Flag) -> str:
    """`canary 25%`, `async`: a flag's routing in a few words, for messages."""
    return f"canary {flag.percent:g}%" if flag.mode == "canary" else flag.mode


# -- runtime against declared: the one place drift is computed --------------------------------

# What an operator may change at runtime, and so what may drift from the YAML.
RUNTIME_FIELDS = (
    "mode",
    "percent",
    "sticky_by",
    "compare",
    "shadow",
    "fallback",
    "fallback_timeout_s",
    "rollout",
)


def effective_flag(endpoint: str, runtime: Mapping[str, Flag], declared: Any) -> Flag:
    """The flag an endpoint is served with: its runtime row, else its declared (YAML) entry.

    `declared` is a FlagFile (or None: legacy with the built-in defaults).
    """
    flag = runtime.get(endpoint)
    if flag is not None:
        return flag
    return declared.declared(endpoint) if declared is not None else Flag(endpoint)


def drift(flag: Flag, declared: Flag) -> tuple[str, ...]:
    """The runtime-changeable fields in which `flag` differs from its declared entry.

    Empty when they agree; admin API, dashboard, CLI and `flags export` all ask this.
    """
    return tuple(f for f in RUNTIME_FIELDS if getattr(flag, f) != getattr(declared, f))


@dataclass(frozen=True, slots=True)
class EndpointRules:
    """What validation needs to know of the app's endpoints (None: not checked)."""

    known: Collection[str] | None = None
    twins: Collection[str] | None = None
    # endpoint id -> its HTTP methods; an endpoint with a write method writes.
    methods: Mapping[str, Collection[str]] | None = None
    has_dry_run: bool = True


# -- validation of single values (shared by YAML, CLI, admin API and dashboard) ---------------


def check_mode(value: Any) -> Mode:
    if value not in MODES:
        raise FlagError(f"unknown mode {value!r} (expected {', '.join(MODES)})", field="mode")
    return value  # type: ignore[no-any-return]


def check_sticky_by(value: Any) -> str:
    if value in ("user", "session", "ip", "random") or (
        isinstance(value, str) and value.startswith("header:") and _HEADER_NAME.match(value[7:])
    ):
        return value  # type: ignore[no-any-return]
    raise FlagError(
        f"bad sticky key {value!r} (expected {', '.join(STICKY_CHOICES)})", field="sticky_by"
    )


def check_endpoint(endpoint: str, known: Collection[str] | None) -> None:
    if known is not None and endpoint not in known:
        raise UnknownEndpoint(f"unknown endpoint id {endpoint!r} (no Flask endpoint has that name)")


def parse_shadow(raw: Any, base: Shadow) -> Shadow:
    """A shadow mapping: `sample` (0-1), `timeout` (a duration), `writes` (`dry_run`)."""
    if not isinstance(raw, Mapping):
        raise FlagError(
            "shadow must be a mapping such as {sample: 0.5, timeout: 2s}", field="shadow"
        )
    unknown = sorted(set(raw) - {"sample", "timeout", "writes"})
    if unknown:
        raise FlagError(
            f"unknown shadow key {unknown[0]!r} (expected sample, timeout, writes)", field="shadow"
        )
    shadow = base
    if "sample" in raw:
        shadow = replace(shadow, sample=check_fraction(raw["sample"], "shadow.sample", "shadow"))
    if "timeout" in raw:
        try:
            shadow = replace(shadow, timeout_s=parse_duration_s(raw["timeout"], field="shadow"))
        except FlagError as exc:
            raise FlagError(f"shadow.timeout: {exc.message}", field="shadow") from None
    if "writes" in raw:
        if raw["writes"] not in ("none", "dry_run"):
            raise FlagError(
                f"shadow.writes must be dry_run (or none), got {raw['writes']!r}", field="shadow"
            )
        shadow = replace(shadow, writes=raw["writes"])
    return shadow


def parse_compare(raw: Any, base: Compare) -> Compare:
    """A compare mapping: `ignore`, `headers`, `noise_sample`, `learn_noise`, `keep_bodies`."""
    if not isinstance(raw, Mapping):
        raise FlagError(
            "compare must be a mapping such as {ignore: [$.updated_at]}", field="compare"
        )
    keys = ("ignore", "headers", "noise_sample", "learn_noise", "keep_bodies")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise FlagError(
            f"unknown compare key {unknown[0]!r} (expected {', '.join(keys)})", field="compare"
        )
    compare = base
    if "ignore" in raw:
        ignore = raw["ignore"] or []
        if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
            raise FlagError(
                "compare.ignore must be a list of JSON paths such as $.x", field="compare"
            )
        for path in ignore:
            parse_path(path)  # FlagError naming the bad path
        compare = replace(compare, ignore=tuple(ignore))
    if "headers" in raw:
        headers = raw["headers"]
        if not isinstance(headers, list) or not all(
            isinstance(h, str) and _HEADER_NAME.match(h) for h in headers
        ):
            raise FlagError("compare.headers must be a list of header names", field="compare")
        compare = replace(compare, headers=tuple(h.lower() for h in headers))
    if "noise_sample" in raw:
        noise = check_fraction(raw["noise_sample"], "compare.noise_sample", "compare")
        compare = replace(compare, noise_sample=noise)
    for key in ("learn_noise", "keep_bodies"):
        if key in raw:
            compare = replace(compare, **{key: check_bool(raw[key], f"compare.{key}", "compare")})
    return compare


def check_flag(flag: Flag, rules: EndpointRules) -> Flag:
    """Refuse a flag its endpoint cannot have (no twin, a double write); return it unchanged."""
    endpoint, mode = flag.endpoint, flag.mode
    if rules.twins is not None and mode != "legacy" and endpoint not in rules.twins:
        raise FlagError(
            f"endpoint {endpoint!r} has no async twin, so mode {mode} is impossible "
            "(only legacy can serve it)",
            field="mode",
        )
    methods = set(rules.methods.get(endpoint, ())) if rules.methods is not None else set()
    writes = sorted(methods & WRITE_METHODS)
    if mode == "shadow" and writes and flag.shadow.writes != "dry_run":
        raise FlagError(
            f"{endpoint} writes ({', '.join(writes)}): in shadow its twin would write a second "
            "time; add shadow: {writes: dry_run} so the twin's writes are rolled back",
            field="shadow",
        )
    if mode == "shadow" and flag.shadow.writes == "dry_run" and not rules.has_dry_run:
        raise FlagError(
            "shadow.writes: dry_run needs a dry-run hook from the app "
            "(build_gateway(dry_run=...)); this gateway has none",
            field="shadow",
        )
    if flag.fallback and rules.methods is not None and not methods & SAFE_METHODS:
        raise FlagError(
            f"fallback only replays safe requests (GET, HEAD, OPTIONS); {endpoint} has none",
            field="fallback",
        )
    return flag


def make_flag(
    endpoint: str,
    *,
    mode: Any = None,
    percent: Any = None,
    sticky_by: Any = None,
    shadow: Any = None,
    compare: Any = None,
    fallback: Any = None,
    fallback_timeout: Any = None,
    rollout: Any = None,
    base: Flag | None = None,
    rules: EndpointRules | None = None,
) -> Flag:
    """A validated Flag from loose input (CLI, API, dashboard), starting from `base`.

    Fields given as None keep `base`'s value, so a change may name only what it changes.
    """
    rules = rules or EndpointRules()
    check_endpoint(endpoint, rules.known)
    flag = base or Flag(endpoint)
    mode = flag.mode if mode is None else check_mode(mode)
    new_percent = flag.percent if percent is None else check_percent(percent)
    if percent is not None and mode != "canary":
        raise FlagError(f"percent is only used with mode canary (mode is {mode})", field="percent")
    if mode == "canary" and percent is None and flag.mode != "canary":
        raise FlagError("mode canary needs a percent (e.g. --percent 10)", field="percent")
    changed = replace(
        flag,
        mode=mode,
        percent=new_percent,
        sticky_by=flag.sticky_by if sticky_by is None else check_sticky_by(sticky_by),
        shadow=flag.shadow if shadow is None else parse_shadow(shadow, flag.shadow),
        compare=flag.compare if compare is None else parse_compare(compare, flag.compare),
        fallback=(
            flag.fallback if fallback is None else check_bool(fallback, "fallback", "fallback")
        ),
        fallback_timeout_s=(
            flag.fallback_timeout_s
            if fallback_timeout is None
            else parse_duration_s(fallback_timeout, field="fallback_timeout")
        ),
        rollout=flag.rollout if rollout is None else parse_rollout(rollout, flag.rollout),
    )
    return check_flag(changed, rules)
