from __future__ import annotations

import json

import pytest

from memgpt_lab.messages import call_arguments, function_call_of, sent_text, user_packet

SAY = {"name": "send_message", "arguments": json.dumps({"message": "hi"})}


def test_function_call_of_reads_function_call_and_tool_calls() -> None:
    assert function_call_of({"role": "assistant", "function_call": SAY}) == SAY
    tool = {"role": "assistant", "tool_calls": [{"id": "1", "function": SAY}, {"function": {}}]}
    assert function_call_of(tool) == SAY
    assert function_call_of({"role": "assistant", "content": "thinking"}) is None


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ({"a": 1}, {"a": 1}),
        (None, {}),
        ("", {}),
        ("[1, 2]", None),
        ("{not json", None),
        (42, None),
    ],
)
def test_call_arguments(arguments: object, expected: object) -> None:
    assert call_arguments({"name": "f", "arguments": arguments}) == expected


def test_sent_text_only_for_an_assistants_send_message() -> None:
    assert sent_text({"role": "assistant", "function_call": SAY}) == "hi"
    as_object = {"name": "send_message", "arguments": {"message": "hello"}}
    assert sent_text({"role": "assistant", "function_call": as_object}) == "hello"
    other = {"name": "archival_memory_search", "arguments": '{"query": "x"}'}
    assert sent_text({"role": "assistant", "function_call": other}) is None
    assert sent_text({"role": "user", "function_call": SAY}) is None
    broken = {"name": "send_message", "arguments": "{oops"}
    assert sent_text({"role": "assistant", "function_call": broken}) is None


def test_user_packet() -> None:
    packet = {"type": "heartbeat", "reason": "r"}
    assert user_packet({"role": "user", "content": json.dumps(packet)}) == packet
    assert user_packet({"role": "user", "content": "plain words"}) is None
    assert user_packet({"role": "user", "content": "[1]"}) is None
    assert user_packet({"role": "assistant", "content": json.dumps(packet)}) is None


def test_packet_of_reads_json_objects_only() -> None:
    from memgpt_lab.messages import packet_of

    assert packet_of('{"status": "OK"}') == {"status": "OK"}
    assert packet_of("{}") == {}
    assert packet_of("[1]") is None
    assert packet_of("not json") is None
    assert packet_of(None) is None
