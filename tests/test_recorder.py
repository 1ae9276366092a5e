"""Frame, Recording and MockWebSocket: capture, queries, waits, assertions, the mock connection."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK

from memgpt_lab.errors import FrameTimeoutError, LabError, RecordingAssertionError
from memgpt_lab.recorder import (
    ANY,
    Frame,
    MockWebSocket,
    Recording,
    TickClock,
    describe,
    frame_matches,
    matches,
)
from memgpt_lab.recorder.frame import _UNSET
from memgpt_lab.ws import protocol


def enc(frame: dict[str, Any]) -> str:
    return protocol.encode(frame)


START = enc(protocol.agent_response_start())
MONO = enc(protocol.agent_response("internal_monologue", "thinking"))
SAY = enc(protocol.agent_response("assistant_message", "Hello there"))
FUNC = enc(protocol.agent_response("function_message", "Running send_message"))
END = enc(protocol.agent_response_end())
USER = enc(protocol.user_message("hi", agent_id="a1"))


def fixed() -> Recording:
    return Recording(clock=TickClock(10.0, 0.001), wall_clock=TickClock(1000.0, 1.0))


def turn() -> Recording:
    """A recording of one turn: a user message in, five frames out."""
    rec = fixed()
    rec.record("in", USER, connection_id="c1")
    for text in (START, MONO, SAY, FUNC, END):
        rec.record("out", text, connection_id="c1")
    return rec


# --------------------------------------------------------------------------- frames


class TestFrame:
    def test_record_assigns_seq_times_and_fields(self) -> None:
        rec = fixed()
        first = rec.record("out", START, connection_id="c7")
        second = rec.record("in", USER)
        assert (first.seq, second.seq) == (1, 2)
        assert (first.time, second.time) == (10.0, 10.001)
        assert (first.wall_time, second.wall_time) == (1000.0, 1001.0)
        assert first.direction == "out" and second.direction == "in"
        assert first.connection_id == "c7" and second.connection_id == ""
        assert first.opcode == "text" and first.text == START and first.data is None
        assert first.payload == START
        assert list(rec) == [first, second]

    def test_opcode_inferred_and_size_in_utf8_bytes(self) -> None:
        rec = Recording()
        text = rec.record("out", "héllo")
        binary = rec.record("out", b"\x00\x01\x02")
        arr = rec.record("out", bytearray(b"ab"))
        assert (text.opcode, text.size) == ("text", 6)
        assert (binary.opcode, binary.size, binary.payload) == ("binary", 3, b"\x00\x01\x02")
        assert binary.text is None and binary.json is None
        assert arr.data == b"ab" and type(arr.data) is bytes

    def test_close_frame(self) -> None:
        frame = Recording().record_close("in", 1001, "bye", connection_id="c1")
        assert frame.opcode == "close" and frame.payload is None
        assert (frame.close_code, frame.close_reason, frame.size) == (1001, "bye", 5)
        assert frame.json is None and frame.type is None

    def test_bad_arguments(self) -> None:
        rec = Recording()
        with pytest.raises(ValueError, match="direction"):
            rec.record("sideways", "x")
        with pytest.raises(TypeError, match="str or bytes"):
            rec.record("out", {"type": "x"})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="opcode"):
            rec.record("out", "x", opcode="nope")
        with pytest.raises(TypeError, match="a ping payload must be bytes, not str"):
            rec.record("out", "x", opcode="ping")
        assert len(rec) == 0
        ping = rec.record("in", None, opcode="ping")
        pong = rec.record("out", bytearray(b"p"), opcode="pong")
        assert (ping.opcode, ping.data, pong.opcode, pong.data) == ("ping", b"", "pong", b"p")
        assert (ping.text, ping.close_code, ping.size, pong.size) == (None, None, 0, 1)

    def test_json_is_parsed_lazily_and_cached(self, monkeypatch: pytest.MonkeyPatch) -> None:
        rec = Recording()
        frame = rec.record("out", SAY)
        calls: list[str] = []
        real_loads = json.loads

        def counting_loads(text: str) -> Any:
            calls.append(text)
            return real_loads(text)

        monkeypatch.setattr(json, "loads", counting_loads)
        assert calls == []  # recording did not parse
        assert frame.type == "agent_response"
        assert frame.message_type == "assistant_message"
        assert frame.json["message"] == "Hello there"
        assert calls == [SAY]

    def test_invalid_or_non_object_json(self) -> None:
        rec = Recording()
        bad = rec.record("out", "{not json")
        array = rec.record("out", "[1, 2]")
        assert bad.json is None and bad.type is None and bad.message_type is None
        assert array.json == [1, 2] and array.type is None
        deep = rec.record("out", "[" * 100_000 + "]" * 100_000)  # json raises RecursionError
        assert deep.json is None and deep.type is None

    def test_dict_round_trip_keeps_everything(self) -> None:
        rec = fixed()
        frames = [
            rec.record("out", SAY, connection_id="c1"),
            rec.record("in", b"\xff\x00", connection_id="c2"),
            rec.record_close("out", 1000, "done"),
        ]
        for frame in frames:
            back = Frame.from_dict(json.loads(json.dumps(frame.to_dict())))
            assert back.to_dict() == frame.to_dict()
            assert (back.payload, back.close_code, back.close_reason) == (
                frame.payload,
                frame.close_code,
                frame.close_reason,
            )

    def test_repr_is_a_short_preview(self) -> None:
        frame = fixed().record("out", "x" * 500, connection_id="c1")
        text = repr(frame)
        assert text.startswith("<Frame #1 out c1 text 'xxx")
        assert "…" in text and len(text) < 100


# --------------------------------------------------------------------------- queries


class TestQueries:
    def test_sequence_protocol_and_slices_keep_seq(self) -> None:
        rec = turn()
        assert len(rec) == 6 and rec[0].seq == 1 and rec[-1].text == END
        part = rec[2:4]
        assert isinstance(part, Recording)
        assert [f.seq for f in part] == [3, 4]
        rec.record("out", START)
        assert len(part) == 2  # a snapshot, not a live view

    def test_filter_each_argument(self) -> None:
        rec = turn()
        rec.record("out", SAY, connection_id="c2")
        assert [f.seq for f in rec.filter(direction="in")] == [1]
        assert [f.seq for f in rec.outgoing()] == [2, 3, 4, 5, 6, 7]
        assert [f.seq for f in rec.incoming()] == [1]
        assert [f.seq for f in rec.filter(type="agent_response")] == [3, 4, 5, 7]
        assert [f.seq for f in rec.filter(type={"user_message", "agent_response_end"})] == [1, 6]
        assert [f.seq for f in rec.filter(message_type="assistant_message")] == [4, 7]
        assert [
            f.seq for f in rec.filter(message_type=["internal_monologue", "function_message"])
        ] == [3, 5]
        assert [f.seq for f in rec.filter(connection_id="c2")] == [7]
        assert [f.seq for f in rec.filter(text="Hello")] == [4, 7]
        assert [f.seq for f in rec.filter(regex=r"Running \w+")] == [5]
        assert [f.seq for f in rec.filter(regex=re.compile('^\\{"type":"user'))] == [1]
        assert [f.seq for f in rec.filter(predicate=lambda f: f.seq % 3 == 0)] == [3, 6]
        assert [f.seq for f in rec.filter(predicate={"message": "thinking"})] == [3]

    def test_filters_combine_and_skip_non_json(self) -> None:
        rec = turn()
        rec.record("out", b"binary")
        rec.record("out", "not json")
        got = rec.filter(direction="out", type="agent_response", text="Hello", connection_id="c1")
        assert [f.seq for f in got] == [4]
        assert len(rec.filter(type="agent_response").filter(message_type="function_message")) == 1
        assert len(rec.filter(direction="in", type="agent_response")) == 0
        assert len(rec.filter(text="binary")) == 0  # binary frames have no text

    def test_type_filters_see_through_json_escapes(self) -> None:
        rec = Recording()
        rec.record("out", '{"type":"agent_response","message_type":"\\u0061ssistant_message"}')
        rec.record("out", json.dumps({"type": 'odd "quoted"\ttype'}))
        rec.record("out", '{"type": "agent_response", "message_type": "assistant_message"}')
        assert [f.seq for f in rec.filter(message_type="assistant_message")] == [1, 3]
        assert [f.seq for f in rec.filter(type='odd "quoted"\ttype')] == [2]

    def test_type_filters_parse_only_frames_that_may_match(self) -> None:
        rec = turn()
        rec.filter(message_type="assistant_message")
        parsed = [f.seq for f in rec if f._json is not _UNSET]
        assert parsed == [4]

    def test_messages_texts_and_count_by(self) -> None:
        rec = turn()
        rec.record("out", b"\x00")
        rec.record("out", "plain")
        messages = rec.messages()
        assert len(messages) == 6 and messages[0]["type"] == "user_message"
        assert rec.texts()[-1] == "plain" and len(rec.texts()) == 7
        assert rec.count_by("type") == {
            "user_message": 1,
            "agent_response_start": 1,
            "agent_response": 3,
            "agent_response_end": 1,
            None: 2,
        }
        assert rec.count_by("message_type")["assistant_message"] == 1
        assert rec.count_by("direction") == {"in": 1, "out": 7}
        assert rec.count_by("connection_id") == {"c1": 6, "": 2}
        with pytest.raises(ValueError):
            rec.count_by("colour")

    def test_clear_restarts_seq(self) -> None:
        rec = turn()
        rec.clear()
        assert len(rec) == 0 and not rec
        assert rec.record("out", START).seq == 1


class TestTable:
    def test_table_is_deterministic_with_a_fixed_clock(self) -> None:
        rec = turn()
        rec.record("out", b"\x01\x02", connection_id="c1")
        rec.record_close("out", 1000, "", connection_id="c1")
        rec.record("out", "not json\nhere", connection_id="c1")
        expected = (
            "  seq        ms dir type                 message_type         size preview\n"
            '    1       0.0 in  user_message                                54 {"message":"hi","agent_id":"a1"}\n'  # noqa: E501
            "    2       1.0 out agent_response_start                        31\n"
            '    3       2.0 out agent_response       internal_monologue     82 {"message":"thinking"}\n'  # noqa: E501
            '    4       3.0 out agent_response       assistant_message      84 {"message":"Hello there"}\n'  # noqa: E501
            '    5       4.0 out agent_response       function_message       92 {"message":"Running send_message"}\n'  # noqa: E501
            "    6       5.0 out agent_response_end                          29\n"
            "    7       6.0 out (binary)                                     2 <2 bytes> 0102\n"
            "    8       7.0 out (close)                                      2 close 1000\n"
            "    9       8.0 out (text)                                      13 not json\\nhere"
        )
        assert rec.table() == expected
        assert turn().table() == turn().table()

    def test_table_options(self) -> None:
        rec = turn()
        rec.record("out", SAY, connection_id="c2")
        no_time = rec.table(show_time=False, width=80)
        assert " ms " not in no_time.splitlines()[0]
        assert "conn" in no_time.splitlines()[0]  # several connections: the column appears
        assert all(len(line) <= 80 for line in no_time.splitlines())
        limited = rec.table(limit=2).splitlines()
        assert len(limited) == 4 and limited[-1] == "... and 5 more frames"
        assert Recording().table() == "(no frames)"
        multiline = Recording()
        multiline.record("out", "a\nb")
        assert "a\\nb" in multiline.table()

    def test_time_column_is_relative_to_the_first_frame(self) -> None:
        rec = Recording(clock=iter([100.0, 100.25]).__next__, wall_clock=lambda: 0.0)
        rec.record("out", "a")
        rec.record("out", "b")
        rows = rec.table().splitlines()[1:]
        assert rows[0].split()[1] == "0.0" and rows[1].split()[1] == "250.0"


class TestJsonl:
    def test_round_trip_through_a_file(self, tmp_path: Path) -> None:
        rec = turn()
        rec.record("in", b"\x00\xffbin", connection_id="c2")
        rec.record_close("in", 1011, "oops", connection_id="c2")
        path = tmp_path / "traffic.jsonl"
        rec.to_jsonl(path)
        back = Recording.from_jsonl(path)
        assert [f.to_dict() for f in back] == [f.to_dict() for f in rec]
        assert back.table() == rec.table()
        assert back.record("out", "next").seq == len(rec) + 1

    def test_round_trip_through_a_file_object(self) -> None:
        rec = turn()
        buffer = io.StringIO()
        rec.to_jsonl(buffer)
        assert buffer.getvalue().count("\n") == len(rec)
        buffer.seek(0)
        assert Recording.from_jsonl(buffer).texts() == rec.texts()


# --------------------------------------------------------------------------- matching


class TestMatching:
    @pytest.mark.parametrize(
        ("expected", "actual", "result"),
        [
            ({"type": "a"}, {"type": "a", "extra": 1}, True),
            ({"type": "a"}, {"type": "b"}, False),
            ({"type": "a"}, {"other": "a"}, False),
            ({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, True),
            ({"a": {"b": 1}}, {"a": {"b": 2}}, False),
            ({"a": {"b": 1}}, {"a": 5}, False),
            ({"a": [1, {"x": 1}]}, {"a": [1, {"x": 1, "y": 2}]}, True),
            ({"a": [1, 2]}, {"a": [1, 2, 3]}, False),
            ({"a": [1, 2]}, {"a": [2, 1]}, False),
            ({"a": ANY}, {"a": None}, True),
            ({"a": ANY}, {}, False),
            ({"a": re.compile("^he")}, {"a": "hello"}, True),
            ({"a": re.compile("^he")}, {"a": 5}, False),
            ({"a": 1}, {"a": True}, False),
            ({"a": True}, {"a": True}, True),
            ({"a": 1}, {"a": 1.0}, True),
            ({}, {"anything": 1}, True),
            ({}, None, False),
            ({"a": 1}, [1], False),
        ],
    )
    def test_matches(self, expected: Any, actual: Any, result: bool) -> None:
        assert matches(expected, actual) is result

    def test_any_is_a_singleton_with_a_readable_repr(self) -> None:
        assert repr(ANY) == "ANY" and type(ANY)() is ANY and ANY == 42

    def test_frame_matches_each_kind_of_expected(self) -> None:
        frame = fixed().record("out", SAY)
        binary = fixed().record("out", b"Hello")
        assert frame_matches({"message_type": "assistant_message"}, frame)
        assert not frame_matches({"message_type": "internal_monologue"}, frame)
        assert frame_matches(SAY, frame) and not frame_matches("Hello there", frame)
        assert frame_matches(re.compile("Hello"), frame)
        assert not frame_matches(re.compile("Hello"), binary)
        assert not frame_matches({}, binary)
        assert frame_matches(lambda f: f.seq == 1, frame)
        with pytest.raises(TypeError, match="expected a dict"):
            frame_matches(42, frame)  # type: ignore[arg-type]

    def test_describe(self) -> None:
        assert describe({"type": "x"}) == '{"type": "x"}'
        assert describe("abc") == "'abc'"
        assert describe(re.compile("a+")) == "re.compile('a+')"
        assert describe(None) == "any frame"

        def is_end(frame: Frame) -> bool:
            return frame.type == "agent_response_end"

        assert "is_end" in describe(is_end)


# --------------------------------------------------------------------------- assertions


class TestAssertions:
    def test_errors_are_lab_and_assertion_errors(self) -> None:
        assert issubclass(RecordingAssertionError, LabError)
        assert issubclass(RecordingAssertionError, AssertionError)

    def test_assert_sent(self) -> None:
        rec = turn()
        assert rec.assert_sent({"message_type": "assistant_message"}).seq == 4
        assert rec.assert_sent({"type": "user_message"}, direction="in").seq == 1
        with pytest.raises(RecordingAssertionError) as info:
            rec.assert_sent({"type": "user_message"}, direction="out")
        message = str(info.value)
        assert message.startswith("""no 'out' frame matched {"type": "user_message"}""")
        assert "Frames seen (5):" in message and "agent_response_end" in message
        assert "user_message " not in message.split("\n", 1)[1]  # only 'out' frames listed

    def test_assert_not_sent(self) -> None:
        rec = turn()
        rec.assert_not_sent({"type": "server_error"})
        rec.assert_not_sent({"type": "user_message"}, direction="out")
        with pytest.raises(RecordingAssertionError, match=r"frame #6 matched"):
            rec.assert_not_sent(re.compile("response_end"))

    def test_assert_sequence(self) -> None:
        rec = turn()
        found = rec.assert_sequence(
            [{"type": "agent_response_start"}, SAY, {"type": "agent_response_end"}]
        )
        assert [f.seq for f in found] == [2, 4, 6]
        rec.assert_sequence([START, END], direction="out")
        rec.assert_sequence([])
        with pytest.raises(RecordingAssertionError) as info:
            rec.assert_sequence([{"type": "agent_response_end"}, {"type": "agent_response_start"}])
        message = str(info.value)
        assert 'item 2 of 2 not found after frame #6: {"type": "agent_response_start"}' in message
        assert "Frames seen (6):" in message

    def test_assert_sequence_does_not_reuse_a_frame(self) -> None:
        rec = turn()
        with pytest.raises(RecordingAssertionError, match="item 2 of 2"):
            rec.assert_sequence([SAY, SAY])

    def test_assert_frames(self) -> None:
        rec = turn()
        expected: Sequence[Any] = [
            {"type": "agent_response_start"},
            {"message_type": "internal_monologue"},
            re.compile("Hello"),
            lambda f: f.message_type == "function_message",
            END,
        ]
        assert len(rec.assert_frames(expected, direction="out")) == 5
        with pytest.raises(RecordingAssertionError) as info:
            rec.assert_frames(expected)
        assert str(info.value).startswith(
            "expected 5 frames, got 6; frame 1 (#1) does not match "
            '{"type": "agent_response_start"}\nFrames seen (6):'
        )
        with pytest.raises(RecordingAssertionError, match="expected 4 frames, got 5"):
            rec.assert_frames(expected[:4], direction="out")
        with pytest.raises(RecordingAssertionError) as info:
            rec.assert_frames([START, MONO, FUNC, SAY, END], direction="out")
        assert "frame 3 (#4) does not match" in str(info.value)


# --------------------------------------------------------------------------- waiting


def record_later(rec: Recording, texts: Sequence[str], gate: threading.Event) -> threading.Thread:
    """Record ``texts`` on another thread once ``gate`` is set."""

    def work() -> None:
        gate.wait()
        for text in texts:
            rec.record("out", text)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


class TestWaitFor:
    def test_counts_frames_already_recorded(self) -> None:
        rec = turn()
        frames = rec.wait_for({"type": "agent_response"}, count=3, timeout=0)
        assert [f.seq for f in frames] == [3, 4, 5]

    def test_waits_for_frames_from_another_thread(self) -> None:
        rec = Recording()
        rec.record("out", START)
        gate = threading.Event()
        # The worker may record before or during the wait: both must be seen.
        thread = record_later(rec, [MONO, SAY, END], gate)
        gate.set()
        frames = rec.wait_for({"type": "agent_response_end"}, timeout=5)
        thread.join()
        assert frames[0].text == END

    def test_wakes_up_on_each_new_frame(self) -> None:
        rec = Recording()
        done: list[list[Frame]] = []
        waiter = threading.Thread(
            target=lambda: done.append(rec.wait_for(count=3, timeout=5)), daemon=True
        )
        waiter.start()
        for text in (START, SAY, END):
            rec.record("out", text)
        waiter.join()
        assert [f.text for f in done[0]] == [START, SAY, END]

    def test_timeout_lists_frames_seen(self) -> None:
        rec = turn()
        with pytest.raises(FrameTimeoutError) as info:
            rec.wait_for({"type": "server_error"}, count=2, timeout=0.01)
        message = str(info.value)
        assert 'for 2 frame(s) matching {"type": "server_error"}; 0 matched' in message
        assert "Frames seen (6):" in message and "agent_response_start" in message
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, LabError)

    def test_wait_restarts_after_clear(self) -> None:
        rec = turn()
        rec.clear()
        with pytest.raises(FrameTimeoutError, match="0 matched"):
            rec.wait_for({"type": "agent_response"}, timeout=0)

    def test_async_wait_counts_frames_already_recorded(self) -> None:
        rec = turn()
        frames = asyncio.run(rec.wait_for_async(SAY, timeout=0))
        assert frames[0].seq == 4

    def test_async_wait_for_frames_from_another_thread(self) -> None:
        rec = Recording()
        gate = threading.Event()
        thread = record_later(rec, [START, MONO, SAY, END], gate)

        async def main() -> list[Frame]:
            task = asyncio.ensure_future(rec.wait_for_async({"type": "agent_response"}, count=2))
            await asyncio.sleep(0)  # let the wait register before frames flow
            gate.set()
            return await task

        frames = asyncio.run(main())
        thread.join()
        assert [f.seq for f in frames] == [2, 3]

    def test_async_wait_for_frames_from_the_same_loop(self) -> None:
        rec = Recording()

        async def producer() -> None:
            for text in (START, SAY, END):
                await asyncio.sleep(0)
                rec.record("out", text)

        async def main() -> list[Frame]:
            waiting = asyncio.ensure_future(rec.wait_for_async(END))
            await producer()
            return await waiting

        assert asyncio.run(main())[0].seq == 3

    def test_async_timeout(self) -> None:
        rec = turn()
        with pytest.raises(FrameTimeoutError, match="Frames seen \\(6\\)"):
            asyncio.run(rec.wait_for_async({"type": "server_error"}, timeout=0.01))
        assert rec._wakers == set() and not rec._watched  # the waiter unregistered


# --------------------------------------------------------------------------- subscribers


class TestSubscribers:
    def test_called_in_order_and_unsubscribe(self) -> None:
        rec = Recording()
        calls: list[tuple[str, int]] = []
        unsubscribe_a = rec.subscribe(lambda f: calls.append(("a", f.seq)))
        rec.subscribe(lambda f: calls.append(("b", f.seq)))
        rec.record("out", START)
        unsubscribe_a()
        unsubscribe_a()  # idempotent
        rec.record("out", END)
        assert calls == [("a", 1), ("b", 1), ("b", 2)]

    def test_a_raising_subscriber_does_not_break_recording(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        rec = Recording()
        seen: list[int] = []

        def broken(frame: Frame) -> None:
            raise RuntimeError("widget exploded")

        rec.subscribe(broken)
        rec.subscribe(lambda f: seen.append(f.seq))
        with caplog.at_level(logging.ERROR, logger="memgpt_lab.recorder"):
            rec.record("out", START)
            rec.record("out", END)
        assert len(rec) == 2 and seen == [1, 2]
        assert "widget exploded" in caplog.text

    def test_subscriber_may_read_the_recording(self) -> None:
        rec = Recording()
        lengths: list[int] = []
        rec.subscribe(lambda f: lengths.append(len(rec)))
        rec.record("out", START)
        assert lengths == [1]


# --------------------------------------------------------------------------- concurrency


def test_concurrent_recording_loses_no_frame() -> None:
    rec = Recording()
    threads_n, per_thread = 8, 2000
    barrier = threading.Barrier(threads_n)
    seen: list[int] = []
    lock = threading.Lock()

    def note(frame: Frame) -> None:
        with lock:
            seen.append(frame.seq)

    rec.subscribe(note)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            rec.record("out", f"{n}:{i}", connection_id=f"t{n}")

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = threads_n * per_thread
    assert len(rec) == total
    assert [f.seq for f in rec] == list(range(1, total + 1))
    assert sorted(seen) == list(range(1, total + 1))
    for n in range(threads_n):  # each thread's frames stay in its own order
        texts = rec.filter(connection_id=f"t{n}").texts()
        assert texts == [f"{n}:{i}" for i in range(per_thread)]


# --------------------------------------------------------------------------- MockWebSocket


class TestMockWebSocket:
    def test_ids_are_deterministic_per_recording(self) -> None:
        rec = Recording()
        assert [MockWebSocket(rec).id for _ in range(3)] == ["c1", "c2", "c3"]
        assert MockWebSocket().id == "c1"
        named = MockWebSocket(rec, connection_id="alice")
        assert named.id == "alice" and named.recording is rec

    def test_send_records_out_frames(self) -> None:
        ws = MockWebSocket()

        async def main() -> None:
            await ws.send(START)
            await ws.send(b"\x01")

        asyncio.run(main())
        assert [(f.direction, f.opcode, f.connection_id) for f in ws.recording] == [
            ("out", "text", "c1"),
            ("out", "binary", "c1"),
        ]
        assert ws.sends == 2

    def test_send_rejects_other_types(self) -> None:
        ws = MockWebSocket()
        with pytest.raises(TypeError):
            asyncio.run(ws.send({"type": "x"}))  # type: ignore[arg-type]
        assert len(ws.recording) == 0

    def test_feed_then_recv(self) -> None:
        ws = MockWebSocket()
        frame = ws.feed(USER)
        ws.feed(b"\x02")
        assert (frame.direction, frame.connection_id, frame.seq) == ("in", "c1", 1)

        async def main() -> list[str | bytes]:
            return [await ws.recv(), await ws.recv()]

        assert asyncio.run(main()) == [USER, b"\x02"]

    def test_recv_waits_for_a_feed_from_another_thread(self) -> None:
        ws = MockWebSocket()
        started = threading.Event()

        def client() -> None:
            started.wait()
            ws.feed("one")
            ws.feed("two")

        thread = threading.Thread(target=client, daemon=True)

        async def main() -> list[str | bytes]:
            first = asyncio.ensure_future(ws.recv())
            await asyncio.sleep(0)  # recv is now waiting, with nothing queued
            thread.start()
            started.set()
            return [await first, await ws.recv()]

        assert asyncio.run(main()) == ["one", "two"]
        thread.join()

    def test_recv_works_from_a_second_event_loop(self) -> None:
        ws = MockWebSocket()
        ws.feed("a")
        assert asyncio.run(ws.recv()) == "a"
        ws.feed("b")
        assert asyncio.run(ws.recv()) == "b"  # not bound to the first loop

    def test_async_for_until_peer_closes(self) -> None:
        ws = MockWebSocket()
        for text in ("a", "b", "c"):
            ws.feed(text)
        closing = ws.feed_close(1000, "bye")
        assert closing is not None and closing.direction == "in" and closing.opcode == "close"

        async def main() -> list[str | bytes]:
            return [message async for message in ws]

        assert asyncio.run(main()) == ["a", "b", "c"]  # fed before the close: still received
        assert ws.closed and (ws.close_code, ws.close_reason) == (1000, "bye")
        with pytest.raises(ConnectionClosedOK):
            asyncio.run(ws.send("late"))

    def test_async_for_raises_on_abnormal_peer_close(self) -> None:
        ws = MockWebSocket()
        ws.feed_close(1011, "server broke")

        async def main() -> None:
            async for _ in ws:
                pass

        with pytest.raises(ConnectionClosedError) as info:
            asyncio.run(main())
        assert info.value.rcvd is not None and info.value.rcvd.code == 1011

    def test_close_records_wakes_recv_and_is_idempotent(self) -> None:
        ws = MockWebSocket()

        async def main() -> BaseException:
            pending = asyncio.ensure_future(ws.recv())
            await asyncio.sleep(0)
            await ws.close(1000, "done")
            await ws.close(1001, "again")
            with pytest.raises(ConnectionClosed) as info:
                await pending
            return info.value

        exc = asyncio.run(main())
        assert isinstance(exc, ConnectionClosedOK)
        assert exc.sent is not None and (exc.sent.code, exc.sent.reason) == (1000, "done")
        closes = ws.recording.filter(predicate=lambda f: f.opcode == "close")
        assert len(closes) == 1 and closes[0].direction == "out" and closes[0].close_code == 1000
        assert ws.closed and ws.close_code == 1000
        assert ws.feed_close() is None

    def test_open_state(self) -> None:
        ws = MockWebSocket()
        assert not ws.closed and ws.close_code is None and ws.close_reason is None
        assert repr(ws) == "<MockWebSocket c1 open>"

    def test_send_after_close_raises_connection_closed(self) -> None:
        ws = MockWebSocket()

        async def main() -> None:
            await ws.close(4000, "custom")
            await ws.send("x")

        with pytest.raises(ConnectionClosedError):  # 4000 is not a normal closure code
            asyncio.run(main())
        with pytest.raises(ConnectionClosedError):
            ws.feed("too late")
        assert len(ws.recording) == 1

    def test_wait_closed_from_another_thread(self) -> None:
        ws = MockWebSocket()
        gate = threading.Event()

        def client() -> None:
            gate.wait()
            ws.feed_close()

        thread = threading.Thread(target=client, daemon=True)
        thread.start()

        async def main() -> None:
            waiting = asyncio.ensure_future(ws.wait_closed())
            await asyncio.sleep(0)
            gate.set()
            await waiting

        asyncio.run(main())
        thread.join()
        assert ws.closed

    def test_fail_after(self) -> None:
        ws = MockWebSocket(fail_after=2)

        async def main() -> None:
            await ws.send("1")
            await ws.send("2")
            with pytest.raises(ConnectionClosedError):
                await ws.send("3")
            with pytest.raises(ConnectionClosedError):
                await ws.send("4")
            with pytest.raises(ConnectionClosedError):
                await ws.recv()

        asyncio.run(main())
        assert ws.recording.texts() == ["1", "2"]
        assert ws.closed and ws.close_code == 1006

    def test_fail_with(self) -> None:
        ws = MockWebSocket(fail_with=OSError("broken pipe"))
        with pytest.raises(OSError, match="broken pipe"):
            asyncio.run(ws.send("x"))
        later = MockWebSocket(fail_after=1, fail_with=BrokenPipeError)

        async def main() -> None:
            await later.send("ok")
            await later.send("no")

        with pytest.raises(BrokenPipeError):
            asyncio.run(main())
        assert len(ws.recording) == 0 and later.recording.texts() == ["ok"]

    def test_send_from_a_background_loop_read_from_the_main_thread(self) -> None:
        ws = MockWebSocket()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            futures = [asyncio.run_coroutine_threadsafe(ws.send(str(i)), loop) for i in range(50)]
            frames = ws.recording.wait_for(count=50, timeout=5)
            for future in futures:
                future.result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
        assert [f.text for f in frames] == [str(i) for i in range(50)]


def test_wait_for_zero_frames_returns_at_once_and_negative_counts_are_refused() -> None:
    rec = Recording()
    assert rec.wait_for(count=0, timeout=60) == []
    assert asyncio.run(rec.wait_for_async(count=0, timeout=60)) == []
    with pytest.raises(ValueError, match="count must be 0 or more"):
        rec.wait_for(count=-1)


def test_times_never_run_backwards_against_seq_with_many_recording_threads() -> None:
    rec = Recording()

    def work() -> None:
        for _ in range(2000):
            rec.record("out", "x")

    threads = [threading.Thread(target=work, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times = [frame.time for frame in rec]
    assert times == sorted(times)
