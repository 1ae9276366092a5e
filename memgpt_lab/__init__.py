"""memgpt_lab: a Jupyter testbench for MemGPT-style agents.

A ten-line tour::

    from memgpt_lab import (MockWebSocket, SyncWebSocketInterface, DEFAULT_PRESET,
                            create_agent_from_preset, get_persona_text, get_human_text, system)

    ws = MockWebSocket()
    interface = SyncWebSocketInterface()
    interface.register_client(ws)
    agent = create_agent_from_preset(DEFAULT_PRESET, None, "scripted",
                                     get_persona_text("sam_pov"), get_human_text("basic"), interface)
    agent.step(system.package_user_message("Hello, is anyone there?"), first_message=True)
    interface.close()
    print(ws.recording.table())

Names are imported on first use, so ``import memgpt_lab`` stays fast; the
widgets live in :mod:`memgpt_lab.widgets` and need ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; imported on first attribute access.
_EXPORTS: dict[str, str] = {
    # agent core
    "Agent": "memgpt_lab.agent",
    "ModelCall": "memgpt_lab.agent",
    "NothingToRetryError": "memgpt_lab.errors",
    "AgentConfig": "memgpt_lab.agent",
    "StepResult": "memgpt_lab.agent",
    "TurnResult": "memgpt_lab.agent",
    "CoreMemory": "memgpt_lab.memory",
    "RecallMemory": "memgpt_lab.memory",
    "ArchivalMemory": "memgpt_lab.memory",
    "InMemoryStateManager": "memgpt_lab.persistence",
    "AgentStore": "memgpt_lab.persistence",
    "Checkpoint": "memgpt_lab.persistence",
    "StateManager": "memgpt_lab.persistence",
    "StorageError": "memgpt_lab.persistence",
    "UnknownCheckpointError": "memgpt_lab.persistence",
    "FunctionSpec": "memgpt_lab.functions",
    "register_function": "memgpt_lab.functions",
    "DEFAULT_PRESET": "memgpt_lab.presets",
    "Preset": "memgpt_lab.presets",
    "create_agent_from_config": "memgpt_lab.presets",
    "create_agent_from_preset": "memgpt_lab.presets",
    "list_presets": "memgpt_lab.presets",
    "get_system_prompt": "memgpt_lab.presets",
    "list_system_prompts": "memgpt_lab.presets",
    "load_preset": "memgpt_lab.presets",
    "save_preset": "memgpt_lab.presets",
    "use_preset": "memgpt_lab.presets",
    "get_persona_text": "memgpt_lab.personas",
    "list_personas": "memgpt_lab.personas",
    "get_human_text": "memgpt_lab.humans",
    "list_humans": "memgpt_lab.humans",
    "FixedClock": "memgpt_lab.system",
    # models
    "ChatModel": "memgpt_lab.llm",
    "ReplayModel": "memgpt_lab.llm",
    "Rule": "memgpt_lab.llm",
    "ScriptedModel": "memgpt_lab.llm",
    "Turn": "memgpt_lab.llm",
    "get_model": "memgpt_lab.llm",
    "OpenAIChatModel": "memgpt_lab.llm",
    "Cassette": "memgpt_lab.llm",
    "CassetteMismatchError": "memgpt_lab.llm",
    "ContextTruncationWarning": "memgpt_lab.llm",
    "LLMServer": "memgpt_lab.llm",
    "list_models": "memgpt_lab.llm",
    # interfaces and recording
    "AgentEvent": "memgpt_lab.interface",
    "AgentInterface": "memgpt_lab.interface",
    "CollectingInterface": "memgpt_lab.interface",
    "MultiInterface": "memgpt_lab.interface",
    "PrintingInterface": "memgpt_lab.interface",
    "AsyncWebSocketInterface": "memgpt_lab.ws.interface",
    "SyncWebSocketInterface": "memgpt_lab.ws.interface",
    "ClientTooSlowError": "memgpt_lab.ws.interface",
    "Outbox": "memgpt_lab.turns",
    "TurnEngine": "memgpt_lab.turns",
    "Frame": "memgpt_lab.recorder",
    "MockWebSocket": "memgpt_lab.recorder",
    "Recording": "memgpt_lab.recorder",
    "RecordingFormatError": "memgpt_lab.recorder",
    "TickClock": "memgpt_lab.recorder",
    # sweeps
    "Conversation": "memgpt_lab.sweep",
    "ConversationError": "memgpt_lab.sweep",
    "Sweep": "memgpt_lab.sweep",
    "SweepError": "memgpt_lab.sweep",
    "SweepResult": "memgpt_lab.sweep",
    "load_conversations": "memgpt_lab.sweep",
    "load_sweep": "memgpt_lab.sweep",
    # errors
    "FrameTimeoutError": "memgpt_lab.errors",
    "ContextWindowExceededError": "memgpt_lab.llm",
    "InterfaceClosedError": "memgpt_lab.errors",
    "LLMError": "memgpt_lab.errors",
    "LabConnectionError": "memgpt_lab.errors",
    "LabError": "memgpt_lab.errors",
    "MemoryLimitError": "memgpt_lab.errors",
    "PresetError": "memgpt_lab.errors",
    "ProtocolError": "memgpt_lab.errors",
    "RecordingAssertionError": "memgpt_lab.errors",
    "RequestTimeoutError": "memgpt_lab.errors",
    "ServerResponseError": "memgpt_lab.errors",
    "UnknownNameError": "memgpt_lab.errors",
}

__all__ = sorted([*_EXPORTS, "__version__", "system"])


def __getattr__(name: str) -> Any:
    if name == "system":
        return importlib.import_module("memgpt_lab.system")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memgpt_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from memgpt_lab import system
    from memgpt_lab.agent import Agent, AgentConfig, ModelCall, StepResult, TurnResult
    from memgpt_lab.errors import (
        FrameTimeoutError,
        InterfaceClosedError,
        LabConnectionError,
        LabError,
        LLMError,
        MemoryLimitError,
        NothingToRetryError,
        PresetError,
        ProtocolError,
        RecordingAssertionError,
        RequestTimeoutError,
        ServerResponseError,
        UnknownNameError,
    )
    from memgpt_lab.functions import FunctionSpec, register_function
    from memgpt_lab.humans import get_human_text, list_humans
    from memgpt_lab.interface import (
        AgentEvent,
        AgentInterface,
        CollectingInterface,
        MultiInterface,
        PrintingInterface,
    )
    from memgpt_lab.llm import (
        Cassette,
        CassetteMismatchError,
        ChatModel,
        ContextTruncationWarning,
        ContextWindowExceededError,
        LLMServer,
        OpenAIChatModel,
        ReplayModel,
        Rule,
        ScriptedModel,
        Turn,
        get_model,
        list_models,
    )
    from memgpt_lab.memory import ArchivalMemory, CoreMemory, RecallMemory
    from memgpt_lab.persistence import (
        AgentStore,
        Checkpoint,
        InMemoryStateManager,
        StateManager,
        StorageError,
        UnknownCheckpointError,
    )
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
    from memgpt_lab.recorder import (
        Frame,
        MockWebSocket,
        Recording,
        RecordingFormatError,
        TickClock,
    )
    from memgpt_lab.sweep import (
        Conversation,
        ConversationError,
        Sweep,
        SweepError,
        SweepResult,
        load_conversations,
        load_sweep,
    )
    from memgpt_lab.system import FixedClock
    from memgpt_lab.turns import Outbox, TurnEngine
    from memgpt_lab.ws.interface import (
        AsyncWebSocketInterface,
        ClientTooSlowError,
        SyncWebSocketInterface,
    )
