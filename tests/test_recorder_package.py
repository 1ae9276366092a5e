"""The recorder as a package: its public names, what importing it costs, compact frames, bounds."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

import memgpt_lab
import memgpt_lab.recorder as recorder
from memgpt_lab.recorder import Frame, Recording, TickClock

# Every name `memgpt_lab.recorder` exported before it became a package.
OLD_NAMES = [
    "ANY",
    "DIRECTIONS",
    "Expected",
    "Frame",
    "MockWebSocket",
    "OPCODES",
    "Recording",
    "TickClock",
    "describe",
    "frame_matches",
    "matches",
]


@pytest.mark.parametrize("name", OLD_NAMES)
def test_every_old_name_still_imports_from_the_package(name: str) -> None:
    assert name in recorder.__all__
    assert getattr(recorder, name) is not None


def test_top_level_names_are_the_package_s() -> None:
    assert memgpt_lab.Recording is recorder.Recording
    assert memgpt_lab.MockWebSocket is recorder.MockWebSocket
    assert memgpt_lab.Frame is recorder.Frame


def test_unknown_name() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        recorder.Nope  # noqa: B018


def _modules_after(code: str) -> list[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    modules: list[str] = json.loads(out)
    return modules


def test_the_recording_core_imports_no_asyncio() -> None:
    modules = _modules_after(
        "from memgpt_lab.recorder import Recording, Frame, matches, ANY, TickClock\n"
        "r = Recording(); r.record('out', '{\"type\": \"x\"}'); r.record_close('in')\n"
        "r.filter(type='x'); r.assert_sent({'type': 'x'}); r.table()\n"
        "import io; buf = io.StringIO(); r.to_jsonl(buf); buf.seek(0); Recording.from_jsonl(buf)\n"
        "r.wait_for({'type': 'x'}, timeout=1)"
    )
    assert "asyncio" not in modules
    assert "websockets" not in modules
    assert "memgpt_lab.recorder.mock" not in modules


def test_the_mock_socket_brings_asyncio_when_used() -> None:
    modules = _modules_after("from memgpt_lab.recorder import MockWebSocket")
    assert "asyncio" in modules and "memgpt_lab.recorder.mock" in modules


# --------------------------------------------------------------------------- compact frames


def test_frame_opcode_follows_the_payload() -> None:
    text = Frame(1, 0.0, 0.0, "out", "text", text="hi")
    binary = Frame(2, 0.0, 0.0, "in", "binary", data=bytearray(b"\x00\x01"))  # type: ignore[arg-type]
    close = Frame(3, 0.0, 0.0, "in", "close", close_code=1000, close_reason="bye")
    assert (text.opcode, text.text, text.data) == ("text", "hi", None)
    assert (binary.opcode, binary.data, binary.text) == ("binary", b"\x00\x01", None)
    assert type(binary.data) is bytes
    assert (close.opcode, close.close_code, close.close_reason) == ("close", 1000, "bye")
    assert (text.close_code, text.close_reason, close.payload) == (None, None, None)


@pytest.mark.parametrize(
    ("opcode", "text", "data", "message"),
    [
        ("text", None, None, "'text' frame cannot hold text=None"),
        ("text", "a", b"b", "'text' frame cannot hold text=str and data=bytes"),
        ("binary", "a", None, "'binary' frame cannot hold text=str"),
        ("close", "a", None, "'close' frame cannot hold text=str"),
        ("nope", None, None, "opcode must be one of text, binary, close, ping, pong, not .nope."),
    ],
)
def test_a_frame_whose_opcode_does_not_fit_is_refused(
    opcode: str, text: str | None, data: bytes | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Frame(1, 0.0, 0.0, "out", opcode, text=text, data=data)


def test_frame_replace() -> None:
    frame = Frame(1, 0.5, 9.0, "out", "text", text="hi", connection_id="c1")
    moved = frame.replace(seq=7, connection_id="c2")
    assert (moved.seq, moved.connection_id, moved.text, moved.time) == (7, "c2", "hi", 0.5)
    assert frame.seq == 1
    with pytest.raises(TypeError, match="no field nope"):
        frame.replace(nope=1)


def test_frames_are_small() -> None:
    # Eight slots: the opcode is derived, close code and reason share one.
    assert len(Frame.__slots__) == 8
    frame = Frame(1, 0.0, 0.0, "out", "text", text="x")
    assert not hasattr(frame, "__dict__")


# --------------------------------------------------------------------------- bounded recordings


def test_max_frames_drops_the_oldest_and_counts_them() -> None:
    rec = Recording(clock=TickClock(), wall_clock=TickClock(), max_frames=3)
    for i in range(5):
        rec.record("out", str(i))
    assert [f.text for f in rec] == ["2", "3", "4"]
    assert [f.seq for f in rec] == [3, 4, 5]  # seq keeps counting
    assert rec.dropped == 2 and len(rec) == 3
    assert rec[0].text == "2" and rec[-1].text == "4"
    assert [f.text for f in rec[1:]] == ["3", "4"]
    assert rec.filter(text="4").texts() == ["4"]
    rec.append(Frame(99, 0.0, 0.0, "in", "text", text="copied"))
    assert rec.texts() == ["3", "4", "copied"] and rec.dropped == 3
    rec.clear()
    assert (len(rec), rec.dropped) == (0, 0)
    rec.record("out", "again")
    assert rec.texts() == ["again"] and rec[0].seq == 1


def test_unbounded_by_default_and_a_bound_below_one_is_refused() -> None:
    rec = Recording()
    for i in range(100):
        rec.record("out", str(i))
    assert (len(rec), rec.dropped, rec.max_frames) == (100, 0, None)
    with pytest.raises(ValueError, match="max_frames must be 1 or more"):
        Recording(max_frames=0)


def test_wait_for_on_a_bounded_recording_sees_frames_recorded_later() -> None:
    rec = Recording(max_frames=2)
    for i in range(10):
        rec.record("out", f"old {i}")

    def later() -> None:
        for i in range(10):
            rec.record("out", f"new {i}")

    thread = threading.Thread(target=later)
    thread.start()
    try:
        frames = rec.wait_for(lambda f: f.text == "new 9", timeout=10)
    finally:
        thread.join()
    assert frames[0].seq == 20
    assert rec.dropped == 18


def test_the_comparison_names_are_in_the_package_too() -> None:
    from memgpt_lab.recorder.diff import DiffRow, RecordingDiff
    from memgpt_lab.recorder.normalise import Normaliser

    assert (recorder.Normaliser, recorder.RecordingDiff, recorder.DiffRow) == (
        Normaliser,
        RecordingDiff,
        DiffRow,
    )
    assert sorted(recorder.__all__) == recorder.__all__
