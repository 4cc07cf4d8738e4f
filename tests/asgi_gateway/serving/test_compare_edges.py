"""Comparing two answers (asgi_gateway/serving/compare.py) as plain data: paths, bodies, limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from asgi_gateway.errors import FlagError
from asgi_gateway.serving.compare import (
    MAX_DIFFS,
    MAX_VALUE_CHARS,
    Answer,
    Matcher,
    compare_answers,
    diff_paths,
    generalize,
    parse_path,
    render_path,
)

JSON = (("content-type", "application/json"),)


def answer(body: Any, *, status: int = 200, headers: tuple[tuple[str, str], ...] = JSON) -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Answer(status, headers, raw)


def paths(a: Any, b: Any, ignore: tuple[str, ...] = ()) -> list[str]:
    return [d.path for d in diff_paths(a, b, Matcher.of(ignore)).diffs]


@pytest.mark.parametrize(
    ("path", "tokens"),
    [
        ("$", ()),
        ("$.data[*].id", (("key", "data"), ("any", None), ("key", "id"))),
        ("$.meta.*", (("key", "meta"), ("any", None))),
        ("$.list[3]", (("key", "list"), ("index", 3))),
        ("$['odd key']['it\\'s']", (("key", "odd key"), ("key", "it's"))),
    ],
)
def test_paths_parse_and_render_back(path: str, tokens: tuple[Any, ...]) -> None:
    assert parse_path(path) == tokens
    assert parse_path(render_path(tokens)) == tokens


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("meta.id", "it must start with \\$"),
        (5, "it must start with \\$"),
        ("$.meta..id", "at '..id' \\(use .name, .\\*, \\[n\\], \\[\\*\\] or \\['name'\\]\\)"),
        ("$[x]", "at '\\[x\\]'"),
    ],
)
def test_a_bad_path_names_where_it_goes_wrong(path: Any, message: str) -> None:
    with pytest.raises(FlagError, match=message) as caught:
        parse_path(path)
    assert caught.value.field == "compare"


def test_keys_that_need_quoting_render_quoted_and_indexes_generalize() -> None:
    assert render_path((("key", "a b"), ("key", "it's\\"))) == "$['a b']['it\\'s\\\\']"
    assert render_path((("key", "x"), ("any", None))) == "$.x[*]"
    assert generalize("$.rows[3].tags[0]") == "$.rows[*].tags[*]"


def test_numbers_compare_by_value_and_booleans_by_type() -> None:
    assert paths({"n": 1, "f": 2.0}, {"n": 1.0, "f": 2}) == []
    assert paths({"b": True}, {"b": 1}) == ["$.b"]
    assert paths({"s": "1"}, {"s": 1}) == ["$.s"]
    assert paths([1, 2], [1, 2, 3]) == ["$[2]"]
    assert paths([1, 2, 3], [1]) == ["$[1]", "$[2]"]
    assert paths({"a": 1}, {"b": 1}) == ["$.a", "$.b"]


def test_ignored_paths_hide_the_node_and_everything_under_it() -> None:
    legacy = {"meta": {"at": 1, "by": "x"}, "rows": [{"id": 1, "t": 5}, {"id": 2, "t": 6}]}
    twin = {"meta": {"at": 2}, "rows": [{"id": 1, "t": 7}, {"id": 2, "t": 8}, {"id": 3}]}
    assert paths(legacy, twin, ("$.meta", "$.rows[*].t", "$.rows[2]")) == []
    assert paths(legacy, twin, ("$.rows",)) == ["$.meta.at", "$.meta.by"]
    assert paths({"gone": 1}, {"new": 2}, ("$.gone", "$.new")) == []
    assert paths([1], [1, 2, 3], ("$[*]",)) == []
    assert paths({"x": 1}, {"x": 2}, ("$",)) == []


def test_the_record_stops_at_its_limit_and_says_so() -> None:
    many = MAX_DIFFS + 5
    for legacy, twin in (
        ({f"k{i:02}": i for i in range(many)}, {}),
        ({}, {f"k{i:02}": i for i in range(many)}),
        (list(range(many)), []),
        ([], list(range(many))),
        (list(range(many)), [-1] * many),
    ):
        found = diff_paths(legacy, twin)
        assert len(found.diffs) == MAX_DIFFS
        assert found.truncated and not found.equal


def test_long_values_are_cut_and_absent_ones_named() -> None:
    (diff,) = diff_paths({"text": "x" * 1000}, {}).diffs
    assert len(diff.legacy) == MAX_VALUE_CHARS and diff.legacy.endswith("…")
    assert diff.to_dict() == {"path": "$.text", "legacy": diff.legacy, "async": "(absent)"}


def test_status_and_chosen_headers_differ_by_name() -> None:
    legacy = answer({"a": 1}, headers=(*JSON, ("location", "/x"), ("allow", "GET")))
    twin = answer({"a": 1}, status=201, headers=(*JSON, ("allow", "GET"), ("allow", "HEAD")))
    found = compare_answers(legacy, twin, headers=["location", "allow"], ignore=Matcher())
    assert [d.to_dict() for d in found.diffs] == [
        {"path": "status", "legacy": "200", "async": "201"},
        {"path": "header:location", "legacy": '"/x"', "async": "(absent)"},
        {"path": "header:allow", "legacy": '"GET"', "async": '"GET, HEAD"'},
    ]


def test_json_media_types_compare_structurally_and_others_byte_for_byte() -> None:
    problem = (("content-type", "application/problem+json; charset=utf-8"),)
    assert compare_answers(
        answer(b'{"a": 1, "b": 2}', headers=problem),
        answer(b'{"b":2,"a":1.0}', headers=problem),
        headers=[],
        ignore=Matcher(),
    ).equal
    text = (("content-type", "text/plain"),)
    found = compare_answers(
        answer(b"hello", headers=text),
        answer(b"hell\xff", headers=text),
        headers=[],
        ignore=Matcher(),
    )
    assert [(d.path, d.legacy, d.async_) for d in found.diffs] == [("$", '"hello"', '"hell\ufffd"')]
    assert compare_answers(
        answer(b"a", headers=text), answer(b"b", headers=text), headers=[], ignore=Matcher.of(["$"])
    ).equal


def test_a_json_answer_whose_body_does_not_parse_is_compared_as_bytes() -> None:
    broken = answer(b"{not json")
    deep = answer(b"[" * 100_000 + b"]" * 100_000)
    assert not compare_answers(broken, answer({"a": 1}), headers=[], ignore=Matcher()).equal
    assert compare_answers(deep, deep, headers=[], ignore=Matcher()).equal
