"""Golden traffic snapshots: the ws_snapshot fixture (syrupy), run in generated projects and here."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from memgpt_lab.recorder import Recording, TickClock
from memgpt_lab.recorder.snapshot import dump_snapshot, load_snapshot
from memgpt_lab.testing import Normaliser
from memgpt_lab.ws.client import LabClient
from memgpt_lab.ws.server import LabServer

pytest_plugins = ["pytester"]

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "har"

TURN_TESTS = """
import asyncio
import json
import uuid


def turn(ws, answer):
    agent = uuid.uuid4().hex[:12]  # a new id on every run, as a server makes them

    async def run():
        ws.feed(json.dumps({"type": "user_message", "message": "hi", "agent_id": agent}))
        await ws.recv()
        for frame in (
            {"type": "agent_response_start", "agent_id": agent, "turn_id": 1},
            {"type": "agent_response", "message_type": "internal_monologue",
             "message": "A greeting.", "agent_id": agent, "turn_id": 1},
            {"type": "agent_response", "message_type": "assistant_message",
             "message": answer, "agent_id": agent, "turn_id": 1},
            {"type": "agent_response_end", "agent_id": agent, "turn_id": 1},
        ):
            await ws.send(json.dumps(frame))

    asyncio.run(run())


def test_greeting(ws_recording, mock_websocket, ws_snapshot):
    turn(mock_websocket, "ANSWER")
    assert ws_recording == ws_snapshot
"""


def turn_tests(answer: str = "Hello there!") -> str:
    return TURN_TESTS.replace("ANSWER", answer)


def test_update_writes_readable_json_then_runs_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_golden_turns=turn_tests())
    first = pytester.runpytest("-p", "no:cacheprovider")
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines(["*Snapshot 'test_greeting' does not exist!*"])

    pytester.runpytest("-p", "no:cacheprovider", "--snapshot-update").assert_outcomes(passed=1)
    path = pytester.path / "__snapshots__" / "test_golden_turns" / "test_greeting.ws.json"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 7  # one frame per line
    frames = json.loads(text)
    assert frames[0] == {
        "connection": "c1",
        "direction": "in",
        "json": {"type": "user_message", "message": "hi", "agent_id": "<id:1>"},
    }
    assert frames[3]["json"] == {
        "type": "agent_response",
        "message_type": "assistant_message",
        "message": "Hello there!",
        "agent_id": "<id:1>",
        "turn_id": "<turn_id:1>",
    }
    # Other ids and times on every run: still the same snapshot.
    for _ in range(2):
        pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert path.read_text(encoding="utf-8") == text


def test_a_mismatch_is_shown_frame_by_frame(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_golden_turns=turn_tests())
    pytester.runpytest("-p", "no:cacheprovider", "--snapshot-update").assert_outcomes(passed=1)

    pytester.makepyfile(test_golden_turns=turn_tests("Hi, who is this?"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*-snapshot (5 frames) +recording (5 frames): 1 changed, 0 only-left, 0 only-right, 4 same",
            "*- #4     out agent_response assistant_message: Hello there!*",
            "*+ #4     out agent_response assistant_message: Hi, who is this?*",
            "*~   changed: message*",
        ]
    )
    output = result.stdout.str()
    assert '"connection": "c1"' not in output  # not a wall of JSON
    assert "Full output truncated" not in output

    # --snapshot-update takes the new traffic; then it passes.
    pytester.runpytest("-p", "no:cacheprovider", "--snapshot-update").assert_outcomes(passed=1)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_missing_frame_is_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_golden_turns=turn_tests())
    pytester.runpytest("-p", "no:cacheprovider", "--snapshot-update").assert_outcomes(passed=1)
    pytester.makepyfile(
        test_golden_turns=turn_tests().replace(
            "assert ws_recording == ws_snapshot",
            "frames = ws_recording.frames(); assert frames[:2] + frames[3:] == ws_snapshot",
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*0 changed, 1 only-left, 0 only-right, 4 same*",
            "*- #3 * internal_monologue: A greeting.*",
        ]
    )


def test_another_normaliser_in_a_conftest(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from memgpt_lab.testing import Normaliser, snapshot_extension

        @pytest.fixture
        def ws_snapshot(snapshot):
            normaliser = Normaliser(rules=[(r"Hello|Hi", "<greeting>")])
            return snapshot.use_extension(snapshot_extension(normaliser))
        """
    )
    pytester.makepyfile(test_golden_turns=turn_tests("Hello there!"))
    pytester.runpytest("-p", "no:cacheprovider", "--snapshot-update").assert_outcomes(passed=1)
    stored = (
        pytester.path / "__snapshots__" / "test_golden_turns" / "test_greeting.ws.json"
    ).read_text()
    assert "<greeting> there!" in stored
    pytester.makepyfile(test_golden_turns=turn_tests("Hi there!"))  # the rule makes it the same
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_only_recordings_and_frames(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_wrong_thing(ws_snapshot):
            assert {"type": "x"} == ws_snapshot
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--snapshot-update")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*ws_snapshot compares a Recording or a list of Frames, not dict*"]
    )


def test_dump_and_load_keep_every_kind_of_frame() -> None:
    rec = Recording(clock=TickClock(), wall_clock=TickClock())
    rec.record("in", '{"type":"user_message","message":"\\ud800 lone"}', connection_id="x")
    rec.record("in", "not json \ud83d", connection_id="x")
    rec.record("out", "null", connection_id="x")
    rec.record("out", b"\x00\xff", connection_id="y")
    rec.record("out", b"ping!", connection_id="y", opcode="ping")
    rec.record_close("in", 1000, "bye", connection_id="y")
    rec.record_close("in", None, None, connection_id="y")
    normaliser = Normaliser()
    text = dump_snapshot(rec, normaliser)
    text.encode("utf-8")  # storable
    assert json.loads(text)[1] == {"connection": "c1", "direction": "in", "text": "not json \ud83d"}
    assert json.loads(text)[2]["json"] is None
    back = load_snapshot(text)
    assert dump_snapshot(back, Normaliser(times=False, ids=False, uuids=False)) == text
    assert back[0].json == {"type": "user_message", "message": "\ud800 lone"}
    assert [f.payload for f in back[1:5]] == ["not json \ud83d", "null", b"\x00\xff", b"ping!"]
    assert [(f.opcode, f.close_code, f.connection_id) for f in back[4:]] == [
        ("ping", None, "c2"),
        ("close", 1000, "c2"),
        ("close", None, "c2"),
    ]
    with pytest.raises(ValueError, match="JSON list of frames"):
        load_snapshot('{"frames": []}')
    assert dump_snapshot([], normaliser) == "[]\n"


# --------------------------------------------------------------------------- this project's own


def test_a_server_conversation_snapshot(ws_snapshot: SnapshotAssertion) -> None:
    """The server's traffic for one conversation, fresh ids and times each run (stored in git)."""
    with LabServer() as server, LabClient(server.url) as client:
        agent = client.create_agent(persona="sam_pov", human="basic")
        client.send("Hello, is anyone there?", agent)
        client.send("My name is Ada", agent)
    server.recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=10)
    assert server.recording == ws_snapshot


def test_through_the_proxy_the_same_snapshot() -> None:
    """What a RecordingProxy records of a conversation is what the server recorded, normalised."""
    from memgpt_lab.ws.proxy import RecordingProxy

    with (
        LabServer() as server,
        RecordingProxy(server.url) as proxy,
        LabClient(proxy.url) as client,
    ):
        client.send("Hello, is anyone there?", client.create_agent())
    for recording in (server.recording, proxy.recording):  # both sides' close frames are in
        recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=10)
    assert len(proxy.recording) == len(server.recording) > 5
    assert dump_snapshot(proxy.recording, Normaliser()) == dump_snapshot(
        server.recording, Normaliser()
    )


def test_a_devtools_har_snapshot(ws_snapshot: SnapshotAssertion) -> None:
    assert Recording.from_har(FIXTURES / "devtools_websocket.har") == ws_snapshot


def test_uuids_in_free_text_are_stable() -> None:
    def run() -> Recording:
        rec = Recording()
        rec.record("out", f'{{"type":"x","message":"job {uuid.uuid4()} done"}}')
        return rec

    assert dump_snapshot(run(), Normaliser()) == dump_snapshot(run(), Normaliser())
