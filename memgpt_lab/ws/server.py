"""A WebSocket server that hosts agents, speaking MemGPT 0.2's WebSocket protocol.

Run it from a terminal with ``memgpt-lab serve`` (:func:`serve_forever`), or
from a notebook or a test with :class:`LabServer`, which serves on a loop in
a background thread and records every frame into a
:class:`~memgpt_lab.recorder.Recording`::

    with LabServer() as server:           # 127.0.0.1, an ephemeral port
        ...connect to server.url...
    server.recording.table()

A client written for MemGPT 0.2's ``ws_api`` works unchanged
-------------------------------------------------------------
- Nothing is sent before the client speaks. A ``hello`` frame is sent on
  request (``{"type": "command", "command": "hello"}``) and first thing to
  clients that connect with ``?hello=1``.
- ``create_agent`` takes MemGPT's config keys (``name``, ``preset``,
  ``persona``, ``human``, ``model``, ``llm_config``, ``embedding_config``);
  keys the server does not use are ignored, and listed in the answer's
  ``ignored``. Which model an agent runs on is the server's *model policy*
  (``LabServer(model=...)``, ``memgpt-lab serve --model``): ``"scripted"`` (the
  default: every agent on the offline model), a model string (every agent on
  it), or ``"as-requested"`` (what the client asked, where a backend exists; a
  bare OpenAI name such as ``gpt-4-1106-preview`` means
  ``openai:gpt-4-1106-preview``). Over the wire ``preset``, ``persona`` and
  ``human`` are names looked up in the configured directories, never paths.
- ``command_response`` ``status`` starts with ``OK`` or ``Error:``:
  ``"OK: Agent initialized"``, ``"Error: Failed to init agent - <reason>"``,
  ``"Error: bad data from client - <data>"``.
- Agents have names (``agent_N`` when none is given); ``agent_id`` in any frame
  takes the id or the name.
- A turn's frames go to the connection that asked for it and to connections
  that ``attach``-ed to the agent explicitly, never to anyone else. Sending a
  ``user_message`` does not attach.
- Bad input is answered with the frame type MemGPT answered with: not JSON, or
  JSON without ``type``: ``command_response`` ``"Error: bad data from client -
  ..."``; an unknown command: ``server_error`` ``"unrecognized client command
  type: ..."``; an unknown ``type``: ``server_error`` ``"unrecognized client
  package data type: ..."``; ``user_message`` without ``agent_id``:
  ``agent_response_error`` ``"agent_name was not specified in the request"``
  alone; an unknown agent, an empty message or a ``/command``:
  ``agent_response_start``, ``agent_response_error``, ``agent_response_end``.
  Where MemGPT crashed instead, the answer is this server's own error frame.
  Every error frame carries a stable ``error_code`` (see :data:`ERROR_CODES`).
- A binary frame holding UTF-8 JSON is read like a text frame.

Additions (extra fields, extra commands)
----------------------------------------
``seq`` on every frame (per connection, from 1, gap-free); ``agent_id`` and
``turn_id`` on every frame of a turn; ``request_id`` echoed from the request
(on a turn's start and end), with ``requested_by`` (the connection id of the
sender); the commands ``hello``, ``list_agents``, ``get_memory``, ``attach``,
``detach``, ``delete_agent``, ``resume``, and the time-travel commands below.

Agents in a store, and time travel
----------------------------------
The server keeps its agents in one :class:`~memgpt_lab.persistence.AgentStore`:
a file with ``LabServer(db=PATH)`` / ``memgpt-lab serve --db PATH``, else one
in-memory store shared by all its agents. On start it loads every agent of the
file (addressable by id and name, as before; an agent whose name another
already has is addressable by id only), on the model the policy says (under
``as-requested``, the model string it was saved with); start-up agents
(``--agent NAME``) the file already holds are not created again. Agents created
over the wire (or by ``fork``) are stored as they are created and every step
commits, so a restarted server has them with their memory and history;
``delete_agent`` deletes the agent from the store (after its running turn,
if any). Agents built by a custom ``agent_factory`` are saved in the store when
they are :class:`~memgpt_lab.agent.Agent` objects; others are hosted but
neither stored nor able to time-travel (``error_code: "no_history"``).

Four commands work on an agent's history. Each takes ``agent_id`` (id or
name), echoes ``request_id``, and is queued in the agent's FIFO like
``get_memory``, so it runs between turns, never during one:

- ``list_checkpoints``: ``command_response`` with ``checkpoints`` (oldest
  first, every branch: ``id``, ``parent_id``, ``turn``, ``step``, ``label``,
  ``created_at`` as ISO 8601) and ``current`` (the agent's checkpoint).
- ``rewind`` (``checkpoint_id``): memory and context back to that checkpoint;
  answered with ``current``. Later checkpoints stay, as a branch.
- ``retry``: run the last user message again from just before it. It is a
  turn: its sender (and attached connections) get ``agent_response_start``,
  the agent's frames and ``agent_response_end``, from the agent's turn engine
  (a new ``turn_id``: turn ids count the server's turns, never go back), with
  ``request_id``, ``requested_by`` and ``command: "retry"`` on start and end.
  Nothing to retry is ``agent_response_error`` (``nothing_to_retry``) inside
  that turn; refusals before it is queued (unknown agent, busy, no history)
  are ``command_response`` errors. A repeated ``request_id`` in a session is
  answered with the first run, as for ``user_message``.
- ``fork`` (``checkpoint_id``, ``name``, both optional): a new hosted agent
  whose history is the agent's up to that checkpoint (the current one by
  default), in the same store, named ``<name>-fork`` (``-fork-2``... when
  taken) by default; answered like ``create_agent`` (``"OK: Agent forked"``,
  the new ``agent_id`` / ``agent_name``, ``model``), with ``forked_from``
  (``agent_id``, ``agent_name``, ``checkpoint_id``) and ``current``.

A checkpoint that is not in the agent's history is ``error_code:
"unknown_checkpoint"``.

Reconnecting without running a message twice: a client that connects with
``?session=<id>`` (1-64 of ``[A-Za-z0-9_-]``) and sends a ``user_message`` with
a ``request_id`` it already sent to that agent in that session is answered
with that request's turn, from the first run (live, if it is still running),
never by running it again. A client that reconnects sends
``{"type": "command", "command": "resume", "agent_id": ..., "after_turn": N}``
and gets ``command_response`` (``replayed_turns``, ``complete``) then, with its
own ``seq``, every kept frame of the agent's turns after ``turn_id`` N that it
did not already receive on this connection, then the rest of a turn still
running; resuming also attaches. Both come from a bounded per-agent buffer.

Bounds (each a ``LabServer`` argument and a ``serve`` option)
-------------------------------------------------------------
``max_size`` (a client frame), ``max_queued_bytes`` (frames queued for one
connection: past it the connection is closed with 1008), ``max_turns_in_flight``
(queued or running requests of one connection: past it ``error_code: "busy"``),
``max_agents`` (past it ``create_agent`` fails; ``delete_agent`` makes room),
``max_rejections`` (refused handshakes kept), ``resume_buffer_bytes`` (per
agent) and ``max_remembered_requests`` (per agent).

How a turn flows, and why its frames cannot be lost or reordered
----------------------------------------------------------------
Every agent has a :class:`~memgpt_lab.turns.TurnEngine` and a FIFO of jobs
(turns and memory snapshots); every connection has an
:class:`~memgpt_lab.turns.Outbox` and one writer task. A ``user_message`` is
appended to its agent's FIFO on the loop (no task, no lock per message); when
the agent is idle, it is handed to a worker, which runs ``begin_turn``,
``agent.turn`` and ``end_turn``: framing, ``seq`` and routing are the engine's,
so the end is queued after the turn's last event by construction, and a frame
is encoded once for all its recipients. After each job the agent goes to the
back of the workers' queue, so agents take turns. Outboxes wake their writer
when they go from empty to non-empty (at most one wake-up on its way to the
loop per connection); the writer sends what is queued, in order, and records
each frame *after* it was sent. A frame that cannot be sent closes that
connection alone, with 1011.

Threads: the loop thread (``LabServer`` makes one) and, for agents whose model
may wait on a network, a pool of ``max_workers`` worker threads. Offline agents
(the ``scripted`` policy) step on the loop thread itself (``max_workers=0``):
their turns are CPU-bound, where more threads would only contend for the GIL.
Agents are created on a worker thread in either case.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hmac
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from memgpt_lab import _json
from memgpt_lab._hosting import is_loopback, run_until_interrupted
from memgpt_lab.errors import LabError, NothingToRetryError, ProtocolError, UnknownNameError
from memgpt_lab.interface import AgentInterface
from memgpt_lab.recorder import Recording
from memgpt_lab.turns import DEFAULT_MAX_QUEUED_BYTES, Outbox, TurnEngine
from memgpt_lab.ws import protocol
from memgpt_lab.ws._serving import BackgroundServer

if TYPE_CHECKING:
    from memgpt_lab.persistence import AgentStore

__all__ = [
    "AS_REQUESTED",
    "COMMANDS",
    "DEFAULT_ALLOWED_ORIGINS",
    "DEFAULT_MAX_AGENTS",
    "DEFAULT_MAX_QUEUED_BYTES",
    "DEFAULT_MAX_REJECTIONS",
    "DEFAULT_MAX_REMEMBERED_REQUESTS",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_MAX_TURNS_IN_FLIGHT",
    "DEFAULT_MAX_WORKERS",
    "DEFAULT_RESUME_BUFFER_BYTES",
    "ERROR_CODES",
    "FEATURES",
    "HostedAgent",
    "LabServer",
    "origin_allowed",
    "serve_forever",
]

logger = logging.getLogger(__name__)

#: Browser origins accepted by default: pages served from this machine's loopback.
DEFAULT_ALLOWED_ORIGINS: tuple[re.Pattern[str], ...] = (
    re.compile(r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?"),
)

#: The largest frame a client may send, in bytes; bigger ones close the connection (1009).
DEFAULT_MAX_SIZE = 1 << 20
#: Queued or running requests (turns, get_memory) one connection may have; more are ``busy``.
DEFAULT_MAX_TURNS_IN_FLIGHT = 32
#: Agents one server hosts at most; ``delete_agent`` makes room.
DEFAULT_MAX_AGENTS = 100
#: Refused handshakes kept in :attr:`LabServer.rejections` (the most recent).
DEFAULT_MAX_REJECTIONS = 100
#: Bytes of recent turn frames kept per agent, for ``resume`` and repeated requests (256 KiB).
DEFAULT_RESUME_BUFFER_BYTES = 256 << 10
#: ``request_id``s remembered per agent, so a repeated request is answered, not run again.
DEFAULT_MAX_REMEMBERED_REQUESTS = 256

#: Worker threads stepping agents (turns of different agents at once), for agents whose
#: model may wait on a network; offline (``scripted``) agents step on the loop's thread.
DEFAULT_MAX_WORKERS = 8

#: The model policy that runs each agent on the model its client asked for.
AS_REQUESTED = "as-requested"

#: The commands this server answers (MemGPT's ``create_agent``, the rest additions).
COMMANDS = (
    "create_agent",
    "hello",
    "list_agents",
    "get_memory",
    "attach",
    "detach",
    "delete_agent",
    "resume",
    "list_checkpoints",
    "rewind",
    "retry",
    "fork",
)

#: The commands queued in an agent's FIFO (they never run during one of its turns).
_QUEUED_COMMANDS = ("get_memory", "list_checkpoints", "rewind", "retry", "fork")

#: Additive features announced in ``hello``.
FEATURES = (
    "seq",
    "agent_id",
    "turn_id",
    "request_id",
    "agent_names",
    "attach",
    "resume",
    "session",
    "checkpoints",
)

#: Every ``error_code`` this server sends, and when.
ERROR_CODES: dict[str, str] = {
    "bad_json": "the frame is not JSON",
    "invalid_unicode": "the frame holds a lone surrogate (or bytes that are not UTF-8)",
    "no_type": "a JSON object without 'type'",
    "bad_frame": "a field is missing or of the wrong type",
    "unknown_type": "a 'type' the server does not know",
    "unknown_command": "a 'command' the server does not know",
    "no_agent": "user_message without agent_id",
    "unknown_agent": "no agent with that id or name",
    "invalid_input": "an empty message, or a MemGPT CLI command ('/...')",
    "busy": "the connection has max_turns_in_flight requests queued or running",
    "shutting_down": "the server is stopping",
    "bad_config": "create_agent's config does not make an agent",
    "unknown_name": "create_agent names a preset, persona, human or model that does not exist",
    "name_taken": "another agent has that name or id",
    "too_many_agents": "the server hosts max_agents agents",
    "internal": "the server failed; its log says why",
    "turn_failed": "the agent raised during the turn",
    "aborted": "the server stopped before the turn finished",
    "deleted": "the agent was deleted before the request ran",
    "expired": "a repeated request whose turn is no longer kept",
    "not_run": "a repeated request that was dropped before it ran",
    "unknown_checkpoint": "a checkpoint_id that is not in the agent's history",
    "no_history": "the agent keeps no checkpoints (a custom agent_factory's object)",
    "nothing_to_retry": "retry on an agent that has no user message yet",
}

_SERVER_NAME = "memgpt_lab"
_SESSION = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_NAME = 100
_MAX_REQUEST_ID = 200
_SHOWN = 500  # characters of a client's data quoted back in an error
_START = '{"type":"agent_response_start"'
_END = '{"type":"agent_response_end"'


class HostedAgent(Protocol):
    """What the server needs of an agent (:class:`memgpt_lab.agent.Agent` has it)."""

    id: str
    name: str
    interface: AgentInterface

    def turn(self, message: str) -> Any: ...

    def memory_snapshot(self) -> dict[str, Any]: ...


#: Builds an agent from a client's ``config`` and the interface it must report to.
AgentFactory = Callable[[dict[str, Any], AgentInterface], HostedAgent]


class _PresetFactory:
    """The default factory: :func:`~memgpt_lab.presets.create_agent_from_config`, names only
    over the wire, names looked up in the server's directories too."""

    def __init__(self, directories: Mapping[str, Sequence[str]]) -> None:
        self.directories = directories

    @property
    def accepted_keys(self) -> frozenset[str]:
        from memgpt_lab.presets import CONFIG_KEYS

        return CONFIG_KEYS

    def __call__(
        self,
        config: dict[str, Any],
        interface: AgentInterface,
        *,
        names_only: bool = True,
        **options: Any,
    ) -> HostedAgent:
        # Imported on first use: the agent core is not needed to import this module.
        from memgpt_lab.presets import create_agent_from_config

        agent: HostedAgent = create_agent_from_config(
            config,
            interface,
            names_only=names_only,
            preset_directories=self.directories.get("presets"),
            persona_directories=self.directories.get("personas"),
            human_directories=self.directories.get("humans"),
            **options,
        )
        return agent


def origin_allowed(
    origin: str | None, allowed: Iterable[str | re.Pattern[str]] = DEFAULT_ALLOWED_ORIGINS
) -> bool:
    """Whether a handshake with this ``Origin`` header may connect.

    No header at all is always allowed: browsers always send one, so its
    absence means a non-browser client, which cross-site WebSocket hijacking
    cannot use. A string in ``allowed`` must equal the origin; a pattern must
    match all of it; ``"*"`` allows any origin.
    """
    if origin is None:
        return True
    for item in allowed:
        if isinstance(item, re.Pattern):
            if item.fullmatch(origin):
                return True
        elif item == "*" or item == origin:
            return True
    return False


# --------------------------------------------------------------------------- frames


def _command_response(status: str, command: Any = None, **extra: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "command_response", "status": status}
    if isinstance(command, str):
        frame["command"] = command
    frame.update(extra)
    return frame


def _shown(data: Any) -> str:
    """A client's data as quoted back in an error: its text, or the parsed value's repr."""
    if isinstance(data, (bytes, bytearray)):
        text = bytes(data).decode("utf-8", "replace")
    elif isinstance(data, str):
        text = data
    else:
        text = str(data)  # MemGPT quoted the parsed dict as Python prints it
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def _refused_turn(
    outbox: Outbox, message: str, code: str, agent_ref: Any, echo: Mapping[str, Any]
) -> None:
    """Start, error, end: MemGPT's answer to a user_message it could not run."""
    fields: dict[str, Any] = {"agent_id": agent_ref} if isinstance(agent_ref, str) else {}
    outbox.push_many(
        protocol.encode(frame)
        for frame in (
            protocol.agent_response_start(**fields, **echo),
            protocol.agent_response_error(message, **fields, error_code=code, **echo),
            protocol.agent_response_end(**fields, **echo),
        )
    )


# --------------------------------------------------------------------------- agents


class _Job:
    """One request waiting in an agent's FIFO: a turn (a user message, a retry) or a command.

    ``command`` names a command (``get_memory``, ``retry``...); ``args`` are its fields."""

    __slots__ = (
        "kind",
        "connection",
        "message",
        "echo",
        "key",
        "state",
        "turn_id",
        "followers",
        "command",
        "args",
    )

    QUEUED, RUNNING, DONE = "queued", "running", "done"

    def __init__(
        self,
        kind: str,
        connection: _Connection,
        message: str = "",
        echo: dict[str, Any] | None = None,
        key: tuple[str, Any] | None = None,
        command: str | None = None,
        args: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.connection = connection
        self.message = message
        self.echo = echo or {}
        self.key = key
        self.state = self.QUEUED
        self.turn_id: int | None = None
        # Connections that repeated this request before its turn started.
        self.followers: list[Outbox] = []
        self.command = command
        self.args = args or {}


class _AgentSlot:
    """A hosted agent: its turn engine, its FIFO of jobs, and what resume needs.

    ``lock`` guards the FIFO, the buffer of recent frames and the followers;
    it is taken inside the engine's lock (by :meth:`_tapped`), never around
    a call into the engine. ``emit_lock`` makes "muted?" and "emit" one step,
    so that an aborted turn's worker cannot put a frame after its end.
    """

    def __init__(
        self,
        agent: HostedAgent,
        name: str,
        model: str | None,
        *,
        history_bytes: int,
        max_requests: int,
    ) -> None:
        self.agent = agent
        self.id = str(agent.id)
        self.name = name
        self.model = model
        self.engine = TurnEngine(self.id)
        self.lock = threading.Lock()
        self.emit_lock = threading.Lock()
        self.jobs: collections.deque[_Job] = collections.deque()
        self.busy = False
        self.current: _Job | None = None
        self.muted = False
        # Recent frames of this agent as (turn_id, body without seq), oldest first.
        self.history: collections.deque[tuple[int | None, str]] = collections.deque()
        self.history_chars = 0
        self.history_limit = history_bytes
        self.first_whole_turn = 1  # turns before it lost frames to the bound
        # Who got (or gets) each kept turn: its recipients, followers and replays.
        self.recipients_of: dict[int, set[str]] = {}
        self.open_turn: int | None = None
        self.followers: list[Outbox] = []  # late joiners of the open turn
        self.requests: collections.OrderedDict[tuple[str, Any], _Job] = collections.OrderedDict()
        self.max_requests = max_requests
        #: In the server's store (deleted from it with the agent).
        self.stored = False
        #: delete_agent was sent: the store forgets the agent once no job of it runs.
        self.deleted = False
        # Sees every frame of the agent, in order, as it is routed (the engine's tap).
        self.engine.tap = self._tapped

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "model": self.model, "turns": self.engine.turns}

    # -- the tap: called under the engine's lock, on whichever thread queued the frame --

    def _tapped(self, body: str) -> None:
        engine = self.engine
        turn_id = engine.turn_id
        with self.lock:
            starts = turn_id is not None and body.startswith(_START)
            if starts:
                recipients = {outbox.id for outbox in engine.recipients}
                self.open_turn = turn_id
                job = self.current
                self.followers = []
                if job is not None:
                    # Who repeated the request before it started gets it from the start.
                    job.turn_id = turn_id
                    self.followers = [o for o in job.followers if o.id not in recipients]
                    recipients.update(o.id for o in self.followers)
                    job.followers = []
                self.recipients_of[turn_id] = recipients  # type: ignore[index]
            for outbox in self.followers:
                outbox.push(body)
            if self.history_limit:
                self.history.append((turn_id, body))
                self.history_chars += len(body)
            elif starts:
                self.first_whole_turn = turn_id + 1  # type: ignore[operator]  # nothing is kept
            if turn_id is not None and body.startswith(_END):
                self.open_turn = None
                self.followers = []
                self._evict()  # once a turn: what the bound pushed out, and who had it
            elif self.history_chars > self.history_limit:
                self._evict()

    def _evict(self) -> None:
        history = self.history
        while history and self.history_chars > self.history_limit:
            turn_id, text = history.popleft()
            self.history_chars -= len(text)
            if turn_id is not None and turn_id >= self.first_whole_turn:
                self.first_whole_turn = turn_id + 1
        recipients = self.recipients_of
        while recipients:
            oldest = next(iter(recipients))
            if oldest >= self.first_whole_turn or oldest == self.open_turn:
                break
            del recipients[oldest]

    def _replay(
        self,
        outbox: Outbox,
        turns: Callable[[int], bool],
        first: Callable[[list[int]], dict[str, Any]] | None = None,
    ) -> None:
        """Queue ``first(turns replayed)`` when given, then the kept frames of the chosen turns
        that ``outbox`` has not had; follow the open turn if it is one of them. Under ``lock``."""
        bodies: list[str] = []
        replayed: list[int] = []
        for turn_id, text in self.history:
            if turn_id is None or turn_id < self.first_whole_turn or not turns(turn_id):
                continue
            if outbox.id in self.recipients_of.get(turn_id, ()):
                continue  # it got (or gets) this turn already
            bodies.append(text)
            if not replayed or replayed[-1] != turn_id:
                replayed.append(turn_id)
        if first is not None:
            outbox.send(first(replayed))
        outbox.push_many(bodies)
        for turn_id in replayed:
            self.recipients_of[turn_id].add(outbox.id)
        if self.open_turn is not None and self.open_turn in replayed:
            self.followers.append(outbox)

    def resume(
        self, outbox: Outbox, after_turn: int, response: Callable[[list[int], bool], dict[str, Any]]
    ) -> None:
        """Queue ``response(replayed_turns, complete)``, then the kept frames of the turns after
        ``after_turn`` that ``outbox`` did not receive, then the rest of the open turn.

        Call after subscribing ``outbox``: a turn that starts from then on reaches it anyway."""
        with self.lock:
            complete = after_turn + 1 >= self.first_whole_turn
            self._replay(
                outbox, lambda turn: turn > after_turn, lambda turns: response(turns, complete)
            )

    def join(self, job: _Job, outbox: Outbox) -> str | None:
        """Give ``outbox`` the turn of a repeated request: live, replayed, or both.

        Returns None, or why it cannot: ``"expired"`` (no longer kept) or ``"not_run"``."""
        with self.lock:
            if job.turn_id is None:
                if job.state == _Job.DONE:
                    return "not_run"
                if outbox not in job.followers:
                    job.followers.append(outbox)
                return None
            turn_id = job.turn_id
            if outbox.id in self.recipients_of.get(turn_id, ()):
                return None  # it is getting this turn already
            if turn_id < self.first_whole_turn:
                return "expired"
            self._replay(outbox, lambda turn: turn == turn_id)
            return None

    def remember(self, job: _Job) -> None:
        if job.key is None:
            return
        with self.lock:
            self.requests[job.key] = job
            while len(self.requests) > self.max_requests:
                self.requests.popitem(last=False)

    def remembered(self, key: tuple[str, Any]) -> _Job | None:
        with self.lock:
            return self.requests.get(key)


class _SlotInterface(AgentInterface):
    """The interface a hosted agent reports to: straight into its slot's turn engine."""

    def __init__(self) -> None:
        self.slot: _AgentSlot | None = None

    def emit(self, kind: str, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        slot = self.slot
        if slot is None or kind == "user_message":  # being built, or no frame for it
            return
        with slot.emit_lock:
            if not slot.muted:
                slot.engine.emit(kind, msg)

    def internal_monologue(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self.emit("internal_monologue", msg)

    def assistant_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self.emit("assistant_message", msg)

    def function_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self.emit("function_message", msg)


# --------------------------------------------------------------------------- connections


class _Connection:
    """One client: its outbox, writer task, attachments and requests in flight."""

    __slots__ = (
        "ws",
        "id",
        "session",
        "outbox",
        "loop",
        "loop_thread",
        "wake",
        "wake_pending",
        "idle",
        "writer",
        "agents",
        "inflight",
        "inflight_lock",
        "closing",
        "recording",
        "on_overflow",
    )

    def __init__(
        self,
        ws: ServerConnection,
        connection_id: str,
        session: str | None,
        *,
        max_queued_bytes: int,
        recording: Recording | None,
        on_overflow: Callable[[_Connection], None],
    ) -> None:
        self.ws = ws
        self.id = connection_id
        self.session = session
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.wake = asyncio.Event()
        self.wake_pending = False  # a wake-up from another thread is on its way to the loop
        self.idle = asyncio.Event()
        self.idle.set()
        self.writer: asyncio.Task[None] | None = None
        self.agents: set[str] = set()  # ids of the agents it attached to
        self.inflight = 0
        self.inflight_lock = threading.Lock()
        self.closing = False
        self.recording = recording
        self.on_overflow = on_overflow
        self.outbox = Outbox(
            connection_id,
            max_queued_bytes=max_queued_bytes,
            on_ready=self._ready,
            on_overflow=self._overflowed,
        )

    def send(self, frame: Mapping[str, Any]) -> None:
        self.outbox.send(frame)

    def _ready(self) -> None:
        # Any thread: the loop's own, or a worker's mid-turn (frames stream as they come).
        if threading.get_ident() == self.loop_thread:
            self.wake.set()
        elif not self.wake_pending:  # one hop to the loop at a time is enough
            self.wake_pending = True
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to wake
                self.loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        self.wake_pending = False  # before the writer looks: a later frame schedules again
        self.wake.set()

    def _overflowed(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.on_overflow, self)

    def take_slot(self, limit: int) -> bool:
        """Count one more request in flight, unless ``limit`` are."""
        with self.inflight_lock:
            if self.inflight >= limit:
                return False
            self.inflight += 1
            return True

    def release_slot(self) -> None:
        with self.inflight_lock:
            self.inflight -= 1

    async def write_loop(self) -> None:
        """Send what the outbox queues, in order; record each frame once it was sent."""
        ws, outbox, recording = self.ws, self.outbox, self.recording
        try:
            while True:
                texts = outbox.take()
                if not texts:
                    self.idle.set()
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                self.idle.clear()
                # Encoded first, strictly: a frame that is not text fails here, not in ws,
                # and the frames before it still go out (and are recorded) before the close.
                payloads: list[bytes] = []
                failure: UnicodeEncodeError | None = None
                for text in texts:
                    try:
                        payloads.append(text.encode())
                    except UnicodeEncodeError as exc:
                        failure = exc
                        break
                if payloads:
                    # Everything ready goes out as one write (see _BatchingConnection).
                    await _send_texts(ws, payloads)
                    if recording is not None:
                        for text in texts[: len(payloads)]:
                            recording.record("out", text, connection_id=self.id)
                if failure is not None:
                    raise failure
        except ConnectionClosed:
            pass
        except Exception:
            # This connection only: close it as the protocol says for an internal error.
            logger.exception("could not send a frame to %s; closing it (1011)", self.id)
            self.closing = True
            outbox.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    ws.close(1011, "internal error: a frame could not be sent"), ws.close_timeout
                )
            ws.transport.abort()
        finally:
            self.idle.set()

    async def flush(self) -> None:
        """Return once everything queued so far has been sent (or the writer ended)."""
        while self.outbox.queued and self.writer is not None and not self.writer.done():
            self.idle.clear()
            self.wake.set()
            await self.idle.wait()


# --------------------------------------------------------------------------- the core


class _Plan(NamedTuple):
    config: dict[str, Any]  # what the factory gets
    name: str
    ignored: list[str]
    note: str | None
    requested: str | None  # the model the client asked for


class _Refusal(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class _ServerCore:
    """Connections, agents and request handling; lives on one loop."""

    def __init__(
        self,
        *,
        agent_factory: AgentFactory,
        recording: Recording | None,
        token: str | None,
        allowed_origins: Sequence[str | re.Pattern[str]],
        model_policy: str,
        max_workers: int,
        max_queued_bytes: int,
        max_turns_in_flight: int,
        max_agents: int,
        max_rejections: int,
        resume_buffer_bytes: int,
        max_remembered_requests: int,
        max_size: int,
    ) -> None:
        self.agent_factory = agent_factory
        self.recording = recording
        self.token = token
        self.allowed_origins = tuple(allowed_origins)
        self.model_policy = model_policy
        self.max_queued_bytes = max_queued_bytes
        self.max_turns_in_flight = max_turns_in_flight
        self.max_agents = max_agents
        self.resume_buffer_bytes = resume_buffer_bytes
        self.max_remembered_requests = max_remembered_requests
        self.max_size = max_size
        self.agents: dict[str, _AgentSlot] = {}
        #: Where agents are kept (opened by :meth:`open_store`, closed by :meth:`shutdown`).
        self.store: AgentStore | None = None
        self.names: dict[str, str] = {}  # name -> id
        self.reserved: set[str] = set()  # names of agents being created
        self.connections: dict[str, _Connection] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        #: Set on the loop once shutdown has begun: new requests are refused from then on.
        self.stopping = threading.Event()
        self.rejections: collections.deque[tuple[int, str]] = collections.deque(
            maxlen=max_rejections
        )
        #: 0 workers: agents step on the loop's own thread (see LabServer's max_workers).
        self.inline = max_workers == 0
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max(max_workers, 1), thread_name_prefix="memgpt_lab-agent"
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self._drained: asyncio.Event | None = None
        self._connection_count = 0
        self._agent_count = 0

    # -- handshake ---------------------------------------------------------------------

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse disallowed browser origins (403), missing or wrong tokens (401), bad sessions (400)."""
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, self.allowed_origins):
            return self._reject(
                connection, HTTPStatus.FORBIDDEN, f"origin {origin!r} is not allowed"
            )
        query = parse_qs(urlsplit(request.path).query)
        if self.token is not None:
            given = query.get("token", [None])[-1]
            authorization = request.headers.get("Authorization", "")
            if given is None and authorization[:7].lower() == "bearer ":
                given = authorization[7:].strip()
            if given is None:
                return self._reject(
                    connection,
                    HTTPStatus.UNAUTHORIZED,
                    "a token is required: add ?token=... or 'Authorization: Bearer ...'",
                )
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return self._reject(connection, HTTPStatus.UNAUTHORIZED, "wrong token")
        session = query.get("session", [None])[-1]
        if session is not None and not _SESSION.fullmatch(session):
            return self._reject(
                connection,
                HTTPStatus.BAD_REQUEST,
                "?session= must be 1 to 64 letters, digits, '_' or '-'",
            )
        return None

    def _reject(self, connection: ServerConnection, status: HTTPStatus, reason: str) -> Response:
        self.rejections.append((int(status), reason))
        logger.info("refused a WebSocket handshake: %s %s", int(status), reason)
        return connection.respond(status, reason + "\n")

    # -- connections -------------------------------------------------------------------

    def _new_connection_id(self) -> str:
        if self.recording is not None:
            return self.recording.new_connection_id()
        self._connection_count += 1
        return f"c{self._connection_count}"

    async def handle(self, ws: ServerConnection) -> None:
        """The websockets handler: one call per connection, returning when it closes."""
        query = parse_qs(urlsplit(ws.request.path).query) if ws.request is not None else {}
        connection = _Connection(
            ws,
            self._new_connection_id(),
            query.get("session", [None])[-1],
            max_queued_bytes=self.max_queued_bytes,
            recording=self.recording,
            on_overflow=self._overflowed,
        )
        self.connections[connection.id] = connection
        connection.writer = asyncio.create_task(connection.write_loop())
        if query.get("hello", ["0"])[-1].lower() in ("1", "true", "yes"):
            connection.send(self._hello(connection, {}))
        recording = self.recording
        try:
            async for message in ws:
                if recording is not None:
                    recording.record("in", message, connection_id=connection.id)
                self.dispatch(connection, message)
        except ConnectionClosed:
            pass  # an abnormal close; recorded below like any other
        finally:
            connection.closing = True
            connection.outbox.close()
            for agent_id in connection.agents:
                slot = self.agents.get(agent_id)
                if slot is not None:
                    slot.engine.unsubscribe(connection.outbox)
            del self.connections[connection.id]
            writer = connection.writer
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if recording is not None:
                _record_close(recording, ws, connection.id)

    def _overflowed(self, connection: _Connection) -> None:
        """On the loop: a client that stopped reading passed max_queued_bytes; close it (1008)."""
        if connection.closing:
            return
        connection.closing = True
        logger.warning(
            "connection %s queued more than %d bytes without reading them; closing it (1008)",
            connection.id,
            self.max_queued_bytes,
        )
        self._spawn(
            _close(
                connection.ws,
                1008,
                f"not reading: over {self.max_queued_bytes} bytes of frames queued",
            )
        )

    def _hello(self, connection: _Connection, echo: Mapping[str, Any]) -> dict[str, Any]:
        extra = {"session": connection.session} if connection.session else {}
        return protocol.hello(
            server=_SERVER_NAME,
            connection_id=connection.id,
            **extra,
            commands=list(COMMANDS),
            features=list(FEATURES),
            model_policy=self.model_policy,
            limits={
                "max_size": self.max_size,
                "max_queued_bytes": self.max_queued_bytes,
                "max_turns_in_flight": self.max_turns_in_flight,
                "max_agents": self.max_agents,
                "resume_buffer_bytes": self.resume_buffer_bytes,
                "max_remembered_requests": self.max_remembered_requests,
            },
            **echo,
        )

    # -- requests ----------------------------------------------------------------------

    def dispatch(self, connection: _Connection, message: str | bytes) -> None:
        """Answer one client frame; on the loop, never blocking it."""
        if isinstance(message, bytes):
            # A binary frame is read as UTF-8 text (json.loads alone would guess UTF-16/32 too).
            try:
                message = message.decode()
            except UnicodeDecodeError:
                connection.send(
                    _command_response(
                        f"Error: bad data from client - {_shown(message)}",
                        error_code="invalid_unicode",
                    )
                )
                return
        try:
            frame = protocol.decode(message)
        except ProtocolError as exc:
            self._undecodable(connection, message, exc)
            return
        echo: dict[str, Any] = {}
        if "request_id" in frame and frame["request_id"] is not None:
            request_id = frame["request_id"]
            if (
                isinstance(request_id, bool)
                or not isinstance(request_id, (str, int))
                or (isinstance(request_id, str) and len(request_id) > _MAX_REQUEST_ID)
            ):
                self._bad_frame(
                    connection,
                    frame,
                    f"'request_id' must be a string (at most {_MAX_REQUEST_ID} characters) "
                    "or an integer",
                    "bad_frame",
                )
                return
            echo["request_id"] = request_id
        kind = frame["type"]
        if kind == "user_message":
            self._user_message(connection, frame, echo)
        elif kind == "command":
            self._command(connection, frame, echo)
        else:
            connection.send(
                protocol.server_error(
                    f"unrecognized client package data type: {_shown(frame)}",
                    error_code="unknown_type",
                    **echo,
                )
            )

    def _undecodable(self, connection: _Connection, message: str, exc: ProtocolError) -> None:
        # Parse once more, only on this error path, to answer with MemGPT's frame for the kind.
        parsed: Any
        try:
            parsed = _json.loads(message, max_depth=_json.MAX_DEPTH)
        except ValueError:
            parsed = shown = message
        else:
            shown = parsed  # MemGPT quoted what it had parsed
        if not isinstance(parsed, dict) or "type" not in parsed:
            code = (
                exc.code if exc.code in ("bad_json", "invalid_unicode", "no_type") else "bad_frame"
            )
            connection.send(
                _command_response(f"Error: bad data from client - {_shown(shown)}", error_code=code)
            )
            return
        if exc.code == "invalid_unicode" and parsed["type"] in ("user_message", "command"):
            self._bad_frame(connection, parsed, str(exc), "invalid_unicode")
            return
        connection.send(
            protocol.server_error(
                f"unrecognized client package data type: {_shown(parsed)}",
                error_code="unknown_type",
            )
        )

    def _bad_frame(
        self, connection: _Connection, frame: Mapping[str, Any], message: str, code: str
    ) -> None:
        """A request this server cannot read, answered with the frame type of its kind."""
        echo = _echo(frame)
        if frame.get("type") == "user_message":
            agent_ref = frame.get("agent_id")
            extra = {"agent_id": agent_ref} if isinstance(agent_ref, str) else {}
            connection.send(
                protocol.agent_response_error(message, **extra, error_code=code, **echo)
            )
        else:
            connection.send(
                _command_response(
                    f"Error: {message}", frame.get("command"), error_code=code, **echo
                )
            )

    def _find(self, agent_ref: Any) -> _AgentSlot | None:
        if not isinstance(agent_ref, str):
            return None
        slot = self.agents.get(agent_ref)
        if slot is None:
            agent_id = self.names.get(agent_ref)
            slot = self.agents.get(agent_id) if agent_id is not None else None
        return slot

    def _unknown_agent(self, agent_ref: Any) -> str:
        names = sorted(slot.name for slot in self.agents.values())
        known = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
        return (
            f"unknown agent {agent_ref!r}; agents: {known or 'none yet; send create_agent first'}"
        )

    def _user_message(
        self, connection: _Connection, frame: Mapping[str, Any], echo: dict[str, Any]
    ) -> None:
        agent_ref = frame.get("agent_id")
        if agent_ref is None:
            connection.send(
                protocol.agent_response_error(
                    "agent_name was not specified in the request", error_code="no_agent", **echo
                )
            )
            return
        if "message" not in frame:
            self._bad_frame(connection, frame, "user_message needs a 'message' field", "bad_frame")
            return
        if self.closing:
            self._bad_frame(connection, frame, "the server is shutting down", "shutting_down")
            return
        message = frame["message"]
        if not isinstance(message, str) or not message or message.startswith("/"):
            # MemGPT refused these after its start frame, as a failed turn.
            _refused_turn(
                connection.outbox,
                f"Invalid input: '{_shown(message)}'",
                "invalid_input",
                agent_ref,
                echo,
            )
            return
        slot = self._find(agent_ref)
        if slot is None:
            _refused_turn(
                connection.outbox, self._unknown_agent(agent_ref), "unknown_agent", agent_ref, echo
            )
            return
        answered, key = self._repeated(connection, slot, echo)
        if answered:
            return
        if not connection.take_slot(self.max_turns_in_flight):
            connection.send(
                protocol.agent_response_error(
                    f"this connection has {self.max_turns_in_flight} requests queued or running; "
                    "wait for an answer before sending more",
                    agent_id=slot.id,
                    error_code="busy",
                    **echo,
                )
            )
            return
        # The sender's connection id on start and end: attached observers see the turn too.
        job = _Job("turn", connection, message, {**echo, "requested_by": connection.id}, key)
        slot.remember(job)
        self._enqueue(slot, job)

    def _repeated(
        self, connection: _Connection, slot: _AgentSlot, echo: Mapping[str, Any]
    ) -> tuple[bool, tuple[str, Any] | None]:
        """Whether a turn request was answered as a repeat of an earlier one (its turn given,
        or why not); and the key to remember it by (None outside a session)."""
        if connection.session is None or "request_id" not in echo:
            return False, None
        key = (connection.session, echo["request_id"])
        earlier = slot.remembered(key)
        if earlier is None:
            return False, key
        why = slot.join(earlier, connection.outbox)
        if why is not None:
            _refused_turn(
                connection.outbox,
                f"request {echo['request_id']!r} was sent before and "
                + (
                    "its turn is no longer kept; it was not run again"
                    if why == "expired"
                    else "was dropped before it ran; send it with a new request_id"
                ),
                why,
                slot.id,
                echo,
            )
        return True, key

    def _command(
        self, connection: _Connection, frame: Mapping[str, Any], echo: dict[str, Any]
    ) -> None:
        name = frame.get("command")
        if "command" not in frame:
            self._bad_frame(
                connection,
                frame,
                f"a command frame needs a 'command': one of {', '.join(COMMANDS)}",
                "bad_frame",
            )
            return
        if name not in COMMANDS:
            connection.send(
                protocol.server_error(
                    f"unrecognized client command type: {_shown(frame)}",
                    error_code="unknown_command",
                    **echo,
                )
            )
            return
        if name == "hello":
            connection.send(self._hello(connection, echo))
            return
        if self.closing:
            self._bad_frame(connection, frame, "the server is shutting down", "shutting_down")
            return
        if name == "create_agent":
            config = frame.get("config")
            if config is None:
                config = {}
            if not isinstance(config, dict):
                connection.send(
                    _command_response(
                        "Error: Failed to init agent - 'config' must be a JSON object, not "
                        + protocol.json_type(config),
                        name,
                        error_code="bad_config",
                        **echo,
                    )
                )
                return
            self._spawn(self._create_agent(connection, config, echo))
            return
        if name == "list_agents":
            agents = [slot.describe() for slot in self.agents.values()]
            connection.send(
                _command_response(f"OK: {len(agents)} agent(s)", name, agents=agents, **echo)
            )
            return
        agent_ref = frame.get("agent_id")
        if not isinstance(agent_ref, str):
            self._bad_frame(
                connection,
                frame,
                f"{name} needs an 'agent_id' string (the agent's id or name)",
                "bad_frame",
            )
            return
        slot = self._find(agent_ref)
        if slot is None:
            connection.send(
                _command_response(
                    f"Error: {self._unknown_agent(agent_ref)}",
                    name,
                    agent_id=agent_ref,
                    error_code="unknown_agent",
                    **echo,
                )
            )
            return
        ids = {"agent_id": slot.id, "agent_name": slot.name}
        if name in _QUEUED_COMMANDS:
            self._queue_command(connection, frame, name, slot, echo)
        elif name == "attach":
            self._attach(connection, slot)
            connection.send(
                _command_response(
                    f"OK: attached to agent {slot.name}",
                    name,
                    **ids,
                    turns=slot.engine.turns,
                    **echo,
                )
            )
        elif name == "detach":
            slot.engine.unsubscribe(connection.outbox)
            connection.agents.discard(slot.id)
            connection.send(
                _command_response(f"OK: detached from agent {slot.name}", name, **ids, **echo)
            )
        elif name == "delete_agent":
            self._delete(slot)
            connection.send(_command_response("OK: Agent deleted", name, **ids, **echo))
        else:  # resume
            after = frame.get("after_turn", 0)
            if isinstance(after, bool) or not isinstance(after, int) or after < 0:
                self._bad_frame(
                    connection,
                    frame,
                    "resume's 'after_turn' must be a turn_id (an integer, 0 for every kept turn)",
                    "bad_frame",
                )
                return
            self._attach(connection, slot)

            def response(replayed: list[int], complete: bool) -> dict[str, Any]:
                return _command_response(
                    f"OK: resumed agent {slot.name} after turn {after}",
                    name,
                    **ids,
                    after_turn=after,
                    replayed_turns=replayed,
                    complete=complete,
                    **echo,
                )

            slot.resume(connection.outbox, after, response)

    def _queue_command(
        self,
        connection: _Connection,
        frame: Mapping[str, Any],
        name: str,
        slot: _AgentSlot,
        echo: dict[str, Any],
    ) -> None:
        """Check a command that runs in the agent's FIFO, and queue it (on the loop)."""
        ids = {"agent_id": slot.id, "agent_name": slot.name}

        def refuse(message: str, code: str) -> None:
            connection.send(
                _command_response(f"Error: {message}", name, **ids, error_code=code, **echo)
            )

        args: dict[str, Any] = {}
        fields = {"rewind": ("checkpoint_id",), "fork": ("checkpoint_id", "name")}
        for field in fields.get(name, ()):
            value = frame.get(field)
            if value is None and name == "fork":
                continue
            if not isinstance(value, str) or not value:
                refuse(f"{name}'s {field!r} must be a non-empty string", "bad_frame")
                return
            args[field] = value
        if name != "get_memory" and not callable(getattr(slot.agent, "checkpoints", None)):
            refuse(
                f"agent {slot.name} keeps no history: its type "
                f"({type(slot.agent).__name__}) has no checkpoints",
                "no_history",
            )
            return
        key = None
        if name == "retry":
            echo = {**echo, "requested_by": connection.id, "command": "retry"}
            answered, key = self._repeated(connection, slot, echo)
            if answered:
                return
        if name == "fork":
            try:
                args["name"] = self._fork_name(slot, args.get("name"))
            except _Refusal as exc:
                refuse(str(exc), exc.code)
                return
        if not connection.take_slot(self.max_turns_in_flight):
            refuse(
                f"this connection has {self.max_turns_in_flight} requests queued or running",
                "busy",
            )
            return
        if name == "fork":
            self.reserved.add(args["name"])  # until the fork is registered or fails
        kind = "turn" if name == "retry" else "command"
        job = _Job(kind, connection, echo=echo, key=key, command=name, args=args)
        slot.remember(job)
        self._enqueue(slot, job)

    def _fork_name(self, slot: _AgentSlot, requested: str | None) -> str:
        """The name of a fork: the requested one, or ``<name>-fork`` (``-fork-2``...).

        Raises:
            _Refusal: a bad or taken name, or no room for another agent.
        """

        def taken(name: str) -> bool:
            return name in self.names or name in self.agents or name in self.reserved

        if requested is not None:
            if not requested.strip() or len(requested) > _MAX_NAME:
                raise _Refusal(
                    f"'name' must be a non-empty string of at most {_MAX_NAME} characters",
                    "bad_config",
                )
            if taken(requested):
                raise _Refusal(f"an agent named {requested!r} already exists", "name_taken")
            name = requested
        else:
            base = f"{slot.name[: _MAX_NAME - 12]}-fork"
            name, number = base, 1
            while taken(name):
                number += 1
                name = f"{base}-{number}"
        if len(self.agents) + len(self.reserved) >= self.max_agents:
            raise _Refusal(
                f"the server hosts its limit of {self.max_agents} agents; delete one first "
                "(delete_agent)",
                "too_many_agents",
            )
        return name

    def _attach(self, connection: _Connection, slot: _AgentSlot) -> None:
        slot.engine.subscribe(connection.outbox)
        connection.agents.add(slot.id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- agent jobs: a FIFO per agent, run on worker threads ---------------------------

    def _enqueue(self, slot: _AgentSlot, job: _Job) -> None:
        with slot.lock:
            slot.jobs.append(job)
            if slot.busy:
                return
            slot.busy = True
        self._submit(slot)

    def _submit(self, slot: _AgentSlot) -> None:
        if self.inline:
            # On the loop, after what is already due: other agents and I/O take their turns.
            assert self.loop is not None
            self.loop.call_soon(self._work, slot)
            return
        try:
            self.executor.submit(self._work, slot)
        except RuntimeError:  # the executor shut down: nobody will run these
            self._drop_jobs(slot, "the server shut down before the request ran", "aborted")

    def _work(self, slot: _AgentSlot) -> None:
        """On a worker thread: run the agent's next job, then hand the agent on."""
        forget = False
        with slot.lock:
            if not slot.jobs:
                slot.busy = False
                forget = slot.deleted
                job = None
            else:
                job = slot.jobs.popleft()
                job.state = _Job.RUNNING
                slot.current = job
        if job is None:
            if forget:
                self._forget(slot)
            self._went_idle()
            return
        try:
            if job.kind == "turn":
                self._run_turn(slot, job)
            else:
                self._run_command(slot, job)
        except Exception:
            logger.exception("job %s of agent %s failed", job.command or job.kind, slot.id)
        finally:
            with slot.lock:
                job.state = _Job.DONE
                slot.current = None
                more = bool(slot.jobs)
                if not more:
                    slot.busy = False
                    forget = slot.deleted
            job.connection.release_slot()
        if forget:
            self._forget(slot)
        if more:
            self._submit(slot)  # to the back of the pool's queue: agents take turns
        else:
            self._went_idle()

    def _run_turn(self, slot: _AgentSlot, job: _Job) -> None:
        with slot.emit_lock:
            if slot.muted:
                with slot.lock:
                    followers, job.followers = job.followers, []
                for outbox in (job.connection.outbox, *followers):
                    _refused_turn(
                        outbox,
                        "the server shut down before the turn ran",
                        "aborted",
                        slot.id,
                        job.echo,
                    )
                return
            slot.engine.begin_turn(job.connection.outbox, **job.echo)
        error = code = None
        try:
            if job.command == "retry":
                slot.agent.retry()  # type: ignore[attr-defined]  # checked when queued
            else:
                slot.agent.turn(job.message)
        except NothingToRetryError as exc:  # Agent.retry's refusal, before anything ran
            error, code = str(exc), "nothing_to_retry"
        except Exception as exc:
            logger.exception("a turn of agent %s failed", slot.id)
            error, code = f"the turn failed: {type(exc).__name__}: {exc}", "turn_failed"
        with slot.emit_lock:
            if not slot.muted:
                slot.engine.end_turn(error, error_code=code, **job.echo)

    def _run_command(self, slot: _AgentSlot, job: _Job) -> None:
        """A queued command, between the agent's turns; answers its sender."""
        name = str(job.command)
        ids = {"agent_id": slot.id, "agent_name": slot.name}
        agent: Any = slot.agent
        try:
            if name == "get_memory":
                frame = _command_response(
                    f"OK: memory of agent {slot.name}",
                    name,
                    **ids,
                    memory=agent.memory_snapshot(),
                    **job.echo,
                )
            elif name == "list_checkpoints":
                checkpoints = [_checkpoint_fields(c) for c in agent.checkpoints()]
                frame = _command_response(
                    f"OK: {len(checkpoints)} checkpoint(s) of agent {slot.name}",
                    name,
                    **ids,
                    checkpoints=checkpoints,
                    current=agent.checkpoint_id,
                    **job.echo,
                )
            elif name == "rewind":
                agent.rewind(job.args["checkpoint_id"])
                frame = _command_response(
                    f"OK: agent {slot.name} rewound to {agent.checkpoint_id}",
                    name,
                    **ids,
                    current=agent.checkpoint_id,
                    **job.echo,
                )
            else:  # fork: registered on the loop, which answers
                self._run_fork(slot, job)
                return
        except UnknownNameError as exc:  # UnknownCheckpointError
            frame = _command_response(
                f"Error: {exc}", name, **ids, error_code="unknown_checkpoint", **job.echo
            )
        except Exception:
            logger.exception("%s failed for agent %s", name, slot.id)
            frame = _command_response(
                f"Error: {name} failed (the server's log says why)",
                name,
                **ids,
                error_code="internal",
                **job.echo,
            )
        job.connection.send(frame)

    def _run_fork(self, slot: _AgentSlot, job: _Job) -> None:
        """Fork the agent (on its worker), then register the fork on the loop."""
        name = job.args["name"]
        interface = _SlotInterface()
        # A model of its own under a fixed policy; under as-requested, the source's (shared).
        model = self.model_policy if self.model_policy != AS_REQUESTED else None
        agent: Any = slot.agent
        result: HostedAgent | BaseException
        try:
            result = agent.fork(
                job.args.get("checkpoint_id"), name, interface=interface, model=model
            )
            source = job.args.get("checkpoint_id") or agent.checkpoint_id
        except Exception as exc:
            if not isinstance(exc, UnknownNameError):
                logger.exception("fork failed for agent %s", slot.id)
            result, source = exc, None
        self._on_loop(self._forked, slot, job, result, interface, source)

    def _forked(
        self,
        source: _AgentSlot,
        job: _Job,
        result: HostedAgent | BaseException,
        interface: _SlotInterface,
        checkpoint_id: str | None,
    ) -> None:
        """On the loop: register a fork and answer ``fork``."""
        name = job.args["name"]
        self.reserved.discard(name)
        ids = {"agent_id": source.id, "agent_name": source.name}
        if isinstance(result, BaseException):
            code = "unknown_checkpoint" if isinstance(result, UnknownNameError) else "internal"
            why = str(result) if code != "internal" else "fork failed (the server's log says why)"
            job.connection.send(
                _command_response(f"Error: {why}", "fork", **ids, error_code=code, **job.echo)
            )
            return
        try:
            slot = self._register(result, name, interface, None)
        except _Refusal as exc:  # an id another agent has as its name: left in the store
            job.connection.send(
                _command_response(f"Error: {exc}", "fork", **ids, error_code=exc.code, **job.echo)
            )
            return
        slot.stored = True
        job.connection.send(
            _command_response(
                "OK: Agent forked",
                "fork",
                agent_id=slot.id,
                agent_name=slot.name,
                model=slot.model,
                forked_from={**ids, "checkpoint_id": checkpoint_id},
                current=getattr(result, "checkpoint_id", None),
                **job.echo,
            )
        )

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on the loop soon; from any thread."""
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is left to answer
            logger.warning("the server stopped before %s could run", getattr(fn, "__name__", fn))

    def _drop_jobs(self, slot: _AgentSlot, message: str, code: str) -> None:
        """Answer every job not yet started as refused; any thread."""
        with slot.lock:
            dropped = list(slot.jobs)
            slot.jobs.clear()
            for job in dropped:
                job.state = _Job.DONE
        for job in dropped:
            if job.kind == "turn":
                for outbox in (job.connection.outbox, *job.followers):
                    _refused_turn(outbox, message, code, slot.id, job.echo)
            else:
                if job.command == "fork":
                    self._on_loop(self.reserved.discard, job.args["name"])
                job.connection.send(
                    _command_response(
                        f"Error: {message}",
                        job.command,
                        agent_id=slot.id,
                        error_code=code,
                        **job.echo,
                    )
                )
            job.connection.release_slot()

    def _went_idle(self) -> None:
        if self.closing and self.loop is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._check_drained)

    def _check_drained(self) -> None:
        if self._drained is not None and not any(s.busy for s in self.agents.values()):
            self._drained.set()

    # -- creating and deleting agents --------------------------------------------------

    def _plan_agent(self, config: Mapping[str, Any]) -> _Plan:
        """Read a client's config: what the factory gets, the name, what was ignored.

        Raises:
            _Refusal: a config the server will not pass on.
        """
        config = dict(config)
        ignored: list[str] = []
        requested = config.pop("model", None)
        llm_config = config.pop("llm_config", None)
        if isinstance(llm_config, dict):
            if requested is None and isinstance(llm_config.get("model"), str):
                requested = llm_config["model"]
            ignored += [f"llm_config.{key}" for key in llm_config if key != "model"]
        elif llm_config is not None:
            ignored.append("llm_config")
        if "embedding_config" in config:
            del config["embedding_config"]
            ignored.append("embedding_config")
        if requested is not None and not isinstance(requested, str):
            raise _Refusal(
                f"'model' must be a string, not {protocol.json_type(requested)}", "bad_config"
            )
        model, note = self._model_for(requested)
        if model is not None:
            config["model"] = model
        accepted = getattr(self.agent_factory, "accepted_keys", None)
        if accepted is not None:
            for key in sorted(set(config) - accepted):
                del config[key]
                ignored.append(key)
        name = config.get("name")
        if name is None:
            name = self._next_name()
        elif not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
            raise _Refusal(
                f"'name' must be a non-empty string of at most {_MAX_NAME} characters", "bad_config"
            )
        if name in self.names or name in self.agents or name in self.reserved:
            raise _Refusal(f"an agent named {name!r} already exists", "name_taken")
        if len(self.agents) + len(self.reserved) >= self.max_agents:
            raise _Refusal(
                f"the server hosts its limit of {self.max_agents} agents; delete one first "
                "(delete_agent)",
                "too_many_agents",
            )
        config["name"] = name
        return _Plan(config, name, ignored, note, requested)

    def _next_name(self) -> str:
        while True:
            self._agent_count += 1
            name = f"agent_{self._agent_count}"
            if name not in self.names and name not in self.agents and name not in self.reserved:
                return name

    def _model_for(self, requested: str | None) -> tuple[str | None, str | None]:
        """The model string an agent runs on under the policy (None: its preset's), and a note."""
        policy = self.model_policy
        if policy != AS_REQUESTED:
            note = None
            if requested is not None and requested != policy:
                note = (
                    f"the server runs every agent on {policy!r} (its model policy); "
                    f"{requested!r} was not used"
                )
            return policy, note
        if requested is None or requested == "scripted":
            return requested, None
        kind, sep, rest = requested.partition(":")
        if not sep:
            return f"openai:{requested}", None  # a bare name, as MemGPT clients send: OpenAI's
        if kind in ("replay", "cassette"):
            raise _Refusal(
                f"model {requested!r} would read a file on the server; not over the wire",
                "bad_config",
            )
        if "@" in rest:
            raise _Refusal(
                "a model string with a base URL is not accepted over the wire; the server's "
                "operator chooses endpoints (memgpt-lab serve --model)",
                "bad_config",
            )
        return requested, None

    def _build(
        self, config: dict[str, Any], interface: AgentInterface, trusted: bool
    ) -> tuple[HostedAgent, bool]:
        """On a worker: the factory's agent, and whether it is in the store (saved there)."""
        from memgpt_lab.persistence import StateManager

        factory, store = self.agent_factory, self.store
        if isinstance(factory, _PresetFactory):
            # Made in the store's database: no private database (and its memory) per agent.
            options = {"persistence_manager": StateManager(store.database)} if store else {}
            agent = factory(config, interface, names_only=not trusted, **options)
        else:
            agent = factory(config, interface)
        if store is None or not isinstance(
            getattr(agent, "persistence_manager", None), StateManager
        ):
            return agent, False
        store.save(agent)  # type: ignore[arg-type]  # an Agent: it has a StateManager
        return agent, True

    async def open_store(self, path: str | os.PathLike[str]) -> None:
        """Open the store and host every agent it holds (on the model the policy says).

        Raises:
            LabError: the store cannot be opened, or an agent in it cannot be loaded.
        """
        loop = asyncio.get_running_loop()
        self.store, loaded = await loop.run_in_executor(self.executor, self._load_store, path)
        for agent, interface in loaded:
            name = str(agent.name)
            if name in self.names or name in self.agents:
                logger.warning(
                    "two stored agents are named %r: agent %s is addressable by its id only",
                    name,
                    agent.id,
                )
            self._register(agent, name, interface, None).stored = True

    def _load_store(
        self, path: str | os.PathLike[str]
    ) -> tuple[AgentStore, list[tuple[HostedAgent, _SlotInterface]]]:
        from memgpt_lab.persistence import AgentStore

        store = AgentStore(path)
        model = self.model_policy if self.model_policy != AS_REQUESTED else None
        loaded: list[tuple[HostedAgent, _SlotInterface]] = []
        try:
            for stored in store.list():
                interface = _SlotInterface()
                try:
                    loaded.append((store.load(stored.id, interface, model), interface))
                except (LabError, ValueError) as exc:
                    raise LabError(
                        f"could not load agent {stored.name!r} ({stored.id}) from {path}: {exc}"
                    ) from None
        except BaseException:
            store.close()
            raise
        return store, loaded

    def _forget(self, slot: _AgentSlot) -> None:
        """Delete a deleted agent from the store, once (any thread; no job of it runs)."""
        with slot.lock:
            stored, slot.stored = slot.stored, False
        if stored and self.store is not None:
            try:
                self.store.delete(slot.id)
            except LabError:
                logger.exception("could not delete agent %s from the store", slot.id)

    def _register(
        self, agent: HostedAgent, name: str, interface: _SlotInterface, config_model: str | None
    ) -> _AgentSlot:
        agent_id = str(agent.id)
        if agent_id in self.agents or (agent_id in self.names and agent_id != name):
            raise _Refusal(f"an agent with id or name {agent_id!r} already exists", "name_taken")
        model = getattr(getattr(agent, "model", None), "name", None)
        slot = _AgentSlot(
            agent,
            name,
            model if isinstance(model, str) else config_model,
            history_bytes=self.resume_buffer_bytes,
            max_requests=self.max_remembered_requests,
        )
        agent.interface = interface
        interface.slot = slot
        self.agents[slot.id] = slot
        self.names.setdefault(name, slot.id)  # two stored agents of one name: the first has it
        return slot

    async def create_agent(self, config: Mapping[str, Any], *, trusted: bool) -> _AgentSlot:
        """Create and register an agent (raising what the factory raised, or _Refusal)."""
        plan = self._plan_agent(config)
        return await self._create(plan.config, plan.name, trusted)

    async def _create(self, config: dict[str, Any], name: str, trusted: bool) -> _AgentSlot:
        interface = _SlotInterface()
        self.reserved.add(name)
        try:
            agent, stored = await asyncio.get_running_loop().run_in_executor(
                self.executor, self._build, config, interface, trusted
            )
        finally:
            self.reserved.discard(name)
        model = config.get("model")
        slot = self._register(agent, name, interface, model if isinstance(model, str) else None)
        slot.stored = stored
        return slot

    async def _create_agent(
        self, connection: _Connection, config: dict[str, Any], echo: dict[str, Any]
    ) -> None:
        try:
            plan = self._plan_agent(config)
            slot = await self._create(plan.config, plan.name, trusted=False)
        except _Refusal as exc:
            reason, code = str(exc), exc.code
        except UnknownNameError as exc:
            reason, code = str(exc), "unknown_name"
        except (LabError, ValueError, TypeError) as exc:
            reason, code = str(exc), "bad_config"
        except Exception:
            logger.exception("the agent factory failed")
            reason, code = "internal error (the server's log says why)", "internal"
        else:
            extra: dict[str, Any] = {}
            if plan.requested is not None:
                extra["model_requested"] = plan.requested
            if plan.ignored:
                extra["ignored"] = plan.ignored
            if plan.note:
                extra["note"] = plan.note
            connection.send(
                _command_response(
                    "OK: Agent initialized",
                    "create_agent",
                    agent_id=slot.id,
                    agent_name=slot.name,
                    model=slot.model,
                    **extra,
                    **echo,
                )
            )
            return
        connection.send(
            _command_response(
                f"Error: Failed to init agent - {reason}",
                "create_agent",
                error_code=code,
                **echo,
            )
        )

    def _delete(self, slot: _AgentSlot) -> None:
        del self.agents[slot.id]
        if self.names.get(slot.name) == slot.id:
            del self.names[slot.name]
        for connection in self.connections.values():
            if slot.id in connection.agents:
                connection.agents.discard(slot.id)
                slot.engine.unsubscribe(connection.outbox)
        # A running turn finishes for its recipients; queued requests are answered now.
        self._drop_jobs(slot, f"agent {slot.name!r} was deleted before the request ran", "deleted")
        with slot.lock:
            slot.deleted = True
            idle = not slot.busy  # else the last job's worker forgets it (see _work)
        if idle:
            self._forget(slot)

    # -- bookkeeping -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What the server holds, per agent and per connection; on the loop."""
        connections = {}
        for connection in self.connections.values():
            outbox = connection.outbox
            transport = connection.ws.transport
            connections[connection.id] = {
                "queued_frames": outbox.queued,
                "queued_bytes": outbox.queued_chars,
                "max_queued_bytes": outbox.max_queued_bytes,
                "overflowed": outbox.overflowed,
                "closing": connection.closing,
                "transport_buffered": transport.get_write_buffer_size() if transport else 0,
                "turns_in_flight": connection.inflight,
                "attached": sorted(connection.agents),
                "session": connection.session,
            }
        agents = {}
        for slot in self.agents.values():
            with slot.lock:
                agents[slot.id] = {
                    **slot.describe(),
                    "queued_jobs": len(slot.jobs),
                    "busy": slot.busy,
                    "buffered_bytes": slot.history_chars,
                    "buffered_frames": len(slot.history),
                    "remembered_requests": len(slot.requests),
                    "subscribers": len(slot.engine.subscribers),
                }
        return {
            "agents": agents,
            "connections": connections,
            "rejections": len(self.rejections),
            "tasks": len(self.tasks),
        }

    # -- shutdown ----------------------------------------------------------------------

    async def shutdown(self, server: Server, grace: float) -> None:
        """Refuse new requests, let running turns finish (or abort them), close with 1001."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self.closing = True
        self.stopping.set()
        if self.tasks:  # agents being created
            await asyncio.wait(set(self.tasks), timeout=grace)
        self._drained = asyncio.Event()
        self._check_drained()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._drained.wait(), max(deadline - loop.time(), 0))
        late = [slot for slot in self.agents.values() if slot.busy]
        for slot in late:
            # Worker threads cannot be interrupted: end the turn for its clients, mute the rest.
            with slot.emit_lock:
                slot.muted = True
                current = slot.current
                slot.engine.end_turn(
                    "the server shut down before the turn finished",
                    error_code="aborted",
                    **(current.echo if current is not None else {}),
                )
            self._drop_jobs(slot, "the server shut down before the request ran", "aborted")
        if late:
            logger.warning(
                "aborted the turns of %d agent(s) still running after %ss", len(late), grace
            )
        # Let every writer send what is queued (the ends of aborted turns too).
        flushes = [asyncio.ensure_future(c.flush()) for c in self.connections.values()]
        if flushes:
            await asyncio.wait(flushes, timeout=max(grace, 1.0))
            for flush in flushes:
                flush.cancel()
        server.close()  # closes open connections with 1001 (going away)
        await server.wait_closed()
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.store is not None:
            self.store.close()  # every step so far is committed; an aborted one fails


class _BatchingConnection(ServerConnection):
    """A server connection that hands the kernel all its pending bytes in one write.

    websockets writes each frame with its own ``transport.write``: on a socket with
    Nagle off, one system call and one TCP segment per frame. A turn's frames are
    ready together, so :func:`_send_texts` frames them all and this writes them at
    once: the client gets the same frames, in order, for a fraction of the cost.
    """

    def send_data(self) -> None:
        pending: list[bytes] = []
        for data in self.protocol.data_to_send():
            if data:
                pending.append(data)
                continue
            # An empty chunk means end of stream: write what came before it first.
            if pending:
                self.transport.write(b"".join(pending))
                pending = []
            if self.transport.can_write_eof():
                with contextlib.suppress(Exception):
                    self.transport.write_eof()
            else:
                self.transport.close()
        if pending:
            self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))


async def _send_texts(ws: ServerConnection, payloads: Sequence[bytes]) -> None:
    """Send each UTF-8 payload as a text frame, in order, with flow control; raises
    :exc:`ConnectionClosed` as :meth:`ServerConnection.send` does."""
    async with ws.send_context():
        for payload in payloads:
            ws.protocol.send_text(payload)


async def _close(ws: ServerConnection, code: int, reason: str) -> None:
    """Close with ``code``; a client that reads nothing cannot hold the close up for long."""
    try:
        await asyncio.wait_for(ws.close(code, reason), ws.close_timeout)
    except (TimeoutError, ConnectionClosed):
        ws.transport.abort()


def _checkpoint_fields(checkpoint: Any) -> dict[str, Any]:
    """A :class:`~memgpt_lab.persistence.Checkpoint` as ``list_checkpoints`` sends it."""
    return {
        "id": checkpoint.id,
        "parent_id": checkpoint.parent_id,
        "turn": checkpoint.turn,
        "step": checkpoint.step,
        "label": checkpoint.label,
        "created_at": checkpoint.created_at.isoformat(),
    }


def _echo(frame: Mapping[str, Any]) -> dict[str, Any]:
    request_id = frame.get("request_id")
    if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
        return {"request_id": request_id}
    return {}


def _record_close(recording: Recording, ws: ServerConnection, connection_id: str) -> None:
    received, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
    frames = [("in", received), ("out", sent)]
    if not ws.protocol.close_rcvd_then_sent:
        frames.reverse()
    recorded = False
    for direction, close in frames:
        if close is not None:
            recording.record_close(
                direction, int(close.code), close.reason, connection_id=connection_id
            )
            recorded = True
    if not recorded:
        # No close frame either way: the TCP connection just dropped (1006).
        recording.record_close("in", 1006, "connection lost", connection_id=connection_id)


# --------------------------------------------------------------------------- LabServer


class LabServer(BackgroundServer):
    """The agent server on a loop of its own, for notebooks and tests.

    Start it (``start()`` or ``with``), connect clients to :attr:`url`, then
    ``stop()``: running turns get ``grace`` seconds to finish, then every
    connection is closed with code 1001 (going away).

    Args:
        host: where to listen; loopback by default. Anything else needs ``token``.
        port: 0 (the default) picks a free port; see :attr:`port`.
        token: when set, clients must send it as ``?token=...`` or
            ``Authorization: Bearer ...``, or the handshake is refused (401).
        allowed_origins: browser origins that may connect (strings, or regexes
            matching the whole origin; ``"*"`` for any). Default: pages on
            ``localhost`` / ``127.0.0.1`` / ``[::1]``, any port. Clients that
            send no ``Origin`` (non-browsers) are always allowed.
        agent_factory: ``factory(config, interface) -> agent``; by default
            :func:`memgpt_lab.presets.create_agent_from_config` (names only over
            the wire; config keys it does not read are ignored and reported).
        model: the model policy: ``"scripted"`` (the default), a model string
            for every agent (``"ollama:llama3.1"``; see
            :func:`memgpt_lab.llm.get_model`), or ``"as-requested"``
            (:data:`AS_REQUESTED`). It sets the ``model`` key the factory gets.
        agents: configs of agents to create at start (from Python, so a
            ``preset`` may be a path), each as ``create_agent``'s config; one
            whose ``name`` the store already holds is not created again.
        db: the SQLite file agents are kept in (created if missing): loaded at
            start, every step committed, so a new server on it has them all. None
            (the default): one in-memory store shared by the server's agents.
        preset_directories / persona_directories / human_directories: more
            directories the default factory looks names up in.
        recording: where frames are recorded; a new one by default.
        record: False to record nothing (``recording`` is then None).
        max_size: the largest client frame in bytes; bigger ones close with 1009.
        max_queued_bytes: frames queued for one connection before it counts as
            not reading and is closed with 1008.
        max_turns_in_flight: requests one connection may have queued or running.
        max_agents: agents hosted at most.
        max_rejections: refused handshakes kept in :attr:`rejections`.
        resume_buffer_bytes: recent turn frames kept per agent for ``resume``
            and repeated requests (0 keeps none).
        max_remembered_requests: ``request_id``s remembered per agent.
        max_workers: worker threads, i.e. turns of different agents at once; 0 runs
            turns on the server's loop thread (no thread hop, no contention for the
            GIL: the fastest for offline agents, but a turn holds up every
            connection while it runs). None (the default): 0 when every agent runs
            offline (the ``scripted`` model policy and the default factory), else
            :data:`DEFAULT_MAX_WORKERS`.
        grace: seconds ``stop()`` lets running turns finish before aborting them.

    Raises:
        ValueError: ``host`` is not loopback and ``token`` is None; a limit
            below 1 (0 allowed for ``resume_buffer_bytes``).
        UnknownNameError: ``model`` names no model.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        allowed_origins: Sequence[str | re.Pattern[str]] | None = None,
        agent_factory: AgentFactory | None = None,
        model: str = "scripted",
        agents: Iterable[Mapping[str, Any]] = (),
        db: str | os.PathLike[str] | None = None,
        preset_directories: Sequence[str] | None = None,
        persona_directories: Sequence[str] | None = None,
        human_directories: Sequence[str] | None = None,
        recording: Recording | None = None,
        record: bool = True,
        max_size: int = DEFAULT_MAX_SIZE,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        max_turns_in_flight: int = DEFAULT_MAX_TURNS_IN_FLIGHT,
        max_agents: int = DEFAULT_MAX_AGENTS,
        max_rejections: int = DEFAULT_MAX_REJECTIONS,
        resume_buffer_bytes: int = DEFAULT_RESUME_BUFFER_BYTES,
        max_remembered_requests: int = DEFAULT_MAX_REMEMBERED_REQUESTS,
        max_workers: int | None = None,
        grace: float = 10.0,
    ) -> None:
        if not is_loopback(host) and not token:
            raise ValueError(
                f"refusing to serve on {host!r} without a token: anyone who can reach it could "
                "drive the agents; pass token=... (or bind 127.0.0.1)"
            )
        limits = {
            "max_size": max_size,
            "max_queued_bytes": max_queued_bytes,
            "max_turns_in_flight": max_turns_in_flight,
            "max_agents": max_agents,
            "max_rejections": max_rejections,
            "max_remembered_requests": max_remembered_requests,
        }
        for option, value in limits.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{option} must be a positive integer, not {value!r}")
        if max_workers is None:
            offline = model == "scripted" and agent_factory is None
            max_workers = 0 if offline else DEFAULT_MAX_WORKERS
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 0:
            raise ValueError(f"max_workers must be 0 or a positive integer, not {max_workers!r}")
        if (
            isinstance(resume_buffer_bytes, bool)
            or not isinstance(resume_buffer_bytes, int)
            or resume_buffer_bytes < 0
        ):
            raise ValueError(
                f"resume_buffer_bytes must be 0 or a positive integer, not {resume_buffer_bytes!r}"
            )
        if model != AS_REQUESTED:
            from memgpt_lab.llm import get_model

            get_model(model)  # fail now, not at the first create_agent
        super().__init__(host, port)
        self.grace = grace
        self.max_size = max_size
        self.model_policy = model
        self.recording: Recording | None = None
        if record:  # not `recording or ...`: an empty Recording is falsy
            self.recording = recording if recording is not None else Recording()
        self._startup_agents = [dict(config) for config in agents]
        self.db = ":memory:" if db is None else os.fspath(db)
        self._core = _ServerCore(
            agent_factory=agent_factory
            or _PresetFactory(
                {
                    "presets": list(preset_directories or ()),
                    "personas": list(persona_directories or ()),
                    "humans": list(human_directories or ()),
                }
            ),
            recording=self.recording,
            token=token,
            allowed_origins=DEFAULT_ALLOWED_ORIGINS if allowed_origins is None else allowed_origins,
            model_policy=model,
            max_workers=max_workers,
            max_queued_bytes=max_queued_bytes,
            max_turns_in_flight=max_turns_in_flight,
            max_agents=max_agents,
            max_rejections=max_rejections,
            resume_buffer_bytes=resume_buffer_bytes,
            max_remembered_requests=max_remembered_requests,
            max_size=max_size,
        )

    @property
    def stopping(self) -> threading.Event:
        """Set once :meth:`stop` has begun: requests are refused, running turns may finish."""
        return self._core.stopping

    @property
    def rejections(self) -> list[tuple[int, str]]:
        """Refused handshakes, as ``(HTTP status, reason)``, oldest first (the last
        ``max_rejections``)."""
        return list(self._core.rejections)

    @property
    def store(self) -> AgentStore | None:
        """Where the agents are kept, once started (closed when the server stops)."""
        return self._core.store

    @property
    def agents(self) -> dict[str, HostedAgent]:
        """The hosted agents by id (a snapshot)."""
        return {agent_id: slot.agent for agent_id, slot in list(self._core.agents.items())}

    def stats(self) -> dict[str, Any]:
        """What the server holds right now: per connection (``queued_bytes``,
        ``transport_buffered``, ``turns_in_flight``, ``overflowed``...) and per agent
        (``queued_jobs``, ``buffered_bytes``, ``remembered_requests``...)."""
        if self._loop is None or not self.running:
            raise RuntimeError("the server is not running")
        return self._loop.run(_call(self._core.stats))

    async def _open(self) -> Server:
        core = self._core
        core.loop = asyncio.get_running_loop()
        try:
            try:
                await core.open_store(self.db)
            except (LabError, OSError, sqlite3.Error) as exc:  # sqlite3's: not a database
                raise LabError(f"could not open the agent store {self.db}: {exc}") from None
            for number, config in enumerate(self._startup_agents, 1):
                if config.get("name") in core.names:
                    continue  # kept in the store from an earlier run
                try:
                    await core.create_agent(config, trusted=True)
                except (_Refusal, LabError, ValueError, TypeError, OSError) as exc:
                    raise LabError(
                        f"could not create agent {number} ({config.get('name', 'unnamed')}): {exc}"
                    ) from None
            return await serve(
                core.handle,
                self.host,
                self._requested_port,
                process_request=core.process_request,
                max_size=self.max_size,
                server_header=_SERVER_NAME,
                create_connection=_BatchingConnection,
            )
        except BaseException:
            core.executor.shutdown(wait=False)
            if core.store is not None:
                core.store.close()
            raise

    async def _shutdown(self, server: Server, **options: Any) -> None:
        grace = options.get("grace")
        await self._core.shutdown(server, self.grace if grace is None else grace)

    def start(self) -> LabServer:
        """Create the start-up agents, listen and serve in a background thread; returns once
        connections are accepted.

        Raises:
            LabError: a start-up agent could not be created.
            OSError: the port is taken.
        """
        return super().start()

    def stop(self, grace: float | None = None) -> None:
        """Finish or abort running turns, close connections with 1001, end the thread.

        Idempotent. ``grace`` overrides the constructor's.
        """
        self._stop(grace=grace)

    def __enter__(self) -> LabServer:
        return self.start()

    def __repr__(self) -> str:
        state = self.url if self.running else "stopped"
        return f"<LabServer {state} agents={len(self._core.agents)}>"


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8282,
    token: str | None = None,
    allowed_origins: Sequence[str | re.Pattern[str]] | None = None,
    *,
    agent_factory: AgentFactory | None = None,
    grace: float = 10.0,
    **options: Any,
) -> None:
    """Serve agents until Ctrl-C (or SIGTERM), then shut down cleanly. For ``memgpt-lab serve``.

    Prints one line with the URL once it listens. Records nothing: a
    long-running server would otherwise grow without bound. ``options`` are
    :class:`LabServer`'s (``model``, ``agents``, the limits...).

    Raises:
        ValueError: ``host`` is not loopback and ``token`` is None; a bad limit.
        LabError: a start-up agent could not be created, or ``model`` names no model.
        OSError: the port is taken.
    """
    server = LabServer(
        host,
        port,
        token=token,
        allowed_origins=allowed_origins,
        agent_factory=agent_factory,
        record=False,
        grace=grace,
        **options,
    )
    run_until_interrupted(server, lambda: f"memgpt-lab serving on {server.url} (Ctrl-C to stop)")
