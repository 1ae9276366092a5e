"""Exceptions raised by memgpt_lab.

Every error the package raises on purpose derives from :class:`LabError`, so
``except LabError`` catches them all. The tree::

    LabError
    ├── UnknownNameError (also LookupError)    a persona, human, preset, function or
    │   │                                      agent name that does not exist; lists
    │   │                                      the names that do
    │   └── UnknownCheckpointError             no checkpoint of that id (persistence)
    ├── NothingToRetryError (also ValueError)  Agent.retry with no user message to rerun
    ├── StorageError                           a store that cannot be used: a file from a
    │                                          newer version, not ours, a lost write
    ├── PresetError (also ValueError)          a preset that does not validate
    ├── MemoryLimitError (also ValueError)     a core memory edit over the block's limit
    ├── ProtocolError (also ValueError)        a frame that breaks the WebSocket protocol
    ├── InterfaceClosedError                   an interface used after close()
    ├── LLMError                               a model backend failed or answered badly
    ├── FrameTimeoutError (also TimeoutError)  Recording.wait_for gave up
    ├── LabConnectionError (also ConnectionError)
    │                                          a lab client could not connect, was refused,
    │                                          or lost its connection mid-request
    ├── RequestTimeoutError (also TimeoutError)
    │                                          a lab server did not answer in time
    ├── ServerResponseError                    a lab server answered a request with an
    │                                          error frame (kept as .frame)
    └── RecordingAssertionError (also AssertionError)
                                               a Recording assertion failed
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "FrameTimeoutError",
    "InterfaceClosedError",
    "LLMError",
    "LabConnectionError",
    "LabError",
    "MemoryLimitError",
    "NothingToRetryError",
    "PresetError",
    "ProtocolError",
    "RecordingAssertionError",
    "RequestTimeoutError",
    "ServerResponseError",
    "UnknownNameError",
]


class LabError(Exception):
    """Base class of every error memgpt_lab raises on purpose."""


class UnknownNameError(LabError, LookupError):
    """A name (persona, human, preset, function, agent...) that does not exist.

    Attributes:
        kind: what was looked up, for example ``"persona"``.
        name: the name that was asked for.
        available: the names that do exist, sorted.
    """

    def __init__(self, kind: str, name: str, available: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        listed = ", ".join(self.available) if self.available else "(none)"
        super().__init__(f"unknown {kind} {name!r}; available: {listed}")

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0])


class PresetError(LabError, ValueError):
    """A preset file or mapping that does not validate."""


class MemoryLimitError(LabError, ValueError):
    """A core memory edit that would take a block over its character limit."""


class ProtocolError(LabError, ValueError):
    """A frame that is not valid for the memgpt WebSocket protocol.

    Attributes:
        code: a stable name for what was wrong (``"invalid_unicode"``,
            ``"bad_json"``...), sent to clients as ``error_code``; ``"bad_frame"``
            when nothing more specific applies.
    """

    def __init__(self, message: str, code: str = "bad_frame") -> None:
        super().__init__(message)
        self.code = code


class InterfaceClosedError(LabError):
    """A WebSocket interface was used after ``close()``."""


class NothingToRetryError(LabError, ValueError):
    """``Agent.retry`` on an agent that has no user message to run again."""


class LLMError(LabError):
    """A model backend failed, or answered in a shape the agent cannot use."""


class FrameTimeoutError(LabError, TimeoutError):
    """``Recording.wait_for`` did not see the frames it waited for in time."""


class RecordingAssertionError(LabError, AssertionError):
    """A ``Recording`` assertion failed; the message shows the frames seen."""


class LabConnectionError(LabError, ConnectionError):
    """A lab client could not connect, was refused, or lost its connection mid-request."""


class RequestTimeoutError(LabError, TimeoutError):
    """A lab server did not answer a request within the client's timeout."""


class ServerResponseError(LabError):
    """A lab server answered a request with an error frame.

    Attributes:
        frame: the error frame (``command_response`` with ``status: "error"``,
            ``agent_response_error`` or ``server_error``).
        frames: for a turn, every frame received for it, the error included.
    """

    def __init__(
        self, message: str, frame: dict[str, Any], frames: list[dict[str, Any]] | None = None
    ):
        self.frame = frame
        self.frames = list(frames or [frame])
        super().__init__(message)
