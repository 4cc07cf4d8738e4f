"""Comparing two answers to one request (pure): status, chosen headers, bodies, JSON paths.

JSON bodies are compared structurally (key order ignored, 1 == 1.0, true != 1); anything else
byte for byte. Paths use a small, tested subset of JSONPath:

    $            the whole body          $.data[*].id   every element's id
    $.name       a member                $.meta.*       every member of meta
    $.list[3]    one element             $['odd key']   a member whose name needs quoting

A path given to `ignore` hides the node it names and everything under it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asgi_gateway.errors import FlagError

MAX_DIFFS = 20
MAX_VALUE_CHARS = 200
_TOKEN = re.compile(
    r"\.(?P<name>[A-Za-z_][A-Za-z0-9_-]*)|\.(?P<star>\*)|\[(?P<index>\d+)\]|\[(?P<any>\*)\]"
    r"|\['(?P<quoted>(?:[^'\\]|\\.)*)'\]"
)
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_ABSENT = "(absent)"

# A path token: ("key", name), ("index", n), or ("any", None) for * and [*].
Token = tuple[str, Any]


def parse_path(path: str) -> tuple[Token, ...]:
    """The tokens of a JSON path; FlagError naming the path and the syntax when it is bad."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise FlagError(f"bad JSON path {path!r}: it must start with $", field="compare")
    tokens: list[Token] = []
    position = 1
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None:
            raise FlagError(
                f"bad JSON path {path!r} at {path[position:]!r} (use .name, .*, [n], [*] "
                "or ['name'])",
                field="compare",
            )
        if match.group("name") is not None:
            tokens.append(("key", match.group("name")))
        elif match.group("quoted") is not None:
            tokens.append(("key", re.sub(r"\\(.)", r"\1", match.group("quoted"))))
        elif match.group("index") is not None:
            tokens.append(("index", int(match.group("index"))))
        else:
            tokens.append(("any", None))
        position = match.end()
    return tuple(tokens)


def render_path(tokens: Sequence[Token]) -> str:
    """`$.data[3].id` for the tokens of a concrete path."""
    parts = ["$"]
    for kind, value in tokens:
        if kind == "index":
            parts.append(f"[{value}]")
        elif kind == "any":
            parts.append("[*]")
        elif _PLAIN_NAME.match(value):
            parts.append(f".{value}")
        else:
            escaped = value.replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"['{escaped}']")
    return "".join(parts)


def generalize(path: str) -> str:
    """A concrete path with every index made `[*]` (noise seen at [3] is noise at [7])."""
    return render_path([("any", None) if k == "index" else (k, v) for k, v in parse_path(path)])


@dataclass(frozen=True)
class Matcher:
    """A set of JSON path patterns; `covers(tokens)` when one names the node or an ancestor."""

    patterns: tuple[tuple[Token, ...], ...] = ()

    @classmethod
    def of(cls, paths: Iterable[str]) -> Matcher:
        return cls(tuple(parse_path(p) for p in paths))

    def covers(self, tokens: Sequence[Token]) -> bool:
        for pattern in self.patterns:
            if len(pattern) <= len(tokens) and all(
                p[0] == "any" or p == t for p, t in zip(pattern, tokens, strict=False)
            ):
                return True
        return False


@dataclass(frozen=True, slots=True)
class Diff:
    """One difference: where, and both values (JSON text, cut to MAX_VALUE_CHARS)."""

    path: str
    legacy: str
    async_: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "legacy": self.legacy, "async": self.async_}


@dataclass(frozen=True, slots=True)
class Answer:
    """One backend's answer as compared: status, headers (lower-case names), body bytes."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n == name]
        return ", ".join(values) if values else None


@dataclass
class Comparison:
    """The differences found, up to MAX_DIFFS, and whether there were more."""

    diffs: list[Diff] = field(default_factory=list)
    truncated: bool = False

    @property
    def equal(self) -> bool:
        return not self.diffs

    def add(self, path: str, legacy: Any, async_: Any) -> bool:
        """Record one difference; False once the record is full (stop walking)."""
        if len(self.diffs) >= MAX_DIFFS:
            self.truncated = True
            return False
        self.diffs.append(Diff(path, _show(legacy), _show(async_)))
        return True


def compare_answers(
    legacy: Answer, twin: Answer, *, headers: Sequence[str], ignore: Matcher
) -> Comparison:
    """Every difference between two answers that `ignore` does not cover."""
    result = Comparison()
    if legacy.status != twin.status:
        result.add("status", legacy.status, twin.status)
    for name in headers:
        mine, theirs = legacy.header(name), twin.header(name)
        if mine != theirs:
            result.add(f"header:{name}", mine or _ABSENT, theirs or _ABSENT)
    if legacy.body == twin.body:
        return result  # the same bytes hold the same values: nothing to parse
    mine_json, theirs_json = _json_of(legacy), _json_of(twin)
    if mine_json is not _NOT_JSON and theirs_json is not _NOT_JSON:
        _walk(mine_json, theirs_json, (), ignore, result)
    elif legacy.body != twin.body and not ignore.covers(()):
        result.add(
            "$", legacy.body.decode("utf-8", "replace"), twin.body.decode("utf-8", "replace")
        )
    return result


def diff_paths(legacy: Any, twin: Any, ignore: Matcher | None = None) -> Comparison:
    """The differences between two JSON values (for noise: two legacy answers)."""
    result = Comparison()
    _walk(legacy, twin, (), ignore or Matcher(), result)
    return result


_NOT_JSON = object()


def _json_of(answer: Answer) -> Any:
    kind = (answer.header("content-type") or "").split(";")[0].strip().lower()
    if not (
        kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))
    ):
        return _NOT_JSON
    try:
        return json.loads(answer.body)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _walk(a: Any, b: Any, at: tuple[Token, ...], ignore: Matcher, result: Comparison) -> bool:
    """Compare `a` and `b` under path `at`; False once the result is full."""
    if ignore.covers(at):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            here = (*at, ("key", key))
            if key not in b:
                if not ignore.covers(here) and not result.add(render_path(here), a[key], _ABSENT):
                    return False
            elif key not in a:
                if not ignore.covers(here) and not result.add(render_path(here), _ABSENT, b[key]):
                    return False
            elif not _walk(a[key], b[key], here, ignore, result):
                return False
        return True
    if isinstance(a, list) and isinstance(b, list):
        for index in range(max(len(a), len(b))):
            here = (*at, ("index", index))
            if index >= len(b):
                ok = ignore.covers(here) or result.add(render_path(here), a[index], _ABSENT)
            elif index >= len(a):
                ok = ignore.covers(here) or result.add(render_path(here), _ABSENT, b[index])
            else:
                ok = _walk(a[index], b[index], here, ignore, result)
            if not ok:
                return False
        return True
    if _same_scalar(a, b):
        return True
    return result.add(render_path(at), a, b)


def _same_scalar(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _show(value: Any) -> str:
    # Every value compared came from JSON (or is a status or header), so it dumps as JSON.
    text = value if isinstance(value, str) and value == _ABSENT else None
    if text is None:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
