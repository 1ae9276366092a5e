"""TrafficInspector and the timeline, driven from Python (no browser)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading

import pytest

from memgpt_lab.recorder import Recording, TickClock
from memgpt_lab.widgets import Timeline, TrafficInspector, timeline_svg
from memgpt_lab.widgets._util import Scheduler
from memgpt_lab.widgets.inspector import FilterBar, FrameFilter, FrameIndex, hexdump

MESSAGE_TYPES = ("internal_monologue", "assistant_message", "function_message")


def turn(rec: Recording, user: str, *, connection_id: str = "") -> None:
    """One user message and the agent's bracketed answer: 6 frames."""
    rec.record(
        "in", json.dumps({"type": "user_message", "message": user}), connection_id=connection_id
    )
    rec.record("out", json.dumps({"type": "agent_response_start"}), connection_id=connection_id)
    for kind in MESSAGE_TYPES:
        frame = {"type": "agent_response", "message_type": kind, "message": f"{kind} to {user}"}
        rec.record("out", json.dumps(frame), connection_id=connection_id)
    rec.record("out", json.dumps({"type": "agent_response_end"}), connection_id=connection_id)


@pytest.fixture
def rec() -> Recording:
    recording = Recording(clock=TickClock(step=0.01))
    turn(recording, "hello")
    turn(recording, "How are you?", connection_id="c2")
    recording.record("out", b"\x00\x01\x02ABC" * 4)
    recording.record("out", "not json at all")
    recording.record_close("out", 1000, "bye")
    return recording  # 15 frames


@pytest.fixture
def inspector(rec: Recording):
    widget = TrafficInspector(rec, page_size=5, live=False)
    yield widget
    widget.close()


def test_rows_of_the_last_page_while_following(inspector):
    assert inspector.total_count == inspector.filtered_count == 15
    assert inspector.page_count == 3
    assert inspector.page == 2
    assert [r["seq"] for r in inspector.rows] == [11, 12, 13, 14, 15]
    first = inspector.rows[0]
    assert first["type"] == "agent_response"
    assert first["message_type"] == "function_message"
    assert first["t_ms"] == pytest.approx(100.0)  # ten ticks of 10 ms after the first frame
    assert first["preview"] == "function_message to How are you?"
    assert inspector.rows[2]["preview"].startswith("24 bytes: 00 01 02 41")
    assert inspector.rows[4]["preview"] == "close 1000 bye"


def test_paging_and_label(inspector):
    inspector.go_to_page(0)
    assert inspector.page == 0
    assert not inspector.follow  # paging back stops following
    assert [r["seq"] for r in inspector.rows] == [1, 2, 3, 4, 5]
    assert "rows 1–5 of 15" in inspector._page_label.value
    inspector._buttons["next"].click()
    assert [r["seq"] for r in inspector.rows] == [6, 7, 8, 9, 10]
    inspector._buttons["last"].click()
    assert inspector.page == 2
    inspector.page = 99  # clamped
    assert inspector.page == 2


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"direction": "in"}, [1, 7]),
        ({"type": "agent_response_end"}, [6, 12]),
        ({"message_type": "assistant_message"}, [4, 10]),
        ({"connection_id": "c2"}, [7, 8, 9, 10, 11, 12]),
        ({"connection_id": "c2", "message_type": "internal_monologue"}, [9]),
        ({"text": "HOW ARE"}, [7, 9, 10, 11]),  # substring: case-insensitive
        ({"text": r"^\{.*to hello\"\}$", "regex": True}, [3, 4, 5]),
        ({"text": "bye"}, [15]),  # close frames: code and reason
        ({"type": ""}, [13, 14, 15]),  # "" selects frames without a type
    ],
)
def test_each_filter(inspector, kwargs, expected):
    inspector.follow = False
    inspector.set_filter(**kwargs)
    seqs = [r["seq"] for r in inspector.rows]
    while inspector.page < inspector.page_count - 1:
        inspector.go_to_page(inspector.page + 1)
        seqs += [r["seq"] for r in inspector.rows]
    assert seqs == expected
    assert inspector.filtered_count == len(expected)
    assert inspector.message == ""


def test_filter_widgets_drive_the_filter(inspector):
    dropdown = inspector._filter_bar.dropdowns["message_type"]
    assert [label for label, _ in dropdown.options] == [
        "all",
        "(none)",
        "assistant_message",
        "function_message",
        "internal_monologue",
    ]
    dropdown.value = "function_message"
    assert [r["seq"] for r in inspector.rows] == [5, 11]
    inspector._filter_bar.search.value = "hello"
    assert [r["seq"] for r in inspector.rows] == [5]
    assert inspector.filter == FrameFilter(message_type="function_message", text="hello")


def test_set_filter_shows_in_the_widgets(inspector):
    inspector.set_filter(direction="out", text="hello", regex=True)
    assert inspector._filter_bar.dropdowns["direction"].value == "out"
    assert inspector._filter_bar.search.value == "hello"
    assert inspector._filter_bar.regex.value is True
    inspector.set_filter(type="not_seen_yet")  # offered, though no frame has it
    assert inspector._filter_bar.dropdowns["type"].value == "not_seen_yet"
    assert inspector.filtered_count == 0


def test_filter_bar_reports_the_users_changes_only() -> None:
    seen: list[FrameFilter] = []
    bar = FilterBar(seen.append)
    bar.offer(
        {"direction": ["in", "out"], "type": ["", "ping"], "message_type": [], "connection_id": []}
    )
    assert [label for label, _ in bar.dropdowns["type"].options] == ["all", "(none)", "ping"]
    bar.show(FrameFilter(type="zzz", connection_id="c9", text="a(", regex=True))
    assert seen == []  # shown by the owner: not reported back
    assert bar.value == FrameFilter(type="zzz", connection_id="c9", text="a(", regex=True)
    assert [v for _, v in bar.dropdowns["type"].options][1:] == ["", "ping", "zzz"]
    bar.dropdowns["type"].value = "ping"
    assert seen == [FrameFilter(type="ping", connection_id="c9", text="a(", regex=True)]
    bar.offer({"direction": ["in"], "type": ["", "ping"], "message_type": [], "connection_id": []})
    # A value no longer needed nor offered leaves; the one still shown stays, and is kept.
    assert [v for _, v in bar.dropdowns["type"].options][1:] == ["", "ping"]
    assert [v for _, v in bar.dropdowns["connection_id"].options][1:] == ["c9"]
    assert bar.value.connection_id == "c9" and len(seen) == 1


def test_bad_regex_is_shown_not_raised(inspector):
    inspector.set_filter(type="agent_response", text="to (hello", regex=True)
    assert "invalid regular expression" in inspector.message
    assert "invalid regular expression" in inspector._message.value
    assert inspector.filtered_count == 6  # the text is ignored, the type still applies
    inspector.set_filter(type="agent_response", text="to \\(?hello", regex=True)
    assert inspector.message == "" and inspector._message.value == ""
    assert inspector.filtered_count == 3


def test_counts(inspector):
    counts = inspector.counts
    assert counts["type"] == {
        "agent_response": 6,
        "agent_response_end": 2,
        "agent_response_start": 2,
        "user_message": 2,
    }
    assert counts["message_type"] == dict.fromkeys(sorted(MESSAGE_TYPES), 2)
    assert counts["direction"] == {"in": 2, "out": 13}
    assert counts["connection_id"] == {"c2": 6}
    assert 'data-value="agent_response"' in inspector._counts.value


def test_follow_moves_to_the_newest_frame(rec, inspector):
    turn(rec, "again")
    inspector.refresh()
    assert inspector.total_count == 21
    assert inspector.page == 4
    assert inspector.rows[-1]["seq"] == 21


def test_no_jump_when_not_following(rec, inspector):
    inspector.go_to_page(1)
    before = inspector.rows
    for i in range(20):
        turn(rec, f"more {i}")
    inspector.refresh()
    assert inspector.total_count == 135
    assert inspector.page == 1
    assert inspector.rows == before
    inspector.follow = True  # following again goes to the end
    assert inspector.page == inspector.page_count - 1 == 26
    assert inspector.rows[-1]["seq"] == 135


def test_select_shows_pretty_json(inspector):
    inspector.select(4)
    assert inspector.selected_frame is not None and inspector.selected_frame.seq == 4
    assert inspector.page == 0  # paged to the selected frame
    assert 'data-kind="json"' in inspector.detail.value
    assert "  &quot;message_type&quot;: &quot;assistant_message&quot;,\n" in inspector.detail.value
    inspector.select(None)
    assert inspector.selected_frame is None


def test_detail_of_binary_text_and_close(inspector):
    inspector.select(13)
    assert 'data-kind="binary"' in inspector.detail.value
    assert "00000000  00 01 02 41 42 43 00 01 02 41 42 43 00 01 02 41  |...ABC...ABC...A|" in (
        inspector.detail.value
    )
    inspector.select(14)
    assert 'data-kind="text"' in inspector.detail.value
    assert "not json at all" in inspector.detail.value
    inspector.select(15)
    assert "close code: 1000\nreason: bye" in inspector.detail.value


@pytest.mark.parametrize("depth", [400, 100_000])
def test_a_frame_nested_too_deeply_to_show_as_json_is_shown_as_text(depth):
    # json.dumps(indent=2) of 400 levels overflowed the stack; 100,000 did so in json.loads
    deep = json.dumps({"type": "agent_response", "message_type": "odd", "n": 1})
    deep = deep.replace("1}", "[" * depth + "]" * depth + "}")
    rec = Recording(clock=TickClock(step=0.01))
    rec.record("out", deep)
    widget = TrafficInspector(rec, live=False)
    try:
        widget.select(1)
        assert 'data-kind="text"' in widget.detail.value
        readable = depth == 400  # as json.loads reads it: 100,000 levels are not JSON to it
        row = widget.rows[0]
        expected = ("agent_response", "odd") if readable else ("", "")
        assert (row["type"], row["message_type"]) == expected
        assert widget.counts["type"] == ({"agent_response": 1} if readable else {})
    finally:
        widget.close()


def test_the_detail_pane_escapes_every_field_of_a_loaded_recording():
    # A recording read from a file can hold any strings: none may become markup.
    evil = "<img src=x onerror=alert(1)>"
    # (an unknown opcode is refused on reading, so the opcode is the one field kept valid)
    line = {"seq": 1, "time": 0.0, "direction": evil, "opcode": "text", "text": evil}
    line["connection_id"] = evil
    rec = Recording.from_jsonl(io.StringIO(json.dumps(line) + "\n"))
    widget = TrafficInspector(rec, live=False)
    try:
        widget.select(1)
        assert "<img" not in widget.detail.value
        assert "&lt;img src=x onerror=alert(1)&gt;" in widget.detail.value
    finally:
        widget.close()


def test_click_in_the_browser_selects(inspector):
    # The view sets selected_seq; that alone must fill the detail pane.
    inspector.table.selected_seq = 7
    assert 'data-seq="7"' in inspector.detail.value
    assert "How are you?" in inspector.detail.value


def test_select_unknown_seq(inspector):
    with pytest.raises(LookupError, match="no frame with seq 99"):
        inspector.select(99)


def test_scrolling_away_in_the_view_stops_following(rec, inspector):
    inspector.table.follow = False  # what inspector.js does on scroll-away
    assert inspector._follow_box.value is False
    page = inspector.page
    turn(rec, "x")
    inspector.refresh()
    assert inspector.page == page


def test_cleared_recording_starts_over(rec, inspector):
    rec.clear()
    turn(rec, "fresh")
    inspector.refresh()
    assert inspector.total_count == 6
    assert [r["seq"] for r in inspector.rows] == [2, 3, 4, 5, 6]  # following: the newest full page
    inspector.go_to_page(0)
    assert [r["seq"] for r in inspector.rows] == [1, 2, 3, 4, 5]


def test_live_updates_from_another_thread(rec):
    widget = TrafficInspector(rec, page_size=5, interval=0.01)
    seen_all = threading.Event()
    widget.table.observe(lambda change: change["new"] == 45 and seen_all.set(), "total_count")
    try:
        worker = threading.Thread(
            target=lambda: [turn(rec, f"t{i}") for i in range(5)], daemon=True
        )
        worker.start()
        worker.join()
        assert seen_all.wait(timeout=10), f"only {widget.total_count} frames shown"
        assert widget.rows[-1]["seq"] == 45
    finally:
        widget.close()


def test_close_unsubscribes(rec):
    widget = TrafficInspector(rec, interval=60)
    widget.close()
    rec.record("out", "{}")
    assert widget._live is not None and not widget._live.coalescer.pending
    assert rec._subscribers == ()


def test_page_holds_only_page_size_rows_of_100k():
    big = Recording(clock=TickClock())
    for i in range(100_000):
        kind = MESSAGE_TYPES[i % 3]
        big.record("out", json.dumps({"type": "agent_response", "message_type": kind, "m": i}))
    widget = TrafficInspector(big, page_size=50, live=False)
    assert widget.total_count == 100_000
    assert len(widget.table.rows) == 50
    widget.set_filter(message_type="assistant_message")
    assert widget.filtered_count == 33_333
    assert len(widget.table.rows) == 50  # following: the newest full page, not 33_333 % 50
    widget.go_to_page(3)
    assert len(widget.table.rows) == 50
    assert len(json.dumps(widget.table.rows)) < 20_000  # what goes to the browser
    widget.close()


def test_index_incremental_query_matches_full_query(rec):
    index = FrameIndex()
    index.extend(rec[:7])
    flt = FrameFilter(direction="out", text="hello")
    head = index.query(flt)
    index.extend(rec[7:])
    assert head + index.query(flt, start=7) == index.query(flt)


def test_hexdump_limit():
    assert hexdump(b"") == "(empty)"
    dump = hexdump(bytes(range(256)) * 20, limit=32)
    assert dump.splitlines()[-1] == "... 5088 more bytes"


def test_repr_is_cheap_and_informative(inspector):
    assert repr(inspector) == "<TrafficInspector 15/15 frames, page 3/3>"


# -- timeline ----------------------------------------------------------------------


def test_timeline_lanes_and_marks(rec):
    svg = timeline_svg(rec, width=600)
    lanes = re.findall(r'<g class="mlab-lane" data-lane="([^"]+)"', svg)
    assert lanes == [
        "user_message",
        "agent_response_start",
        *MESSAGE_TYPES,
        "agent_response_end",
        "binary",
        "text",
        "close",
    ]
    assert svg.count('class="mlab-mark"') == 15
    assert svg.count("<rect x=") >= 2  # incoming frames are squares
    assert svg.count('class="mlab-turn"') == 2
    assert svg.count("mlab-boundary-start") == svg.count("mlab-boundary-end") == 2
    assert ">0 ms</text>" in svg
    assert svg.startswith("<svg") and svg.endswith("</svg>")


def test_timeline_is_deterministic(rec):
    again = Recording(clock=TickClock(step=0.01))
    turn(again, "hello")
    turn(again, "How are you?", connection_id="c2")
    again.record("out", b"\x00\x01\x02ABC" * 4)
    again.record("out", "not json at all")
    again.record_close("out", 1000, "bye")
    assert timeline_svg(rec) == timeline_svg(again)


def test_timeline_gaps_mark_turns_without_markers():
    times = iter([0.0, 0.1, 5.1])  # a five-second silence before the last frame
    rec = Recording(clock=lambda: next(times))
    rec.record("in", json.dumps({"type": "user_message", "message": "a"}))
    rec.record("out", json.dumps({"type": "command_response", "status": "OK"}))
    rec.record("in", json.dumps({"type": "user_message", "message": "b"}))
    svg = timeline_svg(rec, gap_ms=1000)
    assert svg.count("mlab-boundary-gap") == 1


def test_timeline_merges_marks_of_crowded_lanes():
    rec = Recording(clock=TickClock())
    for i in range(5000):
        rec.record("out", json.dumps({"type": "ping", "i": i}))
    svg = timeline_svg(rec, width=500, max_marks_per_lane=100)
    marks = svg.count('class="mlab-mark"')
    assert 0 < marks <= 500
    counts = [int(n) for n in re.findall(r'data-count="(\d+)"', svg)]
    assert sum(counts) == 5000


def test_timeline_empty():
    assert "no frames yet" in timeline_svg(Recording())


def test_timeline_widget_refreshes(rec):
    widget = Timeline(rec, live=False)
    assert widget.value.count('class="mlab-mark"') == 15
    rec.record("out", "{}")
    widget.refresh()
    assert widget.value.count('class="mlab-mark"') == 16
    widget.close()


def test_import_memgpt_lab_does_not_import_widgets():
    code = "import sys, memgpt_lab; print('ipywidgets' in sys.modules, 'anywidget' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_timeline_close_unsubscribes(rec):
    widget = Timeline(rec, interval=60)
    rec.record("out", "{}")
    assert widget._live is not None and widget._live.coalescer.pending
    widget.close()
    assert not widget._live.coalescer.pending
    assert rec._subscribers == ()


# -- at scale: incremental index, follow ---------------------------------------------


def _many(rec: Recording, turns: int) -> None:
    for i in range(turns):
        turn(rec, f"message {i}", connection_id=f"c{i % 3}")


def test_follow_shows_the_newest_full_page_however_the_pages_fall():
    rec = Recording(clock=TickClock())
    widget = TrafficInspector(rec, page_size=50, live=False)
    for frames in (51, 77, 99, 100, 101, 149):
        while len(rec) < frames:
            rec.record("out", json.dumps({"type": "ping", "n": len(rec)}))
        widget.refresh()
        assert [r["seq"] for r in widget.rows] == list(range(frames - 49, frames + 1))
        assert widget.page == widget.page_count - 1
        assert f"rows {frames - 49}–{frames} of {frames}" in widget._page_label.value
    widget.go_to_page(widget.page_count - 1)  # paging to the last page stops nothing...
    widget.follow = False  # ...but once not following, the last page is a page
    widget.go_to_page(widget.page_count - 1)
    assert [r["seq"] for r in widget.rows] == list(range(101, 150))
    widget.close()


def test_a_long_recording_shows_its_newest_page_before_it_is_indexed():
    rec = Recording(clock=TickClock())
    _many(rec, 200)  # 1,200 frames
    clock = [0.0]
    scheduler = Scheduler(lambda: clock[0], thread=False)
    widget = TrafficInspector(rec, page_size=50, chunk=500, scheduler=scheduler)
    # At once: the newest full page, though only the first chunk is indexed.
    assert [r["seq"] for r in widget.rows] == list(range(1151, 1201))
    assert widget.rows[-1]["type"] == "agent_response_end"
    assert widget.indexed_count == 500 and widget.total_count == 1200
    assert "indexing: 500 of 1,200 frames" in widget._page_label.value
    # A filter set now covers what is indexed, and grows as the index catches up.
    widget.set_filter(type="user_message")
    assert widget.filtered_count == 84  # frames 1..500: a user message every 6 frames
    indexed = []
    while len(scheduler):
        clock[0] += 1
        scheduler.run_due()
        indexed.append(widget.indexed_count)
    assert indexed == [1000, 1200]
    assert widget.filtered_count == 200
    assert widget.counts["type"]["user_message"] == 200
    assert "indexing" not in widget._page_label.value
    widget.close()


def test_frames_arriving_during_a_live_refresh_are_all_shown():
    rec = Recording(clock=TickClock())
    clock = [0.0]
    scheduler = Scheduler(lambda: clock[0], thread=False)
    widget = TrafficInspector(rec, page_size=10, scheduler=scheduler)
    for burst in range(5):
        _many(rec, 7)
        clock[0] += 1
        scheduler.run_due()
        assert widget.total_count == len(rec) == 42 * (burst + 1)
        assert [r["seq"] for r in widget.rows] == list(range(len(rec) - 9, len(rec) + 1))
    assert len(scheduler) == 0
    widget.close()
