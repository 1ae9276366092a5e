"""Lab: the whole testbench in one widget — console, memory, traffic, preset builder.

``Lab()`` as the last expression of a cell gives an agent (the default preset,
persona ``sam_pov``, human ``basic``, the offline scripted model) with four tabs
wired to it and to one :class:`~memgpt_lab.recorder.Recording`:

- Console: an :class:`~memgpt_lab.widgets.AgentConsole`; its traffic is recorded.
- Memory: a :class:`~memgpt_lab.widgets.MemoryView`, refreshed after every action.
- Traffic: a :class:`~memgpt_lab.widgets.TrafficInspector` and a
  :class:`~memgpt_lab.widgets.Timeline` of the recording.
- Preset: a :class:`~memgpt_lab.widgets.PresetBuilder`; creating an agent there
  makes it the Lab's agent (its traffic goes to the same recording, on a new
  connection).
- History: a :class:`~memgpt_lab.widgets.HistoryView` of the agent's checkpoints
  (Rewind, Retry, Fork, a memory diff); a fork opens in the Lab next to its parent.

Above the tabs, an agent switcher lists every agent the Lab has opened (forks
too) and, with ``store=``, every agent in that :class:`~memgpt_lab.persistence.AgentStore`
(``Lab(store="lab.sqlite")`` reopens the last one; agents the Lab makes are saved
there). "Save session" / "Load session" write and read a folder holding the
agent (``agent.json``, from ``agent.export``) and the recording
(``recording.jsonl``); the Traffic tab's "Export traffic" writes the recording as
JSON lines (:meth:`Recording.from_jsonl` reads it back).

Give an existing ``agent`` to inspect it: when it already streams to a
:class:`~memgpt_lab.recorder.MockWebSocket`, the Lab shows that recording.
For notebooks that must print the same thing every run, pass
``clock=FixedClock()`` and an ``agent_id``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from memgpt_lab import system
from memgpt_lab.humans import DEFAULT_HUMAN, get_human_text
from memgpt_lab.personas import DEFAULT_PERSONA, get_persona_text
from memgpt_lab.presets import DEFAULT_PRESET, Preset, create_agent_from_preset
from memgpt_lab.recorder import MockWebSocket, Recording, TickClock
from memgpt_lab.widgets._style import status_html
from memgpt_lab.widgets._util import esc
from memgpt_lab.widgets.builder import PresetBuilder
from memgpt_lab.widgets.console import AgentConsole, _socket_interface
from memgpt_lab.widgets.history import HistoryView
from memgpt_lab.widgets.inspector import TrafficInspector
from memgpt_lab.widgets.memory_view import MemoryView
from memgpt_lab.widgets.timeline import Timeline

if TYPE_CHECKING:
    from memgpt_lab.agent import Agent, AgentConfig
    from memgpt_lab.llm import ChatModel
    from memgpt_lab.persistence import AgentStore

__all__ = ["SESSION_AGENT", "SESSION_RECORDING", "TAB_TITLES", "Lab"]

TAB_TITLES = ("Console", "Memory", "Traffic", "Preset", "History")
#: The files of a saved session, in its folder.
SESSION_AGENT = "agent.json"
SESSION_RECORDING = "recording.jsonl"
#: Epoch seconds of FixedClock's default start, for the wall clock of deterministic recordings.
_FIXED_EPOCH = 1767258000.0


def _recording_of(agent: Agent) -> Recording | None:
    socket = _socket_interface(agent.interface)
    if socket is not None:
        for client in socket.clients:
            if isinstance(client, MockWebSocket):
                return client.recording
    return None


class Lab(widgets.VBox):
    """One agent, its recorder, and every lab widget on it, in tabs.

    Args:
        agent: the agent to use; by default one made from the arguments below.
        preset: the preset for new agents (and the builder's starting point).
        persona / human: names of the texts for new agents.
        recording: where traffic goes; by default the recording the agent
            already streams to, or a new one.
        clock: timestamps of new agents; with a clock, a new recording gets a
            deterministic clock too.
        agent_id: the id of the agents the Lab makes.
        model: a model name or :class:`~memgpt_lab.llm.ChatModel` for new agents.
        config: the :class:`~memgpt_lab.agent.AgentConfig` (or mapping) of new agents.
        store: an :class:`~memgpt_lab.persistence.AgentStore` or the path of one: its
            agents are offered in the switcher, the last one opens when no ``agent``
            is given, and every agent the Lab opens is saved there.

    The console's Reset makes a fresh agent as the current one was made: one built
    in the Preset tab again from the same preset, settings and texts; any other from
    ``preset``, ``persona`` and ``human``. Call :meth:`close` when done.
    """

    def __init__(
        self,
        agent: Agent | None = None,
        preset: str | Preset = DEFAULT_PRESET,
        persona: str = DEFAULT_PERSONA,
        human: str = DEFAULT_HUMAN,
        recording: Recording | None = None,
        clock: system.Clock | None = None,
        *,
        agent_id: str | None = None,
        model: str | ChatModel | None = None,
        config: AgentConfig | dict[str, Any] | None = None,
        store: AgentStore | str | os.PathLike[str] | None = None,
    ) -> None:
        self._preset = preset
        self._persona_text = get_persona_text(persona)
        self._human_text = get_human_text(human)
        self._clock = clock or system.system_clock
        self._agent_id = agent_id
        self._model = model
        self._config = config
        self._agents: dict[str, Agent] = {}
        # how to make a fresh agent like a given one (Reset), for agents the builder made
        self._recipes: dict[str, Callable[[], Agent]] = {}
        self._switching = False
        self._owns_store = False
        self.store: AgentStore | None = None
        if store is not None:
            from memgpt_lab.persistence import AgentStore

            if isinstance(store, AgentStore):
                self.store = store
            else:
                self.store = AgentStore(store, clock=self._clock)
                self._owns_store = True
            if agent is None:
                stored = self.store.list()
                if stored:
                    latest = max(range(len(stored)), key=lambda i: (stored[i].updated_at, i))
                    agent = self._load_stored(stored[latest].id)
        agent = agent if agent is not None else self._new_agent()
        self._keep(agent)
        if recording is None:
            recording = _recording_of(agent)
        if recording is None:
            recording = (
                Recording(clock=TickClock(), wall_clock=TickClock(_FIXED_EPOCH))
                if clock is not None
                else Recording()
            )
        self.console = AgentConsole(agent, recording, factory=self._fresh_agent)
        # The agent's own socket wins over a recording passed in: show what it records.
        if self.console.recording is not None:  # not `or`: an empty Recording is falsy
            recording = self.console.recording
        self.recording = recording
        self.memory = MemoryView(agent)
        self.inspector = TrafficInspector(recording)
        self.timeline = Timeline(recording)
        self.history = HistoryView(console=self.console)
        self.history.on_fork(self.set_agent)
        self.builder = PresetBuilder(
            preset,
            persona,
            human,
            model=model if model is not None else "scripted",
            clock=self._clock,
        )
        self.builder.on_create(self._on_built)
        self.console.on_turn(lambda _console: self._after_action())

        self.switcher = widgets.Dropdown(description="Agent", layout=widgets.Layout(width="auto"))
        self.switcher.add_class("mlab-lab-switcher")
        self.session_path = widgets.Text(
            value="session",
            description="Session",
            placeholder="a folder for agent.json and recording.jsonl",
            layout=widgets.Layout(width="auto"),
        )
        self._buttons: dict[str, widgets.Button] = {}
        for name, label, tip in (
            ("save", "Save session", "Write the agent and the recording to the folder"),
            ("load", "Load session", "Open the agent and the recording saved in the folder"),
            ("export", "Export traffic", "Write the whole recording as JSON lines"),
        ):
            button = widgets.Button(
                description=label, tooltip=tip, layout=widgets.Layout(width="auto")
            )
            button.add_class(f"mlab-lab-{name}")
            self._buttons[name] = button
        self._buttons["save"].on_click(lambda _b: self._on_save())
        self._buttons["load"].on_click(lambda _b: self._on_load())
        self._buttons["export"].on_click(lambda _b: self._on_export())
        self.traffic_path = widgets.Text(
            value="traffic.jsonl", description="File", layout=widgets.Layout(width="auto")
        )
        self._status = widgets.HTML()
        self._status.add_class("mlab-lab-status")
        self._traffic_status = widgets.HTML()
        self._update_switcher()
        self.switcher.observe(self._on_switch, names="value")
        self.console.on_busy(self._on_console_busy)
        self.tabs = widgets.Tab(
            children=[
                self.console,
                self.memory,
                widgets.VBox(
                    [
                        self.inspector,
                        self.timeline,
                        widgets.HBox([self.traffic_path, self._buttons["export"]]),
                        self._traffic_status,
                    ]
                ),
                self.builder,
                self.history,
            ],
            titles=TAB_TITLES,
        )
        super().__init__(
            children=[
                widgets.HBox(
                    [
                        self.switcher,
                        self.session_path,
                        self._buttons["save"],
                        self._buttons["load"],
                    ]
                ),
                self._status,
                self.tabs,
            ]
        )
        self.add_class("mlab-lab")

    def __repr__(self) -> str:
        return f"<Lab agent={self.agent.name!r} frames={len(self.recording)}>"

    @property
    def agent(self) -> Agent:
        """The Lab's agent (the console's)."""
        return self.console.agent

    @property
    def agents(self) -> list[Agent]:
        """The agents the Lab has opened (forks, resets, loaded ones), in order."""
        return list(self._agents.values())

    @property
    def status(self) -> str:
        """The session line's markup (saves, loads, errors)."""
        return str(self._status.value)

    def set_agent(self, agent: Agent) -> None:
        """Make ``agent`` the Lab's agent: the console talks to it, the memory and history
        tabs show it, the switcher lists it (with a store, it is saved there).

        A turn under way (a button's) ends first: this waits for it, up to
        :data:`~memgpt_lab.widgets.console.WAIT_SECONDS`, so its frames all reach the
        recording.

        Raises:
            ConsoleBusyError: the turn still ran after that long.
        """
        self.console.set_agent(agent)
        self._keep(agent)
        self.memory.agent = agent
        self.history.agent = agent
        self._update_switcher()

    def switch_to(self, agent_id: str) -> Agent:
        """Make the agent ``agent_id`` the Lab's agent: one it opened, or one in its store.

        Raises:
            UnknownNameError: no such agent (nor one in the store).
        """
        agent = self._agents.get(agent_id)
        if agent is None:
            if self.store is None:
                from memgpt_lab.errors import UnknownNameError

                raise UnknownNameError("agent", agent_id, sorted(self._agents))
            agent = self._load_stored(agent_id)
        if agent is not self.agent:
            self.set_agent(agent)
        return agent

    def save_session(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the agent (with its history) and the recording to the folder ``path``
        (the Session field by default): ``agent.json`` and ``recording.jsonl``. Returns it."""
        folder = Path(path if path is not None else self.session_path.value).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        self.agent.export(folder / SESSION_AGENT)
        self.recording.to_jsonl(folder / SESSION_RECORDING)
        return folder

    def load_session(self, path: str | os.PathLike[str] | None = None) -> Agent:
        """Open the agent saved in the folder ``path`` (the Session field by default) and
        make it the Lab's agent; the recording's frames replace the Lab's. An agent whose
        id the Lab (or its store) has already gets a new id. Returns the agent.

        Raises:
            StorageError: not a saved session.
        """
        from memgpt_lab.agent import Agent
        from memgpt_lab.persistence.agent_file import read_agent_file

        folder = Path(path if path is not None else self.session_path.value).expanduser()
        agent_path = folder / SESSION_AGENT
        saved_id = str(read_agent_file(agent_path)["agent"].get("id") or "")
        taken = saved_id in self._agents or (self.store is not None and saved_id in self.store)
        agent = Agent.import_file(
            agent_path,
            store=self.store,
            model=self._model,
            clock=self._clock,
            id=uuid.uuid4().hex[:12] if taken else None,
        )
        recording_path = folder / SESSION_RECORDING
        # switch first: it waits for a turn under way, whose frames go to the recording
        self.console.set_agent(agent)
        if recording_path.exists():
            frames = Recording.from_jsonl(recording_path)
            self.recording.clear()
            for frame in frames:
                self.recording.append(frame)
        self.set_agent(agent)
        self.refresh()
        return agent

    def export_traffic(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the whole recording as JSON lines to ``path`` (the Traffic tab's File
        field by default); :meth:`Recording.from_jsonl` reads it back. Returns the path."""
        target = Path(path if path is not None else self.traffic_path.value).expanduser()
        self.recording.to_jsonl(target)
        return target

    def refresh(self) -> None:
        """Bring the memory, history, traffic and timeline tabs up to date."""
        if self.console.agent is not self.memory.agent:  # the console's Reset made a new one
            self._keep(self.console.agent)
            self.memory.agent = self.console.agent
            self._update_switcher()
        else:
            self.memory.refresh()
        self.history.refresh()
        self.inspector.refresh()
        self.timeline.refresh()

    def close(self) -> None:
        """Close every part: the console detaches, the inspector and timeline unsubscribe;
        a store the Lab opened from a path is closed."""
        for part in (
            self.console,
            self.memory,
            self.inspector,
            self.timeline,
            self.builder,
            self.history,
        ):
            part.close()
        for widget in (
            self.tabs,
            self.switcher,
            self.session_path,
            self.traffic_path,
            self._status,
            self._traffic_status,
            *self._buttons.values(),
        ):
            widget.close()
        if self.store is not None and self._owns_store:
            self.store.close()
        super().close()

    def _after_action(self) -> None:
        self.refresh()

    def _on_console_busy(self, busy: bool) -> None:
        # While a turn runs, nothing may swap the agent under it.
        why = "Wait for the turn under way (or press Stop)" if busy else ""
        self.switcher.disabled = busy
        self.switcher.tooltip = why or None
        for name in ("save", "load"):
            self._buttons[name].disabled = busy
        self.builder.allow_create(not busy, why)

    def _on_built(self, agent: Agent) -> None:
        if self.builder.agent_factory is not None:
            self._recipes[agent.id] = self.builder.agent_factory
        self.set_agent(agent)

    def _fresh_agent(self) -> Agent:
        """Reset's agent: one built in the Preset tab is built again; others from the defaults."""
        recipe = self._recipes.get(self.console.agent.id)
        if recipe is None:
            return self._new_agent()
        agent = recipe()
        self._recipes[agent.id] = recipe
        if self.store is not None:
            self.store.save(agent)
        return agent

    def _new_agent(self) -> Agent:
        agent_id = self._agent_id
        if agent_id is not None and self.store is not None and agent_id in self.store:
            agent_id = None  # the store keeps the first one: a fresh id (without, Reset replaces)
        agent = create_agent_from_preset(
            self._preset,
            self._config,
            self._model,
            self._persona_text,
            self._human_text,
            clock=self._clock,
            id=agent_id,
        )
        if self.store is not None:
            self.store.save(agent)
        return agent

    def _load_stored(self, agent_id: str) -> Agent:
        assert self.store is not None
        agent = self.store.load(agent_id, model=self._model, clock=self._clock)
        self._agents[agent.id] = agent
        return agent

    def _keep(self, agent: Agent) -> None:
        """Remember ``agent`` for the switcher; with a store, keep it there."""
        if self.store is not None and agent.persistence_manager.database is not self.store.database:
            self.store.save(agent)
        self._agents[agent.id] = agent

    def _update_switcher(self) -> None:
        options = [(f"{a.name} · {a.id}", a.id) for a in self._agents.values()]
        if self.store is not None:
            options += [
                (f"{s.name} · {s.id} (stored)", s.id)
                for s in self.store.list()
                if s.id not in self._agents
            ]
        self._switching = True
        try:
            self.switcher.options = options
            self.switcher.value = self.agent.id
        finally:
            self._switching = False

    def _on_switch(self, change: dict[str, Any]) -> None:
        if self._switching or not change["new"]:
            return
        try:
            agent = self.switch_to(change["new"])
        except Exception as exc:  # the user chose it: say what went wrong, keep the Lab
            self._set_status(f"Could not open the agent: {type(exc).__name__}: {exc}", ok=False)
            return
        self._set_status(f"Switched to {agent.name!r}.", ok=True)

    def _on_save(self) -> None:
        try:
            folder = self.save_session()
        except Exception as exc:
            self._set_status(f"Could not save the session: {type(exc).__name__}: {exc}", ok=False)
            return
        self._set_status(f"Saved the session to {folder}.", ok=True)

    def _on_load(self) -> None:
        try:
            agent = self.load_session()
        except Exception as exc:
            self._set_status(f"Could not load the session: {type(exc).__name__}: {exc}", ok=False)
            return
        self._set_status(f"Loaded {agent.name!r} and {len(self.recording)} frames.", ok=True)

    def _on_export(self) -> None:
        try:
            target = self.export_traffic()
        except Exception as exc:
            self._traffic_status.value = status_html(
                esc(f"Could not export the traffic: {type(exc).__name__}: {exc}"), False
            )
            return
        self._traffic_status.value = status_html(
            esc(f"Wrote {len(self.recording)} frames to {target}."), True
        )

    def _set_status(self, message: str, ok: bool) -> None:
        self._status.value = status_html(esc(message), ok)
