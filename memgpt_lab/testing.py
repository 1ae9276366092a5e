"""Assertion helpers and the pytest plugin: recorded WebSocket traffic, snapshots, cassettes.

Installed as the ``memgpt_lab`` pytest plugin, it provides four fixtures:

* ``ws_recording``: a fresh :class:`~memgpt_lab.recorder.Recording` on deterministic
  clocks (1 ms per frame, wall time from 2024-01-01), so tables are stable;
* ``mock_websocket``: a :class:`~memgpt_lab.recorder.MockWebSocket` recording into it;
* ``ws_snapshot``: a golden traffic snapshot (syrupy, see
  :mod:`memgpt_lab.recorder.snapshot`): ``assert ws_recording == ws_snapshot``
  compares the recording, normalised, with
  ``__snapshots__/<test module>/<test name>.ws.json``; ``pytest --snapshot-update``
  writes it; a mismatch is shown frame by frame;
* ``cassette``: a :class:`~memgpt_lab.llm.cassette.Cassette` for the test, at
  ``cassettes/<test module>/<test name>.jsonl`` beside the test file, with no
  model: attach one with ``model = cassette.wrap(OpenAIChatModel(...))``. Its
  mode is ``--cassette-mode`` (``once``, ``none``, ``new_episodes``, ``all``),
  else ``$MEMGPT_LAB_CASSETTE_MODE``, else ``once``: the first run records,
  later runs replay with no network; ``--cassette-mode none`` in CI makes a
  missing recording fail instead of calling the model.

``recording`` and ``mock_ws``, the first names of the first two, still work and
warn (``DeprecationWarning``).

For notebooks under nbval, ``pytest --nbval --memgpt-lab-sanitize`` (or
``memgpt_lab_sanitize = true`` in the ini file) applies :data:`NBVAL_SANITIZERS`
(ports, ids, uuids, times, temporary paths, addresses, the times column of
recording tables), together with the file ``--nbval-sanitize-with`` names, if any.

The assertion functions take the recording first and raise
:class:`~memgpt_lab.errors.RecordingAssertionError`, whose message shows the
expected item and a table of the frames seen::

    def test_turn(ws_recording, mock_websocket):
        run_turn(mock_websocket)
        assert_sequence(ws_recording, [{"type": "agent_response_start"},
                                       {"type": "agent_response_end"}])
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

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
from memgpt_lab.recorder.normalise import Normaliser
from memgpt_lab.recorder.snapshot import WebSocketSnapshotExtension, snapshot_extension

__all__ = [
    "ANY",
    "Cassette",
    "CassetteMismatchError",
    "FrameTimeoutError",
    "MockWebSocket",
    "NBVAL_SANITIZERS",
    "Normaliser",
    "Recording",
    "RecordingAssertionError",
    "TickClock",
    "WALL_CLOCK_START",
    "WebSocketSnapshotExtension",
    "assert_frames",
    "assert_not_sent",
    "assert_sent",
    "assert_sequence",
    "cassette_file_name",
    "describe",
    "deterministic_recording",
    "frame_matches",
    "matches",
    "snapshot_extension",
    "write_sanitize_file",
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
def ws_recording() -> Recording:
    """A fresh recording on deterministic clocks (1 ms per frame)."""
    return deterministic_recording()


@pytest.fixture
def mock_websocket(ws_recording: Recording) -> MockWebSocket:
    """A mock client connection (id ``"c1"``) recording into ``ws_recording``."""
    return MockWebSocket(ws_recording)


@pytest.fixture
def ws_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """A golden snapshot of WebSocket traffic: ``assert ws_recording == ws_snapshot``.

    Stored normalised (times, ids, uuids as placeholders; see
    :class:`~memgpt_lab.recorder.normalise.Normaliser`) under ``__snapshots__/``;
    for another normaliser, override this fixture with
    ``snapshot.use_extension(snapshot_extension(Normaliser(...)))``.
    """
    return _WebSocketSnapshotAssertion(
        update_snapshots=snapshot.update_snapshots,
        update_new_snapshots_only=snapshot.update_new_snapshots_only,
        test_location=snapshot.test_location,
        extension_class=WebSocketSnapshotExtension,
        session=snapshot.session,
    )


class _WebSocketSnapshotAssertion(SnapshotAssertion):
    """syrupy's assertion, shown short: pytest prints a failing test's arguments."""

    def __repr__(self) -> str:
        return f"<ws_snapshot {self.extension.file_extension}>"


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"the {old!r} fixture is now {new!r}; the old name will go",
        DeprecationWarning,
        stacklevel=3,
    )


@pytest.fixture
def recording(ws_recording: Recording) -> Recording:
    """Deprecated name of ``ws_recording``."""
    _deprecated("recording", "ws_recording")
    return ws_recording


@pytest.fixture
def mock_ws(mock_websocket: MockWebSocket) -> MockWebSocket:
    """Deprecated name of ``mock_websocket``."""
    _deprecated("mock_ws", "mock_websocket")
    return mock_websocket


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


# --------------------------------------------------------------------------- nbval

#: nbval sanitizers for notebooks that use memgpt_lab: name -> (regex, replacement).
#: Applied to stored and fresh outputs alike before nbval compares them.
NBVAL_SANITIZERS: dict[str, tuple[str, str]] = {
    # <LabServer ws://127.0.0.1:41961/ agents=0>, URLs, "listening on localhost:8282"
    "memgpt-lab-loopback-ports": (r"(127\.0\.0\.1|localhost|\[::1\]):\d{2,5}", r"\1:PORT"),
    "memgpt-lab-uuids": (
        r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
        "UUID",
    ),
    # agent ids (12 hex), sessions (16 hex), widget model ids (32 hex) whatever their digits;
    # other hex ids of 8 to 40 characters when they hold a digit and a letter
    "memgpt-lab-hex-ids": (
        r"\b(?:[0-9a-f]{12}|[0-9a-f]{16}|[0-9a-f]{32}|(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,40})\b",
        "HEXID",
    ),
    # an id cut short by a table's preview: "agent_id":"5ce…
    "memgpt-lab-cut-hex-ids": (r'(?<=")[0-9a-f]{1,40}…', "HEXID…"),
    "memgpt-lab-iso-times": (
        r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?( ?[AP]M)?(Z|[+-]\d{2}:?\d{2}| ?UTC([+-]\d{4})?)?",
        "TIME",
    ),
    # the ms column of Recording.table(): "    3      12.5 c1     out agent_response ..."
    "memgpt-lab-table-times": (
        r"(?m)^(\s*\d+) +\d+\.\d(?= +(?:\S{1,6} +)?(?:in|out) )",
        r"\1 MS",
    ),
    "memgpt-lab-epoch-times": (r"\b1[6-9]\d{8}\.\d+\b", "EPOCH"),
    "memgpt-lab-temporary-paths": (
        r"(/tmp|/var/folders|/private/var/folders)/[^\s'\"<>]+",
        "/TMP/PATH",
    ),
    "memgpt-lab-memory-addresses": (r"\b0x[0-9a-fA-F]{6,16}\b", "0xADDRESS"),
}


def write_sanitize_file(path: str | Path, extra: str | Path | None = None) -> Path:
    """Write :data:`NBVAL_SANITIZERS`, after the sections of ``extra`` if given, as nbval reads them.

    Returns the path; pass it to ``pytest --nbval --nbval-sanitize-with``.
    """
    path = Path(path)
    sections = []
    if extra is not None:
        sections.append(Path(extra).read_text(encoding="utf-8").rstrip("\n") + "\n")
    for name, (regex, replace) in NBVAL_SANITIZERS.items():
        sections.append(f"[{name}]\nregex: {regex}\nreplace: {replace}\n")
    path.write_text("\n".join(sections), encoding="utf-8")
    return path


_SANITIZE_DIR = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    sanitize = config.getoption("memgpt_lab_sanitize", False) or config.getini(
        "memgpt_lab_sanitize"
    )
    if not sanitize:
        return
    directory = Path(tempfile.mkdtemp(prefix="memgpt_lab_nbval_"))
    config.stash[_SANITIZE_DIR] = directory
    # nbval reads one file: ours, after the user's own sections.
    extra = getattr(config.option, "nbval_sanitize_with", None)
    path = write_sanitize_file(directory / "nbval_sanitize.cfg", extra)
    config.option.nbval_sanitize_with = str(path)


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_SANITIZE_DIR, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("memgpt_lab", "memgpt_lab: recordings, snapshots and cassettes")
    group.addoption(
        "--memgpt-lab-sanitize",
        action="store_true",
        dest="memgpt_lab_sanitize",
        default=False,
        help=(
            "with --nbval: sanitize what changes between runs of notebooks that use "
            "memgpt_lab (ports, ids, uuids, times, temporary paths), with the file "
            "--nbval-sanitize-with names, if any"
        ),
    )
    parser.addini(
        "memgpt_lab_sanitize",
        type="bool",
        default=False,
        help="as --memgpt-lab-sanitize",
    )
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
