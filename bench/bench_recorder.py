"""Recorder figures: capture, send and filter rates; files (JSON lines, HAR); memory; diffs."""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench._common import Result, best_rate, best_time
from memgpt_lab.recorder import MockWebSocket, Recording
from memgpt_lab.ws import protocol

CAPTURE_FRAMES = 200_000
SEND_FRAMES = 100_000
FILTER_FRAMES = 100_000
FILE_FRAMES = 1_000_000
MEMORY_FRAMES = 100_000
BOUND = 10_000
DIFF_FRAMES = 100_000


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


def _conversation(n: int, agent: str, changed_at: int | None = None) -> Recording:
    """A server's recording: a user message, then five frames of a turn, again and again."""
    rec = Recording()
    kinds = protocol.AGENT_MESSAGE_TYPES
    record = rec.record
    for i in range(n):
        turn = i // 6
        if i % 6 == 0:
            text = protocol.encode(protocol.user_message(f"Question {turn}?", agent_id=agent))
            record("in", text, connection_id="c1")
            continue
        message = "changed" if i == changed_at else f"Step {i}: the weather in Lisbon is mild."
        frame = protocol.agent_response(kinds[i % 3], message, seq=i)
        frame.update(agent_id=agent, turn_id=turn)
        record("out", protocol.encode(frame), connection_id="c1")
    return rec


def _files(directory: Path) -> list[Result]:
    rec = _conversation(FILE_FRAMES, "4f1c2a9e0b7d")
    results = []
    for kind, write, read in (
        ("JSON lines", rec.to_jsonl, Recording.from_jsonl),
        ("HAR", rec.to_har, Recording.from_har),
    ):
        path = directory / f"traffic.{kind[:3].lower()}"
        start = time.perf_counter()
        write(path)
        wrote = time.perf_counter() - start
        size = os.path.getsize(path)
        start = time.perf_counter()
        back = read(path)
        took = time.perf_counter() - start
        assert len(back) == FILE_FRAMES
        del back
        path.unlink()
        note = f"{FILE_FRAMES:,} frames, {size / FILE_FRAMES:.0f} bytes per frame on disk"
        results.append(
            Result(f"recorder: {kind} write", FILE_FRAMES / wrote, "frames/s", note=note)
        )
        results.append(Result(f"recorder: {kind} read", FILE_FRAMES / took, "frames/s"))
    return results


def _memory() -> list[Result]:
    """Bytes held per recorded frame, its text included (a socket hands over a fresh str)."""
    kinds = protocol.AGENT_MESSAGE_TYPES
    raw = [
        protocol.encode(
            protocol.agent_response(
                kinds[i % 3], f"Step {i}: the weather in Lisbon is mild.", seq=i
            )
        ).encode()
        for i in range(MEMORY_FRAMES)
    ]
    size = sum(map(len, raw)) / len(raw)
    results = []
    for bound in (None, BOUND):
        gc.collect()
        rec = Recording(max_frames=bound)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for data in raw:
            rec.record("out", data.decode(), connection_id="c1")
        held = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        if bound is None:
            results.append(
                Result(
                    "recorder: memory held per recorded frame",
                    held / MEMORY_FRAMES,
                    "bytes",
                    higher_is_better=False,
                    note=f"{size:.0f}-byte frames, text included (384 before the package split)",
                )
            )
        else:
            results.append(
                Result(
                    f"recorder: memory of {MEMORY_FRAMES:,} frames into max_frames={bound:,}",
                    held / 1024,
                    "KiB",
                    higher_is_better=False,
                    note=f"{len(rec):,} kept, {rec.dropped:,} dropped and counted",
                )
            )
    return results


def _diff() -> list[Result]:
    left = _conversation(DIFF_FRAMES, "4f1c2a9e0b7d")
    right = _conversation(DIFF_FRAMES, "9b3e5d7f1a2c", changed_at=DIFF_FRAMES // 2)
    found = []

    def diff() -> None:
        result = left.diff(right)
        found.append(result.counts()["changed"])

    took = best_time(diff, repeat=3)
    assert found[-1] == 1
    start = time.perf_counter()
    text = str(left.diff(right))
    shown = time.perf_counter() - start - took
    return [
        Result(
            f"recorder: diff of two {DIFF_FRAMES:,}-frame recordings",
            took,
            "s",
            target=1.0,
            higher_is_better=False,
            note=(
                f"other agent ids, one frame changed, found; str() of it adds {max(shown, 0):.3f} s "
                f"({len(text.splitlines())} lines)"
            ),
        )
    ]


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

    bounded = Recording(max_frames=BOUND)

    def capture_bounded() -> int:
        record = bounded.record
        for text in texts:
            record("out", text, connection_id="c1")
        return len(texts)

    capture_bound = best_rate(capture_bounded)
    with tempfile.TemporaryDirectory() as directory:
        files = _files(Path(directory))

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
        Result(
            f"recorder: capture rate with max_frames={BOUND:,}",
            capture_bound,
            "frames/s",
            note=f"{capture_bound / capture:.2f} of unbounded",
        ),
        *_memory(),
        *files,
        *_diff(),
    ]
