"""Model backends behind one small protocol, :class:`ChatModel`.

A backend takes the in-context messages and the function schemas and answers
one chat completion in the OpenAI shape::

    {"choices": [{"message": {"role": "assistant", "content": "<inner monologue>",
                              "function_call": {"name": ..., "arguments": "<JSON>"}},
                  "finish_reason": "function_call"}],
     "usage": {"prompt_tokens": ..., "completion_tokens": ..., "total_tokens": ...}}

- :class:`ScriptedModel` (``model="scripted"``, the default) answers offline and
  deterministically; :class:`ReplayModel` plays back an exact list of responses.
- :class:`OpenAIChatModel` talks to any OpenAI-compatible server (OpenAI, Ollama,
  vLLM, llama.cpp, LM Studio...) through the official SDK; model strings such as
  ``"ollama:llama3.1"`` name one (:func:`get_model`, :func:`list_models`).
- :class:`Cassette` wraps any model, records its answers to a file and replays
  them offline, so a notebook that used a real model runs again in CI.
- :class:`LLMServer` (``memgpt-lab serve-llm``) serves any model over an
  OpenAI-compatible HTTP endpoint, with faults to inject.

The SDK-backed model, the cassette and the server are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from memgpt_lab.llm.base import (
    ChatModel,
    ContextTruncationWarning,
    ContextWindowExceededError,
    chat_completion,
    estimate_tokens,
    get_model,
    list_models,
)
from memgpt_lab.llm.providers import PROVIDERS, Provider, parse_model_string
from memgpt_lab.llm.scripted import ReplayModel, Rule, ScriptedModel, Turn

_LAZY = {
    "Cassette": "memgpt_lab.llm.cassette",
    "CassetteMismatchError": "memgpt_lab.llm.cassette",
    "normalise_request": "memgpt_lab.llm.cassette",
    "Faults": "memgpt_lab.llm.server",
    "LLMServer": "memgpt_lab.llm.server",
    "OpenAIChatModel": "memgpt_lab.llm.openai_chat",
    "create_app": "memgpt_lab.llm.server",
}

__all__ = [
    "Cassette",
    "CassetteMismatchError",
    "ChatModel",
    "ContextTruncationWarning",
    "ContextWindowExceededError",
    "Faults",
    "LLMServer",
    "OpenAIChatModel",
    "PROVIDERS",
    "Provider",
    "ReplayModel",
    "Rule",
    "ScriptedModel",
    "Turn",
    "chat_completion",
    "create_app",
    "estimate_tokens",
    "get_model",
    "list_models",
    "normalise_request",
    "parse_model_string",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memgpt_lab.llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from memgpt_lab.llm.cassette import Cassette, CassetteMismatchError, normalise_request
    from memgpt_lab.llm.openai_chat import OpenAIChatModel
    from memgpt_lab.llm.server import Faults, LLMServer, create_app
