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
memory). The Reset button asks first: it turns into "Confirm reset", and any
other action cancels.

From code, :meth:`AgentConsole.send`, :meth:`~AgentConsole.step` and the
inject methods return what the agent returned and raise what it raised (the
error shows in the view too). The buttons never raise: they run the action in
a background thread (``background=True``), show a spinner with the seconds
elapsed while the model thinks, and put an error in the view; Stop ends a
chain after the step under way (what it would have sent next stays pending).

One action at a time: while one runs (a button's, in its thread), :meth:`~AgentConsole.send`,
:meth:`~AgentConsole.step`, the inject methods, :meth:`~AgentConsole.perform` and
:meth:`~AgentConsole.reset` called from code raise :class:`ConsoleBusyError` at once
(call :meth:`~AgentConsole.wait` first); :meth:`~AgentConsole.set_agent` and
:meth:`~AgentConsole.close` (which presses Stop first) wait for it, up to
:data:`WAIT_SECONDS`, so the turn's frames all reach the recording before the socket
is detached. :meth:`~AgentConsole.on_busy` hooks let other views (the Lab's agent
switcher, Create agent, the history's Rewind and Retry) turn off meanwhile.
Keys in the message box: Enter sends, Shift+Enter starts a new line, Escape
drops the pending step (or, while a turn runs, stops it as Stop does).

The transcript is rendered incrementally: entries go into chunks of
:data:`CHUNK_ENTRIES`; a new entry re-renders only the last chunk, so what goes
to the browser grows with the entry, not with the session. Entries longer than
:data:`COLLAPSE_CHARS` characters (or :data:`COLLAPSE_LINES` lines) show
collapsed, with a click to expand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import ipywidgets as widgets

from memgpt_lab import system
from memgpt_lab.agent import TurnResult
from memgpt_lab.errors import LabError
from memgpt_lab.interface import AgentInterface, MultiInterface
from memgpt_lab.messages import packet_of
from memgpt_lab.recorder import MockWebSocket, Recording
from memgpt_lab.widgets._input import BusyIndicator, MessageInput
from memgpt_lab.widgets._style import status_html, style_tag
from memgpt_lab.widgets._util import esc
from memgpt_lab.ws import protocol
from memgpt_lab.ws.interface import SyncWebSocketInterface

if TYPE_CHECKING:
    from memgpt_lab.agent import Agent, ModelCall, StepResult

__all__ = [
    "CHUNK_ENTRIES",
    "COLLAPSE_CHARS",
    "COLLAPSE_LINES",
    "ENTRY_KINDS",
    "WAIT_SECONDS",
    "AgentConsole",
    "ConsoleBusyError",
    "ConsoleInterface",
    "entry_html",
]

_T = TypeVar("_T")

#: Model calls kept for the "answered by" line (a long chain shows its last ones).
_MAX_CALLS = 20
#: Transcript entries per rendered chunk (a new entry re-renders only the last chunk).
CHUNK_ENTRIES = 25
#: Entries longer than this (characters or lines) show collapsed, with a click to expand.
COLLAPSE_CHARS = 600
COLLAPSE_LINES = 12
#: Characters of a collapsed entry shown before "show all".
_PREVIEW_CHARS = 240
#: How long set_agent() and close() wait for a running action before giving up.
WAIT_SECONDS = 60.0


class ConsoleBusyError(LabError, RuntimeError):
    """A console action called while another one runs (a button's, in its thread).

    Attributes:
        running: what the console is busy with ("send 'hello'", "step", ...).
    """

    def __init__(self, running: str, wanted: str) -> None:
        self.running = running
        super().__init__(
            f"the console is busy with {running}; call wait() first "
            f"(or stop() to end the chain after the step under way), then {wanted}"
        )


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


def entry_html(kind: str, text: str) -> str:
    """The markup of one transcript entry; a long one collapses into ``<details>``."""
    head = (
        f'<div class="mlab-entry mlab-{kind.replace("_", "-")}" data-kind="{kind}">'
        f'<span class="mlab-label">{_LABELS.get(kind, kind)}</span> '
    )
    lines = text.count("\n") + 1
    if len(text) <= COLLAPSE_CHARS and lines <= COLLAPSE_LINES:
        return f"{head}{esc(text)}</div>"
    preview = text[:_PREVIEW_CHARS].split("\n")[:3]
    size = f"{len(text):,} characters" + (f", {lines:,} lines" if lines > 1 else "")
    return (
        f'{head}<details class="mlab-long"><summary><span class="mlab-preview">'
        f"{esc(' '.join(preview))}…</span> "
        f'<span class="mlab-more">({size}: show all)</span></summary>'
        f'<div class="mlab-full">{esc(text)}</div></details></div>'
    )


def _quote(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, shortened: ``'hello'``, ``'a long messa…'``."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


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
        background: the buttons (and Enter) run their action in a background
            thread, so Stop reaches the kernel while a model thinks; :meth:`wait`
            waits for it. False runs them in the caller's thread.

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
        background: bool = True,
    ) -> None:
        self._factory = factory
        self._background = background
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        # One action at a time: the thread running one, and what it is.
        self._owner: threading.Thread | None = None
        self._running = ""
        self._busy_callbacks: list[Callable[[bool], object]] = []
        self._confirming_reset = False
        self._server_frames = server_frames
        self._given_recording = recording
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
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
        self._header.add_class("mlab-console-header")
        self._empty = widgets.HTML(
            '<div class="mlab-empty">No messages yet: type one and press Enter.</div>'
        )
        self._chunks: list[widgets.HTML] = []
        self._chunk_rows: list[str] = []  # the last chunk's entries, rendered
        self._chunk_box = widgets.VBox([self._empty])
        self._chunk_box.add_class("mlab-transcript-chunks")
        # column-reverse on the outer box keeps the newest entry in view as it scrolls
        self._transcript = widgets.Box([self._chunk_box])
        self._transcript.add_class("mlab-transcript")
        self._transcript.add_class("mlab-console-transcript")
        self._calls_line = widgets.HTML()
        self._calls_line.add_class("mlab-console-calls")
        self._input = MessageInput(
            placeholder="Message the agent (Enter sends, Shift+Enter: new line, Esc: cancel)",
            rows=2,
            layout=widgets.Layout(flex="1 1 auto", width="auto", min_width="0"),
        )
        self._input.add_class("mlab-console-input")
        self._input.on_submit(lambda _box: self._on_send())
        self._input.on_cancel(lambda _box: self._on_escape())
        self._buttons: dict[str, widgets.Button] = {}
        for name, label, tip in (
            ("send", "Send", "Run a whole turn for the message"),
            ("step", "Step", "Run one agent step: the pending input, or the message"),
            ("heartbeat", "Heartbeat", "Inject a heartbeat (one step)"),
            ("warning", "Memory warning", "Inject a memory-pressure warning (one step)"),
            ("reset", "Reset", "A fresh agent (or, without a factory, clear the view)"),
            ("stop", "Stop", "End the chain after the step under way"),
        ):
            button = widgets.Button(
                description=label, tooltip=tip, layout=widgets.Layout(width="auto")
            )
            button.add_class(f"mlab-console-{name}")
            self._buttons[name] = button
        self._buttons["send"].button_style = "primary"
        self._buttons["send"].on_click(lambda _b: self._on_send())
        self._buttons["step"].on_click(lambda _b: self._on_step())
        self._buttons["heartbeat"].on_click(
            lambda _b: self._from_button("a heartbeat", lambda: self.inject_heartbeat())
        )
        self._buttons["warning"].on_click(
            lambda _b: self._from_button("a memory warning", lambda: self.inject_memory_warning())
        )
        self._buttons["reset"].on_click(lambda _b: self._on_reset())
        self._buttons["stop"].on_click(lambda _b: self.stop())
        self._buttons["stop"].layout.display = "none"
        self._busy = BusyIndicator()
        self._busy.add_class("mlab-console-busy")
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
                self._busy,
                widgets.HBox(
                    [self._input, self._buttons["send"], self._buttons["step"]],
                    layout=widgets.Layout(width="auto"),
                ),
                widgets.HBox(
                    [
                        self._buttons["heartbeat"],
                        self._buttons["warning"],
                        self._buttons["reset"],
                        self._buttons["stop"],
                    ],
                    layout=widgets.Layout(flex_flow="row wrap"),
                ),
                self._pending_label,
                self._status,
            ]
        )
        self.add_class("mlab-console")
        self._agent = agent
        self._attach(agent)
        self._render_header()

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

    def on_busy(self, callback: Callable[[bool], object]) -> None:
        """Call ``callback(True)`` when a button's background action starts, ``(False)``
        when it ends (the Lab turns its agent switcher off meanwhile)."""
        self._busy_callbacks.append(callback)

    @property
    def busy(self) -> bool:
        """Whether an action runs: a button's (in the background thread) or one called
        from another thread. Meanwhile :meth:`send`, :meth:`step`, the inject methods,
        :meth:`perform` and :meth:`reset` raise :class:`ConsoleBusyError`;
        :meth:`set_agent` and :meth:`close` wait for it."""
        return self._owner is not None

    def send(self, text: str) -> TurnResult:
        """Run a whole turn for ``text``: step, then chain heartbeats as ``agent.turn`` does.

        A pending step is dropped (a new user message starts a new chain), with a
        line in the transcript saying so. :meth:`stop` (the Stop button) ends the
        chain after the step under way; what it would have sent next is then
        pending, for Step.

        Raises:
            ValueError: ``text`` is empty.
            ConsoleBusyError: another action runs (a button's): :meth:`wait` first.
            Exception: what the agent raised (also shown in the view).
        """
        if not text.strip():
            self._set_status("Type a message first.", ok=False)
            raise ValueError("nothing to send: the message is empty")
        with self._claim(f"send {_quote(text)}"):
            return self._run_turn(text)

    def _run_turn(self, text: str) -> TurnResult:
        self._drop_pending("a new message starts a new chain")
        self._clear_stop()
        agent = self._agent
        result = TurnResult()
        with self._action(user_text=text):
            first = not any(m.get("role") == "assistant" for m in agent.messages)
            next_input: str | None = system.package_user_message(text, agent.now())
            limit = agent.config.max_chain_steps
            for index in range(limit):
                self._show_busy(index + 1)
                step = agent.step(next_input, first_message=first and index == 0, skip_verify=True)
                result.steps.append(step)
                next_input = agent.next_chain_input(step)
                if next_input is None:
                    break
                if self._stop.is_set():
                    self._add_entry(
                        "alert",
                        f"Stopped after {len(result.steps)} step(s); Step continues the chain.",
                    )
                    self._set_pending(next_input)
                    break
            else:
                result.truncated = True
                self._add_entry(
                    "alert",
                    f"The chain stopped after {len(result.steps)} steps "
                    "(max_chain_steps); Step continues it.",
                )
                self._set_pending(next_input)
        return result

    def stop(self) -> None:
        """End the running chain after the step under way (the Stop button)."""
        self._stop.set()
        if self.busy:
            self._set_status("Stopping after this step…", ok=True)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running action (a button's) to finish; True if none is running.

        Called from inside the action (an :meth:`on_turn` callback), it cannot wait
        for itself: it returns False at once.
        """
        with self._idle:
            if self._owner is threading.current_thread():
                return False
            return self._idle.wait_for(lambda: self._owner is None, timeout)

    def perform(
        self, action: Callable[[Agent], _T], *, note: str | None = None, frames: bool = True
    ) -> _T | None:
        """Run ``action(agent)`` as a console action (what the history panel's Retry uses).

        Its events show in the transcript, an error goes to the status line (and
        :attr:`last_error`) instead of raising, and the :meth:`on_turn` callbacks run
        after. ``note`` is a system line shown first ("Retry: ..."); ``frames`` records
        the server's turn frames around it (leave it off for actions that step nothing,
        such as a rewind). Returns what ``action`` returned, or None if it failed.

        Raises:
            ConsoleBusyError: another action runs (a button's): :meth:`wait` first.
        """
        with self._claim(note or "an action"):
            self._drop_pending(None)
            result: _T | None = None
            with _Action(self, None, frames=frames, raise_errors=False):
                if note:
                    self._add_entry("alert", note)
                result = action(self._agent)
            return result if self.last_error is None else None

    def step(self, text: str | None = None) -> StepResult:
        """Run one ``agent.step()``: with ``text`` (a user message), else the pending input.

        Afterwards :attr:`pending` holds what the chain would send next.

        Raises:
            ValueError: there is nothing to send (no text, nothing pending).
            ConsoleBusyError: another action runs (a button's): :meth:`wait` first.
            Exception: what the agent raised (also shown in the view).
        """
        with self._claim("step" if text is None else f"step {_quote(text)}"):
            return self._run_step(text)

    def _run_step(self, text: str | None) -> StepResult:
        user_text: str | None = None
        if text is not None and text.strip():
            self._drop_pending("a new message starts a new chain")
            user_text = message = text
        elif self._pending is not None:
            message = self._pending
        else:
            self._set_status("Nothing to step: type a message, or inject a heartbeat.", ok=False)
            raise ValueError("nothing to step: no message and no pending input")
        return self._one_step(message, user_text)

    def inject_heartbeat(self, reason: str = "Automated timer") -> StepResult:
        """One step on a heartbeat (``agent.heartbeat``), as a timer would send it.

        Raises:
            ConsoleBusyError: another action runs (a button's): :meth:`wait` first.
        """
        with self._claim("a heartbeat"):
            return self._one_step(system.get_heartbeat(reason, self._agent.now()), None)

    def inject_memory_warning(self) -> StepResult:
        """One step on the memory-pressure warning (``agent.memory_pressure_warning``).

        Raises:
            ConsoleBusyError: another action runs (a button's): :meth:`wait` first.
        """
        with self._claim("a memory warning"):
            return self._one_step(system.get_token_limit_warning(self._agent.now()), None)

    def cancel_pending(self) -> bool:
        """Drop the pending step (Escape in the message box); True if there was one."""
        if self._pending is None:
            return False
        self._drop_pending("cancelled")
        return True

    def reset(self) -> None:
        """A fresh agent from the factory, or (without one) a cleared view; asks nothing.

        Raises:
            ConsoleBusyError: another action runs (a button's): :meth:`wait` first.
        """
        with self._claim("a reset"):
            self._run_reset()

    def _run_reset(self) -> None:
        self._cancel_reset()
        self._clear_transcript()
        self._set_pending(None)
        self._start_calls()
        self.last_error = None
        if self._factory is not None:
            self.set_agent(self._factory())
            self._set_status("Started a fresh agent.", ok=True)
        else:
            self._set_status("Cleared the view; the agent keeps its memory.", ok=True)
        self._render_header()
        self._notify()

    def set_agent(self, agent: Agent, *, timeout: float | None = WAIT_SECONDS) -> None:
        """Talk to ``agent`` from now on; the transcript and pending step are cleared.

        While an action runs (a button's turn), this waits for it to end, up to
        ``timeout`` seconds, so the turn's frames all reach the recording.

        Raises:
            ConsoleBusyError: the action still ran after ``timeout`` seconds.
        """
        if agent is self._agent:
            return
        with self._claim("switching agents", timeout):
            self._switch_agent(agent)

    def _switch_agent(self, agent: Agent) -> None:
        self._detach()
        self._clear_transcript()
        self._agent = agent
        self._set_pending(None)
        self._attach(agent)
        self._render_header()

    @property
    def transcript_html(self) -> str:
        """The transcript's markup, all chunks joined (what the browser shows)."""
        with self._lock:
            return "".join(str(chunk.value) for chunk in self._chunks)

    def close(self) -> None:
        """Detach from the agent, close the socket interface the console made, close widgets.

        A running action is stopped (after the step under way) and waited for, up to
        :data:`WAIT_SECONDS`, so its turn ends in the recording before the detach.
        """
        self._stop.set()
        self.wait(WAIT_SECONDS)
        self._detach()
        for child in self._all_children():
            child.close()
        super().close()

    # -- internals ----------------------------------------------------------

    @contextmanager
    def _claim(self, what: str, timeout: float | None = 0.0) -> Iterator[None]:
        """Run an action as the only one: nested in the running one (same thread), or
        after waiting up to ``timeout`` seconds for it (0: raise at once)."""
        me = threading.current_thread()
        with self._idle:
            nested = self._owner is me
            if not nested:
                if not self._idle.wait_for(lambda: self._owner is None, timeout):
                    raise ConsoleBusyError(self._running, what)
                self._owner, self._running = me, what
        try:
            yield
        finally:
            if not nested:
                self._release()

    def _release(self) -> None:
        with self._idle:
            self._owner, self._running = None, ""
            self._idle.notify_all()

    def _all_children(self) -> Iterator[widgets.Widget]:
        yield from self.children
        yield from self._buttons.values()
        yield from self._chunks
        yield from (self._input, self._busy, self._empty, self._chunk_box)

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
        # Only the last chunk is re-rendered: the browser gets this entry's chunk,
        # never the whole transcript again.
        row = entry_html(kind, text)
        with self._lock:
            self._entries.append((kind, text))
            if not self._chunks or len(self._chunk_rows) >= CHUNK_ENTRIES:
                chunk = widgets.HTML()
                chunk.add_class("mlab-transcript-chunk")
                self._chunk_rows = [row]
                chunk.value = row
                self._chunks.append(chunk)
                self._chunk_box.children = tuple(self._chunks)
            else:
                self._chunk_rows.append(row)
                self._chunks[-1].value = "".join(self._chunk_rows)
        self._note_call()

    def _clear_transcript(self) -> None:
        with self._lock:
            self._entries.clear()
            old, self._chunks, self._chunk_rows = self._chunks, [], []
            self._chunk_box.children = (self._empty,)
        for chunk in old:
            chunk.close()

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

    def _render_header(self) -> None:
        agent = self._agent
        preset = agent.preset_name or "—"
        # "memgpt_chat · preset memgpt_chat" said the same thing twice
        of_preset = "" if preset == agent.name else f" · preset {esc(preset)}"
        self._header.value = (
            f'<div class="mlab-console-title"><b>{esc(agent.name)}</b>{of_preset} · '
            f"model {esc(agent.model.name)}</div>"
        )

    def _set_pending(self, pending: str | None) -> None:
        self._pending = pending
        described = _describe_pending(pending)
        self._pending_label.value = (
            f'<div class="mlab-pending">Step will send: {esc(described)} (Esc drops it)</div>'
            if described
            else ""
        )

    def _drop_pending(self, why: str | None) -> None:
        """Forget the pending step, saying so in the transcript when ``why`` is given."""
        pending = self._pending
        if pending is None:
            return
        self._set_pending(None)
        if why is not None:
            self._add_entry("alert", f"Dropped the pending {_describe_pending(pending)}: {why}.")

    def _set_status(self, message: str, ok: bool) -> None:
        self._status.value = status_html(esc(message), ok)

    def _show_busy(self, step: int) -> None:
        self._busy.label = f"Thinking… step {step}"

    def _clear_stop(self) -> None:
        # A button clears Stop before its thread starts: cleared in the thread, a
        # Stop pressed before the thread got here would be lost.
        if threading.current_thread() is not self._worker:
            self._stop.clear()

    def _one_step(self, message: str, user_text: str | None) -> StepResult:
        self._clear_stop()
        with self._action(user_text=user_text):
            self._show_busy(1)
            result = self._agent.step(message, skip_verify=True)
            self._set_pending(self._agent.next_chain_input(result))
        return result

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

    def _set_working(self, working: bool) -> None:
        """Buttons off (Stop shown) while a background action runs; back on after."""
        with self.hold_sync():
            for name, button in self._buttons.items():
                if name == "stop":
                    button.layout.display = None if working else "none"
                    button.disabled = False
                else:
                    button.disabled = working
            self._busy.since = time.time() * 1000.0
            self._busy.busy = working
        for callback in list(self._busy_callbacks):
            try:
                callback(working)
            except Exception as exc:  # a hook must not wedge the console
                self._set_status(f"{type(exc).__name__}: {exc}", ok=False)

    def _from_button(
        self, what: str, action: Callable[[], object], after: Callable[[], None] | None = None
    ) -> None:
        """Run a button's action: in the background thread (one at a time), never raising."""
        self._cancel_reset()
        if self.busy:
            self._set_status("Busy: wait for the step under way, or press Stop.", ok=False)
            return

        def run() -> None:
            try:
                action()
            except ConsoleBusyError as exc:  # code in another thread got there first
                self._set_status(f"Busy: {exc}", ok=False)
            except Exception:  # shown in the view by _Action (or by the status line)
                pass
            else:
                if after is not None:
                    after()
            finally:
                if self._background:
                    # the view first, so that when wait() returns the buttons are back
                    self._set_working(False)
                    self._release()

        if not self._background:
            run()
            return
        worker = threading.Thread(target=run, name="memgpt_lab AgentConsole", daemon=True)
        with self._idle:
            # claimed for the thread before it starts: busy from the click on
            if self._owner is not None:
                self._set_status("Busy: wait for the step under way, or press Stop.", ok=False)
                return
            self._owner, self._running = worker, what
        self._worker = worker
        self._stop.clear()  # here, not in the thread: a Stop pressed from now on counts
        self._set_working(True)
        worker.start()

    def _clear_input(self, sent: str) -> None:
        if self._input.value == sent:  # the user may have typed more meanwhile
            self._input.value = ""

    def _on_send(self) -> None:
        text = self._input.value
        if not text.strip():
            self._set_status("Type a message first.", ok=False)
            return
        self._from_button(
            f"send {_quote(text)}", lambda: self.send(text), lambda: self._clear_input(text)
        )

    def _on_step(self) -> None:
        text = self._input.value if self._pending is None else None
        if text is not None and not text.strip():
            self._set_status("Nothing to step: type a message, or inject a heartbeat.", ok=False)
            return
        self._from_button(
            "step" if text is None else f"step {_quote(text)}",
            lambda: self.step(text),
            (lambda: self._clear_input(text)) if text else None,
        )

    def _on_escape(self) -> None:
        if self.busy:
            self.stop()
        elif self.cancel_pending():
            self._set_status("Dropped the pending step.", ok=True)

    def _on_reset(self) -> None:
        if self.busy:
            self._set_status("Busy: wait for the step under way, or press Stop.", ok=False)
            return
        if not self._confirming_reset:
            self._confirming_reset = True
            button = self._buttons["reset"]
            button.description = "Confirm reset"
            button.button_style = "danger"
            what = "start a fresh agent" if self._factory is not None else "clear the view"
            self._set_status(
                f"Reset will {what}: press Confirm reset; any other action cancels.", ok=False
            )
            return
        self.reset()

    def _cancel_reset(self) -> None:
        if self._confirming_reset:
            self._confirming_reset = False
            self._buttons["reset"].description = "Reset"
            self._buttons["reset"].button_style = ""


class _Action:
    """One console action: frames around it, errors shown (and raised from code), callbacks after."""

    def __init__(
        self,
        console: AgentConsole,
        user_text: str | None,
        *,
        frames: bool = True,
        raise_errors: bool = True,
    ) -> None:
        self.console = console
        self.user_text = user_text
        self.frames = frames
        self.raise_errors = raise_errors

    def __enter__(self) -> None:
        console = self.console
        console._cancel_reset()
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
            # The error goes in the view (a button must never print a traceback) and
            # stays in last_error; code that called send/step gets it raised as well.
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
        return exc is not None and isinstance(exc, Exception) and not self.raise_errors
