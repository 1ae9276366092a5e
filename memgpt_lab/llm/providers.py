"""Provider profiles and model strings: how each OpenAI-compatible server is spoken to.

A model string names a backend in one line, for :func:`~memgpt_lab.llm.get_model`,
presets, the PresetBuilder and the server::

    scripted                                    the offline model (the default)
    openai:gpt-4o-mini                          OpenAI; key from $OPENAI_API_KEY
    ollama:llama3.1                             Ollama at http://localhost:11434/v1
    vllm:<model>                                vLLM at http://localhost:8000/v1
    llamacpp:<model>                            llama.cpp's llama-server at :8080/v1
    lmstudio:<model>                            LM Studio at http://localhost:1234/v1
    openai-compatible:<model>@http://host:port/v1   any other server

Any provider takes ``@<base url>`` to point elsewhere (``ollama:llama3.1@http://gpu:11434/v1``).

A :class:`Provider` says where the server usually listens, which environment
variable holds its key, how it takes functions (``tools`` or legacy
``functions``), what ``tool_choice`` it accepts, where a model's inner thoughts
go, and how it words a context overflow (:func:`context_overflow_message`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memgpt_lab.errors import UnknownNameError

__all__ = [
    "PROVIDERS",
    "ModelSpec",
    "Provider",
    "context_overflow_message",
    "parse_model_string",
]


@dataclass(frozen=True)
class Provider:
    """How to talk to one kind of OpenAI-compatible server.

    Attributes:
        name: the prefix in model strings (``"ollama"``).
        label: what people call it.
        base_url: where it listens by default (None: the SDK's default, api.openai.com).
        api_key_env: the environment variable read for its key (None: needs none).
        key_required: whether a request without a key is pointless.
        function_format: ``"tools"`` (``tools`` / ``tool_calls``) or ``"functions"`` (legacy).
        tool_choice: sent with every request that has functions (None: not sent).
        parallel_tool_calls: send ``parallel_tool_calls: false`` (not every server knows it).
        inner_thoughts: where ``inner_thoughts="auto"`` puts the monologue.
        stream_usage: ask for usage in streams (``stream_options.include_usage``).
        hint: what to check when the server cannot be reached.
        verified: what was run against ``memgpt-lab serve-llm`` in the tests.
    """

    name: str
    label: str
    base_url: str | None
    api_key_env: str | None
    key_required: bool
    function_format: str = "tools"
    tool_choice: str | None = "auto"
    parallel_tool_calls: bool = True
    inner_thoughts: str = "kwarg"
    stream_usage: bool = True
    hint: str = "is the server running and the URL right?"
    verified: str = ""


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            "openai",
            "OpenAI",
            None,
            "OPENAI_API_KEY",
            True,
            tool_choice="required",
            hint="check the network and https://status.openai.com",
            verified="tools, kwarg and content thoughts, streaming, 401, 429 + Retry-After, "
            "5xx, context_length_exceeded, timeouts, dropped streams",
        ),
        Provider(
            "ollama",
            "Ollama",
            "http://localhost:11434/v1",
            None,
            False,
            tool_choice=None,
            parallel_tool_calls=False,
            hint="is `ollama serve` running, and the model pulled (`ollama pull <model>`)?",
            verified="silent truncation (num_ctx) detected from prompt_tokens",
        ),
        Provider(
            "vllm",
            "vLLM",
            "http://localhost:8000/v1",
            "VLLM_API_KEY",
            False,
            tool_choice="auto",
            hint="is `vllm serve <model> --enable-auto-tool-choice --tool-call-parser ...` running?",
            verified="tool_choice auto, its 'maximum context length' error",
        ),
        Provider(
            "llamacpp",
            "llama.cpp llama-server",
            "http://localhost:8080/v1",
            "LLAMA_API_KEY",
            False,
            hint="is `llama-server -m <model.gguf> --jinja` running?",
            verified="streamed tool-call deltas, exceed_context_size_error",
        ),
        Provider(
            "lmstudio",
            "LM Studio",
            "http://localhost:1234/v1",
            None,
            False,
            hint="is LM Studio's local server started, with the model loaded?",
            verified="its context-overflow error text",
        ),
        Provider(
            "openai-compatible",
            "any OpenAI-compatible server",
            None,
            "OPENAI_API_KEY",
            False,
            verified="everything served by serve-llm",
        ),
    )
}


_SPEC_KEYS = ("provider", "model", "base_url", "api_key_env")


@dataclass(frozen=True)
class ModelSpec:
    """Which model an agent uses, as a preset saves it: never the key, only where it is.

    ``provider`` is ``"scripted"`` or a key of :data:`PROVIDERS`; ``base_url``
    None means the provider's; ``api_key_env`` None means the provider's variable.
    """

    provider: str
    model: str = ""
    base_url: str | None = None
    api_key_env: str | None = None

    def __str__(self) -> str:
        if self.provider == "scripted":
            return "scripted"
        at = f"@{self.base_url}" if self.base_url else ""
        return f"{self.provider}:{self.model}{at}"

    @classmethod
    def parse(cls, value: Any) -> ModelSpec:
        """A spec from a model string or a mapping of ``provider``, ``model``, ``base_url``,
        ``api_key_env``.

        Raises:
            ValueError: a key where none belongs, unknown fields, wrong types.
            UnknownNameError: an unknown provider.
        """
        if isinstance(value, str):
            return cls("scripted") if value == "scripted" else parse_model_string(value)
        if not isinstance(value, Mapping):
            raise ValueError(f"a model is a model string or a mapping, not {type(value).__name__}")
        if "api_key" in value:
            raise ValueError(
                "a model's settings never hold the key itself: give api_key_env, the name of "
                "the environment variable that holds it"
            )
        unknown = sorted(set(value) - set(_SPEC_KEYS))
        if unknown:
            raise ValueError(
                f"unknown model field(s) {', '.join(unknown)}; known: {', '.join(_SPEC_KEYS)}"
            )
        for key in _SPEC_KEYS:
            if value.get(key) is not None and not isinstance(value[key], str):
                raise ValueError(f"model field {key!r} must be text")
        provider = value.get("provider") or "scripted"
        if provider == "scripted":
            return cls("scripted")
        spec = parse_model_string(
            f"{provider}:{value.get('model') or ''}"
            + (f"@{value['base_url']}" if value.get("base_url") else "")
        )
        return cls(spec.provider, spec.model, spec.base_url, value.get("api_key_env") or None)

    def to_mapping(self) -> dict[str, str]:
        """The fields worth saving (a preset's ``model:``)."""
        data = {"provider": self.provider}
        if self.provider != "scripted":
            data["model"] = self.model
            if self.base_url:
                data["base_url"] = self.base_url
            if self.api_key_env:
                data["api_key_env"] = self.api_key_env
        return data

    def build(self, **options: Any) -> Any:
        """The model these settings name (an offline one for ``scripted``)."""
        from memgpt_lab.llm.base import get_model

        if self.provider == "scripted":
            return get_model("scripted", **options)
        from memgpt_lab.llm.openai_chat import OpenAIChatModel

        if self.api_key_env:
            options = {"api_key_env": self.api_key_env, **options}
        return OpenAIChatModel(
            self.model, provider=self.provider, **{"base_url": self.base_url, **options}
        )


def parse_model_string(text: str) -> ModelSpec:
    """Read ``provider:model[@base_url]``.

    Raises:
        UnknownNameError: an unknown provider.
        ValueError: no model name, or ``openai-compatible`` without a URL.
    """
    provider, sep, rest = text.partition(":")
    if not sep:
        raise ValueError(
            f"model string {text!r} needs a provider: 'provider:model', e.g. 'ollama:llama3.1'"
        )
    if provider not in PROVIDERS:
        raise UnknownNameError("provider", provider, PROVIDERS)
    model, at, url = rest.rpartition("@")
    if not at or not url.startswith(("http://", "https://")):
        model, url = rest, ""
    if not model.strip():
        raise ValueError(f"model string {text!r} names no model after {provider}:")
    if provider == "openai-compatible" and not url:
        raise ValueError(
            f"model string {text!r}: openai-compatible needs a base URL, "
            "e.g. 'openai-compatible:my-model@http://127.0.0.1:8484/v1'"
        )
    return ModelSpec(provider, model, url or None)


# What the providers say when a prompt does not fit: OpenAI's code, llama-server's
# type, and the wording of vLLM, LM Studio and others.
_OVERFLOW_CODES = {
    "context_length_exceeded",
    "exceed_context_size_error",
    "context_window_exceeded",
}
_OVERFLOW_TEXT = re.compile(
    r"maximum context length|context length exceeded|exceeds? (the )?(available )?context (size|length|window)"
    r"|context (size|window|length) (has been |was )?exceeded|context the overflows|context overflow"
    r"|loaded with context length|prompt is too long|too many tokens",
    re.IGNORECASE,
)


def context_overflow_message(status: int | None, body: Any) -> str | None:
    """The error's message if ``body`` (an error body, parsed) says the prompt was too long.

    Recognises OpenAI's ``context_length_exceeded``, llama-server's
    ``exceed_context_size_error``, vLLM's "maximum context length" and LM
    Studio's variants, whether the error is an object or a plain string.
    """
    if status is not None and not 400 <= status < 500:
        return None
    error: Any = body.get("error", body) if isinstance(body, Mapping) else body
    if isinstance(error, Mapping):
        message = str(error.get("message") or "")
        for key in ("code", "type"):
            if str(error.get(key)) in _OVERFLOW_CODES:
                return message or str(error.get(key))
    else:
        message = str(error or "")
    return message if _OVERFLOW_TEXT.search(message) else None
