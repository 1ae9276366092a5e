"""The OpenAI chat-completions wire format, both ways, as pure functions.

An agent keeps its history in MemGPT's shape: an assistant message carries its
call as ``function_call`` and the result comes back as a ``function`` message;
the inner monologue is the ``content``. Servers today speak ``tools`` /
``tool_calls`` and many models leave ``content`` empty when they call a tool.
This module converts between the two, with no I/O, so that the client
(:class:`~memgpt_lab.llm.openai.OpenAIChatModel`) and the endpoint
(``memgpt-lab serve-llm``) use one definition and the conversions are tested
on their own:

- :func:`to_wire_messages` / :func:`from_wire_messages`: the history;
- :func:`add_inner_thoughts` / :func:`strip_inner_thoughts`: the function schemas
  with (or without) the required ``inner_thoughts`` parameter;
- :func:`to_wire_completion` / :func:`from_wire_completion`: one answer;
- :func:`stream_chunks` / :class:`StreamAssembler`: an answer as server-sent
  chunks, and the chunks put back together.

For every history ``h`` the agent writes, ``from_wire_messages(to_wire_messages(h,
...)) == h``; the same holds for answers. The equivalence of an agent on a served
model and on the model itself rests on that.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from memgpt_lab import _json
from memgpt_lab.errors import LLMError

__all__ = [
    "INNER_THOUGHTS",
    "FunctionFormat",
    "InnerThoughts",
    "StreamAssembler",
    "add_inner_thoughts",
    "from_wire_completion",
    "from_wire_messages",
    "stream_chunks",
    "strip_inner_thoughts",
    "to_wire_completion",
    "to_wire_messages",
    "uses_inner_thoughts",
]

Message = dict[str, Any]
FunctionFormat = Literal["tools", "functions"]
InnerThoughts = Literal["content", "kwarg"]

#: The parameter that carries the inner monologue in ``inner_thoughts="kwarg"`` mode.
INNER_THOUGHTS = "inner_thoughts"
_INNER_THOUGHTS_SCHEMA = {
    "type": "string",
    "description": "Your private thoughts before this call: what you noticed and why you act. "
    "The user never sees them.",
}


# --- function schemas ------------------------------------------------------------


def add_inner_thoughts(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with a required ``inner_thoughts`` string as its first parameter."""
    result = copy.deepcopy(dict(schema))
    parameters = result.setdefault("parameters", {"type": "object", "properties": {}})
    properties = parameters.get("properties") or {}
    parameters["properties"] = {
        INNER_THOUGHTS: dict(_INNER_THOUGHTS_SCHEMA),
        **{k: v for k, v in properties.items() if k != INNER_THOUGHTS},
    }
    required = [r for r in parameters.get("required") or [] if r != INNER_THOUGHTS]
    parameters["required"] = [INNER_THOUGHTS, *required]
    return result


def _has_inner_thoughts(schema: Mapping[str, Any]) -> bool:
    parameters = schema.get("parameters") or {}
    return INNER_THOUGHTS in (parameters.get("properties") or {}) and INNER_THOUGHTS in (
        parameters.get("required") or []
    )


def uses_inner_thoughts(functions: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every schema takes ``inner_thoughts`` as a required parameter."""
    return bool(functions) and all(_has_inner_thoughts(f) for f in functions)


def strip_inner_thoughts(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` without the ``inner_thoughts`` parameter (the reverse of :func:`add_inner_thoughts`)."""
    result = copy.deepcopy(dict(schema))
    parameters = result.get("parameters")
    if isinstance(parameters, dict):
        properties = parameters.get("properties") or {}
        properties.pop(INNER_THOUGHTS, None)
        if "required" in parameters:
            parameters["required"] = [r for r in parameters["required"] if r != INNER_THOUGHTS]
    return result


# --- calls and their arguments ---------------------------------------------------


def _with_thoughts(arguments: Any, thoughts: str | None) -> Any:
    """JSON arguments with ``inner_thoughts`` first; arguments that are not an object stay."""
    if isinstance(arguments, str):
        moved = _thoughts_into_text(arguments, thoughts)
        return arguments if moved is None else moved
    if not isinstance(arguments, dict):
        return arguments
    merged = {INNER_THOUGHTS: thoughts or "", **arguments}
    return json.dumps(merged, ensure_ascii=False)


@functools.lru_cache(maxsize=4096)
def _thoughts_into_text(arguments: str, thoughts: str | None) -> str | None:
    # cached: a history's calls are converted again on every request
    try:
        parsed = _json.loads(arguments, max_depth=_json.MAX_DEPTH)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    return json.dumps({INNER_THOUGHTS: thoughts or "", **parsed}, ensure_ascii=False)


def _without_thoughts(arguments: Any) -> tuple[Any, str | None]:
    """(arguments without ``inner_thoughts``, the thoughts) — unchanged when there are none."""
    parsed = arguments
    if isinstance(arguments, str):
        try:
            parsed = _json.loads(arguments, max_depth=_json.MAX_DEPTH)
        except ValueError:
            return arguments, None
    if not isinstance(parsed, dict) or INNER_THOUGHTS not in parsed:
        return arguments, None
    thoughts = parsed.pop(INNER_THOUGHTS)
    return json.dumps(parsed, ensure_ascii=False), None if thoughts is None else str(thoughts)


def call_id(index: int) -> str:
    """The tool call id given to the call of the message at ``index`` (stable for one request)."""
    return f"call_{index}"


# --- the history -----------------------------------------------------------------


def to_wire_messages(
    messages: Sequence[Message],
    function_format: FunctionFormat = "tools",
    inner_thoughts: InnerThoughts = "content",
) -> list[Message]:
    """The agent's history as a server reads it.

    With ``"tools"``, a call becomes ``tool_calls`` (one, with an id derived from
    its position) and its result a ``tool`` message answering that id; with
    ``"functions"`` they stay as MemGPT wrote them. With ``"kwarg"``, an
    assistant's monologue moves into its call's ``inner_thoughts`` argument, as
    the schemas ask the model to write it.
    """
    wire: list[Message] = []
    open_call: str | None = None
    for index, message in enumerate(messages):
        role = message.get("role")
        call = message.get("function_call")
        if role == "assistant" and isinstance(call, Mapping):
            content = message.get("content")
            arguments = call.get("arguments")
            if inner_thoughts == "kwarg":
                moved = _with_thoughts(arguments, content)
                if moved is not arguments:
                    arguments, content = moved, None
            if function_format == "tools":
                open_call = call_id(index)
                function = {"name": call.get("name"), "arguments": arguments}
                tool_call = {"id": open_call, "type": "function", "function": function}
                wire.append({"role": "assistant", "content": content, "tool_calls": [tool_call]})
            else:
                function_call = {"name": call.get("name"), "arguments": arguments}
                wire.append(
                    {"role": "assistant", "content": content, "function_call": function_call}
                )
            continue
        if role == "function" and function_format == "tools":
            if open_call is None:  # a result whose call left the context: keep it as text
                wire.append({"role": "user", "content": message.get("content")})
            else:
                wire.append(
                    {"role": "tool", "tool_call_id": open_call, "content": message.get("content")}
                )
                open_call = None
            continue
        wire.append(dict(message))
    return wire


def from_wire_messages(messages: Sequence[Message]) -> list[Message]:
    """A server's view of a history, back in the agent's shape (see :func:`to_wire_messages`).

    ``tool_calls`` become ``function_call`` (the first call), ``tool`` messages
    ``function`` messages named after their call, and ``inner_thoughts`` found in
    a call's arguments become the message's content.
    """
    names: dict[str, str] = {}
    internal: list[Message] = []
    for message in messages:
        if not isinstance(message, Mapping):
            raise LLMError(f"a message must be an object, not {type(message).__name__}")
        role = message.get("role")
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            tool_calls = message.get("tool_calls") or []
            if tool_calls:
                for tool_call in tool_calls:
                    function = tool_call.get("function") or {}
                    names[str(tool_call.get("id"))] = str(function.get("name"))
                call = dict(tool_calls[0].get("function") or {})
            else:
                call = dict(message["function_call"])
            arguments, thoughts = _without_thoughts(call.get("arguments"))
            content = message.get("content")
            if thoughts and not content:
                content = thoughts
            internal.append(
                {
                    "role": "assistant",
                    "content": content,
                    "function_call": {"name": call.get("name"), "arguments": arguments},
                }
            )
            continue
        if role == "tool":
            name = names.get(str(message.get("tool_call_id")), "")
            internal.append({"role": "function", "name": name, "content": message.get("content")})
            continue
        internal.append(dict(message))
    return internal


# --- one answer -------------------------------------------------------------------


def to_wire_completion(
    completion: Mapping[str, Any],
    function_format: FunctionFormat = "tools",
    inner_thoughts: InnerThoughts = "content",
    *,
    id: str = "chatcmpl-lab",
    created: int = 0,
) -> dict[str, Any]:
    """An answer in the agent's shape (``function_call``) as a server sends it."""
    choice = completion["choices"][0]
    message = choice["message"]
    content = message.get("content")
    call = message.get("function_call")
    wire_message: Message = {"role": "assistant", "content": content}
    finish_reason = choice.get("finish_reason") or "stop"
    if call:
        arguments = call.get("arguments")
        if inner_thoughts == "kwarg":
            moved = _with_thoughts(arguments, content)
            if moved is not arguments:
                arguments, wire_message["content"] = moved, None
        function = {"name": call.get("name"), "arguments": arguments}
        if function_format == "tools":
            wire_message["tool_calls"] = [
                {"id": f"{id}-0", "type": "function", "function": function}
            ]
            finish_reason = "tool_calls"
        else:
            wire_message["function_call"] = function
            finish_reason = "function_call"
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": completion.get("model", ""),
        "choices": [{"index": 0, "message": wire_message, "finish_reason": finish_reason}],
    }
    if completion.get("usage") is not None:
        body["usage"] = dict(completion["usage"])
    return body


def from_wire_completion(
    body: Mapping[str, Any], inner_thoughts: InnerThoughts = "content"
) -> dict[str, Any]:
    """A server's answer in the agent's shape: the first call as ``function_call``.

    Other calls in the same answer are listed by name under the message's
    ``ignored_tool_calls`` (the agent runs only the first and tells the model).

    Raises:
        LLMError: the body has no ``choices[0].message``.
    """
    try:
        choice = body["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise LLMError(f"the server's answer has no choices[0].message: {body!r:.300}") from None
    if not isinstance(message, Mapping):
        raise LLMError(f"the server's message is not an object: {message!r:.300}")
    content = message.get("content")
    tool_calls = [c for c in message.get("tool_calls") or [] if isinstance(c, Mapping)]
    call: Any = None
    ignored: list[str] = []
    if tool_calls:
        call = tool_calls[0].get("function")
        ignored = [str((c.get("function") or {}).get("name")) for c in tool_calls[1:]]
    elif message.get("function_call"):
        call = message["function_call"]
    internal: Message = {"role": "assistant", "content": content}
    if isinstance(call, Mapping):
        arguments = call.get("arguments")
        if inner_thoughts == "kwarg":
            arguments, thoughts = _without_thoughts(arguments)
            if thoughts and not content:
                internal["content"] = thoughts
        internal["function_call"] = {"name": call.get("name"), "arguments": arguments}
    elif call is not None:  # a string or a list where an object belongs: let the agent fail it
        internal["function_call"] = {"name": None, "arguments": json.dumps(call, default=str)}
    if ignored:
        internal["ignored_tool_calls"] = ignored
    result: dict[str, Any] = {
        "object": "chat.completion",
        "model": body.get("model", ""),
        "choices": [
            {"index": 0, "message": internal, "finish_reason": choice.get("finish_reason")}
        ],
    }
    if isinstance(body.get("usage"), Mapping):
        result["usage"] = dict(body["usage"])
    return result


# --- streaming ----------------------------------------------------------------------


def stream_chunks(body: Mapping[str, Any], pieces: int = 3) -> Iterator[dict[str, Any]]:
    """A wire answer as ``chat.completion.chunk`` objects, as OpenAI and llama-server send them.

    The role first; the content in ``pieces`` fragments; for each tool call its
    id, type and name on the first chunk of its index, then its arguments in
    fragments; the finish reason; last, a chunk with ``usage`` and no choices
    (what ``stream_options.include_usage`` asks for) when the body has usage.
    """
    base = {
        "id": body.get("id", "chatcmpl-lab"),
        "object": "chat.completion.chunk",
        "created": body.get("created", 0),
        "model": body.get("model", ""),
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    choice = body["choices"][0]
    message = choice["message"]
    yield chunk({"role": "assistant", "content": ""})
    for part in _split(message.get("content") or "", pieces):
        yield chunk({"content": part})
    for index, tool_call in enumerate(message.get("tool_calls") or []):
        function = tool_call.get("function") or {}
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": tool_call.get("id"),
                        "type": "function",
                        "function": {"name": function.get("name"), "arguments": ""},
                    }
                ]
            }
        )
        for part in _split(str(function.get("arguments") or ""), pieces):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    if message.get("function_call"):
        function_call = message["function_call"]
        yield chunk({"function_call": {"name": function_call.get("name"), "arguments": ""}})
        for part in _split(str(function_call.get("arguments") or ""), pieces):
            yield chunk({"function_call": {"arguments": part}})
    yield chunk({}, choice.get("finish_reason") or "stop")
    if body.get("usage") is not None:
        yield {**base, "choices": [], "usage": dict(body["usage"])}


def _split(text: str, pieces: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)]


class StreamAssembler:
    """Puts ``chat.completion.chunk`` objects back into one ``chat.completion``.

    Feed every chunk (as dicts) to :meth:`feed`, then read :meth:`completion`.
    Content fragments are joined; a tool call's id, type and name come on the
    first chunk of its index and argument fragments after; legacy
    ``function_call`` deltas are joined the same way.
    """

    def __init__(self) -> None:
        self.id: str | None = None
        self.model = ""
        self.created = 0
        self.role = "assistant"
        self.content: list[str] = []
        self.saw_content = False
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.function_call: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.chunks = 0

    def feed(self, chunk: Mapping[str, Any]) -> None:
        self.chunks += 1
        self.id = self.id or chunk.get("id")
        self.model = chunk.get("model") or self.model
        self.created = chunk.get("created") or self.created
        if isinstance(chunk.get("usage"), Mapping):
            self.usage = dict(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("role"):
                self.role = delta["role"]
            if delta.get("content") is not None:
                self.saw_content = True
                self.content.append(delta["content"])
            for part in delta.get("tool_calls") or []:
                slot = self.tool_calls.setdefault(
                    int(part.get("index", 0)),
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if part.get("id"):
                    slot["id"] = part["id"]
                function = part.get("function") or {}
                if function.get("name"):
                    slot["function"]["name"] += function["name"]
                if function.get("arguments"):
                    slot["function"]["arguments"] += function["arguments"]
            if delta.get("function_call"):
                part = delta["function_call"]
                if self.function_call is None:
                    self.function_call = {"name": "", "arguments": ""}
                self.function_call["name"] += part.get("name") or ""
                self.function_call["arguments"] += part.get("arguments") or ""
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def completion(self) -> dict[str, Any]:
        """The assembled ``chat.completion``.

        Raises:
            LLMError: the stream ended before a finish reason arrived.
        """
        if self.finish_reason is None:
            raise LLMError(
                f"the stream ended before the answer was finished ({self.chunks} chunks read)"
            )
        content = "".join(self.content)
        message: Message = {"role": self.role, "content": content or None}
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        if self.function_call is not None:
            message["function_call"] = self.function_call
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
        }
        if self.usage is not None:
            body["usage"] = self.usage
        return body
