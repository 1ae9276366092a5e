"""The agent loop: one ``step()`` at a time, heartbeats chaining steps into a turn.

A step sends the in-context messages (system message first, rebuilt with
core memory) and the function schemas to the model, then acts on its answer:
the content is the inner monologue, the function call is run, and its result
goes back into the context as a function message. The interface sees every
event in order; for a ``send_message`` step::

    internal_monologue -> function_message("Running send_message(...)")
        -> assistant_message -> function_message("Success: None")

A model's mistakes never crash the agent: an unknown function, arguments that
are not JSON, or a function that raises each become a failed function
response and a forced heartbeat, so the model can recover on the next step.

:meth:`Agent.turn` runs a whole turn: the user's message, then heartbeats for
as long as the model asks for them (or a function failed), up to a bound.

Every step is one SQLite transaction and makes a checkpoint (see
:mod:`memgpt_lab.persistence`): :meth:`Agent.checkpoints` lists them,
:meth:`Agent.rewind` goes back to one (memory edits made since are undone),
:meth:`Agent.retry` runs the last user message again, :meth:`Agent.fork` makes a
second agent from a checkpoint, so that two answers can be compared.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from memgpt_lab import _json, system
from memgpt_lab.errors import LLMError, NothingToRetryError
from memgpt_lab.functions import FunctionSpec, resolve_functions
from memgpt_lab.interface import AgentInterface
from memgpt_lab.llm.base import (
    ChatModel,
    ContextWindowExceededError,
    TokenEstimator,
    estimate_tokens,
    get_model,
)
from memgpt_lab.llm.scripted import SUMMARY_REQUEST_MARKER
from memgpt_lab.memory import CoreMemory, Embedder
from memgpt_lab.messages import function_call_of, sent_text, user_packet
from memgpt_lab.persistence.database import Database, StorageError, clean_text, to_json
from memgpt_lab.persistence.manager import Checkpoint, StateManager

if TYPE_CHECKING:
    from memgpt_lab.persistence.store import AgentStore

__all__ = ["Agent", "AgentConfig", "ModelCall", "StepResult", "TurnResult"]

log = logging.getLogger(__name__)

Message = dict[str, Any]

SUMMARY_PROMPT = (
    f"{SUMMARY_REQUEST_MARKER} You are summarising the older part of a conversation between "
    "an AI companion and a user so that it can leave the context window. Write a short summary "
    "in the first person, from the companion's side: who the user is, what was said, and "
    "anything worth keeping. Answer with the summary only."
)


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "float": (int, float),
}


@dataclass
class AgentConfig:
    """Settings of one agent. All have defaults; unknown keys are an error.

    Attributes:
        name: a human-readable name.
        context_window: tokens the model can see at once.
        persona_char_limit / human_char_limit: core memory block limits.
        max_chain_steps: most steps :meth:`Agent.turn` runs for one message.
        warning_fraction: share of the window above which a step reports memory pressure.
        keep_last_messages: messages left in context when summarising.
        function_result_char_limit: longer function results are cut, as MemGPT did.
        first_message_attempts: tries to get a valid first reply unless skip_verify.
    """

    name: str = "agent"
    context_window: int = 8192
    persona_char_limit: int = 2000
    human_char_limit: int = 2000
    max_chain_steps: int = 10
    warning_fraction: float = 0.75
    keep_last_messages: int = 6
    function_result_char_limit: int = 3000
    first_message_attempts: int = 3

    def __post_init__(self) -> None:
        # configs arrive as JSON from servers and notebooks: say which field has the wrong type
        # rather than fail on a comparison below (bool is an int to Python, not to a user)
        for spec in fields(self):
            value = getattr(self, spec.name)
            expected = _FIELD_TYPES[str(spec.type)]
            if isinstance(value, bool) or not isinstance(value, expected):
                raise TypeError(f"{spec.name} must be {spec.type}, not {type(value).__name__}")
        if self.context_window < 256:
            raise ValueError(
                f"context_window must be at least 256 tokens, not {self.context_window}"
            )
        if not 0 < self.warning_fraction < 1:
            raise ValueError(
                f"warning_fraction must be between 0 and 1, not {self.warning_fraction}"
            )
        for name in (
            "persona_char_limit",
            "human_char_limit",
            "max_chain_steps",
            "keep_last_messages",
            "function_result_char_limit",
            "first_message_attempts",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be 1 or more, not {getattr(self, name)}")

    @classmethod
    def from_any(cls, value: AgentConfig | Mapping[str, Any] | Any | None) -> AgentConfig:
        """An AgentConfig from None, a mapping, another AgentConfig, or an object with attributes."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        known = {f.name for f in fields(cls)}
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - known)
            if unknown:
                raise ValueError(
                    f"unknown agent config key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
                )
            return cls(**dict(value))
        return cls(**{k: getattr(value, k) for k in known if hasattr(value, k)})


class StepResult(NamedTuple):
    """What :meth:`Agent.step` returns; unpacks like MemGPT's four-tuple."""

    messages: list[Message]
    heartbeat_request: bool
    function_failed: bool
    token_warning: bool


@dataclass
class TurnResult:
    """A whole turn: its steps in order, and whether the chain hit its bound."""

    steps: list[StepResult] = field(default_factory=list)
    truncated: bool = False

    @property
    def messages(self) -> list[Message]:
        return [m for step in self.steps for m in step.messages]

    @property
    def replies(self) -> list[str]:
        """What the agent said to the user (its ``send_message`` calls), in order."""
        return [text for m in self.messages if (text := sent_text(m)) is not None]


@dataclass(frozen=True)
class ModelCall:
    """What the last model call of a step was: who answered, how long it took, its prompt size.

    Attributes:
        model: the model name the answer carries (the server's), else the backend's name.
        latency: seconds from request to answer, retries and summarising included.
        estimated_prompt_tokens: this package's estimate of the prompt.
        reported_prompt_tokens: the server's count (``usage.prompt_tokens``), or None
            when the answer came from an offline model, whose counts are estimates.
    """

    model: str
    latency: float
    estimated_prompt_tokens: int
    reported_prompt_tokens: int | None


_CONFIG_FIELDS = tuple(f.name for f in fields(AgentConfig))


#: The name a malformed call is kept under in the history.
MALFORMED_CALL = "malformed_call"


def _malformed_call(message: Mapping[str, Any]) -> Any:
    """The offending value when the message's call is not an object with a name, else None."""
    call = message.get("function_call")
    tool_calls = message.get("tool_calls")
    if call is None and tool_calls is not None:
        if not isinstance(tool_calls, list):
            return tool_calls
        if not tool_calls:
            return None
        call = (
            tool_calls[0].get("function") if isinstance(tool_calls[0], Mapping) else tool_calls[0]
        )
        if call is None:
            return tool_calls[0]
    if call is None:
        return None
    if not isinstance(call, Mapping):
        return call
    name = call.get("name")
    return None if isinstance(name, str) and name else dict(call)


def _heartbeat_flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


class Agent:
    """A MemGPT-style agent. Build one with :func:`memgpt_lab.presets.create_agent_from_preset`.

    Args:
        model: a :class:`~memgpt_lab.llm.ChatModel` or a model name (``"scripted"``).
        system_prompt: the instructions that open the system message.
        functions: names, functions or :class:`FunctionSpec` the model may call.
        persona / human: the texts of the two core memory blocks.
        interface: the observer of every event (a no-op one by default).
        persistence_manager: where messages, memories and checkpoints live: a
            :class:`~memgpt_lab.persistence.StateManager` (a private in-memory
            database by default; :meth:`AgentStore.save` moves the agent to a file).
        config: an :class:`AgentConfig`, a mapping of its fields, or None.
        clock: the source of timestamps; a :class:`~memgpt_lab.system.FixedClock`
            makes every message the same on every run.
        id: the agent's id; a random one by default.
        preset_name: the preset the agent was made from, for display.
    """

    def __init__(
        self,
        model: ChatModel | str | None,
        system_prompt: str,
        functions: Sequence[str | FunctionSpec | Any],
        persona: str,
        human: str,
        interface: AgentInterface | None = None,
        persistence_manager: StateManager | None = None,
        config: AgentConfig | Mapping[str, Any] | None = None,
        clock: system.Clock = system.system_clock,
        id: str | None = None,
        preset_name: str | None = None,
    ) -> None:
        self.config = AgentConfig.from_any(config)
        self.model = get_model(model)
        self.system_prompt = system_prompt
        self.functions: dict[str, FunctionSpec] = resolve_functions(functions)
        self.memory = CoreMemory(
            persona, human, self.config.persona_char_limit, self.config.human_char_limit
        )
        self.interface = interface if interface is not None else AgentInterface()
        self.clock = clock
        self.id = id or uuid.uuid4().hex[:12]
        self.name = self.config.name
        self.preset_name = preset_name
        self.last_usage: dict[str, int] = {}
        self.last_call: ModelCall | None = None
        self._message_tokens = TokenEstimator()
        self._schema_cache: tuple[tuple[str, ...], list[dict[str, Any]], int] = ((), [], 0)
        self._lock = threading.RLock()
        self._definition_cache: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self.persistence_manager = (
            persistence_manager if persistence_manager is not None else StateManager()
        )
        self.persistence_manager.attach(self)  # stores a new agent, or reads a stored one
        self.rebuild_memory()

    def __repr__(self) -> str:
        return (
            f"Agent(id={self.id!r}, name={self.name!r}, preset={self.preset_name!r}, "
            f"model={self.model.name!r}, messages={len(self.messages)})"
        )

    # --- state ----------------------------------------------------------------

    @property
    def summaries(self) -> int:
        """How many times older messages were summarised out of the context."""
        return int(self.persistence_manager.counters["summaries"])

    @summaries.setter
    def summaries(self, value: int) -> None:
        self.persistence_manager.set_counter("summaries", value)

    @property
    def alerted_about_memory_pressure(self) -> bool:
        """The memory-pressure warning was sent (once per full context)."""
        return bool(self.persistence_manager.counters["alerted_about_memory_pressure"])

    @alerted_about_memory_pressure.setter
    def alerted_about_memory_pressure(self, value: bool) -> None:
        self.persistence_manager.set_counter("alerted_about_memory_pressure", value)

    @property
    def heartbeats_paused_minutes(self) -> int:
        """Minutes of timed heartbeats paused by ``pause_heartbeats``."""
        return int(self.persistence_manager.counters["heartbeats_paused_minutes"])

    @heartbeats_paused_minutes.setter
    def heartbeats_paused_minutes(self, value: int) -> None:
        self.persistence_manager.set_counter("heartbeats_paused_minutes", value)

    @property
    def messages(self) -> list[Message]:
        """The in-context messages, the system message (with core memory) first."""
        return self.persistence_manager.messages

    @property
    def recall_memory(self) -> Any:
        return self.persistence_manager.recall_memory

    @property
    def archival_memory(self) -> Any:
        return self.persistence_manager.archival_memory

    @property
    def function_schemas(self) -> list[dict[str, Any]]:
        return list(self._schemas_and_tokens()[0])

    def _schemas_and_tokens(self) -> tuple[list[dict[str, Any]], int]:
        """The schemas sent with every call, and their size; remeasured when ``functions`` change."""
        key = tuple(self.functions)
        if self._schema_cache[0] != key:
            schemas = [spec.schema for spec in self.functions.values()]
            self._schema_cache = (key, schemas, estimate_tokens(schemas))
        return self._schema_cache[1], self._schema_cache[2]

    def now(self) -> datetime:
        return self.clock()

    def rebuild_memory(self) -> None:
        """Rewrite the system message from the prompt and the current memories."""
        self.persistence_manager.swap_system_message(
            {"role": "system", "content": f"{self.system_prompt}\n\n{self._memory_section()}"}
        )

    def _memory_section(self) -> str:
        return (
            "### Memory\n"
            f"{len(self.recall_memory)} earlier messages are in recall memory "
            "(search them with conversation_search).\n"
            f"{len(self.archival_memory)} passages are in archival memory "
            "(search them with archival_memory_search).\n\n"
            "Core memory (always in view, limited in size):\n"
            f"{self.memory.render()}"
        )

    def context_breakdown(self) -> dict[str, int]:
        """Estimated tokens by section of the context window, and the window itself."""
        system_tokens = estimate_tokens(self.system_prompt)
        core_tokens = estimate_tokens(self.memory.render())
        message_tokens = self._message_tokens(self.messages[1:])
        function_tokens = self._schemas_and_tokens()[1]
        return {
            "system": system_tokens,
            "core_memory": core_tokens,
            "messages": message_tokens,
            "functions": function_tokens,
            "total": system_tokens + core_tokens + message_tokens + function_tokens,
            "window": self.config.context_window,
        }

    def memory_snapshot(self) -> dict[str, Any]:
        """A JSON-able view of the agent's memory, for servers and widgets."""
        return {
            "id": self.id,
            "name": self.name,
            "preset": self.preset_name,
            "core_memory": dict(self.memory.blocks),
            "core_memory_limits": dict(self.memory.limits),
            "recall_count": len(self.recall_memory),
            "archival_count": len(self.archival_memory),
            "in_context_messages": len(self.messages),
            "context": self.context_breakdown(),
            "usage": self._usage_view(),
            "config": asdict(self.config),
        }

    def _usage_view(self) -> dict[str, Any]:
        call = self.last_call
        if call is None:
            return {"model": None, "prompt_tokens_estimated": None, "prompt_tokens_reported": None}
        return {
            "model": call.model,
            "prompt_tokens_estimated": call.estimated_prompt_tokens,
            "prompt_tokens_reported": call.reported_prompt_tokens,
        }

    # --- stepping -------------------------------------------------------------

    def step(
        self,
        user_message: str | Message | None,
        first_message: bool = False,
        skip_verify: bool = False,
    ) -> StepResult:
        """Run one step: one model call, and the function it asks for.

        Args:
            user_message: a packaged JSON text (see :mod:`memgpt_lab.system`), a plain
                text (packaged as a user message), a message dict, or None to let the
                model continue without a new message.
            first_message: the first message of a conversation; unless ``skip_verify``,
                replies that do not speak to the user are retried.
            skip_verify: do not check the first reply.

        Returns:
            ``(new_messages, heartbeat_request, function_failed, token_warning)``.

        Raises:
            LLMError: the model failed (cannot connect, refused, overflowed even
                after summarising...). The agent is then as it was before the step:
                its messages, memory and counters are untouched.
        """
        with self._lock:
            # one transaction: if anything raises (a model that failed, an observer), it
            # rolls back and the agent is read back as it was before the step
            with self.persistence_manager.change(step=True) as change:
                new: list[Message] = []
                message: Message | None = None
                if user_message is not None:
                    message = self._as_message(user_message)
                    self.interface.user_message(str(message.get("content")), message)
                    new.append(message)
                response = self._complete(new, verify=first_message and not skip_verify)
                produced, heartbeat_request, function_failed = self._handle_response(response)
                new.extend(produced)
                self.persistence_manager.append_to_messages(new, self.now())
                self.rebuild_memory()
                change.label, change.continues = _step_label(message, produced)
            total = int(self.last_usage.get("total_tokens", 0))
            token_warning = total > self.config.warning_fraction * self.config.context_window
            self.interface.step_done()  # the step is stored: hand its events over
            return StepResult(new, heartbeat_request, function_failed, token_warning)

    def turn(
        self,
        message: str,
        *,
        name: str | None = None,
        max_steps: int | None = None,
        skip_verify: bool = True,
    ) -> TurnResult:
        """Run a whole turn for a user's message: step, then chain heartbeats.

        The chain goes on while the model requests a heartbeat or a function
        failed; a memory-pressure warning is sent once, the first time a step
        reports it. At most ``max_steps`` (``config.max_chain_steps``) steps run;
        ``TurnResult.truncated`` says the bound cut the chain. With
        ``skip_verify=False`` the reply to the conversation's first message is
        checked (and retried) as :meth:`step` does.
        """
        with self._lock:
            first = not any(m.get("role") == "assistant" for m in self.messages)
            packaged = system.package_user_message(message, self.now(), name)
            return self.run_chain(packaged, first, max_steps, skip_verify)

    def run_chain(
        self,
        first_input: str | Message | None,
        first_message: bool = False,
        max_steps: int | None = None,
        skip_verify: bool = True,
    ) -> TurnResult:
        """Step with ``first_input``, then keep stepping with heartbeats as :meth:`turn` does.

        ``skip_verify=False`` checks the first reply of a first message (see :meth:`step`).
        """
        limit = max_steps or self.config.max_chain_steps
        result = TurnResult()
        next_input: str | Message | None = first_input
        with self._lock:  # one chain at a time: another thread's turn waits, never interleaves
            for index in range(limit):
                step = self.step(
                    next_input, first_message=first_message and index == 0, skip_verify=skip_verify
                )
                result.steps.append(step)
                next_input = self.next_chain_input(step)
                if next_input is None:
                    return result
        result.truncated = True
        return result

    def next_chain_input(self, step: StepResult) -> str | None:
        """What continues the chain after ``step``, or None when the chain ends.

        In order: the memory-pressure warning (once, the first time a step reports
        it; this marks the agent as alerted), a heartbeat after a failed function,
        a heartbeat the model asked for. :meth:`run_chain` and the notebook console's
        single-step button both use it.
        """
        if step.token_warning and not self.alerted_about_memory_pressure:
            self.alerted_about_memory_pressure = True
            return system.get_token_limit_warning(self.now())
        if step.function_failed:
            return system.get_heartbeat(system.FUNC_FAILED_HEARTBEAT_MESSAGE, self.now())
        if step.heartbeat_request:
            return system.get_heartbeat(system.REQ_HEARTBEAT_MESSAGE, self.now())
        return None

    def login(self, last_login: str = "Never (first login)") -> TurnResult:
        """Tell the agent the user has logged in, and run the turn that follows."""
        return self.run_chain(system.get_login_event(last_login, self.now()))

    def heartbeat(self, reason: str = "Automated timer") -> StepResult:
        """One step on a heartbeat (a chance to think without a user message)."""
        return self.step(system.get_heartbeat(reason, self.now()))

    def memory_pressure_warning(self) -> StepResult:
        """One step on the memory-pressure alert, as if the context were nearly full."""
        return self.step(system.get_token_limit_warning(self.now()))

    # --- history: checkpoints, rewind, retry, fork --------------------------------

    @property
    def checkpoint_id(self) -> str | None:
        """The current checkpoint: the state after the last step (or change) stored."""
        return self.persistence_manager.checkpoint_id

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint of the agent, oldest first: one per step, on every branch
        (rewinding keeps the later ones), and a fork's source's up to the fork."""
        return self.persistence_manager.checkpoints()

    def rewind(self, checkpoint_id: str) -> None:
        """Go back to ``checkpoint_id``: core memory, in-context messages, recall and
        archival memory and counters exactly as they were then (memory edits made since
        are undone). The later checkpoints stay reachable as a branch until :meth:`prune`.

        Raises:
            UnknownCheckpointError: not a checkpoint of this agent's history.
        """
        with self._lock:
            self.persistence_manager.rewind(checkpoint_id)

    def retry(self, *, max_steps: int | None = None, skip_verify: bool = True) -> TurnResult:
        """Rewind to before the last user message and run it again (the same message).

        The first answer stays in :meth:`checkpoints` as a branch, for comparison.

        Raises:
            ValueError: no user message in the agent's history.
        """
        with self._lock:
            found = self.persistence_manager.last_user_step()
            if found is None:
                raise NothingToRetryError(
                    f"nothing to retry: agent {self.id!r} has no user message yet"
                )
            parent, message = found
            self.rewind(parent)
            first = not any(m.get("role") == "assistant" for m in self.messages)
            return self.run_chain(message, first, max_steps, skip_verify)

    def fork(
        self,
        checkpoint_id: str | None = None,
        name: str | None = None,
        *,
        interface: AgentInterface | None = None,
        model: ChatModel | str | None = None,
        id: str | None = None,
    ) -> Agent:
        """A new agent whose history is this one's up to ``checkpoint_id`` (now, by
        default), in the same store: step both to compare two ways of answering.

        Args:
            checkpoint_id: where the fork starts; the current checkpoint by default.
            name: the fork's name; ``"<name>-fork"`` by default.
            interface: the fork's observer (a silent one by default).
            model: the fork's model; this agent's model object by default (shared: a
                :class:`~memgpt_lab.llm.ReplayModel` then plays on for both).
            id: the fork's id; a random one by default.

        Raises:
            UnknownCheckpointError: not a checkpoint of this agent's history.
        """
        with self._lock:
            new_id = id or uuid.uuid4().hex[:12]
            config = dataclasses.replace(self.config, name=name or f"{self.name}-fork")
            definition = {
                **self._definition(),
                "name": config.name,
                "config": to_json(asdict(config)),
            }
            manager = self.persistence_manager.fork(checkpoint_id, new_id, definition)
            return Agent._from_manager(
                manager,
                interface=interface,
                model=model if model is not None else self.model,
                clock=self.clock,
            )

    def prune(self) -> int:
        """Delete the checkpoints not on the way to the current one (abandoned branches)
        and what only they held; a fork's history is kept. Returns how many went."""
        with self._lock:
            return self.persistence_manager.prune()

    # --- agent files ----------------------------------------------------------------

    def export(
        self, path: str | os.PathLike[str], *, checkpoints: bool = True, format: str | None = None
    ) -> Path:
        """Write the agent to one JSON file; returns its path.

        Args:
            path: the file. A ``.af`` name writes Letta's Agent File, others ours.
            checkpoints: ours only: include every checkpoint and branch (the history),
                or only the current state.
            format: ``"memgpt-lab"`` or ``"letta"``, overriding the file name.
        """
        from memgpt_lab.persistence import agent_file

        chosen = format or ("letta" if os.fspath(path).endswith(".af") else "memgpt-lab")
        if chosen not in ("memgpt-lab", "letta"):
            raise ValueError(f"format must be 'memgpt-lab' or 'letta', not {format!r}")
        with self._lock:
            manager = self.persistence_manager
            manager.sync_definition()
            assert manager.agent_id is not None
            data = agent_file.dump_agent(
                manager.database, manager.agent_id, checkpoints=checkpoints and chosen != "letta"
            )
            if chosen == "letta":
                system_message = str(self.messages[0].get("content") or "")
                return agent_file.write_agent_file(
                    path, agent_file.to_letta(data, system_message, self.function_schemas)
                )
        return agent_file.write_agent_file(path, data)

    @classmethod
    def import_file(
        cls,
        path: str | os.PathLike[str],
        *,
        store: AgentStore | None = None,
        interface: AgentInterface | None = None,
        model: ChatModel | str | None = None,
        clock: system.Clock = system.system_clock,
        embed: Embedder | None = None,
        id: str | None = None,
    ) -> Agent:
        """An agent read from a file :meth:`export` wrote, or from Letta's ``.af``.

        Args:
            path: the file.
            store: where to keep it (then saved there); in memory by default.
            interface: its observer.
            model: its model; by default the file's model string.
            clock: timestamps from now on.
            embed: the embedding function, if it used one.
            id: its id; the file's by default (refused if the store has it already).

        Raises:
            StorageError: not an agent file, from a newer release, an id the store has,
                or a model that cannot be rebuilt from the file and no ``model``.
        """
        from memgpt_lab.persistence import agent_file

        data = agent_file.read_agent_file(path)
        if model is None and not data["agent"].get("model"):
            raise StorageError(
                f"{os.fspath(path)}: the agent's model {data['agent'].get('model_name')!r} "
                'cannot be rebuilt from the file; pass model= ("scripted" works offline)'
            )
        database = store.database if store is not None else Database(":memory:")
        agent_id = agent_file.restore_agent(database, data, agent_id=id)
        manager = StateManager.stored(database, agent_id, embed=embed)
        return cls._from_manager(manager, interface=interface, model=model, clock=clock)

    @classmethod
    def _from_manager(
        cls,
        manager: StateManager,
        *,
        interface: AgentInterface | None,
        model: ChatModel | str | None,
        clock: system.Clock,
    ) -> Agent:
        """The agent stored under ``manager.agent_id``, read back."""
        with manager.database.read() as conn:
            row = conn.execute(
                "SELECT name, preset_name, system_prompt, config, functions, model, model_name, "
                "core FROM agents WHERE id = ?",
                (manager.agent_id,),
            ).fetchone()
        if row is None:
            raise StorageError(f"the store holds no agent {manager.agent_id!r}")
        name, preset_name, system_prompt, config, functions, model_text, model_name, core = row
        if model is None:
            if model_text is None:
                raise StorageError(
                    f"agent {manager.agent_id!r} was saved with model {model_name!r}, which "
                    "cannot be rebuilt from a model string; pass model="
                )
            model = model_text
        blocks = json.loads(core)
        agent = cls(
            model,
            system_prompt,
            json.loads(functions),
            blocks.get("persona", ""),
            blocks.get("human", ""),
            interface=interface,
            persistence_manager=manager,
            config=AgentConfig.from_any(json.loads(config)),
            clock=clock,
            id=manager.agent_id,
            preset_name=preset_name,
        )
        agent.name = name
        return agent

    # --- what the store keeps ---------------------------------------------------------

    def _definition(self) -> dict[str, Any]:
        """What the agent is, as its row stores it (in the row's column order)."""
        embed = self.persistence_manager.embed
        config = self.config
        key = (
            self.name,
            self.preset_name,
            self.system_prompt,
            config,
            tuple(getattr(config, name) for name in _CONFIG_FIELDS),
            tuple(self.functions),
            self.model,
            getattr(self.model, "name", None),
            embed,
        )
        cached = self._definition_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        definition = {
            "name": clean_text(str(self.name)),
            "preset_name": self.preset_name,
            "system_prompt": clean_text(self.system_prompt),
            "config": to_json(asdict(self.config)),
            "functions": to_json(list(self.functions)),
            "model": model_string(self.model),
            "model_name": clean_text(str(getattr(self.model, "name", type(self.model).__name__))),
            "embedding": None
            if embed is None
            else str(getattr(embed, "name", None) or getattr(embed, "__qualname__", "embedder")),
        }
        self._definition_cache = (key, definition)
        return definition

    def _usage_state(self) -> dict[str, Any] | None:
        call = self.last_call
        if call is None and not self.last_usage:
            return None
        return {
            "usage": self.last_usage,
            "call": None
            if call is None
            else {
                "model": call.model,
                "latency": call.latency,
                "estimated_prompt_tokens": call.estimated_prompt_tokens,
                "reported_prompt_tokens": call.reported_prompt_tokens,
            },
        }

    def _set_usage_state(self, state: dict[str, Any] | None) -> None:
        self.last_usage = dict(state["usage"]) if state else {}
        call = state.get("call") if state else None
        self.last_call = ModelCall(**call) if call else None

    def _after_reload(self) -> None:
        """The store put the agent back (a failed step, a rewind): rebuild what derives."""
        self.rebuild_memory()

    def _rebind(self, manager: StateManager) -> None:
        """Move to another store's manager (:meth:`AgentStore.save`)."""
        with self._lock:
            self.persistence_manager = manager
            manager.attach(self)
            self.rebuild_memory()

    def _as_message(self, user_message: str | Message) -> Message:
        if isinstance(user_message, dict):
            if "role" not in user_message:
                raise ValueError("a message dict needs a 'role'")
            return dict(user_message)
        if not isinstance(user_message, str):
            raise TypeError(
                f"user_message must be str, dict or None, not {type(user_message).__name__}"
            )
        try:
            packet = _json.loads(user_message, max_depth=_json.MAX_DEPTH)
        except ValueError:
            packet = None
        if not isinstance(packet, dict) or "type" not in packet:
            user_message = system.package_user_message(user_message, self.now())
        return {"role": "user", "content": user_message}

    def _complete(self, new: list[Message], verify: bool) -> dict[str, Any]:
        """Call the model, summarising first (or after an overflow) when the context is full."""
        window = self.config.context_window
        schemas, schema_tokens = self._schemas_and_tokens()
        attempts = self.config.first_message_attempts if verify else 1
        started = time.perf_counter()
        for attempt in range(1, attempts + 1):
            needed = self._message_tokens([*self.messages, *new]) + schema_tokens
            while needed > window:
                self.summarize_messages_inplace()
                before = needed
                needed = self._message_tokens([*self.messages, *new]) + schema_tokens
                if needed >= before:
                    raise LLMError(
                        f"the context needs ~{needed} tokens and summarising frees no more; "
                        f"raise context_window ({window}) or lower keep_last_messages"
                    )
            try:
                response = self.model.chat([*self.messages, *new], schemas)
            except ContextWindowExceededError as exc:
                log.warning("%s; summarising and trying once more", exc)
                self.summarize_messages_inplace()
                needed = self._message_tokens([*self.messages, *new]) + schema_tokens
                response = self.model.chat([*self.messages, *new], schemas)
            message = self._response_message(response)
            if not verify or self._valid_first_reply(message):
                break
            log.warning(
                "first reply did not speak to the user (attempt %d of %d)", attempt, attempts
            )
        usage = response.get("usage") or {}
        self.last_usage = {
            k: int(v)
            for k, v in usage.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        reported = self.last_usage.get("prompt_tokens")
        self.last_call = ModelCall(
            model=str(response.get("model") or self.model.name),
            latency=time.perf_counter() - started,
            estimated_prompt_tokens=needed,
            reported_prompt_tokens=None if response.get("usage_estimated") else reported,
        )
        return response

    @staticmethod
    def _response_message(response: Mapping[str, Any]) -> Message:
        try:
            message = response["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(
                f"the model's response has no choices[0].message: {response!r:.300}"
            ) from None
        if not isinstance(message, dict):
            raise LLMError(f"the model's message is not an object: {message!r:.300}")
        return message

    def _valid_first_reply(self, message: Message) -> bool:
        call = function_call_of(message)
        return (
            bool(message.get("content")) and call is not None and call.get("name") == "send_message"
        )

    def _handle_response(self, response: Mapping[str, Any]) -> tuple[list[Message], bool, bool]:
        """Act on the model's message: (new messages, heartbeat requested, function failed)."""
        message = self._response_message(response)
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False, default=repr)
        assistant: Message = {"role": "assistant", "content": content}
        shape = _malformed_call(message)
        if shape is not None:
            # a model's malformed call (a name where an object belongs...) is its mistake; the
            # history keeps a call every server accepts, so later requests stay valid
            assistant["function_call"] = {
                "name": MALFORMED_CALL,
                "arguments": json.dumps(shape, ensure_ascii=False, default=repr),
            }
            if content:
                self.interface.internal_monologue(content, assistant)
            error = (
                "The function call must be an object with a 'name' and JSON 'arguments', "
                f"not {shape!r:.200}"
            )
            return self._function_result(assistant, MALFORMED_CALL, False, error), True, True
        call = function_call_of(message)
        if call is None:
            if content:
                self.interface.internal_monologue(content, assistant)
            return [assistant], False, False
        raw = call.get("arguments")
        if isinstance(raw, Mapping):
            # Already parsed by the backend: keep the wire shape (JSON text), which the
            # history's readers (recall search, replies, replay, models) expect.
            raw = json.dumps(dict(raw), ensure_ascii=False, default=repr)
        assistant["function_call"] = {"name": call.get("name"), "arguments": raw}
        if content:
            self.interface.internal_monologue(content, assistant)
        name = str(call.get("name"))
        spec = self.functions.get(name)
        if spec is None:
            error = f"No function named {name!r}; available: {', '.join(self.functions)}"
            return self._function_result(assistant, str(name), False, error), True, True
        raw = raw or "{}"
        try:
            arguments = (
                _json.loads(raw, max_depth=_json.MAX_DEPTH) if isinstance(raw, str) else dict(raw)
            )
            if not isinstance(arguments, dict):
                raise ValueError("arguments must be a JSON object")
        except (ValueError, TypeError) as exc:
            error = f"Error parsing JSON for function {name!r} arguments: {raw!r:.200} ({exc})"
            return self._function_result(assistant, name, False, error), True, True
        heartbeat_request = _heartbeat_flag(arguments.pop("request_heartbeat", False))
        self.interface.function_message(f"Running {name}({arguments})", assistant)
        try:
            result = spec(self, **arguments)
        except Exception as exc:  # a model's bad call must not crash the agent
            error = f"Error calling function {name}: {type(exc).__name__}: {exc}"
            return self._function_result(assistant, name, False, error), True, True
        text = str(result)
        limit = self.config.function_result_char_limit
        if len(text) > limit:
            text = f"{text[:limit]}... [cut at {limit} characters]"
        ignored = message.get("ignored_tool_calls") or []
        if ignored:
            text = (
                f"{text} [Note: you asked for {len(ignored) + 1} function calls in one reply; only "
                f"the first ({name}) ran, not {', '.join(map(str, ignored))}. Call one function "
                "per reply.]"
            )
        return self._function_result(assistant, name, True, text), heartbeat_request, False

    def _function_result(self, assistant: Message, name: str, ok: bool, text: str) -> list[Message]:
        packaged = system.package_function_response(ok, text, self.now())
        result: Message = {"role": "function", "name": name, "content": packaged}
        self.interface.function_message(f"Success: {text}" if ok else f"Error: {text}", result)
        return [assistant, result]

    # --- memory pressure ------------------------------------------------------

    def summarize_messages_inplace(self, keep_last: int | None = None) -> str:
        """Replace older in-context messages with a summary; returns the summary.

        The last ``keep_last`` messages stay (never starting with a function
        result cut off from its call). Recall memory keeps every message.

        Raises:
            LLMError: there is nothing left to summarise.
        """
        with self._lock, self.persistence_manager.change("summary"):
            messages = self.messages
            cutoff = len(messages) - (keep_last or self.config.keep_last_messages)
            while cutoff > 1 and messages[cutoff].get("role") in ("function", "tool"):
                cutoff -= 1
            if cutoff <= 1:
                raise LLMError(
                    f"cannot make room: only {len(messages) - 1} messages are in context and the "
                    f"last {keep_last or self.config.keep_last_messages} must stay; "
                    "raise context_window or lower keep_last_messages"
                )
            evicted = messages[1:cutoff]
            response = self.model.chat(
                [{"role": "system", "content": SUMMARY_PROMPT}, *evicted], []
            )
            summary = str(self._response_message(response).get("content") or "")
            kept = messages[cutoff:]
            total = len(self.recall_memory)
            alert = system.package_summarize_message(
                summary, len(evicted), total - len(kept), total, self.now()
            )
            self.persistence_manager.replace_messages(
                [messages[0], {"role": "user", "content": alert}, *kept]
            )
            self.summaries += 1
            self.alerted_about_memory_pressure = False
            self.rebuild_memory()
            return summary


def model_string(model: Any) -> str | None:
    """The model string that rebuilds ``model`` (:func:`~memgpt_lab.llm.get_model`), or
    None for models a string cannot make (replayed, recorded, custom). Never a key."""
    from memgpt_lab.llm.scripted import ScriptedModel

    if type(model) is ScriptedModel:
        return "scripted"
    module = sys.modules.get("memgpt_lab.llm.openai_chat")
    if module is not None and isinstance(model, module.OpenAIChatModel):
        from memgpt_lab.llm.providers import PROVIDERS, ModelSpec

        default = (PROVIDERS[model.provider].base_url or "https://api.openai.com/v1").rstrip("/")
        base = None if model.base_url == default else model.base_url
        return str(ModelSpec(model.provider, model.model, base))
    return None


_LABEL_WORDS = 60


def _step_label(message: Message | None, produced: Sequence[Message]) -> tuple[str, bool]:
    """A checkpoint's label (what came in, the function called) and whether the step
    continues its turn (a heartbeat the chain asked for, a memory-pressure warning)."""
    continues = False
    if message is None:
        source, continues = "continue", True
    elif message.get("role") != "user":
        source = str(message.get("role"))
    else:
        packet = user_packet(message)
        kind = packet.get("type") if packet is not None else None
        if packet is None or kind == "user_message":
            words = packet.get("message") if packet is not None else message.get("content")
            text = " ".join(str(words).split())
            source = text if len(text) <= _LABEL_WORDS else text[: _LABEL_WORDS - 1] + "…"
        elif kind == "heartbeat":
            reason = packet.get("reason")
            continues = reason in (
                system.REQ_HEARTBEAT_MESSAGE,
                system.FUNC_FAILED_HEARTBEAT_MESSAGE,
            )
            source = "heartbeat" if continues else f"heartbeat: {reason}"
        elif kind == "system_alert" and "context window's limit" in str(packet.get("message")):
            source, continues = "memory pressure warning", True
        else:
            source = str(kind)
    call = function_call_of(produced[0]) if produced else None
    action = str(call.get("name")) if call else "no call"
    return f"{source} → {action}", continues
