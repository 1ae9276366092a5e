"""Message packaging: the JSON texts an agent reads as "user" messages.

MemGPT wraps everything that is not the model's own output in a small JSON
object — a user's message, a heartbeat, a login event, a function's result,
a system alert — so the model can tell them apart. The field names here are
MemGPT's (``type``, ``message``, ``time``, ``status``, ``reason``...).

Every function takes the time explicitly (``time=``/``timestamp=``, a
``datetime`` or a preformatted string) or reads it from a ``clock``; pass a
:class:`FixedClock` for output that is the same on every run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "FUNC_FAILED_HEARTBEAT_MESSAGE",
    "REQ_HEARTBEAT_MESSAGE",
    "Clock",
    "FixedClock",
    "format_time",
    "get_heartbeat",
    "get_login_event",
    "get_token_limit_warning",
    "package_function_response",
    "package_summarize_message",
    "package_user_message",
    "system_clock",
]

#: Reasons given in the heartbeats an agent sends itself.
REQ_HEARTBEAT_MESSAGE = "request_heartbeat == true"
FUNC_FAILED_HEARTBEAT_MESSAGE = "Function call failed"

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class FixedClock:
    """A deterministic clock: ``start``, then ``step`` later on every call.

    Args:
        start: the first time returned; 2026-01-01 09:00 UTC by default.
        step: how far each call moves the clock on.
    """

    def __init__(
        self, start: datetime | None = None, step: timedelta = timedelta(seconds=1)
    ) -> None:
        self.now = start or datetime(2026, 1, 1, 9, 0, 0, tzinfo=UTC)
        self.step = step

    def __call__(self) -> datetime:
        now = self.now
        self.now = now + self.step
        return now

    def __repr__(self) -> str:
        return f"FixedClock(now={self.now.isoformat()}, step={self.step})"


def format_time(moment: datetime | str | None = None, clock: Clock = system_clock) -> str:
    """A time as MemGPT wrote it: ``2026-01-01 09:00:00 AM UTC+0000``.

    A string is returned unchanged; ``None`` reads ``clock``.
    """
    if isinstance(moment, str):
        return moment
    if moment is None:
        moment = clock()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    zone = moment.tzname() or ""
    if zone.startswith("UTC"):  # a fixed offset names itself "UTC+02:00"; %z adds it again
        zone = "UTC"
    return f"{moment:%Y-%m-%d %I:%M:%S %p} {zone}{moment:%z}"


def _dumps(packet: dict[str, Any]) -> str:
    return json.dumps(packet, ensure_ascii=False)


def package_user_message(
    message: str,
    time: datetime | str | None = None,
    name: str | None = None,
    *,
    clock: Clock = system_clock,
) -> str:
    """A user's message: ``{"type": "user_message", "message", "time"[, "name"]}``."""
    packet: dict[str, Any] = {
        "type": "user_message",
        "message": message,
        "time": format_time(time, clock),
    }
    if name is not None:
        packet["name"] = name
    return _dumps(packet)


def get_heartbeat(
    reason: str = "Automated timer",
    time: datetime | str | None = None,
    *,
    clock: Clock = system_clock,
) -> str:
    """A heartbeat: the agent gets to think again without a user message."""
    return _dumps({"type": "heartbeat", "reason": reason, "time": format_time(time, clock)})


def get_login_event(
    last_login: str = "Never (first login)",
    time: datetime | str | None = None,
    *,
    clock: Clock = system_clock,
) -> str:
    """A login event: the user has (re)connected."""
    return _dumps({"type": "login", "last_login": last_login, "time": format_time(time, clock)})


def package_function_response(
    was_success: bool,
    response: str,
    timestamp: datetime | str | None = None,
    *,
    clock: Clock = system_clock,
) -> str:
    """A function's result: ``{"status": "OK" | "Failed", "message", "time"}``."""
    return _dumps(
        {
            "status": "OK" if was_success else "Failed",
            "message": response,
            "time": format_time(timestamp, clock),
        }
    )


def package_summarize_message(
    summary: str,
    summary_length: int,
    hidden_message_count: int,
    total_message_count: int,
    timestamp: datetime | str | None = None,
    *,
    clock: Clock = system_clock,
) -> str:
    """The system alert that stands in for messages evicted by summarisation."""
    message = (
        f"Note: {hidden_message_count} earlier messages (of {total_message_count} in all) "
        f"have left the context window to make room. They remain in recall memory, "
        f"searchable with conversation_search. A summary of them "
        f"({summary_length} messages summarised):\n{summary}"
    )
    return _dumps(
        {"type": "system_alert", "message": message, "time": format_time(timestamp, clock)}
    )


def get_token_limit_warning(
    time: datetime | str | None = None, *, clock: Clock = system_clock
) -> str:
    """The memory-pressure alert sent when the context window is nearly full."""
    message = (
        "Warning: the conversation history is close to the context window's limit. "
        "Older messages will soon be summarised and leave the context. Save anything "
        "important to core or archival memory now."
    )
    return _dumps({"type": "system_alert", "message": message, "time": format_time(time, clock)})
