"""Assertion helpers and the pytest plugin for recorded WebSocket traffic.

Installed as the ``memgpt_lab`` pytest plugin, it provides two fixtures:

* ``recording``: a fresh :class:`~memgpt_lab.recorder.Recording` on deterministic
  clocks (1 ms per frame, wall time from 2024-01-01), so tables are stable;
* ``mock_ws``: a :class:`~memgpt_lab.recorder.MockWebSocket` recording into it.

The assertion functions take the recording first and raise
:class:`~memgpt_lab.errors.RecordingAssertionError`, whose message shows the
expected item and a table of the frames seen::

    def test_turn(recording, mock_ws):
        run_turn(mock_ws)
        assert_sequence(recording, [{"type": "agent_response_start"},
                                    {"type": "agent_response_end"}])
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from memgpt_lab.errors import FrameTimeoutError, RecordingAssertionError
from memgpt_lab.recorder import (
    ANY,
    Expected,
    Frame,
    MockWebSocket,
    Recording,
    TickClock,
    describe,
    frame_matches,
    matches,
)

__all__ = [
    "ANY",
    "FrameTimeoutError",
    "MockWebSocket",
    "Recording",
    "RecordingAssertionError",
    "TickClock",
    "WALL_CLOCK_START",
    "assert_frames",
    "assert_not_sent",
    "assert_sent",
    "assert_sequence",
    "describe",
    "deterministic_recording",
    "frame_matches",
    "matches",
]

#: Wall time of the first frame of a ``deterministic_recording``: 2024-01-01T00:00:00Z.
WALL_CLOCK_START = 1_704_067_200.0


def deterministic_recording() -> Recording:
    """A recording whose clocks tick 1 ms per frame, so its output is the same every run."""
    return Recording(clock=TickClock(0.0, 0.001), wall_clock=TickClock(WALL_CLOCK_START, 0.001))


def assert_sent(recording: Recording, expected: Expected, *, direction: str | None = None) -> Frame:
    """Some frame matches ``expected``; see :meth:`Recording.assert_sent`."""
    __tracebackhide__ = True
    return recording.assert_sent(expected, direction=direction)


def assert_not_sent(
    recording: Recording, expected: Expected, *, direction: str | None = None
) -> None:
    """No frame matches ``expected``; see :meth:`Recording.assert_not_sent`."""
    __tracebackhide__ = True
    recording.assert_not_sent(expected, direction=direction)


def assert_sequence(
    recording: Recording, expected: Sequence[Expected], *, direction: str | None = None
) -> list[Frame]:
    """The items match frames in order; see :meth:`Recording.assert_sequence`."""
    __tracebackhide__ = True
    return recording.assert_sequence(expected, direction=direction)


def assert_frames(
    recording: Recording, expected: Sequence[Expected], *, direction: str | None = None
) -> list[Frame]:
    """The frames are exactly these; see :meth:`Recording.assert_frames`."""
    __tracebackhide__ = True
    return recording.assert_frames(expected, direction=direction)


@pytest.fixture
def recording() -> Recording:
    """A fresh recording on deterministic clocks (1 ms per frame)."""
    return deterministic_recording()


@pytest.fixture
def mock_ws(recording: Recording) -> MockWebSocket:
    """A mock client connection (id ``"c1"``) recording into ``recording``."""
    return MockWebSocket(recording)
