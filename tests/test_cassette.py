"""Cassettes: recording a model's answers, replaying them with no model, normalising requests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from memgpt_lab.agent import Agent
from memgpt_lab.errors import LLMError
from memgpt_lab.interface import CollectingInterface
from memgpt_lab.llm.base import ChatModel, ContextWindowExceededError, get_model
from memgpt_lab.llm.cassette import (
    CASSETTE_MODE_ENV,
    CASSETTE_MODES,
    Cassette,
    CassetteMismatchError,
    normalise_message,
    normalise_request,
)
from memgpt_lab.llm.scripted import ReplayModel, ScriptedModel, Turn
from memgpt_lab.presets import DEFAULT_PRESET, create_agent_from_preset
from memgpt_lab.system import FixedClock, package_function_response, package_user_message

PERSONA = "Name: Sam\nA companion."
HUMAN = "Name: unknown"
LATER = datetime(2031, 7, 14, 17, 30, 5, tzinfo=UTC)  # another day, another hour

CONVERSATION = [
    "Hello?",
    "my name is Ana",
    "remember that my cat is called Tom",
    "what do you remember about my cat",
    "what did I say about my cat",
    "How was your day? Café ☕",
]

CLOCK_TEXT = re.compile(
    r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [AP]M UTC\+0000|\d{4}-\d{2}-\d{2} \d{2}:\d{2}"
)

Message = dict[str, Any]


def make_agent(
    model: Any,
    clock: FixedClock | None = None,
    interface: CollectingInterface | None = None,
    **config: Any,
) -> Agent:
    return create_agent_from_preset(
        DEFAULT_PRESET,
        config or None,
        model,
        PERSONA,
        HUMAN,
        interface,
        clock=clock or FixedClock(),
    )


def converse(agent: Agent, texts: Sequence[str] = CONVERSATION) -> list[list[str]]:
    return [agent.turn(text).replies for text in texts]


def without_clock(events: CollectingInterface) -> list[tuple[str, str]]:
    return [(e.kind, CLOCK_TEXT.sub("<t>", e.message)) for e in events.events]


def lines_of(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def request(text: str, system: str = "You are Sam.") -> list[Message]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": package_user_message(text, "2026-01-01 09:00:00 AM UTC+0000")},
    ]


class Counting:
    """A model that counts its calls and answers with the scripted model."""

    def __init__(self, model: Any = None, name: str = "counting") -> None:
        self.model = model or ScriptedModel()
        self.name = name
        self.calls = 0

    def chat(self, messages: Sequence[Message], functions: Sequence[dict[str, Any]]) -> Any:
        self.calls += 1
        return self.model.chat(messages, functions)


class Exploding:
    """A model that must not be called."""

    name = "exploding"

    def chat(self, messages: Sequence[Message], functions: Sequence[dict[str, Any]]) -> Any:
        raise AssertionError("the model was called during a replay")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cassettes" / "conversation.jsonl"


@pytest.fixture(autouse=True)
def no_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CASSETTE_MODE_ENV, raising=False)


# --- an agent, recorded then replayed -----------------------------------------------------


def test_an_agent_replays_with_no_model_and_another_clock(path: Path) -> None:
    recording_events = CollectingInterface()
    model = Counting()
    recorder = Cassette(path, model)
    recorded = converse(make_agent(recorder, interface=recording_events))
    assert recorder.recorded == model.calls > len(CONVERSATION)
    assert recorder.played == 0
    assert all(recorded) and "Ana" in recorded[1][-1] and "Tom" in recorded[3][-1]

    replay_events = CollectingInterface()
    player = Cassette(path, mode="none")
    replayed = converse(make_agent(player, FixedClock(LATER), replay_events))
    assert replayed == recorded
    assert without_clock(replay_events) == without_clock(recording_events)
    assert (player.played, player.recorded) == (model.calls, 0)
    # the clock really did differ: the raw events are not the same
    assert [e.message for e in replay_events.events] != [e.message for e in recording_events.events]


def test_an_overflow_and_its_summary_replay_identically(path: Path) -> None:
    texts = [f"Here is a fairly long message number {i}, about nothing much." for i in range(8)]
    recorder = Cassette(path, ScriptedModel(context_window=2400))
    recording_agent = make_agent(recorder, context_window=8192)
    recorded = converse(recording_agent, texts)
    assert recording_agent.summaries >= 1
    errors = [line["error"] for line in lines_of(path)[1:] if "error" in line]
    assert errors and errors[0]["type"] == "ContextWindowExceededError"
    assert any(line["request"]["functions"] == [] for line in lines_of(path)[1:])  # summaries

    replaying_agent = make_agent(Cassette(path, mode="none"), FixedClock(LATER))
    assert converse(replaying_agent, texts) == recorded
    assert replaying_agent.summaries == recording_agent.summaries
    assert [m["role"] for m in replaying_agent.messages] == [
        m["role"] for m in recording_agent.messages
    ]


def test_replay_in_a_fresh_interpreter_imports_no_openai(path: Path) -> None:
    recorded = converse(make_agent(Cassette(path, ScriptedModel())))
    code = f"""
import json, sys
from datetime import datetime, timezone
from memgpt_lab.llm.cassette import Cassette
from memgpt_lab.presets import DEFAULT_PRESET, create_agent_from_preset
from memgpt_lab.system import FixedClock

cassette = Cassette({str(path)!r}, None, "none")
agent = create_agent_from_preset(DEFAULT_PRESET, None, cassette, {PERSONA!r}, {HUMAN!r},
                                 clock=FixedClock(datetime(2030, 2, 3, tzinfo=timezone.utc)))
replies = [agent.turn(text).replies for text in {CONVERSATION!r}]
print(json.dumps({{"replies": replies, "openai": "openai" in sys.modules}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    result = json.loads(out.stdout)
    assert result == {"replies": recorded, "openai": False}


# --- modes --------------------------------------------------------------------------------


def test_once_records_a_missing_file_then_replays_only(path: Path) -> None:
    model = Counting()
    first = Cassette(path, model, "once")
    answer = first.chat(request("hello"), [])
    assert path.exists() and (first.recorded, model.calls) == (1, 1)

    second = Cassette(path, model, "once")
    assert second.chat(request("hello"), []) == answer
    assert (second.played, second.recorded, model.calls) == (1, 0, 1)
    with pytest.raises(CassetteMismatchError):
        second.chat(request("something new"), [])
    assert model.calls == 1


def test_once_records_every_call_while_recording(path: Path) -> None:
    model = Counting(ReplayModel(["one", "two"]))
    cassette = Cassette(path, model, "once")
    cassette.chat(request("hello"), [])
    cassette.chat(request("hello"), [])  # recording: the model answers again
    assert model.calls == 2 and cassette.played == 0


def test_none_replays_only(path: Path) -> None:
    with pytest.raises(CassetteMismatchError, match="the file does not exist"):
        Cassette(path, Counting(), "none").chat(request("hello"), [])
    assert not path.exists()

    answer = Cassette(path, ScriptedModel(), "once").chat(request("hello"), [])
    player = Cassette(path, Exploding(), "none")
    assert player.chat(request("hello"), []) == answer
    with pytest.raises(CassetteMismatchError):
        player.chat(request("bye"), [])


def test_new_episodes_replays_what_matches_and_appends_the_rest(path: Path) -> None:
    Cassette(path, ScriptedModel(), "once").chat(request("hello"), [])
    model = Counting()
    cassette = Cassette(path, model, "new_episodes")
    cassette.chat(request("hello"), [])
    cassette.chat(request("and another thing"), [])
    assert (cassette.played, cassette.recorded, model.calls) == (1, 1, 1)
    assert len(lines_of(path)) == 3  # the header and both pairs

    player = Cassette(path, Exploding(), "none")
    player.chat(request("hello"), [])
    player.chat(request("and another thing"), [])
    assert player.played == 2


def test_new_episodes_starts_a_missing_file(path: Path) -> None:
    Cassette(path, ScriptedModel(), "new_episodes").chat(request("hello"), [])
    header, pair = lines_of(path)
    assert header["format"] == "memgpt_lab.cassette" and "response" in pair


def test_all_calls_the_model_and_rewrites_the_file(path: Path) -> None:
    Cassette(path, ScriptedModel(), "once").chat(request("old"), [])
    model = Counting()
    cassette = Cassette(path, model, "all")
    assert len(lines_of(path)) == 2  # nothing happens before the first call
    cassette.chat(request("new"), [])
    cassette.chat(request("new"), [])
    assert (model.calls, cassette.played, cassette.recorded) == (2, 0, 2)
    lines = lines_of(path)
    assert len(lines) == 3
    assert all("new" in json.dumps(line["request"]) for line in lines[1:])


def test_recording_without_a_model_says_so(path: Path) -> None:
    with pytest.raises(LLMError, match="no model to record it with") as caught:
        Cassette(path).chat(request("hello"), [])
    assert not isinstance(caught.value, CassetteMismatchError)
    assert not path.exists()


def test_wrap_attaches_the_model_and_returns_the_cassette(path: Path) -> None:
    cassette = Cassette(path)
    model = ScriptedModel(name="wrapped")
    assert cassette.wrap(model) is cassette
    assert cassette.model is model and cassette.name == "wrapped"
    cassette.chat(request("hello"), [])
    assert cassette.recorded == 1


def test_the_mode_comes_from_the_environment(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Cassette(path).mode == "once"
    monkeypatch.setenv(CASSETTE_MODE_ENV, "none")
    assert Cassette(path).mode == "none"
    assert Cassette(path, mode="all").mode == "all"
    monkeypatch.setenv(CASSETTE_MODE_ENV, "sometimes")
    with pytest.raises(ValueError, match=f"{CASSETTE_MODE_ENV} 'sometimes'.*once, none"):
        Cassette(path)


def test_a_bad_mode_lists_the_modes(path: Path) -> None:
    with pytest.raises(ValueError, match="once, none, new_episodes, all") as caught:
        Cassette(path, mode="record")
    assert "'record'" in str(caught.value)
    assert CASSETTE_MODES == ("once", "none", "new_episodes", "all")


# --- matching -----------------------------------------------------------------------------


def test_identical_requests_replay_in_recorded_order(path: Path) -> None:
    recorder = Cassette(path, ReplayModel(["first", "second"]))
    recorded = [recorder.chat(request("again"), []) for _ in range(2)]
    player = Cassette(path, mode="none")
    assert [player.chat(request("again"), []) for _ in range(2)] == recorded
    assert recorded[0] != recorded[1]
    with pytest.raises(CassetteMismatchError, match=r"recorded 2 time\(s\).*in recorded order"):
        player.chat(request("again"), [])


def test_requests_differing_only_in_clock_and_ids_match(path: Path) -> None:
    def conversation(time: str, call_id: str) -> list[Message]:
        return [
            {"role": "system", "content": "You are Sam."},
            {"role": "user", "content": package_user_message("hi", time), "id": f"m-{call_id}"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "send_message", "arguments": '{"message": "hey"}'},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": call_id,
                "content": package_function_response(True, "None", time),
            },
        ]

    recorded = Cassette(path, ScriptedModel()).chat(
        conversation("2026-01-01 09:00:00 AM UTC+0000", "call_abc"), []
    )
    player = Cassette(path, mode="none")
    assert player.chat(conversation("2031-07-14 05:30:05 PM UTC+0000", "call_xyz"), []) == recorded


def test_a_changed_function_schema_does_not_match(path: Path) -> None:
    schema = {"name": "send_message", "parameters": {"type": "object", "properties": {}}}
    Cassette(path, ScriptedModel()).chat(request("hello"), [schema])
    with pytest.raises(CassetteMismatchError, match="# functions"):
        Cassette(path, mode="none").chat(request("hello"), [{**schema, "name": "shout"}])


def test_a_mismatch_shows_the_closest_request_and_a_diff(path: Path) -> None:
    recorder = Cassette(path, ScriptedModel())
    for text in ("good morning", "hello there", "what's up"):
        recorder.chat(request(text), [])
    recorder.chat([*request("hello there"), {"role": "user", "content": "and more"}], [])

    player = Cassette(path, mode="none")
    asked = [*request("hello there"), {"role": "user", "content": "and less"}]
    with pytest.raises(CassetteMismatchError) as caught:
        player.chat(asked, [])
    error = caught.value
    message = str(error)
    assert str(path) in message and "mode 'none'" in message
    assert "Closest recorded request: line 5, whose first 2 of 3 messages are the same" in message
    assert "--- recorded (line 5, normalised)" in message
    assert "+++ this request (normalised)" in message
    assert '-  "content": "and more",' in message
    assert '+  "content": "and less",' in message
    assert 'mode="new_episodes"' in message and f"{CASSETTE_MODE_ENV}=all" in message
    assert error.path == path and error.diff in message
    assert error.closest is not None
    assert error.closest["messages"][2]["content"] == "and more"
    assert error.request == normalise_request({"messages": asked, "functions": []})


def test_the_closest_request_breaks_ties_by_similarity(path: Path) -> None:
    recorder = Cassette(path, ScriptedModel())
    for text in ("hello there, how are you today", "zzz", "completely different words"):
        recorder.chat(request(text), [])
    with pytest.raises(CassetteMismatchError) as caught:
        Cassette(path, mode="none").chat(request("hello there, how are you doing"), [])
    assert "line 2" in str(caught.value).split("\n")[1]
    assert '-    "message": "hello there, how are you today",' in caught.value.diff


def test_a_long_diff_is_cut(path: Path) -> None:
    many = [{"role": "user", "content": f"message {i}"} for i in range(300)]
    Cassette(path, ScriptedModel()).chat([{"role": "system", "content": "S"}, *many], [])
    changed = [{"role": "user", "content": f"changed {i}"} for i in range(300)]
    with pytest.raises(CassetteMismatchError) as caught:
        Cassette(path, mode="none").chat([{"role": "system", "content": "S"}, *changed], [])
    diff_lines = caught.value.diff.split("\n")
    assert len(diff_lines) == 81 and re.fullmatch(r"… \(\d+ more diff lines\)", diff_lines[-1])


def test_a_multi_line_system_message_diffs_line_by_line(path: Path) -> None:
    Cassette(path, ScriptedModel()).chat(request("hi", "Rules.\nName: unknown\nBe kind."), [])
    with pytest.raises(CassetteMismatchError) as caught:
        Cassette(path, mode="none").chat(request("hi", "Rules.\nName: Ana\nBe kind."), [])
    assert '-    "Name: unknown",' in caught.value.diff
    assert '+    "Name: Ana",' in caught.value.diff


def test_an_empty_cassette_says_it_holds_nothing(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("", encoding="utf-8")
    with pytest.raises(CassetteMismatchError, match="holds no recordings"):
        Cassette(path, mode="once").chat(request("hi"), [])


# --- errors, the file, crashes, threads --------------------------------------------------


class Failing:
    name = "failing"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def chat(self, messages: Sequence[Message], functions: Sequence[dict[str, Any]]) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [LLMError("the server said 502"), ContextWindowExceededError("prompt of ~9000 tokens")],
    ids=["LLMError", "ContextWindowExceededError"],
)
def test_model_errors_are_recorded_and_raised_again(path: Path, error: LLMError) -> None:
    with pytest.raises(type(error)) as raised:
        Cassette(path, Failing(error)).chat(request("hi"), [])
    assert raised.value is error
    with pytest.raises(LLMError) as replayed:
        Cassette(path, mode="none").chat(request("hi"), [])
    assert type(replayed.value) is type(error) and str(replayed.value) == str(error)


def test_an_unknown_error_class_replays_as_llm_error(path: Path) -> None:
    class ProviderHiccup(LLMError):
        pass

    with pytest.raises(ProviderHiccup):
        Cassette(path, Failing(ProviderHiccup("hiccup"))).chat(request("hi"), [])
    text = path.read_text(encoding="utf-8").replace("ProviderHiccup", "GoneHiccup")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LLMError, match="^hiccup$") as replayed:
        Cassette(path, mode="none").chat(request("hi"), [])
    assert type(replayed.value) is LLMError


def test_other_exceptions_propagate_and_are_not_recorded(path: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        Cassette(path, Failing(ZeroDivisionError("bug"))).chat(request("hi"), [])
    assert not path.exists()


def test_the_file_is_json_lines_with_a_header(path: Path) -> None:
    converse(make_agent(Cassette(path, ScriptedModel(name="scripted-v2"))))
    raw = path.read_bytes()
    assert "Café ☕".encode() in raw  # UTF-8, not \\u escapes
    lines = lines_of(path)
    assert lines[0] == {"format": "memgpt_lab.cassette", "version": 1, "model": "scripted-v2"}
    for line in lines[1:]:
        assert list(line) == ["key", "response", "request"]
        assert re.fullmatch(r"[0-9a-f]{40}", line["key"])
        assert set(line["request"]) == {"messages", "functions"}
        assert line["response"]["choices"][0]["message"]["role"] == "assistant"
    assert not re.search(r"api[_-]?key|authorization|bearer", raw.decode(), re.IGNORECASE)


def test_each_pair_is_on_disk_as_soon_as_it_is_answered(path: Path) -> None:
    cassette = Cassette(path, ScriptedModel())
    cassette.chat(request("one"), [])
    assert len(lines_of(path)) == 2
    cassette.chat(request("two"), [])
    assert len(lines_of(path)) == 3


def test_a_crash_mid_recording_keeps_what_was_recorded(path: Path) -> None:
    class CrashesOnThirdCall:
        name = "crashy"

        def __init__(self) -> None:
            self.model = ScriptedModel()
            self.calls = 0

        def chat(self, messages: Sequence[Message], functions: Sequence[dict[str, Any]]) -> Any:
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return self.model.chat(messages, functions)

    agent = make_agent(Cassette(path, CrashesOnThirdCall()))
    with pytest.raises(KeyboardInterrupt):
        converse(agent)
    assert len(lines_of(path)) == 3  # the header and the two answered calls

    replaying = make_agent(Cassette(path, mode="none"), FixedClock(LATER))
    replies = converse(replaying, CONVERSATION[:1])
    assert replies and replies[0]


def test_a_line_cut_short_is_reported_with_its_number(path: Path) -> None:
    Cassette(path, ScriptedModel()).chat(request("one"), [])
    with path.open("a", encoding="utf-8") as file:
        file.write('{"key": "abc", "response": {"choi')
    with pytest.raises(LLMError, match=r"line 3, is not valid JSON.*cut short"):
        Cassette(path, mode="none").chat(request("one"), [])


def test_lines_without_a_key_are_hashed_on_load(path: Path) -> None:
    answer = Cassette(path, ScriptedModel()).chat(request("hello"), [])
    header, pair = lines_of(path)
    del pair["key"]
    pair["request"]["messages"][1]["content"] = package_user_message("edited by hand")
    path.write_text(f"{json.dumps(header)}\n{json.dumps(pair)}\n", encoding="utf-8")
    player = Cassette(path, mode="none")
    assert player.chat(request("edited by hand"), []) == answer
    with pytest.raises(CassetteMismatchError):
        Cassette(path, mode="none").chat(request("hello"), [])


def test_threads_record_every_pair_once(path: Path) -> None:
    cassette = Cassette(path, ScriptedModel())
    barrier = threading.Barrier(8)

    def talk(index: int) -> None:
        barrier.wait()
        for turn in range(5):
            cassette.chat(request(f"thread {index} turn {turn}"), [])

    threads = [threading.Thread(target=talk, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = lines_of(path)
    assert cassette.recorded == 40 and len(lines) == 41
    player = Cassette(path, mode="none")
    for index in range(8):
        for turn in range(5):
            player.chat(request(f"thread {index} turn {turn}"), [])
    assert player.played == 40


# --- name, repr ---------------------------------------------------------------------------


def test_the_name_is_the_models_else_the_headers_else_cassette(path: Path) -> None:
    assert Cassette(path).name == "cassette"
    Cassette(path, ScriptedModel(name="gpt-test")).chat(request("hi"), [])
    assert Cassette(path).name == "gpt-test"
    assert Cassette(path, ScriptedModel(name="other")).name == "other"
    assert Cassette(path, name="mine").name == "mine"
    cassette = Cassette(path)
    cassette.name = "renamed"
    assert cassette.name == "renamed"


def test_a_cassette_is_a_chat_model(path: Path) -> None:
    cassette = Cassette(path)
    assert isinstance(cassette, ChatModel)
    assert get_model(cassette) is cassette


def test_a_response_that_looks_like_a_request_replays_whole(path: Path) -> None:
    tricky = Turn.say('a quote ", "request": {"messages": [] and café').completion(0, "x")
    tricky["extra"] = {"note": 1, "request": {"messages": []}}
    Cassette(path, ReplayModel([tricky])).chat(request("hi"), [])
    assert Cassette(path, mode="none").chat(request("hi"), []) == tricky


def test_repr_is_cheap_and_says_what_it_is(path: Path) -> None:
    cassette = Cassette(path, ScriptedModel(), "new_episodes")
    assert repr(cassette) == (
        f"Cassette({str(path)!r}, model='scripted', mode='new_episodes', played=0, recorded=0)"
    )
    assert not path.exists()


# --- normalising --------------------------------------------------------------------------


def test_packaged_messages_lose_their_time() -> None:
    message = {
        "role": "user",
        "content": package_user_message("hi", "2026-01-01 09:00:00 AM UTC+0000", name="Ana"),
    }
    assert normalise_message(message) == {
        "role": "user",
        "content": {"type": "user_message", "message": "hi", "time": "<time>", "name": "Ana"},
    }


def test_function_results_lose_their_time_and_search_timestamps() -> None:
    results = json.dumps(
        [
            "Showing 2 of 2 results (page 0/0):",
            "timestamp: 2026-01-01 09:00, user: my cat is Tom",
            "timestamp: 2026-01-01 09:01, user: logged in at 2026-01-01 09:00:02 AM UTC+0000",
        ]
    )
    message = {
        "role": "function",
        "name": "conversation_search",
        "content": package_function_response(True, results, "2026-01-01 09:01:00 AM UTC+0000"),
    }
    assert normalise_message(message)["content"] == {
        "status": "OK",
        "message": [
            "Showing 2 of 2 results (page 0/0):",
            "timestamp: <time>, user: my cat is Tom",
            "timestamp: <time>, user: logged in at <time>",
        ],
        "time": "<time>",
    }


def test_nested_json_and_any_zone_are_normalised() -> None:
    inner = json.dumps({"time": 1767258000, "note": "sent 2026-01-01 10:00:00 AM CET+0100"})
    message = {"role": "user", "content": json.dumps({"type": "system_alert", "message": inner})}
    assert normalise_message(message)["content"] == {
        "type": "system_alert",
        "message": {"time": "<time>", "note": "sent <time>"},
    }


def test_ids_are_normalised() -> None:
    message: Message = {
        "role": "assistant",
        "id": "msg_1",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "f", "arguments": '{"id": "kept", "time": "kept"}'},
            }
        ],
    }
    result = normalise_message(message)
    assert result["id"] == "<id>" and result["tool_calls"][0]["id"] == "<id>"
    assert result["tool_calls"][0]["function"] == message["tool_calls"][0]["function"]
    assert normalise_message({"role": "tool", "tool_call_id": "call_1", "content": "ok"}) == {
        "role": "tool",
        "tool_call_id": "<id>",
        "content": "ok",
    }


@pytest.mark.parametrize(
    "content",
    [
        "hello at 2026-01-01 09:00:00 AM UTC+0000",
        "[summarise] You are summarising the older part of a conversation",
        "{not json",
        '"a JSON string"',
        "",
        None,
        [{"type": "text", "text": "parts"}],
    ],
)
def test_other_contents_are_untouched(content: Any) -> None:
    message = {"role": "user", "content": content}
    assert normalise_message(message) == message


def test_the_system_message_is_untouched() -> None:
    agent = make_agent(ScriptedModel())
    system = agent.messages[0]
    assert normalise_message(system) == system


def test_normalising_does_not_change_its_input() -> None:
    message = {"role": "tool", "tool_call_id": "x", "content": package_user_message("hi")}
    copy = json.loads(json.dumps(message))
    normalise_message(message)
    normalise_request({"messages": [message], "functions": []})
    assert message == copy


def test_normalise_request_applies_an_extra_normaliser_after_the_default() -> None:
    seen: list[Message] = []

    def drop_names(message: Message) -> Message:
        seen.append(message)
        content = message.get("content")
        if isinstance(content, dict):
            message = {**message, "content": {k: v for k, v in content.items() if k != "name"}}
        return message

    user = {"role": "user", "content": package_user_message("hi", name="Ana")}
    schema = {"name": "f", "parameters": {}}
    result = normalise_request({"messages": [user], "functions": [schema]}, drop_names)
    assert result == {
        "messages": [
            {"role": "user", "content": {"type": "user_message", "message": "hi", "time": "<time>"}}
        ],
        "functions": [schema],
    }
    assert seen[0]["content"]["time"] == "<time>"  # it received the normalised message


def test_a_cassette_with_an_extra_normaliser(path: Path) -> None:
    def no_digits_in_system(message: Message) -> Message:
        if message.get("role") == "system":
            return {**message, "content": re.sub(r"\d+", "#", str(message["content"]))}
        return message

    answer = Cassette(path, ScriptedModel(), normalise=no_digits_in_system).chat(
        request("hi", "3 messages in recall"), []
    )
    assert "key" not in lines_of(path)[1]  # keys are for the default normalisation only
    player = Cassette(path, mode="none", normalise=no_digits_in_system)
    assert player.chat(request("hi", "42 messages in recall"), []) == answer
    with pytest.raises(CassetteMismatchError):
        Cassette(path, mode="none").chat(request("hi", "42 messages in recall"), [])


def test_each_message_is_normalised_once(path: Path) -> None:
    """Matching stays linear: a step normalises its new messages, not the whole context."""
    normalised: list[Message] = []
    sent: dict[int, Message] = {}

    class Spy(ScriptedModel):
        def chat(self, messages: Sequence[Message], functions: Sequence[dict[str, Any]]) -> Any:
            sent.update((id(m), m) for m in messages)
            return super().chat(messages, functions)

    def counting(message: Message) -> Message:
        normalised.append(message)
        return message

    agent = make_agent(Cassette(path, Spy(), normalise=counting))
    converse(agent, CONVERSATION * 3)
    total = sum(len(line["request"]["messages"]) for line in lines_of(path)[1:])
    assert len(normalised) == len(sent) < total / 4


def test_clock_step_does_not_matter_either(path: Path) -> None:
    recorded = converse(make_agent(Cassette(path, ScriptedModel())))
    slow = FixedClock(LATER, step=timedelta(hours=3))
    assert converse(make_agent(Cassette(path, mode="none"), slow)) == recorded
