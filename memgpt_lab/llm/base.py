"""The backend protocol, token estimates, and model lookup by name."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any, Protocol, runtime_checkable

from memgpt_lab.errors import LLMError, UnknownNameError

__all__ = [
    "ChatModel",
    "ContextTruncationWarning",
    "TokenEstimator",
    "ContextWindowExceededError",
    "chat_completion",
    "estimate_tokens",
    "get_model",
    "list_models",
]

Message = dict[str, Any]


class ContextWindowExceededError(LLMError):
    """The prompt did not fit the model's context window; the agent summarises and retries."""


class ContextTruncationWarning(UserWarning):
    """A server reported far fewer prompt tokens than were sent: it cut the prompt silently."""


@runtime_checkable
class ChatModel(Protocol):
    """What the agent needs of a model: one method.

    ``chat`` answers one chat completion (see the package docstring) for
    ``messages`` (OpenAI-style dicts) and ``functions`` (JSON schemas). It
    raises :class:`ContextWindowExceededError` when the prompt is too long,
    and :class:`~memgpt_lab.errors.LLMError` for any other failure.
    """

    name: str

    def chat(
        self, messages: Sequence[Message], functions: Sequence[dict[str, Any]]
    ) -> dict[str, Any]: ...


def estimate_tokens(value: Any) -> int:
    """A rough token count: one token per four characters of the JSON text.

    Real tokenizers differ; the estimate only has to be monotonic and cheap,
    for memory-pressure decisions and the context-window bar.
    """
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return (len(text) + 3) // 4


_MISSING = object()


class IdentityCache:
    """``compute(item)`` for each item of a list, computed once per item object.

    An agent's messages are not changed once made, so what is worked out from
    one (its token estimate, its digest in a cassette) is worked out once; a
    call then costs a dictionary lookup per item, done in C. Items are
    recognised by identity, and the cache keeps every item it knows alive, so
    an id it holds cannot have been reused by another object; items are
    forgotten once they have left the lists being looked up.
    """

    def __init__(self, compute: Callable[[Any], Any]) -> None:
        self._compute = compute
        self._values: dict[int, Any] = {}
        self._kept: dict[int, Any] = {}
        self._lock = threading.Lock()  # a model may be shared by agents on several threads

    def __call__(self, items: Sequence[Any]) -> list[Any]:
        ids = list(map(id, items))
        with self._lock:
            found = list(map(self._values.get, ids, repeat(_MISSING)))
            if _MISSING in found:
                compute, values, kept = self._compute, self._values, self._kept
                for index, value in enumerate(found):
                    if value is _MISSING:
                        item = items[index]
                        found[index] = values[ids[index]] = compute(item)
                        kept[ids[index]] = item
            if len(self._values) > 2 * len(ids) + 256:  # forget items that left the lists
                self._values = dict(zip(ids, found, strict=True))
                self._kept = dict(zip(ids, items, strict=True))
        return found


class TokenEstimator:
    """:func:`estimate_tokens` of a list, each item measured once (see :class:`IdentityCache`)."""

    def __init__(self) -> None:
        self._sizes = IdentityCache(estimate_tokens)

    def __call__(self, items: Sequence[Any]) -> int:
        return 1 + sum(self._sizes(items))  # 1: the list's brackets


def chat_completion(
    content: str | None,
    function_call: dict[str, Any] | None,
    prompt_tokens: int,
    model: str,
) -> dict[str, Any]:
    """Build a response in the OpenAI chat-completion shape, as an offline model answers.

    ``usage_estimated`` marks the token counts as this package's estimate, not a
    server's report (the wire format leaves the key out).
    """
    message: Message = {"role": "assistant", "content": content}
    if function_call is not None:
        message["function_call"] = function_call
    completion_tokens = estimate_tokens(message)
    return {
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "function_call" if function_call else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "usage_estimated": True,
    }


_MODEL_FORMS = (
    "scripted",
    "replay:<file>",
    "cassette:<file>",
    "openai:<model>",
    "ollama:<model>",
    "vllm:<model>",
    "llamacpp:<model>",
    "lmstudio:<model>",
    "openai-compatible:<model>@<base_url>",
)


def list_models() -> list[str]:
    """The forms of model string :func:`get_model` accepts.

    Any provider form takes ``@<base_url>`` too (``ollama:llama3.1@http://gpu:11434/v1``).
    """
    return list(_MODEL_FORMS)


def get_model(model: str | ChatModel | None = None, **options: Any) -> ChatModel:
    """A model from a model string (see :func:`list_models`), or ``model`` itself if it is one.

    ``"scripted"`` (the default) is the offline model; ``"replay:FILE"`` plays
    back the responses in a JSON list or JSON-lines file; ``"cassette:FILE"``
    replays a cassette without a model; ``"provider:model[@base_url]"`` is an
    :class:`~memgpt_lab.llm.openai_chat.OpenAIChatModel`. ``options`` go to the
    model's constructor.

    Raises:
        UnknownNameError: no model or provider of that name.
        ValueError: a model string that does not parse.
        TypeError: ``model`` is neither a string nor a :class:`ChatModel`.
    """
    if model is None or model == "scripted":
        from memgpt_lab.llm.scripted import ScriptedModel

        return ScriptedModel(**options)
    if isinstance(model, str):
        kind, sep, rest = model.partition(":")
        if not sep:
            raise UnknownNameError("model", model, _MODEL_FORMS)
        if kind == "replay":
            from memgpt_lab.llm.scripted import ReplayModel

            return ReplayModel.from_file(rest, **options)
        if kind == "cassette":
            from memgpt_lab.llm.cassette import Cassette

            return Cassette(rest, **{"mode": "none", **options})
        from memgpt_lab.llm.providers import parse_model_string

        return parse_model_string(model).build(**options)
    if isinstance(model, ChatModel):
        return model
    raise TypeError(
        f"model must be a model string or an object with a chat() method, not {model!r}"
    )
