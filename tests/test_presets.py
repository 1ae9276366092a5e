"""Personas, humans, presets (YAML, validation, round trips) and building agents from them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from memgpt_lab.agent import Agent, AgentConfig
from memgpt_lab.errors import LabError, MemoryLimitError, PresetError, UnknownNameError
from memgpt_lab.humans import get_human_text, list_humans
from memgpt_lab.interface import CollectingInterface
from memgpt_lab.llm import ReplayModel, ScriptedModel
from memgpt_lab.persistence import InMemoryStateManager
from memgpt_lab.personas import get_persona_text, list_personas
from memgpt_lab.presets import (
    DEFAULT_PRESET,
    Preset,
    create_agent_from_config,
    create_agent_from_preset,
    get_system_prompt,
    list_presets,
    list_system_prompts,
    load_preset,
    save_preset,
    use_preset,
)
from memgpt_lab.system import FixedClock

CHAT_FUNCTIONS = [
    "send_message",
    "pause_heartbeats",
    "core_memory_append",
    "core_memory_replace",
    "conversation_search",
    "conversation_search_date",
    "archival_memory_insert",
    "archival_memory_search",
]


@pytest.fixture(autouse=True)
def lab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty $MEMGPT_LAB_HOME, so the user's own files do not leak into the tests."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("MEMGPT_LAB_HOME", str(home))
    yield home


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


# --- personas and humans -----------------------------------------------------------------


def test_shipped_personas_and_humans() -> None:
    assert list_personas() == ["memgpt_starter", "sam_pov"]
    assert list_humans() == ["basic", "chad", "cs_phd"]
    assert get_persona_text("sam_pov").startswith("Name: Sam\nI am Sam")
    assert get_persona_text("memgpt_starter").startswith("Name: Lumen")
    assert get_human_text("basic").startswith("Name: unknown")
    assert get_human_text("chad").startswith("Name: Chad")
    assert get_human_text("cs_phd").startswith("Name: Priya")
    for text in [*map(get_persona_text, list_personas()), *map(get_human_text, list_humans())]:
        assert text == text.strip() and text


@pytest.mark.parametrize(
    ("get", "kind", "listed"),
    [
        (get_persona_text, "persona", "memgpt_starter, sam_pov"),
        (get_human_text, "human", "basic, chad, cs_phd"),
    ],
)
def test_unknown_name_lists_the_available_ones(get: Any, kind: str, listed: str) -> None:
    with pytest.raises(UnknownNameError) as caught:
        get("nobody")
    error = caught.value
    assert isinstance(error, LookupError) and isinstance(error, LabError)
    assert str(error) == f"unknown {kind} 'nobody'; available: {listed}"
    assert (error.kind, error.name) == (kind, "nobody")


def test_users_add_their_own_from_a_directory(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    write(mine, "pirate.txt", "  Name: Jack\nArr.\n\n")
    write(mine, "notes.md", "not a persona")
    assert list_personas(directories=[mine]) == ["memgpt_starter", "pirate", "sam_pov"]
    assert get_persona_text("pirate", directories=[str(mine)]) == "Name: Jack\nArr."
    assert "pirate" not in list_personas()  # only when the directory is given
    write(mine, "night_owl.txt", "Name: Owl")
    assert get_human_text("night_owl", directories=[mine]) == "Name: Owl"
    with pytest.raises(UnknownNameError, match="pirate"):
        get_persona_text("ghost", directories=[mine])


def test_users_add_their_own_in_lab_home(lab_home: Path) -> None:
    write(lab_home / "personas", "butler.txt", "Name: Jeeves")
    write(lab_home / "humans", "boss.txt", "Name: Wooster")
    assert "butler" in list_personas()
    assert get_persona_text("butler") == "Name: Jeeves"
    assert get_human_text("boss") == "Name: Wooster"


def test_user_files_override_package_ones(tmp_path: Path, lab_home: Path) -> None:
    write(lab_home / "personas", "sam_pov.txt", "Name: Home Sam")
    assert get_persona_text("sam_pov") == "Name: Home Sam"
    # a directory given explicitly wins over the home directory
    write(tmp_path / "given", "sam_pov.txt", "Name: Given Sam")
    assert get_persona_text("sam_pov", directories=[tmp_path / "given"]) == "Name: Given Sam"
    assert list_personas().count("sam_pov") == 1


def test_missing_directories_are_skipped(tmp_path: Path) -> None:
    assert list_humans(directories=[tmp_path / "absent"]) == ["basic", "chad", "cs_phd"]


# --- presets -----------------------------------------------------------------------------


def test_default_and_shipped_presets() -> None:
    assert DEFAULT_PRESET == "memgpt_chat"
    assert list_presets() == ["memgpt_chat", "memgpt_minimal"]
    assert list_system_prompts() == ["memgpt_chat", "memgpt_minimal"]
    chat = load_preset(DEFAULT_PRESET)
    assert chat.name == "memgpt_chat"
    assert chat.functions == CHAT_FUNCTIONS
    assert chat.system_prompt == get_system_prompt("memgpt_chat")
    assert chat.system_prompt_name == "memgpt_chat"
    assert chat.description
    assert chat.source is not None and chat.source.endswith("memgpt_chat.yaml")
    minimal = load_preset("memgpt_minimal")
    assert minimal.functions == ["send_message", "core_memory_append", "core_memory_replace"]


def test_unknown_preset_name() -> None:
    with pytest.raises(
        UnknownNameError, match="unknown preset 'nope'; available: memgpt_chat, memgpt_minimal"
    ):
        load_preset("nope")


VALID = {
    "name": "mine",
    "description": "for tests",
    "system_prompt_text": "You are a test.",
    "functions": ["send_message", "archival_memory_search"],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"functions": ["send_message", "fly"]},
            "unknown function.s. fly; available: archival_memory_insert",
        ),
        ({"name": None}, "missing field 'name'"),
        ({"functions": None}, "missing field 'functions'"),
        ({"colour": "red"}, "unknown field.s. colour; known: description, functions, model, name"),
        ({"name": 3}, "'name' must be a non-empty string"),
        ({"name": "  "}, "'name' must be a non-empty string"),
        ({"functions": "send_message"}, "'functions' must be a list of function names"),
        ({"functions": ["send_message", 1]}, "'functions' must be a list of function names"),
        ({"description": ["x"]}, "'description' must be text"),
        ({"system_prompt_text": 5}, "'system_prompt_text' must be non-empty text"),
        ({"system_prompt_text": " "}, "'system_prompt_text' must be non-empty text"),
        ({"functions": []}, "'functions' is empty"),
        ({"functions": ["core_memory_append"]}, "must include send_message"),
        ({"system_prompt": "memgpt_chat"}, "give exactly one of 'system_prompt'"),
        ({"system_prompt_text": None}, "give exactly one of 'system_prompt'"),
        (
            {"system_prompt_text": None, "system_prompt": 7},
            "'system_prompt' must be the name of a prompt",
        ),
        (
            {"system_prompt_text": None, "system_prompt": "haiku"},
            "unknown system prompt 'haiku'; available: memgpt_chat, memgpt_minimal",
        ),
    ],
)
def test_preset_validation(change: dict[str, Any], message: str) -> None:
    data = {**VALID, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(PresetError, match=message) as caught:
        Preset.from_mapping(data, source="mine.yaml")
    assert str(caught.value).startswith("preset mine.yaml: ")
    assert isinstance(caught.value, ValueError)


def test_preset_must_be_a_mapping() -> None:
    with pytest.raises(PresetError, match="expected a mapping of fields, got list"):
        Preset.from_mapping(["name"])


def test_preset_files_are_validated_on_load(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        "name: bad\nfunctions: [send_message, fly]\nsystem_prompt: memgpt_chat\n",
    )
    with pytest.raises(PresetError, match=rf"preset {bad}: unknown function.s. fly"):
        load_preset(bad)
    broken = write(tmp_path, "broken.yaml", "name: [unclosed\n")
    with pytest.raises(PresetError, match="not valid YAML"):
        load_preset(str(broken))
    empty = write(tmp_path, "empty.yaml", "")
    with pytest.raises(PresetError, match="expected a mapping"):
        load_preset(empty)
    with pytest.raises(PresetError, match="does not exist"):
        load_preset(tmp_path / "absent.yaml")
    # a bad file found by name fails the same way
    write(
        tmp_path / "presets",
        "typo.yaml",
        "name: typo\nfunctions: [send_message]\nsystem_promt: x\n",
    )
    with pytest.raises(PresetError, match="unknown field.s. system_promt"):
        load_preset("typo", directories=[tmp_path / "presets"])


def test_user_presets_by_name(tmp_path: Path, lab_home: Path) -> None:
    write(
        lab_home / "presets",
        "home.yaml",
        "name: home\nsystem_prompt_text: Hi.\nfunctions: [send_message]\n",
    )
    write(
        tmp_path / "more",
        "extra.yaml",
        "name: extra\nsystem_prompt: memgpt_minimal\nfunctions: [send_message]\n",
    )
    assert list_presets(directories=[tmp_path / "more"]) == [
        "extra",
        "home",
        "memgpt_chat",
        "memgpt_minimal",
    ]
    assert load_preset("home").system_prompt == "Hi."
    extra = load_preset("extra", directories=[tmp_path / "more"])
    assert extra.system_prompt == get_system_prompt("memgpt_minimal")


def test_user_system_prompts(lab_home: Path) -> None:
    write(lab_home / "prompts", "pirate.txt", "Talk like a pirate.\n")
    assert "pirate" in list_system_prompts()
    preset = Preset.from_mapping(
        {"name": "p", "system_prompt": "pirate", "functions": ["send_message"]}
    )
    assert preset.system_prompt == "Talk like a pirate."


def test_save_and_load_round_trip_inline_prompt(tmp_path: Path) -> None:
    preset = Preset.from_mapping(
        {**VALID, "system_prompt_text": "Line one.\nLine two: with a colon."}
    )
    path = save_preset(preset, tmp_path / "inline.yaml")
    assert path == tmp_path / "inline.yaml"
    assert "system_prompt_text" in path.read_text()
    loaded = load_preset(path)
    assert loaded == preset
    assert loaded.system_prompt_name is None


def test_save_and_load_round_trip_named_prompt(tmp_path: Path) -> None:
    preset = load_preset("memgpt_minimal")
    path = save_preset(preset, tmp_path)  # a directory: <name>.yaml inside it
    assert path == tmp_path / "memgpt_minimal.yaml"
    text = path.read_text()
    assert "system_prompt: memgpt_minimal" in text
    assert "system_prompt_text" not in text
    assert load_preset(path) == preset
    assert load_preset("memgpt_minimal", directories=[tmp_path]) == preset


def test_to_mapping_field_order() -> None:
    assert list(load_preset("memgpt_chat").to_mapping()) == [
        "name",
        "description",
        "system_prompt",
        "functions",
    ]


# --- agents from presets -----------------------------------------------------------------


def test_create_agent_from_preset_positional_order() -> None:
    interface = CollectingInterface()
    manager = InMemoryStateManager()
    model = ScriptedModel()
    agent = create_agent_from_preset(
        "memgpt_minimal",
        {"name": "Minnie", "context_window": 4096},
        model,
        "Name: Sam",
        "Name: Ada",
        interface,
        manager,
    )
    assert isinstance(agent, Agent)
    assert agent.preset_name == "memgpt_minimal"
    assert agent.config == AgentConfig(name="Minnie", context_window=4096)
    assert agent.name == "Minnie"
    assert agent.model is model
    assert agent.memory.persona == "Name: Sam"
    assert agent.memory.human == "Name: Ada"
    assert agent.interface is interface
    assert agent.persistence_manager is manager
    assert list(agent.functions) == ["send_message", "core_memory_append", "core_memory_replace"]
    assert agent.system_prompt == get_system_prompt("memgpt_minimal")


def test_create_agent_by_keyword_and_use_preset() -> None:
    assert use_preset is create_agent_from_preset
    agent = use_preset(
        preset_name="memgpt_chat",
        agent_config=AgentConfig(max_chain_steps=2),
        model=ReplayModel(["hi"]),
        persona="Name: Sam",
        human="",
        clock=FixedClock(),
        id="abc",
    )
    assert agent.id == "abc"
    assert agent.config.max_chain_steps == 2
    assert agent.memory.human == ""
    assert agent.turn("hello").replies == ["hi"]


def test_create_agent_defaults() -> None:
    agent = create_agent_from_preset()
    assert agent.preset_name == DEFAULT_PRESET
    assert agent.memory.persona == get_persona_text("sam_pov")
    assert agent.memory.human == get_human_text("basic")
    assert isinstance(agent.model, ScriptedModel)


def test_create_agent_from_a_preset_object_or_path(tmp_path: Path) -> None:
    preset = Preset.from_mapping(VALID)
    assert create_agent_from_preset(preset).preset_name == "mine"
    path = save_preset(preset, tmp_path)
    agent = create_agent_from_preset(str(path))
    assert list(agent.functions) == VALID["functions"]


@pytest.mark.parametrize("persona", ["", "   \n"])
def test_empty_persona(persona: str) -> None:
    with pytest.raises(ValueError, match="persona text is empty"):
        create_agent_from_preset("memgpt_chat", None, None, persona, "x")


def test_persona_over_its_limit() -> None:
    with pytest.raises(
        MemoryLimitError, match="persona block would be 101 characters, over its limit of 100"
    ):
        create_agent_from_preset("memgpt_chat", {"persona_char_limit": 100}, None, "x" * 101, "")
    with pytest.raises(MemoryLimitError, match="human block"):
        create_agent_from_preset("memgpt_chat", {"human_char_limit": 10}, None, "Sam", "y" * 11)


def test_human_must_be_text() -> None:
    with pytest.raises(TypeError, match="human must be text"):
        create_agent_from_preset("memgpt_chat", None, None, "Sam", 5)  # type: ignore[arg-type]


def test_bad_preset_names_and_configs() -> None:
    with pytest.raises(UnknownNameError):
        create_agent_from_preset("nope")
    with pytest.raises(ValueError, match="unknown agent config key"):
        create_agent_from_preset("memgpt_chat", {"colour": "red"})
    with pytest.raises(UnknownNameError, match="unknown model 'gpt-9'"):
        create_agent_from_preset("memgpt_chat", None, "gpt-9")


# --- create_agent_from_config ------------------------------------------------------------


def test_create_agent_from_config_names() -> None:
    interface = CollectingInterface()
    agent = create_agent_from_config(
        {
            "preset": "memgpt_minimal",
            "persona": "memgpt_starter",
            "human": "chad",
            "model": "scripted",
            "id": "a1",
            "name": "Lumen",
            "context_window": 4096,
        },
        interface,
        clock=FixedClock(),
    )
    assert agent.preset_name == "memgpt_minimal"
    assert agent.memory.persona == get_persona_text("memgpt_starter")
    assert agent.memory.human == get_human_text("chad")
    assert (agent.id, agent.name, agent.config.context_window) == ("a1", "Lumen", 4096)
    assert agent.interface is interface
    assert agent.login().replies == ["Hello, Chad! Yes, I'm here. I'm Lumen. What's on your mind?"]


def test_create_agent_from_config_texts_win_over_names() -> None:
    agent = create_agent_from_config(
        {"persona": "sam_pov", "persona_text": "Name: Inline", "human_text": "Name: Text"}
    )
    assert agent.memory.persona == "Name: Inline"
    assert agent.memory.human == "Name: Text"


def test_create_agent_from_config_defaults() -> None:
    agent = create_agent_from_config()
    assert agent.preset_name == DEFAULT_PRESET
    assert agent.memory.persona == get_persona_text("sam_pov")
    assert agent.memory.human == get_human_text("basic")


def test_create_agent_from_config_empty_texts_are_not_replaced_by_defaults() -> None:
    agent = create_agent_from_config({"human_text": ""})
    assert agent.memory.human == ""
    with pytest.raises(ValueError, match="persona text is empty"):
        create_agent_from_config({"persona_text": ""})


@pytest.mark.parametrize(
    "key", ["preset", "persona", "human", "persona_text", "human_text", "model", "id"]
)
def test_create_agent_from_config_wrong_types(key: str) -> None:
    with pytest.raises(ValueError, match=f"config '{key}' must be a string, not int"):
        create_agent_from_config({key: 1})


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"persona": "ghost"}, UnknownNameError, "unknown persona 'ghost'"),
        ({"human": "ghost"}, UnknownNameError, "unknown human 'ghost'"),
        ({"preset": "ghost"}, UnknownNameError, "unknown preset 'ghost'"),
        ({"model": "ghost"}, UnknownNameError, "unknown model 'ghost'"),
        ({"colour": "red"}, ValueError, "unknown agent config key.s. colour"),
        ({"context_window": 10}, ValueError, "context_window must be at least 256"),
        ({"context_window": "big"}, TypeError, "context_window must be int, not str"),
    ],
)
def test_create_agent_from_config_errors(
    config: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        create_agent_from_config(config)


def test_load_preset_finds_its_prompt_in_the_given_directories(tmp_path: Path) -> None:
    write(tmp_path, "pirate.txt", "Talk like a pirate.\n")
    write(
        tmp_path,
        "pirates.yaml",
        "name: pirates\nsystem_prompt: pirate\nfunctions: [send_message]\n",
    )
    preset = load_preset("pirates", directories=[tmp_path])
    assert preset.system_prompt == "Talk like a pirate."


# --- a preset's model: provider, model, URL and the key's variable, never the key -------


def test_a_preset_saves_and_loads_its_model(tmp_path: Path) -> None:
    from memgpt_lab.llm import OpenAIChatModel
    from memgpt_lab.llm.providers import ModelSpec

    preset = load_preset("memgpt_chat")
    preset.model = ModelSpec.parse(
        {
            "provider": "vllm",
            "model": "qwen",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "MY_VLLM_KEY",
        }
    )
    path = save_preset(preset, tmp_path)
    assert yaml.safe_load(path.read_text())["model"] == {
        "provider": "vllm",
        "model": "qwen",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "MY_VLLM_KEY",
    }
    loaded = load_preset(str(path))
    assert loaded.model == preset.model and str(loaded.model) == "vllm:qwen@http://127.0.0.1:9/v1"
    agent = create_agent_from_preset(loaded)
    assert isinstance(agent.model, OpenAIChatModel)
    assert (agent.model.base_url, agent.model.api_key_env) == (
        "http://127.0.0.1:9/v1",
        "MY_VLLM_KEY",
    )
    assert (
        create_agent_from_preset(loaded, None, "scripted").model.name == "scripted"
    )  # an explicit model wins


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"provider": "openai", "model": "gpt-4o-mini", "api_key": "sk-x"}, "never hold the key"),
        ({"provider": "nope", "model": "m"}, "unknown provider 'nope'"),
        ({"provider": "ollama"}, "names no model"),
        ({"provider": "openai-compatible", "model": "m"}, "needs a base URL"),
        ({"provider": "ollama", "model": "m", "temperature": 0}, "unknown model field"),
        (42, "model string or a mapping"),
        ("gpt-4o", "needs a provider"),
    ],
)
def test_bad_preset_models_are_named(model: Any, message: str) -> None:
    data = {**load_preset("memgpt_chat").to_mapping(), "model": model}
    with pytest.raises(PresetError, match=message):
        Preset.from_mapping(data)


def test_a_scripted_model_round_trips() -> None:
    data = {**load_preset("memgpt_chat").to_mapping(), "model": "scripted"}
    preset = Preset.from_mapping(data)
    assert preset.to_mapping()["model"] == {"provider": "scripted"}
    assert create_agent_from_preset(preset).model.name == "scripted"
