"""Frames of the MemGPT WebSocket protocol, as plain dicts.

Server to client::

    {"type": "agent_response_start"}
    {"type": "agent_response", "message_type": "internal_monologue" | "assistant_message"
                                               | "function_message", "message": "..."}
    {"type": "agent_response_end"}
    {"type": "command_response", "status": "OK: ..." | "Error: ..."}
    {"type": "agent_response_error", "message": "..."}
    {"type": "server_error", "message": "..."}

Client to server::

    {"type": "user_message", "message": "...", "agent_id": "..."}
    {"type": "command", "command": "create_agent", "config": {...}}

Extensions are additive keyword fields (``seq``, ``agent_id``, ``turn_id``,
``time``...), so a client that ignores unknown keys keeps working. These
functions build frames and turn them into text; they do no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from memgpt_lab import _json
from memgpt_lab.errors import ProtocolError

__all__ = [
    "AGENT_MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "agent_response",
    "agent_response_end",
    "agent_response_error",
    "agent_response_start",
    "command",
    "command_response",
    "decode",
    "encode",
    "event_encoder",
    "event_frame",
    "events_from_messages",
    "hello",
    "json_type",
    "server_error",
    "user_message",
]

#: Bumped when a change is not purely additive (2.0: nothing sent unasked, MemGPT's
#: status texts, ``error_code``, ``seq`` per connection as the last field).
PROTOCOL_VERSION = "2.0"

#: The ``message_type`` values of an ``agent_response`` frame, one per interface event.
AGENT_MESSAGE_TYPES = ("internal_monologue", "assistant_message", "function_message")

Frame = dict[str, Any]


def agent_response(message_type: str, message: Any, **extra: Any) -> Frame:
    """One agent event: inner monologue, a message to the user, or a function message."""
    if message_type not in AGENT_MESSAGE_TYPES:
        raise ProtocolError(
            f"message_type must be one of {', '.join(AGENT_MESSAGE_TYPES)}, not {message_type!r}"
        )
    return {"type": "agent_response", "message_type": message_type, "message": message, **extra}


def agent_response_start(**extra: Any) -> Frame:
    """Opens one turn's ``agent_response`` frames."""
    return {"type": "agent_response_start", **extra}


def agent_response_end(**extra: Any) -> Frame:
    """Closes one turn: nothing of the turn follows it."""
    return {"type": "agent_response_end", **extra}


def agent_response_error(message: str, **extra: Any) -> Frame:
    """The turn failed; ``message`` says why."""
    return {"type": "agent_response_error", "message": message, **extra}


def command_response(status: str, **extra: Any) -> Frame:
    """The answer to a ``command`` frame. ``status`` starts with ``OK`` or ``Error:``, as
    MemGPT's clients check: ``"OK: Agent initialized"``, ``"Error: bad data from client - ..."``."""
    return {"type": "command_response", "status": status, **extra}


def server_error(message: str, **extra: Any) -> Frame:
    """The server could not handle a frame; ``message`` names what was wrong."""
    return {"type": "server_error", "message": message, **extra}


def user_message(message: str, agent_id: str | None = None, **extra: Any) -> Frame:
    """A client's message to an agent."""
    frame: Frame = {"type": "user_message", "message": message}
    if agent_id is not None:
        frame["agent_id"] = agent_id
    frame.update(extra)
    return frame


def command(name: str, config: dict[str, Any] | None = None, **extra: Any) -> Frame:
    """A client's command, for example ``command("create_agent", {...})``."""
    frame: Frame = {"type": "command", "command": name}
    if config is not None:
        frame["config"] = config
    frame.update(extra)
    return frame


# One encoder for every frame: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
_SURROGATE = re.compile("[\ud800-\udfff]")


def _compact(value: Any) -> str:
    """Compact JSON that is always valid UTF-8 text.

    A lone surrogate (``"\\ud800"`` in the JSON a client sent, echoed by an agent)
    cannot be encoded as UTF-8, so a frame holding one would fail in the socket's
    writer; such a value is written with ``\\uXXXX`` escapes instead.
    """
    text = _ENCODER.encode(value)
    if not text.isascii() and _SURROGATE.search(text):
        return _ASCII_ENCODER.encode(value)
    return text


def encode(frame: Frame) -> str:
    """The frame as compact JSON text, as it goes on the wire. Never fails on text:
    lone surrogates are escaped (see :func:`decode`, which refuses them)."""
    return _compact(frame)


def decode(text: str | bytes) -> Frame:
    """Parse one frame's text (or UTF-8 bytes) into a dict.

    Raises:
        ProtocolError: the text is not JSON, not a JSON object with a string
            ``type``, or holds a lone surrogate (``"\\ud800"``: valid JSON, but not
            Unicode text; ``code`` is ``"invalid_unicode"``).
    """
    try:
        frame = _json.loads(text, max_depth=_json.MAX_DEPTH)
    except (ValueError, UnicodeDecodeError) as exc:
        code = "invalid_unicode" if isinstance(exc, UnicodeDecodeError) else "bad_json"
        raise ProtocolError(f"frame is not valid JSON: {exc}", code=code) from None
    if not isinstance(frame, dict):
        raise ProtocolError(f"frame must be a JSON object, not {type(frame).__name__}")
    raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
    if "\\u" in raw and _has_surrogate(frame):
        raise ProtocolError(
            "frame holds a lone surrogate (an unpaired \\ud800-\\udfff escape): "
            "text must be valid Unicode",
            code="invalid_unicode",
        )
    if "type" not in frame:
        raise ProtocolError("frame has no 'type' field", code="no_type")
    if not isinstance(frame["type"], str):
        raise ProtocolError(f"frame 'type' must be a string, not {type(frame['type']).__name__}")
    return frame


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def event_frame(kind: str, message: Any, **extra: Any) -> Frame:
    """The frame for one :class:`~memgpt_lab.interface.AgentInterface` event.

    ``kind`` is the observer method's name. ``user_message`` events have no
    server-to-client frame in the protocol (MemGPT's interfaces dropped them
    too), so callers filter them out before asking for a frame.

    Raises:
        ProtocolError: ``kind`` is ``user_message`` or not an event kind at all.
    """
    if kind == "user_message":
        raise ProtocolError("user_message events have no server-to-client frame; skip them")
    return agent_response(kind, message, **extra)


#: The fields an event frame sets itself, which ``extra`` may not override.
EVENT_FRAME_FIELDS = ("type", "message_type", "message", "seq")


def event_encoder(**extra: Any) -> Callable[[str, Any], str]:
    """A fast encoder for event frames that all carry the same extra fields.

    Call once per turn, then ``encoder(kind, message)`` per event. The text is
    ``encode(event_frame(kind, message, **extra))``, built by filling a template
    instead of encoding a dict each time (several times faster, which matters at
    100,000 events a second). It has no ``seq``: each consumer's
    :class:`~memgpt_lab.turns.Outbox` adds its own as the last field.

    Raises:
        ProtocolError: ``extra`` sets one of :data:`EVENT_FRAME_FIELDS`; and,
            from the encoder, ``kind`` has no frame (see :func:`event_frame`).
    """
    clash = sorted(set(EVENT_FRAME_FIELDS).intersection(extra))
    if clash:
        raise ProtocolError(f"extra fields may not set {', '.join(clash)}")
    tail = encode(extra)[1:-1]
    tail = "," + tail if tail else ""
    heads = {
        kind: f'{{"type":"agent_response","message_type":"{kind}","message":'
        for kind in AGENT_MESSAGE_TYPES
    }

    def encode_event(kind: str, message: Any) -> str:
        head = heads.get(kind)
        if head is None:
            event_frame(kind, message)  # raises the ProtocolError that explains why
        return f"{head}{_compact(message)}{tail}}}"

    return encode_event


def events_from_messages(messages: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The interface events that replay a message history, in order.

    ``messages`` are OpenAI-style chat dicts. The mapping, per message:

    - ``system`` / ``user``: nothing (no frame exists for them);
    - ``assistant``: its text content becomes ``internal_monologue``; then each
      call, from ``function_call`` or ``tool_calls`` in order, becomes
      ``assistant_message`` with the ``message`` argument for ``send_message``,
      or ``function_message`` ``"Running name(args)"`` for any other function
      (``args`` as the agent prints them: the parsed dict, or the raw text when
      it is not a JSON object);
    - ``function`` / ``tool``: its content becomes ``function_message``.

    Empty content is skipped. The result is a list of ``(kind, text)`` pairs,
    ready for ``AgentInterface.emit``.

    Raises:
        ProtocolError: a message has no ``role`` or an unknown one, or a call
            has no function name.
    """
    events: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "user"):
            continue
        if role in ("function", "tool"):
            text = _content_text(message.get("content"))
            if text:
                events.append(("function_message", text))
        elif role == "assistant":
            text = _content_text(message.get("content"))
            if text:
                events.append(("internal_monologue", text))
            for name, arguments in _calls(message, index):
                events.append(_call_event(name, arguments))
        else:
            raise ProtocolError(
                f"message {index} has role {role!r}; expected system, user, assistant, "
                "function or tool"
            )
    return events


def _content_text(content: Any) -> str:
    # OpenAI content is a string, or a list of parts of which only text parts are shown.
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return str(content)


def _calls(message: Mapping[str, Any], index: int) -> list[tuple[str, Any]]:
    calls: list[Mapping[str, Any]] = []
    if message.get("function_call"):
        calls.append(message["function_call"])
    for tool_call in message.get("tool_calls") or ():
        calls.append(tool_call.get("function") or {})
    named = []
    for call in calls:
        name = call.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"message {index} has a function call without a name")
        named.append((name, call.get("arguments")))
    return named


def _call_event(name: str, arguments: Any) -> tuple[str, str]:
    parsed: Any = arguments
    if isinstance(arguments, str):
        try:
            parsed = _json.loads(arguments, max_depth=_json.MAX_DEPTH)
        except ValueError:
            parsed = arguments
    if name == "send_message" and isinstance(parsed, dict) and "message" in parsed:
        return ("assistant_message", str(parsed["message"]))
    shown = parsed if isinstance(parsed, dict) else ("" if arguments is None else arguments)
    return ("function_message", f"Running {name}({shown})")


# --------------------------------------------------------------------------- client frames


def hello(**extra: Any) -> Frame:
    """The lab's greeting (an addition to MemGPT's protocol): sent only when a client asks
    (the ``hello`` command, or ``?hello=1`` when connecting), never unasked."""
    return {"type": "hello", "protocol_version": PROTOCOL_VERSION, **extra}


def json_type(value: Any) -> str:
    """A value's JSON type as the sender wrote it (\"a string\", \"null\"...), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
