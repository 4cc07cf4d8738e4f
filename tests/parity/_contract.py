"""The parity contract as data: calls, cases, recorded exchanges, and how two runs are compared."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Backend = Literal["legacy", "async"]
BACKENDS: tuple[Backend, ...] = ("legacy", "async")
# Who a call is made as; resolved to credentials per server by the harness (conftest.py).
Who = Literal["admin", "alice", "bob", "carol", "anonymous", "alice_cookie", "admin_cookie"]
# Headers whose values must be equal on both backends (lower-case).
COMPARED_HEADERS = ("content-type", "link", "location", "www-authenticate", "allow", "vary")
# Generated values that legitimately differ between two writes of the same row.
_GENERATED = [
    (
        re.compile(r"^local-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
        "local-<generated uuid>",
    )
]
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\*|\d+)\]")


def other(backend: Backend) -> Backend:
    return "async" if backend == "legacy" else "legacy"


@dataclass(frozen=True)
class Call:
    """One HTTP request of a case, made as `who`.

    `served_by` is who must answer: None means the backend under test; "legacy" marks the
    requests the gateway never hands to a twin (an unrouted method or path). In header
    values, `{alice}` (any person's name in braces) stands for that person's API token and
    `{alice_cookie}` for the `aa_session=...` cookie of her /login session on that server.
    """

    method: str
    path: str
    who: Who = "alice"
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    chunked: bool = False
    served_by: Backend | None = None

    def describe(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params)
        size = "" if self.body is None else f" [{len(self.body)} bytes]"
        return f"{self.method} {self.path}{'?' + query if query else ''} as {self.who}{size}"


@dataclass(frozen=True)
class Case:
    """A sequence of calls run once per backend from the same database state.

    `readback` calls run afterwards as an admin forced onto the *other* backend, so what one
    backend wrote is read by its twin. `ignore` adds JSONPath-like masks to the endpoint's.
    `known_bug` names a bug both backends share that makes the case answer 500: parity is
    still checked, the 500 is an expected failure until the bug is fixed.
    """

    endpoint: str
    name: str
    calls: tuple[Call, ...]
    readback: tuple[Call, ...] = ()
    ignore: tuple[str, ...] = ()
    known_bug: str | None = None

    @property
    def id(self) -> str:
        return f"{self.endpoint}:{self.name}"


@dataclass
class Exchange:
    """What came back for one call (everything the comparison looks at)."""

    call: Call
    status: int
    headers: dict[str, str]
    body: Any
    served_by: str | None

    def describe(self) -> str:
        return f"{self.call.describe()} -> {self.status} from {self.served_by}"


@dataclass
class Run:
    """One backend's run of a case: its exchanges, readbacks, and the database state it left."""

    backend: Backend
    exchanges: list[Exchange] = field(default_factory=list)
    readbacks: list[Exchange] = field(default_factory=list)
    state: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def parse_mask(pattern: str) -> tuple[str | int | None, ...]:
    """`$.data[*].created_at` -> ("data", None, "created_at"); None matches any list index."""
    if not pattern.startswith("$"):
        raise ValueError(f"ignore rule {pattern!r} must start with '$'")
    steps: list[str | int | None] = []
    rest = pattern[1:]
    for match in _STEP.finditer(rest):
        key, index = match.groups()
        steps.append(key if key is not None else (None if index == "*" else int(index)))
    if "".join(m.group(0) for m in _STEP.finditer(rest)) != rest:
        raise ValueError(f"ignore rule {pattern!r} is not of the form $.key[*].key")
    return tuple(steps)


def mask(
    value: Any, masks: Iterable[Sequence[str | int | None]], path: tuple[str | int, ...] = ()
) -> Any:
    """`value` with masked paths replaced by their JSON type, and generated values by a marker.

    Keeping the type means an ignored field must still be present, with the same kind of value.
    """
    masks = list(masks)
    for steps in masks:
        if len(steps) == len(path) and all(
            s == p or (s is None and isinstance(p, int)) for s, p in zip(steps, path, strict=True)
        ):
            return f"<ignored {type(value).__name__}>"
    if isinstance(value, Mapping):
        return {k: mask(v, masks, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, masks, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, str):
        for pattern, marker in _GENERATED:
            if pattern.match(value):
                return marker
    return value


def mask_state(state: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {table: [mask(row, ()) for row in rows] for table, rows in state.items()}


def decode_body(content: bytes, content_type: str) -> Any:
    """JSON bodies parsed, empty bodies as None, anything else as text."""
    if not content:
        return None
    if content_type.split(";")[0].strip() == "application/json":
        try:
            return json.loads(content)
        except ValueError:
            return {"<not json>": content.decode(errors="replace")}
    return content.decode(errors="replace")


def differences(a: Exchange, b: Exchange, masks: Sequence[Sequence[str | int | None]]) -> list[str]:
    """What differs between the same call answered by two backends (empty when alike)."""
    problems = []
    if a.status != b.status:
        problems.append(f"status {a.status} != {b.status}")
    for name in COMPARED_HEADERS:
        if a.headers.get(name) != b.headers.get(name):
            problems.append(f"header {name}: {a.headers.get(name)!r} != {b.headers.get(name)!r}")
    left, right = mask(a.body, masks), mask(b.body, masks)
    if left != right:
        problems.append(
            "body:\n    "
            + json.dumps(left, sort_keys=True)
            + "\n != "
            + json.dumps(right, sort_keys=True)
        )
    return problems
