"""Route tables: the start-up twin check against Flask, and the per-request route match."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.routing import Match, Route

from asgi_gateway.errors import RouteMismatch
from asgi_gateway.flags import EndpointRules

_FLASK_ARG = re.compile(r"<(?:([a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")
_STARLETTE_ARG = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-zA-Z_][a-zA-Z0-9_]*))?}")
_CONVERTERS = {
    None: "str",
    "default": "str",
    "string": "str",
    "str": "str",
    "int": "int",
    "float": "float",
    "path": "path",
    "uuid": "uuid",
}
_IGNORED_METHODS = {"HEAD", "OPTIONS"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint as both sides must agree on it."""

    id: str
    pattern: str  # canonical: /api/calendars/{calendar_id:int}
    methods: frozenset[str]


def flask_endpoints(flask_app: Any) -> dict[str, Endpoint]:
    """Every endpoint of a Flask app's url_map (static files excluded)."""
    endpoints: dict[str, Endpoint] = {}
    for rule in flask_app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        pattern = _FLASK_ARG.sub(
            lambda m: f"{{{m.group(2)}:{_CONVERTERS.get(m.group(1), m.group(1))}}}",
            rule.rule,
        )
        methods = frozenset(rule.methods or ()) - _IGNORED_METHODS
        previous = endpoints.get(rule.endpoint)
        if previous is not None:  # one endpoint under several rules: keep the union of methods
            methods |= previous.methods
            pattern = previous.pattern
        endpoints[rule.endpoint] = Endpoint(rule.endpoint, pattern, methods)
    return endpoints


def route_endpoint(route: Route) -> Endpoint:
    pattern = _STARLETTE_ARG.sub(
        lambda m: f"{{{m.group(1)}:{_CONVERTERS.get(m.group(2), m.group(2))}}}",
        route.path,
    )
    return Endpoint(route.name, pattern, frozenset(route.methods or ()) - _IGNORED_METHODS)


def check_twins(flask_app: Any, routes: Iterable[Route]) -> dict[str, Endpoint]:
    """Every async route must match its Flask twin's id, URL pattern and methods.

    Raises RouteMismatch naming each endpoint and its difference; returns Flask's endpoints.
    """
    legacy = flask_endpoints(flask_app)
    problems = []
    seen: set[str] = set()
    for route in routes:
        mine = route_endpoint(route)
        if mine.id in seen:
            problems.append(f"{mine.id}: registered twice among the async routes")
        seen.add(mine.id)
        twin = legacy.get(mine.id)
        if twin is None:
            problems.append(
                f"{mine.id}: no Flask endpoint of that name (async route "
                f"{route.path}); name the route after its Flask twin"
            )
            continue
        if twin.pattern != mine.pattern:
            problems.append(
                f"{mine.id}: URL pattern differs: Flask {twin.pattern} vs async {mine.pattern}"
            )
        if twin.methods != mine.methods:
            problems.append(
                f"{mine.id}: methods differ: Flask {sorted(twin.methods)} vs "
                f"async {sorted(mine.methods)}"
            )
    if problems:
        raise RouteMismatch(
            "async routes do not match their Flask twins:\n  " + "\n  ".join(problems)
        )
    return legacy


def endpoint_rules(
    endpoints: dict[str, Endpoint], routes: Iterable[Route], *, has_dry_run: bool
) -> EndpointRules:
    """What flag validation must know of an app: its endpoints, twins and their methods."""
    return EndpointRules(
        known=frozenset(endpoints),
        twins=frozenset(route.name for route in routes),
        methods={e.id: e.methods for e in endpoints.values()},
        has_dry_run=has_dry_run,
    )


def twin_endpoints(routes: Iterable[Route]) -> dict[str, Endpoint]:
    """The endpoints the async routes declare (when there is no Flask url_map to check)."""
    return {route.name: route_endpoint(route) for route in routes}


@dataclass(frozen=True, slots=True)
class OwnPaths:
    """The paths the gateway answers itself: the rollout prefix (and below), metrics, readyz.

    Matched on whole segments: `/metrics-export` or `/readyz2` belong to the mounted app.
    """

    rollout_prefix: str = "/_rollout"
    metrics: str = "/metrics"
    readyz: str = "/readyz"

    def __post_init__(self) -> None:
        for name in ("rollout_prefix", "metrics", "readyz"):
            value = getattr(self, name)
            if not value.startswith("/") or value.endswith("/") or len(value) < 2:
                raise ValueError(f"{name}={value!r} must start with '/' and not end with one")

    def owns(self, path: str) -> bool:
        """True when `path` is the gateway's own (hot path: two comparisons and a prefix test)."""
        return (
            path == self.metrics
            or path == self.readyz
            or path == self.rollout_prefix
            or path.startswith(self.rollout_prefix + "/")
        )

    def shadowed(self, flask_app: Any) -> list[tuple[str, str]]:
        """Rules of `flask_app` that these paths hide, as (rule, endpoint) pairs."""
        hidden = []
        for rule in flask_app.url_map.iter_rules():
            literal = rule.rule.split("<", 1)[0]
            if self.owns(rule.rule) or ("<" in rule.rule and self.owns(literal.rstrip("/") or "/")):
                hidden.append((rule.rule, rule.endpoint))
        return hidden


def route_path(scope: dict[str, Any]) -> str:
    """The path to route on: `path` without the `root_path` the app is mounted under.

    ASGI puts the mount prefix in both (`uvicorn --root-path /aa` serves a request for
    /api/x with path "/aa/api/x"); Starlette's routes strip it the same way.
    """
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if len(path) == len(root):
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


class RouteMatcher:
    """Finds the async route for a request with one combined regex over every URL pattern.

    Each distinct pattern is one alternative in its own group, so `lastgroup` names the
    pattern that matched, and only the routes of that pattern (one per method) are asked
    for the full match with parameters. Unrelated paths cost one failed regex match.
    """

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        by_pattern: dict[str, list[Route]] = {}
        for route in self.routes:
            by_pattern.setdefault(route.path_regex.pattern, []).append(route)
        self._candidates: dict[str, tuple[Route, ...]] = {}
        parts = []
        for index, (pattern, group) in enumerate(by_pattern.items()):
            # Named groups would clash across the alternation; the route's own regex
            # extracts the parameters afterwards.
            bare = re.sub(r"\(\?P<[^>]+>", "(?:", pattern)
            parts.append(f"(?P<p{index}>{bare})")
            self._candidates[f"p{index}"] = tuple(group)
        self._any = re.compile("|".join(parts)) if parts else None

    def match(self, scope: dict[str, Any]) -> tuple[Route, dict[str, Any]] | None:
        """(route, child scope) for a full match of path and method; None sends it to legacy."""
        if self._any is None:
            return None
        found = self._any.match(route_path(scope))
        if found is None:
            return None
        for route in self._candidates[found.lastgroup or ""]:
            kind, child = route.matches(scope)
            if kind is Match.FULL:
                return route, child
        # Another pattern may match the same path with this method (overlapping patterns
        # such as {name} and a literal segment): ask every route before giving up.
        for route in self.routes:
            kind, child = route.matches(scope)
            if kind is Match.FULL:
                return route, child
        return None  # path matched but not the method: Flask answers (405 in its own shape)


def legacy_resolver(flask_app: Any) -> Callable[[str, str], str | None] | None:
    """Path and method to a Flask endpoint id, for metrics (runs in the background only)."""
    url_map = getattr(flask_app, "url_map", None)
    if url_map is None:
        return None
    adapter = url_map.bind("gateway.invalid")
    cache: dict[tuple[str, str], str | None] = {}

    def resolve(path: str, method: str) -> str | None:
        key = (path, method)
        if key in cache:
            return cache[key]
        try:
            endpoint, _ = adapter.match(path, method)
        except Exception:  # NotFound, MethodNotAllowed, RequestRedirect
            endpoint = None
        if not isinstance(endpoint, str) or endpoint == "static":
            endpoint = None
        if len(cache) >= 10_000:  # paths carry ids: bound the cache
            cache.clear()
        cache[key] = endpoint
        return endpoint

    return resolve
