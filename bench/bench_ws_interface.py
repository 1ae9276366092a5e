"""WebSocket interfaces: agent events per second from emit to a recording client.

The agent emits ``N`` events (the four events of a ``send_message`` step, in a
cycle), then flushes; the clock stops when every frame is in the client's
recording. The baseline is a bare loop doing the least any interface must do:
encode the same frames to the same JSON (with the same fast encoder) and append
them to a list. The ratio is how many times slower the interface is than that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bench._common import Result
from memgpt_lab.recorder import MockWebSocket, Recording
from memgpt_lab.ws import protocol
from memgpt_lab.ws.interface import AsyncWebSocketInterface, SyncWebSocketInterface

N = 100_000
REPEAT = 3

STEP = (
    ("internal_monologue", "User said hi; greet them back warmly."),
    ("function_message", "Running send_message({'message': 'Hello there!'})"),
    ("assistant_message", "Hello there!"),
    ("function_message", "Success: None"),
)


def _events(n: int) -> list[tuple[str, str]]:
    return [STEP[i % len(STEP)] for i in range(n)]


def _check_order(recording: Recording, n: int) -> None:
    seqs = [frame.json["seq"] for frame in recording]
    if seqs != list(range(1, n + 1)):
        raise AssertionError("frames arrived out of order or incomplete")
    kinds = [frame.json["message_type"] for frame in recording[: len(STEP)]]
    if kinds != [kind for kind, _ in STEP]:
        raise AssertionError(f"unexpected first step: {kinds}")


def _rate(fn: Callable[[], float]) -> float:
    return max(fn() for _ in range(REPEAT))


def _sync_rate(events: list[tuple[str, str]]) -> float:
    ws = MockWebSocket()
    with SyncWebSocketInterface(agent_id="bench") as interface:
        interface.register_client(ws)
        methods = {kind: getattr(interface, kind) for kind, _ in STEP}
        start = time.perf_counter()
        for kind, message in events:
            methods[kind](message)
        interface.flush()
        elapsed = time.perf_counter() - start
    _check_order(ws.recording, len(events))
    return len(events) / elapsed


def _async_rate(events: list[tuple[str, str]]) -> float:
    async def main() -> float:
        ws = MockWebSocket()
        async with AsyncWebSocketInterface(agent_id="bench") as interface:
            interface.register_client(ws)
            methods = {kind: getattr(interface, kind) for kind, _ in STEP}
            start = time.perf_counter()
            # The agent steps inline on the loop, as when stepped inside a coroutine.
            for kind, message in events:
                methods[kind](message)
            await interface.flush()
            elapsed = time.perf_counter() - start
        _check_order(ws.recording, len(events))
        return len(events) / elapsed

    return asyncio.run(main())


def _bare_rate(events: list[tuple[str, str]]) -> float:
    out: list[str] = []
    encode_event = protocol.event_encoder(agent_id="bench")
    start = time.perf_counter()
    for seq, (kind, message) in enumerate(events, 1):
        body = encode_event(kind, message)
        out.append(f'{body[:-1]},"seq":{seq}}}')
    return len(events) / (time.perf_counter() - start)


def run() -> list[Result]:
    events = _events(N)
    sync_rate = _rate(lambda: _sync_rate(events))
    async_rate = _rate(lambda: _async_rate(events))
    bare_rate = _rate(lambda: _bare_rate(events))
    return [
        Result(
            "ws interface: sync, 1 MockWebSocket, emit+flush",
            sync_rate,
            "events/s",
            target=100_000,
            note=f"{N:,} events, seq order verified",
        ),
        Result(
            "ws interface: async (inline agent), 1 MockWebSocket",
            async_rate,
            "events/s",
            note=f"{N:,} events, seq order verified",
        ),
        Result(
            "ws interface: sync, ratio to bare list append",
            bare_rate / sync_rate,
            "x",
            higher_is_better=False,
            note=f"bare encode+append: {bare_rate:,.0f} events/s; times slower than that",
        ),
    ]
