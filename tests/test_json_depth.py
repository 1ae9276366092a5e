"""JSON from outside: too deep a value is invalid JSON (a ValueError), never a RecursionError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memgpt_lab._json import LIMIT, MAX_DEPTH, NestingError, loads, nests_deeper

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=20,
)


def depth(value: Any) -> int:
    """The oracle: how deep arrays and objects nest in a parsed JSON value (0 for a scalar); no recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        stack.extend((child, level) for child in children)
    return deepest


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 0), ("[[[", 0), ([], 1), ({}, 1), ({"a": [1, {"b": None}]}, 3), ([[], [[[]]], 2], 4)],
)
def test_depth_counts_arrays_and_objects(value: Any, expected: int) -> None:
    assert depth(value) == expected


def test_depth_walks_values_too_deep_for_recursion() -> None:
    assert depth(nested(100_000)) == 100_000


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, b"{" + b'"a":{' * 50_000])
def test_what_json_cannot_parse_for_depth_is_a_value_error(text: str | bytes) -> None:
    with pytest.raises(NestingError, match=f"nested deeper than {LIMIT} levels") as info:
        loads(text)
    assert isinstance(info.value, ValueError)


def test_max_depth_refuses_what_parses_butnests_deeper() -> None:
    text = json.dumps(nested(MAX_DEPTH))
    assert loads(text, max_depth=MAX_DEPTH) == nested(MAX_DEPTH)
    assert loads(text.encode(), max_depth=MAX_DEPTH) == nested(MAX_DEPTH)
    with pytest.raises(NestingError, match=f"deeper than {MAX_DEPTH} levels"):
        loads(json.dumps(nested(MAX_DEPTH + 1)), max_depth=MAX_DEPTH)
    assert loads(json.dumps(nested(MAX_DEPTH + 1))) == nested(MAX_DEPTH + 1)  # LIMIT by default


def test_no_value_deeper_than_the_limit_is_read_however_much_is_asked() -> None:
    # json's own limit depends on how deep the caller's stack is; this one is fixed
    assert loads(json.dumps(nested(LIMIT))) == nested(LIMIT)
    for max_depth in (LIMIT, 10 * LIMIT):
        with pytest.raises(NestingError, match=f"deeper than {LIMIT} levels"):
            loads(json.dumps(nested(LIMIT + 1)), max_depth=max_depth)


def test_brackets_inside_strings_are_not_nesting() -> None:
    value = {"text": "[" * 1000 + "{" * 1000}
    assert loads(json.dumps(value), max_depth=1) == value


def test_invalid_json_is_still_jsons_own_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads("{nope", max_depth=MAX_DEPTH)


@given(JSON_VALUES)
def test_any_value_loads_at_its_own_depth_and_not_one_less(value: Any) -> None:
    text = json.dumps(value)
    assert loads(text, max_depth=depth(value)) == value
    if depth(value) > 0:
        with pytest.raises(NestingError):
            loads(text, max_depth=depth(value) - 1)


@given(JSON_VALUES, st.integers(0, 6))
def test_nesting_is_measured_as_depth_measures_it(value: Any, max_depth: int) -> None:
    assert nests_deeper(value, max_depth) is (depth(value) > max_depth)


def test_a_large_shallow_body_reads_and_a_limit_below_its_depth_refuses() -> None:
    body = json.dumps({"messages": [{"role": "user", "content": f"[{n}]"} for n in range(20_000)]})
    assert loads(body, max_depth=MAX_DEPTH)["messages"][-1]["content"] == "[19999]"
    with pytest.raises(NestingError):
        loads(body, max_depth=2)
