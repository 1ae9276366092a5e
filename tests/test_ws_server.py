"""The agent server over real loopback sockets, driven by the websockets library's own client."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from ws_helpers import TIMEOUT, Gate, ask, create, hello, open_client, recv, talk, until_end

from memgpt_lab.errors import LabError, UnknownNameError
from memgpt_lab.interface import AgentInterface
from memgpt_lab.recorder import Recording
from memgpt_lab.turns import DEFAULT_MAX_QUEUED_BYTES
from memgpt_lab.ws import protocol
from memgpt_lab.ws.server import (
    COMMANDS,
    DEFAULT_MAX_AGENTS,
    DEFAULT_MAX_REMEMBERED_REQUESTS,
    DEFAULT_MAX_SIZE,
    DEFAULT_MAX_TURNS_IN_FLIGHT,
    DEFAULT_RESUME_BUFFER_BYTES,
    FEATURES,
    LabServer,
    origin_allowed,
)


class FakeAgent:
    """A fast agent: four events per turn; blocks on ``gate`` when its config says so."""

    ids = itertools.count(1)

    def __init__(self, config: dict[str, Any], interface: AgentInterface, gate: Gate) -> None:
        self.id = config.get("id") or f"fake{next(self.ids)}"
        self.name = config.get("name", "fake")
        self.interface = interface
        self.block = bool(config.get("block"))
        self.fail = bool(config.get("fail"))
        self.gate = gate
        self.messages: list[str] = []
        self.running = 0
        self.overlapped = False
        self._lock = threading.Lock()

    def turn(self, message: str) -> None:
        with self._lock:
            self.running += 1
            self.overlapped = self.overlapped or self.running > 1
        try:
            self.interface.internal_monologue(f"thinking about {message}")
            if self.block:
                self.gate.started.set()
                assert self.gate.release.wait(TIMEOUT), "test never released the agent"
            if self.fail:
                raise RuntimeError("the model is on fire")
            self.interface.function_message(f"Running send_message({message!r})")
            self.interface.assistant_message(f"echo: {message}")
            self.interface.function_message("Success: None")
            self.messages.append(message)
        finally:
            with self._lock:
                self.running -= 1

    def memory_snapshot(self) -> dict[str, Any]:
        return {"id": self.id, "messages": list(self.messages)}


def _no_bad_configs(config: dict[str, Any]) -> None:
    if config.get("bad"):
        raise ValueError("config 'bad' is not allowed")


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate(FakeAgent, refuse=_no_bad_configs)
    yield gate
    gate.release.set()  # never leave a worker thread waiting


@pytest.fixture
def server(gate: Gate) -> Iterator[LabServer]:
    with LabServer(agent_factory=gate.factory, grace=5) as server:
        yield server


# --------------------------------------------------------------------------- the protocol


def test_nothing_before_the_client_speaks_then_create_agent_then_a_whole_turn(
    server: LabServer,
) -> None:
    with open_client(server.url) as ws:
        # The first frame the client gets is the answer to its first request: seq 1.
        answer = ask(ws, protocol.command("create_agent", {"name": "echo"}, request_id="r1"))
        agent_id = answer["agent_id"]
        assert answer == {
            "type": "command_response",
            "status": "OK: Agent initialized",
            "command": "create_agent",
            "agent_id": agent_id,
            "agent_name": "echo",
            "model": "scripted",
            "request_id": "r1",
            "seq": 1,
        }
        frames = talk(ws, agent_id, "hi", request_id=7)
    turn = {"agent_id": agent_id, "turn_id": 1}
    assert frames == [
        {"type": "agent_response_start", **turn, "request_id": 7, "requested_by": "c1", "seq": 2},
        {**protocol.agent_response("internal_monologue", "thinking about hi"), **turn, "seq": 3},
        {**protocol.agent_response("function_message", "Running send_message('hi')"), **turn}
        | {"seq": 4},
        {**protocol.agent_response("assistant_message", "echo: hi"), **turn, "seq": 5},
        {**protocol.agent_response("function_message", "Success: None"), **turn, "seq": 6},
        {"type": "agent_response_end", **turn, "request_id": 7, "requested_by": "c1", "seq": 7},
    ]


def test_hello_is_sent_on_request_and_to_clients_that_ask_with_a_query(server: LabServer) -> None:
    with open_client(server.url) as ws:
        answer = ask(ws, protocol.command("hello", request_id="h"))
    assert answer == {
        "type": "hello",
        "protocol_version": protocol.PROTOCOL_VERSION,
        "server": "memgpt_lab",
        "connection_id": "c1",
        "commands": list(COMMANDS),
        "features": list(FEATURES),
        "model_policy": "scripted",
        "limits": {
            "max_size": DEFAULT_MAX_SIZE,
            "max_queued_bytes": DEFAULT_MAX_QUEUED_BYTES,
            "max_turns_in_flight": DEFAULT_MAX_TURNS_IN_FLIGHT,
            "max_agents": DEFAULT_MAX_AGENTS,
            "resume_buffer_bytes": DEFAULT_RESUME_BUFFER_BYTES,
            "max_remembered_requests": DEFAULT_MAX_REMEMBERED_REQUESTS,
        },
        "request_id": "h",
        "seq": 1,
    }
    with open_client(server.url + "?hello=1&session=s-1") as ws:
        greeting = recv(ws)
    assert greeting["type"] == "hello"
    assert greeting["connection_id"] == "c2"
    assert greeting["session"] == "s-1"
    assert greeting["seq"] == 1
    assert "request_id" not in greeting


def test_a_given_empty_recording_is_the_one_recorded_into(gate: Gate) -> None:
    recording = Recording()  # empty, so falsy: it must still be used
    with (
        LabServer(agent_factory=gate.factory, recording=recording) as server,
        open_client(server.url) as ws,
    ):
        answer = hello(ws)
    assert server.recording is recording
    assert recording[1].json == answer  # recorded once sent


def test_the_recording_holds_both_directions_and_the_close_handshake(server: LabServer) -> None:
    with open_client(server.url) as ws:
        agent_id = create(ws)
        talk(ws, agent_id, "hi")
    assert server.recording is not None
    server.recording.wait_for({"type": "agent_response_end"})
    closes = server.recording.wait_for(lambda f: f.opcode == "close", count=2)
    frames = server.recording.frames()
    assert {f.connection_id for f in frames} == {"c1"}
    assert [(f.direction, f.type) for f in frames] == [
        ("in", "command"),
        ("out", "command_response"),
        ("in", "user_message"),
        ("out", "agent_response_start"),
        *[("out", "agent_response")] * 4,
        ("out", "agent_response_end"),
        ("in", None),
        ("out", None),
    ]
    assert [(f.direction, f.close_code) for f in closes] == [("in", 1000), ("out", 1000)]


def test_turns_of_one_agent_run_one_at_a_time_and_in_order(server: LabServer, gate: Gate) -> None:
    with open_client(server.url) as ws:
        agent_id = create(ws)
        for n in range(20):  # all sent before the first answer is read
            ws.send(json.dumps(protocol.user_message(f"m{n}", agent_id, request_id=n)))
        turns = [until_end(ws) for _ in range(20)]
    assert [t[0]["request_id"] for t in turns] == list(range(20))
    assert [t[0]["turn_id"] for t in turns] == list(range(1, 21))
    assert [t[3]["message"] for t in turns] == [f"echo: m{n}" for n in range(20)]
    seqs = [f["seq"] for t in turns for f in t]
    assert seqs == list(range(2, 2 + 6 * 20))
    assert gate.agents[0].overlapped is False


def test_a_long_turn_does_not_block_pings_commands_or_other_agents(
    server: LabServer, gate: Gate
) -> None:
    with open_client(server.url) as slow_ws, open_client(server.url) as fast_ws:
        slow = create(slow_ws, block=True)
        slow_ws.send(json.dumps(protocol.user_message("wait", slow)))
        assert recv(slow_ws)["type"] == "agent_response_start"
        assert recv(slow_ws)["message"] == "thinking about wait"
        assert gate.started.wait(TIMEOUT)
        # The agent is mid-turn on a worker thread; the loop keeps serving.
        assert slow_ws.ping().wait(TIMEOUT)
        listed = ask(slow_ws, protocol.command("list_agents"))
        assert [a["id"] for a in listed["agents"]] == [slow]
        fast = create(fast_ws)
        assert talk(fast_ws, fast, "quick")[-1]["type"] == "agent_response_end"
        gate.release.set()
        rest = until_end(slow_ws)
    assert [f.get("message_type") for f in rest] == [
        "function_message",
        "assistant_message",
        "function_message",
        None,
    ]


def test_a_sender_gets_its_turn_even_if_it_detached_while_waiting(
    server: LabServer, gate: Gate
) -> None:
    with open_client(server.url) as owner, open_client(server.url) as guest:
        guest_hello = hello(guest)
        agent = create(owner, block=True)
        owner.send(json.dumps(protocol.user_message("first", agent)))
        assert recv(owner)["type"] == "agent_response_start"
        assert gate.started.wait(TIMEOUT)
        # Attached from the next turn on: its own, which it then leaves before it starts.
        assert ask(guest, protocol.command("attach", agent_id=agent))["status"].startswith("OK")
        guest.send(json.dumps(protocol.user_message("second", agent)))  # waits its turn
        detached = ask(guest, protocol.command("detach", agent_id=agent))
        assert detached["status"] == f"OK: detached from agent {detached['agent_name']}"
        gate.release.set()
        turn = until_end(guest)
    assert turn[0]["type"] == "agent_response_start"
    assert turn[0]["requested_by"] == guest_hello["connection_id"]
    assert [f.get("message") for f in turn[1:-1]][-2] == "echo: second"


def test_frames_go_to_the_agents_clients_only(server: LabServer) -> None:
    with (
        open_client(server.url) as a_ws,
        open_client(server.url) as b_ws,
        open_client(server.url) as watcher,
    ):
        a = create(a_ws)
        b = create(b_ws)
        attached = ask(watcher, protocol.command("attach", agent_id=a))
        assert attached["status"] == "OK: attached to agent agent_1"
        a_turn = talk(a_ws, a, "for a")
        b_turn = talk(b_ws, b, "for b")
        watched = until_end(watcher)
        # b_ws never saw a's turn, nor the watcher b's: the next frame each gets is fresh.
        assert ask(b_ws, protocol.command("list_agents"))["type"] == "command_response"
        assert ask(watcher, protocol.command("detach", agent_id=a))["status"].startswith("OK")
        talk(a_ws, a, "after detach")
        assert ask(watcher, protocol.command("list_agents"))["type"] == "command_response"
    assert {f["agent_id"] for f in a_turn} == {a}
    assert {f["agent_id"] for f in b_turn} == {b}
    strip = [{k: v for k, v in f.items() if k != "seq"} for f in watched]
    assert strip == [{k: v for k, v in f.items() if k != "seq"} for f in a_turn]


def test_neither_sending_nor_creating_attaches(server: LabServer) -> None:
    with open_client(server.url) as owner, open_client(server.url) as guest:
        agent_id = create(owner)
        guest_turn = talk(guest, agent_id, "from the guest", request_id="g")
        owner_turn = talk(owner, agent_id, "from the owner", request_id="o")
        # Each saw its own turn only: the next frame each gets answers its next request.
        assert ask(owner, protocol.command("list_agents"))["type"] == "command_response"
        assert ask(guest, protocol.command("list_agents"))["type"] == "command_response"
    assert {f.get("request_id") for f in guest_turn} == {"g", None}
    assert {f.get("request_id") for f in owner_turn} == {"o", None}
    assert [f["turn_id"] for f in (guest_turn[0], owner_turn[0])] == [1, 2]


def test_agents_are_addressed_by_id_or_name_and_named_agent_n_by_default(
    server: LabServer,
) -> None:
    with open_client(server.url) as ws:
        first = ask(ws, protocol.command("create_agent", {}))
        named = ask(ws, protocol.command("create_agent", {"name": "sam"}))
        second = ask(ws, protocol.command("create_agent", {}))
        taken = ask(ws, protocol.command("create_agent", {"name": "sam"}))
        by_name = talk(ws, "sam", "hi")
        by_id = talk(ws, named["agent_id"], "again")
        memory = ask(ws, protocol.command("get_memory", agent_id="sam"))
        listed = ask(ws, protocol.command("list_agents"))
    assert [first["agent_name"], named["agent_name"], second["agent_name"]] == [
        "agent_1",
        "sam",
        "agent_2",
    ]
    assert taken["status"] == "Error: Failed to init agent - an agent named 'sam' already exists"
    assert taken["error_code"] == "name_taken"
    assert {f["agent_id"] for f in by_name + by_id} == {named["agent_id"]}
    assert [by_name[0]["turn_id"], by_id[0]["turn_id"]] == [1, 2]
    assert memory["memory"]["messages"] == ["hi", "again"]
    assert [(a["name"], a["turns"]) for a in listed["agents"]] == [
        ("agent_1", 0),
        ("sam", 2),
        ("agent_2", 0),
    ]


def test_agents_given_at_start_exist_before_the_first_client(gate: Gate) -> None:
    with (
        LabServer(agent_factory=gate.factory, agents=[{"name": "agent_26", "id": "a26"}]) as server,
        open_client(server.url) as ws,
    ):
        frames = talk(ws, "agent_26", "hello")
    assert {f["agent_id"] for f in frames} == {"a26"}
    assert list(server.agents) == ["a26"]


def test_a_start_up_agent_that_cannot_be_made_stops_the_start(gate: Gate) -> None:
    server = LabServer(agent_factory=gate.factory, agents=[{"name": "x", "bad": True}])
    with pytest.raises(LabError, match=r"could not create agent 1 \(x\): config 'bad'"):
        server.start()
    assert not server.running


def test_create_agent_reports_what_it_ignored_and_the_model_used(server: LabServer) -> None:
    config = {
        "persona": "sam_pov",
        "human": "cs_phd",
        "model": "gpt-4-1106-preview",
        "llm_config": {"model": "gpt-4", "model_endpoint": "https://api.openai.com/v1"},
        "embedding_config": {"embedding_model": "text-embedding-ada-002"},
    }
    with open_client(server.url) as ws:
        answer = ask(ws, protocol.command("create_agent", config))
    assert answer["status"] == "OK: Agent initialized"
    assert answer["model"] == "scripted"
    assert answer["model_requested"] == "gpt-4-1106-preview"
    assert "model policy" in answer["note"]
    # A custom factory reads what it likes: only what the server itself set aside is listed.
    assert answer["ignored"] == ["llm_config.model_endpoint", "embedding_config"]


def test_delete_agent_frees_its_name(server: LabServer) -> None:
    with open_client(server.url) as ws:
        create(ws, name="temp")
        deleted = ask(ws, protocol.command("delete_agent", agent_id="temp"))
        again = ask(ws, protocol.command("create_agent", {"name": "temp"}))
        gone = ask(ws, protocol.command("get_memory", agent_id=deleted["agent_id"]))
    assert deleted["status"] == "OK: Agent deleted"
    assert again["status"] == "OK: Agent initialized"
    assert again["agent_id"] != deleted["agent_id"]
    assert gone["error_code"] == "unknown_agent"


def test_a_failing_turn_is_still_bracketed(server: LabServer) -> None:
    with open_client(server.url) as ws:
        agent_id = create(ws, fail=True)
        frames = talk(ws, agent_id, "boom")
        assert [f["type"] for f in frames] == [
            "agent_response_start",
            "agent_response",
            "agent_response_error",
            "agent_response_end",
        ]
        assert frames[2]["message"] == "the turn failed: RuntimeError: the model is on fire"
        assert frames[2]["error_code"] == "turn_failed"
        assert frames[2]["turn_id"] == 1
        assert talk(ws, agent_id, "again")[0]["turn_id"] == 2  # the agent is still served


def test_get_memory_answers_the_agents_snapshot(server: LabServer) -> None:
    with open_client(server.url) as ws:
        agent_id = create(ws)
        talk(ws, agent_id, "remember me")
        answer = ask(ws, protocol.command("get_memory", agent_id=agent_id, request_id=3))
    assert answer["status"] == "OK: memory of agent agent_1"
    assert answer["memory"] == {"id": agent_id, "messages": ["remember me"]}
    assert answer["request_id"] == 3


def test_the_default_factory_hosts_the_real_offline_agent() -> None:
    with LabServer() as server, open_client(server.url) as ws:
        agent_id = create(ws, persona="sam_pov", human="basic", name="sam")
        frames = talk(ws, agent_id, "Hello, my name is Ann.")
        memory = ask(ws, protocol.command("get_memory", agent_id=agent_id))["memory"]
        bad = ask(ws, protocol.command("create_agent", {"persona": "nobody"}))
        odd = ask(ws, protocol.command("create_agent", {"colour": "red", "user_id": 7}))
    said = [f["message"] for f in frames if f.get("message_type") == "assistant_message"]
    assert said and "Ann" in said[-1]
    assert "Ann" in memory["core_memory"]["human"]
    assert bad["status"].startswith(
        "Error: Failed to init agent - unknown persona 'nobody'; available: "
    )
    assert bad["error_code"] == "unknown_name"
    # Keys the default factory does not read are ignored, not refused, and said so.
    assert odd["status"] == "OK: Agent initialized"
    assert odd["ignored"] == ["colour", "user_id"]


def test_a_turns_frames_reach_the_socket_in_one_write() -> None:
    # The offline agent steps on the loop thread, so all of a turn's frames are queued
    # before the writer runs: one transport write (one system call) for the lot.
    with LabServer() as server, open_client(server.url) as ws:
        agent_id = create(ws)
        (connection,) = server._core.connections.values()
        transport = connection.ws.transport
        writes: list[bytes] = []
        write = transport.write

        def counting(data: bytes) -> None:
            writes.append(bytes(data))
            write(data)

        transport.write = counting  # type: ignore[method-assign]
        frames = talk(ws, agent_id, "hello there")
        ask(ws, protocol.command("list_agents"))
        written = len(writes)  # before the close handshake writes again
    assert [f["seq"] for f in frames] == list(range(frames[0]["seq"], frames[-1]["seq"] + 1))
    assert len(frames) >= 5
    assert written == 2  # the turn, then the answer to list_agents


@pytest.mark.parametrize(
    ("policy", "asked", "model"),
    [
        ("scripted", "gpt-4-1106-preview", "scripted"),
        ("ollama:llama3.1", "gpt-4-1106-preview", "ollama:llama3.1"),
        ("as-requested", "gpt-4-1106-preview", "openai:gpt-4-1106-preview"),
        ("as-requested", "ollama:llama3.1", "ollama:llama3.1"),
        ("as-requested", None, "scripted"),
    ],
)
def test_the_model_policy_decides_the_model(policy: str, asked: str | None, model: str) -> None:
    config = {} if asked is None else {"model": asked}
    with LabServer(model=policy) as server, open_client(server.url) as ws:
        answer = ask(ws, protocol.command("create_agent", config))
    assert answer["status"] == "OK: Agent initialized", answer
    assert answer["model"] == model
    assert ("note" in answer) == (policy != "as-requested" and asked is not None)


@pytest.mark.parametrize(
    ("asked", "says"),
    [
        ("replay:/etc/passwd", "would read a file on the server"),
        ("cassette:/tmp/x.jsonl", "would read a file on the server"),
        ("ollama:llama3.1@http://169.254.169.254/v1", "base URL is not accepted"),
        ("nowhere:model", "unknown provider 'nowhere'"),
    ],
)
def test_as_requested_never_reads_files_or_picks_endpoints(asked: str, says: str) -> None:
    with LabServer(model="as-requested") as server, open_client(server.url) as ws:
        answer = ask(ws, protocol.command("create_agent", {"model": asked}))
    assert answer["status"].startswith("Error: Failed to init agent - ")
    assert says in answer["status"]


def test_an_unknown_model_policy_is_refused_at_construction() -> None:
    with pytest.raises(UnknownNameError, match="unknown model 'gpt-9'"):
        LabServer(model="gpt-9")


# --------------------------------------------------------------------------- bad input


BAD_FRAMES = [
    # What MemGPT answered: the same frame type.
    ("not json", "command_response", "Error: bad data from client - not json", "bad_json"),
    ("{}", "command_response", "Error: bad data from client - {}", "no_type"),
    ("[1, 2]", "command_response", "Error: bad data from client - [1, 2]", "bad_frame"),
    ('"text"', "command_response", "Error: bad data from client - text", "bad_frame"),
    (
        '{"type": 5}',
        "server_error",
        "unrecognized client package data type: {'type': 5}",
        "unknown_type",
    ),
    (
        '{"type": "shout"}',
        "server_error",
        "unrecognized client package data type: {'type': 'shout'}",
        "unknown_type",
    ),
    (
        '{"type": "command", "command": "fly"}',
        "server_error",
        "unrecognized client command type: {'type': 'command', 'command': 'fly'}",
        "unknown_command",
    ),
    (
        '{"type": "command", "command": 1}',
        "server_error",
        "unrecognized client command type: {'type': 'command', 'command': 1}",
        "unknown_command",
    ),
    (
        '{"type": "user_message", "message": "hi"}',
        "agent_response_error",
        "agent_name was not specified in the request",
        "no_agent",
    ),
    (
        '{"type": "user_message", "message": "hi", "agent_id": null}',
        "agent_response_error",
        "agent_name was not specified in the request",
        "no_agent",
    ),
    # Where MemGPT crashed: this server's own answer.
    (
        '{"type": "command"}',
        "command_response",
        "Error: a command frame needs a 'command'",
        "bad_frame",
    ),
    (
        '{"type": "command", "command": "get_memory"}',
        "command_response",
        "Error: get_memory needs an 'agent_id' string",
        "bad_frame",
    ),
    (
        '{"type": "command", "command": "get_memory", "agent_id": "nope"}',
        "command_response",
        "Error: unknown agent 'nope'",
        "unknown_agent",
    ),
    (
        '{"type": "command", "command": "create_agent", "config": []}',
        "command_response",
        "Error: Failed to init agent - 'config' must be a JSON object, not an array",
        "bad_config",
    ),
    (
        '{"type": "command", "command": "create_agent", "config": {"bad": 1}}',
        "command_response",
        "Error: Failed to init agent - config 'bad' is not allowed",
        "bad_config",
    ),
    (
        '{"type": "command", "command": "resume", "agent_id": "x", "after_turn": -1}',
        "command_response",
        "Error: unknown agent 'x'",
        "unknown_agent",
    ),
    (
        '{"type": "user_message", "agent_id": "ghost"}',
        "agent_response_error",
        "user_message needs a 'message' field",
        "bad_frame",
    ),
    (
        '{"type": "command", "command": "list_agents", "request_id": [1]}',
        "command_response",
        "Error: 'request_id' must be a string",
        "bad_frame",
    ),
    (
        b"\xff\xfe not utf-8",
        "command_response",
        "Error: bad data from client - \ufffd\ufffd not utf-8",
        "invalid_unicode",
    ),
]


@pytest.mark.parametrize(("sent", "answer_type", "says", "code"), BAD_FRAMES)
def test_bad_input_gets_memgpts_frame_type_a_code_and_the_connection_keeps_serving(
    server: LabServer, sent: str | bytes, answer_type: str, says: str, code: str
) -> None:
    with open_client(server.url) as ws:
        answer = ask(ws, sent)
        assert answer["type"] == answer_type
        text = answer["status"] if answer_type == "command_response" else answer["message"]
        assert text.startswith(says), text
        assert answer["error_code"] == code
        agent_id = create(ws)
        assert talk(ws, agent_id, "still here")[-1]["type"] == "agent_response_end"


TURN_REFUSALS = [
    ({"message": "hi", "agent_id": "ghost"}, "unknown agent 'ghost'; agents: ", "unknown_agent"),
    ({"message": "hi", "agent_id": ""}, "unknown agent ''; agents: ", "unknown_agent"),
    ({"message": "", "agent_id": "ghost"}, "Invalid input: ''", "invalid_input"),
    ({"message": "/memory", "agent_id": "ghost"}, "Invalid input: '/memory'", "invalid_input"),
    ({"message": 42, "agent_id": "ghost"}, "Invalid input: '42'", "invalid_input"),
]


@pytest.mark.parametrize(("fields", "says", "code"), TURN_REFUSALS)
def test_a_message_memgpt_refused_gets_start_error_end(
    server: LabServer, fields: dict[str, Any], says: str, code: str
) -> None:
    with open_client(server.url) as ws:
        create(ws, name="real")
        ws.send(json.dumps({"type": "user_message", **fields, "request_id": "q"}))
        frames = until_end(ws)
    agent = {"agent_id": fields["agent_id"]}
    assert [f["type"] for f in frames] == [
        "agent_response_start",
        "agent_response_error",
        "agent_response_end",
    ]
    assert frames[0] == {"type": "agent_response_start", **agent, "request_id": "q", "seq": 2}
    assert frames[1]["message"].startswith(says)
    assert frames[1]["error_code"] == code
    assert frames[2] == {"type": "agent_response_end", **agent, "request_id": "q", "seq": 4}


def test_a_binary_frame_holding_json_is_read_like_text(server: LabServer) -> None:
    with open_client(server.url) as ws:
        answer = ask(ws, json.dumps(protocol.command("create_agent", {"name": "b"})).encode())
        ws.send(json.dumps(protocol.user_message("über", "b")).encode())
        frames = until_end(ws)
    assert answer["status"] == "OK: Agent initialized"
    assert frames[3]["message"] == "echo: über"


def test_a_frame_over_the_size_limit_closes_with_1009_and_others_are_unaffected(
    gate: Gate,
) -> None:
    with (
        LabServer(agent_factory=gate.factory, max_size=1024) as server,
        open_client(server.url) as big,
        open_client(server.url) as other,
    ):
        big.send(json.dumps(protocol.user_message("x" * 2000, "a")))
        with pytest.raises(ConnectionClosed) as closed:
            big.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert talk(other, create(other), "fine")[-1]["type"] == "agent_response_end"


#: All of Unicode, lone surrogates drawn often: inside JSON they travel as "\ud800" escapes.
ANY_TEXT = st.text(
    st.one_of(st.characters(exclude_categories=()), st.integers(0xD800, 0xDFFF).map(chr)),
    max_size=40,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)
PLAUSIBLE = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["command", "user_message", "hello", ""]) | JSON_VALUES,
        "command": st.sampled_from([*COMMANDS, "nope"]) | JSON_VALUES,
        "agent_id": st.sampled_from(["ghost", "", "sam"]) | JSON_VALUES,
        "message": ANY_TEXT | JSON_VALUES,
        "config": JSON_VALUES,
        "request_id": JSON_VALUES,
    },
)
RANDOM_FRAMES = (
    st.text(max_size=200)  # a text frame cannot carry a lone surrogate: the JSON ones below do
    | st.binary(max_size=64)
    | JSON_VALUES.map(json.dumps)
    | PLAUSIBLE.map(json.dumps)
    # a message of any text to the real agent, which echoes it back
    | ANY_TEXT.map(lambda text: json.dumps(protocol.user_message(text, "sam")))
)
PROBES = itertools.count(1)
ANSWER_TYPES = {
    "server_error",
    "command_response",
    "agent_response_error",
    "agent_response_start",
    "hello",
}


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[tuple[LabServer, ClientConnection]]:
    # A real agent ("sam", the offline model) answers what reaches it, echoing the text.
    with LabServer(agents=[{"name": "sam"}]) as server, open_client(server.url) as ws:
        yield server, ws


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sent=RANDOM_FRAMES)
def test_random_frames_are_each_answered_and_never_break_the_server(
    fuzz_target: tuple[LabServer, ClientConnection], sent: str | bytes
) -> None:
    _, ws = fuzz_target
    probe = f"probe-{next(PROBES)}"  # nothing random spells this
    ws.send(sent)
    # A well-formed request right behind it: its answer must come, after the first answer.
    ws.send(json.dumps(protocol.command("list_agents", request_id=probe)))
    before = []  # what answered the random frame, before the probe's answer
    while (frame := recv(ws)).get("request_id") != probe:
        before.append(frame)
    assert frame["status"].startswith("OK: ")
    if not before:
        # Only work done by an agent's queue may be answered after the probe (list_agents is
        # answered at once): creating an agent, or a turn the real agent ran.
        later = recv(ws)
        if later["type"] == "agent_response_start":
            before = [later]
            while before[-1]["type"] != "agent_response_end":
                before.append(recv(ws))
        else:
            assert later["type"] == "command_response"
            assert later.get("command") == "create_agent"
            return
    assert before[0]["type"] in ANSWER_TYPES, before
    if before[0]["type"] == "agent_response_start":  # a turn: refused, or run by the agent
        types = [f["type"] for f in before]
        assert types[-1] == "agent_response_end", types
        assert set(types[1:-1]) <= {"agent_response", "agent_response_error"}, types
    else:
        assert len(before) == 1, before


# --------------------------------------------------------------------------- safety


def test_origin_rules() -> None:
    assert origin_allowed(None)
    for ok in (
        "http://localhost:8888",
        "http://127.0.0.1:1",
        "https://[::1]:9",
        "http://localhost",
    ):
        assert origin_allowed(ok), ok
    for bad in ("http://evil.test", "http://localhost.evil.test:80", "null", "http://127.0.0.2"):
        assert not origin_allowed(bad), bad
    assert origin_allowed("https://app.example", ["https://app.example"])
    assert not origin_allowed("http://localhost:1", ["https://app.example"])
    assert origin_allowed("http://anything", ["*"])


def test_browser_origins_are_checked_at_the_handshake(server: LabServer) -> None:
    with open_client(server.url, origin="http://localhost:8888") as ws:
        hello(ws)
    with pytest.raises(InvalidStatus) as refused:
        connect(server.url, origin="http://evil.test", open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 403
    assert server.rejections == [(403, "origin 'http://evil.test' is not allowed")]


def test_a_token_is_required_when_set(gate: Gate) -> None:
    with LabServer(agent_factory=gate.factory, token="s3cret") as server:
        for url, headers in [
            (server.url, None),
            (server.url + "?token=wrong", None),
            (server.url, {"Authorization": "Bearer nope"}),
        ]:
            with pytest.raises(InvalidStatus) as refused:
                connect(url, additional_headers=headers, open_timeout=TIMEOUT)
            assert refused.value.response.status_code == 401
        for url, headers in [
            (server.url + "?token=s3cret", None),
            (server.url, {"Authorization": "Bearer s3cret"}),
        ]:
            with open_client(url, additional_headers=headers) as ws:
                hello(ws)
        assert [r[0] for r in server.rejections] == [401, 401, 401]
        assert "token is required" in server.rejections[0][1]


def test_binding_beyond_loopback_needs_a_token() -> None:
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
        with pytest.raises(ValueError, match="without a token"):
            LabServer(host)
    LabServer("localhost")  # loopback: fine without a token, and not started
    LabServer("0.0.0.0", token="t")  # a token makes it acceptable (not started here)


# --------------------------------------------------------------------------- shutdown


def test_stop_finishes_running_turns_then_closes_with_1001(gate: Gate) -> None:
    server = LabServer(agent_factory=gate.factory, grace=TIMEOUT).start()
    with open_client(server.url) as ws:
        agent_id = create(ws, block=True)
        ws.send(json.dumps(protocol.user_message("slow", agent_id)))
        head = [recv(ws), recv(ws)]  # start, and the monologue before the agent blocks
        assert gate.started.wait(TIMEOUT)
        stopper = threading.Thread(target=server.stop, daemon=True)
        stopper.start()
        assert server.stopping.wait(TIMEOUT)
        refused = ask(ws, protocol.command("list_agents"))
        gate.release.set()
        frames = until_end(ws)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=TIMEOUT)
        stopper.join()
    assert refused["status"] == "Error: the server is shutting down"
    assert refused["error_code"] == "shutting_down"
    assert [f["type"] for f in head + frames] == [
        "agent_response_start",
        *["agent_response"] * 4,
        "agent_response_end",
    ]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_stop_aborts_turns_that_outlive_the_grace_period(gate: Gate) -> None:
    server = LabServer(agent_factory=gate.factory).start()
    with open_client(server.url) as ws:
        agent_id = create(ws, block=True)
        ws.send(json.dumps(protocol.user_message("stuck", agent_id)))
        assert gate.started.wait(TIMEOUT)
        server.stop(grace=0)
        frames = until_end(ws)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=TIMEOUT)
    gate.release.set()
    assert [f["type"] for f in frames] == [
        "agent_response_start",
        "agent_response",
        "agent_response_error",
        "agent_response_end",
    ]
    assert frames[2]["error_code"] == "aborted"
    assert frames[3]["turn_id"] == frames[0]["turn_id"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_serve_forever_serves_until_interrupted_then_closes_with_1001() -> None:
    code = (
        "from memgpt_lab.ws.server import serve_forever\n"
        "serve_forever(port=0, agent_factory=lambda config, interface: None)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("memgpt-lab serving on ws://127.0.0.1:"), line
        url = line.split()[3]
        with open_client(url) as ws:
            assert ask(ws, protocol.command("list_agents"))["agents"] == []
            proc.send_signal(signal.SIGINT)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=TIMEOUT)
        assert proc.wait(TIMEOUT) == 0
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    finally:
        proc.kill()
        proc.communicate()


def test_attaching_mid_turn_takes_effect_at_the_next_turn(server: LabServer, gate: Gate) -> None:
    with open_client(server.url) as owner, open_client(server.url) as late:
        agent_id = create(owner, block=True)
        owner.send(json.dumps(protocol.user_message("first", agent_id)))
        assert gate.started.wait(TIMEOUT)
        assert ask(late, protocol.command("attach", agent_id=agent_id))["status"].startswith("OK")
        gate.release.set()
        assert until_end(owner)[-1]["turn_id"] == 1
        talk(owner, agent_id, "second")
        seen = until_end(late)
    # The late joiner never got the tail of turn 1: its first turn frame is turn 2's start.
    assert seen[0]["type"] == "agent_response_start"
    assert {f["turn_id"] for f in seen} == {2}


@pytest.mark.parametrize(
    ("workers", "thread"), [(0, "memgpt_lab server"), (None, "memgpt_lab-agent")]
)
def test_turns_run_on_the_loop_thread_with_no_workers_else_on_a_worker(
    gate: Gate, workers: int | None, thread: str
) -> None:
    threads = []

    def factory(config: dict[str, Any], interface: AgentInterface) -> FakeAgent:
        agent = gate.factory(config, interface)
        turn = agent.turn

        def recording_turn(message: str) -> None:
            threads.append(threading.current_thread().name)
            turn(message)

        agent.turn = recording_turn  # type: ignore[method-assign]
        return agent

    with (
        LabServer(agent_factory=factory, max_workers=workers) as server,
        open_client(server.url) as ws,
    ):
        agents = [create(ws), create(ws)]
        for agent_id in agents * 2:
            assert talk(ws, agent_id, "hi")[-1]["type"] == "agent_response_end"
    assert len(threads) == 4
    assert all(name.startswith(thread) for name in threads), threads
