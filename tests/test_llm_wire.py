"""The wire format both ways (pure): histories, answers and streams survive the round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt_lab.errors import LLMError
from memgpt_lab.functions import DEFAULT_FUNCTIONS
from memgpt_lab.llm.wire import (
    INNER_THOUGHTS,
    StreamAssembler,
    add_inner_thoughts,
    from_wire_completion,
    from_wire_messages,
    stream_chunks,
    strip_inner_thoughts,
    to_wire_completion,
    to_wire_messages,
    uses_inner_thoughts,
)

SCHEMAS = [spec.schema for spec in DEFAULT_FUNCTIONS.values()]
FORMATS = ["tools", "functions"]
MODES = ["content", "kwarg"]

text = st.text(max_size=40)
thought = st.one_of(st.none(), st.text(min_size=1, max_size=40))
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
arguments = st.one_of(
    st.dictionaries(text.filter(lambda k: k != INNER_THOUGHTS), json_value, max_size=4).map(
        lambda d: json.dumps(d, ensure_ascii=False)
    ),
    st.just("{not json"),
    st.just('"a string"'),
)


@st.composite
def histories(draw: Any) -> list[dict[str, Any]]:
    """Histories as the agent writes them: a call's result follows its call."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": draw(text)}]
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["user", "said", "call"]))
        if kind == "user":
            messages.append({"role": "user", "content": draw(text)})
        elif kind == "said":
            messages.append({"role": "assistant", "content": draw(thought)})
        else:
            name = draw(st.sampled_from(sorted(DEFAULT_FUNCTIONS)))
            call = {"name": name, "arguments": draw(arguments)}
            messages.append({"role": "assistant", "content": draw(thought), "function_call": call})
            messages.append({"role": "function", "name": name, "content": draw(text)})
    return messages


@pytest.mark.parametrize("function_format", FORMATS)
@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=60, deadline=None)
@given(history=histories())
def test_history_round_trip(history: list[dict[str, Any]], function_format: str, mode: str) -> None:
    wire = to_wire_messages(history, function_format, mode)  # type: ignore[arg-type]
    assert from_wire_messages(wire) == history


def test_tools_format_pairs_calls_and_results() -> None:
    history = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "Greet them.",
            "function_call": {"name": "send_message", "arguments": '{"message": "Hello"}'},
        },
        {"role": "function", "name": "send_message", "content": "ok"},
    ]
    wire = to_wire_messages(history, "tools", "kwarg")
    assert wire[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_2",
                "type": "function",
                "function": {
                    "name": "send_message",
                    "arguments": '{"inner_thoughts": "Greet them.", "message": "Hello"}',
                },
            }
        ],
    }
    assert wire[3] == {"role": "tool", "tool_call_id": "call_2", "content": "ok"}
    legacy = to_wire_messages(history, "functions", "content")
    assert legacy == history


def test_a_result_without_its_call_stays_as_text() -> None:
    wire = to_wire_messages([{"role": "function", "name": "x", "content": "r"}], "tools")
    assert wire == [{"role": "user", "content": "r"}]


def test_inner_thoughts_schema() -> None:
    schema = SCHEMAS[0]
    added = add_inner_thoughts(schema)
    assert list(added["parameters"]["properties"])[0] == INNER_THOUGHTS
    assert added["parameters"]["required"][0] == INNER_THOUGHTS
    assert schema != added and INNER_THOUGHTS not in schema["parameters"]["properties"]
    assert strip_inner_thoughts(added) == schema
    assert uses_inner_thoughts([add_inner_thoughts(s) for s in SCHEMAS])
    assert not uses_inner_thoughts(SCHEMAS)
    assert not uses_inner_thoughts([])


completion_messages = st.builds(
    lambda content, call: {
        "role": "assistant",
        "content": content,
        **({"function_call": call} if call else {}),
    },
    thought,
    st.one_of(
        st.none(),
        st.builds(
            lambda name, args: {"name": name, "arguments": args},
            st.sampled_from(sorted(DEFAULT_FUNCTIONS)),
            arguments,
        ),
    ),
)


def _completion(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "chat.completion",
        "model": "scripted",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }


@pytest.mark.parametrize("function_format", FORMATS)
@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=60, deadline=None)
@given(message=completion_messages)
def test_answer_round_trip_plain_and_streamed(
    message: dict[str, Any], function_format: str, mode: str
) -> None:
    wire = to_wire_completion(_completion(message), function_format, mode, id="chatcmpl-1")  # type: ignore[arg-type]
    back = from_wire_completion(wire, mode)  # type: ignore[arg-type]
    assert back["choices"][0]["message"] == message
    assert back["usage"] == _completion(message)["usage"]
    assembler = StreamAssembler()
    for chunk in stream_chunks(wire):
        assembler.feed(json.loads(json.dumps(chunk)))  # through JSON, as on the wire
    streamed = assembler.completion()
    assert streamed["choices"] == wire["choices"]
    assert streamed["usage"] == wire["usage"]
    assert from_wire_completion(streamed, mode)["choices"][0]["message"] == message  # type: ignore[arg-type]


def test_several_tool_calls_keep_the_first_and_name_the_rest() -> None:
    body = {
        "model": "m",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "a", "function": {"name": "send_message", "arguments": "{}"}},
                        {
                            "id": "b",
                            "function": {"name": "archival_memory_search", "arguments": "{}"},
                        },
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
    }
    message = from_wire_completion(body)["choices"][0]["message"]
    assert message["function_call"]["name"] == "send_message"
    assert message["ignored_tool_calls"] == ["archival_memory_search"]


def test_a_call_that_is_not_an_object_reaches_the_agent_as_a_bad_call() -> None:
    body = {
        "choices": [
            {"message": {"role": "assistant", "content": "x", "function_call": "send_message"}}
        ]
    }
    message = from_wire_completion(body)["choices"][0]["message"]
    assert message["function_call"] == {"name": None, "arguments": '"send_message"'}


@pytest.mark.parametrize("body", [{}, {"choices": []}, {"choices": [{"message": "hi"}]}, []])
def test_answers_without_a_message_are_errors(body: Any) -> None:
    with pytest.raises(LLMError, match="choices|message"):
        from_wire_completion(body)


def test_stream_assembly_of_interleaved_tool_call_deltas() -> None:
    """llama-server sends id and name first, then argument fragments, per index."""
    assembler = StreamAssembler()
    deltas = [
        {"role": "assistant", "content": None},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "c0",
                    "type": "function",
                    "function": {"name": "send_", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"name": "message", "arguments": '{"mess'}}]},
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "pause_heartbeats"},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": 'age": "hi"}'}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": '{"minutes": 1}'}}]},
    ]
    for delta in deltas:
        assembler.feed({"id": "x", "model": "m", "choices": [{"index": 0, "delta": delta}]})
    assembler.feed(
        {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    )
    message = assembler.completion()["choices"][0]["message"]
    assert message["content"] is None
    assert [c["function"] for c in message["tool_calls"]] == [
        {"name": "send_message", "arguments": '{"message": "hi"}'},
        {"name": "pause_heartbeats", "arguments": '{"minutes": 1}'},
    ]


def test_a_stream_that_stops_early_is_an_error() -> None:
    assembler = StreamAssembler()
    assembler.feed({"choices": [{"index": 0, "delta": {"content": "half"}}]})
    with pytest.raises(LLMError, match="ended before the answer was finished"):
        assembler.completion()
