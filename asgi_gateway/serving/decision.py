"""Per-request backend decision: compiled flags, sticky buckets, and the snapshot (pure, no I/O)."""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from asgi_gateway.flags import Flag
from asgi_gateway.serving.compare import Matcher

Backend = Literal["legacy", "async"]
BUCKETS = 10_000


def bucket(endpoint: str, key: str) -> int:
    """Stable bucket 0..9999 of (endpoint id, sticky key), the same in every process.

    crc32 rather than the built-in hash(): that one is salted per process, which would give
    a user a different backend on every worker. Changing this function re-buckets users;
    the published test vectors in tests/asgi_gateway/test_decision.py guard against that.
    """
    return zlib.crc32(f"{endpoint}\x1f{key}".encode()) % BUCKETS


@dataclass(frozen=True, slots=True)
class CompiledFlag:
    """A Flag reduced to what the hot path reads."""

    flag: Flag
    mode: str
    threshold: int  # canary: a request goes async when its bucket < threshold
    sticky_by: str
    header: str | None  # lower-cased header name for sticky_by header:<Name>
    fallback: bool  # an async answer that fails before its first byte is replaced by legacy's
    ignore: Matcher  # compiled compare.ignore of a shadowed endpoint

    @classmethod
    def of(cls, flag: Flag) -> CompiledFlag:
        header = flag.sticky_by[7:].lower() if flag.sticky_by.startswith("header:") else None
        return cls(
            flag,
            flag.mode,
            round(flag.percent * 100),
            flag.sticky_by,
            header,
            flag.fallback and flag.mode in ("async", "canary"),
            Matcher.of(flag.compare.ignore),
        )


@dataclass(frozen=True)
class Snapshot:
    """The immutable flag state a worker serves from; replaced whole when the version moves."""

    version: int
    flags: Mapping[str, CompiledFlag]

    @classmethod
    def build(cls, version: int, flags: Mapping[str, Flag]) -> Snapshot:
        return cls(version, MappingProxyType({k: CompiledFlag.of(f) for k, f in flags.items()}))


EMPTY_SNAPSHOT = Snapshot(0, MappingProxyType({}))


def decide_canary(compiled: CompiledFlag, endpoint: str, key: str | None) -> Backend:
    """Canary decision for one request; no key (sticky_by random, or no identity) rolls a die."""
    if compiled.threshold >= BUCKETS:
        return "async"
    if compiled.threshold <= 0:
        return "legacy"
    if key is None:
        return "async" if random.randrange(BUCKETS) < compiled.threshold else "legacy"
    return "async" if bucket(endpoint, key) < compiled.threshold else "legacy"


def decide_backend(compiled: CompiledFlag | None, endpoint: str, key: str | None) -> Backend:
    """Who answers: `async` for mode async, the canary bucket for canary, else `legacy`.

    Shadow answers from legacy; the shadow comparison runs beside it, not instead of it.
    """
    if compiled is None:
        return "legacy"
    mode = compiled.mode
    if mode == "async":
        return "async"
    if mode == "canary":
        return decide_canary(compiled, endpoint, key)
    return "legacy"
