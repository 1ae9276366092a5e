"""The TrafficInspector's Load and Export bar, driven from Python (no browser)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from memgpt_lab.recorder import Recording, TickClock
from memgpt_lab.widgets import TrafficInspector
from memgpt_lab.widgets.inspector import FrameFilter
from memgpt_lab.widgets.inspector_files import (
    RecordingFiles,
    export_target,
    filter_recording,
    passing_seqs,
    write_recording,
)


def conversation() -> Recording:
    rec = Recording(clock=TickClock(step=0.01), wall_clock=TickClock(1_767_258_000.0))
    for cid, user in (("c1", "Hello"), ("c2", "Ünïcödé 𝄞 \u2028")):
        message = json.dumps({"type": "user_message", "message": user}, ensure_ascii=False)
        rec.record("in", message, connection_id=cid)
        rec.record("out", json.dumps({"type": "agent_response_start"}), connection_id=cid)
        for kind in ("internal_monologue", "assistant_message"):
            body = {"type": "agent_response", "message_type": kind, "message": f"{kind}: {user}"}
            rec.record("out", json.dumps(body, ensure_ascii=False), connection_id=cid)
        rec.record("out", json.dumps({"type": "agent_response_end"}), connection_id=cid)
    rec.record("out", b"\x00\xffbinary", connection_id="c1")
    rec.record_close("in", 1000, "bye", connection_id="c1")
    return rec  # 12 frames


@pytest.fixture
def inspector() -> Iterator[TrafficInspector]:
    widget = TrafficInspector(conversation(), page_size=5, live=False)
    yield widget
    widget.close()


def test_the_filter_is_the_inspectors_own(inspector: TrafficInspector) -> None:
    inspector.set_filter(message_type="assistant_message")
    frames = list(inspector.recording)
    flt = inspector.filter
    chosen = filter_recording(inspector.recording, flt)
    assert len(chosen) == inspector.filtered_count == 2
    assert [f.seq for f in chosen] == [4, 9]  # the frames keep their seq
    assert passing_seqs(frames, FrameFilter(text="𝄞")) == {6, 8, 9}
    # An invalid regex constrains nothing, as in the inspector.
    assert len(passing_seqs(frames, FrameFilter(text="(", regex=True))) == len(frames)


@pytest.mark.parametrize("suffix", [".har", ".jsonl"])
def test_export_the_filtered_view_and_the_whole_recording(
    inspector: TrafficInspector, tmp_path: Path, suffix: str
) -> None:
    inspector.set_filter(connection_id="c2")
    view, whole = tmp_path / f"view{suffix}", tmp_path / f"whole{suffix}"
    assert inspector.files.export(view) == 5
    assert inspector.files.export(whole, filtered=False) == 12
    loaded_view, loaded_whole = Recording.load(view), Recording.load(whole)
    assert [f.payload for f in loaded_view] == [
        f.payload for f in inspector.recording if f.connection_id == "c2"
    ]
    assert [(f.direction, f.opcode, f.payload) for f in loaded_whole] == [
        (f.direction, f.opcode, f.payload) for f in inspector.recording
    ]
    assert "exported 12 frames (whole recording)" in inspector.files.message


def test_the_buttons_use_the_fields(inspector: TrafficInspector, tmp_path: Path) -> None:
    bar = inspector.files
    target = tmp_path / "out.data"
    bar.path.value = str(target)
    bar.format.value = "har"
    bar.scope.value = True
    inspector.set_filter(direction="in")
    bar.export_button.click()
    assert json.loads(target.read_text(encoding="utf-8"))["log"]["version"] == "1.2"
    assert len(Recording.load(target)) == 3  # two messages and a close
    bar.format.value = "jsonl"
    bar.scope.value = False
    bar.export_button.click()
    assert len(target.read_text(encoding="utf-8").splitlines()) >= 12


def test_load_shows_another_recording_keeping_the_filter(
    inspector: TrafficInspector, tmp_path: Path
) -> None:
    other = Recording(clock=TickClock())
    for n in range(7):
        other.record(
            "out",
            json.dumps(
                {"type": "agent_response", "message_type": "assistant_message", "message": str(n)}
            ),
        )
    path = tmp_path / "other.har"
    write_recording(other, path)
    inspector.set_filter(message_type="assistant_message")
    inspector.files.path.value = str(path)
    inspector.files.load_button.click()
    assert inspector.recording is not other and len(inspector.recording) == 7
    assert inspector.total_count == 7 and inspector.filtered_count == 7
    # following: the newest full page
    assert [r["preview"] for r in inspector.rows] == ["2", "3", "4", "5", "6"]
    assert inspector.files.message == f"loaded 7 frames from {path}"


def test_bad_files_are_reported_in_the_bar_not_raised(
    inspector: TrafficInspector, tmp_path: Path
) -> None:
    inspector.files.path.value = str(tmp_path / "missing.har")
    inspector.files.load_button.click()
    assert "missing.har" in inspector.files.message
    assert inspector.total_count == 12  # still the old recording
    (tmp_path / "junk.har").write_text("{not json", encoding="utf-8")
    inspector.files.path.value = str(tmp_path / "junk.har")
    inspector.files.load_button.click()
    assert "junk.har" in inspector.files.message or "JSON" in inspector.files.message
    with pytest.raises(ValueError, match="'har' or 'jsonl'"):
        write_recording(inspector.recording, tmp_path / "x", "csv")


def test_a_live_inspector_follows_the_loaded_recording(tmp_path: Path) -> None:
    first, second = conversation(), Recording(clock=TickClock())
    widget = TrafficInspector(first, live=True, interval=0.01)
    try:
        widget.show(second)
        second.record("out", "late frame")
        widget.refresh()
        assert widget.total_count == 1
        first.record("out", "ignored")  # the old recording no longer reaches it
        widget.refresh()
        assert widget.total_count == 1
    finally:
        widget.close()


def test_the_path_suffix_and_the_format_agree(inspector: TrafficInspector, tmp_path: Path) -> None:
    bar = inspector.files
    assert (bar.path.value, bar.format.value) == ("traffic.har", "har")
    # Typing a .jsonl path picks JSON lines: what is exported under it loads back.
    view = tmp_path / "view.jsonl"
    bar.path.value = str(view)
    assert bar.format.value == "jsonl"
    bar.export_button.click()
    assert view.read_text(encoding="utf-8").startswith('{"seq"')
    bar.load_button.click()
    assert bar.message.startswith("loaded 12 frames"), bar.message
    # Choosing a format changes a .har/.jsonl suffix to match; other suffixes stay.
    bar.format.value = "har"
    assert bar.path.value == str(tmp_path / "view.har")
    bar.path.value = str(tmp_path / "view.NDJSON")
    assert bar.format.value == "jsonl"
    bar.path.value = str(tmp_path / "view.data")
    bar.format.value = "har"
    assert bar.path.value == str(tmp_path / "view.data")
    # A path without a suffix gets the format's, in the field too.
    bar.path.value = str(tmp_path / "plain")
    bar.export_button.click()
    assert bar.path.value == str(tmp_path / "plain.har")
    assert Recording.load(tmp_path / "plain.har").texts() == inspector.recording.texts()
    # A bar made for a .jsonl path starts on JSON lines.
    other = TrafficInspector(conversation(), live=False)
    try:
        assert RecordingFiles(other, path="t.jsonl").format.value == "jsonl"
    finally:
        other.close()


def test_a_format_that_contradicts_the_suffix_is_refused(
    inspector: TrafficInspector, tmp_path: Path
) -> None:
    assert export_target(tmp_path / "a.HAR", "har") == (tmp_path / "a.HAR", "har")
    assert export_target(tmp_path / "a", "jsonl") == (tmp_path / "a.jsonl", "jsonl")
    assert export_target(tmp_path / "a.txt", "har") == (tmp_path / "a.txt", "har")
    with pytest.raises(ValueError, match="Load would not read it back"):
        inspector.files.export(tmp_path / "v.jsonl", format="har")
    assert not (tmp_path / "v.jsonl").exists()
