"""serve-llm: the OpenAI-compatible endpoint, its validation, its faults, the server and the CLI.

The pure core (request parsing, overflow bodies, truncation) is tested on its
own; the app in-process with Starlette's TestClient; the server end to end with
a real uvicorn server on loopback and the official ``openai`` SDK.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openai
import pytest
from starlette.testclient import TestClient

from memgpt_lab.cli import DEMO_MESSAGES, main
from memgpt_lab.errors import LLMError, UnknownNameError
from memgpt_lab.functions import DEFAULT_FUNCTIONS
from memgpt_lab.interface import CollectingInterface
from memgpt_lab.llm import ContextWindowExceededError, ReplayModel, ScriptedModel, Turn
from memgpt_lab.llm.server import (
    ERROR_STYLES,
    ChatRequest,
    Faults,
    LLMServer,
    RequestError,
    context_overflow_body,
    create_app,
    estimate_prompt,
    parse_request,
    resolve_model,
    truncate_messages,
)
from memgpt_lab.llm.wire import (
    INNER_THOUGHTS,
    StreamAssembler,
    add_inner_thoughts,
    from_wire_completion,
    to_wire_messages,
)
from memgpt_lab.presets import DEFAULT_PRESET, create_agent_from_preset

SCHEMAS = [spec.schema for spec in DEFAULT_FUNCTIONS.values()]
SYSTEM = {"role": "system", "content": "You are Sam.\n<human>\nLikes tea.\n</human>"}
HELLO = [SYSTEM, {"role": "user", "content": "Hello, is anyone there?"}]
MY_NAME = [SYSTEM, {"role": "user", "content": "My name is Ada."}]
SERVER_ERROR = {
    "error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}
BAD_KEY = {
    "error": {
        "message": "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


def tools(schemas: Sequence[dict[str, Any]] = SCHEMAS) -> list[dict[str, Any]]:
    return [{"type": "function", "function": s} for s in schemas]


def body(messages: Any = HELLO, **fields: Any) -> dict[str, Any]:
    return {"model": "scripted", "messages": messages, **fields}


class RecordingModel:
    """A ChatModel that records what it is given and asks ScriptedModel to answer.

    It also notes, on each call, whether the endpoint's model lock was held and
    whether an event loop was running in the calling thread.
    """

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner if inner is not None else ScriptedModel()
        self.name = self.inner.name
        self.calls: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
        self.app: Any = None
        self.lock_held: list[bool] = []
        self.on_event_loop: list[bool] = []

    def chat(self, messages: Sequence[dict[str, Any]], functions: Sequence[dict[str, Any]]) -> Any:
        self.calls.append((list(messages), list(functions)))
        if self.app is not None:
            self.lock_held.append(self.app.state.model_lock.locked())
        try:
            asyncio.get_running_loop()
            self.on_event_loop.append(True)
        except RuntimeError:
            self.on_event_loop.append(False)
        return self.inner.chat(messages, functions)


class FailingModel:
    name = "failing"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def chat(self, messages: Any, functions: Any) -> Any:
        raise self.error


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


def sdk(server: LLMServer, api_key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0)


def events(text: str) -> list[Any]:
    """The data of each server-sent event; ``[DONE]`` stays a string."""
    blocks = [b for b in text.split("\n\n") if b]
    assert all(b.startswith("data: ") for b in blocks), blocks
    return [b[6:] if b[6:] == "[DONE]" else json.loads(b[6:]) for b in blocks]


def agent_calls() -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """What a real agent passes its model over the demo conversation."""
    model = RecordingModel()
    agent = create_agent_from_preset(
        DEFAULT_PRESET, {"name": "sam"}, model, "Name: Sam", "Name: unknown", CollectingInterface()
    )
    for message in DEMO_MESSAGES:
        agent.turn(message)
    return model.calls


# --- the pure core ----------------------------------------------------------------------------


def test_parse_request_reads_tools_and_gives_the_model_the_agent_view():
    chat = parse_request(body(MY_NAME, tools=tools(), tool_choice="auto"), "scripted")
    assert chat == ChatRequest("scripted", MY_NAME, SCHEMAS, "tools", "content", False, False)


def test_parse_request_reads_legacy_functions():
    chat = parse_request(body(functions=SCHEMAS, function_call="auto"), "scripted")
    assert chat.function_format == "functions"
    assert chat.functions == SCHEMAS


def test_parse_request_in_kwarg_mode_strips_inner_thoughts_from_the_schemas():
    sent = body(tools=tools([add_inner_thoughts(s) for s in SCHEMAS]))
    chat = parse_request(sent, "scripted")
    assert chat.inner_thoughts == "kwarg"
    assert chat.functions == SCHEMAS
    assert all(INNER_THOUGHTS in t["function"]["parameters"]["properties"] for t in sent["tools"])


def test_parse_request_reads_stream_options():
    chat = parse_request(body(stream=True, stream_options={"include_usage": True}), "scripted")
    assert (chat.stream, chat.include_usage) == (True, True)
    assert parse_request(body(stream=True), "scripted").include_usage is False


@pytest.mark.parametrize("function_format", ["tools", "functions"])
@pytest.mark.parametrize("inner_thoughts", ["content", "kwarg"])
def test_parse_request_gives_back_every_history_an_agent_sends(function_format, inner_thoughts):
    for messages, functions in agent_calls():
        schemas = (
            [add_inner_thoughts(f) for f in functions] if inner_thoughts == "kwarg" else functions
        )
        sent = body(to_wire_messages(messages, function_format, inner_thoughts))
        sent["tools" if function_format == "tools" else "functions"] = (
            tools(schemas) if function_format == "tools" else schemas
        )
        chat = parse_request(sent, "scripted")
        assert chat.messages == messages
        assert chat.functions == functions


def test_parse_request_does_not_change_the_body():
    sent = body(
        to_wire_messages(agent_calls()[-1][0]),
        tools=tools([add_inner_thoughts(s) for s in SCHEMAS]),
    )
    before = json.dumps(sent, sort_keys=True)
    parse_request(sent, "scripted")
    assert json.dumps(sent, sort_keys=True) == before


CALL = {"id": "call_1", "type": "function", "function": {"name": "send_message", "arguments": "{}"}}
ANSWERED = [SYSTEM, {"role": "assistant", "content": None, "tool_calls": [CALL]}]


# (body, param, code, message or None): OpenAI's words where they are known exactly
# fmt: off
REFUSED = [
    ([], None, None, "Invalid type for request body: expected an object, but got an array instead."),
    (body(temperature=0, options={"num_ctx": 8}), None, None, "Unrecognized request argument supplied: options"),
    (body(foo=1, bar=2), None, None, "Unrecognized request arguments supplied: foo, bar"),
    ({"messages": HELLO}, None, None, "you must provide a model parameter"),
    (body(model=4), "model", "invalid_type", "Invalid type for 'model': expected a string, but got an integer instead."),
    ({"model": "scripted"}, "messages", "missing_required_parameter", "Missing required parameter: 'messages'."),
    (body("hello"), "messages", "invalid_type", "Invalid type for 'messages': expected an array of objects, but got a string instead."),
    (body([]), "messages", "empty_array", "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."),
    (body(["hi"]), "messages[0]", "invalid_type", "Invalid type for 'messages[0]': expected an object, but got a string instead."),
    (body([{"content": "hi"}]), "messages[0].role", "missing_required_parameter", "Missing required parameter: 'messages[0].role'."),
    (body([{"role": "robot", "content": "hi"}]), "messages[0].role", "invalid_value", "Invalid value: 'robot'. Supported values are: 'system', 'developer', 'user', 'assistant', 'tool', and 'function'."),
    (body([{"role": "user"}]), "messages[0].content", "missing_required_parameter", "Missing required parameter: 'messages[0].content'."),
    (body([{"role": "user", "content": None}]), "messages[0].content", "invalid_type", "Invalid type for 'messages[0].content': expected one of a string or array of objects, but got null instead."),
    (body([SYSTEM, {"role": "assistant", "content": None}]), "messages[1].content", "invalid_type", None),
    (body([SYSTEM, {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]), "messages.[1].role", None, "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."),
    (body([*ANSWERED, {"role": "tool", "tool_call_id": "call_9", "content": "ok"}]), "messages.[2].tool_call_id", None, "Invalid parameter: 'tool_call_id' of 'call_9' not found in 'tool_calls' of previous message."),
    (body([*ANSWERED, {"role": "tool", "content": "ok"}]), "messages[2].tool_call_id", "missing_required_parameter", None),
    (body([*ANSWERED, {"role": "user", "content": "hi"}]), "messages.[1].role", None, "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: call_1"),
    (body(ANSWERED), "messages.[1].role", None, None),
    (body([SYSTEM, {"role": "assistant", "content": None, "tool_calls": [{**CALL, "function": {"name": "f", "arguments": {}}}]}]), "messages[1].tool_calls[0].function.arguments", "invalid_type", None),
    (body([SYSTEM, {"role": "assistant", "content": None, "tool_calls": [{**CALL, "type": "code"}]}]), "messages[1].tool_calls[0].type", "invalid_value", None),
    (body([SYSTEM, {"role": "assistant", "content": "x", "function_call": {"name": "f"}}]), "messages[1].function_call.arguments", "missing_required_parameter", None),
    (body([SYSTEM, {"role": "function", "content": "ok"}]), "messages.[1].name", None, "Missing parameter 'name': messages with role 'function' must have a 'name'."),
    (body(tools={}), "tools", "invalid_type", None),
    (body(tools=[]), "tools", "empty_array", "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead."),
    (body(tools=[{"type": "retrieval"}]), "tools[0].type", "invalid_value", "Invalid value: 'retrieval'. Supported values are: 'function'."),
    (body(tools=[{"function": SCHEMAS[0]}]), "tools[0].type", "missing_required_parameter", None),
    (body(tools=[{"type": "function"}]), "tools[0].function", "missing_required_parameter", None),
    (body(tools=tools([{"description": "no name"}])), "tools[0].function.name", "missing_required_parameter", None),
    (body(tools=tools([{"name": "memory.search"}])), "tools[0].function.name", "invalid_value", None),
    (body(tools=tools([{"name": "f", "parameters": []}])), "tools[0].function.parameters", "invalid_type", None),
    (body(functions=[{"description": "no name"}]), "functions[0].name", "missing_required_parameter", None),
    (body(tools=tools(), functions=SCHEMAS), "functions", None, None),
    (body(tool_choice="auto"), "tool_choice", None, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."),
    (body(functions=SCHEMAS, tool_choice="auto"), "tool_choice", None, None),
    (body(tools=tools(), tool_choice="sometimes"), "tool_choice", "invalid_value", "Invalid value: 'sometimes'. Supported values are: 'none', 'auto', and 'required'."),
    (body(tools=tools(), tool_choice={"type": "function"}), "tool_choice", "invalid_value", None),
    (body(tools=tools(), tool_choice={"type": "function", "function": {"name": "fly"}}), "tool_choice.function.name", "invalid_value", None),
    (body(tools=tools(), tool_choice=3), "tool_choice", "invalid_type", None),
    (body(functions=SCHEMAS, function_call="required"), "function_call", "invalid_value", None),
    (body(function_call="auto"), "function_call", None, None),
    (body(tools=tools(), function_call="auto"), "function_call", None, None),
    (body(parallel_tool_calls=False), "parallel_tool_calls", None, "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified."),
    (body(tools=tools(), parallel_tool_calls="no"), "parallel_tool_calls", "invalid_type", None),
    (body(stream="yes"), "stream", "invalid_type", "Invalid type for 'stream': expected a boolean, but got a string instead."),
    (body(stream_options={"include_usage": True}), "stream_options", None, "The 'stream_options' parameter is only allowed when 'stream' is enabled."),
    (body(stream=True, stream_options={"include_usage": "yes"}), "stream_options.include_usage", "invalid_type", None),
    (body(n=2), "n", "invalid_value", None),
]
# fmt: on


@pytest.mark.parametrize(("sent", "param", "code", "message"), REFUSED)
def test_parse_request_refuses_what_openai_refuses(sent, param, code, message):
    with pytest.raises(RequestError) as caught:
        parse_request(sent, "scripted")
    assert caught.value.status == 400
    error = caught.value.body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    if message is not None:
        assert error["message"] == message


def test_parse_request_accepts_what_openai_accepts():
    answered = [*ANSWERED, {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]
    accepted = [
        body(answered, tools=tools(), tool_choice="required", parallel_tool_calls=False),
        body(tools=tools(), tool_choice={"type": "function", "function": {"name": "send_message"}}),
        body(functions=SCHEMAS, function_call={"name": "send_message"}),
        body(
            [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], temperature=0, seed=1
        ),
        body(
            [{"role": "developer", "content": "be brief"}, HELLO[1]],
            max_tokens=10,
            n=1,
            stream=None,
        ),
    ]
    for sent in accepted:
        parse_request(sent, "scripted")


def test_parse_request_checks_the_model_name_last():
    with pytest.raises(RequestError) as caught:
        parse_request(body(model="gpt-4o"), "scripted")
    assert caught.value.status == 404
    assert caught.value.body == {
        "error": {
            "message": "The model `gpt-4o` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    with pytest.raises(RequestError) as caught:
        parse_request(body([], model="gpt-4o"), "scripted")
    assert caught.value.status == 400


def test_overflow_bodies_are_the_providers_own():
    assert context_overflow_body("openai", 5000, 4096) == {
        "error": {
            "message": "This model's maximum context length is 4096 tokens. However, your messages "
            "resulted in 5000 tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    assert context_overflow_body("vllm", 5000, 4096) == {
        "object": "error",
        "message": "This model's maximum context length is 4096 tokens. However, you requested "
        "5000 tokens (5000 in the messages, 0 in the completion). Please reduce the length of the "
        "messages or completion.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    assert context_overflow_body("llamacpp", 5000, 4096) == {
        "error": {
            "code": 400,
            "message": "the request exceeds the available context size, try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 5000,
            "n_ctx": 4096,
        }
    }
    assert context_overflow_body("lmstudio", 5000, 4096) == {
        "error": "Trying to keep the first 5000 tokens when context the overflows. However, the "
        "model is loaded with context length of only 4096 tokens, which is not enough. Try to load "
        "the model with a larger context length, or provide a shorter input"
    }
    with pytest.raises(ValueError, match="unknown error style 'ollama'"):
        context_overflow_body("ollama", 1, 1)


def test_the_prompt_estimate_is_the_scripted_models_count():
    for messages, functions in agent_calls():
        answer = ScriptedModel().chat(messages, functions)
        assert estimate_prompt(messages, functions) == answer["usage"]["prompt_tokens"]


def test_truncation_drops_the_oldest_non_system_messages_until_the_prompt_fits():
    messages, functions = agent_calls()[-1]
    limit = estimate_prompt(messages, functions) - 50
    kept = truncate_messages(messages, functions, limit)
    assert estimate_prompt(kept, functions) <= limit
    assert kept[0] == messages[0] and kept[-1] == messages[-1]
    assert kept == [messages[0], *messages[len(messages) - len(kept) + 1 :]]
    assert truncate_messages(messages, functions, 10**9) == messages


def test_truncation_keeps_system_messages_and_the_last_message_whatever_the_limit():
    messages = [SYSTEM, {"role": "user", "content": "a" * 400}, {"role": "user", "content": "b"}]
    assert truncate_messages(messages, [], 1) == [SYSTEM, messages[-1]]


@pytest.mark.parametrize(
    "options",
    [
        {"error_style": "ollama"},
        {"rate_limit": -1},
        {"fail": 1.5},
        {"malformed": True},
        {"overflow_after": 0},
        {"truncate_context": -5},
        {"delay": -0.1},
        {"retry_after": float("nan")},
        {"fail_status": 200},
        {"fail_status": 600},
    ],
)
def test_faults_refuse_bad_settings(options):
    with pytest.raises(ValueError, match=next(iter(options))):
        Faults(**options)


def test_faults_default_to_none():
    faults = Faults()
    assert (faults.rate_limit, faults.fail, faults.malformed, faults.drop_stream) == (0, 0, 0, 0)
    assert (faults.overflow_after, faults.truncate_context, faults.delay) == (None, None, 0.0)


# --- the app, in-process ----------------------------------------------------------------------


def test_a_plain_completion_carries_the_models_answer_and_usage():
    app = create_app(ReplayModel([Turn("Just words.")]), clock=lambda: 1_767_258_000.5)
    with TestClient(app) as client:
        response = client.post("/v1/chat/completions", json=body(model="replay"))
    direct = ReplayModel([Turn("Just words.")]).chat(HELLO, [])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": "chatcmpl-lab1",
        "object": "chat.completion",
        "created": 1_767_258_000,
        "model": "replay",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Just words."},
                "finish_reason": "stop",
            }
        ],
        "usage": direct["usage"],
    }


@pytest.mark.parametrize("function_format", ["tools", "functions"])
@pytest.mark.parametrize("inner_thoughts", ["content", "kwarg"])
def test_the_model_sees_what_the_agent_would_pass_it_and_the_agent_gets_its_answer(
    function_format, inner_thoughts
):
    model = RecordingModel()
    app = create_app(model)
    model.app = app
    calls = agent_calls()
    with TestClient(app) as client:
        for messages, functions in calls:
            schemas = (
                [add_inner_thoughts(f) for f in functions]
                if inner_thoughts == "kwarg"
                else functions
            )
            sent = body(to_wire_messages(messages, function_format, inner_thoughts))
            if function_format == "tools":
                sent["tools"] = tools(schemas)
            else:
                sent["functions"] = schemas
            response = client.post("/v1/chat/completions", json=sent)
            assert response.status_code == 200, response.text
            direct = ScriptedModel().chat(messages, functions)
            answer = from_wire_completion(response.json(), inner_thoughts)
            assert answer["choices"][0]["message"] == direct["choices"][0]["message"]
            assert answer["usage"] == direct["usage"]
    assert model.calls == calls
    assert model.lock_held == [True] * len(calls)
    assert model.on_event_loop == [False] * len(calls)


def test_models_are_listed_and_found_by_name():
    with TestClient(create_app(ScriptedModel(), served_model_name="lab-7b")) as client:
        listed = client.get("/v1/models")
        found = client.get("/v1/models/lab-7b")
        missing = client.get("/v1/models/gpt-4o")
        wrong_name = client.post("/v1/chat/completions", json=body())
        right_name = client.post("/v1/chat/completions", json=body(model="lab-7b"))
    card = {"id": "lab-7b", "object": "model", "created": 0, "owned_by": "memgpt-lab"}
    assert listed.json() == {"object": "list", "data": [card]}
    assert found.json() == card
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    assert wrong_name.status_code == 404
    assert wrong_name.json()["error"]["message"] == (
        "The model `scripted` does not exist or you do not have access to it."
    )
    assert right_name.json()["model"] == "lab-7b"


def test_unknown_urls_and_methods_get_openai_error_bodies():
    with TestClient(create_app(ScriptedModel())) as client:
        unknown = client.post("/v1/completions", json=body())
        wrong_method = client.get("/v1/chat/completions")
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": {
            "message": "Invalid URL (POST /v1/completions)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert wrong_method.status_code == 405
    assert (
        wrong_method.json()["error"]["message"]
        == "Invalid method for URL (GET /v1/chat/completions)"
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"model=scripted",
        b"\xff\xfe",
        b"[" * 100_000,  # json raised RecursionError: a 500 instead of OpenAI's 400
        b'{"model": "scripted", "messages": ' + b"[" * 200 + b"]" * 200 + b"}",
    ],
    ids=["empty", "cut", "form", "not-utf8", "nested-100000", "nested-200"],
)
def test_a_body_that_is_not_json_gets_openais_parse_error(raw):
    app = create_app(ScriptedModel())
    with TestClient(app) as client:
        response = client.post(
            "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("We could not parse the JSON body of your request. ")
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", None, None)
    assert app.state.counts["refused"] == 1


def test_an_api_key_is_required_once_set_and_never_echoed():
    secret = "sk-guessed-0123456789abcdef"
    app = create_app(ScriptedModel(), api_key="sk-right")
    with TestClient(app) as client:
        missing = client.post("/v1/chat/completions", json=body())
        wrong = client.post(
            "/v1/chat/completions", json=body(), headers={"authorization": f"Bearer {secret}"}
        )
        basic = client.get("/v1/models", headers={"authorization": "Basic sk-right"})
        models = client.get("/v1/models")
        right = client.post(
            "/v1/chat/completions", json=body(), headers={"authorization": "Bearer sk-right"}
        )
        listed = client.get("/v1/models", headers={"authorization": "bearer sk-right"})
    for refused in (missing, wrong, basic, models):
        assert refused.status_code == 401
        assert refused.json() == BAD_KEY
    for fragment in (secret, secret[:8], secret[-6:], "sk-right"):
        assert fragment not in wrong.text
    assert right.status_code == 200
    assert listed.status_code == 200
    assert app.state.requests == [body()]  # refused before the body was read


def test_the_app_records_request_bodies_and_counts():
    app = create_app(ScriptedModel())
    with TestClient(app) as client:
        client.post("/v1/chat/completions", json=body())
        client.post("/v1/chat/completions", json=body(model="gpt-4o"))
        client.post("/v1/chat/completions", json=body(MY_NAME, tools=tools()))
    assert app.state.requests == [body(), body(model="gpt-4o"), body(MY_NAME, tools=tools())]
    counts = app.state.counts
    assert (counts["requests"], counts["completions"], counts["refused"]) == (3, 2, 1)


def test_recording_can_be_turned_off():
    app = create_app(ScriptedModel(), record=False)
    with TestClient(app) as client:
        client.post("/v1/chat/completions", json=body())
    assert app.state.requests == []
    assert app.state.counts["requests"] == 1


def test_streaming_sends_the_chunks_then_done():
    with TestClient(create_app(ScriptedModel())) as client:
        plain = client.post("/v1/chat/completions", json=body(MY_NAME, tools=tools()))
        streamed = client.post(
            "/v1/chat/completions", json=body(MY_NAME, tools=tools(), stream=True)
        )
        with_usage = client.post(
            "/v1/chat/completions",
            json=body(MY_NAME, tools=tools(), stream=True, stream_options={"include_usage": True}),
        )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    chunks = events(streamed.text)
    assert chunks[-1] == "[DONE]"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks[:-1])
    assert all("usage" not in c for c in chunks[:-1])
    assembler = StreamAssembler()
    for chunk in chunks[:-1]:
        assembler.feed(chunk)
    expected = plain.json()
    del expected["usage"]
    assembled = assembler.completion()
    assert from_wire_completion(assembled) == from_wire_completion(expected)
    usage_chunks = events(with_usage.text)
    assert usage_chunks[-2] == {**usage_chunks[-2], "choices": [], "usage": plain.json()["usage"]}


# --- faults, in-process ---------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_then_serves():
    app = create_app(ScriptedModel(), Faults(rate_limit=2, retry_after=1.5))
    with TestClient(app) as client:
        first, second, third = (client.post("/v1/chat/completions", json=body()) for _ in range(3))
    for limited in (first, second):
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1.5"
        assert limited.headers["retry-after-ms"] == "1500"
        error = limited.json()["error"]
        assert error["message"].startswith("Rate limit reached for scripted ")
        assert "Please try again in 1.5s." in error["message"]
        assert (error["type"], error["param"], error["code"]) == (
            "requests",
            None,
            "rate_limit_exceeded",
        )
    assert third.status_code == 200
    assert app.state.counts["rate_limited"] == 2


def test_failures_come_after_the_rate_limit_with_the_status_asked_for():
    app = create_app(ScriptedModel(), Faults(rate_limit=1, fail=2, fail_status=503))
    with TestClient(app) as client:
        statuses = []
        for _ in range(4):
            response = client.post("/v1/chat/completions", json=body())
            statuses.append(response.status_code)
            if response.status_code == 503:
                assert response.json() == SERVER_ERROR
    assert statuses == [429, 503, 503, 200]


def test_faults_spare_invalid_requests():
    app = create_app(ScriptedModel(), Faults(rate_limit=1))
    with TestClient(app) as client:
        invalid = client.post("/v1/chat/completions", json=body([]))
        limited = client.post("/v1/chat/completions", json=body())
    assert (invalid.status_code, limited.status_code) == (400, 429)


@pytest.mark.parametrize("style", ERROR_STYLES)
def test_a_prompt_over_the_limit_gets_the_overflow_body_of_the_style(style):
    limit = estimate_prompt(HELLO, []) - 1
    model = RecordingModel()
    app = create_app(model, Faults(overflow_after=limit, error_style=style))
    with TestClient(app) as client:
        over = client.post("/v1/chat/completions", json=body())
        under = client.post("/v1/chat/completions", json=body([{"role": "user", "content": "hi"}]))
    assert over.status_code == 400
    assert over.json() == context_overflow_body(style, limit + 1, limit)
    assert under.status_code == 200
    assert len(model.calls) == 1
    assert (app.state.counts["overflowed"], app.state.counts["refused"]) == (1, 0)


@pytest.mark.parametrize("style", ERROR_STYLES)
def test_a_model_that_refuses_the_prompt_gets_the_overflow_body_of_the_style(style):
    model = ScriptedModel(context_window=10)
    with TestClient(create_app(model, Faults(error_style=style))) as client:
        response = client.post("/v1/chat/completions", json=body())
    assert response.status_code == 400
    assert response.json() == context_overflow_body(style, estimate_prompt(HELLO, []), 10)


def test_an_overflow_from_a_model_without_a_window_still_has_the_providers_shape():
    failing = FailingModel(ContextWindowExceededError("too long"))
    with TestClient(create_app(failing)) as client:
        response = client.post("/v1/chat/completions", json=body(model="failing"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"


def test_a_failing_model_gets_openais_server_error():
    app = create_app(ReplayModel(["only one"]))
    with TestClient(app) as client:
        played = client.post("/v1/chat/completions", json=body(model="replay"))
        exhausted = client.post("/v1/chat/completions", json=body(model="replay"))
    assert (
        played.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"]
        == "send_message"
    )
    assert exhausted.status_code == 500
    assert exhausted.json() == SERVER_ERROR
    assert app.state.counts["model_errors"] == 1


def test_a_model_answering_no_completion_gets_a_server_error():
    with TestClient(create_app(ReplayModel([{"choices": []}]))) as client:
        response = client.post("/v1/chat/completions", json=body(model="replay"))
    assert (response.status_code, response.json()) == (500, SERVER_ERROR)


def test_malformed_answers_are_json_typed_bodies_cut_short():
    app = create_app(ScriptedModel(), Faults(malformed=2))
    with TestClient(app) as client:
        answers = [client.post("/v1/chat/completions", json=body()) for _ in range(2)]
        answers.append(client.post("/v1/chat/completions", json=body(stream=True)))
        good = client.post("/v1/chat/completions", json=body())
    for bad in answers[:2]:
        assert bad.status_code == 200
        assert bad.headers["content-type"] == "application/json"
        with pytest.raises(ValueError):
            json.loads(bad.text)
        assert good.text.startswith(bad.text[:10])
    assert events(answers[2].text)[-1] == "[DONE]"  # the budget was spent
    assert good.json()["object"] == "chat.completion"
    assert app.state.counts["malformed"] == 2


def test_truncation_drops_old_messages_silently_and_reports_the_smaller_prompt():
    messages, functions = agent_calls()[-1]
    full = estimate_prompt(messages, functions)
    limit = full - 100
    model = RecordingModel()
    app = create_app(model, Faults(truncate_context=limit))
    with TestClient(app) as client:
        response = client.post(
            "/v1/chat/completions", json=body(to_wire_messages(messages), tools=tools(functions))
        )
    assert response.status_code == 200
    seen = model.calls[0][0]
    assert seen == truncate_messages(messages, functions, limit)
    assert len(seen) < len(messages)
    assert response.json()["usage"]["prompt_tokens"] == estimate_prompt(seen, functions) < full
    assert app.state.counts["truncated"] == 1


def test_truncation_is_counted_only_when_it_drops_something():
    app = create_app(ScriptedModel(), Faults(truncate_context=1))
    with TestClient(app) as client:
        response = client.post("/v1/chat/completions", json=body())  # system + last: kept
    assert response.status_code == 200
    assert app.state.counts["truncated"] == 0


# --- the server, end to end with the openai SDK ------------------------------------------------


def test_a_plain_completion_through_the_sdk():
    with LLMServer(ReplayModel([Turn("Just words.")])) as server, sdk(server) as client:
        answer = client.chat.completions.create(model="replay", messages=HELLO)
    assert answer.object == "chat.completion"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == "Just words."
    assert answer.choices[0].message.tool_calls is None
    assert answer.usage is not None and answer.usage.prompt_tokens == estimate_prompt(HELLO, [])


def test_tools_through_the_sdk(server):
    with sdk(server) as client:
        answer = client.chat.completions.create(
            model="scripted", messages=MY_NAME, tools=tools(), tool_choice="required"
        )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "core_memory_append"
    assert json.loads(call.function.arguments)["content"] == "Name: Ada"
    assert choice.message.content == "Their name is Ada. I'll note it in core memory."


def test_legacy_functions_through_the_sdk(server):
    with sdk(server) as client:
        answer = client.chat.completions.create(
            model="scripted", messages=MY_NAME, functions=SCHEMAS, function_call="auto"
        )
    choice = answer.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.tool_calls is None
    assert choice.message.function_call is not None
    assert choice.message.function_call.name == "core_memory_append"


def test_kwarg_mode_puts_the_monologue_in_the_arguments(server):
    with sdk(server) as client:
        answer = client.chat.completions.create(
            model="scripted",
            messages=MY_NAME,
            tools=tools([add_inner_thoughts(s) for s in SCHEMAS]),
        )
    message = answer.choices[0].message
    assert message.content is None
    arguments = json.loads((message.tool_calls or [])[0].function.arguments)
    assert list(arguments)[0] == INNER_THOUGHTS
    assert arguments == {
        INNER_THOUGHTS: "Their name is Ada. I'll note it in core memory.",
        "name": "human",
        "content": "Name: Ada",
        "request_heartbeat": True,
    }


@pytest.mark.parametrize(
    ("fields", "inner_thoughts"),
    [
        ({}, "content"),
        ({"tools": tools()}, "content"),
        ({"functions": SCHEMAS}, "content"),
        ({"tools": tools([add_inner_thoughts(s) for s in SCHEMAS])}, "kwarg"),
    ],
)
def test_a_stream_through_the_sdk_assembles_into_the_plain_answer(server, fields, inner_thoughts):
    with sdk(server) as client:
        plain = client.chat.completions.create(model="scripted", messages=MY_NAME, **fields)
        assembler = StreamAssembler()
        with client.chat.completions.create(
            model="scripted",
            messages=MY_NAME,
            stream=True,
            stream_options={"include_usage": True},
            **fields,
        ) as stream:
            for chunk in stream:
                assembler.feed(chunk.model_dump(exclude_none=True))
    assembled = assembler.completion()
    assert assembled["usage"] == plain.model_dump(exclude_none=True)["usage"]
    expected = from_wire_completion(plain.model_dump(exclude_none=True), inner_thoughts)
    assert from_wire_completion(assembled, inner_thoughts) == expected


def test_models_through_the_sdk():
    with LLMServer(served_model_name="lab-7b") as server, sdk(server) as client:
        assert [m.id for m in client.models.list()] == ["lab-7b"]
        assert client.models.retrieve("lab-7b").owned_by == "memgpt-lab"
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="scripted", messages=HELLO)
    assert caught.value.code == "model_not_found"


def test_validation_errors_through_the_sdk(server):
    with sdk(server) as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="scripted",
            messages=HELLO,
            tools=tools(),
            tool_choice="sometimes",
        )
    assert caught.value.response.json()["error"]["param"] == "tool_choice"
    assert server.app.state.counts["refused"] == 1


def test_an_api_key_through_the_sdk():
    with LLMServer(api_key="sk-lab-key") as server:
        with (
            sdk(server, "sk-not-the-key") as client,
            pytest.raises(openai.AuthenticationError) as caught,
        ):
            client.models.list()
        with sdk(server, "sk-lab-key") as client:
            assert client.chat.completions.create(model="scripted", messages=HELLO).choices
    assert caught.value.response.json() == BAD_KEY
    assert "sk-not-the-key" not in caught.value.response.text


def test_rate_limit_through_the_sdk():
    with LLMServer(faults=Faults(rate_limit=1, retry_after=2)) as server, sdk(server) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="scripted", messages=HELLO)
        assert client.chat.completions.create(model="scripted", messages=HELLO).choices
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.response.headers["retry-after-ms"] == "2000"
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.json()["error"]["message"].endswith(
        "Please try again in 2s. Visit https://platform.openai.com/account/rate-limits to learn more."
    )


@pytest.mark.parametrize("status", [500, 502, 503])
def test_failures_through_the_sdk(status):
    with LLMServer(faults=Faults(fail=1, fail_status=status)) as server, sdk(server) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="scripted", messages=HELLO)
        assert client.chat.completions.create(model="scripted", messages=HELLO).choices
    assert caught.value.status_code == status
    assert caught.value.response.json() == SERVER_ERROR


@pytest.mark.parametrize("style", ERROR_STYLES)
def test_overflow_through_the_sdk(style):
    faults = Faults(overflow_after=20, error_style=style)
    with (
        LLMServer(faults=faults) as server,
        sdk(server) as client,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        client.chat.completions.create(model="scripted", messages=HELLO)
    assert caught.value.response.json() == context_overflow_body(
        style, estimate_prompt(HELLO, []), 20
    )


def test_a_malformed_answer_through_the_sdk():
    with LLMServer(faults=Faults(malformed=1)) as server, sdk(server) as client:
        raw = client.chat.completions.with_raw_response.create(model="scripted", messages=HELLO)
        assert raw.http_response.status_code == 200
        assert raw.http_response.headers["content-type"] == "application/json"
        with pytest.raises(ValueError):
            json.loads(raw.http_response.text)
        with pytest.raises(ValueError):
            raw.parse()
        assert client.chat.completions.create(model="scripted", messages=HELLO).choices


def test_a_dropped_stream_makes_the_sdk_iteration_raise():
    with LLMServer(faults=Faults(drop_stream=1)) as server, sdk(server) as client:
        received = []
        with (
            pytest.raises(openai.APIConnectionError),
            client.chat.completions.create(
                model="scripted", messages=MY_NAME, tools=tools(), stream=True
            ) as stream,
        ):
            for chunk in stream:
                received.append(chunk)
        assert received and all(c.choices[0].finish_reason is None for c in received)
        assembler = StreamAssembler()
        with client.chat.completions.create(
            model="scripted", messages=MY_NAME, tools=tools(), stream=True
        ) as stream:
            for chunk in stream:
                assembler.feed(chunk.model_dump(exclude_none=True))
        assert assembler.completion()["choices"][0]["finish_reason"] == "tool_calls"
    assert server.app.state.counts["dropped_streams"] == 1


def test_a_delay_makes_a_short_timeout_expire():
    with LLMServer(faults=Faults(delay=1.0)) as server, sdk(server) as client:
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="scripted", messages=HELLO, timeout=0.2)
        assert [m.id for m in client.models.list()] == ["scripted"]  # the loop was not blocked


def test_truncation_through_the_sdk():
    messages, functions = agent_calls()[-1]
    full = estimate_prompt(messages, functions)
    least = estimate_prompt([messages[0], messages[-1]], functions)
    limit = (full + least) // 2
    faults = Faults(truncate_context=limit)
    with LLMServer(faults=faults) as server, sdk(server) as client:
        answer = client.chat.completions.create(
            model="scripted",
            messages=to_wire_messages(messages),
            tools=tools(functions),
        )
    assert answer.usage is not None
    assert answer.usage.prompt_tokens <= limit < full


def test_requests_are_answered_concurrently_with_the_model_called_one_at_a_time():
    from concurrent.futures import ThreadPoolExecutor

    model = RecordingModel()
    with LLMServer(model) as server, sdk(server) as client:
        model.app = server.app

        def ask(number: int) -> str | None:
            said = [SYSTEM, {"role": "user", "content": f"message {number}"}]
            answer = client.chat.completions.create(model="scripted", messages=said)
            return answer.choices[0].message.content

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(16)))
    assert len(answers) == 16 and all(answers)
    assert model.lock_held == [True] * 16
    assert model.on_event_loop == [False] * 16
    assert server.app.state.counts["completions"] == 16


# --- LLMServer ---------------------------------------------------------------------------------


def test_the_server_starts_and_stops_cleanly():
    server = LLMServer()
    assert repr(server) == "<LLMServer stopped model='scripted'>"
    assert server.start() is server
    try:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.base_url == f"{server.url}/v1"
        assert repr(server) == f"<LLMServer {server.base_url} model='scripted'>"
        assert isinstance(server.model, ScriptedModel)
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    finally:
        server.stop()
    server.stop()
    assert not server.running
    assert repr(server) == "<LLMServer stopped model='scripted'>"
    with socket.socket() as probe, pytest.raises(OSError):
        probe.connect(("127.0.0.1", server.port))


def test_a_taken_port_is_an_os_error():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        server = LLMServer(port=taken.getsockname()[1])
        with pytest.raises(OSError):
            server.start()
        assert not server.running


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "example.com", "::"])
def test_hosts_beyond_loopback_need_an_api_key(host):
    with pytest.raises(ValueError, match="without an API key"):
        LLMServer(host=host)
    assert LLMServer(host=host, api_key="sk-lab").url.startswith("http://")  # not started


def test_loopback_hosts_need_no_key():
    for host in ("localhost", "127.0.0.2", "::1"):
        LLMServer(host=host)
    assert LLMServer(host="::1").url == "http://[::1]:0"


def test_bad_ports_are_refused():
    for port in (-1, 70000):
        with pytest.raises(ValueError, match="port"):
            LLMServer(port=port)


def test_model_strings_resolve_to_models(tmp_path: Path):
    assert isinstance(resolve_model("scripted"), ScriptedModel)
    model = ScriptedModel()
    assert resolve_model(model) is model
    listed = tmp_path / "answers.json"
    listed.write_text(json.dumps(["First.", "Second."]), encoding="utf-8")
    assert resolve_model(f"replay:{listed}").responses == ["First.", "Second."]
    lines = tmp_path / "answers.jsonl"
    lines.write_text('"One."\n{"choices": []}\n', encoding="utf-8")
    assert resolve_model(f"replay:{lines}").responses == ["One.", {"choices": []}]
    with pytest.raises(UnknownNameError, match="replay:FILE"):
        resolve_model("gpt-4o")
    with pytest.raises(UnknownNameError):
        resolve_model("replay:")
    with pytest.raises(LLMError, match="cannot read replay file"):
        resolve_model(f"replay:{tmp_path / 'missing.json'}")
    with pytest.raises(TypeError):
        resolve_model(42)


def test_a_cassette_served_through_the_sdk(tmp_path: Path):
    from memgpt_lab.llm.cassette import Cassette

    path = tmp_path / "tape.jsonl"
    recorder = Cassette(path, ScriptedModel(), mode="all")
    recorded = recorder.chat(MY_NAME, SCHEMAS)
    with LLMServer(f"cassette:{path}") as server, sdk(server) as client:
        assert [m.id for m in client.models.list()] == ["scripted"]  # the name in the file
        answer = client.chat.completions.create(model="scripted", messages=MY_NAME, tools=tools())
        with pytest.raises(openai.InternalServerError) as caught:  # nothing recorded for it
            client.chat.completions.create(model="scripted", messages=HELLO, tools=tools())
    assert caught.value.response.json() == SERVER_ERROR
    played = from_wire_completion(answer.model_dump(exclude_none=True))
    assert played["choices"][0]["message"] == recorded["choices"][0]["message"]


def test_a_replay_file_served_through_the_sdk(tmp_path: Path):
    whole = {
        "model": "recorded",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Recorded."}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(["Played back.", whole]), encoding="utf-8")
    with LLMServer(f"replay:{path}") as server, sdk(server) as client:
        first = client.chat.completions.create(model="replay", messages=HELLO, tools=tools())
        second = client.chat.completions.create(model="replay", messages=HELLO, tools=tools())
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="replay", messages=HELLO, tools=tools())
    (call,) = first.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"message": "Played back."}
    assert second.choices[0].message.content == "Recorded."
    assert second.usage is not None and second.usage.total_tokens == 9
    assert second.model == "replay"


# --- the CLI ---------------------------------------------------------------------------------


def test_serve_llm_runs_until_sigterm():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memgpt_lab.cli",
            "serve-llm",
            "--port",
            "0",
            "--served-model-name",
            "lab-7b",
            "--rate-limit",
            "1",
            "--retry-after",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.fullmatch(
            r"memgpt-lab serve-llm on (http://127\.0\.0\.1:\d+/v1) \(model lab-7b\)\n", line
        )
        assert found, line
        with openai.OpenAI(base_url=found.group(1), api_key="sk-test", max_retries=0) as client:
            assert [m.id for m in client.models.list()] == ["lab-7b"]
            with pytest.raises(openai.RateLimitError) as caught:
                client.chat.completions.create(model="lab-7b", messages=HELLO)
            assert caught.value.response.headers["retry-after"] == "0.5"
            assert client.chat.completions.create(model="lab-7b", messages=HELLO).choices
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--rate-limit", "-1"], "rate_limit must be a whole number"),
        (["--fail-status", "200"], "fail_status must be an HTTP error status"),
        (["--host", "0.0.0.0"], "without an API key"),
        (["--model", "gpt-4o"], "unknown model 'gpt-4o'"),
        (["--model", "replay:/nonexistent/answers.json"], "cannot read replay file"),
        (["--port", "70000"], "port must be"),
    ],
)
def test_serve_llm_refuses_bad_settings(capsys, arguments, message):
    assert main(["serve-llm", *arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("memgpt-lab serve-llm: ")
    assert message in err


def test_serve_llm_refuses_a_taken_port(capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        assert main(["serve-llm", "--port", str(taken.getsockname()[1])]) == 2
    assert capsys.readouterr().err.startswith("memgpt-lab serve-llm: ")


def test_serve_llm_options_all_have_help(capsys):
    with pytest.raises(SystemExit):
        main(["serve-llm", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--host", "--port", "--model", "--served-model-name", "--api-key", "--overflow-after",
        "--error-style", "--rate-limit", "--retry-after", "--fail", "--fail-status", "--delay",
        "--malformed", "--drop-stream", "--truncate-context",
    ):  # fmt: skip
        assert re.search(rf"^\s+{option}\b[^\n]*(\n\s{{10,}}\S|\s{{2,}}\S)", text, re.M), option


def test_the_listening_socket_is_tcp_so_responses_are_not_delayed_by_nagle():
    """asyncio sets TCP_NODELAY only on sockets whose protocol is IPPROTO_TCP; with proto 0
    every response waited ~40 ms for a delayed ACK (22 requests/s instead of ~700)."""
    import socket

    from memgpt_lab.llm.server import _listen

    listener = _listen("127.0.0.1", 0)
    try:
        assert listener.proto == socket.IPPROTO_TCP
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        with client, accepted:
            assert accepted.proto == socket.IPPROTO_TCP
    finally:
        listener.close()
