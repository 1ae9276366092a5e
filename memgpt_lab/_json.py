"""JSON from outside (a client's frame, a model's arguments, a request body, a file).

``json.loads`` raises ``RecursionError``, not ``ValueError``, on a value nested
deeper than the interpreter's stack allows (a thousand ``[`` do it, fewer
the deeper the caller's stack), and a value nested just under that limit
parses but then breaks whatever walks it (``repr``, ``json.dumps``) further
down the stack. Every parser of text from outside goes through :func:`loads`,
for which too deep is invalid JSON like any other, a ``ValueError``, at a fixed
depth: :data:`LIMIT` at most, and :data:`MAX_DEPTH` where a protocol frame, a
request body or a model's call arguments are read. (Called from a stack
already hundreds of frames deep, ``json`` may give up on less than ``LIMIT``
levels; that too is a ``NestingError``.)
"""

from __future__ import annotations

import json
from typing import Any

#: How deep :func:`loads` lets arrays and objects nest (``max_depth``) where a
#: value is worked on further; no frame, request or call of the protocol comes
#: close.
MAX_DEPTH = 128
#: The most :func:`loads` ever accepts: deep enough for any real document,
#: shallow enough that ``json`` parses it from any reasonable stack.
LIMIT = 512


class NestingError(ValueError):
    """JSON nested deeper than allowed (or than the interpreter can parse)."""


def loads(text: str | bytes | bytearray, *, max_depth: int = LIMIT) -> Any:
    """``json.loads``, with too deep a value raising :class:`NestingError` (a ValueError).

    Args:
        text: the JSON text.
        max_depth: refuse values whose arrays and objects nest deeper than
            this (at most :data:`LIMIT`).

    Raises:
        ValueError: ``text`` is not JSON (``json.JSONDecodeError``) or is
            nested too deeply (:class:`NestingError`).
    """
    max_depth = min(max_depth, LIMIT)
    try:
        value = json.loads(text)
    except RecursionError:
        raise NestingError(f"JSON nested deeper than {max_depth} levels") from None
    if could_nest(text, max_depth) and nests_deeper(value, max_depth):
        raise NestingError(f"JSON nested deeper than {max_depth} levels")
    return value


def nests_deeper(value: Any, max_depth: int) -> bool:
    """Whether a parsed JSON value nests deeper than ``max_depth``: a level at a time.

    Each level is one list comprehension over the containers of the one above,
    so a request body of thousands of small objects costs little (json makes
    only ``dict`` and ``list``).
    """
    level = [value] if type(value) is dict or type(value) is list else []
    for _ in range(max_depth):
        if not level:
            return False
        level = [
            child
            for item in level
            for child in (item.values() if type(item) is dict else item)
            if type(child) is dict or type(child) is list
        ]
    return bool(level)


def could_nest(text: str | bytes | bytearray, max_depth: int = LIMIT) -> bool:
    """Whether ``text`` has enough brackets to nest deeper than ``max_depth``.

    Nesting deeper needs more than ``max_depth`` of them: counting them (in C)
    spares walking every ordinary value.
    """
    if isinstance(text, str):
        return text.count("[") + text.count("{") > max_depth
    return text.count(b"[") + text.count(b"{") > max_depth
