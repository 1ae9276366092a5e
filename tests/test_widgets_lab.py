"""PresetBuilder, AgentConsole, MemoryView and Lab, driven from Python (no browser)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import ipywidgets as widgets
import pytest
import yaml

from memgpt_lab import (
    FixedClock,
    MockWebSocket,
    Recording,
    ReplayModel,
    SyncWebSocketInterface,
    Turn,
    create_agent_from_preset,
    get_human_text,
    get_persona_text,
    system,
)
from memgpt_lab.agent import Agent
from memgpt_lab.errors import LLMError, PresetError
from memgpt_lab.interface import CollectingInterface
from memgpt_lab.llm.providers import PROVIDERS, ModelSpec
from memgpt_lab.llm.server import LLMServer
from memgpt_lab.widgets import AgentConsole, Lab, MemoryView, PresetBuilder
from memgpt_lab.widgets.builder import CUSTOM
from memgpt_lab.widgets.console import entry_html
from memgpt_lab.widgets.memory_view import (
    CHART_STEPS,
    ContextSample,
    context_bar_html,
    context_chart_svg,
)

SEND_KINDS = ["user", "monologue", "function_call", "assistant", "function_ok"]


def make_agent(model: object = None, **config: object) -> Agent:
    return create_agent_from_preset(
        "memgpt_chat",
        config or None,
        model,  # type: ignore[arg-type]
        get_persona_text("sam_pov"),
        get_human_text("basic"),
        clock=FixedClock(),
        id="agent-1",
    )


def kinds(console: AgentConsole) -> list[str]:
    return [kind for kind, _ in console.entries]


@pytest.fixture
def console() -> Iterator[AgentConsole]:
    view = AgentConsole(make_agent())
    yield view
    view.close()


@pytest.fixture
def lab() -> Iterator[Lab]:
    view = Lab(clock=FixedClock(), agent_id="agent-1")
    yield view
    view.close()


# --------------------------------------------------------------------------- PresetBuilder


@pytest.fixture
def builder() -> Iterator[PresetBuilder]:
    view = PresetBuilder(clock=FixedClock())
    yield view
    view.close()


def test_builder_starts_from_the_default_preset_and_named_texts(builder: PresetBuilder) -> None:
    assert builder.preset_name.value == "memgpt_chat"
    assert "send_message" in builder.functions
    assert builder.persona_text.value == get_persona_text("sam_pov")
    assert builder.human_text.value == get_human_text("basic")
    preset = builder.build_preset()
    assert preset.system_prompt_name == "memgpt_chat"  # unedited: kept as a reference


def test_builder_creates_an_agent_and_calls_hooks(builder: PresetBuilder) -> None:
    created: list[Agent] = []
    builder.on_create(created.append)
    builder.functions = ["send_message", "core_memory_append"]
    builder.context_window.value = 1500
    agent = builder.create_agent()
    assert created == [agent] and builder.agent is agent
    assert list(agent.functions) == ["send_message", "core_memory_append"]
    assert agent.config.context_window == 1500
    assert agent.memory.persona == get_persona_text("sam_pov")
    assert "mlab-status-ok" in builder.status and "Created agent" in builder.status


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda b: setattr(b.persona_text, "value", "   "), "the persona is empty"),
        (
            lambda b: setattr(b.persona_text, "value", "x" * 2001),
            "the persona text is 2001 characters, over its limit of 2000",
        ),
        (
            lambda b: (
                b.human_text.set_trait("value", "y" * 60) or b.human_limit.set_trait("value", 50)
            ),
            "the human text is 60 characters, over its limit of 50",
        ),
        (
            lambda b: setattr(b, "functions", ["send_message", "teleport"]),
            "unknown function(s) teleport",
        ),
        (lambda b: setattr(b, "functions", ["core_memory_append"]), "tick send_message"),
        (lambda b: setattr(b.prompt_text, "value", ""), "the system prompt is empty"),
        (lambda b: setattr(b.preset_name, "value", " "), "give the preset a name"),
        (lambda b: setattr(b.context_window, "value", 10), "context_window must be at least 256"),
    ],
)
def test_builder_invalid_input_is_shown_not_raised_by_the_button(
    builder: PresetBuilder, change: object, expected: str
) -> None:
    change(builder)  # type: ignore[operator]
    with pytest.raises(PresetError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        builder.create_agent()
    builder._set_status("", ok=True)
    builder._create.click()  # the button: no exception, the same message in the status line
    assert "mlab-status-error" in builder.status
    assert expected in builder.status
    assert builder.agent is None


def test_builder_save_and_load_round_trip(builder: PresetBuilder, tmp_path: Path) -> None:
    builder.preset_name.value = "tea_bot"
    builder.description_text.value = "Talks about tea."
    builder.functions = ["send_message", "archival_memory_insert", "archival_memory_search"]
    builder.prompt_text.value = "You are a bot that loves tea. Use send_message to speak."
    path = builder.save(tmp_path / "tea_bot.yaml")
    saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert saved["system_prompt_text"].startswith("You are a bot that loves tea")  # edited: inline
    assert "mlab-status-ok" in builder.status

    other = PresetBuilder(preset="memgpt_minimal")
    try:
        loaded = other.load(path)
        assert loaded == builder.build_preset()
        assert other.preset_name.value == "tea_bot"
        assert other.functions == builder.functions
        assert other.prompt_text.value == builder.prompt_text.value
    finally:
        other.close()


def test_builder_saves_a_named_prompt_by_name_and_to_a_directory(
    builder: PresetBuilder, tmp_path: Path
) -> None:
    path = builder.save(tmp_path)
    assert path.name == "memgpt_chat.yaml"
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["system_prompt"] == "memgpt_chat"


def test_builder_load_errors_are_shown(builder: PresetBuilder, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsystem_prompt: memgpt_chat\nfunctions: [fly]\n", encoding="utf-8")
    builder.path.value = str(bad)
    builder._load.click()
    assert "mlab-status-error" in builder.status and "unknown function(s) fly" in builder.status
    builder.path.value = ""
    builder._save.click()
    assert "give a file path" in builder.status


def test_builder_named_choices_fill_the_textareas(builder: PresetBuilder) -> None:
    builder.persona_choice.value = "memgpt_starter"
    assert builder.persona_text.value == get_persona_text("memgpt_starter")
    builder.human_choice.value = "cs_phd"
    assert builder.human_text.value == get_human_text("cs_phd")
    builder.start_from.value = "memgpt_minimal"
    assert builder.functions == ["send_message", "core_memory_append", "core_memory_replace"]
    assert builder.build_preset().system_prompt_name == "memgpt_minimal"


def test_builder_uses_a_given_model(builder: PresetBuilder) -> None:
    model = ReplayModel([Turn.say("hi")])
    given = PresetBuilder(model=model)
    try:
        assert given.create_agent().model is model
    finally:
        given.close()


# --------------------------------------------------------------------------- AgentConsole


def test_console_send_shows_a_send_message_step_in_order(console: AgentConsole) -> None:
    result = console.send("Hello, is anyone there?")
    assert result is not None and result.replies
    assert kinds(console) == SEND_KINDS
    assert console.entries[0] == ("user", "Hello, is anyone there?")
    assert console.entries[3] == ("assistant", result.replies[0])
    assert console.pending is None
    html = console.transcript_html
    for css in ("mlab-user", "mlab-monologue", "mlab-function-call", "mlab-assistant"):
        assert css in html
    assert html.index("mlab-user") < html.index("mlab-monologue") < html.index("mlab-assistant")


@pytest.mark.parametrize(
    ("turn", "error"),
    [
        (Turn("Let me fly.", "fly", {}), "No function named 'fly'"),
        (Turn("Broken JSON.", "send_message", "{not json"), "Error parsing JSON"),
        (
            Turn(
                "Bad edit.",
                "core_memory_replace",
                {"name": "human", "old_content": "zzz", "new_content": "a"},
            ),
            "Content not found in human",
        ),
    ],
)
def test_console_marks_a_failed_function(turn: Turn, error: str) -> None:
    console = AgentConsole(make_agent(ReplayModel([turn, Turn.say("Sorry about that.")])))
    try:
        console.step("hi")
        assert kinds(console)[-1] == "function_error"
        assert error in console.entries[-1][1]
        assert "mlab-function-error" in console.transcript_html
        pending = json.loads(console.pending or "{}")
        assert pending["type"] == "heartbeat"
        assert pending["reason"] == system.FUNC_FAILED_HEARTBEAT_MESSAGE
        console.step()
        assert console.entries[-2] == ("assistant", "Sorry about that.")
        assert console.pending is None
    finally:
        console.close()


def test_console_walks_a_heartbeat_chain_one_step_at_a_time() -> None:
    model = ReplayModel(
        [
            Turn(
                "Noting it.",
                "archival_memory_insert",
                {"content": "likes tea", "request_heartbeat": True},
            ),
            Turn(
                "Look it up.", "archival_memory_search", {"query": "tea", "request_heartbeat": True}
            ),
            Turn.say("You like tea."),
        ]
    )
    console = AgentConsole(make_agent(model))
    try:
        pendings = []
        console.step("I like tea")
        pendings.append(json.loads(console.pending or "null"))
        console._buttons["step"].click()  # the button sends the pending heartbeat
        assert console.wait(10)
        pendings.append(json.loads(console.pending or "null"))
        console.step()
        pendings.append(console.pending)
        assert [p["reason"] for p in pendings[:2]] == [system.REQ_HEARTBEAT_MESSAGE] * 2
        assert pendings[2] is None
        assert kinds(console).count("heartbeat") == 2
        assert console.entries[-2] == ("assistant", "You like tea.")
        with pytest.raises(ValueError, match="nothing to step"):
            console.step()
        assert "Nothing to step" in console.status
    finally:
        console.close()


def test_stepping_gives_the_same_transcript_as_a_turn() -> None:
    turned, stepped = AgentConsole(make_agent()), AgentConsole(make_agent())
    try:
        turned.send("my name is Ada")
        stepped.step("my name is Ada")
        while stepped.pending is not None:
            stepped.step()
        assert stepped.entries == turned.entries
        assert "heartbeat" in kinds(turned)
        assert stepped.agent.memory.human == turned.agent.memory.human
    finally:
        turned.close()
        stepped.close()


def test_console_pending_token_warning_then_alert() -> None:
    agent = make_agent(context_window=2000, warning_fraction=0.1)
    console = AgentConsole(agent)
    try:
        console.step("hello")
        pending = json.loads(console.pending or "{}")
        assert pending["type"] == "system_alert" and "context window" in pending["message"]
        assert agent.alerted_about_memory_pressure
        console.step()
        assert ("alert", pending["message"]) in console.entries
        assert "mlab-alert" in console.transcript_html
    finally:
        console.close()


def test_console_injects_heartbeat_and_memory_warning(console: AgentConsole) -> None:
    console.inject_heartbeat()
    assert console.entries[0] == ("heartbeat", "Automated timer")
    assert kinds(console)[1] == "monologue"
    console.inject_memory_warning()
    alert = [text for kind, text in console.entries if kind == "alert"]
    assert alert and "close to the context window" in alert[0]
    assert "mlab-heartbeat" in console.transcript_html
    assert len(console.agent.archival_memory) == 1  # the scripted model saves the human block


def test_console_reset_without_factory_clears_the_view(console: AgentConsole) -> None:
    agent = console.agent
    console.send("hello")
    console.reset()
    assert console.entries == [] and console.agent is agent
    assert len(agent.recall_memory) > 0  # the agent keeps its memory


def test_console_reset_with_factory_makes_a_fresh_agent() -> None:
    console = AgentConsole(make_agent(), factory=make_agent)
    try:
        first = console.agent
        console.send("my name is Ada")
        console.reset()
        assert console.agent is not first and console.entries == []
        assert "Ada" not in console.agent.memory.human
        console.send("hello")
        assert kinds(console) == SEND_KINDS  # the new agent talks to the console
        assert console._interface not in getattr(first.interface, "interfaces", [])
    finally:
        console.close()


def test_console_raises_model_errors_to_code_and_shows_them_from_buttons() -> None:
    console = AgentConsole(make_agent(ReplayModel([])))
    try:
        with pytest.raises(LLMError, match="ReplayModel has no more responses"):
            console.send("hello")
        assert kinds(console) == ["user", "error"]
        assert "ReplayModel has no more responses" in console.entries[-1][1]
        assert "mlab-status-error" in console.status
        assert console.last_error is not None
        console._input.value = "again"
        console._buttons["send"].click()  # no exception from the button
        assert console.wait(10)
        assert console._input.value == "again"  # kept, so the user can retry
        assert kinds(console)[-1] == "error" and "no more responses" in console.status
        assert not any(b.disabled for b in console._buttons.values())
    finally:
        console.close()


def test_console_records_each_turn_with_server_frames() -> None:
    recording = Recording()
    agent = make_agent()
    console = AgentConsole(agent, recording)
    try:
        assert console.interface is not None and console.recording is recording
        console.send("Hello")
        # Flushed before send() returned: no waiting needed.
        recording.assert_sequence(
            [
                {"type": "user_message", "message": "Hello", "agent_id": "agent-1"},
                {"type": "agent_response_start"},
                {"type": "agent_response", "message_type": "internal_monologue"},
                {"type": "agent_response", "message_type": "assistant_message"},
                {"type": "agent_response_end"},
            ]
        )
        assert recording[0].direction == "in"
        assert recording[-1].type == "agent_response_end"
        count = len(recording)
        console.inject_heartbeat()
        assert recording[count].type == "agent_response_start"
        assert recording[-1].type == "agent_response_end"
        socket = console.interface
    finally:
        console.close()
    assert socket.closed and not socket.thread.is_alive()  # the console's own interface


def test_console_composes_with_existing_interfaces() -> None:
    ws = MockWebSocket()
    socket = SyncWebSocketInterface()
    collecting = CollectingInterface()
    socket.register_client(ws)
    agent = make_agent()
    agent.interface = collecting
    console = AgentConsole(agent)
    try:
        assert console.interface is None and console.recording is None
        console.send("hi")
        assert collecting.kinds()[:2] == ["user_message", "internal_monologue"]
        console.close()
        assert agent.interface.interfaces == [collecting]  # type: ignore[attr-defined]

        agent.interface = socket
        console = AgentConsole(agent, Recording())  # the agent's own socket wins
        assert console.interface is socket and console.recording is ws.recording
        console.send("hi again")
        assert ws.recording.filter(type="agent_response_end")
        assert ws.recording.filter(type="agent_response", message_type="assistant_message")
    finally:
        console.close()
        assert not socket.closed  # not the console's to close
        socket.close()


def test_console_repr_is_cheap_and_stable(console: AgentConsole) -> None:
    console.send("hi")
    assert repr(console) == "<AgentConsole 5 entries, pending=None>"


# --------------------------------------------------------------------------- MemoryView


def test_memory_view_counts_search_and_context_bar() -> None:
    agent = make_agent()
    console, view = AgentConsole(agent), MemoryView(agent)
    try:
        assert view.recall_count == 0 and view.archival_count == 0
        console.send("remember that my cat is called Tom")
        view.refresh()
        assert view.recall_count == len(agent.recall_memory) > 0
        assert view.archival_count == 1
        assert view.context == agent.context_breakdown()
        html = view._context.value
        for key in ("system", "core_memory", "messages", "functions"):
            assert f'data-section="{key}" data-tokens="{agent.context_breakdown()[key]}"' in html
        assert f'data-window="{agent.config.context_window}"' in html

        found = view.search("cat")
        memories = {memory for memory, _ in found}
        assert memories == {"recall", "archival"}
        assert ("archival", "my cat is called Tom") in found
        assert "mlab-result-archival" in view._results.value
        assert view.search("  ") == []
    finally:
        console.close()
        view.close()


def test_memory_view_edits_blocks_within_limits() -> None:
    agent = make_agent(human_char_limit=100)
    view = MemoryView(agent)
    try:
        assert view.char_count("human") == (len(agent.memory.human), 100)
        assert view.save_block("human", "Name: Ada") is True
        assert agent.memory.human == "Name: Ada"
        assert "Name: Ada" in agent.messages[0]["content"]  # rebuilt into the system message
        assert "mlab-status-ok" in view.status

        view.human.value = "z" * 101
        assert "mlab-count-over" in view._editors["human"].count.value
        assert view.save_block("human") is False
        assert agent.memory.human == "Name: Ada"  # not applied
        assert "over its limit of 100" in view.status and "mlab-status-error" in view.status
        view._editors["human"].save.click()  # the button: no exception
        assert "over its limit" in view.status
    finally:
        view.close()


def test_memory_view_keeps_unsaved_edits_on_refresh() -> None:
    agent = make_agent()
    view = MemoryView(agent)
    try:
        view.persona.value = "draft"
        agent.memory.set("human", "Name: Bo")
        view.refresh()
        assert view.persona.value == "draft" and view.human.value == "Name: Bo"
        view.agent = make_agent()
        assert view.persona.value == get_persona_text("sam_pov")
    finally:
        view.close()


# --------------------------------------------------------------------------- Lab


def test_lab_send_records_frames_and_updates_tabs(lab: Lab) -> None:
    assert lab.inspector.total_count == 0
    assert lab.tabs.titles == ("Console", "Memory", "Traffic", "Preset", "History")
    lab.console.send("Hello, is anyone there?")
    assert len(lab.recording) == 7
    lab.inspector.refresh()
    assert lab.inspector.total_count == 7
    assert lab.memory.recall_count == len(lab.agent.recall_memory) == 3
    assert lab.memory.context == lab.agent.context_breakdown()
    assert 'data-frames="7"' in lab.timeline.value
    lab.console.inject_heartbeat()
    lab.inspector.refresh()
    assert lab.inspector.total_count > 7
    lab.inspector.set_filter(type="user_message")
    assert lab.inspector.filtered_count == 1


def test_lab_builder_swaps_the_agent(lab: Lab) -> None:
    first = lab.agent
    lab.console.send("hello")
    lab.builder.functions = ["send_message"]
    lab.builder._create.click()
    new = lab.builder.agent
    assert new is not None and lab.agent is new is lab.memory.agent
    assert list(new.functions) == ["send_message"]
    lab.console.send("hello again")
    assert lab.recording[-1].type == "agent_response_end"
    assert {f.connection_id for f in lab.recording} == {"c1", "c2"}
    assert len(first.recall_memory) == 3  # the old agent heard nothing more


def test_lab_reset_gives_memory_the_fresh_agent(lab: Lab) -> None:
    lab.console.send("my name is Ada")
    lab.console.reset()
    assert lab.memory.agent is lab.agent
    assert "Ada" not in lab.memory.human.value
    assert lab.agent.id == "agent-1"


def test_lab_on_an_existing_agent_shows_its_recording() -> None:
    ws = MockWebSocket()
    socket = SyncWebSocketInterface()
    socket.register_client(ws)
    agent = make_agent()
    agent.interface = socket
    agent.step(system.package_user_message("Hello", "t0"), first_message=True, skip_verify=True)
    socket.flush()
    view = Lab(agent)
    try:
        assert view.recording is ws.recording and view.agent is agent
        assert view.inspector.total_count == 4
        view.console.send("more")
        view.inspector.refresh()
        assert view.inspector.total_count == len(ws.recording) > 4
        assert repr(view).startswith("<Lab agent='agent'")
    finally:
        view.close()
        socket.close()


def test_lab_uses_a_given_empty_recording() -> None:
    recording = Recording()  # empty, so falsy: must still be the one used
    view = Lab(recording=recording, clock=FixedClock())
    try:
        assert view.recording is recording is view.console.recording
        view.console.send("hi")
        assert len(recording) == 7 and view.inspector.total_count == 7
    finally:
        view.close()


def test_builder_button_shows_an_error_from_a_create_hook(builder: PresetBuilder) -> None:
    from memgpt_lab.errors import UnknownNameError

    def hook(agent: Agent) -> None:
        raise UnknownNameError("thing", "missing", ["present"])

    builder.on_create(hook)
    builder._create.click()  # no exception into the notebook
    assert "mlab-status-ok" not in builder.status
    assert "unknown thing &#x27;missing&#x27;" in builder.status


def test_builder_button_shows_any_other_error_from_a_create_hook(builder: PresetBuilder) -> None:
    def hook(agent: Agent) -> None:
        raise RuntimeError("hook broke")

    builder.on_create(hook)
    builder._create.click()
    assert "RuntimeError: hook broke" in builder.status


# --------------------------------------------------------------------------- real models
# A served model (LLMServer on loopback, "scripted" behind it) stands in for a real one.

SENTINEL = "sk-SENTINEL-widgets-5c81e0d2a4"
KEY_VARIABLE = "MEMGPT_LAB_WIDGETS_TEST_KEY"
LATENCY = re.compile(r"\d+(\.\d+)? m?s\b")


@pytest.fixture(scope="module")
def llm_server() -> Iterator[LLMServer]:
    with LLMServer() as server:
        yield server


def served_agent(server: LLMServer, **options: object) -> Agent:
    model = ModelSpec("openai-compatible", "scripted", server.base_url).build(**options)
    return make_agent(model)


def widget_texts(view: widgets.Widget) -> str:
    """Every synced value of ``view`` and the widgets in it, as one text."""
    found, stack = [], [view]
    while stack:
        widget = stack.pop()
        found.append(json.dumps(widget.get_state(), default=str))
        stack.extend(getattr(widget, "children", ()))
    return "\n".join(found)


def fill_model(builder: PresetBuilder, base_url: str, variable: str = "") -> None:
    builder.provider.value = "openai-compatible"
    builder.model_name.value = "scripted"
    builder.base_url.value = base_url
    builder.api_key_env.value = variable


class BlockingModel:
    """A given model whose list_models() waits until the test lets it answer."""

    name = "blocking"

    def __init__(self, answer: list[str] | Exception) -> None:
        self.answer = answer
        self.release = threading.Event()

    def chat(self, messages: object, functions: object) -> dict[str, object]:
        raise AssertionError("not used")

    def list_models(self) -> list[str]:
        assert self.release.wait(10)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_builder_model_fields_follow_the_provider(builder: PresetBuilder) -> None:
    labels = dict(builder.provider.options)
    assert labels["scripted (offline)"] == "scripted"
    for name, profile in PROVIDERS.items():
        assert labels[profile.label] == name
    assert builder.provider.value == "scripted" and builder.model_spec() is None
    assert builder.model_name.disabled and builder.base_url.disabled
    assert builder.api_key_env.disabled

    builder.provider.value = "vllm"
    assert not (builder.model_name.disabled or builder.base_url.disabled)
    assert builder.base_url.placeholder == "http://localhost:8000/v1"
    assert builder.api_key_env.placeholder == "VLLM_API_KEY"
    builder.provider.value = "ollama"
    assert builder.api_key_env.placeholder == "none needed"
    builder.model_name.value = "llama3.1"
    assert builder.model_spec() == ModelSpec("ollama", "llama3.1")
    # Only the variable's name: no widget takes the key itself.
    assert not [w for w in builder._all_children() if isinstance(w, widgets.Password)]


def test_builder_saves_the_model_but_never_the_key(
    builder: PresetBuilder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, SENTINEL)
    with LLMServer(api_key=SENTINEL) as server:  # refuses any other key
        fill_model(builder, server.base_url, KEY_VARIABLE)
        assert builder.test_connection(wait=True).result() == ["scripted"]
        path = builder.save(tmp_path / "served.yaml")
        text = path.read_text(encoding="utf-8")
        assert yaml.safe_load(text)["model"] == {
            "provider": "openai-compatible",
            "model": "scripted",
            "base_url": server.base_url,
            "api_key_env": KEY_VARIABLE,
        }

        other = PresetBuilder(clock=FixedClock())
        try:
            loaded = other.load(path)
            assert loaded == builder.build_preset()
            assert loaded.model == ModelSpec(
                "openai-compatible", "scripted", server.base_url, KEY_VARIABLE
            )
            assert (other.provider.value, other.model_name.value) == (
                "openai-compatible",
                "scripted",
            )
            assert (other.base_url.value, other.api_key_env.value) == (
                server.base_url,
                KEY_VARIABLE,
            )
            agent = other.create_agent()  # the key from the variable: the server accepts it
            console, view = AgentConsole(agent), MemoryView(agent)
            try:
                assert console.send("hello") is not None and console.last_error is None
                view.refresh()
                shown = "\n".join(
                    [widget_texts(v) for v in (builder, other, console, view)]
                    + [repr(v) for v in (builder, other, agent, agent.model)]
                )
            finally:
                console.close()
                view.close()
        finally:
            other.close()
    assert "openai-compatible:scripted" in other.status  # the model is named...
    assert KEY_VARIABLE in shown and SENTINEL not in shown  # ...the key never is
    assert SENTINEL not in text
    assert [p.name for p in tmp_path.iterdir()] == ["served.yaml"]


def test_builder_without_a_model_saves_none_and_loading_one_resets_to_offline(
    builder: PresetBuilder,
    tmp_path: Path,
) -> None:
    assert "model" not in yaml.safe_load(builder.save(tmp_path / "plain.yaml").read_text())
    fill_model(builder, "http://127.0.0.1:9/v1")
    builder.start_from.value = "memgpt_minimal"  # a start preset with no model keeps the fields
    assert builder.provider.value == "openai-compatible" and builder.model_spec() is not None
    builder.load(tmp_path / "plain.yaml")  # a file without one is the offline model
    assert builder.provider.value == "scripted" and builder.model_spec() is None
    assert builder.build_preset().model is None


def test_builder_starts_from_a_model_string() -> None:
    view = PresetBuilder(model="ollama:llama3.1@http://gpu:11434/v1")
    try:
        assert view.model_spec() == ModelSpec("ollama", "llama3.1", "http://gpu:11434/v1")
        assert view.base_url.value == "http://gpu:11434/v1" and not view.base_url.disabled
    finally:
        view.close()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (("openai-compatible", "m", "", ""), "needs its base URL"),
        (("vllm", " ", "", ""), "give the model&#x27;s name"),
        (("ollama", "m", "localhost:11434", ""), "must start with http:// or https://"),
        (("openai", "m", "", "sk-pasted-a-key-9"), "the NAME of an environment variable"),
    ],
)
def test_builder_model_problems_are_shown_not_raised(
    builder: PresetBuilder,
    tmp_path: Path,
    fields: tuple[str, str, str, str],
    expected: str,
) -> None:
    provider, model, url, variable = fields
    builder.provider.value = provider
    builder.model_name.value, builder.base_url.value, builder.api_key_env.value = (
        model,
        url,
        variable,
    )
    with pytest.raises(PresetError):
        builder.create_agent()
    builder.path.value = str(tmp_path / "bad.yaml")
    for button in (builder._create, builder._save, builder._test):
        builder._set_status("", ok=True)
        button.click()  # no exception from any button
        shown = builder.connection_status if button is builder._test else builder.status
        assert "mlab-status-error" in shown and expected in shown
        if variable:
            assert variable not in shown  # never echoed: it may be a key
    assert builder.agent is None and not list(tmp_path.iterdir())


def test_builder_test_connection_lists_the_served_models(
    builder: PresetBuilder, llm_server: LLMServer
) -> None:
    fill_model(builder, llm_server.base_url)
    builder._test.click()
    future = builder.test_connection(wait=True)  # the click's test, or a new one: both shown
    assert future.result() == ["scripted"]
    assert "mlab-status-ok" in builder.connection_status
    assert f"Connected to {llm_server.base_url}: 1 model (scripted)." in builder.connection_status
    assert not builder._test.disabled and builder._test.description == "Test connection"
    builder.model_name.value = "other"  # an edit clears the result; a test names the miss
    assert builder.connection_status == ""
    builder.test_connection(wait=True)
    assert "&#x27;other&#x27; is not among them" in builder.connection_status


def test_builder_test_connection_says_why_it_cannot_connect(builder: PresetBuilder) -> None:
    fill_model(builder, "http://127.0.0.1:9/v1")
    future = builder.test_connection(wait=True)
    assert isinstance(future.exception(), LLMError)
    assert "mlab-status-error" in builder.connection_status
    assert "cannot connect to http://127.0.0.1:9/v1" in builder.connection_status
    assert not builder._test.disabled


def test_builder_test_connection_names_the_variable_of_a_refused_key(
    builder: PresetBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, "sk-the-wrong-key")
    with LLMServer(api_key=SENTINEL) as server:
        fill_model(builder, server.base_url, KEY_VARIABLE)
        future = builder.test_connection(wait=True)
    assert isinstance(future.exception(), LLMError)
    status = builder.connection_status
    assert "mlab-status-error" in status and "(401)" in status and f"${KEY_VARIABLE}" in status
    assert "sk-the-wrong-key" not in status


def test_builder_test_connection_runs_in_the_background_with_the_button_off() -> None:
    model = BlockingModel(LLMError("refused: <b>no</b>"))
    view = PresetBuilder(model=model)
    try:
        future = view.test_connection()
        assert view._test.disabled and "Connecting" in view.connection_status
        assert view.test_connection() is future  # one test at a time
        view.model_name.value = "x"  # an edit while testing does not hide the coming result
        model.release.set()
        assert isinstance(future.exception(timeout=10), LLMError)
        assert not view._test.disabled
        assert "refused: &lt;b&gt;no&lt;/b&gt;" in view.connection_status  # escaped
    finally:
        view.close()


def test_builder_test_connection_of_the_offline_model(builder: PresetBuilder) -> None:
    assert builder.test_connection(wait=True).result() == []
    assert "needs no connection" in builder.connection_status


def test_console_shows_which_model_answered_and_each_steps_latency(
    llm_server: LLMServer,
) -> None:
    served, offline = AgentConsole(served_agent(llm_server)), AgentConsole(make_agent())
    try:
        for text in ("hello", "remember that my cat is called Tom"):
            result = served.send(text)
            assert result is not None and served.last_error is None
            assert offline.send(text) is not None
            line = served._calls_line.value
            assert served.calls[-1] is served.agent.last_call
            assert [c.model for c in served.calls] == ["scripted"] * len(result.steps)
            assert f'data-steps="{len(result.steps)}"' in line
            assert "answered by scripted · " in line
            assert len(LATENCY.findall(line)) == len(result.steps)
        assert len(served.calls) > 1  # the second turn chained a heartbeat
        # Latencies live outside the transcript, which is the same as the offline model's.
        assert served.transcript_html == offline.transcript_html
        assert not LATENCY.search(served.transcript_html)
        assert "answered by scripted" in offline._calls_line.value
        served.reset()
        assert served.calls == [] and served._calls_line.value == ""
    finally:
        served.close()
        offline.close()


def test_console_shows_no_answer_when_the_model_cannot_be_reached() -> None:
    console = AgentConsole(
        make_agent(
            ModelSpec("openai-compatible", "m", "http://127.0.0.1:9/v1").build(max_retries=0)
        )
    )
    try:
        with pytest.raises(LLMError, match="cannot connect"):
            console.send("hello")
        assert "cannot connect to http://127.0.0.1:9/v1" in console.status
        assert console.calls == [] and console._calls_line.value == ""
    finally:
        console.close()


def test_memory_view_shows_reported_prompt_tokens_only_for_a_served_model(
    llm_server: LLMServer,
) -> None:
    served, offline = served_agent(llm_server), make_agent()
    views = [MemoryView(served), MemoryView(offline)]
    try:
        for agent, view in zip((served, offline), views, strict=True):
            agent.turn("hello")
            view.refresh()
        call = served.last_call
        assert call is not None and call.reported_prompt_tokens is not None
        html = views[0]._context.value
        assert "mlab-ctx-reported" in html
        assert f'data-reported="{call.reported_prompt_tokens}"' in html
        assert f'data-estimated="{call.estimated_prompt_tokens}"' in html
        assert (
            f"~{call.estimated_prompt_tokens:,} estimated · "
            f"{call.reported_prompt_tokens:,} reported by scripted" in html
        )
        # The offline model reports nothing of its own: the bar is as it always was.
        assert offline.last_call is not None and offline.last_call.reported_prompt_tokens is None
        assert views[1]._context.value == context_bar_html(offline.context_breakdown())
        assert "reported" not in views[1]._context.value
    finally:
        for view in views:
            view.close()


# --------------------------------------------------------------------------- what users hit


def test_builder_start_from_offers_names_and_a_blank_preset(builder: PresetBuilder) -> None:
    labels = [label for label, _value in builder.start_from.options]
    assert labels == ["memgpt_chat", "memgpt_minimal", "(blank)"]  # no "('(none)', '')"
    builder.start_from.value = CUSTOM
    assert builder.preset_name.value == "" and builder.prompt_text.value == ""
    assert builder.functions == ["send_message"]
    assert builder.prompt_choice.value == CUSTOM


def test_builder_dropdowns_follow_their_text(builder: PresetBuilder) -> None:
    builder.persona_choice.value = "memgpt_starter"
    builder.persona_text.value = ""
    assert builder.persona_choice.value == CUSTOM  # the text is no longer memgpt_starter
    builder.persona_choice.value = "memgpt_starter"  # choosing it again restores the text
    assert builder.persona_text.value == get_persona_text("memgpt_starter")
    builder.human_text.value += " Likes tea."
    assert builder.human_choice.value == CUSTOM
    builder.prompt_text.value = "Be brief."
    assert builder.prompt_choice.value == CUSTOM
    assert builder.create_agent().memory.persona == get_persona_text("memgpt_starter")


def test_builder_names_the_agent_apart_from_the_preset(builder: PresetBuilder) -> None:
    agent = builder.create_agent()
    assert agent.name == "agent" and agent.preset_name == "memgpt_chat"
    builder.agent_name.value = "tutor"
    assert builder.create_agent().name == "tutor"
    console = AgentConsole(agent)
    try:
        assert "preset memgpt_chat" in console._header.value
        named_like_preset = make_agent(name="memgpt_chat")
        console.set_agent(named_like_preset)
        assert "preset memgpt_chat" not in console._header.value  # not said twice
    finally:
        console.close()


def test_lab_reset_asks_first_and_rebuilds_the_agent_from_the_preset_tab(lab: Lab) -> None:
    lab.builder.persona_choice.value = "memgpt_starter"
    lab.builder.human_choice.value = "chad"
    built = lab.builder.create_agent()
    assert lab.agent is built
    lab.console.send("my name is Bob")
    reset = lab.console._buttons["reset"]
    reset.click()
    assert lab.agent is built and "Confirm reset" in reset.description  # asked, nothing wiped
    assert "press Confirm reset" in lab.console.status
    lab.console._buttons["heartbeat"].click()  # any other action cancels the question
    assert lab.console.wait(10)
    assert reset.description == "Reset" and lab.agent is built
    reset.click()
    reset.click()
    fresh = lab.agent
    assert fresh is not built and lab.memory.agent is fresh
    assert fresh.memory.persona == get_persona_text("memgpt_starter")
    assert fresh.memory.human == get_human_text("chad")
    assert fresh.preset_name == built.preset_name and "Bob" not in fresh.memory.human
    lab.console.reset()  # from code: no question
    assert lab.agent is not fresh and lab.agent.memory.persona == fresh.memory.persona


def test_console_says_when_a_new_message_drops_the_pending_step(console: AgentConsole) -> None:
    console.step("my name is Bob")
    assert console.pending is not None
    turn = console.send("what is my name?")
    assert console.pending is None
    dropped = [text for kind, text in console.entries if kind == "alert"]
    assert dropped == [
        "Dropped the pending heartbeat (request_heartbeat == true): a new message starts a new chain."
    ]
    assert turn.replies == ["Your name is Bob."]


def test_console_escape_drops_the_pending_step(console: AgentConsole) -> None:
    console.step("my name is Bob")
    console._input._handle_custom_msg({"event": "cancel"}, [])  # Escape in the browser
    assert console.pending is None
    assert console.entries[-1][0] == "alert" and "cancelled" in console.entries[-1][1]


def test_enter_in_the_message_box_sends(console: AgentConsole) -> None:
    # What the browser sends on Enter (Shift+Enter stays in the box as a new line).
    console._input._handle_custom_msg({"event": "submit", "value": "hello\nthere"}, [])
    assert console.wait(10)
    assert console.entries[0] == ("user", "hello\nthere")
    assert console._input.value == ""
    console._input._handle_custom_msg({"event": "submit", "value": "   "}, [])
    assert console.wait(10) and "Type a message first" in console.status


def test_a_late_state_update_does_not_bring_sent_text_back(console: AgentConsole) -> None:
    # The browser throttles state updates: the keystrokes' last one can arrive after the
    # submit message and after the console cleared the box (seen in the browser suite).
    box = console._input
    box.set_state({"value": "hello"})
    box._handle_custom_msg({"event": "submit", "value": "hello there"}, [])
    assert console.wait(10) and box.value == ""
    box.set_state({"value": "hello there"})  # late, stale
    assert box.value == ""
    box.set_state({"value": "n"})  # the user types again
    box.set_state({"value": "hello there"})  # and may type the same text again
    assert box.value == "hello there"


def test_console_send_returns_the_turn_and_raises_on_empty_text(console: AgentConsole) -> None:
    turn = console.send("hello")
    assert turn.replies and console.last_error is None
    with pytest.raises(ValueError, match="empty"):
        console.send("  ")


def test_long_entries_collapse_with_a_way_to_expand(console: AgentConsole) -> None:
    long = "x" * 5000
    console.send("hello")  # the first message is greeted, later ones echoed
    console.send(long)
    html = console.transcript_html
    assert html.count('<details class="mlab-long">') == 3  # you, calls, says
    assert html.count("(5,000 characters: show all)") == 1  # you; calls and says hold more
    visible = re.sub(r'<div class="mlab-full">.*?</div>', "", html, flags=re.DOTALL)
    assert long not in visible  # only in the collapsed part
    assert "(5,000 characters: show all)" in html
    console.send("short")
    assert '<details class="mlab-long">' not in entry_html("user", "short")


def test_transcript_renders_incrementally(console: AgentConsole) -> None:
    sent: list[int] = []

    def watch(change: dict) -> None:
        for chunk in change["new"]:
            if chunk not in watched:
                watched.add(chunk)
                chunk.observe(lambda c: sent.append(len(c["new"])), "value")
        sent.append(50 * len(change["new"]))  # a model id per child

    watched: set = set()
    console._chunk_box.observe(watch, "children")

    def cost(turns: int) -> int:
        console.reset()
        sent.clear()
        for i in range(turns):
            console.send(f"message {i}")
        return sum(sent)

    small, large = cost(20), cost(80)
    assert len(console.entries) >= 80 * len(SEND_KINDS)
    assert large < 6 * small  # linear in the session (whole re-renders: about 16x)
    assert console.transcript_html.count("mlab-entry") == len(console.entries)


def test_stop_ends_the_chain_after_the_step_under_way() -> None:
    console: AgentConsole

    class Stops(ReplayModel):
        def chat(self, messages, functions):  # type: ignore[no-untyped-def]
            console.stop()  # pressed while the first step's model thinks
            return super().chat(messages, functions)

    model = Stops(
        [
            Turn("note", "archival_memory_insert", {"content": "tea", "request_heartbeat": True}),
            Turn.say("Done."),
        ]
    )
    console = AgentConsole(make_agent(model))
    try:
        turn = console.send("remember tea")
        assert len(turn.steps) == 1 and not turn.truncated
        assert console.pending is not None and "Stopped after 1 step" in console.entries[-1][1]
        console.step()  # Step continues the chain
        assert console.entries[-2] == ("assistant", "Done.")
    finally:
        console.close()


class GatedModel(ReplayModel):
    """A replay model whose chat() waits for the test to open its gate (and notes its thread)."""

    def __init__(self, turns: list[Turn]) -> None:
        super().__init__(turns)
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.threads: list[threading.Thread] = []

    def chat(self, messages, functions):  # type: ignore[no-untyped-def]
        self.threads.append(threading.current_thread())
        self.entered.set()
        assert self.gate.wait(10)
        return super().chat(messages, functions)


def test_buttons_run_in_the_background_and_show_progress() -> None:
    model = GatedModel([Turn.say("Hi.")])
    console = AgentConsole(make_agent(model))
    try:
        console._input.value = "hello"
        console._buttons["send"].click()  # returns while the model thinks
        assert model.entered.wait(10)
        assert console.busy and console._busy.busy
        assert console._buttons["stop"].layout.display is None
        assert console._buttons["send"].disabled
        assert console._busy.label == "Thinking… step 1"
        model.gate.set()
        assert console.wait(10)
        assert model.threads and all(t is not threading.current_thread() for t in model.threads)
        assert console.entries[0] == ("user", "hello")
        assert ("assistant", "Hi.") in console.entries
        assert not console.busy
        assert console._busy.busy is False and console._buttons["stop"].layout.display == "none"
        assert not console._buttons["send"].disabled
    finally:
        model.gate.set()
        console.close()


def test_memory_search_runs_on_enter() -> None:
    agent = make_agent()
    agent.turn("remember that my cat is called Tom")
    view = MemoryView(agent)
    try:
        view._query._handle_custom_msg({"event": "submit", "value": "cat"}, [])  # Enter
        assert "mlab-result-archival" in view._results.value and "Tom" in view._results.value
    finally:
        view.close()


def test_memory_chart_shows_tokens_per_step_the_warning_and_summaries() -> None:
    agent = make_agent(context_window=2600)
    view = MemoryView(agent)
    try:
        steps = 0
        for i in range(12):
            steps += len(
                agent.turn(f"I thought about topic {i} for a long time, and here is why").steps
            )
        view.refresh()
        samples = view.samples
        assert [s.step for s in samples] == list(range(1, steps + 1))  # one per step
        assert agent.summaries >= 2
        assert sum(s.summarised for s in samples) == agent.summaries
        summarised = [s for s in samples if s.summarised]
        before = samples[samples.index(summarised[0]) - 1]
        assert summarised[0].sections["messages"] < before.sections["messages"]
        html = view._chart.value
        assert f'data-steps="{steps}"' in html and f'data-summaries="{agent.summaries}"' in html
        assert html.count('class="mlab-chart-summary"') == agent.summaries
        assert 'class="mlab-chart-warning"' in html and "warning at 1950 of 2600" in html
        assert html.count('<g class="mlab-chart-step"') == steps
        # another agent starts another chart; the old one is no longer watched
        other = make_agent()
        view.agent = other
        agent.turn("hello")
        other.turn("hello")
        assert len(view.samples) == 1
    finally:
        view.close()
    other.turn("hello again")  # a closed view hears nothing
    assert len(view.samples) == 1


def test_context_chart_keeps_the_last_steps_only() -> None:
    sample = ContextSample(1, {"system": 10, "messages": 5}, 100, 75, False)
    many = [ContextSample(i, sample.sections, 100, 75, i % 50 == 0) for i in range(1, 501)]
    html = context_chart_svg(many)
    assert html.count('<g class="mlab-chart-step"') == CHART_STEPS
    assert 'data-step="500"' in html and 'data-step="1"' not in html
    assert "The chart fills" in context_chart_svg([])


def test_stop_pressed_before_the_background_thread_starts_its_turn_counts() -> None:
    # The worker is held before its turn starts (where it used to clear Stop): a Stop
    # pressed then must still end the chain after the first step.
    model = ReplayModel(
        [
            Turn("note", "archival_memory_insert", {"content": "a", "request_heartbeat": True}),
            Turn("note", "archival_memory_insert", {"content": "b", "request_heartbeat": True}),
            Turn("note", "archival_memory_insert", {"content": "c", "request_heartbeat": True}),
            Turn.say("Done."),
        ]
    )
    console = AgentConsole(make_agent(model))
    try:
        console.step("remember a")  # leaves a heartbeat pending
        assert console.pending is not None
        held, gate = threading.Event(), threading.Event()

        def hold(change: dict[str, object]) -> None:
            if threading.current_thread() is not threading.main_thread():
                held.set()  # the worker is dropping the pending step, before its turn
                assert gate.wait(10)

        console._pending_label.observe(hold, "value")
        console._input.value = "remember b and c"
        console._buttons["send"].click()
        assert held.wait(10)
        console.stop()
        gate.set()
        assert console.wait(10)
        assert console.last_error is None
        assert "Stopped after 1 step" in console.entries[-1][1]
        assert console.pending is not None
    finally:
        console.close()


# --------------------------------------------------------------------------- one action at a time

CHAIN = [
    Turn("note", "archival_memory_insert", {"content": "tea", "request_heartbeat": True}),
    Turn.say("Done."),
]


def user_texts(agent: Agent) -> list[str]:
    """The user messages (not heartbeats) the agent heard, in order."""
    texts = []
    for message in agent.messages:
        if message.get("role") == "user":
            packet = json.loads(message["content"]) if message["content"].startswith("{") else {}
            if packet.get("type") == "user_message":
                texts.append(packet["message"])
    return texts


def turn_frames(recording: Recording) -> list[str]:
    return [frame.type for frame in recording if frame.type != "agent_response"]


def test_code_calls_while_a_button_turn_runs_are_refused_and_the_turn_stays_whole() -> None:
    from memgpt_lab.widgets.console import ConsoleBusyError

    model = GatedModel([*CHAIN, Turn.say("Two.")])
    recording = Recording()
    agent = make_agent(model)
    console = AgentConsole(agent, recording)
    try:
        console._input.value = "remember tea"
        console._buttons["send"].click()
        assert model.entered.wait(10)  # the worker's model thinks; this is another thread
        for call in (
            lambda: console.send("second"),
            lambda: console.step("second"),
            lambda: console.step(),
            console.inject_heartbeat,
            console.inject_memory_warning,
            console.reset,
            lambda: console.perform(lambda a: a.step("second")),
        ):
            with pytest.raises(ConsoleBusyError, match=r"busy with send 'remember tea'.*wait\(\)"):
                call()
        model.gate.set()
        assert console.wait(10)
        assert console.last_error is None
        assert user_texts(agent) == ["remember tea"]
        assert turn_frames(recording) == [
            "user_message",
            "agent_response_start",
            "agent_response_end",
        ]
        assert [f.type for f in recording].count("agent_response") >= 4  # both steps' frames
        assert ("assistant", "Done.") in console.entries
        console.send("second")  # after wait(), code goes again
        assert user_texts(agent) == ["remember tea", "second"]
    finally:
        model.gate.set()
        console.close()


def test_history_retry_while_a_turn_runs_is_refused_and_its_buttons_are_off() -> None:
    from memgpt_lab.widgets import HistoryView

    model = GatedModel([Turn.say("One."), *CHAIN])
    model.gate.set()
    agent = make_agent(model)
    console = AgentConsole(agent, Recording())
    history = HistoryView(console=console)
    try:
        console.send("first")
        model.gate.clear()
        model.entered.clear()
        console._input.value = "remember tea"
        console._buttons["send"].click()
        assert model.entered.wait(10)
        assert history._buttons["retry"].disabled and history._buttons["rewind"].disabled
        assert history.retry() is None
        assert "busy with send" in history.status
        model.gate.set()
        assert console.wait(10)
        assert not history._buttons["retry"].disabled
        assert user_texts(agent) == ["first", "remember tea"]
    finally:
        model.gate.set()
        history.close()
        console.close()


def test_set_agent_waits_for_the_turn_under_way_so_its_frames_are_recorded() -> None:
    model = GatedModel(CHAIN)
    recording = Recording()
    agent = make_agent(model)
    console = AgentConsole(agent, recording)
    other = make_agent()
    try:
        console._input.value = "remember tea"
        console._buttons["send"].click()
        assert model.entered.wait(10)
        switcher = threading.Thread(target=console.set_agent, args=(other,))
        switcher.start()
        switcher.join(0.2)  # it must wait for the turn (a broken one returns at once)
        assert switcher.is_alive() and console.agent is agent
        model.gate.set()
        switcher.join(10)
        assert not switcher.is_alive() and console.agent is other
        assert turn_frames(recording) == [
            "user_message",
            "agent_response_start",
            "agent_response_end",
        ]
        assert user_texts(agent) == ["remember tea"] and user_texts(other) == []
    finally:
        model.gate.set()
        console.close()


def test_close_stops_and_waits_for_the_turn_under_way() -> None:
    model = GatedModel([*CHAIN[:1], *CHAIN])
    recording = Recording()
    agent = make_agent(model)
    console = AgentConsole(agent, recording)
    console._input.value = "remember tea"
    console._buttons["send"].click()
    assert model.entered.wait(10)
    closer = threading.Thread(target=console.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # waiting for the step under way
    model.gate.set()
    closer.join(10)
    assert not closer.is_alive() and not console.busy
    # Stopped after the first step; the turn ended in the recording before the detach
    assert len(model.threads) == 1
    assert turn_frames(recording) == ["user_message", "agent_response_start", "agent_response_end"]


def test_lab_turns_the_switcher_and_create_off_while_a_turn_runs() -> None:
    model = GatedModel(CHAIN)
    lab = Lab(make_agent(model), clock=FixedClock())
    try:
        lab.console._input.value = "remember tea"
        lab.console._buttons["send"].click()
        assert model.entered.wait(10)
        assert lab.switcher.disabled and lab.builder._create.disabled
        assert lab._buttons["load"].disabled
        other = lab.builder.create_agent  # Create agent from code (or a stale click): waits
        creator = threading.Thread(target=other)
        creator.start()
        creator.join(0.2)
        assert creator.is_alive() and lab.agent is not lab.builder.agent
        model.gate.set()
        creator.join(10)
        assert lab.console.wait(10)
        assert lab.agent is lab.builder.agent
        assert not lab.switcher.disabled and not lab.builder._create.disabled
        assert not lab._buttons["load"].disabled
        types = turn_frames(lab.recording)
        assert types == ["user_message", "agent_response_start", "agent_response_end"]
    finally:
        model.gate.set()
        lab.close()
