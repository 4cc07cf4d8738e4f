"""Canary buckets and the per-request backend decision (pure, no I/O)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from asgi_gateway.flags import Flag
from asgi_gateway.serving.decision import (
    BUCKETS,
    EMPTY_SNAPSHOT,
    CompiledFlag,
    Snapshot,
    bucket,
    decide_backend,
)

ENDPOINT = "appointments.list"
KEYS = [f"u:{i}" for i in range(10_000)]

# PUBLISHED TEST VECTORS. They were computed once with `bucket` and are hard-coded on purpose:
# a user's bucket decides which backend answers them during a canary, so any change to the
# hash, its input format or the bucket count silently moves users between backends mid-rollout.
# If one of these fails, the change re-buckets every user: do not "fix" the numbers; keep the
# old function, or ship the change with the rollout plan that it requires.
VECTORS = [
    ("appointments.list", "u:1", 5483),
    ("appointments.list", "u:2", 4321),
    ("appointments.list", "u:42", 1906),
    ("appointments.list", "u:691", 2500),
    ("appointments.list", "u:4529", 2499),
    ("appointments.list", "s:abc", 3366),
    ("appointments.list", "ip:127.0.0.1", 5478),
    ("appointments.list", "h:tenant-7", 7053),
    ("appointments.list", "", 456),
    ("appointments.list", "ü:ñ", 7556),
    ("appointments.get", "u:1", 6510),
    ("calendars.list", "u:1", 4008),
    ("calendars.create", "s:session-token", 1103),
    ("archive.run", "u:1000", 6799),
    ("auth.me", "t:0123456789abcdef01234567", 1716),
]


def compiled(mode: str, percent: float = 0.0, sticky_by: str = "user") -> CompiledFlag:
    return CompiledFlag.of(
        Flag(
            ENDPOINT,
            mode=mode,
            percent=percent,  # type: ignore[arg-type]
            sticky_by=sticky_by,
        )
    )


def backends(flag: CompiledFlag, keys: list[str] = KEYS) -> dict[str, str]:
    return {key: decide_backend(flag, ENDPOINT, key) for key in keys}


# -- buckets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "key", "expected"), VECTORS)
def test_bucket_matches_the_published_vectors(endpoint: str, key: str, expected: int) -> None:
    assert bucket(endpoint, key) == expected


def test_bucket_is_the_same_in_another_process() -> None:
    # The built-in hash() is salted per process; a bucket must not be.
    code = (
        "import sys; from asgi_gateway.serving.decision import bucket; "
        "print(' '.join(str(bucket(e, k)) for e, k in zip(sys.argv[1::2], sys.argv[2::2])))"
    )
    args = [part for endpoint, key, _ in VECTORS for part in (endpoint, key)]
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )

    assert out.stdout.split() == [str(expected) for _, _, expected in VECTORS]


def test_bucket_stays_in_range() -> None:
    assert all(0 <= bucket(ENDPOINT, key) < BUCKETS for key in KEYS)


def test_the_same_key_gets_another_bucket_on_another_endpoint() -> None:
    # Otherwise the same users would be the guinea pigs of every canary.
    same = sum(bucket("appointments.list", key) == bucket("appointments.get", key) for key in KEYS)

    assert same < 20


# -- canary --------------------------------------------------------------------------------------


def test_canary_25_percent_sends_about_a_quarter_of_users_async() -> None:
    chosen = backends(compiled("canary", 25))
    share = sum(backend == "async" for backend in chosen.values()) / len(chosen)

    assert 0.24 <= share <= 0.26


def test_the_same_key_always_gets_the_same_backend() -> None:
    flag = compiled("canary", 25)

    first = backends(flag)

    assert backends(flag) == first
    assert backends(compiled("canary", 25)) == first


def test_bucket_below_the_threshold_goes_async() -> None:
    flag = compiled("canary", 25)

    assert decide_backend(flag, ENDPOINT, "u:4529") == "async"  # bucket 2499
    assert decide_backend(flag, ENDPOINT, "u:691") == "legacy"  # bucket 2500


def test_raising_percent_never_moves_a_user_back() -> None:
    at_25 = backends(compiled("canary", 25))
    at_50 = backends(compiled("canary", 50))

    moved_back = [key for key in KEYS if at_25[key] == "async" and at_50[key] == "legacy"]
    assert moved_back == []
    assert sum(b == "async" for b in at_50.values()) > sum(b == "async" for b in at_25.values())


def test_every_step_of_a_rollout_only_adds_users() -> None:
    steps = [0, 0.01, 1, 5, 10, 12.34, 25, 50, 75, 99.99, 100]
    previous: set[str] = set()
    for percent in steps:
        now = {k for k, b in backends(compiled("canary", percent)).items() if b == "async"}
        assert previous <= now, f"users moved back to legacy at {percent}%"
        previous = now


def test_zero_percent_sends_everybody_to_legacy() -> None:
    flag = compiled("canary", 0)

    assert set(backends(flag).values()) == {"legacy"}
    assert {decide_backend(flag, ENDPOINT, None) for _ in range(1000)} == {"legacy"}


def test_hundred_percent_sends_everybody_async() -> None:
    flag = compiled("canary", 100)

    assert set(backends(flag).values()) == {"async"}
    assert {decide_backend(flag, ENDPOINT, None) for _ in range(1000)} == {"async"}


def test_one_hundredth_of_a_percent_is_one_bucket() -> None:
    flag = compiled("canary", 0.01)

    assert flag.threshold == 1
    chosen = backends(flag)
    assert {k for k, b in chosen.items() if b == "async"} == {
        k for k in KEYS if bucket(ENDPOINT, k) == 0
    }


def test_two_decimal_percent_compiles_to_an_exact_threshold() -> None:
    # 0.29 * 100 is 28.999999999999996 in floating point: truncating would lose a bucket.
    assert compiled("canary", 0.29).threshold == 29
    assert compiled("canary", 12.34).threshold == 1234
    assert compiled("canary", 57.01).threshold == 5701


def test_a_request_without_key_rolls_the_dice() -> None:
    flag = compiled("canary", 50, sticky_by="random")

    share = sum(decide_backend(flag, ENDPOINT, None) == "async" for _ in range(10_000)) / 10_000

    assert 0.40 <= share <= 0.60  # ~20 standard deviations wide: cannot flake


# -- modes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"), [("legacy", "legacy"), ("shadow", "legacy"), ("async", "async")]
)
def test_modes_other_than_canary_ignore_the_key(mode: str, expected: str) -> None:
    flag = compiled(mode, 0)

    assert set(backends(flag, KEYS[:500]).values()) == {expected}
    assert decide_backend(flag, ENDPOINT, None) == expected


def test_an_endpoint_without_flag_stays_legacy() -> None:
    assert decide_backend(None, ENDPOINT, "u:1") == "legacy"
    assert decide_backend(EMPTY_SNAPSHOT.flags.get(ENDPOINT), ENDPOINT, "u:1") == "legacy"


# -- snapshot ------------------------------------------------------------------------------------


def test_snapshot_compiles_each_flag() -> None:
    flags = {ENDPOINT: Flag(ENDPOINT, mode="canary", percent=25, sticky_by="header:X-Tenant")}

    snapshot = Snapshot.build(7, flags)

    assert snapshot.version == 7
    flag = snapshot.flags[ENDPOINT]
    assert (flag.mode, flag.threshold, flag.sticky_by, flag.header) == (
        "canary",
        2500,
        "header:X-Tenant",
        "x-tenant",
    )
    assert flag.flag is flags[ENDPOINT]


def test_snapshot_is_immutable() -> None:
    snapshot = Snapshot.build(1, {ENDPOINT: Flag(ENDPOINT, mode="async")})

    with pytest.raises(TypeError):
        snapshot.flags[ENDPOINT] = compiled("legacy")  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.version = 2  # type: ignore[misc]
