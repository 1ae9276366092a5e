"""Timeline at 1,000,000 frames: the time to redraw and the size of the SVG sent to the browser.

A live Timeline has taken in its frames as they came; what it pays per redraw
is the figure here. The Timeline is first brought up to date with a recording
of 1,000,000 server frames (that catching up is reported in the note), then
one more frame arrives and it redraws.
"""

from __future__ import annotations

import re
import time

from bench._common import Result
from bench.bench_inspector import server_recording

BIG = 1_000_000


def run() -> list[Result]:
    from memgpt_lab.widgets import Timeline

    rec = server_recording(BIG)
    start = time.perf_counter()
    timeline = Timeline(rec, live=False)
    caught_up = time.perf_counter() - start
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
            f"timeline: redraw after one more frame, {BIG:,} frames",
            redraw,
            "s",
            target=1.0,
            higher_is_better=False,
            note=f"first draw over the recording (taking in every frame): {caught_up:.2f} s",
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
