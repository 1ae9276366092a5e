"""The agent loop: steps, events, model mistakes, heartbeat chains, memory pressure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from memgpt_lab import system
from memgpt_lab.agent import Agent, AgentConfig, StepResult, TurnResult
from memgpt_lab.errors import LLMError
from memgpt_lab.interface import AgentEvent, CollectingInterface
from memgpt_lab.llm import ContextWindowExceededError, ReplayModel, ScriptedModel, Turn
from memgpt_lab.llm.base import ChatModel, chat_completion
from memgpt_lab.presets import create_agent_from_preset
from memgpt_lab.system import FixedClock

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
T0_TEXT = "2026-01-01 09:00:00 AM UTC+0000"


def make_agent(
    model: ChatModel | str | None = "scripted",
    interface: CollectingInterface | None = None,
    human: str = "Name: unknown",
    **config: Any,
) -> Agent:
    return create_agent_from_preset(
        "memgpt_chat",
        config or None,
        model,
        "Name: Sam\nA companion.",
        human,
        interface,
        clock=FixedClock(),
        id="test-agent",
    )


def content_of(message: dict[str, Any]) -> dict[str, Any]:
    return json.loads(message["content"])


def with_usage(turn: Turn, total_tokens: int) -> dict[str, Any]:
    """A completion for ``turn`` that reports ``total_tokens`` used."""
    response = turn.completion(0, "replay")
    response["usage"] = {"prompt_tokens": total_tokens, "completion_tokens": 0}
    response["usage"]["total_tokens"] = total_tokens
    return response


# --- a single step -----------------------------------------------------------------------


def test_step_returns_a_four_tuple() -> None:
    agent = make_agent(ReplayModel(["Hello!"]))
    result = agent.step("hi")
    assert isinstance(result, StepResult)
    new_messages, heartbeat_request, function_failed, token_warning = result
    assert [m["role"] for m in new_messages] == ["user", "assistant", "function"]
    assert (heartbeat_request, function_failed, token_warning) == (False, False, False)
    assert new_messages[1]["function_call"]["name"] == "send_message"
    packet = content_of(new_messages[2])
    assert (packet["status"], packet["message"]) == ("OK", "None")
    assert packet["time"] == "2026-01-01 09:00:01 AM UTC+0000"  # the clock's second reading


def test_send_message_step_events_in_order() -> None:
    interface = CollectingInterface()
    agent = make_agent(ReplayModel([Turn.say("Hi there!", "Be friendly.")]), interface)
    agent.step("hello")
    assert interface.events == [
        AgentEvent("user_message", agent.messages[1]["content"]),
        AgentEvent("internal_monologue", "Be friendly."),
        AgentEvent("function_message", "Running send_message({'message': 'Hi there!'})"),
        AgentEvent("assistant_message", "Hi there!"),
        AgentEvent("function_message", "Success: None"),
    ]
    # each event carries the message it belongs to
    assert interface.events[1].msg_obj is agent.messages[2]
    assert interface.events[4].msg_obj is agent.messages[3]


def test_messages_land_in_context_and_recall() -> None:
    agent = make_agent(ReplayModel(["one", "two"]))
    agent.step("first")
    agent.step("second")
    assert [m["role"] for m in agent.messages] == ["system", *["user", "assistant", "function"] * 2]
    assert len(agent.recall_memory) == 6
    assert [e.message for e in agent.recall_memory.entries] == agent.messages[1:]
    said = agent.recall_memory.text_search("second", said_only=True)
    assert [e.text for e in said.items] == ["second"]


def test_plain_text_is_packaged_and_packets_kept() -> None:
    agent = make_agent(ReplayModel(["a", "b", "c", "d"]))
    agent.step("plain words")
    assert content_of(agent.messages[1]) == {
        "type": "user_message",
        "message": "plain words",
        "time": T0_TEXT,
    }
    heartbeat = system.get_heartbeat("why not", T0)
    assert agent.step(heartbeat).messages[0] == {"role": "user", "content": heartbeat}
    # JSON without a "type" is not a packet: it is packaged as the user's words
    assert content_of(agent.step('{"x": 1}').messages[0])["message"] == '{"x": 1}'
    as_dict = {"role": "user", "content": "raw", "name": "Ada"}
    assert agent.step(as_dict).messages[0] == as_dict


def test_bad_user_messages() -> None:
    agent = make_agent(ReplayModel([]))
    with pytest.raises(ValueError, match="needs a 'role'"):
        agent.step({"content": "x"})
    with pytest.raises(TypeError, match="not int"):
        agent.step(42)  # type: ignore[arg-type]
    assert len(agent.messages) == 1


def test_step_none_continues_without_a_new_message() -> None:
    interface = CollectingInterface()
    agent = make_agent(ReplayModel(["first", "again"]), interface)
    agent.step("hi")
    interface.clear()
    new = agent.step(None).messages
    assert [m["role"] for m in new] == ["assistant", "function"]
    assert "user_message" not in interface.kinds()


def test_system_message_is_rebuilt_with_memory() -> None:
    append = Turn(
        "Noting.",
        "core_memory_append",
        {"name": "human", "content": "Likes tea", "request_heartbeat": False},
    )
    agent = make_agent(ReplayModel([append]))
    system_message = agent.messages[0]
    assert system_message["role"] == "system"
    assert system_message["content"].startswith(agent.system_prompt)
    assert agent.memory.render() in system_message["content"]
    assert "0 earlier messages are in recall memory" in system_message["content"]
    result = agent.step("I like tea")
    assert not result.function_failed
    assert agent.memory.human == "Name: unknown\nLikes tea"
    assert agent.messages[0] is not system_message
    assert "Name: unknown\nLikes tea\n</human>" in agent.messages[0]["content"]
    assert "3 earlier messages are in recall memory" in agent.messages[0]["content"]


def test_content_only_reply_and_tool_calls() -> None:
    interface = CollectingInterface()
    tool_call = chat_completion("Using tools.", None, 0, "m")
    tool_call["choices"][0]["message"]["tool_calls"] = [
        {
            "type": "function",
            "function": {"name": "send_message", "arguments": '{"message": "via tool"}'},
        }
    ]
    model = ReplayModel([Turn("Just thinking."), Turn(None), tool_call])
    agent = make_agent(model, interface)
    result = agent.step("hi")
    assert [m["role"] for m in result.messages] == ["user", "assistant"]
    assert result[1:] == (False, False, False)
    assert interface.kinds() == ["user_message", "internal_monologue"]
    interface.clear()
    agent.step(None)
    assert interface.kinds() == []  # no content, no call: nothing to show
    agent.step(None)
    assert "via tool" in [e.message for e in interface.events]


@pytest.mark.parametrize(
    "response",
    [{"choices": []}, {"nothing": 1}, {"choices": [{"message": "text"}]}],
)
def test_malformed_responses_raise_llm_error(response: dict[str, Any]) -> None:
    agent = make_agent(ReplayModel([response]))
    with pytest.raises(LLMError):
        agent.step("hi")


# --- the model's mistakes ----------------------------------------------------------------


def failed_step(
    *turns: Turn, human: str = "Name: unknown", **config: Any
) -> tuple[Agent, StepResult, CollectingInterface]:
    interface = CollectingInterface()
    agent = make_agent(ReplayModel(list(turns)), interface, human=human, **config)
    result = agent.step("go")
    assert result.heartbeat_request is True
    assert result.function_failed is True
    packet = content_of(result.messages[-1])
    assert packet["status"] == "Failed"
    assert result.messages[-1]["role"] == "function"
    assert interface.events[-1].kind == "function_message"
    assert interface.events[-1].message == f"Error: {packet['message']}"
    return agent, result, interface


def test_unknown_function() -> None:
    _, result, interface = failed_step(Turn("Teleporting.", "teleport", {"to": "Mars"}))
    message = content_of(result.messages[-1])["message"]
    assert message.startswith("No function named 'teleport'; available: send_message, ")
    assert result.messages[-1]["name"] == "teleport"
    assert not any(e.message.startswith("Running") for e in interface.events)


@pytest.mark.parametrize(
    "raw",
    [
        "{message: hi",
        # deeper than json can parse (it raised RecursionError out of the step)
        '{"message": ' + "[" * 5000 + "]" * 5000 + "}",
        # parses, but nests deeper than the agent walks (repr of it could overflow)
        '{"message": ' + "[" * 900 + "]" * 900 + "}",
    ],
    ids=["not-json", "nested-5000", "nested-900"],
)
def test_arguments_that_are_not_json(raw: str) -> None:
    _, result, _ = failed_step(Turn("Oops.", "send_message", raw))
    assert (
        "Error parsing JSON for function 'send_message' arguments"
        in content_of(result.messages[-1])["message"]
    )


@pytest.mark.parametrize("raw", ["[1, 2]", '"text"', "3"])
def test_arguments_that_are_not_an_object(raw: str) -> None:
    _, result, _ = failed_step(Turn("Oops.", "send_message", raw))
    assert "arguments must be a JSON object" in content_of(result.messages[-1])["message"]


def test_arguments_given_as_an_object_are_kept_as_json_text() -> None:
    # a model may answer with the arguments already parsed; the history keeps the wire shape
    call = {"name": "send_message", "arguments": {"message": "Hi, Ada."}}
    agent = make_agent(ReplayModel([chat_completion("Greeting.", call, 1, "replay")]))
    result = agent.run_chain(system.package_user_message("hi", T0))
    assert result.replies == ["Hi, Ada."]
    stored = result.messages[1]["function_call"]
    assert json.loads(stored["arguments"]) == {"message": "Hi, Ada."}
    assert [entry.text for entry in agent.recall_memory.text_search("Ada").items] == ["Hi, Ada."]


def test_function_that_raises_replace_not_present() -> None:
    args = {"name": "human", "old_content": "Name: Bob", "new_content": "Name: Rob"}
    agent, result, _ = failed_step(Turn("Fixing.", "core_memory_replace", args))
    message = content_of(result.messages[-1])["message"]
    assert message == (
        "Error calling function core_memory_replace: ValueError: "
        "Content not found in human: 'Name: Bob'"
    )
    assert agent.memory.human == "Name: unknown"


def test_function_that_raises_over_limit_append() -> None:
    args = {"name": "human", "content": "x" * 50, "request_heartbeat": False}
    agent, result, _ = failed_step(Turn("Saving.", "core_memory_append", args), human_char_limit=40)
    assert "MemoryLimitError" in content_of(result.messages[-1])["message"]
    assert agent.memory.human == "Name: unknown"


def test_function_called_with_wrong_arguments() -> None:
    _, result, _ = failed_step(Turn("Hm.", "send_message", {"text": "hi"}))
    assert "TypeError" in content_of(result.messages[-1])["message"]


def test_failed_step_then_a_recovery_heartbeat() -> None:
    interface = CollectingInterface()
    model = ReplayModel([Turn("Oops.", "nope"), Turn.say("Sorry about that.")])
    agent = make_agent(model, interface)
    turn = agent.turn("hi")
    assert len(turn.steps) == 2
    assert turn.replies == ["Sorry about that."]
    heartbeat = content_of(turn.steps[1].messages[0])
    assert heartbeat["type"] == "heartbeat"
    assert heartbeat["reason"] == system.FUNC_FAILED_HEARTBEAT_MESSAGE


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        (True, True),
        ("true", True),
        (" TRUE ", True),
        (False, False),
        ("false", False),
        ("yes", False),
        (1, False),
    ],
)
def test_request_heartbeat_flag(flag: Any, expected: bool) -> None:
    turn = Turn("Looking.", "archival_memory_search", {"query": "x", "request_heartbeat": flag})
    result = make_agent(ReplayModel([turn])).step("go")
    assert result.heartbeat_request is expected
    assert result.function_failed is False


def test_request_heartbeat_absent_and_not_passed_to_the_function() -> None:
    agent = make_agent(ReplayModel([Turn("Look.", "archival_memory_search", {"query": "x"})]))
    result = agent.step("go")
    assert result.heartbeat_request is False
    assert content_of(result.messages[-1])["message"] == "No archival results found for x."


def test_long_function_results_are_cut() -> None:
    agent = make_agent(
        ReplayModel([Turn("Save.", "archival_memory_insert", {"content": "tea " * 200})]),
        function_result_char_limit=100,
    )
    agent.archival_memory  # noqa: B018 - the store exists before any insert
    insert = agent.step("save").messages[-1]
    assert content_of(insert)["status"] == "OK"
    for _ in range(3):
        agent.archival_memory.insert("tea " * 200, T0)
    agent.model = ReplayModel([Turn("Look.", "archival_memory_search", {"query": "tea"})])
    message = content_of(agent.step("find").messages[-1])["message"]
    assert message.endswith("... [cut at 100 characters]")
    assert len(message) == 100 + len("... [cut at 100 characters]")


# --- turns and heartbeat chains ----------------------------------------------------------


class AlwaysHeartbeat:
    """A model that asks for another heartbeat on every call."""

    name = "always"

    def __init__(self) -> None:
        self.calls = 0

    def chat(
        self, messages: Sequence[dict[str, Any]], functions: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        self.calls += 1
        turn = Turn("More.", "archival_memory_search", {"query": "x", "request_heartbeat": True})
        return turn.completion(0, self.name)


def test_turn_chains_heartbeats_until_none_is_requested() -> None:
    agent = make_agent("scripted")
    result = agent.turn("my name is Ada")
    assert isinstance(result, TurnResult)
    assert [s.heartbeat_request for s in result.steps] == [True, False]
    assert not result.truncated
    assert content_of(result.steps[1].messages[0])["reason"] == system.REQ_HEARTBEAT_MESSAGE
    assert result.messages == [m for s in result.steps for m in s.messages]
    assert result.replies == ["Nice to meet you, Ada! I've written your name down."]


def test_turn_is_bounded_by_max_chain_steps() -> None:
    model = AlwaysHeartbeat()
    agent = make_agent(model, max_chain_steps=3)
    result = agent.turn("go")
    assert result.truncated
    assert len(result.steps) == 3 == model.calls
    assert all(step.heartbeat_request for step in result.steps)
    shorter = agent.turn("again", max_steps=2)
    assert shorter.truncated and len(shorter.steps) == 2


def test_replay_model_that_always_requests_heartbeats() -> None:
    turns = [
        Turn("More.", "archival_memory_search", {"query": "x", "request_heartbeat": "true"})
    ] * 10
    model = ReplayModel(turns)
    result = make_agent(model, max_chain_steps=4).turn("go")
    assert result.truncated
    assert model.position == 4


def test_turn_name_and_first_message() -> None:
    interface = CollectingInterface()
    agent = make_agent(ReplayModel(["hi"]), interface)
    agent.turn("hello", name="Ada")
    assert content_of(agent.messages[1]) == {
        "type": "user_message",
        "message": "hello",
        "time": T0_TEXT,
        "name": "Ada",
    }


def test_login_heartbeat_and_memory_pressure_warning_methods() -> None:
    agent = make_agent("scripted")
    login = agent.login("yesterday")
    assert content_of(login.steps[0].messages[0]) == {
        "type": "login",
        "last_login": "yesterday",
        "time": T0_TEXT,
    }
    assert login.replies[0].startswith("Hello!")
    beat = agent.heartbeat()
    assert content_of(beat.messages[0])["reason"] == "Automated timer"
    # a timer heartbeat after a finished exchange: nothing to say ("Done: None" was a bug)
    assert beat.messages[1] == {
        "role": "assistant",
        "content": "My message is sent. Nothing more needs doing.",
    }
    assert not beat.heartbeat_request
    warned = agent.memory_pressure_warning()
    assert content_of(warned.messages[0])["type"] == "system_alert"
    assert warned.messages[1]["function_call"]["name"] == "archival_memory_insert"
    assert [p.text for p in agent.archival_memory.passages] == [
        "Core facts about the user: Name: unknown"
    ]


# --- first-message verification ----------------------------------------------------------


def test_first_message_is_retried_until_it_speaks_to_the_user() -> None:
    model = ReplayModel([Turn("Only thinking."), Turn.say("Hello!")])
    interface = CollectingInterface()
    agent = make_agent(model, interface)
    result = agent.step("hi", first_message=True)
    assert model.position == 2
    assert result.messages[1]["function_call"]["name"] == "send_message"
    assert interface.kinds().count("internal_monologue") == 1  # the rejected reply is not shown


def test_first_message_verification_skipped_or_not_first() -> None:
    model = ReplayModel([Turn("Only thinking."), Turn.say("Hello!")])
    make_agent(model).step("hi", first_message=True, skip_verify=True)
    assert model.position == 1
    model = ReplayModel([Turn("Only thinking."), Turn.say("Hello!")])
    make_agent(model).step("hi")
    assert model.position == 1


def test_first_message_attempts_are_bounded() -> None:
    model = ReplayModel(
        [
            Turn("a"),
            Turn("b", "archival_memory_search", {"query": "q"}),
            Turn(None, "send_message", {"message": "c"}),
            "unused",
        ]
    )
    result = make_agent(model).step("hi", first_message=True)
    assert model.position == 3  # first_message_attempts, then the last reply is used
    assert result.messages[1]["content"] is None


# --- memory pressure ---------------------------------------------------------------------


def test_token_warning_from_reported_usage() -> None:
    turns = [with_usage(Turn.say("a"), 6144), with_usage(Turn.say("b"), 6145)]
    agent = make_agent(ReplayModel(turns), context_window=8192, warning_fraction=0.75)
    assert agent.step("x").token_warning is False  # 6144 is exactly 0.75 x 8192
    assert agent.step("y").token_warning is True
    assert agent.last_usage["total_tokens"] == 6145


def test_turn_sends_the_token_limit_warning_once() -> None:
    heavy = 7000
    model = ReplayModel([with_usage(Turn.say(f"reply {i}"), heavy) for i in range(5)])
    agent = make_agent(model)
    first = agent.turn("hello")
    assert len(first.steps) == 2
    assert all(step.token_warning for step in first.steps)
    warning = content_of(first.steps[1].messages[0])
    assert warning["type"] == "system_alert"
    assert "close to the context window" in warning["message"]
    second = agent.turn("again")
    assert len(second.steps) == 1  # already warned: no second alert
    assert second.steps[0].token_warning
    alerts = [m for m in agent.messages if "close to the context window" in str(m.get("content"))]
    assert len(alerts) == 1


def fill(agent: Agent, turns: int) -> list[TurnResult]:
    return [agent.turn(f"message number {i} about the garden") for i in range(turns)]


def test_overflow_summarises_older_messages() -> None:
    agent = make_agent("scripted", context_window=2400)
    results = fill(agent, 8)
    assert agent.summaries >= 1
    assert all(r.replies for r in results)
    alert = content_of(agent.messages[1])
    assert alert["type"] == "system_alert"
    assert "have left the context window" in alert["message"]
    assert "The user talked about:" in alert["message"]
    needed = agent.context_breakdown()["total"]
    assert needed <= 2400
    # recall memory still has every message
    for i in range(8):
        assert (
            agent.recall_memory.text_search(f"message number {i} about", said_only=True).total >= 1
        )
    assert len(agent.recall_memory) > len(agent.messages)
    # an in-context function result never starts the kept messages without its call
    assert agent.messages[2]["role"] != "function"


def test_summarize_messages_inplace_directly() -> None:
    agent = make_agent("scripted")
    fill(agent, 4)
    recalled = len(agent.recall_memory)
    before = list(agent.messages)
    summary = agent.summarize_messages_inplace(keep_last=3)
    assert summary == (
        "3 user messages and 3 replies. The user talked about: message number 0 about the "
        "garden; message number 1 about the garden; message number 2 about the garden."
    )
    assert agent.messages[0]["role"] == "system"
    assert agent.messages[2:] == before[-3:]
    assert len(agent.recall_memory) == recalled
    assert agent.summaries == 1
    packet = content_of(agent.messages[1])
    assert f"({len(before) - 4} messages summarised)" in packet["message"]


def test_nothing_to_summarise_raises() -> None:
    agent = make_agent("scripted")
    with pytest.raises(LLMError, match="cannot make room"):
        agent.summarize_messages_inplace()


def test_context_window_exceeded_from_the_model_triggers_summary_and_retry() -> None:
    model = ScriptedModel(context_window=2400)
    agent = make_agent(model, context_window=8192)
    results = fill(agent, 8)
    assert agent.summaries >= 1
    assert all(r.replies for r in results)


class OverflowOnce:
    """Raises ContextWindowExceededError on the first call, then replies."""

    name = "overflow-once"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def chat(
        self, messages: Sequence[dict[str, Any]], functions: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        self.calls.append(len(messages))
        if len(self.calls) == 1:
            raise ContextWindowExceededError("too long")
        if not functions:  # the summary request
            return Turn("a summary").completion(0, self.name)
        return Turn.say("fits now").completion(0, self.name)


def test_context_window_exceeded_once() -> None:
    model = OverflowOnce()
    agent = make_agent(ReplayModel(["a", "b", "c"]))
    for text in ("one", "two", "three"):
        agent.step(text)
    agent.model = model
    result = agent.step("four")
    assert agent.summaries == 1
    assert result.messages[1]["function_call"]["name"] == "send_message"
    # the failing call, the summary request, and the retry on the shorter context
    assert len(model.calls) == 3
    assert model.calls[2] < model.calls[0]


class AlwaysOverflow:
    name = "always-overflow"

    def __init__(self) -> None:
        self.calls = 0

    def chat(
        self, messages: Sequence[dict[str, Any]], functions: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        self.calls += 1
        if not functions:
            return Turn("a summary").completion(0, self.name)
        raise ContextWindowExceededError("too long")


def test_a_model_that_always_overflows_raises_instead_of_looping() -> None:
    agent = make_agent(ReplayModel(["a"] * 4))
    for text in ("one", "two", "three", "four"):
        agent.step(text)
    model = AlwaysOverflow()
    agent.model = model
    with pytest.raises(LLMError):
        agent.step("five")
    assert model.calls <= 3


def test_a_context_too_small_to_ever_fit_raises() -> None:
    agent = make_agent("scripted", context_window=1000)
    with pytest.raises(LLMError, match="cannot make room|summarising frees no more"):
        agent.step("hello")


def test_a_context_that_summarising_cannot_shrink_enough_raises() -> None:
    agent = make_agent("scripted", context_window=2000, keep_last_messages=30)
    with pytest.raises(LLMError):
        fill(agent, 20)


# --- views of the agent ------------------------------------------------------------------


def test_memory_snapshot_is_json() -> None:
    agent = make_agent("scripted")
    agent.turn("remember that the fence is blue")
    snapshot = agent.memory_snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert snapshot["id"] == "test-agent"
    assert snapshot["preset"] == "memgpt_chat"
    assert snapshot["core_memory"] == {
        "persona": "Name: Sam\nA companion.",
        "human": "Name: unknown",
    }
    assert snapshot["core_memory_limits"] == {"persona": 2000, "human": 2000}
    assert snapshot["archival_count"] == 1
    assert snapshot["recall_count"] == len(agent.recall_memory)
    assert snapshot["in_context_messages"] == len(agent.messages)
    assert snapshot["config"]["context_window"] == 8192
    assert snapshot["context"] == agent.context_breakdown()


def test_context_breakdown_sums() -> None:
    agent = make_agent("scripted")
    empty = agent.context_breakdown()
    agent.turn("hello there")
    after = agent.context_breakdown()
    for breakdown in (empty, after):
        parts = ("system", "core_memory", "messages", "functions")
        assert breakdown["total"] == sum(breakdown[p] for p in parts)
        assert breakdown["window"] == 8192
    assert after["messages"] > empty["messages"]
    assert after["functions"] == empty["functions"] > 0
    assert repr(agent).startswith("Agent(id='test-agent', name='agent', preset='memgpt_chat'")


def test_same_inputs_same_conversation() -> None:
    def run() -> list[dict[str, Any]]:
        agent = make_agent("scripted")
        agent.login()
        agent.turn("my name is Ada")
        agent.turn("remember that I like tea")
        return agent.messages

    assert run() == run()


# --- AgentConfig -------------------------------------------------------------------------


def test_agent_config_defaults_and_from_any() -> None:
    config = AgentConfig()
    assert config.context_window == 8192 and config.max_chain_steps == 10
    assert AgentConfig.from_any(None) == config
    assert AgentConfig.from_any(config) is config
    assert AgentConfig.from_any({"name": "x", "context_window": 4096}).context_window == 4096

    class Legacy:
        name = "old"
        context_window = 1024
        model_endpoint = "ignored"

    legacy = AgentConfig.from_any(Legacy())
    assert (legacy.name, legacy.context_window) == ("old", 1024)


def test_agent_config_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown agent config key.s. colour, size; known: "):
        AgentConfig.from_any({"size": 1, "colour": "red"})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("context_window", 255, "context_window must be at least 256"),
        ("warning_fraction", 0, "warning_fraction must be between 0 and 1"),
        ("warning_fraction", 1.0, "warning_fraction must be between 0 and 1"),
        ("max_chain_steps", 0, "max_chain_steps must be 1 or more"),
        ("keep_last_messages", 0, "keep_last_messages must be 1 or more"),
        ("persona_char_limit", -5, "persona_char_limit must be 1 or more"),
        ("first_message_attempts", 0, "first_message_attempts must be 1 or more"),
        ("function_result_char_limit", -1, "function_result_char_limit must be 1 or more"),
    ],
)
def test_agent_config_ranges(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AgentConfig(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("context_window", "4096"),
        ("warning_fraction", "0.5"),
        ("max_chain_steps", 2.5),
        ("keep_last_messages", None),
        ("context_window", True),
        ("name", 7),
    ],
)
def test_agent_config_wrong_types(field: str, value: Any) -> None:
    with pytest.raises(TypeError, match=f"{field} must be"):
        AgentConfig(**{field: value})


def test_run_chain_can_verify_the_first_reply() -> None:
    model = ReplayModel([Turn("Only thinking."), Turn.say("Hello!")])
    agent = make_agent(model)
    result = agent.run_chain(system.package_user_message("hi", T0), True, skip_verify=False)
    assert model.position == 2
    assert result.replies == ["Hello!"]


def test_schemas_follow_changes_to_the_function_set() -> None:
    agent = make_agent()
    before = agent.context_breakdown()["functions"]
    del agent.functions["archival_memory_search"]
    names = [schema["name"] for schema in agent.function_schemas]
    assert "archival_memory_search" not in names
    assert agent.context_breakdown()["functions"] < before


def test_next_chain_input_order() -> None:
    agent = make_agent()
    step = agent.step("hi", skip_verify=True)
    both = step._replace(function_failed=True, heartbeat_request=True)
    assert (
        json.loads(agent.next_chain_input(both) or "")["reason"]
        == system.FUNC_FAILED_HEARTBEAT_MESSAGE
    )
    asked = step._replace(heartbeat_request=True)
    assert json.loads(agent.next_chain_input(asked) or "")["reason"] == system.REQ_HEARTBEAT_MESSAGE
    pressed = step._replace(token_warning=True, function_failed=True)
    assert json.loads(agent.next_chain_input(pressed) or "")["type"] == "system_alert"
    assert agent.alerted_about_memory_pressure
    # the warning is sent once; then the failed function's heartbeat comes next
    assert json.loads(agent.next_chain_input(pressed) or "")["type"] == "heartbeat"
    assert agent.next_chain_input(step) is None


def test_turn_can_verify_the_first_reply() -> None:
    model = ReplayModel([Turn("Only thinking."), Turn.say("Hello!")])
    assert make_agent(model).turn("hi", skip_verify=False).replies == ["Hello!"]
    assert model.position == 2


def test_turns_from_two_threads_never_interleave() -> None:
    import threading

    entered, release = threading.Event(), threading.Event()

    class Slow(ScriptedModel):
        def chat(self, messages, functions):  # type: ignore[no-untyped-def]
            if not entered.is_set():
                entered.set()
                assert release.wait(10)
            return super().chat(messages, functions)

    agent = make_agent(Slow())
    first = threading.Thread(target=agent.turn, args=("remember that A is 1",), daemon=True)
    first.start()
    assert entered.wait(10)  # the first turn is inside its first step
    second = threading.Thread(target=agent.turn, args=("hello there",), daemon=True)
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    users = [json.loads(m["content"]).get("type") for m in agent.messages if m["role"] == "user"]
    # the first turn's heartbeat comes before the second turn's message
    assert users == ["user_message", "heartbeat", "user_message"]


# --- real models: failures leave the agent as it was, odd answers never crash it ----------


def agent_state(agent: Agent) -> tuple[Any, ...]:
    return (
        json.dumps(agent.messages),
        dict(agent.memory.blocks),
        len(agent.recall_memory),
        len(agent.archival_memory),
        agent.summaries,
        agent.alerted_about_memory_pressure,
    )


def test_a_failed_model_call_leaves_the_agent_as_before_the_step() -> None:
    agent = make_agent(ReplayModel(["a"] * 4))
    for text in ("one", "two", "three", "four"):
        agent.step(text)
    before = agent_state(agent)
    agent.model = AlwaysOverflow()  # summarises (editing the context), then overflows again
    with pytest.raises(ContextWindowExceededError):
        agent.step("five")
    assert agent_state(agent) == before
    agent.model = ReplayModel(["back again"])
    assert [m["role"] for m in agent.step("six").messages] == ["user", "assistant", "function"]


class Unreachable:
    name = "unreachable"

    def chat(
        self, messages: Sequence[dict[str, Any]], functions: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        raise LLMError("cannot connect to http://127.0.0.1:9/v1")


def test_a_model_that_cannot_be_reached_changes_nothing() -> None:
    agent = make_agent("scripted")
    agent.turn("my name is Ada")
    before = agent_state(agent)
    agent.model = Unreachable()
    with pytest.raises(LLMError, match="cannot connect"):
        agent.turn("hello again")
    assert agent_state(agent) == before


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": "Hm.", "function_call": "send_message"},
        {"role": "assistant", "content": "Hm.", "function_call": ["send_message"]},
        {"role": "assistant", "content": "Hm.", "tool_calls": "send_message"},
        {"role": "assistant", "content": "Hm.", "tool_calls": [{"function": "send_message"}]},
        {"role": "assistant", "content": "Hm.", "tool_calls": [{"id": "x"}]},
        {"role": "assistant", "content": "Hm.", "function_call": {"name": None, "arguments": "{}"}},
        {"role": "assistant", "content": "Hm.", "function_call": {"arguments": "{}"}},
    ],
)
def test_a_call_of_the_wrong_shape_is_a_failed_function(message: dict[str, Any]) -> None:
    interface = CollectingInterface()
    response = {"choices": [{"message": message}], "usage": {"prompt_tokens": 1}}
    agent = make_agent(ReplayModel([response]), interface)
    result = agent.step("go")
    assert result.function_failed and result.heartbeat_request
    assert "must be an object with a 'name'" in content_of(result.messages[-1])["message"]
    assert interface.kinds() == ["user_message", "internal_monologue", "function_message"]
    call = result.messages[1]["function_call"]
    assert call["name"] == "malformed_call" and isinstance(call["arguments"], str)


def test_several_tool_calls_run_the_first_and_say_so() -> None:
    response = chat_completion("Two at once.", None, 5, "m")
    message = response["choices"][0]["message"]
    message["function_call"] = {"name": "send_message", "arguments": '{"message": "hi"}'}
    message["ignored_tool_calls"] = ["archival_memory_search", "pause_heartbeats"]
    agent = make_agent(ReplayModel([response]))
    result = agent.step("go")
    text = content_of(result.messages[-1])["message"]
    assert not result.function_failed
    assert "you asked for 3 function calls in one reply; only the first (send_message) ran" in text
    assert "archival_memory_search, pause_heartbeats" in text
    assert agent.messages[-1] is result.messages[-1]  # the note is in the history the model reads


def test_last_call_tells_estimates_from_server_reports() -> None:
    agent = make_agent("scripted")
    assert agent.memory_snapshot()["usage"] == {
        "model": None,
        "prompt_tokens_estimated": None,
        "prompt_tokens_reported": None,
    }
    agent.step("hello")
    call = agent.last_call
    assert call is not None and call.model == "scripted" and call.latency >= 0
    assert call.reported_prompt_tokens is None  # the offline model only estimates
    assert (
        call.estimated_prompt_tokens == agent.memory_snapshot()["usage"]["prompt_tokens_estimated"]
    )
    served = Turn.say("hi").completion(0, "gpt-4o-mini-2024-07-18")
    del served["usage_estimated"]
    served["usage"]["prompt_tokens"] = 1234
    agent.model = ReplayModel([served])
    agent.step("again")
    usage = agent.memory_snapshot()["usage"]
    assert usage["model"] == "gpt-4o-mini-2024-07-18"
    assert usage["prompt_tokens_reported"] == 1234
    assert usage["prompt_tokens_estimated"] > 100


def test_a_failed_step_keeps_the_last_calls_figures() -> None:
    agent = make_agent("scripted")
    agent.step("hello")
    before = (agent.last_call, dict(agent.last_usage), agent.checkpoint_id)
    agent.model = Unreachable()
    with pytest.raises(LLMError):
        agent.step("again")
    assert (agent.last_call, agent.last_usage, agent.checkpoint_id) == before


def test_counters_set_between_steps_are_kept_by_a_failed_step() -> None:
    agent = make_agent("scripted")
    agent.step("hello")
    agent.alerted_about_memory_pressure = True  # as next_chain_input sets it, between steps
    agent.model = Unreachable()
    with pytest.raises(LLMError):
        agent.memory_pressure_warning()
    assert agent.alerted_about_memory_pressure is True
