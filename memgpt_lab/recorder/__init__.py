"""Record WebSocket traffic: :class:`Frame`, :class:`Recording`, :class:`MockWebSocket`.

The package, split by what each part needs:

* :mod:`~memgpt_lab.recorder.matching`: ``matches``, ``ANY``, ``frame_matches``;
* :mod:`~memgpt_lab.recorder.frame`: ``Frame``;
* :mod:`~memgpt_lab.recorder.recording`: ``Recording``, ``TickClock`` (no asyncio);
* :mod:`~memgpt_lab.recorder.jsonl`, :mod:`~memgpt_lab.recorder.har`: the file formats;
* :mod:`~memgpt_lab.recorder.normalise`, :mod:`~memgpt_lab.recorder.diff`: comparing
  recordings whatever their times and ids;
* :mod:`~memgpt_lab.recorder.waiting`: waking coroutines (asyncio);
* :mod:`~memgpt_lab.recorder.mock`: ``MockWebSocket`` (asyncio, websockets' exceptions).

``import memgpt_lab.recorder`` loads the core only; ``MockWebSocket``,
``Normaliser``, ``RecordingDiff`` and ``DiffRow`` are imported on first use, so
code that only records and reads never imports asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from memgpt_lab.recorder.formats import RecordingFormatError
from memgpt_lab.recorder.frame import DIRECTIONS, OPCODES, Frame
from memgpt_lab.recorder.matching import ANY, Expected, describe, frame_matches, matches
from memgpt_lab.recorder.recording import Recording, TickClock

__all__ = [
    "ANY",
    "DIRECTIONS",
    "DiffRow",
    "Expected",
    "Frame",
    "MockWebSocket",
    "Normaliser",
    "OPCODES",
    "Recording",
    "RecordingDiff",
    "RecordingFormatError",
    "TickClock",
    "describe",
    "frame_matches",
    "matches",
]

_LAZY = {
    "MockWebSocket": "memgpt_lab.recorder.mock",
    "Normaliser": "memgpt_lab.recorder.normalise",
    "RecordingDiff": "memgpt_lab.recorder.diff",
    "DiffRow": "memgpt_lab.recorder.diff",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memgpt_lab.recorder' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # pragma: no cover
    from memgpt_lab.recorder.diff import DiffRow, RecordingDiff
    from memgpt_lab.recorder.mock import MockWebSocket
    from memgpt_lab.recorder.normalise import Normaliser
