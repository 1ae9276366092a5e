"""An OpenAI-compatible chat-completions endpoint that answers with any :class:`ChatModel`.

Point any OpenAI client at it to work offline, or use it in tests as the
stand-in for a real provider (OpenAI, vLLM, llama.cpp's llama-server, LM
Studio, Ollama)::

    from memgpt_lab.llm.server import Faults, LLMServer

    with LLMServer("scripted", faults=Faults(rate_limit=1)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        ...

The layers, outside in:

- :class:`LLMServer`: a real uvicorn server on loopback in a background
  thread (``start`` / ``stop`` / ``with``); ``memgpt-lab serve-llm`` runs one
  until Ctrl-C or SIGTERM (:func:`serve_forever`).
- :func:`create_app`: the Starlette app, a plain object, testable in-process.
  ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /v1/models/{id}``.
- The pure core, no HTTP: :func:`parse_request` validates a request body as
  OpenAI does (the same error bodies) and turns it into the model's view, a
  :class:`ChatRequest`; :func:`estimate_prompt`, :func:`truncate_messages` and
  :func:`context_overflow_body` do what the :class:`Faults` ask for.

The format conversions are :mod:`memgpt_lab.llm.wire`'s: the model sees
exactly the messages and schemas an agent would have passed it directly.

The endpoint is at least as strict as the real servers: it refuses unknown
parameters, ``tool`` messages that answer no call, calls left unanswered, bad
``tool_choice`` values... with the error bodies OpenAI sends. It does not
sample: ``temperature``, ``max_tokens`` and the like are accepted and ignored,
and ``tool_choice`` is checked but does not force the served model, which
answers as it always would.
"""

from __future__ import annotations

import copy
import hmac
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, get_args

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from memgpt_lab import _json
from memgpt_lab._hosting import is_loopback, run_until_interrupted
from memgpt_lab.errors import LabError, LLMError, UnknownNameError
from memgpt_lab.llm.base import ChatModel, ContextWindowExceededError, estimate_tokens, get_model
from memgpt_lab.llm.wire import (
    FunctionFormat,
    InnerThoughts,
    from_wire_messages,
    stream_chunks,
    strip_inner_thoughts,
    to_wire_completion,
    uses_inner_thoughts,
)

if TYPE_CHECKING:
    import uvicorn

__all__ = [
    "ERROR_STYLES",
    "SERVABLE_MODELS",
    "ChatRequest",
    "ErrorStyle",
    "Faults",
    "LLMServer",
    "RequestError",
    "context_overflow_body",
    "create_app",
    "estimate_prompt",
    "parse_request",
    "resolve_model",
    "serve_forever",
    "truncate_messages",
]

log = logging.getLogger(__name__)

Message = dict[str, Any]
ErrorStyle = Literal["openai", "vllm", "llamacpp", "lmstudio"]
#: The providers whose context-overflow error bodies :class:`Faults` can send.
ERROR_STYLES: tuple[str, ...] = get_args(ErrorStyle)
#: The model strings :func:`resolve_model` (and ``serve-llm --model``) accept.
SERVABLE_MODELS = ("scripted", "replay:FILE", "cassette:FILE")


# --- error bodies -------------------------------------------------------------------


class RequestError(LabError):
    """A request the endpoint answers with an error: the status and the provider's body.

    Attributes:
        status: the HTTP status.
        body: the JSON error body, as the real provider words it.
        headers: extra response headers (``Retry-After``...).
    """

    def __init__(
        self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, Mapping) else error
        super().__init__(f"{status}: {message}")

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, self.status, headers=self.headers)


def _openai_error(
    message: str,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _invalid(message: str, param: str | None = None, code: str | None = None) -> RequestError:
    return RequestError(400, _openai_error(message, param=param, code=code))


_PARSE_ERROR = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)
_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
_BAD_KEY = (
    "Incorrect API key provided. You can find your API key at "
    "https://platform.openai.com/account/api-keys."
)


def _server_error(status: int = 500) -> RequestError:
    return RequestError(status, _openai_error(_SERVER_ERROR, "server_error"))


def _model_not_found(name: object) -> RequestError:
    message = f"The model `{name}` does not exist or you do not have access to it."
    return RequestError(404, _openai_error(message, code="model_not_found"))


def context_overflow_body(style: str, prompt_tokens: int, context_window: int) -> dict[str, Any]:
    """The body a provider sends (with status 400) when a prompt overflows its context.

    Args:
        style: ``"openai"``, ``"vllm"``, ``"llamacpp"`` (llama-server) or
            ``"lmstudio"``; see :data:`ERROR_STYLES`.
        prompt_tokens: the prompt's size.
        context_window: the model's context length.

    Raises:
        ValueError: an unknown style.
    """
    m, n = prompt_tokens, context_window
    if style == "openai":
        return _openai_error(
            f"This model's maximum context length is {n} tokens. However, your messages "
            f"resulted in {m} tokens. Please reduce the length of the messages.",
            param="messages",
            code="context_length_exceeded",
        )
    if style == "vllm":
        return {
            "object": "error",
            "message": f"This model's maximum context length is {n} tokens. However, you "
            f"requested {m} tokens ({m} in the messages, 0 in the completion). Please reduce "
            "the length of the messages or completion.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    if style == "llamacpp":
        return {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": m,
                "n_ctx": n,
            }
        }
    if style == "lmstudio":
        return {
            "error": f"Trying to keep the first {m} tokens when context the overflows. However, "
            f"the model is loaded with context length of only {n} tokens, which is not enough. "
            "Try to load the model with a larger context length, or provide a shorter input"
        }
    raise ValueError(f"unknown error style {style!r}; choose one of {', '.join(ERROR_STYLES)}")


# --- faults -------------------------------------------------------------------------


@dataclass(frozen=True)
class Faults:
    """What the endpoint gets wrong on purpose, for tests and teaching. The defaults: nothing.

    Faults apply to valid chat-completion requests (a request refused for its
    key or its body is refused first), in this order: ``delay`` (every
    request), ``rate_limit``, ``fail``, ``truncate_context``, ``overflow_after``,
    then the model answers and ``malformed`` or ``drop_stream`` spoil the answer.
    "The first N" counts per app, from its creation.

    Attributes:
        overflow_after: prompts estimated above this many tokens (the model's
            messages and schemas, counted as :class:`ScriptedModel` counts them)
            get the context-overflow error of ``error_style``. None: no limit.
        error_style: whose overflow body to send, also when the model itself
            raises :class:`ContextWindowExceededError`: ``"openai"`` (400,
            ``context_length_exceeded``), ``"vllm"`` (400, ``BadRequestError``),
            ``"llamacpp"`` (400, ``exceed_context_size_error``) or
            ``"lmstudio"`` (400, a bare ``error`` string).
        rate_limit: the first N requests get 429 ``rate_limit_exceeded`` with
            ``Retry-After`` and ``retry-after-ms`` headers.
        retry_after: the seconds those headers (and the message) ask to wait.
        fail: the first N requests after the rate-limited ones get
            ``fail_status`` with OpenAI's ``server_error`` body.
        fail_status: the status of those failures (default 500).
        delay: seconds to wait, without blocking the server, before answering
            each request (for client timeouts).
        malformed: the first N answers are 200 with a JSON content type but a
            body cut short, which is not JSON (a streamed request gets it too).
        drop_stream: the first N streamed answers stop half-way: the
            connection is cut before the finish reason and ``[DONE]``, as when
            a server crashes.
        truncate_context: silently drop the oldest non-system messages until
            the prompt estimate fits this many tokens (the last message always
            stays), as Ollama does with ``num_ctx``; the usage then reports the
            smaller prompt. None: never.
    """

    overflow_after: int | None = None
    error_style: ErrorStyle = "openai"
    rate_limit: int = 0
    retry_after: float = 1.0
    fail: int = 0
    fail_status: int = 500
    delay: float = 0.0
    malformed: int = 0
    drop_stream: int = 0
    truncate_context: int | None = None

    def __post_init__(self) -> None:
        if self.error_style not in ERROR_STYLES:
            raise ValueError(
                f"error_style must be one of {', '.join(ERROR_STYLES)}, not {self.error_style!r}"
            )
        for name in ("rate_limit", "fail", "malformed", "drop_stream"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
        for name in ("overflow_after", "truncate_context"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a whole number >= 1 or None, not {value!r}")
        for name in ("retry_after", "delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")
        status = self.fail_status
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"fail_status must be an HTTP error status (400-599), not {status!r}")


# --- the request, validated -----------------------------------------------------------


@dataclass(frozen=True)
class ChatRequest:
    """A valid chat-completion request, as the model is to see it.

    Attributes:
        model: the model name asked for.
        messages: the history in the agent's shape (``function_call`` / ``function``).
        functions: the schemas for the model (``inner_thoughts`` taken out in kwarg mode).
        function_format: ``"functions"`` when the request used legacy ``functions``,
            else ``"tools"``: how the answer carries its call.
        inner_thoughts: ``"kwarg"`` when every schema asked for ``inner_thoughts``
            (the answer puts the monologue there), else ``"content"``.
        stream: whether to answer with server-sent events.
        include_usage: whether a stream ends with a usage chunk.
    """

    model: str
    messages: list[Message]
    functions: list[dict[str, Any]]
    function_format: FunctionFormat = "tools"
    inner_thoughts: InnerThoughts = "content"
    stream: bool = False
    include_usage: bool = False


#: Chat-completion parameters OpenAI documents; others are refused, as OpenAI does.
_PARAMETERS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "stream",
        "stream_options",
        "n",
        "temperature",
        "top_p",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "seed",
        "user",
        "response_format",
        "service_tier",
        "store",
        "metadata",
        "reasoning_effort",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
        "verbosity",
        "prompt_cache_key",
        "safety_identifier",
    }
)
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def _kind(value: object) -> str:
    """How OpenAI names a JSON value's type in its messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _wrong_type(param: str, expected: str, value: object) -> RequestError:
    return _invalid(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param,
        "invalid_type",
    )


def _missing(param: str) -> RequestError:
    return _invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _supported(value: object, choices: Sequence[str], param: str) -> RequestError:
    quoted = [f"'{c}'" for c in choices]
    listed = ", ".join(quoted[:-1]) + f", and {quoted[-1]}" if len(quoted) > 2 else quoted[0]
    return _invalid(
        f"Invalid value: '{value}'. Supported values are: {listed}.", param, "invalid_value"
    )


def _check_name(name: object, param: str) -> str:
    if name is None:
        raise _missing(param)
    if not isinstance(name, str):
        raise _wrong_type(param, "a string", name)
    if not _FUNCTION_NAME.fullmatch(name):
        raise _invalid(
            f"Invalid '{param}': string does not match pattern. Expected a string that matches "
            "the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
            param,
            "invalid_value",
        )
    return name


def _check_schemas(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], FunctionFormat]:
    """The function schemas, from ``tools`` or legacy ``functions``, and which was used."""
    if "tools" in body and "functions" in body:
        raise _invalid(
            "Invalid request: 'tools' and the deprecated 'functions' cannot both be given; use "
            "'tools'.",
            "functions",
        )
    key: FunctionFormat = "functions" if "functions" in body else "tools"
    listed = body.get(key)
    if listed is None:
        return [], key
    if not isinstance(listed, list):
        raise _wrong_type(key, "an array of objects", listed)
    if not listed:
        raise _invalid(
            f"Invalid '{key}': empty array. Expected an array with minimum length 1, but got an "
            "empty array instead.",
            key,
            "empty_array",
        )
    schemas: list[dict[str, Any]] = []
    for index, item in enumerate(listed):
        where = f"{key}[{index}]"
        if not isinstance(item, dict):
            raise _wrong_type(where, "an object", item)
        schema: Any = item
        if key == "tools":
            if item.get("type") is None:
                raise _missing(f"{where}.type")
            if item["type"] != "function":
                raise _supported(item["type"], ["function"], f"{where}.type")
            schema = item.get("function")
            where = f"{where}.function"
            if schema is None:
                raise _missing(where)
            if not isinstance(schema, dict):
                raise _wrong_type(where, "an object", schema)
        _check_name(schema.get("name"), f"{where}.name")
        parameters = schema.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _wrong_type(f"{where}.parameters", "an object", parameters)
        schemas.append(schema)
    return schemas, key


def _check_choice(body: Mapping[str, Any], param: str, names: set[str] | None) -> None:
    """``tool_choice`` or legacy ``function_call``: checked, never forcing the model.

    ``names`` are the functions offered in the matching list (None: that list is absent).
    """
    if param not in body:
        return
    listed = "tools" if param == "tool_choice" else "functions"
    choice = body[param]
    if not names:
        raise _invalid(
            f"Invalid value for '{param}': '{param}' is only allowed when '{listed}' are "
            "specified.",
            param,
        )
    modes = ["none", "auto", "required"] if param == "tool_choice" else ["none", "auto"]
    if isinstance(choice, str):
        if choice not in modes:
            raise _supported(choice, modes, param)
        return
    if not isinstance(choice, dict):
        raise _wrong_type(param, "a string or an object", choice)
    if param == "tool_choice":
        if choice.get("type") != "function" or not isinstance(choice.get("function"), dict):
            raise _invalid(
                "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
                "{'type': 'function', 'function': {'name': ...}}.",
                param,
                "invalid_value",
            )
        name = choice["function"].get("name")
        where = "tool_choice.function.name"
    else:
        name = choice.get("name")
        where = "function_call.name"
    _check_name(name, where)
    if name not in names:
        raise _invalid(
            f"Invalid value for '{param}': there is no function named '{name}' in '{listed}'.",
            where,
            "invalid_value",
        )


def _check_content(message: Mapping[str, Any], index: int, required: bool) -> None:
    where = f"messages[{index}].content"
    if "content" not in message:
        if required:
            raise _missing(where)
        return
    content = message["content"]
    if content is None and not required:
        return
    if not isinstance(content, (str, list)):
        raise _wrong_type(where, "one of a string or array of objects", content)


def _check_call(call: object, where: str) -> None:
    if not isinstance(call, dict):
        raise _wrong_type(where, "an object", call)
    for key in ("name", "arguments"):
        if key not in call:
            raise _missing(f"{where}.{key}")
        if not isinstance(call[key], str):
            raise _wrong_type(f"{where}.{key}", "a string", call[key])


def _check_messages(messages: object) -> list[Message]:
    """The history, checked as OpenAI checks it: roles, contents, calls and their answers."""
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list):
        raise _wrong_type("messages", "an array of objects", messages)
    if not messages:
        raise _invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            "messages",
            "empty_array",
        )
    pending: dict[str, None] = {}  # tool_call ids still to be answered, in order
    opened_at = -1
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _wrong_type(f"messages[{index}]", "an object", message)
        role = message.get("role")
        if role is None:
            raise _missing(f"messages[{index}].role")
        if role not in _ROLES:
            raise _supported(role, _ROLES, f"messages[{index}].role")
        if pending and role != "tool":
            raise _unanswered(opened_at, pending)
        if role == "tool":
            _check_content(message, index, required=True)
            tool_call_id = message.get("tool_call_id")
            if not isinstance(tool_call_id, str):
                raise _missing(f"messages[{index}].tool_call_id")
            if opened_at < 0:
                raise _invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            if tool_call_id not in pending:
                raise _invalid(
                    f"Invalid parameter: 'tool_call_id' of '{tool_call_id}' not found in "
                    "'tool_calls' of previous message.",
                    f"messages.[{index}].tool_call_id",
                )
            del pending[tool_call_id]
            continue
        opened_at = -1
        if role == "assistant":
            tool_calls = message.get("tool_calls")
            has_call = bool(tool_calls) or message.get("function_call") is not None
            _check_content(message, index, required=not has_call)
            if message.get("function_call") is not None:
                _check_call(message["function_call"], f"messages[{index}].function_call")
            if tool_calls is not None:
                if not isinstance(tool_calls, list):
                    raise _wrong_type(f"messages[{index}].tool_calls", "an array", tool_calls)
                for number, tool_call in enumerate(tool_calls):
                    where = f"messages[{index}].tool_calls[{number}]"
                    if not isinstance(tool_call, dict):
                        raise _wrong_type(where, "an object", tool_call)
                    if not isinstance(tool_call.get("id"), str):
                        raise _missing(f"{where}.id")
                    if tool_call.get("type") != "function":
                        raise _supported(tool_call.get("type"), ["function"], f"{where}.type")
                    _check_call(tool_call.get("function"), f"{where}.function")
                    pending[tool_call["id"]] = None
                opened_at = index if tool_calls else -1
            continue
        _check_content(message, index, required=True)
        if role == "function" and not isinstance(message.get("name"), str):
            raise _invalid(
                "Missing parameter 'name': messages with role 'function' must have a 'name'.",
                f"messages.[{index}].name",
            )
    if pending:
        raise _unanswered(opened_at, pending)
    return messages


def _unanswered(index: int, pending: Mapping[str, None]) -> RequestError:
    return _invalid(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(pending),
        f"messages.[{index}].role",
    )


def parse_request(body: object, served_model_name: str) -> ChatRequest:
    """Validate a chat-completion body as OpenAI does, and give the model's view of it.

    Args:
        body: the parsed JSON body (not changed).
        served_model_name: the one model name the endpoint answers to.

    Raises:
        RequestError: 400 with OpenAI's ``invalid_request_error`` body naming the
            bad parameter, or 404 ``model_not_found``.
    """
    if not isinstance(body, dict):
        raise _invalid(
            f"Invalid type for request body: expected an object, but got {_kind(body)} instead."
        )
    unknown = [key for key in body if key not in _PARAMETERS]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise _invalid(f"Unrecognized request argument{plural} supplied: {', '.join(unknown)}")
    model = body.get("model")
    if model is None:
        raise _invalid("you must provide a model parameter")
    if not isinstance(model, str):
        raise _wrong_type("model", "a string", model)
    wire_messages = _check_messages(body.get("messages"))
    schemas, function_format = _check_schemas(body)
    names = {str(s["name"]) for s in schemas}
    _check_choice(body, "tool_choice", names if function_format == "tools" else None)
    _check_choice(body, "function_call", names if function_format == "functions" else None)
    if "parallel_tool_calls" in body:
        if not isinstance(body["parallel_tool_calls"], bool):
            raise _wrong_type("parallel_tool_calls", "a boolean", body["parallel_tool_calls"])
        if function_format != "tools" or not schemas:
            raise _invalid(
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed "
                "when 'tools' are specified.",
                "parallel_tool_calls",
            )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _wrong_type("stream", "a boolean", stream)
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise _invalid(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
            )
        if not isinstance(options, dict):
            raise _wrong_type("stream_options", "an object", options)
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise _wrong_type("stream_options.include_usage", "a boolean", include_usage)
    n = body.get("n", 1)
    if n is not None and n != 1:
        raise _invalid(
            f"Invalid 'n': this server answers with one choice; n must be 1, not {n!r}.",
            "n",
            "invalid_value",
        )
    if model != served_model_name:
        raise _model_not_found(model)
    kwarg = uses_inner_thoughts(schemas)
    try:
        messages = from_wire_messages(wire_messages)
    except LLMError as exc:
        raise _invalid(str(exc), "messages") from None
    return ChatRequest(
        model=model,
        messages=copy.deepcopy(messages),
        functions=[strip_inner_thoughts(s) if kwarg else copy.deepcopy(s) for s in schemas],
        function_format=function_format,
        inner_thoughts="kwarg" if kwarg else "content",
        stream=stream,
        include_usage=include_usage,
    )


# --- prompt size ---------------------------------------------------------------------


def estimate_prompt(messages: Sequence[Any], functions: Sequence[Any]) -> int:
    """A prompt's estimated tokens, counted as :class:`ScriptedModel` counts them."""
    return 2 + sum(map(estimate_tokens, messages)) + sum(map(estimate_tokens, functions))


def truncate_messages(
    messages: Sequence[Message], functions: Sequence[Any], limit: int
) -> list[Message]:
    """``messages`` without their oldest non-system ones, until the prompt fits ``limit``.

    What Ollama does, silently, with a prompt longer than ``num_ctx``. System
    messages and the last message always stay, so the result may still not fit.
    """
    kept = list(messages)
    sizes = [estimate_tokens(m) for m in kept]
    total = estimate_prompt((), functions) + sum(sizes)
    index = 0
    while total > limit and index < len(kept) - 1:
        if kept[index].get("role") in ("system", "developer"):
            index += 1
            continue
        total -= sizes.pop(index)
        del kept[index]
    return kept


# --- the app --------------------------------------------------------------------------


_COUNTERS = (
    "requests",  # chat-completion requests received (with a JSON body)
    "completions",  # answered with the model's completion (spoiled ones included)
    "refused",  # refused for their key or their body (401, 400, 404)
    "rate_limited",
    "failed",
    "truncated",
    "overflowed",
    "model_errors",  # the model raised LLMError (500)
    "malformed",
    "dropped_streams",
)


class _Endpoint:
    """The app's state and request handling; ``app.state`` exposes its parts."""

    def __init__(
        self,
        model: ChatModel,
        faults: Faults,
        served_model_name: str,
        api_key: str | None,
        clock: Callable[[], float],
        record: bool,
    ) -> None:
        self.model = model
        self.faults = faults
        self.served_model_name = served_model_name
        self.api_key = api_key
        self.clock = clock
        self.record = record
        self.requests: list[Any] = []
        self.counts: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self.lock = threading.Lock()  # the counters and the request list
        self.model_lock = threading.Lock()  # models are not thread-safe

    def count(self, name: str) -> int:
        with self.lock:
            self.counts[name] += 1
            return self.counts[name]

    def take(self, name: str, budget: int) -> bool:
        """Whether this request is one of the first ``budget`` to suffer fault ``name``."""
        with self.lock:
            if self.counts[name] >= budget:
                return False
            self.counts[name] += 1
            return True

    def check_key(self, request: Request) -> None:
        if self.api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.api_key.encode()
        ):
            return
        raise RequestError(401, _openai_error(_BAD_KEY, code="invalid_api_key"))

    async def chat_completions(self, request: Request) -> Response:
        try:
            chat, number = await self._admit(request)
        except RequestError as exc:
            self.count("refused")
            return exc.response()
        try:
            return await self._answer(chat, number)
        except RequestError as exc:
            return exc.response()

    async def _admit(self, request: Request) -> tuple[ChatRequest, int]:
        """The request checked (key, body) and recorded, with its number; after ``delay``."""
        self.check_key(request)
        raw = await request.body()
        try:
            body = _json.loads(raw, max_depth=_json.MAX_DEPTH)
        except ValueError:
            raise RequestError(400, _openai_error(_PARSE_ERROR)) from None
        number = self.count("requests")
        if self.record:
            with self.lock:
                self.requests.append(body)
        if self.faults.delay:
            await anyio.sleep(self.faults.delay)
        return parse_request(body, self.served_model_name), number

    async def _answer(self, chat: ChatRequest, number: int) -> Response:
        faults = self.faults
        if self.take("rate_limited", faults.rate_limit):
            raise self._rate_limited()
        if self.take("failed", faults.fail):
            raise _server_error(faults.fail_status)
        messages = chat.messages
        if faults.truncate_context is not None:
            messages = truncate_messages(messages, chat.functions, faults.truncate_context)
            if len(messages) < len(chat.messages):
                self.count("truncated")
        prompt = estimate_prompt(messages, chat.functions)
        if faults.overflow_after is not None and prompt > faults.overflow_after:
            raise self._overflow(prompt, faults.overflow_after)
        try:
            completion = await run_in_threadpool(self._chat, messages, chat.functions)
        except ContextWindowExceededError as exc:
            log.info("the model refused the prompt: %s", exc)
            window = getattr(self.model, "context_window", None)
            raise self._overflow(prompt, window if isinstance(window, int) else prompt) from None
        except LLMError as exc:
            log.warning("the model %s failed: %s", self.served_model_name, exc)
            self.count("model_errors")
            raise _server_error() from None
        try:
            wire = to_wire_completion(
                completion,
                chat.function_format,
                chat.inner_thoughts,
                id=f"chatcmpl-lab{number}",
                created=int(self.clock()),
            )
        except (KeyError, IndexError, TypeError, AttributeError):
            log.warning(
                "the model %s answered no completion: %.300r", self.served_model_name, completion
            )
            self.count("model_errors")
            raise _server_error() from None
        wire["model"] = self.served_model_name
        self.count("completions")
        if self.take("malformed", faults.malformed):
            full = JSONResponse(wire).body
            return Response(full[: len(full) // 2], 200, media_type="application/json")
        if not chat.stream:
            return JSONResponse(wire)
        if not chat.include_usage:
            wire.pop("usage", None)
        chunks = [_event(chunk) for chunk in stream_chunks(wire)]
        if self.take("dropped_streams", faults.drop_stream):
            return _EventStream(chunks[: len(chunks) // 2], complete=False)
        return _EventStream([*chunks, b"data: [DONE]\n\n"])

    def _chat(self, messages: list[Message], functions: list[dict[str, Any]]) -> dict[str, Any]:
        with self.model_lock:
            return self.model.chat(messages, functions)

    def _rate_limited(self) -> RequestError:
        wait = self.faults.retry_after
        limit = self.faults.rate_limit
        message = (
            f"Rate limit reached for {self.served_model_name} in organization org-memgpt-lab on "
            f"requests per min (RPM): Limit {limit}, Used {limit}, Requested 1. Please try again "
            f"in {wait:g}s. Visit https://platform.openai.com/account/rate-limits to learn more."
        )
        headers = {
            "retry-after": f"{wait:g}",
            "retry-after-ms": str(round(wait * 1000)),
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{wait:g}s",
        }
        return RequestError(
            429, _openai_error(message, "requests", code="rate_limit_exceeded"), headers
        )

    def _overflow(self, prompt_tokens: int, context_window: int) -> RequestError:
        self.count("overflowed")
        body = context_overflow_body(self.faults.error_style, prompt_tokens, context_window)
        return RequestError(400, body)

    def model_card(self) -> dict[str, Any]:
        return {
            "id": self.served_model_name,
            "object": "model",
            "created": 0,
            "owned_by": "memgpt-lab",
        }

    async def list_models(self, request: Request) -> Response:
        try:
            self.check_key(request)
        except RequestError as exc:
            return exc.response()
        return JSONResponse({"object": "list", "data": [self.model_card()]})

    async def get_model(self, request: Request) -> Response:
        try:
            self.check_key(request)
            if request.path_params["model"] != self.served_model_name:
                raise _model_not_found(request.path_params["model"])
        except RequestError as exc:
            return exc.response()
        return JSONResponse(self.model_card())


def _event(chunk: Mapping[str, Any]) -> bytes:
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()


class _EventStream(Response):
    """Server-sent events; with ``complete=False`` the response is never finished.

    Returning from the app with the response unfinished makes uvicorn close the
    connection: the client sees the chunked body end without its last chunk.
    """

    media_type = "text/event-stream"

    def __init__(self, events: Sequence[bytes], *, complete: bool = True) -> None:
        # no Response.__init__: it would render a body and announce its length
        self.status_code = 200
        self.background = None
        self.events = list(events)
        self.complete = complete
        self.init_headers({"cache-control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        for event in self.events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if self.complete:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    what = "Invalid method for URL" if status == 405 else "Invalid URL"
    body = _openai_error(f"{what} ({request.method} {request.url.path})")
    return JSONResponse(body, status)


def create_app(
    model: ChatModel,
    faults: Faults | None = None,
    *,
    served_model_name: str | None = None,
    api_key: str | None = None,
    clock: Callable[[], float] = time.time,
    record: bool = True,
) -> Starlette:
    """The endpoint as a Starlette app, answering with ``model``.

    Routes: ``POST /v1/chat/completions``, ``GET /v1/models`` and
    ``GET /v1/models/{id}``; anything else gets OpenAI's 404 body. Answers
    carry the served model name as their ``model``, and ids ``chatcmpl-labN``
    numbered per app.

    Args:
        model: answers every request; called under a lock, off the event loop.
        faults: what to get wrong on purpose (none by default).
        served_model_name: the one model name requests may ask for
            (default: ``model.name``); others get 404 ``model_not_found``.
        api_key: when set, requests must send ``Authorization: Bearer <api_key>``
            or get 401 ``invalid_api_key``.
        clock: the answers' ``created`` time (seconds since the epoch).
        record: keep every request body in ``app.state.requests`` (off for a
            long-running server, which would grow without bound).

    Returns:
        The app. ``app.state`` has ``model``, ``faults``, ``served_model_name``,
        ``requests`` (the chat-completion bodies received, oldest first) and
        ``counts`` (``requests``, ``completions``, ``refused``, ``rate_limited``,
        ``failed``, ``truncated``, ``overflowed``, ``model_errors``,
        ``malformed``, ``dropped_streams``), both updated under a lock, and
        ``model_lock``, held while the model answers.
    """
    endpoint = _Endpoint(
        model,
        faults or Faults(),
        served_model_name or str(getattr(model, "name", "") or "model"),
        api_key or None,
        clock,
        record,
    )
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", endpoint.chat_completions, methods=["POST"]),
            Route("/v1/models", endpoint.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", endpoint.get_model, methods=["GET"]),
        ],
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.state.model = endpoint.model
    app.state.faults = endpoint.faults
    app.state.served_model_name = endpoint.served_model_name
    app.state.requests = endpoint.requests
    app.state.counts = endpoint.counts
    app.state.model_lock = endpoint.model_lock
    return app


# --- the model by name ------------------------------------------------------------------


def resolve_model(model: str | ChatModel) -> ChatModel:
    """``model`` itself, or the model a string names: ``"scripted"``, ``"replay:FILE"``, ``"cassette:FILE"``.

    ``replay:FILE`` plays back a JSON list (or JSON lines) of responses, each a
    string or a whole completion (:meth:`ReplayModel.from_file`);
    ``cassette:FILE`` replays a recorded cassette, with no model behind it.

    Raises:
        UnknownNameError: any other string.
        LabError: the file cannot be read.
        TypeError: neither a string nor a :class:`ChatModel`.
    """
    if not isinstance(model, str):
        if isinstance(model, ChatModel):
            return model
        raise TypeError(f"model must be a model string or a ChatModel, not {model!r}")
    kind, _, path = model.partition(":")
    if model != "scripted" and not (kind in ("replay", "cassette") and path):
        raise UnknownNameError("model", model, SERVABLE_MODELS)
    return get_model(model)


# --- the server in a thread ---------------------------------------------------------------


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port), bound before uvicorn starts.

    Binding here makes a taken port an ``OSError`` for the caller, and the port
    known at once.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    # The protocol must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such
    # sockets, and without it every response waits ~40 ms for a delayed ACK (Nagle).
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(128)
    except BaseException:
        listener.close()
        raise
    return listener


class LLMServer:
    """The endpoint on a real uvicorn server in a background thread.

    Start it (``start()`` or ``with``), point a client at :attr:`base_url`,
    then ``stop()``. Requests go to :attr:`app` (see :func:`create_app`);
    its ``app.state`` shows what was received.

    Args:
        model: a :class:`ChatModel`, or a string for :func:`resolve_model`
            (``"scripted"``, ``"replay:FILE"``, ``"cassette:FILE"``).
        host: where to listen; loopback by default. Anything else needs ``api_key``.
        port: 0 (the default) picks a free port; see :attr:`port`.
        faults: what to get wrong on purpose (see :class:`Faults`).
        served_model_name: the model name clients ask for (default: the model's name).
        api_key: when set, clients must send ``Authorization: Bearer <api_key>``.
        record: keep the request bodies in ``app.state.requests``.

    Raises:
        ValueError: ``host`` is not loopback and ``api_key`` is not set, or
            ``port`` is out of range.
        UnknownNameError, LabError: ``model`` names no model that can be served.
    """

    _startup_timeout = 10.0
    _grace = 3  # seconds stop() lets requests in flight finish (uvicorn wants an int)

    def __init__(
        self,
        model: str | ChatModel = "scripted",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        served_model_name: str | None = None,
        api_key: str | None = None,
        record: bool = True,
    ) -> None:
        if not is_loopback(host) and not api_key:
            raise ValueError(
                f"refusing to serve on {host!r} without an API key: anyone who can reach it "
                "could use the model; pass api_key=... (or bind 127.0.0.1)"
            )
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (any free port) to 65535, not {port!r}")
        self.host = host
        self.port = 0
        self._requested_port = port
        self.model = resolve_model(model)
        self.app = create_app(
            self.model, faults, served_model_name=served_model_name, api_key=api_key, record=record
        )
        self.served_model_name: str = self.app.state.served_model_name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        host = self.host.strip("[]")
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The URL to give OpenAI clients: :attr:`url` + ``/v1``."""
        return f"{self.url}/v1"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LLMServer:
        """Listen and serve in a background thread; returns once connections are accepted.

        Raises:
            OSError: the port is taken (or the host cannot be bound).
            RuntimeError: already started (a server starts once; create a new one).
            LabError: uvicorn did not start.
        """
        import uvicorn

        with self._lock:
            if self._thread is not None:
                raise RuntimeError("LLMServer already started; create a new one")
            sock = _listen(self.host, self._requested_port)
            self.port = int(sock.getsockname()[1])
            config = uvicorn.Config(
                self.app,
                host=self.host,
                port=self.port,
                log_level="warning",
                log_config=None,  # leave the process's logging alone (notebooks, pytest)
                lifespan="off",
                ws="none",
                timeout_graceful_shutdown=self._grace,
            )
            server = uvicorn.Server(config)
            thread = threading.Thread(
                target=server.run,
                kwargs={"sockets": [sock]},
                name=f"memgpt_lab serve-llm {self.url}",
                daemon=True,
            )
            self._thread = thread
            thread.start()
            deadline = time.monotonic() + self._startup_timeout
            while not server.started:  # a short poll: uvicorn offers no event to wait on
                if not thread.is_alive() or time.monotonic() > deadline:
                    server.should_exit = True
                    thread.join()
                    sock.close()
                    raise LabError(f"serve-llm did not start on {self.url}")
                time.sleep(0.005)
            self._server = server
        return self

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish (a few seconds at most), end the thread.

        Idempotent.
        """
        with self._lock:
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return
            server.should_exit = True
            thread.join()
            self._server = None

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.base_url if self.running else "stopped"
        return f"<LLMServer {state} model={self.served_model_name!r}>"


def serve_forever(
    model: str | ChatModel = "scripted",
    *,
    host: str = "127.0.0.1",
    port: int = 8484,
    faults: Faults | None = None,
    served_model_name: str | None = None,
    api_key: str | None = None,
) -> None:
    """Serve until Ctrl-C (or SIGTERM), then stop cleanly. For ``memgpt-lab serve-llm``.

    Prints one line with the base URL once it listens. Records no request
    bodies: a long-running server would otherwise grow without bound.

    Raises:
        ValueError: bad settings (``host`` not loopback without ``api_key``...).
        LabError: ``model`` names no model that can be served.
        OSError: the port is taken.
    """
    server = LLMServer(
        model,
        host=host,
        port=port,
        faults=faults,
        served_model_name=served_model_name,
        api_key=api_key,
        record=False,
    )
    run_until_interrupted(
        server,
        lambda: f"memgpt-lab serve-llm on {server.base_url} (model {server.served_model_name})",
    )
