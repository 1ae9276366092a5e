"""Real models: OpenAIChatModel through the official SDK against serve-llm, the stand-in for providers.

Every failure a provider can send is injected by serve-llm with that provider's
own error body; the agent must come out of each as it went in.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from memgpt_lab import system
from memgpt_lab.agent import Agent
from memgpt_lab.errors import LLMError, UnknownNameError
from memgpt_lab.humans import get_human_text
from memgpt_lab.llm import (
    ContextTruncationWarning,
    ContextWindowExceededError,
    OpenAIChatModel,
    Rule,
    ScriptedModel,
    Turn,
    get_model,
)
from memgpt_lab.llm.providers import (
    PROVIDERS,
    ModelSpec,
    context_overflow_message,
    parse_model_string,
)
from memgpt_lab.llm.server import Faults, LLMServer
from memgpt_lab.personas import get_persona_text
from memgpt_lab.presets import DEFAULT_PRESET, create_agent_from_preset
from memgpt_lab.recorder import MockWebSocket, Recording, TickClock
from memgpt_lab.system import FixedClock
from memgpt_lab.ws.interface import SyncWebSocketInterface

# --- model strings and provider profiles (pure) -------------------------------------------


@pytest.mark.parametrize(
    ("text", "provider", "model", "base_url"),
    [
        ("openai:gpt-4o-mini", "openai", "gpt-4o-mini", "https://api.openai.com/v1"),
        ("ollama:llama3.1", "ollama", "llama3.1", "http://localhost:11434/v1"),
        ("ollama:qwen2.5:7b", "ollama", "qwen2.5:7b", "http://localhost:11434/v1"),
        ("vllm:meta/Llama-3-8B", "vllm", "meta/Llama-3-8B", "http://localhost:8000/v1"),
        ("llamacpp:local", "llamacpp", "local", "http://localhost:8080/v1"),
        ("lmstudio:phi-4", "lmstudio", "phi-4", "http://localhost:1234/v1"),
        (
            "openai-compatible:m@http://127.0.0.1:9/v1",
            "openai-compatible",
            "m",
            "http://127.0.0.1:9/v1",
        ),
        ("ollama:llama3.1@http://gpu:11434/v1", "ollama", "llama3.1", "http://gpu:11434/v1"),
        ("openai:org@model", "openai", "org@model", "https://api.openai.com/v1"),
    ],
)
def test_model_strings(text: str, provider: str, model: str, base_url: str) -> None:
    built = get_model(text)
    assert isinstance(built, OpenAIChatModel)
    assert (built.provider, built.model, built.base_url) == (provider, model, base_url)
    assert built.name == f"{provider}:{model}"
    spec = parse_model_string(text)
    assert parse_model_string(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("bard:x", UnknownNameError, "unknown provider 'bard'; available: llamacpp, lmstudio"),
        ("ollama:", ValueError, "names no model"),
        ("openai-compatible:m", ValueError, "needs a base URL"),
    ],
)
def test_bad_model_strings(text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        get_model(text)


def test_profiles_decide_the_request() -> None:
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}]
    schema = {"name": "send_message", "parameters": {"type": "object", "properties": {}}}
    openai_body = OpenAIChatModel("gpt-4o-mini").request(messages, [schema])
    assert openai_body["tool_choice"] == "required" and openai_body["parallel_tool_calls"] is False
    assert openai_body["tools"][0]["function"]["parameters"]["required"] == ["inner_thoughts"]
    vllm = OpenAIChatModel("m", provider="vllm", temperature=0).request(messages, [schema])
    assert vllm["tool_choice"] == "auto" and vllm["temperature"] == 0
    ollama = OpenAIChatModel("m", provider="ollama", inner_thoughts="content").request(
        messages, [schema]
    )
    assert "tool_choice" not in ollama and "parallel_tool_calls" not in ollama
    assert ollama["tools"][0]["function"] == schema
    legacy = OpenAIChatModel("m", function_format="functions").request(messages, [schema])
    assert legacy["functions"][0]["name"] == "send_message" and legacy["function_call"] == "auto"
    assert "tools" not in legacy and "tool_choice" not in legacy
    streamed = OpenAIChatModel("m", provider="llamacpp", stream=True).request(messages, [])
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}
    assert "tools" not in streamed  # the summary request offers no functions
    assert {p.inner_thoughts for p in PROVIDERS.values()} == {"kwarg"}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "context_length_exceeded",
                }
            },
        ),
        (
            400,
            {
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (5000 in the messages, 0 in the completion).",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 5000,
                    "n_ctx": 4096,
                }
            },
        ),
        (
            400,
            {
                "error": "Trying to keep the first 5000 tokens when context the overflows. However, the model is loaded with context length of only 4096 tokens, which is not enough."
            },
        ),
        (400, {"error": {"message": "Context length exceeded", "type": "invalid_request_error"}}),
        (413, {"error": {"message": "prompt is too long: 210000 tokens > 200000 maximum"}}),
    ],
)
def test_every_providers_overflow_is_recognised(status: int, body: Any) -> None:
    assert context_overflow_message(status, body)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            400,
            {
                "error": {
                    "message": "Invalid value for 'tool_choice'",
                    "type": "invalid_request_error",
                }
            },
        ),
        (500, {"error": {"message": "maximum context length", "type": "server_error"}}),
        (401, {"error": "unauthorised"}),
        (400, "plain text"),
    ],
)
def test_other_errors_are_not_overflows(status: int, body: Any) -> None:
    assert context_overflow_message(status, body) is None


def test_constructing_needs_no_key_and_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = OpenAIChatModel("gpt-4o-mini")
    assert "sk-" not in repr(model)
    with pytest.raises(LLMError, match=r"no API key for OpenAI: set OPENAI_API_KEY"):
        model.chat([{"role": "user", "content": "hi"}], [])


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="inner_thoughts must be one of"):
        OpenAIChatModel("m", inner_thoughts="sometimes")
    with pytest.raises(UnknownNameError, match="unknown provider"):
        OpenAIChatModel("m", provider="bard")
    with pytest.raises(ValueError, match="max_retries"):
        OpenAIChatModel("m", max_retries=-1)


# --- against serve-llm ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


def served(server: LLMServer, **options: Any) -> OpenAIChatModel:
    return OpenAIChatModel("scripted", base_url=server.base_url, api_key="sk-test", **options)


class Waits:
    """Records the waits between retries instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_agent(model: Any, interface: Any = None, **config: Any) -> Agent:
    return create_agent_from_preset(
        DEFAULT_PRESET,
        config or None,
        model,
        get_persona_text("sam_pov"),
        get_human_text("basic"),
        interface,
        clock=FixedClock(),
        id="real",
    )


def state(agent: Agent) -> str:
    return json.dumps(
        [
            agent.messages,
            agent.memory.blocks,
            len(agent.recall_memory),
            len(agent.archival_memory),
            agent.summaries,
        ]
    )


def test_one_turn_through_the_sdk(server: LLMServer) -> None:
    agent = make_agent(served(server))
    turn = agent.turn("my name is Ada")
    assert turn.replies == ["Nice to meet you, Ada! I've written your name down."]
    assert "Name: Ada" in agent.memory.blocks["human"]
    call = agent.last_call
    assert call is not None and call.model == "scripted"
    assert call.reported_prompt_tokens == agent.memory_snapshot()["usage"]["prompt_tokens_reported"]
    assert call.reported_prompt_tokens and call.reported_prompt_tokens > 0


def test_list_models_is_the_connection_check(server: LLMServer) -> None:
    assert served(server).list_models() == ["scripted"]
    with pytest.raises(
        LLMError, match=r"cannot connect to http://127\.0\.0\.1:9/v1 .*is the server running"
    ):
        OpenAIChatModel(
            "m", base_url="http://127.0.0.1:9/v1", provider="openai-compatible"
        ).list_models()


# --- the equivalence test -------------------------------------------------------------------

RULES = [
    Rule(
        r"\bnote that (.+)",
        lambda match, ctx: Turn(
            "A detail worth keeping in view.",
            "core_memory_append",
            {"name": "human", "content": match.group(1), "request_heartbeat": True},
        ),
    ),
    Rule(
        r"\btake a break\b",
        Turn("They want quiet. Pause the timer.", "pause_heartbeats", {"minutes": 5}),
    ),
    Rule(
        r"what did we talk about on (\d{4}-\d\d-\d\d)",
        lambda match, ctx: Turn(
            "Search the day's messages.",
            "conversation_search_date",
            {"start_date": match.group(1), "end_date": match.group(1), "request_heartbeat": True},
        ),
    ),
]
CONVERSATION = [
    "Hello, is anyone there?",
    "My name is Ada.",
    "Actually, my name is Grace.",
    "Note that I like tea.",
    "Remember that my favourite language is OCaml — “naïve” café ✓.",
    "What do you remember about my favourite language?",
    "What did I say about OCaml?",
    "What did we talk about on 2026-01-01?",
    "Take a break for a while.",
    "Thanks, that is all. " + "More words to fill the context. " * 20,
    "One more thing to say, and then goodbye.",
]
EVERY_FUNCTION = {
    "send_message",
    "pause_heartbeats",
    "core_memory_append",
    "core_memory_replace",
    "conversation_search",
    "conversation_search_date",
    "archival_memory_insert",
    "archival_memory_search",
}


def frames_of(model: Any) -> tuple[list[tuple[Any, ...]], Agent]:
    recording = Recording(clock=TickClock(), wall_clock=TickClock(1_767_258_000.0))
    with SyncWebSocketInterface() as interface:
        interface.register_client(MockWebSocket(recording))
        agent = make_agent(model, interface, context_window=2600)
        for text in CONVERSATION:
            agent.turn(text)
            interface.flush()
    return [(f.type, f.message_type, (f.json or {}).get("message")) for f in recording], agent


@pytest.mark.parametrize(
    "options",
    [
        {"inner_thoughts": "content"},
        {"inner_thoughts": "kwarg"},
        {"inner_thoughts": "kwarg", "stream": True},
        {"inner_thoughts": "content", "function_format": "functions", "stream": True},
    ],
    ids=["content", "kwarg", "kwarg-streamed", "legacy-functions-streamed"],
)
def test_served_scripted_model_gives_the_same_frames(options: dict[str, Any]) -> None:
    expected, direct = frames_of(ScriptedModel(rules=RULES))
    with LLMServer(ScriptedModel(rules=RULES)) as server:
        got, agent = frames_of(served(server, **options))
    assert got == expected
    ran = {m.group(1) for _, _, text in expected if (m := re.match(r"Running (\w+)\(", str(text)))}
    assert ran == EVERY_FUNCTION, sorted(EVERY_FUNCTION - ran)
    assert (
        direct.summaries >= 1 and agent.summaries == direct.summaries
    )  # memory pressure happened, alike
    assert agent.memory.blocks == direct.memory.blocks
    assert len(agent.archival_memory) == len(direct.archival_memory) >= 1


# --- failures: each translated, each leaving the agent as it was --------------------------


def test_cannot_connect_names_the_url_and_what_to_check() -> None:
    waits = Waits()
    model = OpenAIChatModel(
        "llama3.1", provider="ollama", base_url="http://127.0.0.1:9/v1", sleep=waits
    )
    agent = make_agent(model)
    before = state(agent)
    with pytest.raises(LLMError) as caught:
        agent.turn("hello")
    message = str(caught.value)
    assert message.startswith("cannot connect to http://127.0.0.1:9/v1")
    assert "ollama serve" in message and "gave up after 3 attempts" in message
    assert len(waits.waits) == 2 and waits.waits[0] < waits.waits[1]  # backed off
    assert state(agent) == before


def test_a_timeout_names_the_url_and_is_not_retried() -> None:
    with LLMServer(faults=Faults(delay=2.0)) as slow:
        model = served(slow, timeout=0.2, sleep=Waits())
        agent = make_agent(model)
        before = state(agent)
        with pytest.raises(
            LLMError, match=rf"{re.escape(slow.base_url)} did not answer within 0\.2 s"
        ):
            agent.turn("hello")
        assert model.retries == 0 and state(agent) == before


SENTINEL = "sk-sentinel-0123456789abcdef"


def test_401_names_the_variable_never_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_TEST_KEY", SENTINEL)
    with LLMServer(api_key="sk-the-right-one") as guarded:
        model = OpenAIChatModel("scripted", base_url=guarded.base_url, api_key_env="LAB_TEST_KEY")
        agent = make_agent(model)
        before = state(agent)
        with pytest.raises(LLMError) as caught:
            agent.turn("hello")
        assert "refused the API key from $LAB_TEST_KEY (401)" in str(caught.value)
        assert SENTINEL not in str(caught.value) and SENTINEL[:8] not in repr(model)
        assert state(agent) == before
        monkeypatch.setenv("LAB_TEST_KEY", "sk-the-right-one")
        assert (
            make_agent(
                OpenAIChatModel("scripted", base_url=guarded.base_url, api_key_env="LAB_TEST_KEY")
            )
            .turn("hi")
            .replies
        )


def test_429_is_retried_as_retry_after_says() -> None:
    with LLMServer(faults=Faults(rate_limit=2, retry_after=0.25)) as limited:
        waits = Waits()
        agent = make_agent(served(limited, sleep=waits))
        assert agent.turn("hello").replies
        assert waits.waits == [0.25, 0.25]


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_retried_then_reported(status: int) -> None:
    with LLMServer(faults=Faults(fail=5, fail_status=status)) as failing:
        waits = Waits()
        model = served(failing, sleep=waits, max_retries=2)
        agent = make_agent(model)
        before = state(agent)
        with pytest.raises(
            LLMError, match=rf"answered {status}: The server had an error.*gave up after 3 attempts"
        ):
            agent.turn("hello")
        assert len(waits.waits) == 2 and state(agent) == before
        assert (
            make_agent(served(failing, sleep=waits, max_retries=2)).turn("hello").replies
        )  # 2 more failures, then fine


@pytest.mark.parametrize("style", ["openai", "vllm", "llamacpp", "lmstudio"])
def test_context_overflow_in_every_providers_shape_makes_the_agent_summarise(style: str) -> None:
    with LLMServer(faults=Faults(overflow_after=2300, error_style=style)) as small:
        model = served(small)
        with pytest.raises(ContextWindowExceededError):
            model.chat([{"role": "user", "content": "x" * 12000}], [])
        agent = make_agent(model, context_window=8192)  # the agent believes it has room
        for text in CONVERSATION[:6]:
            agent.turn(text)
        assert agent.summaries >= 1  # the server's overflow made it summarise and carry on
        assert agent.turn("Are you still there?").replies


def test_overflow_that_summarising_cannot_fix_changes_nothing() -> None:
    with LLMServer(faults=Faults(overflow_after=10)) as tiny:
        agent = make_agent(served(tiny))
        agent.model = ScriptedModel()
        for text in CONVERSATION[:4]:
            agent.turn(text)
        before = state(agent)
        agent.model = served(tiny)
        with pytest.raises(ContextWindowExceededError, match="does not fit"):
            agent.turn("hello")
        assert state(agent) == before


def test_silent_truncation_is_caught_and_warned() -> None:
    with LLMServer(faults=Faults(truncate_context=1800)) as cutting:
        agent = make_agent(ScriptedModel(), context_window=16000)
        for number in range(8):
            agent.turn(f"remember that fact {number} is " + "long and detailed " * 30)
        agent.model = served(cutting)
        with pytest.warns(ContextTruncationWarning, match="probably cut the prompt"):
            agent.turn("hello")
        call = agent.last_call
        assert call is not None and call.reported_prompt_tokens is not None
        assert call.reported_prompt_tokens < call.estimated_prompt_tokens / 2


def test_a_malformed_body_is_an_error_not_a_crash() -> None:
    with LLMServer(faults=Faults(malformed=1)) as broken:
        agent = make_agent(served(broken))
        before = state(agent)
        with pytest.raises(LLMError, match="not a chat completion|not JSON|Expecting"):
            agent.turn("hello")
        assert state(agent) == before
        assert agent.turn("hello").replies  # the next answer is whole


def test_a_dropped_stream_is_retried() -> None:
    with LLMServer(faults=Faults(drop_stream=1)) as dropping:
        waits = Waits()
        model = served(dropping, stream=True, sleep=waits)
        assert make_agent(model).turn("hello").replies
        assert model.retries == 1 and len(waits.waits) == 1


def test_a_stream_dropped_every_time_is_reported() -> None:
    with LLMServer(faults=Faults(drop_stream=10)) as dropping:
        agent = make_agent(served(dropping, stream=True, sleep=Waits(), max_retries=1))
        before = state(agent)
        with pytest.raises(LLMError, match="gave up after 2 attempts"):
            agent.turn("hello")
        assert state(agent) == before


def test_malformed_tool_calls_become_failed_functions() -> None:
    bad_arguments = Turn("Oops.", "send_message", "{message: hi")
    unknown = Turn("Teleport.", "teleport", {"to": "Mars"})
    string_for_object = Turn("Hm.", "send_message", '"hello"')
    rules = [Rule("one", bad_arguments), Rule("two", unknown), Rule("three", string_for_object)]
    with LLMServer(ScriptedModel(rules=rules)) as server:
        for text, error in [
            ("one", "Error parsing JSON"),
            ("two", "No function named 'teleport'"),
            ("three", "must be a JSON object"),
        ]:
            agent = make_agent(served(server, inner_thoughts="content"))
            step = agent.step(text)
            assert step.function_failed and step.heartbeat_request
            assert error in json.loads(step.messages[-1]["content"])["message"]


def test_a_packaged_message_is_sent_as_the_agent_wrote_it(server: LLMServer) -> None:
    model = served(server)
    agent = make_agent(model)
    agent.step(system.package_user_message("hi there", "2026-01-01 09:00:00 AM UTC+0000"))
    received = server.app.state.requests[-1]
    assert json.loads(received["messages"][-1]["content"])["message"] == "hi there"
    assert received["model"] == "scripted" and received["tool_choice"] == "required"


def test_a_preset_model_spec_builds_a_working_model(server: LLMServer) -> None:
    spec = ModelSpec.parse(
        {"provider": "openai-compatible", "model": "scripted", "base_url": server.base_url}
    )
    assert make_agent(spec.build(api_key="sk-test")).turn("hello").replies


def test_a_streamed_chunk_nested_too_deeply_is_an_error_not_a_crash() -> None:
    # The SDK parses each streamed chunk with json.loads: it raised RecursionError out of the step
    deep_chunk = json.dumps(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
        }
    ).replace('"model"', '"extra": ' + "[" * 5000 + "]" * 5000 + ', "model"')

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = f"data: {deep_chunk}\n\ndata: [DONE]\n\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            model = OpenAIChatModel(
                "m",
                base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1",
                api_key="sk-test",
                stream=True,
                max_retries=0,
            )
            with pytest.raises(LLMError, match="not a chat completion"):
                model.chat([{"role": "user", "content": "hi"}], [])
        finally:
            httpd.shutdown()
            thread.join()
