"""The start-up twin check (Flask vs async route tables) and the per-request route matcher."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Blueprint, Flask
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from asgi_gateway.endpoints import routes as admin_assistant_routes
from asgi_gateway.errors import RouteMismatch
from asgi_gateway.serving.routing import Endpoint, RouteMatcher, check_twins, flask_endpoints
from legacy_flask import create_app
from shared.config import Settings


def flask_app() -> Flask:
    """A small Flask app with a blueprint, a converter-typed path and a plain one."""
    app = Flask(__name__)
    bp = Blueprint("items", __name__)

    @bp.get("/items", endpoint="list")
    def list_items() -> str:
        return "[]"

    @bp.post("/items", endpoint="create")
    def create_item() -> str:
        return "{}"

    @bp.route("/items/<int:item_id>", methods=["GET", "PATCH"], endpoint="get")
    def get_item(item_id: int) -> str:
        return "{}"

    @bp.get("/tags/<name>", endpoint="tag")
    def tag(name: str) -> str:
        return name

    app.register_blueprint(bp)
    return app


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def route(path: str, name: str, methods: list[str]) -> Route:
    return Route(path, ok, name=name, methods=methods)


TWINS = [
    route("/items", "items.list", ["GET"]),
    route("/items", "items.create", ["POST"]),
    route("/items/{item_id:int}", "items.get", ["GET", "PATCH"]),
    route("/tags/{name}", "items.tag", ["GET"]),
]


def scope(path: str, method: str = "GET") -> dict[str, Any]:
    return {
        "type": "http",
        "path": path,
        "method": method,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }


# -- check_twins ---------------------------------------------------------------------------------


def test_matching_twins_pass_and_return_flasks_endpoints() -> None:
    endpoints = check_twins(flask_app(), TWINS)

    assert endpoints == {
        "items.list": Endpoint("items.list", "/items", frozenset({"GET"})),
        "items.create": Endpoint("items.create", "/items", frozenset({"POST"})),
        "items.get": Endpoint("items.get", "/items/{item_id:int}", frozenset({"GET", "PATCH"})),
        "items.tag": Endpoint("items.tag", "/tags/{name:str}", frozenset({"GET"})),
    }


def test_a_subset_of_twins_is_fine() -> None:
    check_twins(flask_app(), [TWINS[0]])
    check_twins(flask_app(), [])


def test_static_files_are_not_endpoints() -> None:
    assert "static" not in flask_endpoints(flask_app())


def test_missing_flask_twin_names_the_route() -> None:
    routes = [*TWINS, route("/items/export", "items.export", ["GET"])]

    with pytest.raises(
        RouteMismatch,
        match=r"items\.export: no Flask endpoint of that name "
        r"\(async route /items/export\)",
    ):
        check_twins(flask_app(), routes)


def test_pattern_that_differs_names_both_patterns() -> None:
    routes = [route("/items/{item_id}", "items.get", ["GET", "PATCH"])]

    with pytest.raises(
        RouteMismatch,
        match=re.escape(
            "items.get: URL pattern differs: Flask /items/{item_id:int} vs async "
            "/items/{item_id:str}"
        ),
    ):
        check_twins(flask_app(), routes)


def test_renamed_path_parameter_is_a_different_pattern() -> None:
    routes = [route("/items/{id:int}", "items.get", ["GET", "PATCH"])]

    with pytest.raises(RouteMismatch, match=r"items\.get: URL pattern differs"):
        check_twins(flask_app(), routes)


def test_methods_that_differ_name_both_sets() -> None:
    routes = [route("/items/{item_id:int}", "items.get", ["GET", "DELETE"])]

    with pytest.raises(
        RouteMismatch,
        match=re.escape(
            "items.get: methods differ: Flask ['GET', 'PATCH'] vs async ['DELETE', 'GET']"
        ),
    ):
        check_twins(flask_app(), routes)


def test_head_and_options_do_not_count() -> None:
    # Flask adds HEAD and OPTIONS to every GET rule, Starlette adds HEAD: neither is a difference.
    check_twins(flask_app(), [route("/items", "items.list", ["GET", "HEAD", "OPTIONS"])])


def test_twice_registered_async_route() -> None:
    routes = [TWINS[0], route("/items", "items.list", ["GET"])]

    with pytest.raises(
        RouteMismatch,
        match=r"items\.list: registered twice among the async "
        r"routes",
    ):
        check_twins(flask_app(), routes)


def test_every_problem_is_reported_at_once() -> None:
    routes = [
        route("/items", "items.list", ["POST"]),
        route("/items/{item_id:str}", "items.get", ["GET", "PATCH"]),
        route("/gone", "items.gone", ["GET"]),
    ]

    with pytest.raises(RouteMismatch) as caught:
        check_twins(flask_app(), routes)

    message = str(caught.value)
    assert message.startswith("async routes do not match their Flask twins:")
    assert "items.list: methods differ" in message
    assert "items.get: URL pattern differs" in message
    assert "items.gone: no Flask endpoint" in message


def test_admin_assistants_twins_match_its_flask_app(settings: Settings) -> None:
    endpoints = check_twins(
        create_app(settings=settings, defer_runtime=True), admin_assistant_routes
    )

    assert endpoints["appointments.list"] == Endpoint(
        "appointments.list", "/api/appointments", frozenset({"GET"})
    )


# -- RouteMatcher --------------------------------------------------------------------------------


def test_static_path_matches() -> None:
    found = RouteMatcher(TWINS).match(scope("/items"))

    assert found is not None
    assert found[0].name == "items.list"


def test_method_picks_among_routes_on_one_path() -> None:
    found = RouteMatcher(TWINS).match(scope("/items", "POST"))

    assert found is not None
    assert found[0].name == "items.create"


def test_param_path_matches_with_converted_params() -> None:
    found = RouteMatcher(TWINS).match(scope("/items/42", "PATCH"))

    assert found is not None
    matched, child = found
    assert matched.name == "items.get"
    assert child["path_params"] == {"item_id": 42}


def test_str_param_path_matches() -> None:
    found = RouteMatcher(TWINS).match(scope("/tags/red"))

    assert found is not None
    assert found[1]["path_params"] == {"name": "red"}


def test_head_matches_a_get_route() -> None:
    found = RouteMatcher(TWINS).match(scope("/items", "HEAD"))

    assert found is not None
    assert found[0].name == "items.list"


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/items", "DELETE"),
        ("/items/42", "POST"),
    ],
)
def test_method_mismatch_is_none(path: str, method: str) -> None:
    assert RouteMatcher(TWINS).match(scope(path, method)) is None


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/login",
        "/item",
        "/items/",
        "/items/abc",
        "/items/42/extra",
        "/tags/",
        "/api/items",
    ],
)
def test_unrelated_path_is_none(path: str) -> None:
    assert RouteMatcher(TWINS).match(scope(path)) is None


def test_no_routes_match_nothing() -> None:
    assert RouteMatcher([]).match(scope("/items")) is None
