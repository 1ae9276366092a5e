"""The agent server's delivery rate, turn latency, and the recording proxy's overhead.

Everything runs over real loopback sockets in this process: servers on loops in
background threads, the measuring client on the main thread. The baselines are
bare ``websockets`` servers sending the same JSON frames, measured in the same run,
so the ratios compare the lab's server path (worker thread, routing, per-connection
queue, ``seq``, recording) with the least a server could do.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve

from bench._common import Result
from memgpt_lab._loop import BackgroundLoop
from memgpt_lab.interface import AgentInterface
from memgpt_lab.ws import protocol
from memgpt_lab.ws.proxy import RecordingProxy
from memgpt_lab.ws.server import LabServer

BURST = 20_000  # agent frames per turn in the fan-out runs
KINDS = ("internal_monologue", "function_message", "assistant_message", "function_message")
REPEAT = 3


class BurstAgent:
    """Emits ``events`` events per turn and does nothing else: the server path is measured."""

    def __init__(self, events: int, interface: AgentInterface) -> None:
        self.id = "burst"
        self.name = "burst"
        self.events = events
        self.interface = interface

    def turn(self, message: str) -> None:
        emit = self.interface.emit
        for n in range(self.events):
            emit(KINDS[n % 4], f"event {n} of a turn")

    def memory_snapshot(self) -> dict[str, Any]:
        return {}


def burst_factory(events: int) -> Any:
    ids = itertools.count(1)

    def factory(config: dict[str, Any], interface: AgentInterface) -> BurstAgent:
        agent = BurstAgent(events, interface)
        agent.id = f"burst{next(ids)}"
        return agent

    return factory


async def _bare_handler(ws: ServerConnection) -> None:
    """Answers each message with the same frames a BurstAgent's turn produces."""
    async for _ in ws:
        fields = {"agent_id": "burst", "turn_id": 1}
        seq = 1
        await ws.send(protocol.encode(protocol.agent_response_start(seq=seq, **fields)))
        for n in range(BURST):
            seq += 1
            frame = protocol.event_frame(KINDS[n % 4], f"event {n} of a turn", seq=seq, **fields)
            await ws.send(protocol.encode(frame))
        await ws.send(protocol.encode(protocol.agent_response_end(seq=seq + 1, **fields)))


class BareServer:
    """A plain websockets server on a background loop, for baselines."""

    def __enter__(self) -> BareServer:
        self.loop = BackgroundLoop("bench bare server")
        self.loop.start()

        async def open_server() -> Server:
            return await serve(_bare_handler, "127.0.0.1", 0)

        self.server = self.loop.run(open_server())
        self.url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        self.loop.run(close())
        self.loop.close()


async def _turn_times(url: str, lab: bool, turns: int) -> list[float]:
    """Per turn: send a message, read until agent_response_end; returns seconds per turn."""
    times = []
    async with connect(url, max_queue=None) as ws:
        agent_id = "burst"
        if lab:  # the lab server greets, and needs an agent first
            await ws.recv()
            await ws.send(protocol.encode(protocol.command("create_agent", {})))
            agent_id = protocol.decode(await ws.recv())["agent_id"]
        text = protocol.encode(protocol.user_message("go", agent_id))
        for _ in range(turns):
            start = time.perf_counter()
            await ws.send(text)
            while '"agent_response_end"' not in (await ws.recv()):
                pass
            times.append(time.perf_counter() - start)
    return times


def _fanout_rate(url: str, lab: bool) -> float:
    best = 0.0
    for _ in range(REPEAT):
        seconds = asyncio.run(_turn_times(url, lab, 1))[0]
        best = max(best, BURST / seconds)
    return best


def _latencies(url: str, turns: int) -> list[float]:
    return asyncio.run(_turn_times(url, True, turns))


def run() -> list[Result]:
    results = []
    with LabServer(agent_factory=burst_factory(BURST)) as lab, BareServer() as bare:
        bare_rate = _fanout_rate(bare.url, lab=False)
        lab_rate = _fanout_rate(lab.url, lab=True)
        with RecordingProxy(bare.url) as proxy:
            proxied_rate = _fanout_rate(proxy.url, lab=False)
    results.append(
        Result(
            "server: agent frames/s to one client, lab server",
            lab_rate,
            "frames/s",
            note=f"bare websockets server sending the same frames: {bare_rate:,.0f} frames/s",
        )
    )
    results.append(
        Result("server: fan-out rate, lab / bare websockets", lab_rate / bare_rate, "ratio", 0.7)
    )
    results.append(
        Result(
            "proxy: frames/s through RecordingProxy / direct",
            proxied_rate / bare_rate,
            "ratio",
            note=f"{proxied_rate:,.0f} frames/s through the proxy, recording every frame",
        )
    )
    with LabServer(agent_factory=burst_factory(4)) as lab:
        _latencies(lab.url, 50)  # warm up
        times = sorted(_latencies(lab.url, 2000))
    p50 = statistics.median(times) * 1000
    p99 = times[int(len(times) * 0.99) - 1] * 1000
    results.append(
        Result("server: one-step turn latency p50 (4 events)", p50, "ms", higher_is_better=False)
    )
    results.append(
        Result("server: one-step turn latency p99 (4 events)", p99, "ms", higher_is_better=False)
    )
    return results
