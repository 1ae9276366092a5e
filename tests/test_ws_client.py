"""The lab client twins against a real LabServer on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from ws_helpers import Gate

from memgpt_lab.errors import (
    LabConnectionError,
    LabError,
    RequestTimeoutError,
    ServerResponseError,
)
from memgpt_lab.interface import AgentInterface
from memgpt_lab.recorder import Recording
from memgpt_lab.ws import protocol
from memgpt_lab.ws.client import AsyncLabClient, LabClient
from memgpt_lab.ws.proxy import RecordingProxy
from memgpt_lab.ws.server import LabServer

TIMEOUT = 10


class GatedAgent:
    """Says ``echo: <message>``; with ``block`` in its config, waits for the test's gate."""

    def __init__(self, config: dict[str, Any], interface: AgentInterface, gate: Gate) -> None:
        self.id = config.get("id") or f"g{len(gate.agents) + 1}"
        self.name = str(config.get("name", "gated"))
        self.interface = interface
        self.config = config
        self.gate = gate
        self.said: list[str] = []

    def turn(self, message: str) -> None:
        self.interface.internal_monologue(f"thinking about {message}")
        if self.config.get("block"):
            self.gate.started.set()
            assert self.gate.release.wait(TIMEOUT)
        if self.config.get("fail"):
            raise RuntimeError("no model today")
        self.interface.assistant_message(f"echo: {message}")
        self.said.append(message)

    def memory_snapshot(self) -> dict[str, Any]:
        return {"said": list(self.said)}


def _no_personas(config: dict[str, Any]) -> None:
    if "persona" in config:
        raise LabError(f"unknown persona {config['persona']!r}")


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate(GatedAgent, refuse=_no_personas)
    yield gate
    gate.release.set()


@pytest.fixture
def server(gate: Gate) -> Iterator[LabServer]:
    with LabServer(agent_factory=gate.factory, grace=0) as server:
        yield server


def kinds(frames: list[dict[str, Any]]) -> list[str]:
    return [f.get("message_type") or f["type"] for f in frames]


def test_the_sync_client_works_inside_a_running_event_loop_like_a_notebook_cell(
    server: LabServer,
) -> None:
    async def cell() -> tuple[str, list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        # A Jupyter cell runs on a thread whose loop is running: the client must not need it.
        with LabClient(server.url, timeout=TIMEOUT) as client:
            assert (
                client.hello is not None
                and client.hello["protocol_version"] == protocol.PROTOCOL_VERSION
            )
            agent_id = client.create_agent(name="nb")
            frames = client.send("hi", agent_id)
            return agent_id, frames, client.list_agents(), client.get_memory(agent_id)

    agent_id, frames, agents, memory = asyncio.run(cell())
    assert kinds(frames) == [
        "agent_response_start",
        "internal_monologue",
        "assistant_message",
        "agent_response_end",
    ]
    assert frames[2]["message"] == "echo: hi"
    assert agents == [{"id": agent_id, "name": "nb", "model": "scripted", "turns": 1}]
    assert memory == {"said": ["hi"]}


def test_concurrent_sends_each_get_their_own_turn(server: LabServer) -> None:
    async def main() -> None:
        async with (
            AsyncLabClient(server.url, timeout=TIMEOUT) as one,
            AsyncLabClient(server.url, timeout=TIMEOUT) as two,
        ):
            a = await one.create_agent()
            b = await one.create_agent()
            await one.attach(a)  # to see the turns others ask of it too
            turns = await asyncio.gather(
                *(one.send(f"a{n}", a) for n in range(10)),
                *(one.send(f"b{n}", b) for n in range(10)),
                *(two.send(f"two{n}", a) for n in range(10)),
            )
            said = [t[2]["message"] for t in turns]
            assert said == [
                *(f"echo: a{n}" for n in range(10)),
                *(f"echo: b{n}" for n in range(10)),
                *(f"echo: two{n}" for n in range(10)),
            ]
            for turn in turns:
                assert len({(f["agent_id"], f["turn_id"]) for f in turn}) == 1
            # `one` attached to a, so it also saw the turns `two` asked for, unsolicited.
            theirs = [
                f["message"]
                for f in one.unsolicited
                if f.get("message_type") == "assistant_message"
            ]
            assert sorted(theirs) == sorted(f"echo: two{n}" for n in range(10))
            # `two` attached to nothing: it saw its own turns, and nothing else.
            assert list(two.unsolicited) == []

    asyncio.run(main())


def test_error_answers_raise_server_response_errors(server: LabServer) -> None:
    with LabClient(server.url, timeout=TIMEOUT) as client:
        with pytest.raises(ServerResponseError, match="unknown agent 'ghost'") as unknown:
            client.send("hi", "ghost")
        assert unknown.value.frame["type"] == "agent_response_error"
        assert kinds(unknown.value.frames) == [
            "agent_response_start",
            "agent_response_error",
            "agent_response_end",
        ]
        with pytest.raises(ServerResponseError, match="unknown persona 'nobody'") as bad:
            client.create_agent(persona="nobody")
        assert bad.value.frame["status"] == "Error: Failed to init agent - unknown persona 'nobody'"
        failing = client.create_agent(fail=True)
        with pytest.raises(ServerResponseError, match="no model today") as failed:
            client.send("hi", failing)
        assert kinds(failed.value.frames) == [
            "agent_response_start",
            "internal_monologue",
            "agent_response_error",
            "agent_response_end",
        ]
        assert client.list_agents()[0]["id"] == failing  # the connection is still good


def test_a_turn_that_takes_too_long_times_out_and_the_client_stays_usable(
    server: LabServer, gate: Gate
) -> None:
    with LabClient(server.url, timeout=0.3) as client:
        slow = client.create_agent(block=True)
        with pytest.raises(RequestTimeoutError, match="within 0.3s") as timed_out:
            client.send("wait", slow)
        assert "agent_response_start" in str(timed_out.value)
        assert isinstance(timed_out.value, TimeoutError)
        gate.release.set()
        fast = client.create_agent()
        assert client.send("quick", fast)[-1]["type"] == "agent_response_end"


def test_a_refused_handshake_is_not_retried() -> None:
    with LabServer(token="right") as server:
        with pytest.raises(LabConnectionError, match="HTTP 401"):
            LabClient(server.url, token="wrong", timeout=TIMEOUT)
        with LabClient(server.url, token="right", timeout=TIMEOUT) as client:
            assert client.list_agents() == []


def test_an_unreachable_server_fails_after_the_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(LabConnectionError, match=r"could not connect .* in 0.2s"):
        LabClient(f"ws://127.0.0.1:{port}/", timeout=0.2)


def test_a_server_that_never_says_hello_is_left_closed_not_open() -> None:
    async def main() -> None:
        closed = asyncio.Event()

        async def silent(ws: ServerConnection) -> None:
            await ws.wait_closed()  # accepts the handshake, never sends hello
            closed.set()

        async with serve(silent, "127.0.0.1", 0) as silent_server:
            port = silent_server.sockets[0].getsockname()[1]
            client = AsyncLabClient(f"ws://127.0.0.1:{port}/", timeout=0.5)
            with pytest.raises(LabConnectionError, match="could not connect"):
                await client.connect()
            # The connection that got no hello must not stay open behind the error.
            await asyncio.wait_for(closed.wait(), TIMEOUT)

    asyncio.run(main())


def test_a_turn_in_flight_when_the_connection_drops_is_answered_from_its_first_run(
    server: LabServer, gate: Gate
) -> None:
    proxy = RecordingProxy(server.url).start()
    port = proxy.port

    async def main() -> None:
        nonlocal proxy
        recording = Recording()
        async with AsyncLabClient(proxy.url, timeout=TIMEOUT, recording=recording) as client:
            agent_id = await client.create_agent(block=True)
            in_flight = asyncio.create_task(client.send("hang on", agent_id))
            assert await asyncio.to_thread(gate.started.wait, TIMEOUT)
            await asyncio.to_thread(proxy.stop)  # the path to the server goes away mid-turn
            # The client reconnects on its own and sends the message again, same request_id.
            proxy = RecordingProxy(server.url, port=port).start()
            gate.release.set()
            frames = await in_flight
            assert kinds(frames) == [
                "agent_response_start",
                "internal_monologue",
                "assistant_message",
                "agent_response_end",
            ]
            assert {f["turn_id"] for f in frames} == {1}
            assert client.connected
            assert [a["turns"] for a in await client.list_agents()] == [1]
        # The agent ran the message once, though the server received it twice.
        assert gate.agents[0].said == ["hang on"]
        sent = [f.json for f in recording.filter(direction="in") if f.opcode == "text"]
        resent = [f for f in sent if f["type"] == "user_message"]
        assert len(resent) == 2 and resent[0] == resent[1]
        closes = [(f.connection_id, f.close_code) for f in recording if f.opcode == "close"]
        assert closes == [("c1", 1001), ("c2", 1000)]

    try:
        asyncio.run(main())
    finally:
        proxy.stop()


def test_a_command_in_flight_when_the_connection_drops_fails(server: LabServer, gate: Gate) -> None:
    proxy = RecordingProxy(server.url).start()
    try:
        with LabClient(server.url, timeout=TIMEOUT) as owner:
            agent_id = owner.create_agent(block=True)

            async def main() -> None:
                async with AsyncLabClient(proxy.url, timeout=TIMEOUT) as client:
                    turn = asyncio.create_task(client.send("first", agent_id))
                    assert await asyncio.to_thread(gate.started.wait, TIMEOUT)
                    # Queued behind the running turn: still waiting when the path goes away.
                    memory = asyncio.create_task(client.get_memory(agent_id))
                    await client.request({"type": "command", "command": "hello"})
                    await asyncio.to_thread(proxy.stop)
                    with pytest.raises(LabConnectionError, match="dropped .*1001.* get_memory"):
                        await memory
                    turn.cancel()
                    with contextlib.suppress(asyncio.CancelledError, LabError):
                        await turn

            asyncio.run(main())
    finally:
        gate.release.set()
        proxy.stop()


def test_after_a_reconnect_the_client_reattaches_and_resumes_what_it_missed(
    server: LabServer,
) -> None:
    proxy = RecordingProxy(server.url).start()
    port = proxy.port
    try:
        with (
            LabClient(server.url, timeout=TIMEOUT) as talker,
            LabClient(proxy.url, timeout=TIMEOUT) as watcher,
        ):
            agent_id = talker.create_agent(name="watched")
            watcher.attach("watched")
            talker.send("seen live", agent_id)
            watcher.list_agents()  # answered after the turn it saw: the turn is in
            proxy.stop()
            talker.send("missed one", agent_id)
            talker.send("missed two", agent_id)
            proxy = RecordingProxy(server.url, port=port).start()
            watcher.list_agents()  # after the reconnect and its resume, so after the replay
            talker.send("live again", agent_id)
            watcher.list_agents()
            said = [
                f["message"]
                for f in watcher.unsolicited
                if f.get("message_type") == "assistant_message"
            ]
            ends = [f["turn_id"] for f in watcher.unsolicited if f["type"] == "agent_response_end"]
    finally:
        proxy.stop()
    assert said == ["echo: seen live", "echo: missed one", "echo: missed two", "echo: live again"]
    assert ends == [1, 2, 3, 4]


def test_unsolicited_frames_are_bounded(server: LabServer) -> None:
    with (
        LabClient(server.url, timeout=TIMEOUT) as talker,
        LabClient(server.url, timeout=TIMEOUT, max_unsolicited=5) as watcher,
    ):
        agent_id = talker.create_agent()
        watcher.attach(agent_id)
        for n in range(10):
            talker.send(f"m{n}", agent_id)
        watcher.list_agents()
        kept = list(watcher.unsolicited)
    assert len(kept) == 5
    assert kept[-1]["type"] == "agent_response_end"
    assert kept[-1]["turn_id"] == 10


def test_the_client_asks_for_hello_and_can_delete_and_resume(server: LabServer) -> None:
    with (
        LabClient(server.url, timeout=TIMEOUT) as client,
        LabClient(server.url, timeout=TIMEOUT) as other,
    ):
        assert client.hello is not None
        assert client.hello["session"] == client.session
        assert client.server_hello()["connection_id"] == client.hello["connection_id"]
        agent_id = client.create_agent(name="r")
        other.send("one", agent_id)
        other.send("two", agent_id)
        client.send("three", agent_id)
        # Turns it got on this connection are not replayed: only the one it missed.
        answer = client.resume("r", after_turn=1)
        client.delete_agent("r")
        assert client.list_agents() == []
        replayed = [f.get("message") for f in client.unsolicited]
    assert answer["replayed_turns"] == [2]
    assert answer["complete"] is True
    assert "echo: two" in replayed
    assert "echo: one" not in replayed and "echo: three" not in replayed


def test_a_frame_with_an_odd_request_id_is_ignored_not_fatal() -> None:
    async def main() -> None:
        async def odd(ws: ServerConnection) -> None:
            await ws.send(json.dumps({"type": "hello", "protocol_version": "1.0"}))
            await ws.send(json.dumps({"type": "command_response", "request_id": [1, 2]}))
            await ws.send(json.dumps({"type": "command_response", "request_id": {"a": 1}}))
            await ws.wait_closed()

        async with serve(odd, "127.0.0.1", 0) as odd_server:
            port = odd_server.sockets[0].getsockname()[1]
            client = AsyncLabClient(f"ws://127.0.0.1:{port}/", timeout=TIMEOUT)
            await client.connect()
            await client.close()  # the reader survived both frames: close raises nothing

    asyncio.run(main())


def test_a_busy_refusal_is_one_error_frame_and_fails_only_its_send(gate: Gate) -> None:
    async def main(url: str) -> None:
        async with AsyncLabClient(url, timeout=TIMEOUT) as client:
            agent_id = await client.create_agent(block=True)
            first = asyncio.create_task(client.send("first", agent_id))
            assert await asyncio.to_thread(gate.started.wait, TIMEOUT)
            with pytest.raises(ServerResponseError, match="1 requests queued or running") as busy:
                await client.send("second", agent_id)
            assert [f["error_code"] for f in busy.value.frames] == ["busy"]
            gate.release.set()
            assert (await first)[-1]["type"] == "agent_response_end"

    with LabServer(agent_factory=gate.factory, max_turns_in_flight=1, grace=0) as server:
        asyncio.run(main(server.url))
