"""Model backends behind one small protocol, :class:`ChatModel`.

A backend takes the in-context messages and the function schemas and answers
one chat completion in the OpenAI shape::

    {"choices": [{"message": {"role": "assistant", "content": "<inner monologue>",
                              "function_call": {"name": ..., "arguments": "<JSON>"}},
                  "finish_reason": "function_call"}],
     "usage": {"prompt_tokens": ..., "completion_tokens": ..., "total_tokens": ...}}

:class:`ScriptedModel` (``model="scripted"``, the default) answers offline and
deterministically; :class:`ReplayModel` plays back an exact list of responses.
"""

from __future__ import annotations

from memgpt_lab.llm.base import (
    ChatModel,
    ContextWindowExceededError,
    chat_completion,
    estimate_tokens,
    get_model,
    list_models,
)
from memgpt_lab.llm.scripted import ReplayModel, Rule, ScriptedModel, Turn

__all__ = [
    "ChatModel",
    "ContextWindowExceededError",
    "ReplayModel",
    "Rule",
    "ScriptedModel",
    "Turn",
    "chat_completion",
    "estimate_tokens",
    "get_model",
    "list_models",
]
