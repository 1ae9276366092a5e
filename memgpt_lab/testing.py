"""Assertion helpers and the pytest plugin: recorded WebSocket traffic, model cassettes.

Installed as the ``memgpt_lab`` pytest plugin, it provides three fixtures:

* ``recording``: a fresh :class:`~memgpt_lab.recorder.Recording` on deterministic
  clocks (1 ms per frame, wall time from 2024-01-01), so tables are stable;
* ``mock_ws``: a :class:`~memgpt_lab.recorder.MockWebSocket` recording into it;
* ``cassette``: a :class:`~memgpt_lab.llm.cassette.Cassette` for the test, at
  ``cassettes/<test module>/<test name>.jsonl`` beside the test file, with no
  model: attach one with ``model = cassette.wrap(OpenAIChatModel(...))``. Its
  mode is ``--cassette-mode`` (``once``, ``none``, ``new_episodes``, ``all``),
  else ``$MEMGPT_LAB_CASSETTE_MODE``, else ``once``: the first run records,
  later runs replay with no network; ``--cassette-mode none`` in CI makes a
  missing recording fail instead of calling the model.

The assertion functions take the recording first and raise
:class:`~memgpt_lab.errors.RecordingAssertionError`, whose message shows the
expected item and a table of the frames seen::

    def test_turn(recording, mock_ws):
        run_turn(mock_ws)
        assert_sequence(recording, [{"type": "agent_response_start"},
                                    {"type": "agent_response_end"}])
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from memgpt_lab.errors import FrameTimeoutError, RecordingAssertionError
from memgpt_lab.llm.cassette import (
    CASSETTE_MODE_ENV,
    CASSETTE_MODES,
    Cassette,
    CassetteMismatchError,
)
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
    "Cassette",
    "CassetteMismatchError",
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
    "cassette_file_name",
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


def cassette_file_name(test_name: str) -> str:
    """A test's name (``test_x[a b]``, ``TestA::test_y``) as a file name, without suffix.

    Characters other than letters, digits, ``_ . - [ ]`` become ``_``; a class
    and its method are joined with ``.``; very long names are cut and end in a
    short hash, so distinct tests keep distinct files.
    """
    name = re.sub(r"[^\w.\-\[\]]", "_", test_name.replace("::", "."))
    if len(name) > 120:
        digest = hashlib.blake2b(test_name.encode("utf-8"), digest_size=4).hexdigest()
        name = f"{name[:110]}-{digest}"
    return name


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("memgpt_lab", "memgpt_lab: recordings and cassettes")
    group.addoption(
        "--cassette-mode",
        choices=CASSETTE_MODES,
        default=None,
        help=(
            "how the cassette fixture treats model calls: once (record when the file is "
            "missing, else replay), none (replay only), new_episodes (record what is new), "
            f"all (re-record); default: ${CASSETTE_MODE_ENV}, else once"
        ),
    )


@pytest.fixture
def cassette(request: pytest.FixtureRequest) -> Cassette:
    """A cassette at ``cassettes/<module>/<test>.jsonl`` beside the test file, with no model.

    Attach the model to record with ``cassette.wrap(model)``, which returns the
    cassette; give the agent the cassette.
    """
    test_file = Path(request.path)
    test_name = request.node.nodeid.split("::", 1)[-1]
    path = (
        test_file.parent / "cassettes" / test_file.stem / f"{cassette_file_name(test_name)}.jsonl"
    )
    return Cassette(path, mode=request.config.getoption("cassette_mode"))
