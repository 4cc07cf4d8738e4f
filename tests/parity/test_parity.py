"""Every case, once per backend from the same database: same status, headers, body and state."""

from __future__ import annotations

import pytest

from tests.parity._contract import BACKENDS, Case, Run, differences, mask_state
from tests.parity.cases import CASES, masks_for
from tests.parity.conftest import World


def _mismatches(case: Case, legacy: Run, twin: Run) -> list[str]:
    problems = []
    pairs = [("call", a, b) for a, b in zip(legacy.exchanges, twin.exchanges, strict=True)]
    pairs += [("readback", a, b) for a, b in zip(legacy.readbacks, twin.readbacks, strict=True)]
    for kind, a, b in pairs:
        diff = differences(a, b, masks_for(case, a.call))
        if diff:
            problems.append(
                f"{kind} {a.call.describe()} (legacy vs async):\n  " + "\n  ".join(diff)
            )
    left, right = mask_state(legacy.state), mask_state(twin.state)
    for table in left:
        if left[table] != right[table]:
            problems.append(
                f"database table {table} differs after the case:\n  legacy: "
                f"{left[table]}\n  async:  {right[table]}"
            )
    return problems


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_both_backends_answer_alike(case: Case, world: World) -> None:
    runs = world.run_both(case)
    legacy, twin = runs["legacy"], runs["async"]
    crashes = [
        e for run in (legacy, twin) for e in run.exchanges + run.readbacks if e.status == 500
    ]
    problems = _mismatches(case, legacy, twin)
    if problems:
        logs = "".join(f"\n--- {b} server log ---\n{world.logs(b)}" for b in BACKENDS)
        pytest.fail(
            f"{case.id}: backends differ\n" + "\n".join(problems) + (logs if crashes else ""),
            pytrace=False,
        )
    # Alike is not enough: an unhandled error is a bug on both sides (docs/http.md, Errors).
    if case.known_bug is not None:
        if not crashes:
            pytest.fail(f"{case.id}: fixed ({case.known_bug}); drop its known_bug", pytrace=False)
        pytest.xfail(case.known_bug)
    if crashes:
        pytest.fail(
            f"{case.id}: both backends answered 500:\n  "
            + "\n  ".join(e.describe() for e in crashes)
            + f"\n--- legacy server log ---\n{world.logs('legacy')}",
            pytrace=False,
        )
