"""Matching rules for frames, shared by filters, waits and assertions.

A dict matches a JSON frame that contains it (:func:`matches`), a str is the
exact frame text, a compiled regex is searched in the text, and a callable is
called with the frame (:func:`frame_matches`). Pure: no I/O, no event loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from memgpt_lab.recorder.frame import Frame

__all__ = ["ANY", "Expected", "describe", "frame_matches", "matches", "predicate"]


class _AnyType:
    """The type of :data:`ANY`."""

    __slots__ = ()
    _instance: _AnyType | None = None

    def __new__(cls) -> _AnyType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "ANY"

    def __reduce__(self) -> str:
        return "ANY"


#: Matches any value (the key must still be present), e.g. ``{"seq": ANY}``.
ANY = _AnyType()

#: What an expected item can be; see :func:`frame_matches`.
Expected: TypeAlias = "Mapping[str, Any] | str | re.Pattern[str] | Callable[[Frame], object]"


def matches(expected: Any, actual: Any) -> bool:
    """Whether JSON value ``actual`` matches ``expected``, partially.

    A dict matches a dict holding at least its keys, each matching recursively;
    a list matches a list of the same length, elementwise; :data:`ANY` matches
    anything; a compiled regex is searched in a string; other values compare
    equal, except that booleans only equal booleans (JSON ``true`` is not ``1``).
    """
    if expected is ANY:
        return True
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return False
        for key, value in expected.items():
            if key not in actual or not matches(value, actual[key]):
                return False
        return True
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return False
        return all(matches(e, a) for e, a in zip(expected, actual, strict=True))
    if isinstance(expected, re.Pattern):
        return isinstance(actual, str) and expected.search(actual) is not None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(expected == actual)


def frame_matches(expected: Expected, frame: Frame) -> bool:
    """Whether ``frame`` matches one expected item.

    Args:
        expected: a dict (the frame's JSON contains it, see :func:`matches`), a str
            (the exact frame text), a compiled regex (searched in the text), or a
            callable ``(frame) -> bool``.
        frame: the frame to test.
    """
    return predicate(expected)(frame)


def predicate(expected: Expected | None) -> Callable[[Frame], bool]:
    """Compile an expected item into a frame predicate; the one place matching is decided.

    ``None`` matches every frame.

    Raises:
        TypeError: ``expected`` is none of the kinds above.
    """
    if expected is None:
        return lambda frame: True
    if isinstance(expected, Mapping):
        return lambda frame: matches(expected, frame.json)
    if isinstance(expected, str):
        return lambda frame: frame.text == expected
    if isinstance(expected, re.Pattern):
        pattern = expected
        return lambda frame: frame.text is not None and pattern.search(frame.text) is not None
    if callable(expected):
        func = expected
        return lambda frame: bool(func(frame))
    raise TypeError(
        "expected a dict, a str, a compiled regex or a callable(frame), "
        f"not {type(expected).__name__}"
    )


def describe(expected: Expected | None) -> str:
    """A short readable form of an expected item, for error messages."""
    if expected is None:
        return "any frame"
    if isinstance(expected, Mapping):
        try:
            return json.dumps(expected, ensure_ascii=False, default=repr)
        except (TypeError, ValueError):
            return repr(expected)
    if isinstance(expected, re.Pattern):
        return f"re.compile({expected.pattern!r})"
    if isinstance(expected, str):
        return repr(expected)
    return getattr(expected, "__qualname__", None) or repr(expected)
