"""The Timeline at scale: binned marks, turn shading, bounded memory, redraws of what changed."""

from __future__ import annotations

import json
import random
import re
import threading

import pytest

from memgpt_lab.recorder import Recording, TickClock
from memgpt_lab.recorder.frame import _UNSET
from memgpt_lab.widgets import Timeline, TrafficInspector, timeline_svg
from memgpt_lab.widgets._util import Scheduler
from memgpt_lab.widgets.inspector import shared_index
from memgpt_lab.widgets.timeline import BINS, MAX_MARKS, TimelineModel

KINDS = ("internal_monologue", "function_message", "assistant_message")


def busy(turns: int, *, step: float = 0.0001, lanes: tuple[str, ...] = KINDS) -> Recording:
    """``turns`` back-to-back turns, a frame every ``step`` seconds: dense traffic."""
    rec = Recording(clock=TickClock(step=step))
    busy_into(rec, turns, lanes=lanes)
    return rec


def busy_into(rec: Recording, turns: int, *, lanes: tuple[str, ...] = KINDS) -> None:
    """Record ``turns`` turns into ``rec``: a user message, then the answer in ``lanes``."""
    for n in range(turns):
        rec.record("in", json.dumps({"type": "user_message", "message": f"m{n}"}))
        rec.record("out", json.dumps({"type": "agent_response_start"}))
        for kind in lanes:
            frame = {"type": "agent_response", "message_type": kind, "message": f"{kind} {n}"}
            rec.record("out", json.dumps(frame))
        rec.record("out", json.dumps({"type": "agent_response_end"}))


def marks(svg: str) -> list[int]:
    return [
        int(n) for n in re.findall(r'class="mlab-mark" data-seq="\d+"[^>]*data-count="(\d+)"', svg)
    ]


def elements(svg: str) -> int:
    return len(re.findall(r"<(?!/)", svg))


def test_every_frame_is_counted_once_in_the_marks():
    rec = busy(5_000)  # 30,000 frames
    svg = timeline_svg(rec)
    counts = marks(svg)
    assert sum(counts) == len(rec) == 30_000
    assert len(counts) < 2_000
    assert 'data-frames="30000"' in svg


def test_the_element_count_is_capped_whatever_the_lanes():
    # 60 lanes of their own: the marks per lane shrink so the total stays capped.
    rec = Recording(clock=TickClock(step=0.001))
    for i in range(30_000):
        rec.record("out", json.dumps({"type": f"kind{i % 60}", "i": i}))
    svg = timeline_svg(rec)
    assert svg.count('class="mlab-lane"') == 60
    assert sum(marks(svg)) == 30_000
    assert svg.count('class="mlab-mark"') <= MAX_MARKS
    assert elements(svg) < 5_000  # a mark and its tooltip, the lanes, the axis


def test_hover_gives_the_count_and_the_seqs_of_a_merged_mark():
    rec = busy(2_000)
    svg = timeline_svg(rec, width=400)
    title = re.search(r"<title>([\d,]+) out internal_monologue frames, #(\d+)–#(\d+)</title>", svg)
    assert title is not None
    count, first, last = (
        int(title.group(1).replace(",", "")),
        int(title.group(2)),
        int(title.group(3)),
    )
    assert count > 1 and first < last


def test_dense_turns_are_a_light_band_not_solid_bars():
    svg = timeline_svg(busy(5_000))
    assert "mlab-boundary" not in svg  # 10,000 start and end lines would paint the plot grey
    turns = re.findall(r'<rect class="mlab-turn"[^>]*fill-opacity="([\d.]+)"', svg)
    assert 1 <= len(turns) <= 10
    assert max(float(o) for o in turns) <= 0.10


def test_sparse_turns_keep_their_lines_and_their_own_shading():
    rec = Recording(clock=TickClock(step=0.01))
    for n in range(3):
        rec.record("out", json.dumps({"type": "agent_response_start"}))
        rec.record("out", json.dumps({"type": "agent_response", "message_type": "x", "m": n}))
        rec.record("out", json.dumps({"type": "agent_response_end"}))
        rec.record("in", json.dumps({"type": "ping"}))  # a 20 ms pause between turns
    svg = timeline_svg(rec)
    assert svg.count('class="mlab-turn"') == 3
    assert svg.count("mlab-boundary-start") == svg.count("mlab-boundary-end") == 3


def test_the_model_does_not_grow_with_the_frames_and_keeps_the_counts_when_bins_merge():
    model = TimelineModel()
    for i in range(100_000):
        model.add(i * 0.001, i + 1, KINDS[i % 3], True)
    assert model.count == 100_000
    assert model.bin * BINS >= 100.0  # the bins have widened to cover 100 s
    cells = model._marks[(0, True)]
    assert len(cells.count) == BINS
    assert sum(cells.count) == 33_334
    first_bin = next(b for b, n in enumerate(cells.count) if n)
    assert cells.first[first_bin] == 1


def test_frames_out_of_time_order_are_drawn_not_lost():
    model = TimelineModel()
    for seq, t in enumerate([5.0, 1.0, 6.0, 2.0], start=1):  # a loaded or merged recording
        model.add(t, seq, "x", True)
    assert sum(marks(model.svg())) == 4


def test_a_live_timeline_redraws_only_when_frames_arrived():
    rec = busy(10)
    clock = [0.0]
    scheduler = Scheduler(lambda: clock[0], thread=False)
    timeline = Timeline(rec, interval=0.25, scheduler=scheduler)
    values: list[str] = []
    timeline.observe(lambda change: values.append(change["new"]), "value")
    timeline.refresh()
    assert values == []  # nothing new: nothing sent
    rec.record("out", json.dumps({"type": "ping"}))
    clock[0] += 1
    scheduler.run_due()
    assert len(values) == 1 and 'data-frames="61"' in values[0]
    timeline.close()


def test_a_long_recording_is_drawn_a_chunk_a_redraw():
    rec = busy(100)  # 600 frames
    clock = [0.0]
    scheduler = Scheduler(lambda: clock[0], thread=False)
    timeline = Timeline(rec, chunk=200, scheduler=scheduler)
    drawn = [timeline.model.count]
    for _ in range(5):
        clock[0] += 1
        scheduler.run_due()
        drawn.append(timeline.model.count)
    assert drawn == [200, 400, 600, 600, 600, 600]
    assert len(scheduler) == 0  # caught up: idle
    timeline.close()


def test_inspector_and_timeline_share_one_index_and_keep_no_parsed_json():
    rec = busy(20)
    inspector = TrafficInspector(rec, live=False)
    timeline = Timeline(rec, live=False)
    assert inspector._index is timeline._index is shared_index(rec)
    assert len(shared_index(rec)) == len(rec)
    # Frame.json caches what it parses on the frame; the widgets parse for themselves
    # and keep only codes, so no frame holds a parsed copy of itself.
    assert all(frame._json is _UNSET for frame in rec)
    inspector.select(3)  # the detail pane too
    assert rec[2]._json is _UNSET
    inspector.close()
    timeline.close()


def test_chunk_must_be_positive():
    with pytest.raises(ValueError, match="chunk must be at least 1"):
        Timeline(Recording(), chunk=0)
    with pytest.raises(ValueError, match="chunk must be at least 1"):
        TrafficInspector(Recording(), chunk=0)
    with pytest.raises(ValueError, match="page_size must be at least 1"):
        TrafficInspector(Recording(), page_size=0)


def test_inspector_and_timeline_live_together_on_frames_from_another_thread():
    rec = Recording()
    inspector = TrafficInspector(rec, interval=0.01)
    timeline = Timeline(rec, interval=0.01)
    total = 6 * 500
    inspector_done, timeline_done = threading.Event(), threading.Event()
    inspector.table.observe(
        lambda change: change["new"] == total and inspector_done.set(), "total_count"
    )
    timeline.observe(
        lambda change: f'data-frames="{total}"' in change["new"] and timeline_done.set(), "value"
    )
    worker = threading.Thread(target=lambda: busy_into(rec, 500), daemon=True)
    worker.start()
    while worker.is_alive():  # the user reads the shared index while it grows
        counts = inspector.counts
        assert sum(counts["direction"].values()) <= total
    worker.join()
    try:
        assert inspector_done.wait(timeout=30) and timeline_done.wait(timeout=30)
        assert inspector.counts["type"]["agent_response"] == 3 * 500
        assert sum(marks(timeline.value)) == total
    finally:
        inspector.close()
        timeline.close()


def _random_frames(
    rng: random.Random, n: int, backwards: bool = True
) -> list[tuple[float, int, str, bool, int]]:
    """Frames with jittered (sometimes backwards) times, gaps, turns and stray markers."""
    frames, t = [], 5.0
    lanes = ["user_message", "internal_monologue", "assistant_message", "binary", "ping"]
    steps = [0.0, 1e-6, 3e-4, 0.002, 0.05, 1.5, 4.0] + ([-0.001] if backwards else [])
    for seq in range(n):
        t += rng.choice(steps)
        kind = rng.choices([0, 1, 2], weights=[8, 1, 1])[0]
        frames.append((t, seq, rng.choice(lanes), rng.random() < 0.7, kind))
    return frames


@pytest.mark.parametrize("backwards", [True, False], ids=["times-jitter-back", "times-in-order"])
@pytest.mark.parametrize("seed", range(6))
def test_add_many_draws_exactly_what_adding_one_by_one_draws(seed: int, backwards: bool) -> None:
    rng = random.Random(seed)
    frames = _random_frames(rng, rng.choice([1, 7, 300, 5000]), backwards)
    one_by_one, at_once = TimelineModel(), TimelineModel()
    for frame in frames:
        one_by_one.add(*frame)
    names = ["user_message", "internal_monologue", "assistant_message", "binary", "ping"]
    rng.shuffle(names)  # the caller's codes need not be the model's lane numbers
    start = 0
    while start < len(frames):  # in chunks, as a live Timeline takes them in
        end = min(len(frames), start + rng.choice([1, 50, 2000, 10_000]))
        chunk = frames[start:end]
        at_once.add_many(
            [f[0] for f in chunk],
            [f[1] for f in chunk],
            [names.index(f[2]) for f in chunk],
            names,
            [f[3] for f in chunk],
            [f[4] for f in chunk],
        )
        start = end
    assert at_once.lanes == one_by_one.lanes
    assert (at_once.count, at_once.turns, at_once.ends) == (
        one_by_one.count,
        one_by_one.turns,
        one_by_one.ends,
    )
    assert at_once.svg() == one_by_one.svg()


def test_a_timeline_opened_on_a_long_recording_draws_what_timeline_svg_draws() -> None:
    pings = Recording(clock=TickClock(step=0.7))
    for n in range(600):  # no turns: silences over a second are drawn as gaps
        pings.record("out" if n % 3 else "in", json.dumps({"type": "ping", "n": n}))
        if n % 50 == 0:
            pings.record("out", b"\x00")
    for rec in (busy(400), busy(5, step=1.5), pings):
        timeline = Timeline(rec, live=False)  # takes in the whole recording at once
        try:
            assert timeline.value == timeline_svg(rec)
        finally:
            timeline.close()
