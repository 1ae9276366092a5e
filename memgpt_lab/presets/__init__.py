"""Presets: a system prompt plus a function set, stored as YAML; agents made from them.

A preset file (``<name>.yaml``)::

    name: memgpt_chat
    description: what it is for
    system_prompt: memgpt_chat          # a named prompt (prompts/<name>.txt) ...
    # system_prompt_text: |             # ... or the prompt's text inline
    functions: [send_message, core_memory_append, ...]
    model:                              # optional; "scripted" (offline) when absent
      provider: ollama                  # or openai, vllm, llamacpp, lmstudio, openai-compatible
      model: llama3.1
      base_url: http://localhost:11434/v1   # optional: the provider's default
      api_key_env: MY_KEY               # optional: the variable holding the key, never the key

Files are validated on load: a missing field, an unknown function or prompt
raises :class:`~memgpt_lab.errors.PresetError` naming the file and the fix.
Add your own in a directory passed as ``directories=[...]`` or in
``~/.memgpt_lab/presets``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from memgpt_lab import system
from memgpt_lab._texts import PRESETS, PROMPTS, PathLike
from memgpt_lab.agent import Agent, AgentConfig
from memgpt_lab.errors import PresetError, UnknownNameError
from memgpt_lab.functions import DEFAULT_FUNCTIONS
from memgpt_lab.humans import DEFAULT_HUMAN, get_human_text
from memgpt_lab.interface import AgentInterface
from memgpt_lab.llm.base import ChatModel
from memgpt_lab.llm.providers import ModelSpec
from memgpt_lab.persistence import StateManager
from memgpt_lab.personas import DEFAULT_PERSONA, get_persona_text

__all__ = [
    "CONFIG_KEYS",
    "DEFAULT_PRESET",
    "NAME_PATTERN",
    "Preset",
    "create_agent_from_config",
    "create_agent_from_preset",
    "get_system_prompt",
    "list_presets",
    "list_system_prompts",
    "load_preset",
    "save_preset",
    "use_preset",
]

DEFAULT_PRESET = "memgpt_chat"

logger = logging.getLogger(__name__)

_FIELDS = {"name", "description", "system_prompt", "system_prompt_text", "functions", "model"}


@dataclass
class Preset:
    """A system prompt and the functions the agent may call."""

    name: str
    system_prompt: str
    functions: list[str]
    description: str = ""
    system_prompt_name: str | None = None
    source: str | None = field(default=None, compare=False)
    model: ModelSpec | None = None

    @classmethod
    def from_mapping(
        cls,
        data: Any,
        source: str = "<mapping>",
        prompt_directories: Iterable[PathLike] | None = None,
    ) -> Preset:
        """Validate a preset's fields and build it.

        Raises:
            PresetError: a missing or unknown field, a wrong type, an unknown
                function or prompt name. The message names ``source``.
        """

        def fail(problem: str) -> PresetError:
            return PresetError(f"preset {source}: {problem}")

        if not isinstance(data, Mapping):
            raise fail(f"expected a mapping of fields, got {type(data).__name__}")
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise fail(
                f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}"
            )
        for required in ("name", "functions"):
            if required not in data:
                raise fail(f"missing field {required!r}")
        name = data["name"]
        if not isinstance(name, str) or not name.strip():
            raise fail("'name' must be a non-empty string")
        functions = data["functions"]
        if not isinstance(functions, list) or not all(isinstance(f, str) for f in functions):
            raise fail("'functions' must be a list of function names")
        if not functions:
            raise fail("'functions' is empty; an agent needs at least send_message")
        missing = [f for f in functions if f not in DEFAULT_FUNCTIONS]
        if missing:
            raise fail(
                f"unknown function(s) {', '.join(missing)}; available: {', '.join(sorted(DEFAULT_FUNCTIONS))}"
            )
        if "send_message" not in functions:
            raise fail("'functions' must include send_message, or the agent cannot speak")
        has_name, has_text = "system_prompt" in data, "system_prompt_text" in data
        if has_name == has_text:
            raise fail(
                "give exactly one of 'system_prompt' (a prompt name) or 'system_prompt_text'"
            )
        prompt_name: str | None = None
        if has_name:
            prompt_name = data["system_prompt"]
            if not isinstance(prompt_name, str):
                raise fail("'system_prompt' must be the name of a prompt")
            try:
                prompt = get_system_prompt(prompt_name, prompt_directories)
            except UnknownNameError as exc:
                raise fail(str(exc)) from None
        else:
            prompt = data["system_prompt_text"]
            if not isinstance(prompt, str) or not prompt.strip():
                raise fail("'system_prompt_text' must be non-empty text")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise fail("'description' must be text")
        model = None
        if data.get("model") is not None:
            try:
                model = ModelSpec.parse(data["model"])
            except (ValueError, UnknownNameError) as exc:
                raise fail(f"'model': {exc}") from None
        return cls(name, prompt.strip(), list(functions), description, prompt_name, source, model)

    def to_mapping(self) -> dict[str, Any]:
        """The fields as saved: the prompt by name when it has one, inline otherwise."""
        data: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.system_prompt_name is not None:
            data["system_prompt"] = self.system_prompt_name
        else:
            data["system_prompt_text"] = self.system_prompt
        data["functions"] = list(self.functions)
        if self.model is not None:
            data["model"] = self.model.to_mapping()
        return data


def list_system_prompts(directories: Iterable[PathLike] | None = None) -> list[str]:
    """Names of the system prompts available."""
    return PROMPTS.names(directories)


def get_system_prompt(name: str, directories: Iterable[PathLike] | None = None) -> str:
    """The text of system prompt ``name``."""
    return PROMPTS.text(name, directories)


def list_presets(directories: Iterable[PathLike] | None = None) -> list[str]:
    """Names of the presets available, sorted."""
    return PRESETS.names(directories)


def load_preset(
    name_or_path: str | os.PathLike[str], directories: Iterable[PathLike] | None = None
) -> Preset:
    """Load and validate a preset by name, or from a ``.yaml`` file path.

    Raises:
        UnknownNameError: no preset of that name.
        PresetError: the file does not parse or validate.
    """
    text_name = os.fspath(name_or_path)
    if text_name.endswith((".yaml", ".yml")) or os.sep in text_name:
        path = Path(text_name)
        if not path.is_file():
            raise PresetError(f"preset file {path} does not exist")
    else:
        path = PRESETS.path(text_name, directories)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PresetError(f"preset {path}: not valid YAML: {exc}") from None
    return Preset.from_mapping(data, str(path), prompt_directories=directories)


def save_preset(preset: Preset, path: str | os.PathLike[str]) -> Path:
    """Write ``preset`` as YAML to ``path`` (a file, or a directory to put ``<name>.yaml`` in)."""
    target = Path(path)
    if target.is_dir():
        target = target / f"{preset.name}.yaml"
    target.write_text(
        yaml.safe_dump(preset.to_mapping(), sort_keys=False, allow_unicode=True), "utf-8"
    )
    return target


def create_agent_from_preset(
    preset_name: str | Preset = DEFAULT_PRESET,
    agent_config: AgentConfig | Mapping[str, Any] | Any | None = None,
    model: ChatModel | str | None = None,
    persona: str | None = None,
    human: str | None = None,
    interface: AgentInterface | None = None,
    persistence_manager: StateManager | None = None,
    *,
    clock: system.Clock = system.system_clock,
    id: str | None = None,
) -> Agent:
    """Build an agent from a preset, in MemGPT's argument order.

    Args:
        preset_name: a preset name, a ``.yaml`` path, or a :class:`Preset`.
        agent_config: an :class:`AgentConfig`, a mapping of its fields, or None.
        model: a model or model string; the preset's model when None, else ``"scripted"``.
        persona: the persona block's *text* (see :func:`get_persona_text`);
            the ``sam_pov`` persona by default.
        human: the human block's *text*; the ``basic`` human by default.
        interface: the agent's observer.
        persistence_manager: where messages, memories and checkpoints live (a private
            in-memory database by default; ``AgentStore.save`` moves the agent to a file).
        clock: timestamps; a :class:`~memgpt_lab.system.FixedClock` for determinism.
        id: the agent's id.

    Raises:
        UnknownNameError, PresetError: a bad preset.
        ValueError: an empty persona, or a config field out of range.
        MemoryLimitError: a persona or human text over its block's limit.
    """
    preset = preset_name if isinstance(preset_name, Preset) else load_preset(preset_name)
    if model is None and preset.model is not None:
        model = preset.model.build()
    persona = get_persona_text(DEFAULT_PERSONA) if persona is None else persona
    human = get_human_text(DEFAULT_HUMAN) if human is None else human
    if not isinstance(persona, str) or not persona.strip():
        raise ValueError("the persona text is empty; give the agent someone to be")
    if not isinstance(human, str):
        raise TypeError(f"human must be text, not {type(human).__name__}")
    return Agent(
        model,
        preset.system_prompt,
        preset.functions,
        persona,
        human,
        interface=interface,
        persistence_manager=persistence_manager,
        config=agent_config,
        clock=clock,
        id=id,
        preset_name=preset.name,
    )


#: MemGPT's older name for :func:`create_agent_from_preset`.
use_preset = create_agent_from_preset

# The keys of a config that are not AgentConfig fields; each takes a string.
_CONFIG_KEYS = ("preset", "persona", "human", "persona_text", "human_text", "model", "id")

#: Every key :func:`create_agent_from_config` reads: its own and the :class:`AgentConfig` fields.
CONFIG_KEYS: frozenset[str] = frozenset(
    {*_CONFIG_KEYS, *(spec.name for spec in dataclasses.fields(AgentConfig))}
)

#: What a preset, persona or human *name* may be when ``names_only`` (no paths, no dots).
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,100}")

_NAMED = {"preset": "preset", "persona": "persona", "human": "human"}


def create_agent_from_config(
    config: Mapping[str, Any] | None = None,
    interface: AgentInterface | None = None,
    *,
    names_only: bool = False,
    preset_directories: Iterable[PathLike] | None = None,
    persona_directories: Iterable[PathLike] | None = None,
    human_directories: Iterable[PathLike] | None = None,
    **options: Any,
) -> Agent:
    """Build an agent from a flat, JSON-friendly mapping (as a server receives it).

    Keys, all optional: ``preset``, ``persona`` / ``human`` (names), ``persona_text`` /
    ``human_text`` (texts, winning over names), ``model`` (a model string), ``id``, and
    any :class:`AgentConfig` field (``name``, ``context_window``...); see
    :data:`CONFIG_KEYS`. ``options`` are passed to :func:`create_agent_from_preset`
    (``clock``...).

    Args:
        config: the mapping.
        interface: the agent's observer.
        names_only: for configs from the network: ``preset``, ``persona`` and
            ``human`` must be names (:data:`NAME_PATTERN`), looked up in the
            package, ``$MEMGPT_LAB_HOME`` and the given directories, never paths;
            and a preset file that fails to load is named, not quoted (its
            details go to the log). From Python (the default) a preset may be a
            ``.yaml`` path.
        preset_directories / persona_directories / human_directories: more
            directories to look names up in (a preset's prompts too).

    Raises:
        ValueError: a key of the wrong type, a path where a name must be, an
            unknown :class:`AgentConfig` key or a value out of range.
        UnknownNameError: no preset, persona, human or model of that name.
        PresetError: the preset does not validate.
    """
    config = dict(config or {})
    agent_fields = {k: v for k, v in config.items() if k not in _CONFIG_KEYS}
    for key in _CONFIG_KEYS:
        if key in config and not isinstance(config[key], str):
            raise ValueError(f"config {key!r} must be a string, not {type(config[key]).__name__}")
    if names_only:
        for key, kind in _NAMED.items():
            if key in config and not NAME_PATTERN.fullmatch(config[key]):
                # Never touch the file system for it, so the answer says nothing about paths.
                raise ValueError(
                    f"config {key!r} must be the name of a {kind} (letters, digits, '_' and '-'), "
                    "not a path: paths are accepted from Python only"
                )
    # an explicit text wins, even an empty one (then rejected or kept, as a direct text would be)
    persona = config.get("persona_text")
    if persona is None:
        persona = get_persona_text(config.get("persona", DEFAULT_PERSONA), persona_directories)
    human = config.get("human_text")
    if human is None:
        human = get_human_text(config.get("human", DEFAULT_HUMAN), human_directories)
    preset_name = config.get("preset", DEFAULT_PRESET)
    try:
        preset = load_preset(preset_name, preset_directories)
    except PresetError:
        if not names_only:
            raise
        logger.warning("preset %r does not load", preset_name, exc_info=True)
        raise PresetError(
            f"preset {preset_name!r} does not load; the server's log says why"
        ) from None
    return create_agent_from_preset(
        preset,
        agent_fields,
        config.get("model"),
        persona,
        human,
        interface,
        id=config.get("id"),
        **options,
    )
