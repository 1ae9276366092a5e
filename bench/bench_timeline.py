"""Timeline at 1,000,000 frames: the first draw, a redraw, and the size of the SVG.

Three times, on a recording of 1,000,000 server frames:

- the first draw of a Timeline opened on it, cold: every frame's JSON is parsed
  once into the recording's shared index (a TrafficInspector of the same
  recording reuses it) and binned; this is what the < 1 s goal is about
  (numpy is imported with ``memgpt_lab.widgets``, before the clock starts, as
  in a notebook that shows the widgets);
- the first draw of a second Timeline on the same recording, whose index is
  built already (as in the Lab, where the inspector indexes the recording too):
  what the Timeline itself costs;
- the redraw after one more frame arrives (what a live Timeline pays).
"""

from __future__ import annotations

import re
import time

from bench._common import Result
from bench.bench_inspector import server_recording

BIG = 1_000_000


def run() -> list[Result]:
    from memgpt_lab.widgets import Timeline
    from memgpt_lab.widgets.inspector import shared_index

    rec = server_recording(BIG)
    start = time.perf_counter()
    timeline = Timeline(rec, live=False)
    first = time.perf_counter() - start
    start = time.perf_counter()
    index = shared_index(rec)
    assert len(index) == BIG  # the first draw indexed every frame
    second = Timeline(rec, live=False)
    indexed = time.perf_counter() - start
    second.close()
    rec.record("out", '{"type":"agent_response_start","seq":0}', connection_id="c1")
    start = time.perf_counter()
    timeline.refresh()
    redraw = time.perf_counter() - start
    svg = timeline.value
    elements = len(re.findall(r"<(?!/)", svg))
    timeline.close()
    size = len(svg.encode("utf-8"))
    return [
        Result(
            f"timeline: first draw, {BIG:,} frames (parsing each frame's JSON included)",
            first,
            "s",
            target=1.0,
            higher_is_better=False,
            note=f"with the recording already indexed (as beside a TrafficInspector): "
            f"{indexed:.2f} s",
        ),
        Result(
            f"timeline: redraw after one more frame, {BIG:,} frames",
            redraw,
            "s",
            target=1.0,
            higher_is_better=False,
        ),
        Result(
            f"timeline: SVG size, {BIG:,} frames",
            size / 1e6,
            "MB",
            target=2.0,
            higher_is_better=False,
            note=f"{elements:,} elements",
        ),
    ]
