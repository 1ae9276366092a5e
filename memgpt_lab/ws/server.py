"""A WebSocket server that hosts agents, speaking MemGPT's WebSocket protocol.

Run it from a terminal with ``memgpt-lab serve`` (:func:`serve_forever`), or
from a notebook or a test with :class:`LabServer`, which serves on a loop in
a background thread and records every frame into a
:class:`~memgpt_lab.recorder.Recording`::

    with LabServer() as server:           # 127.0.0.1, an ephemeral port
        ...connect to server.url...
    server.recording.table()

The protocol is MemGPT's (see :mod:`memgpt_lab.ws.protocol`) plus additive
fields and frames: a ``hello`` frame on connect (with the ``connection_id``);
``seq`` (per connection, from 1, on every frame); ``agent_id`` and
``turn_id`` on every frame of a turn; ``request_id`` echoed from the request
and, on a turn's start and end, ``requested_by`` (the connection id of the
sender, since other connections see the turn too); an ``error`` code on
error frames; the commands ``list_agents``, ``get_memory``, ``attach`` and
``detach``.

How a turn flows, and why its frames cannot be lost or reordered:

1. A ``user_message`` becomes one task on the server's loop. It takes the
   agent's :class:`asyncio.Lock` (turns of one agent run one at a time, in
   arrival order; other agents' turns run meanwhile), sends
   ``agent_response_start`` and runs ``agent.turn(message)`` on a worker
   thread, so the loop keeps answering pings, commands and other agents.
2. The agent calls its interface on the worker thread; each event is encoded
   there and appended to the agent's pending list, and the loop is woken
   only when that list goes from empty to non-empty.
3. When ``agent.turn`` returns, the task drains the pending list itself, on
   the loop, *then* queues ``agent_response_end``. Every event was appended
   before ``turn`` returned, so the end frame is queued after the turn's last
   frame by construction: no sleep, no timing assumption.
4. Frames are routed to the connections attached to that agent (its creator,
   whoever sent to it or attached to it), never broadcast. The recipients of a
   turn are fixed when it starts: attaching or detaching takes effect at the
   next turn, so nobody sees half a turn. Each connection
   has one queue and one writer task, which numbers nothing and reorders
   nothing: ``seq`` is assigned when a frame is queued, on the loop.

Threads: the loop thread (``LabServer`` makes one; ``serve_forever`` uses the
caller's) and a pool of worker threads for agent turns and agent creation.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hmac
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from memgpt_lab._hosting import is_loopback, run_until_interrupted
from memgpt_lab.errors import LabError
from memgpt_lab.interface import AgentInterface
from memgpt_lab.recorder import Recording
from memgpt_lab.ws import protocol
from memgpt_lab.ws._serving import BackgroundServer

__all__ = [
    "DEFAULT_ALLOWED_ORIGINS",
    "DEFAULT_MAX_SIZE",
    "HostedAgent",
    "LabServer",
    "origin_allowed",
    "serve_forever",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Browser origins accepted by default: pages served from this machine's loopback.
DEFAULT_ALLOWED_ORIGINS: tuple[re.Pattern[str], ...] = (
    re.compile(r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?"),
)

#: The largest frame a client may send, in bytes; bigger ones close the connection (1009).
DEFAULT_MAX_SIZE = 1 << 20

_SERVER_NAME = "memgpt_lab"


class HostedAgent(Protocol):
    """What the server needs of an agent (:class:`memgpt_lab.agent.Agent` has it)."""

    id: str
    name: str
    interface: AgentInterface

    def turn(self, message: str) -> Any: ...

    def memory_snapshot(self) -> dict[str, Any]: ...


#: Builds an agent from a client's ``config`` and the interface it must report to.
AgentFactory = Callable[[dict[str, Any], AgentInterface], HostedAgent]


def _default_factory(config: dict[str, Any], interface: AgentInterface) -> HostedAgent:
    # Imported on first use: the agent core is not needed to import this module.
    from memgpt_lab.presets import create_agent_from_config

    agent: HostedAgent = create_agent_from_config(config, interface)
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


# --------------------------------------------------------------------------- connections


class _Connection:
    """One client: its outgoing queue, writer task, ``seq`` counter and attachments.

    Everything here runs on the server's loop.
    """

    __slots__ = (
        "ws",
        "id",
        "recording",
        "queue",
        "wake",
        "idle",
        "seq",
        "agents",
        "writer",
        "closed",
    )

    def __init__(self, ws: ServerConnection, connection_id: str, recording: Recording | None):
        self.ws = ws
        self.id = connection_id
        self.recording = recording
        self.queue: collections.deque[str] = collections.deque()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.seq = 0
        self.agents: set[str] = set()
        self.writer: asyncio.Task[None] | None = None
        self.closed = False

    def push(self, body: str) -> None:
        """Queue one encoded frame (a JSON object without ``seq``), numbering it."""
        self.seq += 1
        # Splice seq in front instead of re-encoding: bodies are shared by every
        # connection attached to an agent and encoded once, on the worker thread.
        self.queue.append(f'{{"seq":{self.seq},{body[1:]}')
        self.idle.clear()
        self.wake.set()

    def send(self, frame: Mapping[str, Any]) -> None:
        self.push(protocol.encode(dict(frame)))

    async def write_loop(self) -> None:
        ws, queue, recording = self.ws, self.queue, self.recording
        try:
            while True:
                while queue:
                    text = queue.popleft()
                    if recording is not None:
                        # Recorded before the send so the recording is in wire order.
                        recording.record("out", text, connection_id=self.id)
                    await ws.send(text)
                self.idle.set()
                self.wake.clear()
                await self.wake.wait()
        except ConnectionClosed:
            pass
        finally:
            queue.clear()
            self.idle.set()


class _AgentSlot:
    """A hosted agent, its turn lock, its subscribers and its pending events."""

    def __init__(self, agent: HostedAgent) -> None:
        self.agent = agent
        self.id = agent.id
        self.lock = asyncio.Lock()
        self.subscribers: dict[str, _Connection] = {}
        # Who gets the current turn: fixed at its start, so a connection that attaches
        # (or detaches) mid-turn never sees half a turn.
        self.recipients: list[_Connection] = []
        self.turns = 0
        self.turn_id = 0
        self.pending: list[str] = []
        self.pending_lock = threading.Lock()
        # Set when a turn is aborted: its worker thread may still emit, and must not
        # put frames after the turn's end.
        self.muted = False

    def begin_turn(self, requester: _Connection) -> None:
        """Fix the turn's recipients: the subscribers now, and always the one who asked."""
        self.recipients = list(self.subscribers.values())
        if requester not in self.recipients:  # it detached while its turn waited
            self.recipients.append(requester)

    def deliver(self, body: str) -> None:
        for connection in self.recipients:
            if not connection.closed:
                connection.push(body)

    def drain(self, mute: bool = False) -> None:
        """Deliver the events the worker thread queued; on the loop.

        With ``mute``, later events of this agent are dropped (an aborted turn).
        """
        with self.pending_lock:
            bodies, self.pending = self.pending, []
            self.muted = self.muted or mute
        for body in bodies:
            self.deliver(body)


class _ServerInterface(AgentInterface):
    """The interface a hosted agent reports to: encodes on the calling thread, wakes the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.slot: _AgentSlot | None = None

    def _emit(self, kind: str, msg: str) -> None:
        slot = self.slot
        if slot is None:  # an event while the agent is being built: nobody to tell
            return
        body = protocol.encode(
            protocol.event_frame(kind, msg, agent_id=slot.id, turn_id=slot.turn_id)
        )
        with slot.pending_lock:
            if slot.muted:
                return
            slot.pending.append(body)
            first = len(slot.pending) == 1
        if first:
            # A closed loop (a turn outliving an aborted shutdown) has nobody to tell.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(slot.drain)

    def internal_monologue(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self._emit("internal_monologue", msg)

    def assistant_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self._emit("assistant_message", msg)

    def function_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self._emit("function_message", msg)


# --------------------------------------------------------------------------- the core


class _ServerCore:
    """Connections, agents and request handling; lives on one loop."""

    def __init__(
        self,
        *,
        agent_factory: AgentFactory,
        recording: Recording | None,
        token: str | None,
        allowed_origins: Sequence[str | re.Pattern[str]],
        max_workers: int,
    ) -> None:
        self.agent_factory = agent_factory
        self.recording = recording
        self.token = token
        self.allowed_origins = tuple(allowed_origins)
        self.agents: dict[str, _AgentSlot] = {}
        self.connections: dict[str, _Connection] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        #: Set on the loop once shutdown has begun: new requests are refused from then on.
        self.stopping = threading.Event()
        self.rejections: list[tuple[int, str]] = []
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers, thread_name_prefix="memgpt_lab-agent"
        )
        self._connection_count = 0

    # -- handshake ---------------------------------------------------------------------

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse disallowed browser origins (403) and missing or wrong tokens (401)."""
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, self.allowed_origins):
            return self._reject(
                connection, HTTPStatus.FORBIDDEN, f"origin {origin!r} is not allowed"
            )
        if self.token is not None:
            given = parse_qs(urlsplit(request.path).query).get("token", [None])[-1]
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
        connection = _Connection(ws, self._new_connection_id(), self.recording)
        self.connections[connection.id] = connection
        connection.writer = asyncio.create_task(connection.write_loop())
        connection.send(
            protocol.hello(
                server=_SERVER_NAME,
                connection_id=connection.id,
                commands=list(protocol.COMMANDS),
            )
        )
        recording = self.recording
        try:
            async for message in ws:
                if recording is not None:
                    recording.record("in", message, connection_id=connection.id)
                self.dispatch(connection, message)
        except ConnectionClosed:
            pass  # an abnormal close; recorded below like any other
        finally:
            connection.closed = True
            for agent_id in connection.agents:
                slot = self.agents.get(agent_id)
                if slot is not None:
                    slot.subscribers.pop(connection.id, None)
            del self.connections[connection.id]
            connection.wake.set()
            connection.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connection.writer
            if recording is not None:
                _record_close(recording, ws, connection.id)

    # -- requests ----------------------------------------------------------------------

    def dispatch(self, connection: _Connection, message: str | bytes) -> None:
        """Answer one client frame: errors at once, requests in a task of their own."""
        if isinstance(message, bytes):
            connection.send(
                protocol.server_error(
                    "binary frames are not supported; send JSON text frames", error="binary_frame"
                )
            )
            return
        try:
            frame = protocol.decode(message)
        except LabError as exc:
            connection.send(protocol.server_error(str(exc), error="bad_frame"))
            return
        echo = _echo(frame)
        kind = frame["type"]
        try:
            protocol.check_client_frame(frame)
        except LabError as exc:
            connection.send(_error_frame(kind, frame, str(exc), "bad_frame", echo))
            return
        if self.closing:
            connection.send(
                _error_frame(kind, frame, "the server is shutting down", "shutting_down", echo)
            )
            return
        if kind == "user_message":
            slot = self._slot(connection, frame, echo)
            if slot is not None:
                self._attach(connection, slot)
                # Every subscriber sees the turn; requested_by tells the sender it is theirs.
                echo["requested_by"] = connection.id
                self._spawn(self.run_turn(slot, connection, frame["message"], echo))
            return
        name = frame["command"]
        if name == "create_agent":
            self._spawn(self.create_agent(connection, frame.get("config") or {}, echo))
        elif name == "list_agents":
            agents = [_describe(slot) for slot in self.agents.values()]
            connection.send(
                protocol.command_response(
                    "OK", f"{len(agents)} agent(s)", command=name, agents=agents, **echo
                )
            )
        else:
            slot = self._slot(connection, frame, echo)
            if slot is None:
                return
            if name == "get_memory":
                self._spawn(self.get_memory(connection, slot, echo))
                return
            if name == "attach":
                self._attach(connection, slot)
            else:
                slot.subscribers.pop(connection.id, None)
                connection.agents.discard(slot.id)
            connection.send(
                protocol.command_response(
                    "OK", f"{name}ed agent {slot.id}", command=name, agent_id=slot.id, **echo
                )
            )

    def _slot(
        self, connection: _Connection, frame: Mapping[str, Any], echo: dict[str, Any]
    ) -> _AgentSlot | None:
        agent_id = frame["agent_id"]
        slot = self.agents.get(agent_id)
        if slot is None:
            known = ", ".join(self.agents) or "none yet; send create_agent first"
            connection.send(
                _error_frame(
                    frame["type"],
                    frame,
                    f"unknown agent_id {agent_id!r}; agents: {known}",
                    "unknown_agent",
                    echo,
                )
            )
        return slot

    def _attach(self, connection: _Connection, slot: _AgentSlot) -> None:
        slot.subscribers[connection.id] = connection
        connection.agents.add(slot.id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _in_worker(self, fn: Callable[..., _T], *args: Any) -> Awaitable[_T]:
        return asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def create_agent(
        self, connection: _Connection, config: dict[str, Any], echo: dict[str, Any]
    ) -> None:
        interface = _ServerInterface(asyncio.get_running_loop())
        try:
            agent = await self._in_worker(self.agent_factory, config, interface)
            if agent.id in self.agents:
                raise LabError(f"an agent with id {agent.id!r} already exists")
        except (LabError, ValueError, TypeError) as exc:
            connection.send(
                protocol.command_response(
                    "error",
                    f"create_agent failed: {exc}",
                    command="create_agent",
                    error="bad_config",
                    **echo,
                )
            )
            return
        except Exception as exc:
            logger.exception("agent factory failed")
            connection.send(
                protocol.command_response(
                    "error",
                    f"create_agent failed: {type(exc).__name__}: {exc}",
                    command="create_agent",
                    error="internal",
                    **echo,
                )
            )
            return
        agent.interface = interface
        slot = _AgentSlot(agent)
        interface.slot = slot
        self.agents[slot.id] = slot
        self._attach(connection, slot)
        connection.send(
            protocol.command_response(
                "OK",
                f"created agent {slot.id}",
                command="create_agent",
                agent_id=slot.id,
                agent=_describe(slot),
                **echo,
            )
        )

    async def get_memory(
        self, connection: _Connection, slot: _AgentSlot, echo: dict[str, Any]
    ) -> None:
        # Under the turn lock: a snapshot taken mid-turn would mix two states.
        async with slot.lock:
            try:
                memory = await self._in_worker(slot.agent.memory_snapshot)
            except Exception as exc:
                logger.exception("memory_snapshot failed for agent %s", slot.id)
                connection.send(
                    protocol.command_response(
                        "error",
                        f"get_memory failed: {type(exc).__name__}: {exc}",
                        command="get_memory",
                        agent_id=slot.id,
                        error="internal",
                        **echo,
                    )
                )
                return
        connection.send(
            protocol.command_response(
                "OK", "", command="get_memory", agent_id=slot.id, memory=memory, **echo
            )
        )

    async def run_turn(
        self, slot: _AgentSlot, requester: _Connection, message: str, echo: dict[str, Any]
    ) -> None:
        """One turn: start, the agent's events, end; one agent's turns one at a time.

        The turn goes to the agent's subscribers when it starts, and to ``requester``
        in any case: a client always gets the turn it asked for.
        """
        async with slot.lock:
            slot.turns += 1
            slot.turn_id = turn_id = slot.turns
            fields = {"agent_id": slot.id, "turn_id": turn_id}
            slot.begin_turn(requester)
            slot.deliver(protocol.encode(protocol.agent_response_start(**fields, **echo)))
            try:
                await self._in_worker(slot.agent.turn, message)
            except asyncio.CancelledError:
                slot.drain(mute=True)
                slot.deliver(
                    protocol.encode(
                        protocol.agent_response_error(
                            "the server shut down before the turn finished",
                            error="aborted",
                            **fields,
                        )
                    )
                )
                slot.deliver(protocol.encode(protocol.agent_response_end(**fields, **echo)))
                raise
            except Exception as exc:
                logger.exception("turn %s of agent %s failed", turn_id, slot.id)
                slot.drain()
                slot.deliver(
                    protocol.encode(
                        protocol.agent_response_error(
                            f"the turn failed: {type(exc).__name__}: {exc}",
                            error="turn_failed",
                            **fields,
                        )
                    )
                )
            else:
                # Every event was queued before turn() returned: drain them, then end.
                slot.drain()
            slot.deliver(protocol.encode(protocol.agent_response_end(**fields, **echo)))

    # -- shutdown ----------------------------------------------------------------------

    async def shutdown(self, server: Server, grace: float) -> None:
        """Refuse new requests, let running turns finish (or abort them), close with 1001."""
        self.closing = True
        pending = set(self.tasks)
        self.stopping.set()
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                logger.warning("aborted %d request(s) still running after %ss", len(late), grace)
                await asyncio.wait(late)
        # Let every writer send what is queued (the ends of aborted turns too).
        idle = [c.idle.wait() for c in self.connections.values()]
        if idle:
            await asyncio.wait([asyncio.ensure_future(w) for w in idle], timeout=grace)
        server.close()  # closes open connections with 1001 (going away)
        await server.wait_closed()
        # Worker threads cannot be interrupted; an aborted turn ends on its own.
        self.executor.shutdown(wait=False, cancel_futures=True)


def _echo(frame: Mapping[str, Any]) -> dict[str, Any]:
    request_id = frame.get("request_id")
    if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
        return {"request_id": request_id}
    return {}


def _error_frame(
    kind: str, frame: Mapping[str, Any], message: str, error: str, echo: dict[str, Any]
) -> dict[str, Any]:
    """The error answer MemGPT's clients expect for this kind of request."""
    if kind == "command":
        name = frame.get("command")
        extra = {"command": name} if isinstance(name, str) else {}
        return protocol.command_response("error", message, error=error, **extra, **echo)
    if kind == "user_message":
        agent_id = frame.get("agent_id")
        extra = {"agent_id": agent_id} if isinstance(agent_id, str) else {}
        return protocol.agent_response_error(message, error=error, **extra, **echo)
    return protocol.server_error(message, error=error, **echo)


def _describe(slot: _AgentSlot) -> dict[str, Any]:
    return {"id": slot.id, "name": getattr(slot.agent, "name", ""), "turns": slot.turns}


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
            :func:`memgpt_lab.presets.create_agent_from_config`.
        recording: where frames are recorded; a new one by default.
        record: False to record nothing (``recording`` is then None).
        max_size: the largest client frame in bytes; bigger ones close with 1009.
        max_workers: worker threads, i.e. turns of different agents at once.
        grace: seconds ``stop()`` lets running turns finish before aborting them.

    Raises:
        ValueError: ``host`` is not loopback and ``token`` is None.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        allowed_origins: Sequence[str | re.Pattern[str]] | None = None,
        agent_factory: AgentFactory | None = None,
        recording: Recording | None = None,
        record: bool = True,
        max_size: int = DEFAULT_MAX_SIZE,
        max_workers: int = 8,
        grace: float = 10.0,
    ) -> None:
        if not is_loopback(host) and not token:
            raise ValueError(
                f"refusing to serve on {host!r} without a token: anyone who can reach it could "
                "drive the agents; pass token=... (or bind 127.0.0.1)"
            )
        super().__init__(host, port)
        self.grace = grace
        self.max_size = max_size
        self.recording: Recording | None = None
        if record:  # not `recording or ...`: an empty Recording is falsy
            self.recording = recording if recording is not None else Recording()
        self._core = _ServerCore(
            agent_factory=agent_factory or _default_factory,
            recording=self.recording,
            token=token,
            allowed_origins=DEFAULT_ALLOWED_ORIGINS if allowed_origins is None else allowed_origins,
            max_workers=max_workers,
        )

    @property
    def stopping(self) -> threading.Event:
        """Set once :meth:`stop` has begun: requests are refused, running turns may finish."""
        return self._core.stopping

    @property
    def rejections(self) -> list[tuple[int, str]]:
        """Refused handshakes, as ``(HTTP status, reason)``, oldest first."""
        return list(self._core.rejections)

    @property
    def agents(self) -> dict[str, HostedAgent]:
        """The hosted agents by id (a snapshot)."""
        return {agent_id: slot.agent for agent_id, slot in list(self._core.agents.items())}

    async def _open(self) -> Server:
        return await serve(
            self._core.handle,
            self.host,
            self._requested_port,
            process_request=self._core.process_request,
            max_size=self.max_size,
            server_header=_SERVER_NAME,
        )

    async def _shutdown(self, server: Server, **options: Any) -> None:
        grace = options.get("grace")
        await self._core.shutdown(server, self.grace if grace is None else grace)

    def start(self) -> LabServer:
        """Listen and serve in a background thread; returns once connections are accepted."""
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


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8282,
    token: str | None = None,
    allowed_origins: Sequence[str | re.Pattern[str]] | None = None,
    *,
    agent_factory: AgentFactory | None = None,
    grace: float = 10.0,
) -> None:
    """Serve agents until Ctrl-C (or SIGTERM), then shut down cleanly. For ``memgpt-lab serve``.

    Prints one line with the URL once it listens. Records nothing: a
    long-running server would otherwise grow without bound.

    Raises:
        ValueError: ``host`` is not loopback and ``token`` is None.
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
    )
    run_until_interrupted(server, lambda: f"memgpt-lab serving on {server.url} (Ctrl-C to stop)")
