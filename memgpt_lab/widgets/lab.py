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

Give an existing ``agent`` to inspect it: when it already streams to a
:class:`~memgpt_lab.recorder.MockWebSocket`, the Lab shows that recording.
For notebooks that must print the same thing every run, pass
``clock=FixedClock()`` and an ``agent_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from memgpt_lab import system
from memgpt_lab.humans import DEFAULT_HUMAN, get_human_text
from memgpt_lab.personas import DEFAULT_PERSONA, get_persona_text
from memgpt_lab.presets import DEFAULT_PRESET, Preset, create_agent_from_preset
from memgpt_lab.recorder import MockWebSocket, Recording, TickClock
from memgpt_lab.widgets.builder import PresetBuilder
from memgpt_lab.widgets.console import AgentConsole, _socket_interface
from memgpt_lab.widgets.inspector import TrafficInspector
from memgpt_lab.widgets.memory_view import MemoryView
from memgpt_lab.widgets.timeline import Timeline

if TYPE_CHECKING:
    from memgpt_lab.agent import Agent, AgentConfig
    from memgpt_lab.llm import ChatModel

__all__ = ["Lab", "TAB_TITLES"]

TAB_TITLES = ("Console", "Memory", "Traffic", "Preset")
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

    The console's Reset makes a fresh agent from ``preset``, ``persona`` and
    ``human``. Call :meth:`close` when done.
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
    ) -> None:
        self._preset = preset
        self._persona_text = get_persona_text(persona)
        self._human_text = get_human_text(human)
        self._clock = clock or system.system_clock
        self._agent_id = agent_id
        self._model = model
        self._config = config
        agent = agent if agent is not None else self._new_agent()
        if recording is None:
            recording = _recording_of(agent)
        if recording is None:
            recording = (
                Recording(clock=TickClock(), wall_clock=TickClock(_FIXED_EPOCH))
                if clock is not None
                else Recording()
            )
        self.console = AgentConsole(agent, recording, factory=self._new_agent)
        # The agent's own socket wins over a recording passed in: show what it records.
        if self.console.recording is not None:  # not `or`: an empty Recording is falsy
            recording = self.console.recording
        self.recording = recording
        self.memory = MemoryView(agent)
        self.inspector = TrafficInspector(recording)
        self.timeline = Timeline(recording)
        self.builder = PresetBuilder(
            preset,
            persona,
            human,
            model=model if model is not None else "scripted",
            clock=self._clock,
        )
        self.builder.on_create(self.set_agent)
        self.console.on_turn(lambda _console: self._after_action())
        self.tabs = widgets.Tab(
            children=[
                self.console,
                self.memory,
                widgets.VBox([self.inspector, self.timeline]),
                self.builder,
            ],
            titles=TAB_TITLES,
        )
        super().__init__(children=[self.tabs])
        self.add_class("mlab-lab")

    def __repr__(self) -> str:
        return f"<Lab agent={self.agent.name!r} frames={len(self.recording)}>"

    @property
    def agent(self) -> Agent:
        """The Lab's agent (the console's)."""
        return self.console.agent

    def set_agent(self, agent: Agent) -> None:
        """Make ``agent`` the Lab's agent: the console talks to it, the memory tab shows it."""
        self.console.set_agent(agent)
        self.memory.agent = agent

    def refresh(self) -> None:
        """Bring the memory, traffic and timeline tabs up to date."""
        if self.memory.agent is not self.console.agent:  # the console's Reset made a new one
            self.memory.agent = self.console.agent
        else:
            self.memory.refresh()
        self.inspector.refresh()
        self.timeline.refresh()

    def close(self) -> None:
        """Close every part: the console detaches, the inspector and timeline unsubscribe."""
        for part in (self.console, self.memory, self.inspector, self.timeline, self.builder):
            part.close()
        self.tabs.close()
        super().close()

    def _after_action(self) -> None:
        self.refresh()

    def _new_agent(self) -> Agent:
        return create_agent_from_preset(
            self._preset,
            self._config,
            self._model,
            self._persona_text,
            self._human_text,
            clock=self._clock,
            id=self._agent_id,
        )
