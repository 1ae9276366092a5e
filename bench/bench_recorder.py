"""Recorder figures: capture rate, MockWebSocket.send rate, filtering by message_type."""

from __future__ import annotations

import asyncio
import time

from bench._common import Result, best_rate, best_time
from memgpt_lab.recorder import MockWebSocket, Recording
from memgpt_lab.ws import protocol

CAPTURE_FRAMES = 200_000
SEND_FRAMES = 100_000
FILTER_FRAMES = 100_000


def _texts(n: int) -> list[str]:
    """Realistic agent_response frames of about 120 bytes, the three message types in turn."""
    kinds = protocol.AGENT_MESSAGE_TYPES
    return [
        protocol.encode(
            protocol.agent_response(
                kinds[i % 3], f"Step {i}: the weather in Lisbon is mild.", seq=i
            )
        )
        for i in range(n)
    ]


def _capture(texts: list[str]) -> int:
    record = Recording().record
    for text in texts:
        record("out", text, connection_id="c1")
    return len(texts)


def _send(texts: list[str]) -> int:
    async def drive() -> None:
        send = MockWebSocket().send
        for text in texts:
            await send(text)

    asyncio.run(drive())
    return len(texts)


def run() -> list[Result]:
    texts = _texts(CAPTURE_FRAMES)
    size = sum(len(t) for t in texts) / len(texts)
    capture = best_rate(lambda: _capture(texts))

    send = best_rate(lambda: _send(texts[:SEND_FRAMES]), repeat=3)

    recording = Recording()
    for text in texts[:FILTER_FRAMES]:
        recording.record("out", text, connection_id="c1")
    start = time.perf_counter()
    cold_count = len(recording.filter(message_type="assistant_message"))  # parses every frame
    cold = time.perf_counter() - start
    warm = best_time(lambda: recording.filter(message_type="assistant_message"))

    return [
        Result(
            "recorder: Recording.record capture rate",
            capture,
            "frames/s",
            target=300_000,
            note=f"{CAPTURE_FRAMES:,} agent_response texts of {size:.0f} bytes on average",
        ),
        Result("recorder: MockWebSocket.send from one coroutine", send, "frames/s"),
        Result(
            f"recorder: filter {FILTER_FRAMES:,} frames by message_type, first",
            cold,
            "s",
            higher_is_better=False,
            note=f"parses only frames that may match ({cold_count:,} matched), then cached",
        ),
        Result(
            f"recorder: filter {FILTER_FRAMES:,} frames by message_type, again",
            warm,
            "s",
            higher_is_better=False,
        ),
    ]
