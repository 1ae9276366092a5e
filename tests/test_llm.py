"""Offline models: the chat-completion shape, ScriptedModel's behaviours and rules, ReplayModel."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from memgpt_lab import system
from memgpt_lab.errors import LLMError, UnknownNameError
from memgpt_lab.functions import DEFAULT_FUNCTIONS
from memgpt_lab.humans import get_human_text
from memgpt_lab.interface import CollectingInterface
from memgpt_lab.llm import (
    ChatModel,
    ContextWindowExceededError,
    ReplayModel,
    Rule,
    ScriptedModel,
    Turn,
    chat_completion,
    estimate_tokens,
    get_model,
    list_models,
)
from memgpt_lab.llm.scripted import SUMMARY_REQUEST_MARKER, Context
from memgpt_lab.presets import create_agent_from_preset
from memgpt_lab.system import FixedClock

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
SCHEMAS = [spec.schema for spec in DEFAULT_FUNCTIONS.values()]


def system_message(human: str = "Name: unknown (ask for it)", persona: str = "Name: Sam") -> dict:
    return {
        "role": "system",
        "content": f'Prompt.\n<persona characters="1/2">\n{persona}\n</persona>\n'
        f'<human characters="1/2">\n{human}\n</human>',
    }


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": system.package_user_message(text, T0)}


def ask(model: ScriptedModel, *messages: dict, human: str = "Name: unknown") -> dict[str, Any]:
    return model.chat([system_message(human), *messages], SCHEMAS)


def call_of(response: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    call = response["choices"][0]["message"]["function_call"]
    return call["name"], json.loads(call["arguments"])


def said(response: dict[str, Any]) -> str:
    name, args = call_of(response)
    assert name == "send_message"
    return str(args["message"])


def greeted(model: ScriptedModel) -> list[dict]:
    """A conversation that has had its first exchange."""
    hello = ask(model, user("hi"))
    return [user("hi"), hello["choices"][0]["message"]]


# --- the response shape ------------------------------------------------------------------


def test_chat_completion_shape() -> None:
    response = ScriptedModel().chat([system_message(), user("hello")], SCHEMAS)
    assert response["object"] == "chat.completion"
    assert response["model"] == "scripted"
    (choice,) = response["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "function_call"
    message = choice["message"]
    assert message["role"] == "assistant"
    assert isinstance(message["content"], str) and message["content"]
    call = message["function_call"]
    assert set(call) == {"name", "arguments"}
    assert isinstance(call["arguments"], str)
    assert isinstance(json.loads(call["arguments"]), dict)
    usage = response["usage"]
    # the prompt size reported is the one the model checks its context window against
    ScriptedModel(context_window=usage["prompt_tokens"]).chat(
        [system_message(), user("hello")], SCHEMAS
    )
    with pytest.raises(ContextWindowExceededError):
        small = ScriptedModel(context_window=usage["prompt_tokens"] - 1)
        small.chat([system_message(), user("hello")], SCHEMAS)
    assert usage["completion_tokens"] == estimate_tokens(message)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_completion_without_a_call() -> None:
    response = chat_completion("just thinking", None, 10, "m")
    assert response["choices"][0]["finish_reason"] == "stop"
    assert "function_call" not in response["choices"][0]["message"]
    assert response["usage"]["prompt_tokens"] == 10


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens({"a": 1}) == estimate_tokens('{"a": 1}')


def test_scripted_model_is_deterministic() -> None:
    messages = [system_message(), user("hi"), *greeted(ScriptedModel())[1:], user("tell me")]
    first = [ScriptedModel().chat(messages, SCHEMAS) for _ in range(2)]
    model = ScriptedModel()
    again = [model.chat(messages, SCHEMAS), model.chat(messages, SCHEMAS)]
    assert first[0] == first[1] == again[0] == again[1]
    assert model.calls == 2


def test_scripted_model_needs_messages() -> None:
    with pytest.raises(LLMError, match="no messages"):
        ScriptedModel().respond([])


# --- built-in behaviours -----------------------------------------------------------------


def test_greets_on_login_by_name_when_known() -> None:
    login = {"role": "user", "content": system.get_login_event(time=T0)}
    assert said(ask(ScriptedModel(), login)) == (
        "Hello! Yes, I'm here. I'm Sam. What's on your mind?"
    )
    assert said(ask(ScriptedModel(), login, human="Name: Chad\nBakes.")).startswith(
        "Hello, Chad! Yes, I'm here."
    )


def test_greets_on_the_first_message_only() -> None:
    model = ScriptedModel()
    assert said(ask(model, user("anyone there?"))).startswith("Hello!")
    later = ask(model, *greeted(model), user("anyone there?"))
    assert said(later) == "I hear you: “anyone there”. Tell me more?"


def test_my_name_is_replaces_the_name_line() -> None:
    response = ask(ScriptedModel(), user("Hi! my name is ada lovelace."))
    name, args = call_of(response)
    assert name == "core_memory_replace"
    assert args == {
        "name": "human",
        "old_content": "Name: unknown",
        "new_content": "Name: Ada",
        "request_heartbeat": True,
    }


def test_my_name_is_appends_when_there_is_no_name_line() -> None:
    model = ScriptedModel()
    response = model.chat([system_message(human="Likes tea."), user("my name is Bo")], SCHEMAS)
    assert call_of(response) == (
        "core_memory_append",
        {"name": "human", "content": "Name: Bo", "request_heartbeat": True},
    )


def test_remember_that_inserts_into_archival() -> None:
    response = ask(ScriptedModel(), user("Please remember that my cat is Tom!"))
    assert call_of(response) == (
        "archival_memory_insert",
        {"content": "my cat is Tom", "request_heartbeat": True},
    )


def test_what_do_you_remember_searches_archival_then_answers() -> None:
    model = ScriptedModel()
    question = user("What do you remember about my cat?")
    search = ask(model, *greeted(model), question)
    assert call_of(search) == (
        "archival_memory_search",
        {"query": "my cat", "request_heartbeat": True},
    )
    found = json.dumps(
        ["Showing 1 of 1 results (page 0/0):", "timestamp: 2026-01-01 09:00, my cat is Tom"]
    )
    result = {
        "role": "function",
        "name": "archival_memory_search",
        "content": system.package_function_response(True, found, T0),
    }
    heartbeat = {"role": "user", "content": system.get_heartbeat(system.REQ_HEARTBEAT_MESSAGE)}
    answer = ask(model, question, search["choices"][0]["message"], result, heartbeat)
    assert said(answer) == "Here's what I have about your cat: your cat is Tom"
    # and straight after the result, without a heartbeat in between
    direct = ask(model, question, search["choices"][0]["message"], result)
    assert said(direct) == said(answer)


def test_nothing_found_is_said_honestly() -> None:
    model = ScriptedModel()
    search = ask(model, user("what do you remember about my bike"))
    result = {
        "role": "function",
        "content": system.package_function_response(True, "No archival results found.", T0),
    }
    answer = ask(model, search["choices"][0]["message"], result)
    assert said(answer) == "I don't have anything about your bike yet."


def test_what_did_i_say_searches_recall() -> None:
    model = ScriptedModel()
    response = ask(model, *greeted(model), user("what did I say about tea?"))
    assert call_of(response) == (
        "conversation_search",
        {"query": "tea", "request_heartbeat": True},
    )


def test_failed_call_is_reported_plainly() -> None:
    model = ScriptedModel()
    request = ask(model, user("my name is Ada"))
    failure = {
        "role": "function",
        "content": system.package_function_response(False, "Content not found", T0),
    }
    answer = ask(model, request["choices"][0]["message"], failure)
    assert said(answer) == "Sorry, that didn't work: Content not found"


def test_memory_pressure_alert_saves_the_human_block_to_archival() -> None:
    warning = {"role": "user", "content": system.get_token_limit_warning(T0)}
    response = ask(ScriptedModel(), warning, human="Name: Chad\nBakes bread.")
    assert call_of(response) == (
        "archival_memory_insert",
        {
            "content": "Core facts about the user: Name: Chad\nBakes bread.",
            "request_heartbeat": False,
        },
    )


def test_other_system_alerts_and_timer_heartbeats_are_only_noted() -> None:
    model = ScriptedModel()
    alert = {"role": "user", "content": json.dumps({"type": "system_alert", "message": "x"})}
    response = ask(model, alert)
    assert "function_call" not in response["choices"][0]["message"]
    timer = {"role": "user", "content": system.get_heartbeat(time=T0)}
    response = ask(model, *greeted(model), timer)
    assert response["choices"][0]["finish_reason"] == "stop"
    assert "Automated timer" in response["choices"][0]["message"]["content"]


def test_anything_else_gets_a_reply_through_send_message() -> None:
    model = ScriptedModel()
    reply = ask(model, *greeted(model), user("The weather is lovely today."), human="Name: Ada")
    assert said(reply) == "I hear you, Ada: “The weather is lovely today”. Tell me more?"
    plain = ask(model, *greeted(model), {"role": "user", "content": "not packaged"})
    assert said(plain) == "I hear you: “not packaged”. Tell me more?"


def test_summary_request_is_answered_with_a_summary() -> None:
    messages = [
        {"role": "system", "content": f"{SUMMARY_REQUEST_MARKER} please summarise"},
        user("I like tea"),
        {
            "role": "assistant",
            "content": "ok",
            "function_call": {"name": "send_message", "arguments": '{"message": "Nice"}'},
        },
        user("and biscuits"),
    ]
    response = ScriptedModel().chat(messages, [])
    message = response["choices"][0]["message"]
    assert "function_call" not in message
    assert message["content"] == (
        "2 user messages and 1 replies. The user talked about: I like tea; and biscuits."
    )


def test_summary_leaves_out_system_alerts_and_heartbeats() -> None:
    messages = [
        {"role": "system", "content": f"{SUMMARY_REQUEST_MARKER} please summarise"},
        {"role": "user", "content": system.get_token_limit_warning(T0)},
        {"role": "user", "content": system.package_summarize_message("older", 3, 3, 9, T0)},
        {"role": "user", "content": system.get_heartbeat(time=T0)},
        user("I like tea"),
    ]
    summary = ScriptedModel().chat(messages, [])["choices"][0]["message"]["content"]
    assert summary == "1 user messages and 0 replies. The user talked about: I like tea."


# --- rules ------------------------------------------------------------------------------


def test_string_rule_with_groups_and_name_is_tried_first() -> None:
    model = ScriptedModel([Rule(r"weather in (\w+)", "Sunny in {1}, {name}! ({0})")])
    reply = ask(model, *greeted(model), user("What's the WEATHER in Paris?"), human="Name: Ada")
    assert said(reply) == "Sunny in Paris, Ada! (WEATHER in Paris)"
    # a user rule wins over the built-in ones
    override = ScriptedModel([Rule("remember that", "I never forget.")])
    assert said(ask(override, user("remember that x"))) == "I never forget."


def test_turn_and_callable_rules() -> None:
    turn = Turn("Pausing.", "pause_heartbeats", {"minutes": 5})
    seen: list[Context] = []

    def reply(match: re.Match[str], ctx: Context) -> Turn:
        seen.append(ctx)
        return Turn.say(f"{match.group(1)} for {ctx.human_name}")

    model = ScriptedModel(
        [Rule("quiet", turn), Rule(re.compile(r"echo (\w+)"), reply)], builtin_rules=False
    )
    assert call_of(ask(model, user("be quiet"))) == ("pause_heartbeats", {"minutes": 5})
    assert ask(model, user("be quiet"))["choices"][0]["message"]["content"] == "Pausing."
    # compiled patterns keep their own flags: case matters here
    assert said(ask(model, user("echo hi"), human="Name: Ada")) == "hi for Ada"
    assert seen[0].text == "echo hi" and seen[0].first_message


def test_builtin_rules_off() -> None:
    model = ScriptedModel(builtin_rules=False)
    response = ask(model, *greeted(model), user("remember that the sky is blue"))
    assert said(response).startswith("I hear you: “remember that the sky is blue”")


def test_context_window_overflow() -> None:
    short = [system_message(), user("x")]
    long = [system_message(), user("x" * 400)]
    needed = ScriptedModel().chat(long, SCHEMAS)["usage"]["prompt_tokens"]
    assert needed > ScriptedModel().chat(short, SCHEMAS)["usage"]["prompt_tokens"] + 90
    assert ScriptedModel(context_window=needed).chat(long, SCHEMAS)
    model = ScriptedModel(context_window=needed - 1)
    assert model.chat(short, SCHEMAS)  # a shorter prompt still fits
    with pytest.raises(
        ContextWindowExceededError,
        match=f"prompt of ~{needed} tokens exceeds the context window of {needed - 1}",
    ):
        model.chat(long, SCHEMAS)
    assert issubclass(ContextWindowExceededError, LLMError)


def test_turn_with_raw_arguments_is_sent_verbatim() -> None:
    response = Turn("oops", "send_message", "{not json").completion(5, "m")
    assert response["choices"][0]["message"]["function_call"]["arguments"] == "{not json"
    assert Turn.say("hi").thought == "Replying to the user."


# --- ReplayModel -------------------------------------------------------------------------


def test_replay_model_plays_back_exactly_then_fails() -> None:
    raw = {"choices": [{"message": {"role": "assistant", "content": "raw"}}]}
    model = ReplayModel(["hello", Turn("think", "pause_heartbeats", {"minutes": 1}), raw])
    messages = [system_message(), user("a")]
    first = model.chat(messages, SCHEMAS)
    assert said(first) == "hello"
    assert first["model"] == "replay"
    assert first["usage"]["prompt_tokens"] == estimate_tokens(messages) + estimate_tokens(SCHEMAS)
    assert call_of(model.chat(messages, SCHEMAS)) == ("pause_heartbeats", {"minutes": 1})
    assert model.chat([], []) is raw
    assert repr(model) == "ReplayModel(played=3/3)"
    with pytest.raises(LLMError, match="all 3 were played"):
        model.chat(messages, SCHEMAS)


# --- get_model ---------------------------------------------------------------------------


def test_get_model() -> None:
    assert isinstance(get_model(), ScriptedModel)
    scripted = get_model("scripted", context_window=1000)
    assert isinstance(scripted, ScriptedModel) and scripted.context_window == 1000
    replay = ReplayModel([])
    assert get_model(replay) is replay
    assert isinstance(replay, ChatModel)
    assert list_models()[0] == "scripted"
    assert "ollama:<model>" in list_models()
    with pytest.raises(UnknownNameError, match="unknown model 'gpt-9'; available: .*scripted"):
        get_model("gpt-9")
    with pytest.raises(TypeError, match="must be a model string or an object with a chat"):
        get_model(42)  # type: ignore[arg-type]


# --- through an agent --------------------------------------------------------------------


def test_scripted_conversation_through_an_agent() -> None:
    interface = CollectingInterface()
    agent = create_agent_from_preset(
        "memgpt_chat", None, "scripted", "Name: Sam", "Name: unknown", interface,
        clock=FixedClock(),
    )  # fmt: skip
    assert agent.login().replies == ["Hello! Yes, I'm here. I'm Sam. What's on your mind?"]
    named = agent.turn("my name is ada")
    assert named.replies == ["Nice to meet you, Ada! I've written your name down."]
    assert agent.memory.human == "Name: Ada"
    assert agent.turn("remember that my cat is Tom").replies == [
        "Got it — I'll remember that your cat is Tom."
    ]
    assert [p.text for p in agent.archival_memory.passages] == ["my cat is Tom"]
    assert agent.turn("what do you remember about my cat?").replies == [
        "Here's what I have about your cat: your cat is Tom"
    ]
    agent.turn("I drink green tea every morning")
    recalled = agent.turn("what did I say about tea?")
    assert recalled.replies == ["Here's what I have about tea: you drink green tea every morning"]
    assert agent.turn("nice").replies == ["I hear you, Ada: “nice”. Tell me more?"]


def test_heartbeat_after_a_sent_message_says_nothing_more() -> None:
    model = ScriptedModel()
    hello = ask(model, user("hi"))["choices"][0]["message"]
    sent = {"role": "function", "content": system.package_function_response(True, "None", T0)}
    timer = {"role": "user", "content": system.get_heartbeat(time=T0)}
    for after in ([sent], [sent, timer]):
        response = ask(model, user("hi"), hello, *after)
        assert "function_call" not in response["choices"][0]["message"]
    # a failed send_message is still reported on the heartbeat that follows it
    failed = {"role": "function", "content": system.package_function_response(False, "bad", T0)}
    retry = ask(model, user("hi"), hello, failed, timer)
    assert said(retry) == "Sorry, that didn't work: bad"


def test_builtin_behaviours_only_call_offered_functions() -> None:
    from memgpt_lab.presets import create_agent_from_preset
    from memgpt_lab.system import FixedClock

    agent = create_agent_from_preset("memgpt_minimal", None, "scripted", clock=FixedClock())
    turn = agent.turn("remember that the sky is green")
    calls = [m["function_call"]["name"] for m in turn.messages if m.get("function_call")]
    assert calls == ["send_message"]
    assert "no archival_memory_insert function" in turn.replies[0]
    step = agent.memory_pressure_warning()
    assert not any(m.get("function_call") for m in step.messages)
    assert not step.function_failed


def test_user_rules_call_what_they_say_even_if_not_offered() -> None:
    model = ScriptedModel([Rule("ping", Turn("calling", "no_such_function", {}))])
    response = model.chat(
        [{"role": "system", "content": ""}, {"role": "user", "content": "ping"}], []
    )
    assert response["choices"][0]["message"]["function_call"]["name"] == "no_such_function"


# --- the questions a demo asks, answered from memory ---------------------------------------


def thought_of(response: dict[str, Any]) -> str:
    return str(response["choices"][0]["message"]["content"])


@pytest.mark.parametrize(
    "question", ["What is my name?", "what's my name", "Who am I?", "do you know my name?"]
)
def test_what_is_my_name_is_answered_from_the_human_block(question: str) -> None:
    model = ScriptedModel()
    known = ask(model, *greeted(model), user(question), human="Name: Bob\nLikes tea.")
    assert said(known) == "Your name is Bob."
    unknown = ask(model, *greeted(model), user(question), human="Name: unknown (ask for it)")
    assert said(unknown) == "I don't know your name yet. What should I call you?"


@pytest.mark.parametrize("question", ["What is your name?", "who are you?", "What's your name"])
def test_what_is_your_name_is_answered_from_the_persona(question: str) -> None:
    model = ScriptedModel()
    assert said(ask(model, *greeted(model), user(question))) == "I'm Sam."
    nameless = model.chat(
        [system_message(persona="A helpful lab assistant."), user("hi"), user(question)], SCHEMAS
    )
    assert "no name" in said(nameless)


def test_what_do_you_remember_reads_the_human_block_and_counts_archival() -> None:
    model = ScriptedModel()
    human = "Name: Bob\nLikes green tea."
    for question in ("What do you remember?", "what do you know about me?"):
        answer = said(ask(model, *greeted(model), user(question), human=human))
        assert answer == "Here's what I know about you: your name is Bob; Likes green tea."
    # a name still unknown is no fact; archival passages are counted from the prompt
    system_text = system_message("Name: unknown (ask for it)")["content"]
    prompt = {"role": "system", "content": "3 passages are in archival memory.\n" + system_text}
    answer = said(model.chat([prompt, user("hi"), user("what do you remember?")], SCHEMAS))
    assert answer.startswith("I don't know anything about you yet.")
    assert "3 passages in archival memory" in answer


def test_what_do_you_remember_speaks_to_the_user_in_the_second_person() -> None:
    model = ScriptedModel()
    human = get_human_text("basic")  # "... I know nothing else about them yet."
    answer = said(ask(model, *greeted(model), user("what do you remember?"), human=human))
    assert answer == (
        "Here's what I know about you: "
        "Someone I have only just met. I know nothing else about you yet."
    )
    block = "Name: Ada\nThey like tea; their cat is Tom. They're a teacher."
    answer = said(ask(model, *greeted(model), user("What do you know about me?"), human=block))
    assert answer == (
        "Here's what I know about you: your name is Ada; "
        "You like tea; your cat is Tom. You're a teacher."
    )


@pytest.mark.parametrize(
    "message",
    [
        "who are you going to call?",
        "what can you do about the weather?",
        "who am I talking to?",
        "what is your name for this dish?",
        "what is my name in French?",
        "I wonder what you remember",
    ],
)
def test_demo_questions_match_only_as_whole_questions(message: str) -> None:
    model = ScriptedModel()
    answer = said(ask(model, *greeted(model), user(message), human="Name: Bob"))
    assert answer.startswith("I hear you, Bob: “"), answer


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("So, what's my name again?", "Your name is Bob."),
        ("hey, do you remember my name?", "Your name is Bob."),
        ("Do you know what my name is?", "Your name is Bob."),
        ("what’s your name?", "I'm Sam."),
        ("What should I call you?", "I'm Sam."),
        ("ok, what can you do for me?", "I can talk with you"),
        ("How can you help me?", "I can talk with you"),
    ],
)
def test_demo_questions_allow_light_variations(question: str, answer: str) -> None:
    model = ScriptedModel()
    assert said(ask(model, *greeted(model), user(question), human="Name: Bob")).startswith(answer)


def test_what_can_you_do_lists_the_offered_functions_in_a_fixed_order() -> None:
    model = ScriptedModel()
    full = said(ask(model, *greeted(model), user("What can you do?")))
    assert full.startswith("I can talk with you, note what I learn about you in core memory")
    assert "search archival memory" in full
    minimal = [s for s in SCHEMAS if s["name"] in ("send_message", "conversation_search")]
    for _ in range(3):  # the offered names arrive as a set: the answer must not vary
        answer = said(model.chat([system_message(), user("hi"), user("what can you do")], minimal))
        assert answer == "I can talk with you and search what we said earlier."


def test_a_search_reports_the_count_it_showed() -> None:
    model = ScriptedModel()
    question = user("what did I say about tea?")
    search = ask(model, *greeted(model), question)["choices"][0]["message"]
    shown = json.dumps(
        [
            "Showing 3 of 3 results (page 0/0):",
            "timestamp: 2026-01-01 09:00, user: I like tea",
            "timestamp: 2026-01-01 09:00, assistant: Tea is nice.",
            "timestamp: 2026-01-01 09:00, user: what did I say about tea?",
        ]
    )
    result = {"role": "function", "content": system.package_function_response(True, shown, T0)}
    answer = ask(model, question, search, result)
    assert said(answer) == "Here's what I have about tea: you like tea"
    assert (
        thought_of(answer) == "The search showed 3 results. 1 is what the user said: share those."
    )


def test_demo_questions_through_an_agent_are_deterministic() -> None:
    def run() -> list[str]:
        agent = create_agent_from_preset("memgpt_chat", None, "scripted", clock=FixedClock())
        replies = []
        for text in ("my name is Bob", "what is my name?", "what is your name?"):
            replies += agent.turn(text).replies
        return replies

    first = run()
    assert first[1:] == ["Your name is Bob.", "I'm Sam."]
    assert run() == first
