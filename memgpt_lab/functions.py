"""The agent's function library, and JSON schemas derived from Python functions.

A function the model may call is plain Python whose first parameter is the
agent (``self``); the other parameters, their types and the Google-style
docstring make its JSON schema::

    def archival_memory_search(self, query: str, page: int = 0) -> str | None:
        \"\"\"Search archival memory.

        Args:
            query: what to look for.
            page: which page of results (0 is the first).
        \"\"\"

Unless a function is registered with ``heartbeat=False`` its schema gains a
``request_heartbeat`` flag: the model sets it to keep thinking after the call.

:data:`DEFAULT_FUNCTIONS` holds the built-in library; :func:`register_function`
adds a user's function to it, so presets can name it.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memgpt_lab.errors import UnknownNameError

if TYPE_CHECKING:
    from memgpt_lab.agent import Agent

__all__ = [
    "DEFAULT_FUNCTIONS",
    "FunctionSpec",
    "MAX_PAUSE_HEARTBEATS",
    "archival_memory_insert",
    "archival_memory_search",
    "conversation_search",
    "conversation_search_date",
    "core_memory_append",
    "core_memory_replace",
    "generate_schema",
    "pause_heartbeats",
    "register_function",
    "resolve_functions",
    "send_message",
]

MAX_PAUSE_HEARTBEATS = 360  # minutes

_JSON_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}

_HEARTBEAT_PARAMETER = {
    "type": "boolean",
    "description": "Request an immediate heartbeat after the call: set it to keep "
    "thinking (for example to use the result) before the next user message.",
}


@dataclass(frozen=True)
class FunctionSpec:
    """A function the agent can call, with its JSON schema."""

    name: str
    fn: Callable[..., Any]
    schema: dict[str, Any]

    def __call__(self, agent: Agent, **kwargs: Any) -> Any:
        return self.fn(agent, **kwargs)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The description and per-argument texts of a Google-style docstring."""
    doc = inspect.cleandoc(doc)
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    section = "summary"
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        header = re.fullmatch(
            r"(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?):", stripped
        )
        if header:
            section = "args" if header.group(1) in ("Args", "Arguments", "Parameters") else "other"
            current = None
            continue
        if section == "summary":
            summary_lines.append(stripped)
        elif section == "args":
            item = re.match(r"(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)", stripped)
            if item and line.startswith(" " * 4) and not line.startswith(" " * 5):
                current = item.group(1)
                args[current] = item.group(2)
            elif current and stripped:
                args[current] = f"{args[current]} {stripped}".strip()
    description = " ".join(" ".join(summary_lines).split())
    return description, args


def _json_type(annotation: Any, where: str) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return _json_type(options[0], where)
        raise TypeError(f"{where}: unions of several types are not supported")
    if origin is not None:
        annotation = origin
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}
    raise TypeError(f"{where}: cannot express type {annotation!r} in a JSON schema")


def _annotations(fn: Callable[..., Any], parameters: list[inspect.Parameter]) -> dict[str, Any]:
    """The parameters' annotations, evaluated (the agent's, often a forward reference, is skipped)."""
    namespace = getattr(fn, "__globals__", {})
    hints: dict[str, Any] = {}
    for param in parameters:
        annotation = param.annotation
        if annotation is param.empty:
            continue
        if isinstance(annotation, str):
            annotation = eval(annotation, namespace, {})  # noqa: S307 - the function's own annotation
        hints[param.name] = annotation
    return hints


def generate_schema(
    fn: Callable[..., Any], name: str | None = None, heartbeat: bool = True
) -> dict[str, Any]:
    """The OpenAI-style function schema of ``fn`` (its first parameter, the agent, left out).

    Raises:
        TypeError: a parameter without a type annotation, or with a type JSON can't express.
        ValueError: no docstring, or a parameter the docstring does not describe.
    """
    name = name or fn.__name__
    if not fn.__doc__:
        raise ValueError(f"function {name} needs a docstring: it becomes the schema's description")
    description, arg_docs = _parse_docstring(fn.__doc__)
    parameters = list(inspect.signature(fn).parameters.values())[1:]  # skip the agent
    hints = _annotations(fn, parameters)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in parameters:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"function {name}: *args and **kwargs cannot be described to a model")
        if param.name not in hints:
            raise TypeError(f"function {name}: parameter {param.name!r} needs a type annotation")
        if param.name not in arg_docs:
            raise ValueError(
                f"function {name}: the docstring's Args do not describe {param.name!r}"
            )
        prop = _json_type(hints[param.name], f"function {name}, parameter {param.name!r}")
        prop["description"] = arg_docs[param.name]
        properties[param.name] = prop
        if param.default is param.empty:
            required.append(param.name)
    if heartbeat:
        properties["request_heartbeat"] = dict(_HEARTBEAT_PARAMETER)
        required.append("request_heartbeat")
    return {
        "name": name,
        "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }


def _spec(fn: Callable[..., Any], name: str | None = None, heartbeat: bool = True) -> FunctionSpec:
    name = name or fn.__name__
    return FunctionSpec(name, fn, generate_schema(fn, name, heartbeat))


def _format_page(kind: str, query: str, page: Any, render: Callable[[Any], str]) -> str:
    if not page.total:
        return f"No {kind} results found for {query}."
    shown = [render(item) for item in page.items]
    if not shown:
        return f"No more {kind} results: page {page.page} is past the last ({page.pages - 1})."
    header = f"Showing {len(shown)} of {page.total} results (page {page.page}/{page.pages - 1}):"
    return json.dumps([header, *shown], ensure_ascii=False)


def _render_recall(entry: Any) -> str:
    return f"timestamp: {entry.timestamp:%Y-%m-%d %H:%M}, {entry.message.get('role')}: {entry.text}"


# --- the built-in library ---------------------------------------------------------


def send_message(self: Agent, message: str) -> None:
    """Send a message to the user. This is the only way the user sees anything you say.

    Args:
        message: the message, in your own voice; full sentences.
    """
    self.interface.assistant_message(message)
    return None


def pause_heartbeats(self: Agent, minutes: int) -> str:
    """Stop timed heartbeats for a while; user messages still wake you.

    Args:
        minutes: how long to pause, at most 360 minutes.
    """
    minutes = min(MAX_PAUSE_HEARTBEATS, max(0, int(minutes)))
    self.heartbeats_paused_minutes = minutes
    return f"Pausing timed heartbeats for {minutes} min"


def core_memory_append(self: Agent, name: str, content: str) -> None:
    """Add a line to a core memory block, which stays in your context at all times.

    Args:
        name: the block: "persona" or "human".
        content: the line to add. Keep it short; blocks have a character limit.
    """
    self.memory.append(name, content)
    self.rebuild_memory()
    return None


def core_memory_replace(self: Agent, name: str, old_content: str, new_content: str) -> None:
    """Replace text in a core memory block. An empty new_content deletes the old text.

    Args:
        name: the block: "persona" or "human".
        old_content: the exact text to replace.
        new_content: the text to put in its place.
    """
    self.memory.replace(name, old_content, new_content)
    self.rebuild_memory()
    return None


def conversation_search(self: Agent, query: str, page: int = 0) -> str:
    """Search the whole conversation history (recall memory) for a phrase.

    Args:
        query: the text to look for (case-insensitive).
        page: which page of results; 0 is the first.
    """
    found = self.recall_memory.text_search(query, page=page, said_only=True)
    return _format_page("recall", query, found, _render_recall)


def conversation_search_date(self: Agent, start_date: str, end_date: str, page: int = 0) -> str:
    """Search the conversation history (recall memory) by date.

    Args:
        start_date: the first day, written YYYY-MM-DD.
        end_date: the last day, written YYYY-MM-DD (inclusive).
        page: which page of results; 0 is the first.
    """
    found = self.recall_memory.date_search(start_date, end_date, page=page)
    return _format_page("recall", f"{start_date} to {end_date}", found, _render_recall)


def archival_memory_insert(self: Agent, content: str) -> None:
    """Keep a passage in archival memory, an unlimited store searched on demand.

    Args:
        content: the passage; write it so it makes sense on its own later.
    """
    self.archival_memory.insert(content, self.now())
    return None


def archival_memory_search(self: Agent, query: str, page: int = 0) -> str:
    """Search archival memory for passages about a topic.

    Args:
        query: what to look for.
        page: which page of results; 0 is the first.
    """
    found = self.archival_memory.search(query, page=page)
    return _format_page(
        "archival", query, found, lambda p: f"timestamp: {p.timestamp:%Y-%m-%d %H:%M}, {p.text}"
    )


#: The built-in functions by name, plus whatever :func:`register_function` added.
DEFAULT_FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in [
        _spec(send_message, heartbeat=False),
        _spec(pause_heartbeats, heartbeat=False),
        _spec(core_memory_append),
        _spec(core_memory_replace),
        _spec(conversation_search),
        _spec(conversation_search_date),
        _spec(archival_memory_insert),
        _spec(archival_memory_search),
    ]
}


def register_function(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, heartbeat: bool = True
) -> Any:
    """Add a function to :data:`DEFAULT_FUNCTIONS` so presets can name it.

    Use as ``register_function(fn)`` or as a decorator, with or without
    arguments. The schema is checked at once, so a bad signature fails here.
    Returns the function unchanged.
    """

    def add(func: Callable[..., Any]) -> Callable[..., Any]:
        spec = _spec(func, name, heartbeat)
        DEFAULT_FUNCTIONS[spec.name] = spec
        return func

    return add(fn) if fn is not None else add


def resolve_functions(
    names: Iterable[str | Callable[..., Any] | FunctionSpec],
    available: dict[str, FunctionSpec] | None = None,
) -> dict[str, FunctionSpec]:
    """Turn names (or functions, or specs) into ``{name: FunctionSpec}``, in order.

    Raises:
        UnknownNameError: a name that is not in ``available`` (the default library).
    """
    available = DEFAULT_FUNCTIONS if available is None else available
    resolved: dict[str, FunctionSpec] = {}
    for item in names:
        if isinstance(item, FunctionSpec):
            spec = item
        elif isinstance(item, str):
            if item not in available:
                raise UnknownNameError("function", item, available)
            spec = available[item]
        elif callable(item):
            spec = _spec(item)
        else:
            raise TypeError(f"expected a function name, function or FunctionSpec, not {item!r}")
        resolved[spec.name] = spec
    return resolved
