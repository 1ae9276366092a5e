"""The agent server against clients that misbehave, stall, or come back: every bound holds.

Each test here failed against the server before it was hardened: lone surrogates,
file paths in configs, clients that stop reading, unbounded queues and tables, and
messages re-sent after a reconnect.
"""

from __future__ import annotations

import json
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from ws_helpers import TIMEOUT, Gate, ask, create, open_client, recv, talk, until_end

from memgpt_lab.errors import ProtocolError
from memgpt_lab.interface import AgentInterface
from memgpt_lab.ws import protocol
from memgpt_lab.ws.server import LabServer


class Agent:
    """Echoes; ``block`` in its config makes it wait for the test's gate mid-turn."""

    def __init__(self, config: dict[str, Any], interface: AgentInterface, gate: Gate) -> None:
        self.id = config.get("id") or f"a{len(gate.agents) + 1}"
        self.name = str(config.get("name"))
        self.interface = interface
        self.config = config
        self.gate = gate
        self.messages: list[str] = []

    def turn(self, message: str) -> None:
        self.messages.append(message)
        self.interface.internal_monologue(f"thinking about {message}")
        if self.config.get("block"):
            self.gate.started.set()
            assert self.gate.release.wait(TIMEOUT), "the test never released the agent"
        size = self.config.get("size")
        # Random text of that size: the connection's compression cannot shrink it away.
        said = random.Random(message).randbytes(size // 2).hex() if size else f"echo: {message}"
        if self.config.get("surrogate"):  # as a model might; no client frame can carry one
            said = "lone \ud800 surrogate"
        self.interface.assistant_message(said)

    def memory_snapshot(self) -> dict[str, Any]:
        return {"messages": list(self.messages)}


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate(Agent)
    yield gate
    gate.release.set()


@pytest.fixture
def server(gate: Gate) -> Iterator[LabServer]:
    with LabServer(agent_factory=gate.factory, grace=0) as server:
        yield server


def connection_id(ws: ClientConnection) -> str:
    return str(ask(ws, protocol.command("hello"))["connection_id"])


def without(frames: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in f.items() if k not in keys} for f in frames]


# --------------------------------------------------------------------------- deep nesting


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "sent",
    [
        nested(
            100_000
        ),  # deeper than json can parse: it raised RecursionError and closed with 1011
        f'{{"type": "user_message", "message": {nested(5_000)}, "agent_id": "a1"}}',
        # parses, but nests deeper than any frame of the protocol (walking it could overflow)
        f'{{"type": "user_message", "message": {nested(900)}, "agent_id": "a1"}}',
        f'{{"type": "command", "command": "create_agent", "config": {{"name": {nested(129)}}}}}',
    ],
    ids=["frame-100000", "message-5000", "message-900", "config-129"],
)
def test_a_frame_nested_too_deeply_is_bad_json_and_the_connection_lives_on(
    server: LabServer, gate: Gate, sent: str
) -> None:
    with open_client(server.url) as ws:
        create(ws, name="a1", id="a1")
        answer = ask(ws, sent)
        assert answer["type"] == "command_response"
        assert answer["status"].startswith("Error: bad data from client - ")
        assert answer["error_code"] == "bad_json"
        assert talk(ws, "a1", "still here")[-1]["type"] == "agent_response_end"
    assert gate.agents[0].messages == ["still here"]


def test_a_frame_nested_as_deep_as_allowed_is_read() -> None:
    shallow = json.dumps(
        {"type": "command", "command": "create_agent", "config": {"x": json.loads(nested(126))}}
    )
    assert protocol.decode(shallow)["config"]["x"] == json.loads(nested(126))  # 128 levels in all
    with pytest.raises(ProtocolError, match="nested deeper than 128"):
        protocol.decode(shallow.replace(nested(126), nested(127)))


# --------------------------------------------------------------------------- lone surrogates

SURROGATE = "\\ud800"  # as JSON text: valid JSON, not valid Unicode


@pytest.mark.parametrize(
    ("sent", "answer_type"),
    [
        (
            f'{{"type": "user_message", "message": "{SURROGATE}", "agent_id": "a1"}}',
            "agent_response_error",
        ),
        (
            f'{{"type": "command", "command": "create_agent", "config": {{"name": "{SURROGATE}"}}}}',
            "command_response",
        ),
        (
            f'{{"type": "command", "command": "list_agents", "request_id": "{SURROGATE}"}}',
            "command_response",
        ),
        (f'{{"type": "shout", "x": "{SURROGATE}"}}', "server_error"),
        (f'{{"{SURROGATE}": 1}}', "command_response"),
    ],
)
def test_a_lone_surrogate_is_refused_with_the_frame_type_of_its_kind(
    server: LabServer, gate: Gate, sent: str, answer_type: str
) -> None:
    with open_client(server.url) as ws:
        create(ws, name="a1", id="a1")
        answer = ask(ws, sent)
        assert answer["type"] == answer_type
        expected = "unknown_type" if answer_type == "server_error" else "invalid_unicode"
        assert answer["error_code"] == expected
        assert talk(ws, "a1", "still here")[-1]["type"] == "agent_response_end"
    assert gate.agents[0].messages == ["still here"]  # the surrogate never reached the agent


def test_an_agent_saying_a_lone_surrogate_breaks_no_writer(server: LabServer) -> None:
    # A model can produce one; the frame is sent escaped, to every recipient.
    with open_client(server.url) as owner, open_client(server.url) as watcher:
        agent = create(owner, name="odd", surrogate=True)
        assert ask(watcher, protocol.command("attach", agent_id="odd"))["status"].startswith("OK")
        raw: dict[str, list[str]] = {"c1": [], "c2": []}
        owner.send(json.dumps(protocol.user_message("say it", agent)))
        for cid, ws in (("c1", owner), ("c2", watcher)):
            while not raw[cid] or json.loads(raw[cid][-1])["type"] != "agent_response_end":
                raw[cid].append(str(ws.recv(timeout=TIMEOUT)))
        after = talk(owner, agent, "still fine")
    for texts in raw.values():
        said = json.loads(texts[2])
        assert said["message"] == "lone \ud800 surrogate"
        assert "\\ud800" in texts[2]  # escaped on the wire: valid UTF-8 text
    assert after[-1]["type"] == "agent_response_end"
    # What was recorded is exactly what each client received.
    assert server.recording is not None
    for cid, texts in raw.items():
        out = [f.text for f in server.recording.filter(direction="out") if f.connection_id == cid]
        assert out[1 : 1 + len(texts)] == texts


def test_a_frame_that_cannot_be_sent_closes_that_connection_alone_with_1011(
    server: LabServer,
) -> None:
    with open_client(server.url) as broken, open_client(server.url) as fine:
        agent = create(fine, name="shared")
        for ws in (broken, fine):
            assert ask(ws, protocol.command("attach", agent_id="shared"))["status"].startswith("OK")
        broken_id = connection_id(broken)
        # A frame that bypassed protocol.encode (which escapes lone surrogates): a bug
        # elsewhere must cost one connection, not every connection of the agent.
        server._core.connections[broken_id].outbox.push('{"type":"oops","text":"\ud800"}')
        with pytest.raises(ConnectionClosed) as closed:
            recv(broken)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        turn = talk(fine, agent, "on we go")
    assert turn[-1]["type"] == "agent_response_end"
    assert server.recording is not None
    closes = server.recording.wait_for(
        lambda f: f.opcode == "close" and f.connection_id == broken_id, count=2
    )
    assert [(f.direction, f.close_code) for f in closes] == [("out", 1011), ("in", 1011)]
    # Only what was really sent is recorded: the frame that failed is not there.
    sent = [
        f.text for f in server.recording.filter(direction="out") if f.connection_id == broken_id
    ]
    assert not any(text and "oops" in text for text in sent)


# --------------------------------------------------------------------------- files


SECRET_PRESET = """name: secret
system_prompt_text: TOP SECRET PROMPT
functions: [send_message]
bogus_field: 1
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "secret.yaml").write_text(SECRET_PRESET)
    (tmp_path / "good.yaml").write_text(
        "name: good\nsystem_prompt_text: Be good.\nfunctions: [send_message]\n"
    )
    (tmp_path / "persona.txt").write_text("TOP SECRET PERSONA")
    return tmp_path


def test_over_the_wire_presets_personas_and_humans_are_names_never_paths(files: Path) -> None:
    with LabServer() as server, open_client(server.url) as ws:
        answers = {}
        for key in ("preset", "persona", "human"):
            for value in (
                str(files / "secret.yaml"),  # exists
                str(files / "missing.yaml"),  # does not
                str(files / "persona.txt"),
                "../../../../etc/passwd",
                "secret.yaml",
                "/etc/hostname",
            ):
                answer = ask(ws, protocol.command("create_agent", {key: value}))
                answers[key, value] = answer["status"]
    for (key, value), status in answers.items():
        assert status == (
            f"Error: Failed to init agent - config {key!r} must be the name of a {key} "
            "(letters, digits, '_' and '-'), not a path: paths are accepted from Python only"
        ), value
        assert "SECRET" not in status and str(files) not in status


def test_a_configured_preset_that_does_not_load_is_named_not_quoted(files: Path) -> None:
    with (
        LabServer(preset_directories=[str(files)]) as server,
        open_client(server.url) as ws,
    ):
        good = ask(ws, protocol.command("create_agent", {"preset": "good"}))
        secret = ask(ws, protocol.command("create_agent", {"preset": "secret"}))
        unknown = ask(ws, protocol.command("create_agent", {"preset": "nowhere"}))
    assert good["status"] == "OK: Agent initialized"
    assert secret["status"] == (
        "Error: Failed to init agent - preset 'secret' does not load; the server's log says why"
    )
    assert "unknown preset 'nowhere'; available: " in unknown["status"]
    for answer in (secret, unknown):
        assert "SECRET" not in answer["status"] and "bogus_field" not in answer["status"]
        assert str(files) not in answer["status"]


def test_from_python_a_preset_may_be_a_path(files: Path) -> None:
    config = {"name": "pathy", "id": "pathy", "preset": str(files / "good.yaml")}
    with LabServer(agents=[config]) as server:
        assert server.agents["pathy"].preset_name == "good"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- bounds


def test_a_client_that_stops_reading_is_closed_with_1008_and_its_memory_stays_bounded(
    gate: Gate,
) -> None:
    bound = 256 << 10
    turns = 1000
    frame_size = 32 << 10  # 1,000 turns of it: 32 MiB, far past the bound and socket buffers
    with LabServer(agent_factory=gate.factory, max_queued_bytes=bound, grace=0) as server:
        # The stalled client's socket buffers little, so the stall reaches the server soon.
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        stalled = connect(server.url, sock=sock, max_queue=4, open_timeout=TIMEOUT, legacy=True)
        stalled_id = connection_id(stalled)
        with open_client(server.url) as driver:
            agent = create(driver, name="loud", size=frame_size)
            assert ask(stalled, protocol.command("attach", agent_id="loud"))["status"].startswith(
                "OK"
            )
            peak_queued = peak_buffered = 0
            closing_at = None
            drained: list[Any] = []
            reader = threading.Thread(target=drain, args=(stalled, drained), daemon=True)
            for n in range(turns):
                assert talk(driver, agent, f"m{n}")[-1]["type"] == "agent_response_end"
                stats = server.stats()["connections"].get(stalled_id)
                if stats is None:  # closed and forgotten
                    continue
                assert stats["queued_bytes"] <= stats["max_queued_bytes"] == bound
                peak_queued = max(peak_queued, stats["queued_bytes"])
                peak_buffered = max(peak_buffered, stats["transport_buffered"])
                if stats["closing"] and closing_at is None:
                    closing_at = n
                    reader.start()  # read now, so the close handshake can finish
            reader.join(TIMEOUT)
        assert server.recording is not None
        closes = server.recording.wait_for(
            lambda f: f.opcode == "close" and f.connection_id == stalled_id and f.direction == "out"
        )
        remaining = server.stats()
    assert closing_at is not None, "the stalled client was never closed"
    assert drained[-1] == 1008
    assert closes[0].close_code == 1008
    # What the server held for that connection: its queue (bounded) and the socket's buffer
    # (websockets' write limit plus one frame), not 32 MiB.
    assert peak_queued <= bound
    assert peak_buffered <= (64 << 10) + frame_size
    assert stalled_id not in remaining["connections"]
    assert remaining["agents"][agent]["subscribers"] == 0
    assert gate.agents[0].messages == [f"m{n}" for n in range(turns)]


def drain(ws: ClientConnection, into: list[Any]) -> None:
    """Read everything until the close, then append the close code."""
    try:
        while True:
            into.append(ws.recv(timeout=TIMEOUT))
    except ConnectionClosed as exc:
        into.append(exc.rcvd.code if exc.rcvd is not None else None)
    except TimeoutError:
        into.append("timeout")


def test_requests_in_flight_per_connection_are_bounded(gate: Gate) -> None:
    with (
        LabServer(agent_factory=gate.factory, max_turns_in_flight=3, grace=0) as server,
        open_client(server.url) as ws,
    ):
        agent = create(ws, name="slow", block=True)
        for n in range(5):
            ws.send(json.dumps(protocol.user_message(f"m{n}", agent, request_id=n)))
        ws.send(json.dumps(protocol.command("get_memory", agent_id=agent, request_id="mem")))
        assert gate.started.wait(TIMEOUT)
        frames = []
        while len([f for f in frames if f.get("error_code") == "busy"]) < 3:
            frames.append(recv(ws))
        stats = server.stats()
        gate.release.set()
        ends = 0
        while ends < 3:
            frame = recv(ws)
            frames.append(frame)
            ends += frame["type"] == "agent_response_end"
        after = server.stats()
    busy = [f for f in frames if f.get("error_code") == "busy"]
    assert [(f["type"], f.get("request_id")) for f in busy] == [
        ("agent_response_error", 3),
        ("agent_response_error", 4),
        ("command_response", "mem"),
    ]
    # Waiting requests are a queue entry each, not a task each.
    assert stats["tasks"] == 0
    assert stats["agents"][agent]["queued_jobs"] == 2
    assert after["connections"]["c1"]["turns_in_flight"] == 0
    assert gate.agents[0].messages == ["m0", "m1", "m2"]


def test_agents_per_server_are_bounded_and_delete_makes_room(server: LabServer, gate: Gate) -> None:
    with LabServer(agent_factory=gate.factory, max_agents=2) as small, open_client(small.url) as ws:
        create(ws, name="one")
        create(ws, name="two")
        full = ask(ws, protocol.command("create_agent", {"name": "three"}))
        deleted = ask(ws, protocol.command("delete_agent", agent_id="one"))
        again = ask(ws, protocol.command("create_agent", {"name": "three"}))
    assert full["status"] == (
        "Error: Failed to init agent - the server hosts its limit of 2 agents; delete one first "
        "(delete_agent)"
    )
    assert full["error_code"] == "too_many_agents"
    assert deleted["status"] == "OK: Agent deleted"
    assert again["status"] == "OK: Agent initialized"


def test_deleting_an_agent_answers_its_queued_requests(server: LabServer, gate: Gate) -> None:
    with open_client(server.url) as ws, open_client(server.url) as other:
        agent = create(ws, name="doomed", block=True)
        ws.send(json.dumps(protocol.user_message("first", agent, request_id=1)))
        assert recv(ws)["type"] == "agent_response_start"
        assert gate.started.wait(TIMEOUT)
        ws.send(json.dumps(protocol.user_message("second", agent, request_id=2)))
        assert ask(other, protocol.command("delete_agent", agent_id="doomed"))["status"] == (
            "OK: Agent deleted"
        )
        refused = [recv(ws) for _ in range(3)]
        while refused[0]["type"] == "agent_response":  # the first turn's monologue
            refused = [*refused[1:], recv(ws)]
        gate.release.set()
        rest = until_end(ws)
    assert [(f["type"], f.get("request_id")) for f in refused] == [
        ("agent_response_start", 2),
        ("agent_response_error", 2),
        ("agent_response_end", 2),
    ]
    assert refused[1]["error_code"] == "deleted"
    assert rest[-1]["request_id"] == 1  # the running turn finished for its requester
    assert gate.agents[0].messages == ["first"]


def test_refused_handshakes_kept_are_bounded(gate: Gate) -> None:
    with LabServer(agent_factory=gate.factory, max_rejections=3) as server:
        for n in range(5):
            with pytest.raises(InvalidStatus):
                connect(server.url, origin=f"http://evil{n}.test", open_timeout=TIMEOUT)
        kept = server.rejections
    assert kept == [(403, f"origin 'http://evil{n}.test' is not allowed") for n in (2, 3, 4)]


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_queued_bytes must be a positive integer"):
        LabServer(max_queued_bytes=0)
    with pytest.raises(ValueError, match="resume_buffer_bytes must be 0 or a positive integer"):
        LabServer(resume_buffer_bytes=-1)
    with pytest.raises(ValueError, match="max_workers must be 0 or a positive integer"):
        LabServer(max_workers=-1)


def test_a_bad_session_is_refused_at_the_handshake(server: LabServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(server.url + "?session=../x", open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 400


# --------------------------------------------------------------------------- coming back


def test_a_message_re_sent_after_a_reconnect_is_answered_from_its_first_run(
    server: LabServer, gate: Gate
) -> None:
    url = server.url + "?session=s1"
    with open_client(url) as first:
        agent = create(first, name="once")
        original = talk(first, agent, "only once", request_id="r1")
    with open_client(url) as again:  # same session, a new connection
        repeated = talk(again, agent, "only once", request_id="r1")
        fresh = talk(again, agent, "a new one", request_id="r2")
    assert gate.agents[0].messages == ["only once", "a new one"]
    assert without(repeated, "seq") == without(original, "seq")
    assert [f["seq"] for f in repeated] == list(range(1, len(repeated) + 1))
    assert fresh[0]["turn_id"] == 2


def test_a_message_re_sent_while_its_turn_runs_joins_it(server: LabServer, gate: Gate) -> None:
    url = server.url + "?session=s2"
    with open_client(url) as first:
        agent = create(first, name="slow", block=True)
        first.send(json.dumps(protocol.user_message("hang on", agent, request_id="r1")))
        head = [recv(first), recv(first)]  # start, monologue; then the connection drops
        assert gate.started.wait(TIMEOUT)
    with open_client(url) as again:
        again.send(json.dumps(protocol.user_message("hang on", agent, request_id="r1")))
        replayed = [recv(again), recv(again)]
        gate.release.set()
        rest = until_end(again)
    assert gate.agents[0].messages == ["hang on"]
    assert without(replayed, "seq") == without(head, "seq")
    assert [f.get("message_type", f["type"]) for f in replayed + rest] == [
        "agent_response_start",
        "internal_monologue",
        "assistant_message",
        "agent_response_end",
    ]
    assert [f["seq"] for f in replayed + rest] == [1, 2, 3, 4]


def test_a_message_re_sent_before_its_turn_starts_waits_for_it(
    server: LabServer, gate: Gate
) -> None:
    url = server.url + "?session=s3"
    with open_client(server.url) as busy:
        agent = create(busy, name="queue", block=True)
        busy.send(json.dumps(protocol.user_message("first", agent)))
        assert gate.started.wait(TIMEOUT)
        with open_client(url) as first:
            first.send(json.dumps(protocol.user_message("queued", agent, request_id="q")))
            connection_id(first)  # answered after the message was queued
        with open_client(url) as again:
            again.send(json.dumps(protocol.user_message("queued", agent, request_id="q")))
            gate.release.set()
            turn = until_end(again)
    assert gate.agents[0].messages == ["first", "queued"]
    assert [f.get("message") for f in turn if "message" in f] == [
        "thinking about queued",
        "echo: queued",
    ]


def test_a_repeated_request_whose_turn_is_no_longer_kept_is_not_run_again(gate: Gate) -> None:
    with LabServer(agent_factory=gate.factory, resume_buffer_bytes=0) as server:
        url = server.url + "?session=s4"
        with open_client(url) as ws:
            agent = create(ws, name="forgetful")
            talk(ws, agent, "once", request_id="r")
            again = talk(ws, agent, "once", request_id="r")
    assert [f["type"] for f in again] == [
        "agent_response_start",
        "agent_response_error",
        "agent_response_end",
    ]
    assert again[1]["error_code"] == "expired"
    assert gate.agents[0].messages == ["once"]


def test_request_ids_are_scoped_to_a_session(server: LabServer, gate: Gate) -> None:
    with (
        open_client(server.url + "?session=a") as a,
        open_client(server.url + "?session=b") as b,
        open_client(server.url) as anonymous,
    ):
        agent = create(a, name="shared")
        for ws in (a, b, anonymous, anonymous):
            talk(ws, agent, "hi", request_id=1)
    # Another session's id 1 is another request; without a session nothing is remembered.
    assert gate.agents[0].messages == ["hi"] * 4


def test_resume_replays_the_turns_missed_then_goes_on_live(server: LabServer) -> None:
    with open_client(server.url) as talker:
        agent = create(talker, name="story")
        with open_client(server.url) as watcher:
            assert ask(watcher, protocol.command("attach", agent_id="story"))["turns"] == 0
            talk(talker, agent, "one")
            seen = until_end(watcher)
        talk(talker, agent, "two")  # while the watcher is away
        talk(talker, agent, "three")
        with open_client(server.url) as back:
            answer = ask(back, protocol.command("resume", agent_id="story", after_turn=1))
            missed = [until_end(back), until_end(back)]
            talk(talker, agent, "four")
            live = until_end(back)
    assert seen[0]["turn_id"] == 1
    assert answer["status"] == "OK: resumed agent story after turn 1"
    assert (answer["replayed_turns"], answer["complete"]) == ([2, 3], True)
    assert [turn[2]["message"] for turn in missed] == ["echo: two", "echo: three"]
    assert [f["seq"] for turn in missed for f in turn] == list(range(2, 10))
    assert live[0]["turn_id"] == 4


def test_resume_mid_turn_replays_its_head_and_follows_its_tail(
    server: LabServer, gate: Gate
) -> None:
    with open_client(server.url) as talker, open_client(server.url) as late:
        agent = create(talker, name="midway", block=True)
        talker.send(json.dumps(protocol.user_message("slowly", agent)))
        head = [recv(talker), recv(talker)]
        assert gate.started.wait(TIMEOUT)
        answer = ask(late, protocol.command("resume", agent_id="midway", after_turn=0))
        replayed = [recv(late), recv(late)]
        gate.release.set()
        tail = until_end(late)
        theirs = until_end(talker)
    assert answer["replayed_turns"] == [1]
    assert without(replayed + tail, "seq") == without(head + theirs, "seq")


def test_resume_says_when_turns_were_lost_to_the_bound(gate: Gate) -> None:
    with (
        LabServer(agent_factory=gate.factory, resume_buffer_bytes=600) as server,
        open_client(server.url) as talker,
        open_client(server.url) as back,
    ):
        agent = create(talker, name="long")
        for n in range(10):
            talk(talker, agent, f"m{n}")
        answer = ask(back, protocol.command("resume", agent_id="long", after_turn=0))
        stats = server.stats()["agents"][agent]
    assert answer["complete"] is False
    assert answer["replayed_turns"] and answer["replayed_turns"][-1] == 10
    assert stats["buffered_bytes"] <= 600


def test_a_turn_replayed_to_a_connection_is_not_replayed_to_it_again(
    server: LabServer, gate: Gate
) -> None:
    # What LabClient does after a reconnect: re-send its waiting message, then resume.
    url = server.url + "?session=s5"
    with open_client(url) as first:
        agent = create(first, name="twice", block=True)
        assert ask(first, protocol.command("attach", agent_id="twice"))["status"].startswith("OK")
        first.send(json.dumps(protocol.user_message("once", agent, request_id=7)))
        head = [recv(first), recv(first)]
        assert gate.started.wait(TIMEOUT)
    with open_client(url) as again:
        again.send(json.dumps(protocol.user_message("once", agent, request_id=7)))
        again.send(json.dumps(protocol.command("resume", agent_id="twice", after_turn=0)))
        replayed = [recv(again), recv(again)]
        answer = recv(again)
        gate.release.set()
        tail = until_end(again)
        probe = ask(again, protocol.command("hello"))
    assert without(replayed, "seq") == without(head, "seq")
    assert answer["status"] == "OK: resumed agent twice after turn 0"
    assert answer["replayed_turns"] == []  # turn 1 reached it through the re-sent request
    assert [f.get("message_type", f["type"]) for f in tail] == [
        "assistant_message",
        "agent_response_end",
    ]
    assert probe["seq"] == 6  # nothing arrived twice
    assert gate.agents[0].messages == ["once"]
