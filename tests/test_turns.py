"""The turn engine, without sockets or loops: framing, seq, routing, bounds."""

from __future__ import annotations

import json
import threading

import pytest

from memgpt_lab.turns import Outbox, TurnEngine
from memgpt_lab.ws import protocol


def frames(outbox: Outbox) -> list[dict]:
    return [json.loads(text) for text in outbox.take()]


def test_a_turn_is_framed_with_agent_turn_and_seq() -> None:
    engine = TurnEngine("a1", fields={"agent_name": "sam"})
    watcher = Outbox("c1")
    engine.subscribe(watcher)
    assert engine.begin_turn(request_id="r1") == 1
    engine.emit("internal_monologue", "Thinking.")
    engine.emit("user_message", "not a frame")
    engine.emit("assistant_message", "Hi!")
    engine.end_turn(request_id="r1")
    common = {"agent_id": "a1", "agent_name": "sam", "turn_id": 1}
    assert frames(watcher) == [
        {"type": "agent_response_start", **common, "request_id": "r1", "seq": 1},
        {
            "type": "agent_response",
            "message_type": "internal_monologue",
            "message": "Thinking.",
            **common,
            "seq": 2,
        },
        {
            "type": "agent_response",
            "message_type": "assistant_message",
            "message": "Hi!",
            **common,
            "seq": 3,
        },
        {"type": "agent_response_end", **common, "request_id": "r1", "seq": 4},
    ]
    assert engine.frames == 4 and engine.turn_id is None


def test_recipients_are_fixed_when_a_turn_begins() -> None:
    engine = TurnEngine("a1")
    early, late, requester = Outbox("early"), Outbox("late"), Outbox("asker")
    engine.subscribe(early)
    engine.begin_turn(requester)
    engine.subscribe(late)  # mid-turn: not this turn
    engine.emit("function_message", "x")
    engine.unsubscribe(early)  # mid-turn: still gets this turn
    engine.end_turn()
    assert [f["type"] for f in frames(early)] == [
        "agent_response_start",
        "agent_response",
        "agent_response_end",
    ]
    assert [f["seq"] for f in frames(requester)] == [1, 2, 3]
    assert frames(late) == []
    engine.begin_turn()
    engine.end_turn()
    assert [f["seq"] for f in frames(late)] == [1, 2]  # seq is per consumer
    assert frames(requester) == []  # a requester is not a subscriber


def test_errors_come_before_the_end_and_ending_twice_is_harmless() -> None:
    engine = TurnEngine()
    outbox = Outbox()
    engine.subscribe(outbox)
    engine.begin_turn()
    with pytest.raises(RuntimeError, match="still open"):
        engine.begin_turn()
    engine.end_turn("it broke", error_code="turn_failed")
    engine.end_turn()
    assert frames(outbox) == [
        {"type": "agent_response_start", "turn_id": 1, "seq": 1},
        {
            "type": "agent_response_error",
            "message": "it broke",
            "turn_id": 1,
            "error_code": "turn_failed",
            "seq": 2,
        },
        {"type": "agent_response_end", "turn_id": 1, "seq": 3},
    ]


def test_events_outside_a_turn_go_to_subscribers_without_turn_id() -> None:
    engine = TurnEngine("a1")
    outbox = Outbox()
    engine.subscribe(outbox)
    engine.emit_many([("internal_monologue", "a"), ("function_message", "b")])
    assert [(f.get("turn_id"), f["message"], f["seq"]) for f in frames(outbox)] == [
        (None, "a", 1),
        (None, "b", 2),
    ]


def test_reserved_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="may not set seq, turn_id"):
        TurnEngine(fields={"seq": 1, "turn_id": 2})


def test_on_ready_fires_when_the_queue_becomes_non_empty_only() -> None:
    woken: list[int] = []
    outbox = Outbox("c", on_ready=lambda: woken.append(1))
    outbox.push_many(['{"type":"a"}', '{"type":"b"}'])
    outbox.push('{"type":"c"}')
    assert woken == [1]
    assert [json.loads(t)["seq"] for t in outbox.take()] == [1, 2, 3]
    outbox.send({"type": "d"})
    assert woken == [1, 1] and outbox.queued == 1


def test_an_outbox_over_its_bound_overflows_once_and_drops_its_queue() -> None:
    overflows: list[int] = []
    outbox = Outbox("slow", max_queued_bytes=200, on_overflow=lambda: overflows.append(1))
    for n in range(10):
        outbox.push(protocol.encode({"type": "agent_response", "message": f"frame {n} " * 3}))
    assert outbox.overflowed and overflows == [1]
    assert outbox.take() == [] and outbox.queued_chars == 0
    outbox.push('{"type":"x"}')  # accepts nothing more
    assert outbox.queued == 0


def test_a_closed_outbox_accepts_nothing() -> None:
    outbox = Outbox()
    outbox.push('{"type":"x"}')
    outbox.close()
    outbox.push('{"type":"y"}')
    assert outbox.take() == []


def test_lone_surrogates_are_escaped_so_frames_are_always_utf8() -> None:
    engine = TurnEngine()
    outbox = Outbox()
    engine.subscribe(outbox)
    engine.emit("assistant_message", "bad \ud800 text")
    (text,) = outbox.take()
    text.encode("utf-8")  # would raise with a raw surrogate
    assert json.loads(text)["message"] == "bad \ud800 text"


def test_threads_emitting_together_keep_each_threads_order_and_lose_nothing() -> None:
    engine = TurnEngine("a1")
    outbox = Outbox()
    engine.subscribe(outbox)

    def emit(name: str) -> None:
        for n in range(500):
            engine.emit("function_message", f"{name} {n}")

    threads = [threading.Thread(target=emit, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = frames(outbox)
    assert [f["seq"] for f in got] == list(range(1, 2001))
    for i in range(4):
        mine = [int(f["message"].split()[1]) for f in got if f["message"].startswith(f"t{i} ")]
        assert mine == list(range(500))
