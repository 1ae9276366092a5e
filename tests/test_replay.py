"""Traffic replay: the plan and id mapping (pure), and replays against a real LabServer."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from memgpt_lab.cli import main
from memgpt_lab.recorder import Recording, TickClock
from memgpt_lab.recorder.normalise import Normaliser
from memgpt_lab.recorder.snapshot import dump_snapshot, load_snapshot
from memgpt_lab.ws.client import LabClient
from memgpt_lab.ws.proxy import RecordingProxy
from memgpt_lab.ws.replay import IdMap, TurnCounter, plan, replay
from memgpt_lab.ws.server import LabServer

TIMEOUT = 20
CONVERSATION = (
    "My name is Ada.",
    "Remember that my favourite language is OCaml.",
    "What do you remember about my favourite language?",
)


def recording_of(*frames: tuple[str, str, object]) -> Recording:
    rec = Recording(clock=TickClock(), wall_clock=TickClock(1000.0))
    for cid, direction, payload in frames:
        if direction == "in-close":
            rec.record_close("in", 1000, "bye", connection_id=cid)
        elif direction == "out-close":
            rec.record_close("out", 1000, "bye", connection_id=cid)
        else:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            rec.record(direction, text, connection_id=cid)
    return rec


# --------------------------------------------------------------------------- pure core


def test_the_turn_counter_follows_the_protocol() -> None:
    counter = TurnCounter()
    feed = [
        {"type": "hello"},
        {"type": "command_response", "status": "OK"},
        {"type": "agent_response_start", "agent_id": "a", "turn_id": 1},
        {"type": "agent_response", "agent_id": "a", "turn_id": 1},
        {"type": "agent_response_error", "agent_id": "a", "turn_id": 1},  # inside: not an end
        {"type": "agent_response_end", "agent_id": "a", "turn_id": 1},
        {"type": "agent_response_error", "message": "no such agent"},  # alone: an answer
        {"type": "server_error", "message": "bad frame"},
        "not a frame",
        None,
    ]
    ended = [counter.feed(message) for message in feed]
    assert ended == [False, True, False, False, False, True, True, True, False, False]
    assert counter.ends == 4


def test_the_plan_keeps_recorded_order_and_reads_each_answer() -> None:
    rec = recording_of(
        ("c1", "out", {"type": "hello"}),
        ("c1", "in", {"type": "command", "command": "create_agent"}),
        ("c1", "out", {"type": "command_response", "status": "OK", "agent_id": "A1"}),
        ("c2", "in", {"type": "command", "command": "attach", "agent_id": "A1"}),
        ("c2", "out", {"type": "command_response", "status": "OK"}),
        ("c1", "in", {"type": "user_message", "message": "hi", "agent_id": "A1"}),
        ("c1", "out", {"type": "agent_response_start", "agent_id": "A1", "turn_id": 1}),
        ("c2", "out", {"type": "agent_response_start", "agent_id": "A1", "turn_id": 1}),
        ("c1", "out", {"type": "agent_response_end", "agent_id": "A1", "turn_id": 1}),
        ("c1", "in-close", None),
        ("c1", "out-close", None),
        ("c2", "out-close", None),
    )
    steps = plan(rec)
    assert [(s.connection_id, s.action, s.ends, len(s.answer)) for s in steps] == [
        ("c1", "open", 0, 1),  # the greeting: wait for one frame
        ("c1", "send", 1, 1),
        ("c2", "open", 0, 0),
        ("c2", "send", 1, 2),  # its answer and the turn it then watches
        ("c1", "send", 1, 2),
        ("c1", "close", 0, 0),
    ]
    assert [s.server_closed for s in steps] == [False] * 3 + [True, False, True]


def test_control_frames_are_not_replayed() -> None:
    rec = recording_of(("c1", "in", "x"), ("c1", "out", "x"))
    if "ping" in getattr(__import__("memgpt_lab.recorder").recorder, "OPCODES", ()):
        rec.record("in", b"p", opcode="ping", connection_id="c1")
        rec.record("out", b"p", opcode="pong", connection_id="c1")
    assert [s.action for s in plan(rec)] == ["open", "send"]


def test_ids_are_learnt_from_answers_and_carried_into_client_frames() -> None:
    ids = IdMap()
    ids.learn(
        [
            {
                "type": "command_response",
                "agent_id": "old",
                "request_id": 1,
                "x": {"checkpoint_id": "k1"},
            },
            {"type": "agent_response", "turn_id": 1},
        ],
        [
            {
                "type": "command_response",
                "agent_id": "new",
                "request_id": 9,
                "x": {"checkpoint_id": "k2"},
            },
            {"type": "agent_response", "turn_id": 2},
        ],
    )
    assert ids.ids == {"old": "new", "k1": "k2"}  # request_id and turn_id are no ids
    text = json.dumps(
        {"type": "user_message", "agent_id": "old", "message": "old ✓", "ids": ["k1"]}
    )
    assert json.loads(ids.apply_text(text)) == {
        "type": "user_message",
        "agent_id": "new",
        "message": "old ✓",  # only whole values that are ids
        "ids": ["k2"],
    }
    assert ids.apply_text("not json old") == "not json old"
    unrelated = json.dumps({"type": "user_message", "agent_id": "other"})
    assert ids.apply_text(unrelated) == unrelated  # untouched, byte for byte


def nested_dict(levels: int, inner: Any) -> Any:
    for _ in range(levels):
        inner = {"x": inner}
    return inner


def test_frames_nested_too_deeply_for_the_protocol_are_left_as_they_are() -> None:
    # Walking them (to learn ids, to replace them) overflowed the stack
    ids = IdMap()
    ids.learn([{"type": "r", "agent_id": "old"}], [{"type": "r", "agent_id": "new"}])
    deep = nested_dict(1000, {"agent_id": "k1"})
    ids.learn(
        [{"type": "r", "x": deep}], [{"type": "r", "x": nested_dict(1000, {"agent_id": "k2"})}]
    )
    assert ids.ids == {"old": "new"}  # nothing learnt from the deep pair
    text = json.dumps({"type": "user_message", "agent_id": "old", "deep": nested_dict(500, "old")})
    assert ids.apply_text(text) == text


def test_frames_of_different_types_teach_nothing() -> None:
    ids = IdMap()
    ids.learn(
        [{"type": "command_response", "agent_id": "a"}], [{"type": "server_error", "agent_id": "b"}]
    )
    assert ids.ids == {}


# --------------------------------------------------------------------------- against a server


@pytest.fixture
def captured(tmp_path: Path) -> Iterator[Path]:
    """A session through the recording proxy in front of a server with ``ada`` on memgpt_chat,
    saved as HAR."""
    with (
        LabServer(agents=[{"name": "ada", "preset": "memgpt_chat"}]) as server,
        RecordingProxy(server.url) as proxy,
    ):
        with LabClient(proxy.url, timeout=TIMEOUT) as client:
            for message in CONVERSATION:
                client.send(message, "ada")
            client.create_agent(name="bob")
        proxy.recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=TIMEOUT)
    path = tmp_path / "traffic.har"
    proxy.recording.to_har(path)
    yield path


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_replaying_against_an_identical_server_finds_no_difference(captured: Path) -> None:
    original = Recording.load(captured)
    with LabServer(agents=[{"name": "ada", "preset": "memgpt_chat"}]) as server:
        result = replay(original, server.url, timeout=TIMEOUT)
    with LabServer(agents=[{"name": "ada", "preset": "memgpt_chat"}]) as server:
        code, out, err = run_cli("replay", str(captured), "--url", server.url)
    assert result.ok, str(result)
    assert not result.diff
    # The client frames went out as recorded, ids and all, over a connection of the same URL.
    assert result.recording.incoming().texts() == original.incoming().texts()
    assert result.recording.outgoing().texts()[0].startswith('{"type":"hello"')
    said = [f.json["message"] for f in result.recording if f.message_type == "assistant_message"]
    assert said[1] == "Got it — I'll remember that your favourite language is OCaml."
    assert (code, err) == (0, "")
    assert "no differences" in out


def test_a_server_with_another_preset_is_a_difference_shown_readably(
    captured: Path, tmp_path: Path
) -> None:
    with LabServer(agents=[{"name": "ada", "preset": "memgpt_minimal"}]) as server:
        saved = tmp_path / "new.jsonl"
        code, out, err = run_cli("replay", str(captured), "--url", server.url, "--save", str(saved))
    assert (code, err) == (1, "")
    assert "OCaml" in out and "archival_memory_insert" in out  # the changed answer, both sides
    assert len(out.splitlines()) < 80  # a readable diff, not a wall of JSON
    new = Recording.load(saved)
    assert any("no archival_memory_insert" in (f.text or "") for f in new)


@pytest.mark.parametrize("golden_name", ["golden.har", "golden.ws.json"])
def test_a_snapshot_file_is_written_once_then_compared(
    captured: Path, tmp_path: Path, golden_name: str
) -> None:
    golden = tmp_path / golden_name

    def against(preset: str) -> tuple[int, str, str]:
        with LabServer(agents=[{"name": "ada", "preset": preset}]) as server:  # a fresh one
            return run_cli("replay", str(captured), "--url", server.url, "--snapshot", str(golden))

    first = against("memgpt_minimal")
    assert first[0] == 0 and "wrote" in first[1]
    assert golden.exists()
    again = against("memgpt_minimal")
    assert again[0] == 0, again[1]  # the same server agrees with its own golden file
    other = against("memgpt_chat")
    assert other[0] == 1 and "archival_memory_insert" in other[1]
    if golden_name.endswith(".ws.json"):  # the ws_snapshot fixture's own file format
        stored = golden.read_text(encoding="utf-8")
        assert stored == dump_snapshot(
            load_snapshot(stored), Normaliser(times=False, ids=False, uuids=False)
        )
        assert "<id:1>" in stored


def test_an_answer_that_never_comes_is_reported_not_hung() -> None:
    rec = recording_of(
        ("c1", "in", {"type": "command", "command": "list_agents"}),
        ("c1", "out", {"type": "command_response", "status": "OK"}),
        ("c1", "out", {"type": "command_response", "status": "OK"}),  # one answer too many
    )
    with LabServer() as server:
        result = replay(rec, server.url, timeout=0.5)
    assert not result.ok
    assert result.incomplete and "answer incomplete" in result.incomplete[0]


def test_a_recording_cut_before_a_close_replays_without_it() -> None:
    with LabServer() as server:
        with connect(server.url, open_timeout=TIMEOUT) as ws:
            ws.send(json.dumps({"type": "command", "command": "create_agent", "config": {}}))
            assert json.loads(ws.recv(timeout=TIMEOUT))["type"] == "command_response"
        assert server.recording is not None
        server.recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=TIMEOUT)
    whole = server.recording
    no_close = whole.filter(predicate=lambda f: f.opcode != "close")
    client_close_only = whole.filter(predicate=lambda f: f.opcode != "close" or f.direction == "in")
    for original, opcodes in (
        (whole, ["text", "text", "close", "close"]),
        (no_close, ["text", "text"]),
        (client_close_only, ["text", "text", "close"]),
    ):
        with LabServer() as fresh:
            result = replay(original, fresh.url, timeout=TIMEOUT)
        assert result.ok, str(result)
        assert [f.opcode for f in result.recording] == opcodes


def test_credentials_are_given_again_since_the_recording_masks_them(tmp_path: Path) -> None:
    with (
        LabServer(token="s3cret") as server,
        RecordingProxy(server.url) as proxy,
        LabClient(proxy.url + "?token=s3cret", token="s3cret", timeout=TIMEOUT) as client,
    ):
        client.create_agent(name="ada")
    path = tmp_path / "secret.har"
    proxy.recording.to_har(path)
    assert "s3cret" not in path.read_text(encoding="utf-8")
    with LabServer(token="other") as fresh:
        refused = replay(Recording.load(path), fresh.url, timeout=TIMEOUT)
        assert not refused.ok and "401" in refused.unreachable[0]
        code, out, err = run_cli(
            "replay", str(path), "--url", fresh.url, "--header", "Authorization: Bearer other"
        )
    assert (code, err) == (0, ""), out


def test_bad_input_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.har"
    code, _, err = run_cli("replay", str(missing), "--url", "ws://127.0.0.1:1")
    assert code == 2 and "memgpt-lab replay:" in err
    (tmp_path / "t.jsonl").write_text("")
    code, _, err = run_cli("replay", str(tmp_path / "t.jsonl"), "--url", "http://x")
    assert code == 2 and "ws://" in err
    code, _, err = run_cli(
        "replay", str(tmp_path / "t.jsonl"), "--url", "ws://x", "--header", "nocolon"
    )
    assert code == 2 and "NAME: VALUE" in err


def test_bad_urls_timeouts_and_empty_recordings_exit_2_with_a_message(
    captured: Path, tmp_path: Path
) -> None:
    for url in ("ws://", "ws://:80/", "wss://"):
        code, out, err = run_cli("replay", str(captured), "--url", url)
        assert (code, out) == (2, ""), err
        assert err.startswith("memgpt-lab replay:") and "Traceback" not in err
        with pytest.raises(ValueError, match="not a WebSocket URL"):
            replay(Recording.load(captured), url)
    for timeout in ("-1", "0", "nan", "inf", "soon"):
        with pytest.raises(SystemExit) as exited:
            run_cli("replay", str(captured), "--url", "ws://127.0.0.1:1", "--timeout", timeout)
        assert exited.value.code == 2
    for timeout in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number of seconds"):
            replay(Recording.load(captured), "ws://127.0.0.1:1", timeout=timeout)
    empty, server_only = tmp_path / "empty.jsonl", tmp_path / "server_only.jsonl"
    empty.write_text("", encoding="utf-8")
    recording_of(("c1", "out", {"type": "hello"})).to_jsonl(server_only)
    for path in (empty, server_only):
        code, out, err = run_cli("replay", str(path), "--url", "ws://127.0.0.1:1")
        assert (code, out) == (2, "")
        assert "nothing to replay" in err


def test_an_unreachable_server_exits_3_not_as_a_difference(captured: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}"
    golden = tmp_path / "golden.har"
    code, out, err = run_cli("replay", str(captured), "--url", url, "--snapshot", str(golden))
    assert (code, out) == (3, "")
    assert "could not run the replay" in err and url in err
    assert len(err.splitlines()) == 1  # one line per connection, not a wall of only-left rows
    assert not golden.exists()  # no golden file from a run that did not happen
    result = replay(Recording.load(captured), url, timeout=TIMEOUT)
    assert not result.ok and result.unreachable and not result.incomplete
    assert str(result).splitlines()[1].startswith("could not connect: step 1 (open on c1)")


def test_replaying_against_the_server_that_made_the_capture_runs_the_turns_again() -> None:
    with LabServer() as server:
        with RecordingProxy(server.url) as proxy, LabClient(proxy.url, timeout=TIMEOUT) as client:
            client.send("My name is Ada.", client.create_agent(name="ada"))
        proxy.recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=TIMEOUT)
        recorded_url = proxy.recording.connection_info("c1")["url"]
        assert f"session={client.session}" in recorded_url
        result = replay(proxy.recording, server.url, timeout=TIMEOUT)
        assert server.recording is not None
        ran = server.recording.filter(direction="out", type="agent_response_start")
    # The server ran the turn a second time (turn 2) rather than answering it from what it
    # remembers of the recorded session's request 2.
    assert [f.json["turn_id"] for f in ran] == [1, 2]
    starts = result.recording.filter(type="agent_response_start")
    assert [f.json["turn_id"] for f in starts] == [2]
    (hello,) = result.recording.filter(type="hello")
    assert hello.json["session"] != client.session


def test_each_recorded_session_gets_one_new_session() -> None:
    rec = recording_of(
        *[(cid, "out", {"type": "hello"}) for cid in ("c1", "c2", "c3")],
    )
    for cid, session in (("c1", "S1"), ("c2", "S1"), ("c3", "S2")):
        rec.set_connection_info(cid, {"url": f"ws://h:1/?hello=1&session={session}"})
        rec.record("in", json.dumps({"type": "command", "command": "hello"}), connection_id=cid)
    with LabServer() as server:
        result = replay(rec, server.url, timeout=TIMEOUT)
    sessions = {
        f.connection_id: f.json["session"]
        for f in result.recording.filter(type="hello")
        if "session" in f.json
    }
    assert sessions.keys() == {"c1", "c2", "c3"}
    assert sessions["c1"] == sessions["c2"] != sessions["c3"]
    assert not {"S1", "S2"} & set(sessions.values())
