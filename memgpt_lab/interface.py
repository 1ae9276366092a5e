"""Agent interfaces: observers of what an agent says and does.

An :class:`~memgpt_lab.agent.Agent` calls its interface once per event, in the
order the events happen. For a step that sends a message that is::

    internal_monologue("...")                     # the model's inner thoughts
    function_message("Running send_message(...)") # the call, before it runs
    assistant_message("...")                      # what send_message said
    function_message("Success: ...")              # the call's result

Interfaces do no work of their own in the core; adapters (WebSocket
interfaces, widgets, printers) subclass :class:`AgentInterface`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = [
    "AgentEvent",
    "AgentInterface",
    "CollectingInterface",
    "EVENT_KINDS",
    "MultiInterface",
    "PrintingInterface",
]

#: The event kinds an agent emits, by the name of the observer method.
EVENT_KINDS = ("user_message", "internal_monologue", "assistant_message", "function_message")


class AgentInterface:
    """Observer of an agent. Every method does nothing; override what you need.

    ``msg_obj`` is the message dict the event belongs to (role, content...),
    or ``None``. Methods should not raise; if one does, the agent undoes the
    step (memory and messages as before it) and the error propagates.
    """

    def user_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        """A user (or system) message entered the conversation."""

    def internal_monologue(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        """The model's inner thoughts for this step."""

    def assistant_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        """A message the agent sent to the user (through ``send_message``)."""

    def function_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        """A function call (``Running ...``) or its result (``Success: ...`` / ``Error: ...``)."""

    def step_done(self) -> None:
        """A step finished and was stored; its events are all out.

        Called once at the end of every :meth:`~memgpt_lab.agent.Agent.step`.
        An interface that delivers events elsewhere (a socket) hands the step's
        events over here, so that they are delivered when ``step()`` returns.
        """

    def emit(self, kind: str, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        """Dispatch one event by kind name (one of :data:`EVENT_KINDS`)."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {EVENT_KINDS}")
        getattr(self, kind)(msg, msg_obj)


@dataclass(frozen=True)
class AgentEvent:
    """One observed event: which method was called, and with what."""

    kind: str
    message: str
    msg_obj: dict[str, Any] | None = field(default=None, compare=False)


class CollectingInterface(AgentInterface):
    """Keeps every event in :attr:`events`, in order. Handy in tests."""

    def __init__(self) -> None:
        self.events: list[AgentEvent] = []

    def user_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self.events.append(AgentEvent("user_message", msg, msg_obj))

    def internal_monologue(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self.events.append(AgentEvent("internal_monologue", msg, msg_obj))

    def assistant_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self.events.append(AgentEvent("assistant_message", msg, msg_obj))

    def function_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self.events.append(AgentEvent("function_message", msg, msg_obj))

    def kinds(self) -> list[str]:
        """The event kinds seen so far, in order."""
        return [event.kind for event in self.events]

    def clear(self) -> None:
        self.events.clear()


class MultiInterface(AgentInterface):
    """Fans every event out to several interfaces, in the order given."""

    def __init__(self, interfaces: Iterable[AgentInterface]) -> None:
        self.interfaces = list(interfaces)

    def emit(self, kind: str, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        for interface in self.interfaces:
            interface.emit(kind, msg, msg_obj)

    def step_done(self) -> None:
        for interface in self.interfaces:
            interface.step_done()

    def user_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self.emit("user_message", msg, msg_obj)

    def internal_monologue(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self.emit("internal_monologue", msg, msg_obj)

    def assistant_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self.emit("assistant_message", msg, msg_obj)

    def function_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self.emit("function_message", msg, msg_obj)


class PrintingInterface(AgentInterface):
    """Prints each event as one line, for terminals and quick looks.

    Args:
        file: where to print; standard output by default.
        show_user: print user messages too.
    """

    _LABELS = {
        "user_message": "user",
        "internal_monologue": "thinks",
        "assistant_message": "says",
        "function_message": "function",
    }

    def __init__(self, file: TextIO | None = None, show_user: bool = True) -> None:
        self.file = file
        self.show_user = show_user

    def _print(self, kind: str, msg: str) -> None:
        print(f"[{self._LABELS[kind]:>8}] {msg}", file=self.file or sys.stdout)

    def user_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        if self.show_user:
            self._print("user_message", msg)

    def internal_monologue(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self._print("internal_monologue", msg)

    def assistant_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self._print("assistant_message", msg)

    def function_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self._print("function_message", msg)
