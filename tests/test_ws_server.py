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

from memgpt_lab.interface import AgentInterface
from memgpt_lab.recorder import Recording
from memgpt_lab.ws import protocol
from memgpt_lab.ws.server import LabServer, origin_allowed

TIMEOUT = 10


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


class Gate:
    """Lets a test hold a blocking FakeAgent mid-turn and release it."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.agents: list[FakeAgent] = []

    def factory(self, config: dict[str, Any], interface: AgentInterface) -> FakeAgent:
        if config.get("bad"):
            raise ValueError("config 'bad' is not allowed")
        agent = FakeAgent(config, interface, self)
        self.agents.append(agent)
        return agent


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.release.set()  # never leave a worker thread waiting


@pytest.fixture
def server(gate: Gate) -> Iterator[LabServer]:
    with LabServer(agent_factory=gate.factory, grace=5) as server:
        yield server


def recv(ws: ClientConnection) -> dict[str, Any]:
    frame = json.loads(ws.recv(timeout=TIMEOUT))
    assert isinstance(frame, dict)
    return frame


def open_client(url: str, **kwargs: Any) -> tuple[ClientConnection, dict[str, Any]]:
    ws = connect(url, open_timeout=TIMEOUT, legacy=True, **kwargs)
    return ws, recv(ws)


def ask(ws: ClientConnection, frame: dict[str, Any] | str | bytes) -> dict[str, Any]:
    ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))
    return recv(ws)


def create(ws: ClientConnection, **config: Any) -> str:
    answer = ask(ws, protocol.command("create_agent", config))
    assert answer["status"] == "OK", answer
    return str(answer["agent_id"])


def until_end(ws: ClientConnection) -> list[dict[str, Any]]:
    frames = [recv(ws)]
    while frames[-1]["type"] != "agent_response_end":
        frames.append(recv(ws))
    return frames


def talk(ws: ClientConnection, agent_id: str, message: str, **extra: Any) -> list[dict[str, Any]]:
    ws.send(json.dumps(protocol.user_message(message, agent_id, **extra)))
    return until_end(ws)


# --------------------------------------------------------------------------- the protocol


def test_hello_then_create_agent_then_a_whole_turn(server: LabServer) -> None:
    ws, hello = open_client(server.url)
    with ws:
        assert hello == {
            "seq": 1,
            "type": "hello",
            "protocol_version": protocol.PROTOCOL_VERSION,
            "server": "memgpt_lab",
            "connection_id": "c1",
            "commands": list(protocol.COMMANDS),
        }
        answer = ask(ws, protocol.command("create_agent", {"name": "echo"}, request_id="r1"))
        agent_id = answer["agent_id"]
        assert answer == {
            "seq": 2,
            "type": "command_response",
            "status": "OK",
            "message": f"created agent {agent_id}",
            "command": "create_agent",
            "agent_id": agent_id,
            "agent": {"id": agent_id, "name": "echo", "turns": 0},
            "request_id": "r1",
        }
        frames = talk(ws, agent_id, "hi", request_id=7)
    turn = {"agent_id": agent_id, "turn_id": 1}
    assert frames == [
        {"seq": 3, "type": "agent_response_start", **turn, "request_id": 7, "requested_by": "c1"},
        {"seq": 4, **protocol.agent_response("internal_monologue", "thinking about hi"), **turn},
        {"seq": 5, **protocol.agent_response("function_message", "Running send_message('hi')")}
        | turn,
        {"seq": 6, **protocol.agent_response("assistant_message", "echo: hi"), **turn},
        {"seq": 7, **protocol.agent_response("function_message", "Success: None"), **turn},
        {"seq": 8, "type": "agent_response_end", **turn, "request_id": 7, "requested_by": "c1"},
    ]


def test_a_given_empty_recording_is_the_one_recorded_into(gate: Gate) -> None:
    recording = Recording()  # empty, so falsy: it must still be used
    with LabServer(agent_factory=gate.factory, recording=recording) as server:
        ws, hello = open_client(server.url)
        ws.close()
    assert server.recording is recording
    assert recording[0].json == hello  # recorded before it was sent


def test_the_recording_holds_both_directions_and_the_close_handshake(server: LabServer) -> None:
    ws, _ = open_client(server.url)
    with ws:
        agent_id = create(ws)
        talk(ws, agent_id, "hi")
    assert server.recording is not None
    server.recording.wait_for({"type": "agent_response_end"})
    closes = server.recording.wait_for(lambda f: f.opcode == "close", count=2)
    frames = server.recording.frames()
    assert {f.connection_id for f in frames} == {"c1"}
    assert [(f.direction, f.type) for f in frames] == [
        ("out", "hello"),
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
    ws, _ = open_client(server.url)
    with ws:
        agent_id = create(ws)
        for n in range(20):  # all sent before the first answer is read
            ws.send(json.dumps(protocol.user_message(f"m{n}", agent_id, request_id=n)))
        turns = [until_end(ws) for _ in range(20)]
    assert [t[0]["request_id"] for t in turns] == list(range(20))
    assert [t[0]["turn_id"] for t in turns] == list(range(1, 21))
    assert [t[3]["message"] for t in turns] == [f"echo: m{n}" for n in range(20)]
    seqs = [f["seq"] for t in turns for f in t]
    assert seqs == list(range(3, 3 + 6 * 20))
    assert gate.agents[0].overlapped is False


def test_a_long_turn_does_not_block_pings_commands_or_other_agents(
    server: LabServer, gate: Gate
) -> None:
    slow_ws, _ = open_client(server.url)
    fast_ws, _ = open_client(server.url)
    with slow_ws, fast_ws:
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
    owner, _ = open_client(server.url)
    guest, guest_hello = open_client(server.url)
    with owner, guest:
        agent = create(owner, block=True)
        owner.send(json.dumps(protocol.user_message("first", agent)))
        assert recv(owner)["type"] == "agent_response_start"
        assert gate.started.wait(TIMEOUT)
        guest.send(json.dumps(protocol.user_message("second", agent)))  # waits its turn
        assert ask(guest, protocol.command("detach", agent_id=agent))["status"] == "OK"
        gate.release.set()
        turn = until_end(guest)
    assert turn[0]["type"] == "agent_response_start"
    assert turn[0]["requested_by"] == guest_hello["connection_id"]
    assert [f.get("message") for f in turn[1:-1]][-2] == "echo: second"


def test_frames_go_to_the_agents_clients_only(server: LabServer) -> None:
    a_ws, _ = open_client(server.url)
    b_ws, _ = open_client(server.url)
    watcher, _ = open_client(server.url)
    with a_ws, b_ws, watcher:
        a = create(a_ws)
        b = create(b_ws)
        attached = ask(watcher, protocol.command("attach", agent_id=a))
        assert attached["status"] == "OK"
        a_turn = talk(a_ws, a, "for a")
        b_turn = talk(b_ws, b, "for b")
        watched = until_end(watcher)
        # b_ws never saw a's turn, nor the watcher b's: the next frame each gets is fresh.
        assert ask(b_ws, protocol.command("list_agents"))["type"] == "command_response"
        assert ask(watcher, protocol.command("detach", agent_id=a))["status"] == "OK"
        talk(a_ws, a, "after detach")
        assert ask(watcher, protocol.command("list_agents"))["type"] == "command_response"
    assert {f["agent_id"] for f in a_turn} == {a}
    assert {f["agent_id"] for f in b_turn} == {b}
    strip = [{k: v for k, v in f.items() if k != "seq"} for f in watched]
    assert strip == [{k: v for k, v in f.items() if k != "seq"} for f in a_turn]


def test_a_sender_is_attached_to_the_agent_it_talks_to(server: LabServer) -> None:
    owner, _ = open_client(server.url)
    guest, _ = open_client(server.url)
    with owner, guest:
        agent_id = create(owner)
        guest_turn = talk(guest, agent_id, "from the guest", request_id="g")
        owner_view = until_end(owner)
    assert guest_turn[0]["request_id"] == owner_view[0]["request_id"] == "g"
    assert [f["type"] for f in owner_view] == [f["type"] for f in guest_turn]


def test_a_failing_turn_is_still_bracketed(server: LabServer) -> None:
    ws, _ = open_client(server.url)
    with ws:
        agent_id = create(ws, fail=True)
        frames = talk(ws, agent_id, "boom")
        assert [f["type"] for f in frames] == [
            "agent_response_start",
            "agent_response",
            "agent_response_error",
            "agent_response_end",
        ]
        assert frames[2]["message"] == "the turn failed: RuntimeError: the model is on fire"
        assert frames[2]["turn_id"] == 1
        assert talk(ws, agent_id, "again")[0]["turn_id"] == 2  # the agent is still served


def test_get_memory_answers_the_agents_snapshot(server: LabServer) -> None:
    ws, _ = open_client(server.url)
    with ws:
        agent_id = create(ws)
        talk(ws, agent_id, "remember me")
        answer = ask(ws, protocol.command("get_memory", agent_id=agent_id, request_id=3))
    assert answer["status"] == "OK"
    assert answer["memory"] == {"id": agent_id, "messages": ["remember me"]}
    assert answer["request_id"] == 3


def test_the_default_factory_hosts_the_real_offline_agent() -> None:
    with LabServer() as server:
        ws, _ = open_client(server.url)
        with ws:
            agent_id = create(ws, persona="sam_pov", human="basic", name="sam")
            frames = talk(ws, agent_id, "Hello, my name is Ann.")
            memory = ask(ws, protocol.command("get_memory", agent_id=agent_id))["memory"]
            bad = ask(ws, protocol.command("create_agent", {"persona": "nobody"}))
    said = [f["message"] for f in frames if f.get("message_type") == "assistant_message"]
    assert said and "Ann" in said[-1]
    assert "Ann" in memory["core_memory"]["human"]
    assert bad["status"] == "error"
    assert "unknown persona 'nobody'" in bad["message"]


# --------------------------------------------------------------------------- bad input


BAD_FRAMES = [
    ("not json", "server_error", "not valid JSON"),
    ("[1, 2]", "server_error", "must be a JSON object"),
    ('"text"', "server_error", "must be a JSON object"),
    ("{}", "server_error", "no 'type' field"),
    ('{"type": 5}', "server_error", "'type' must be a string"),
    ('{"type": "shout"}', "server_error", "unknown frame type 'shout'"),
    ('{"type": "command"}', "command_response", "needs a 'command' string, not null"),
    ('{"type": "command", "command": 1}', "command_response", "not a number"),
    ('{"type": "command", "command": "fly"}', "command_response", "unknown command 'fly'"),
    ('{"type": "command", "command": "get_memory"}', "command_response", "'agent_id' field"),
    (
        '{"type": "command", "command": "get_memory", "agent_id": "nope"}',
        "command_response",
        "unknown agent_id 'nope'",
    ),
    (
        '{"type": "command", "command": "create_agent", "config": []}',
        "command_response",
        "'config' must be a JSON object, not an array",
    ),
    (
        '{"type": "command", "command": "create_agent", "config": {"bad": 1}}',
        "command_response",
        "create_agent failed: config 'bad' is not allowed",
    ),
    ('{"type": "user_message", "message": "hi"}', "agent_response_error", "'agent_id' field"),
    (
        '{"type": "user_message", "message": "hi", "agent_id": ""}',
        "agent_response_error",
        "'agent_id' is empty",
    ),
    (
        '{"type": "user_message", "message": "hi", "agent_id": "ghost"}',
        "agent_response_error",
        "unknown agent_id 'ghost'",
    ),
    (
        '{"type": "user_message", "message": 42, "agent_id": "ghost"}',
        "agent_response_error",
        "'message' must be a string, not a number",
    ),
    (
        '{"type": "command", "command": "list_agents", "request_id": [1]}',
        "command_response",
        "'request_id' must be a string or an integer",
    ),
    (b"\x00\x01binary", "server_error", "binary frames are not supported"),
]


@pytest.mark.parametrize(("sent", "answer_type", "says"), BAD_FRAMES)
def test_bad_input_gets_a_specific_error_and_the_connection_keeps_serving(
    server: LabServer, sent: str | bytes, answer_type: str, says: str
) -> None:
    ws, _ = open_client(server.url)
    with ws:
        answer = ask(ws, sent)
        assert answer["type"] == answer_type
        assert says in answer["message"]
        if answer_type == "command_response":
            assert answer["status"] == "error"
        agent_id = create(ws)
        assert talk(ws, agent_id, "still here")[-1]["type"] == "agent_response_end"


def test_a_frame_over_the_size_limit_closes_with_1009_and_others_are_unaffected(
    gate: Gate,
) -> None:
    with LabServer(agent_factory=gate.factory, max_size=1024) as server:
        big, _ = open_client(server.url)
        other, _ = open_client(server.url)
        with big, other:
            big.send(json.dumps(protocol.user_message("x" * 2000, "a")))
            with pytest.raises(ConnectionClosed) as closed:
                big.recv(timeout=TIMEOUT)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009
            assert talk(other, create(other), "fine")[-1]["type"] == "agent_response_end"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
PLAUSIBLE = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["command", "user_message", "hello", ""]) | JSON_VALUES,
        "command": st.sampled_from([*protocol.COMMANDS, "nope"]) | JSON_VALUES,
        "agent_id": st.sampled_from(["ghost", ""]) | JSON_VALUES,
        "message": JSON_VALUES,
        "config": JSON_VALUES,
        "request_id": JSON_VALUES,
    },
)
RANDOM_FRAMES = (
    st.text(max_size=200)
    | st.binary(max_size=64)
    | JSON_VALUES.map(json.dumps)
    | PLAUSIBLE.map(json.dumps)
)
PROBES = itertools.count(1)
ANSWER_TYPES = {
    "server_error",
    "command_response",
    "agent_response_error",
    "agent_response_start",
}


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[tuple[LabServer, ClientConnection, Gate]]:
    gate = Gate()
    with LabServer(agent_factory=gate.factory) as server:
        ws, _ = open_client(server.url)
        with ws:
            yield server, ws, gate


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sent=RANDOM_FRAMES)
def test_random_frames_are_each_answered_and_never_break_the_server(
    fuzz_target: tuple[LabServer, ClientConnection, Gate], sent: str | bytes
) -> None:
    _, ws, _ = fuzz_target
    probe = f"probe-{next(PROBES)}"  # nothing random spells this
    ws.send(sent)
    # A well-formed request right behind it: its answer must come, after the first answer.
    ws.send(json.dumps(protocol.command("list_agents", request_id=probe)))
    first = recv(ws)
    assert first["type"] in ANSWER_TYPES, first
    if first["type"] == "agent_response_start":  # the random frame happened to be a turn
        until = [first, *until_end(ws)]
        assert until[-1]["type"] == "agent_response_end"
        first = recv(ws)
    if first.get("request_id") == probe:
        # Only a frame that created an agent may be answered after the probe: creation runs
        # on a worker thread while list_agents is answered at once.
        later = recv(ws)
        assert later["type"] == "command_response"
        assert later.get("command") == "create_agent"
        return
    answer = recv(ws)
    assert answer["request_id"] == probe
    assert answer["status"] == "OK"


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
    ws, hello = open_client(server.url, origin="http://localhost:8888")
    ws.close()
    assert hello["type"] == "hello"
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
            ws, hello = open_client(url, additional_headers=headers)
            ws.close()
            assert hello["type"] == "hello"
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
    ws, _ = open_client(server.url)
    with ws:
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
    assert refused["status"] == "error"
    assert refused["message"] == "the server is shutting down"
    assert [f["type"] for f in head + frames] == [
        "agent_response_start",
        *["agent_response"] * 4,
        "agent_response_end",
    ]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_stop_aborts_turns_that_outlive_the_grace_period(gate: Gate) -> None:
    server = LabServer(agent_factory=gate.factory).start()
    ws, _ = open_client(server.url)
    with ws:
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
    assert frames[2]["error"] == "aborted"
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
        ws, hello = open_client(url)
        with ws:
            assert hello["type"] == "hello"
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
    owner, _ = open_client(server.url)
    late, _ = open_client(server.url)
    with owner, late:
        agent_id = create(owner, block=True)
        owner.send(json.dumps(protocol.user_message("first", agent_id)))
        assert gate.started.wait(TIMEOUT)
        assert ask(late, protocol.command("attach", agent_id=agent_id))["status"] == "OK"
        gate.release.set()
        assert until_end(owner)[-1]["turn_id"] == 1
        talk(owner, agent_id, "second")
        seen = until_end(late)
    # The late joiner never got the tail of turn 1: its first turn frame is turn 2's start.
    assert seen[0]["type"] == "agent_response_start"
    assert {f["turn_id"] for f in seen} == {2}
