"""AgentConsole: talk to an agent, a whole turn or one step at a time, and watch it work.

The console attaches an :class:`~memgpt_lab.interface.AgentInterface` of its own
to the agent (next to any interface already there, through
:class:`~memgpt_lab.interface.MultiInterface`), so every event shows in the
transcript the moment the agent emits it, each kind styled by a CSS class
(``mlab-user``, ``mlab-monologue``, ``mlab-function-call``, ``mlab-function-ok``,
``mlab-function-error``, ``mlab-assistant``, ``mlab-heartbeat``, ``mlab-alert``,
``mlab-error``).

Traffic: when the agent already has a
:class:`~memgpt_lab.ws.interface.SyncWebSocketInterface`, the console uses it;
when it has none and a ``recording`` is given, the console registers a new one
with a :class:`~memgpt_lab.recorder.MockWebSocket` on that recording. Either
way it records each action as a server would frame it (the client's
``user_message`` in, ``agent_response_start``, the agent's frames,
``agent_response_end``) and flushes before returning, so the recording is
complete when a button handler or :meth:`AgentConsole.send` returns.

Stepping: :meth:`AgentConsole.step` runs one ``agent.step()`` and keeps what
the agent's chain would send next in :attr:`AgentConsole.pending` (a heartbeat
after a requested heartbeat or a failed function, the memory-pressure warning
after a token warning), exactly as :meth:`Agent.run_chain` decides it; the Step
button sends it. So a heartbeat chain can be walked one step at a time.

Which model answered: under the transcript a muted line names the model each
step's answer carried (the server's name for it) and how long each step's model
call took ("gpt-4o-mini · 812 ms, 640 ms" for a two-step turn). The line is a
widget of its own, not part of the transcript, so the transcript stays the same
on every run while the latencies vary; :attr:`AgentConsole.calls` holds the
:class:`~memgpt_lab.agent.ModelCall` objects.

Reset: with a ``factory`` (the :class:`~memgpt_lab.widgets.Lab` passes one),
:meth:`AgentConsole.reset` builds a fresh agent and switches to it; without
one it only clears the transcript and the pending step (the agent keeps its
memory).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import ipywidgets as widgets

from memgpt_lab import system
from memgpt_lab.interface import AgentInterface, MultiInterface
from memgpt_lab.messages import packet_of
from memgpt_lab.recorder import MockWebSocket, Recording
from memgpt_lab.widgets._style import status_html, style_tag
from memgpt_lab.widgets._util import esc
from memgpt_lab.ws import protocol
from memgpt_lab.ws.interface import SyncWebSocketInterface

if TYPE_CHECKING:
    from memgpt_lab.agent import Agent, ModelCall, StepResult, TurnResult

__all__ = ["ENTRY_KINDS", "AgentConsole", "ConsoleInterface"]

_T = TypeVar("_T")

#: Model calls kept for the "answered by" line (a long chain shows its last ones).
_MAX_CALLS = 20

#: Kinds of transcript entries; each is styled by the class ``mlab-<kind with - for _>``.
ENTRY_KINDS = (
    "user",
    "monologue",
    "function_call",
    "function_ok",
    "function_error",
    "assistant",
    "heartbeat",
    "alert",
    "error",
)

_LABELS = {
    "user": "you",
    "monologue": "thinks",
    "function_call": "calls",
    "function_ok": "ok",
    "function_error": "failed",
    "assistant": "says",
    "heartbeat": "heartbeat",
    "alert": "system",
    "error": "error",
}


def _user_entry(text: str) -> tuple[str, str]:
    """The transcript entry for a packaged "user" message (user text, heartbeat, alert)."""
    packet = packet_of(text)
    if packet is None:
        return "user", text
    kind = packet.get("type")
    if kind == "heartbeat":
        return "heartbeat", str(packet.get("reason", ""))
    if kind == "system_alert":
        return "alert", str(packet.get("message", ""))
    if kind == "login":
        return "alert", f"The user logged in (last login: {packet.get('last_login', '?')})."
    return "user", str(packet.get("message", text))


def _format_latency(seconds: float) -> str:
    """A step's latency for people: ``"0.4 ms"``, ``"812 ms"``, ``"2.4 s"``."""
    ms = 1000.0 * seconds
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{seconds:.1f} s"


def _calls_html(calls: list[ModelCall]) -> str:
    """The "answered by" line: the model(s) and each step's latency, in order."""
    if not calls:
        return ""
    models = list(dict.fromkeys(call.model for call in calls))
    if len(models) == 1:
        text = f"answered by {models[0]} · " + ", ".join(_format_latency(c.latency) for c in calls)
    else:
        text = "answered by " + ", ".join(
            f"{c.model} · {_format_latency(c.latency)}" for c in calls
        )
    return (
        f'<div class="mlab-count mlab-calls" data-model="{esc(calls[-1].model)}"'
        f' data-steps="{len(calls)}">{esc(text)}</div>'
    )


def _describe_pending(pending: str | None) -> str:
    if pending is None:
        return ""
    kind, text = _user_entry(pending)
    if kind == "heartbeat":
        return f"heartbeat ({text})"
    if kind == "alert":
        return "memory-pressure warning"
    return kind


def _socket_interface(interface: AgentInterface | None) -> SyncWebSocketInterface | None:
    """The first SyncWebSocketInterface in ``interface`` (looking inside MultiInterfaces)."""
    if isinstance(interface, SyncWebSocketInterface):
        return interface
    if isinstance(interface, MultiInterface):
        for inner in interface.interfaces:
            found = _socket_interface(inner)
            if found is not None:
                return found
    return None


class ConsoleInterface(AgentInterface):
    """Turns agent events into transcript entries and hands them to ``sink``."""

    def __init__(self, sink: Callable[[str, str], None]) -> None:
        self._sink = sink

    def user_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self._sink(*_user_entry(msg))

    def internal_monologue(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self._sink("monologue", msg)

    def assistant_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self._sink("assistant", msg)

    def function_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        if msg.startswith("Success:"):
            self._sink("function_ok", msg[len("Success:") :].strip())
        elif msg.startswith("Error:"):
            self._sink("function_error", msg[len("Error:") :].strip())
        else:
            self._sink("function_call", msg.removeprefix("Running ").strip())


class AgentConsole(widgets.VBox):
    """A chat view of one agent: send a turn or step, inject heartbeats and alerts.

    Args:
        agent: the agent to talk to.
        recording: where traffic goes when the agent has no socket interface yet.
        factory: builds a fresh agent for :meth:`reset`; without it reset only
            clears the view.
        server_frames: record the frames a server adds around each action (the
            client's ``user_message``, ``agent_response_start`` / ``_end``).

    Call :meth:`close` when done: it detaches from the agent and closes the
    socket interface the console made (not one it found).
    """

    def __init__(
        self,
        agent: Agent,
        recording: Recording | None = None,
        *,
        factory: Callable[[], Agent] | None = None,
        server_frames: bool = True,
    ) -> None:
        self._factory = factory
        self._server_frames = server_frames
        self._given_recording = recording
        self._lock = threading.RLock()
        self._entries: list[tuple[str, str]] = []
        self._pending: str | None = None
        self._calls: list[ModelCall] = []
        self._call_before: ModelCall | None = None  # the agent's last call before the action
        self._callbacks: list[Callable[[AgentConsole], object]] = []
        self._interface = ConsoleInterface(self._add_entry)
        self._socket: SyncWebSocketInterface | None = None
        self._owned_socket: SyncWebSocketInterface | None = None
        self._recording: Recording | None = None
        self.last_error: BaseException | None = None

        self._header = widgets.HTML()
        self._transcript = widgets.HTML()
        self._transcript.add_class("mlab-console-transcript")
        self._calls_line = widgets.HTML()
        self._calls_line.add_class("mlab-console-calls")
        self._input = widgets.Text(
            placeholder="Message the agent", layout=widgets.Layout(flex="1 1 auto", width="auto")
        )
        self._input.add_class("mlab-console-input")
        self._buttons: dict[str, widgets.Button] = {}
        for name, label, tip in (
            ("send", "Send", "Run a whole turn for the message"),
            ("step", "Step", "Run one agent step: the pending input, or the message"),
            ("heartbeat", "Heartbeat", "Inject a heartbeat (one step)"),
            ("warning", "Memory warning", "Inject a memory-pressure warning (one step)"),
            ("reset", "Reset", "A fresh agent (or, without a factory, clear the view)"),
        ):
            button = widgets.Button(
                description=label, tooltip=tip, layout=widgets.Layout(width="auto")
            )
            button.add_class(f"mlab-console-{name}")
            self._buttons[name] = button
        self._buttons["send"].button_style = "primary"
        self._buttons["send"].on_click(lambda _b: self._on_send())
        self._buttons["step"].on_click(lambda _b: self._on_step())
        self._buttons["heartbeat"].on_click(lambda _b: self.inject_heartbeat())
        self._buttons["warning"].on_click(lambda _b: self.inject_memory_warning())
        self._buttons["reset"].on_click(lambda _b: self.reset())
        self._pending_label = widgets.HTML()
        self._pending_label.add_class("mlab-console-pending")
        self._status = widgets.HTML()
        self._status.add_class("mlab-console-status")

        super().__init__(
            children=[
                style_tag(),
                self._header,
                self._transcript,
                self._calls_line,
                widgets.HBox([self._input, self._buttons["send"], self._buttons["step"]]),
                widgets.HBox(
                    [self._buttons["heartbeat"], self._buttons["warning"], self._buttons["reset"]]
                ),
                self._pending_label,
                self._status,
            ]
        )
        self.add_class("mlab-console")
        self._agent = agent
        self._attach(agent)
        self._render()

    def __repr__(self) -> str:
        return f"<AgentConsole {len(self._entries)} entries, pending={_describe_pending(self._pending) or None}>"

    # -- public API ---------------------------------------------------------

    @property
    def agent(self) -> Agent:
        """The agent the console talks to; assign another to switch (see :meth:`set_agent`)."""
        return self._agent

    @agent.setter
    def agent(self, agent: Agent) -> None:
        self.set_agent(agent)

    @property
    def entries(self) -> list[tuple[str, str]]:
        """The transcript as ``(kind, text)`` pairs, in order (kinds: :data:`ENTRY_KINDS`)."""
        with self._lock:
            return list(self._entries)

    @property
    def calls(self) -> list[ModelCall]:
        """The model calls of the last action (one per step), in order; see ``Agent.last_call``."""
        with self._lock:
            return list(self._calls)

    @property
    def pending(self) -> str | None:
        """The packaged input the Step button would send next, or None."""
        return self._pending

    @property
    def interface(self) -> SyncWebSocketInterface | None:
        """The socket interface the agent's frames go through, if any."""
        return self._socket

    @property
    def recording(self) -> Recording | None:
        """The recording of the console's traffic, if any."""
        return self._recording

    @property
    def status(self) -> str:
        """The status line's markup (errors and notes)."""
        return str(self._status.value)

    def on_turn(self, callback: Callable[[AgentConsole], object]) -> None:
        """Call ``callback(console)`` after every action (send, step, inject, reset)."""
        self._callbacks.append(callback)

    def send(self, text: str) -> TurnResult | None:
        """Run a whole turn for ``text`` (``agent.turn``); None if it failed (shown in the view).

        A pending step is dropped: a new user message starts a new chain.
        """
        if not text.strip():
            self._set_status("Type a message first.", ok=False)
            return None
        self._set_pending(None)
        result: TurnResult | None = None
        with self._action(user_text=text):
            result = self._agent.turn(text)
            if result.truncated:
                self._add_entry(
                    "alert",
                    f"The chain stopped after {len(result.steps)} steps "
                    "(max_chain_steps); Step continues it.",
                )
                self._set_pending(self._agent.next_chain_input(result.steps[-1]))
        return result if self.last_error is None else None

    def perform(
        self, action: Callable[[Agent], _T], *, note: str | None = None, frames: bool = True
    ) -> _T | None:
        """Run ``action(agent)`` as a console action (what the history panel's Retry uses).

        Its events show in the transcript, an error goes to the status line (and
        :attr:`last_error`) instead of raising, and the :meth:`on_turn` callbacks run
        after. ``note`` is a system line shown first ("Retry: ..."); ``frames`` records
        the server's turn frames around it (leave it off for actions that step nothing,
        such as a rewind). Returns what ``action`` returned, or None if it failed.
        """
        self._set_pending(None)
        result: _T | None = None
        with _Action(self, None, frames=frames):
            if note:
                self._add_entry("alert", note)
            result = action(self._agent)
        return result if self.last_error is None else None

    def step(self, text: str | None = None) -> StepResult | None:
        """Run one ``agent.step()``: with ``text`` (a user message), else the pending input.

        Afterwards :attr:`pending` holds what the chain would send next. Returns
        None (with a note in the view) when there is nothing to send or the step failed.
        """
        user_text: str | None = None
        if text is not None and text.strip():
            user_text = message = text
        elif self._pending is not None:
            message = self._pending
        else:
            self._set_status("Nothing to step: type a message, or inject a heartbeat.", ok=False)
            return None
        return self._one_step(message, user_text)

    def inject_heartbeat(self, reason: str = "Automated timer") -> StepResult | None:
        """One step on a heartbeat (``agent.heartbeat``), as a timer would send it."""
        return self._one_step(system.get_heartbeat(reason, self._agent.now()), None)

    def inject_memory_warning(self) -> StepResult | None:
        """One step on the memory-pressure warning (``agent.memory_pressure_warning``)."""
        return self._one_step(system.get_token_limit_warning(self._agent.now()), None)

    def reset(self) -> None:
        """A fresh agent from the factory, or (without one) a cleared view."""
        with self._lock:
            self._entries.clear()
        self._set_pending(None)
        self._start_calls()
        self.last_error = None
        if self._factory is not None:
            self.set_agent(self._factory())
            self._set_status("Started a fresh agent.", ok=True)
        else:
            self._set_status("Cleared the view; the agent keeps its memory.", ok=True)
        self._render()
        self._notify()

    def set_agent(self, agent: Agent) -> None:
        """Talk to ``agent`` from now on; the transcript and pending step are cleared."""
        if agent is self._agent:
            return
        self._detach()
        with self._lock:
            self._entries.clear()
        self._agent = agent
        self._set_pending(None)
        self._attach(agent)
        self._render()

    def close(self) -> None:
        """Detach from the agent, close the socket interface the console made, close widgets."""
        self._detach()
        for child in self._all_children():
            child.close()
        super().close()

    # -- internals ----------------------------------------------------------

    def _all_children(self) -> Iterator[widgets.Widget]:
        yield from self.children
        yield from self._buttons.values()
        yield self._input

    def _attach(self, agent: Agent) -> None:
        self._start_calls()
        existing = agent.interface
        if isinstance(existing, MultiInterface):
            existing.interfaces.append(self._interface)
        elif type(existing) is AgentInterface:  # the no-op default: nothing to keep
            agent.interface = MultiInterface([self._interface])
        else:
            agent.interface = MultiInterface([existing, self._interface])
        self._socket = _socket_interface(agent.interface)
        recording = self._given_recording
        if self._socket is None and recording is not None:
            self._owned_socket = self._socket = SyncWebSocketInterface(agent_id=agent.id)
            self._socket.register_client(MockWebSocket(recording))
            assert isinstance(agent.interface, MultiInterface)
            agent.interface.interfaces.insert(0, self._socket)
        elif self._socket is not None:
            # An interface made elsewhere (say, the quickstart's): its frames go to
            # its own MockWebSocket's recording, so that is the one to show.
            for client in self._socket.clients:
                if isinstance(client, MockWebSocket):
                    recording = client.recording
                    break
        self._recording = recording

    def _detach(self) -> None:
        agent = self._agent
        interface = agent.interface
        if isinstance(interface, MultiInterface):
            interface.interfaces[:] = [
                i
                for i in interface.interfaces
                if i is not self._interface and i is not self._owned_socket
            ]
        if self._owned_socket is not None:
            self._owned_socket.close()
            self._owned_socket = None
        self._socket = None

    def _add_entry(self, kind: str, text: str) -> None:
        # Called by the agent, possibly from another thread: trait updates only.
        with self._lock:
            self._entries.append((kind, text))
        self._note_call()
        self._render()

    def _start_calls(self) -> None:
        """Forget the shown calls: what answers from now on is the next action's."""
        with self._lock:
            self._calls = []
            self._call_before = self._agent.last_call
        self._calls_line.value = ""

    def _note_call(self) -> None:
        # A step's events come after its model call, so a new agent.last_call seen
        # at an event (or at the action's end) is the answer of the step under way.
        # Identity, not equality: a failed step restores the previous object.
        call = self._agent.last_call
        with self._lock:
            if call is None or call is self._call_before or any(c is call for c in self._calls):
                return
            self._calls.append(call)
            del self._calls[:-_MAX_CALLS]
            calls = list(self._calls)
        self._calls_line.value = _calls_html(calls)

    def _render(self) -> None:
        with self._lock:
            entries = list(self._entries)
        agent = self._agent
        rows = "".join(
            f'<div class="mlab-entry mlab-{kind.replace("_", "-")}" data-kind="{kind}">'
            f'<span class="mlab-label">{_LABELS.get(kind, kind)}</span> {esc(text)}</div>'
            for kind, text in entries
        )
        if not rows:
            rows = '<div class="mlab-empty">No messages yet: type one and press Send.</div>'
        with self.hold_sync():
            self._header.value = (
                f"<b>{esc(agent.name)}</b> · preset {esc(agent.preset_name or '—')} · "
                f"model {esc(agent.model.name)}"
            )
            self._transcript.value = f'<div class="mlab-transcript"><div>{rows}</div></div>'

    def _set_pending(self, pending: str | None) -> None:
        self._pending = pending
        described = _describe_pending(pending)
        self._pending_label.value = (
            f'<div class="mlab-pending">Step will send: {esc(described)}</div>' if described else ""
        )

    def _set_status(self, message: str, ok: bool) -> None:
        self._status.value = status_html(esc(message), ok)

    def _one_step(self, message: str, user_text: str | None) -> StepResult | None:
        result: StepResult | None = None
        with self._action(user_text=user_text):
            result = self._agent.step(message, skip_verify=True)
            self._set_pending(self._agent.next_chain_input(result))
        return result if self.last_error is None else None

    def _action(self, user_text: str | None) -> _Action:
        return _Action(self, user_text)

    def _client_frame(self, frame: dict[str, Any]) -> None:
        """Record the frame a client would have sent (the user's message), as incoming."""
        socket = self._socket
        if socket is None or not self._server_frames:
            return
        text = protocol.encode(frame)
        for client in socket.clients:
            if isinstance(client, MockWebSocket):
                client.feed(text)

    def _begin_turn(self) -> None:
        """Open a turn on the interface's turn engine: the same frames a server sends."""
        if self._socket is not None and self._server_frames:
            self._socket.begin_turn()

    def _end_turn(self, error: BaseException | None) -> None:
        socket = self._socket
        if socket is None or not self._server_frames:
            return
        if error is None:
            socket.end_turn()
        else:
            socket.end_turn(str(error), error_code="turn_failed")
        socket.flush()

    def _notify(self) -> None:
        for callback in list(self._callbacks):
            callback(self)

    def _on_send(self) -> None:
        text = self._input.value
        if self.send(text) is not None:
            self._input.value = ""

    def _on_step(self) -> None:
        text = self._input.value if self._pending is None else None
        if self.step(text) is not None and text:
            self._input.value = ""


class _Action:
    """One console action: frames around it, errors shown (never raised), callbacks after."""

    def __init__(
        self, console: AgentConsole, user_text: str | None, *, frames: bool = True
    ) -> None:
        self.console = console
        self.user_text = user_text
        self.frames = frames

    def __enter__(self) -> None:
        console = self.console
        console.last_error = None
        console._set_status("", ok=True)
        console._start_calls()
        try:
            if self.user_text is not None:
                console._client_frame(protocol.user_message(self.user_text, console.agent.id))
            if self.frames:
                console._begin_turn()
        except Exception as exc:  # a closed interface: the agent can still run
            console._set_status(f"Could not record the traffic: {exc}", ok=False)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        console = self.console
        if exc is not None:
            # A button must never print a traceback: the error goes in the view,
            # and stays in last_error for code that wants it.
            console.last_error = exc
            message = f"{type(exc).__name__}: {exc}"
            console._add_entry("error", message)
            console._set_status(message, ok=False)
            console._set_pending(None)
        try:
            if self.frames:
                console._end_turn(exc)
        except Exception as frame_exc:  # a closed interface: say so, keep the view usable
            console.last_error = console.last_error or frame_exc
            console._set_status(f"Could not record the traffic: {frame_exc}", ok=False)
        console._note_call()  # a step whose answer emitted no event
        console._notify()
        return exc is not None and isinstance(exc, Exception)
