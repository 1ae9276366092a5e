"""Reading the OpenAI-style message dicts an agent keeps.

An assistant message may carry a call as ``function_call`` (MemGPT's era) or as
``tool_calls`` (today's API), with arguments as JSON text or, from some
backends, an object. These helpers read both, so the agent, recall memory and
the offline model agree on what a message said.
"""

from __future__ import annotations

from typing import Any

from memgpt_lab import _json

__all__ = ["call_arguments", "function_call_of", "packet_of", "sent_text", "user_packet"]

Message = dict[str, Any]


def function_call_of(message: Message) -> dict[str, Any] | None:
    """The message's function call (the first tool call), or None."""
    call = message.get("function_call")
    if call:
        return dict(call)
    tool_calls = message.get("tool_calls") or []
    if tool_calls:
        return dict(tool_calls[0].get("function") or {})
    return None


def call_arguments(call: dict[str, Any]) -> dict[str, Any] | None:
    """A call's arguments as a dict, or None when they are not a JSON object."""
    raw = call.get("arguments")
    if isinstance(raw, dict):
        return raw
    try:
        parsed = _json.loads(raw or "{}", max_depth=_json.MAX_DEPTH)
    except (TypeError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None


def sent_text(message: Message) -> str | None:
    """What an assistant message said to the user through ``send_message``, or None."""
    if message.get("role") != "assistant":
        return None
    call = function_call_of(message)
    if call is None or call.get("name") != "send_message":
        return None
    said = (call_arguments(call) or {}).get("message")
    return said if isinstance(said, str) else None


def packet_of(content: Any) -> dict[str, Any] | None:
    """A message content's JSON object (a packaged message, a function result), or None."""
    if not isinstance(content, str):
        return None
    try:
        packet = _json.loads(content)
    except ValueError:
        return None
    return packet if isinstance(packet, dict) else None


def user_packet(message: Message) -> dict[str, Any] | None:
    """The JSON packet of a "user" message (user text, heartbeat, alert...), or None."""
    if message.get("role") != "user":
        return None
    return packet_of(message.get("content"))
