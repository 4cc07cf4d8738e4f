"""Every migrated endpoint has parity cases; a twin without them fails the suite by name."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.routing import Route

from asgi_gateway.endpoints import routes
from tests.parity._contract import Case, parse_mask
from tests.parity.cases import CASES, IGNORE, endpoint_of


def endpoints_without_cases(route_list: Iterable[Route], cases: Iterable[Case]) -> list[str]:
    covered = {c.endpoint for c in cases}
    return sorted(r.name for r in route_list if r.name not in covered)


def test_every_async_route_has_parity_cases() -> None:
    missing = endpoints_without_cases(routes, CASES)
    assert not missing, (
        "migrated endpoints without parity cases (add them to tests/parity/cases.py): "
        + ", ".join(missing)
    )


def test_a_new_twin_without_cases_is_named() -> None:
    async def twin(request: object) -> None:  # never called
        raise AssertionError

    extra = Route("/api/reports", twin, methods=["GET"], name="reports.list")
    assert endpoints_without_cases([*routes, extra], CASES) == ["reports.list"]


def test_cases_name_real_endpoints_and_reach_them() -> None:
    names = {r.name for r in routes}
    assert set(IGNORE) == names, "IGNORE must declare the rules of every endpoint (or ())"
    for case in CASES:
        assert case.endpoint in names, f"{case.id}: no async route named {case.endpoint}"
        assert case.calls, f"{case.id}: no calls"
        # A case is about its endpoint: some call must be routed to it (unrouted calls,
        # answered by Flask on purpose, are marked served_by="legacy").
        reached = {endpoint_of(c.method, c.path) for c in case.calls if c.served_by is None}
        assert case.endpoint in reached or all(c.served_by for c in case.calls), (
            f"{case.id}: no call reaches {case.endpoint} (reached {sorted(map(str, reached))})"
        )


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_ignore_rules_parse() -> None:
    for patterns in IGNORE.values():
        for pattern in patterns:
            parse_mask(pattern)
