"""TrafficInspector: filtering 100,000 frames, and what the widgets cost at scale.

- filters and the visible page over 100,000 frames (milliseconds);
- memory: bytes per frame the TrafficInspector and the Timeline add to a
  recording of server frames, against the recording's own bytes per frame
  (``tracemalloc``, both measured in this run);
- 1,000,000 frames: how long before a new TrafficInspector shows its newest
  page, and how long its index takes to catch up behind it.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from typing import TYPE_CHECKING

from bench._common import Result, best_time

if TYPE_CHECKING:
    from memgpt_lab.recorder import Recording

FRAMES = 100_000
MEMORY_FRAMES = 200_000
BIG = 1_000_000
MESSAGE_TYPES = ("internal_monologue", "assistant_message", "function_message")


def _recording() -> Recording:
    from memgpt_lab.recorder import Recording, TickClock

    rec = Recording(clock=TickClock())
    for i in range(FRAMES):
        turn, step = divmod(i, 10)
        conn = f"c{turn % 4 + 1}"
        if step == 0:
            frame = {"type": "user_message", "message": f"question {turn}: what about {i}?"}
            rec.record("in", json.dumps(frame), connection_id=conn)
        elif step == 1:
            rec.record("out", json.dumps({"type": "agent_response_start"}), connection_id=conn)
        elif step == 9:
            rec.record("out", json.dumps({"type": "agent_response_end"}), connection_id=conn)
        else:
            message = f"step {i}: considering the user's request and core memory, turn {turn}"
            frame = {
                "type": "agent_response",
                "message_type": MESSAGE_TYPES[step % 3],
                "message": message,
                "seq": i,
                "agent_id": "agent-1",
            }
            rec.record("out", json.dumps(frame), connection_id=conn)
    return rec


def server_recording(frames: int, step: float = 0.000057) -> Recording:
    """``frames`` frames as ``memgpt-lab serve`` sends them: a user message, then one-step turns.

    Every frame's text is its own string (its ``seq`` differs), as on the wire;
    the clock ticks ``step`` seconds a frame (~17,500 frames/s by default).
    """
    from bench.bench_server import BARE_TURN
    from memgpt_lab.recorder import Recording, TickClock

    rec = Recording(clock=TickClock(step=step))
    user = '{"type":"user_message","message":"hello there","agent_id":"agent_%d"}'
    turn = [user, *BARE_TURN]
    seq = 0
    while len(rec) < frames:
        for text in turn:
            if len(rec) >= frames:
                break
            seq += 1
            conn = f"c{seq % 10 + 1}"
            direction = "in" if text is user else "out"
            body = user % (seq % 10) if text is user else text.replace('"seq":', f'"seq":{seq}', 1)
            rec.record(direction, body, connection_id=conn)
    return rec


def _filters() -> list[Result]:
    from memgpt_lab.widgets import TrafficInspector

    inspector = TrafficInspector(_recording(), page_size=50, live=False)
    results = []
    for name, kwargs in [
        ("message_type filter", {"message_type": "function_message"}),
        ("text search", {"text": "turn 4321"}),
        ("regex search", {"text": r"turn 43\d1\b", "regex": True}),
        (
            "type + connection + text",
            {"type": "agent_response", "connection_id": "c2", "text": "memory"},
        ),
    ]:
        seconds = best_time(lambda kwargs=kwargs: inspector.set_filter(**kwargs))
        results.append(
            Result(
                f"inspector: {name}, {FRAMES:,} frames",
                seconds * 1000,
                "ms",
                target=100,
                higher_is_better=False,
                note=f"{inspector.filtered_count:,} frames match",
            )
        )
    inspector.set_filter()
    middle = inspector.page_count // 2
    seconds = best_time(lambda: (inspector.go_to_page(middle), inspector.go_to_page(middle + 1)))
    results.append(
        Result(
            f"inspector: compute the visible page (50 rows), {FRAMES:,} frames",
            seconds * 1000 / 2,
            "ms",
            target=10,
            higher_is_better=False,
        )
    )
    inspector.close()
    return results


def widget_memory(frames: int = MEMORY_FRAMES) -> tuple[float, float]:
    """Bytes per frame of a recording of server frames, and what both widgets add to it."""
    from memgpt_lab.widgets import Timeline, TrafficInspector

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        rec = server_recording(frames)
        recorded = tracemalloc.get_traced_memory()[0]
        inspector = TrafficInspector(rec, live=False)
        timeline = Timeline(rec, live=False)
        with_widgets = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    inspector.close()
    timeline.close()
    return (recorded - before) / frames, (with_widgets - recorded) / frames


def _memory() -> list[Result]:
    per_frame, added = widget_memory()
    return [
        Result(
            "widgets: memory added per frame / the recording's (Inspector + Timeline)",
            added / per_frame,
            "ratio",
            target=0.30,
            higher_is_better=False,
            note=f"{MEMORY_FRAMES:,} server frames: the recording {per_frame:,.0f} B/frame,"
            f" the widgets add {added:,.0f} B/frame",
        )
    ]


def _first_row() -> list[Result]:
    from memgpt_lab.widgets import TrafficInspector

    rec = server_recording(BIG)
    start = time.perf_counter()
    inspector = TrafficInspector(rec, page_size=50)
    shown = time.perf_counter() - start
    rows = inspector.rows
    ok = len(rows) == 50 and rows[-1]["seq"] == rec[-1].seq
    deadline = time.monotonic() + 120
    while getattr(inspector, "indexed_count", BIG) < BIG and time.monotonic() < deadline:
        time.sleep(0.05)
    indexed = time.perf_counter() - start
    inspector.close()
    return [
        Result(
            f"inspector: time to the newest page, {BIG:,} frames",
            shown,
            "s",
            target=0.5,
            higher_is_better=False,
            note=f"{'the newest 50 rows' if ok else 'NOT the newest full page'};"
            f" the index caught up behind it in {indexed:.1f} s",
        )
    ]


def run() -> list[Result]:
    return _filters() + _memory() + _first_row()
