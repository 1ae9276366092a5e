"""Frames of the MemGPT WebSocket protocol, as plain dicts.

Server to client::

    {"type": "agent_response_start"}
    {"type": "agent_response", "message_type": "internal_monologue" | "assistant_message"
                                               | "function_message", "message": "..."}
    {"type": "agent_response_end"}
    {"type": "command_response", "status": "OK" | "error", "message": "..."}
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
from typing import Any

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
    "server_error",
    "user_message",
]

#: Bumped when a change is not purely additive.
PROTOCOL_VERSION = "1.0"

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


def command_response(status: str, message: str = "", **extra: Any) -> Frame:
    """The answer to a ``command`` frame; ``status`` is ``"OK"`` or ``"error"``."""
    return {"type": "command_response", "status": status, "message": message, **extra}


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


def encode(frame: Frame) -> str:
    """The frame as compact JSON text, as it goes on the wire."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def decode(text: str | bytes) -> Frame:
    """Parse one frame's text into a dict.

    Raises:
        ProtocolError: the text is not JSON, or not a JSON object with a string ``type``.
    """
    try:
        frame = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"frame is not valid JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise ProtocolError(f"frame must be a JSON object, not {type(frame).__name__}")
    if "type" not in frame:
        raise ProtocolError("frame has no 'type' field")
    if not isinstance(frame["type"], str):
        raise ProtocolError(f"frame 'type' must be a string, not {type(frame['type']).__name__}")
    return frame
