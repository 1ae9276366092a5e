"""TrafficInspector on 100,000 frames: filtering and computing the visible page."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bench._common import Result, best_time

if TYPE_CHECKING:
    from memgpt_lab.recorder import Recording

FRAMES = 100_000
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


def run() -> list[Result]:
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
