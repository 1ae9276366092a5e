"""Load: 50 concurrent clients x 100 turns each against 5 agents, over real loopback sockets.

Checked per connection: ``seq`` runs 1, 2, 3... with no gap (nothing lost, nothing
reordered); every turn arrives as one unbroken block start, 4 events, end; no frame of
another agent arrives; every client sees its own 100 turns, and every turn of its agent
from the moment it attached, up to the agent's last. How fast is for ``bench/``: nothing
here measures time.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from memgpt_lab.interface import AgentInterface
from memgpt_lab.ws import protocol
from memgpt_lab.ws.server import LabServer

CLIENTS = 50
AGENTS = 5
TURNS = 100
PER_AGENT = CLIENTS // AGENTS
EVENTS = ("internal_monologue", "function_message", "assistant_message", "function_message")
TIMEOUT = 60


class QuickAgent:
    """Four events per turn and nothing else, so the server's path is what is loaded."""

    def __init__(self, config: dict[str, Any], interface: AgentInterface) -> None:
        self.id = str(config["id"])
        self.name = self.id
        self.interface = interface

    def turn(self, message: str) -> None:
        emit = self.interface.emit
        for kind in EVENTS:
            emit(kind, f"{kind} for {message}")

    def memory_snapshot(self) -> dict[str, Any]:
        return {}


class LoadClient:
    def __init__(self, ws: ClientConnection, index: int) -> None:
        self.ws = ws
        self.agent_id = ""
        self.index = index
        self.frames: list[dict[str, Any]] = []
        self.connection_id = ""
        self.own_ends = 0
        self.progress = asyncio.Event()

    async def read(self) -> None:
        async for message in self.ws:
            frame = json.loads(message)
            self.frames.append(frame)
            if frame["type"] == "hello":
                self.connection_id = frame["connection_id"]
            elif frame["type"] == "agent_response_end":
                if frame.get("requested_by") == self.connection_id:
                    self.own_ends += 1
            elif frame["type"] == "command_response":
                assert frame["status"].startswith("OK"), frame
                self.agent_id = frame["agent_id"]
            self.progress.set()

    async def until(self, condition: Any) -> None:
        while not condition():
            self.progress.clear()
            await self.progress.wait()

    async def attach(self) -> None:
        """Every client attaches (sending alone does not), so it sees all its agent's turns."""
        await self.ws.send(json.dumps(protocol.command("attach", agent_id=self.agent_id)))
        await self.until(lambda: self.attached())

    def attached(self) -> bool:
        return any(f.get("command") == "attach" for f in self.frames)

    async def talk(self) -> None:
        for n in range(TURNS):
            await self.ws.send(
                json.dumps(protocol.user_message(f"{self.index}/{n}", self.agent_id, request_id=n))
            )
            await self.until(lambda n=n: self.own_ends > n)

    def last_turn_id(self) -> int:
        ends = [f["turn_id"] for f in self.frames if f["type"] == "agent_response_end"]
        return ends[-1] if ends else 0


def check(client: LoadClient, server_sent: int) -> None:
    frames = client.frames
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert len(frames) == server_sent
    assert frames[0]["type"] == "hello"
    turn_ids = []
    own = []
    body = [f for f in frames[1:] if f["type"] != "command_response"]
    assert len(body) % 6 == 0
    for at in range(0, len(body), 6):
        block = body[at : at + 6]
        start, events, end = block[0], block[1:5], block[5]
        assert start["type"] == "agent_response_start"
        assert end["type"] == "agent_response_end"
        assert [e["message_type"] for e in events] == list(EVENTS)
        assert {f["agent_id"] for f in block} == {client.agent_id}
        assert len({f["turn_id"] for f in block}) == 1
        sender, n = events[0]["message"].split(" for ")[1].split("/")
        assert start["requested_by"] == end["requested_by"]
        assert start["request_id"] == end["request_id"] == int(n)
        if start["requested_by"] == client.connection_id:
            assert int(sender) == client.index
            own.append(int(n))
        turn_ids.append(start["turn_id"])
    assert own == list(range(TURNS))
    # From its attachment on, a client sees every turn of its agent, up to the last one.
    assert turn_ids == list(range(turn_ids[0], PER_AGENT * TURNS + 1))


def test_fifty_clients_a_hundred_turns_each_five_agents() -> None:
    ids = iter(range(AGENTS))

    def factory(config: dict[str, Any], interface: AgentInterface) -> QuickAgent:
        return QuickAgent({"id": f"agent{next(ids)}"}, interface)

    async def main(url: str) -> list[LoadClient]:
        sockets = [await connect(url + "?hello=1", max_queue=None) for _ in range(CLIENTS)]
        clients = [LoadClient(ws, index) for index, ws in enumerate(sockets)]
        readers = [asyncio.create_task(client.read()) for client in clients]
        try:
            for creator in clients[:AGENTS]:
                await creator.ws.send(json.dumps(protocol.command("create_agent", {})))
                await creator.until(lambda c=creator: c.agent_id)
            for client in clients[AGENTS:]:
                client.agent_id = clients[client.index % AGENTS].agent_id
            await asyncio.gather(*(c.attach() for c in clients))
            await asyncio.wait_for(asyncio.gather(*(c.talk() for c in clients)), TIMEOUT)
            last = PER_AGENT * TURNS
            await asyncio.wait_for(
                asyncio.gather(*(c.until(lambda c=c: c.last_turn_id() == last) for c in clients)),
                TIMEOUT,
            )
        finally:
            for ws in sockets:
                await ws.close()
            await asyncio.gather(*readers, return_exceptions=True)
        return clients

    with LabServer(agent_factory=factory, max_workers=AGENTS) as server:
        clients = asyncio.run(main(server.url))
        assert server.recording is not None
        sent = server.recording.count_by("connection_id")
        outgoing: dict[str, int] = {}
        for frame in server.recording.filter(direction="out"):
            if frame.opcode == "text":
                outgoing[frame.connection_id] = outgoing.get(frame.connection_id, 0) + 1
    for client in clients:
        check(client, outgoing[client.connection_id])
    assert len(sent) == CLIENTS
