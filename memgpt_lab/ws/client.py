"""A small client for the lab's agent server (:mod:`memgpt_lab.ws.server`).

Two twins share one core: :class:`AsyncLabClient` for coroutines, and
:class:`LabClient`, which runs an ``AsyncLabClient`` on a loop in a
background thread and blocks for each answer. Use ``LabClient`` from a
Jupyter cell: the kernel's own loop already runs on the cell's thread, so
the client must not run a loop there::

    with LabClient(server.url) as client:
        agent_id = client.create_agent(persona="sam_pov")
        frames = client.send("Hi, I'm Ann.", agent_id)

Every request carries a ``request_id`` (1, 2, 3... per client), which the
server echoes: that is how answers are matched to requests. A turn
(``agent_response_start`` … ``agent_response_end``) is matched to the ``send``
that caused it by its ``request_id`` and ``requested_by`` (one of this
client's connections), even when the client also watches other clients'
turns (:meth:`AsyncLabClient.attach`).

The client connects with ``?hello=1&session=<its session id>``: the server
greets it with a ``hello`` frame (:attr:`AsyncLabClient.hello`) and knows it
again after a reconnect. When the connection drops, the client reconnects
(retrying with backoff for at most ``timeout`` seconds), then:

- re-sends every ``send`` still waiting, with the same ``request_id``: the
  server answers it with the turn it already ran (or is running), never by
  running the message twice;
- re-attaches to the agents it had attached to, and ``resume``-s each after
  the last turn it saw end, so the turns it missed arrive in
  :attr:`AsyncLabClient.unsolicited`.

Other requests waiting when the connection drops (commands) fail with
:class:`~memgpt_lab.errors.LabConnectionError`, since running them twice
could matter (``create_agent``).

Errors: :class:`~memgpt_lab.errors.ServerResponseError` when the server
answers with an error frame, :class:`~memgpt_lab.errors.RequestTimeoutError`
when it does not answer in time, and
:class:`~memgpt_lab.errors.LabConnectionError` when the connection cannot be
made, is refused, or drops while a command waits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin

from memgpt_lab._loop import BackgroundLoop
from memgpt_lab.errors import (
    LabConnectionError,
    ProtocolError,
    RequestTimeoutError,
    ServerResponseError,
)
from memgpt_lab.recorder import Recording
from memgpt_lab.ws import protocol

__all__ = ["AsyncLabClient", "LabClient"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

Frame = dict[str, Any]

_ERROR_TYPES = ("server_error", "agent_response_error")

#: Frames kept in :attr:`AsyncLabClient.unsolicited` by default (the most recent).
DEFAULT_MAX_UNSOLICITED = 1000


class _Request:
    """One request waiting for its answer: a single frame, or a whole turn."""

    __slots__ = ("id", "what", "turn", "frames", "future", "text")

    def __init__(self, request_id: int, what: str, turn: bool, text: str) -> None:
        self.id = request_id
        self.what = what
        self.turn = turn
        self.text = text  # as sent, to send again after a reconnect
        self.frames: list[Frame] = []
        self.future: asyncio.Future[list[Frame]] = asyncio.get_running_loop().create_future()

    def finish(self, error: BaseException | None = None) -> None:
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(self.frames)


class AsyncLabClient:
    """A lab server client for coroutines; use ``async with``.

    Args:
        url: the server's ``ws://`` URL (:attr:`LabServer.url`).
        token: the server's token, sent as ``Authorization: Bearer``.
        timeout: seconds to wait for connecting and for each answer (a whole
            turn for :meth:`send`).
        recording: record this client's traffic there; ``"in"`` is what it
            sends, ``"out"`` what it receives (the project's convention).
        origin: an ``Origin`` header to send, as a browser would.
        max_unsolicited: frames kept in :attr:`unsolicited` (the most recent).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 10.0,
        *,
        recording: Recording | None = None,
        origin: str | None = None,
        max_unsolicited: int = DEFAULT_MAX_UNSOLICITED,
    ) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout
        self.recording = recording
        self.origin = origin
        #: This client's session id, sent as ``?session=``: the server knows it again after a
        #: reconnect, so a re-sent message is answered, not run twice.
        self.session = uuid.uuid4().hex[:16]
        #: The server's ``hello`` frame on the current connection.
        self.hello: Frame | None = None
        #: Frames no request waited for (turns of attached agents that others asked for,
        #: turns replayed by ``resume``); the last ``max_unsolicited``.
        self.unsolicited: collections.deque[Frame] = collections.deque(maxlen=max_unsolicited)
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._requests: dict[int, _Request] = {}
        self._turns: dict[tuple[Any, Any], _Request] = {}
        self._ids = itertools.count(1)
        self._connecting: asyncio.Lock | None = None
        self._closed = False
        self._connected_before = False
        self._connection_id = ""  # in our own recording
        self._server_connection_ids: set[Any] = set()  # the server's names for our connections
        #: Agents attached to (by id), with the last turn_id seen to end: resumed after that.
        self._attached: dict[str, int] = {}
        self._last_turn: dict[str, int] = {}

    # -- connecting --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def connect(self) -> None:
        """Connect (or reconnect), retrying with backoff for up to ``timeout`` seconds.

        After a reconnect, waiting ``send``s are sent again and attached agents resumed
        (see the module's docstring).

        Raises:
            LabConnectionError: the server refused the handshake (a wrong token,
                a disallowed origin: not retried), or could not be reached in time.
        """
        if self._closed:
            raise LabConnectionError("this client is closed; create a new one")
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._ws is None:
                await self._connect_with_retries()
                if self._connected_before:
                    await self._recover_state()
                self._connected_before = True

    def _url(self) -> str:
        joiner = "&" if "?" in self.url else "?"
        return f"{self.url}{joiner}hello=1&session={self.session}"

    async def _connect_with_retries(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        delay = 0.02
        attempts = 0
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        while True:
            attempts += 1
            try:
                ws = await asyncio.wait_for(
                    connect(
                        self._url(),
                        additional_headers=headers,
                        origin=Origin(self.origin) if self.origin else None,
                        open_timeout=None,
                    ),
                    max(deadline - loop.time(), 0.001),
                )
                try:
                    hello = await asyncio.wait_for(ws.recv(), max(deadline - loop.time(), 0.001))
                except BaseException:
                    # No hello in time: the connection is of no use, and must not stay open.
                    ws.transport.abort()
                    raise
                break
            except InvalidStatus as exc:
                status = exc.response.status_code
                body = exc.response.body.decode("utf-8", "replace").strip()
                raise LabConnectionError(
                    f"{self.url} refused the connection: HTTP {status} {body}"
                ) from None
            except (TimeoutError, OSError, InvalidHandshake, ConnectionClosed) as exc:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise LabConnectionError(
                        f"could not connect to {self.url} in {self.timeout}s "
                        f"({attempts} attempt(s)); last error: {exc!r}"
                    ) from None
                # Backoff between attempts, not synchronisation: the server may be restarting.
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, 1.0)
        self._ws = ws
        if self.recording is not None:
            self._connection_id = self.recording.new_connection_id()
        self._received(hello)
        self._reader = asyncio.create_task(self._read(ws))

    async def _recover_state(self) -> None:
        """On a new connection: send waiting turns again, re-attach and resume."""
        ws = self._ws
        if ws is None:
            return
        try:
            for request in list(self._requests.values()):
                if request.turn:
                    await self._send_text(ws, request.text)
            for agent_id, after in list(self._attached.items()):
                after = max(after, self._last_turn.get(agent_id, 0))
                frame = protocol.command("resume", agent_id=agent_id, after_turn=after)
                await self._send_text(ws, protocol.encode(frame))
        except ConnectionClosed:
            pass  # dropped again: the reader notices, and recovery starts over

    async def _send_text(self, ws: ClientConnection, text: str) -> None:
        if self.recording is not None:
            self.recording.record("in", text, connection_id=self._connection_id)
        await ws.send(text)

    async def _recover(self) -> None:
        """After a drop with turns waiting: reconnect, or fail them when that is impossible."""
        try:
            await self.connect()
        except LabConnectionError as exc:
            reason = str(exc)
            self._fail_all(lambda request: f"{request.what}: {reason}")

    def _start_recovery(self) -> None:
        if self._closed or (self._recovery is not None and not self._recovery.done()):
            return
        self._recovery = asyncio.create_task(self._recover())

    async def close(self) -> None:
        """Close the connection (code 1000). Idempotent; pending requests fail."""
        self._closed = True
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
            self._recovery = None
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        if self._reader is not None:
            await self._reader
            self._reader = None
        self._fail_all(lambda request: f"the client was closed while {request.what} waited")

    async def __aenter__(self) -> AsyncLabClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- reading -----------------------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                self._received(message)
        except ConnectionClosed:
            pass
        finally:
            if self._ws is ws:
                self._ws = None
            if self.recording is not None:
                close = ws.protocol.close_rcvd
                if close is not None:
                    self.recording.record_close(
                        "out", int(close.code), close.reason, connection_id=self._connection_id
                    )
            if not self._closed:
                code = ws.close_code if ws.close_code is not None else 1006
                self._turns.clear()  # a turn's frames start again on the next connection
                for request in list(self._requests.values()):
                    if request.turn:
                        request.frames.clear()
                        continue
                    del self._requests[request.id]
                    request.finish(
                        LabConnectionError(
                            f"the connection to {self.url} dropped (close code {code}) while "
                            f"{request.what} waited for its answer; it may have run on the server "
                            "(check with list_agents or get_memory)"
                        )
                    )
                if self._requests or self._attached:
                    # Turns wait, or attached agents go on: reconnect now, not at the next call.
                    self._start_recovery()

    def _received(self, message: str | bytes) -> None:
        if self.recording is not None:
            self.recording.record("out", message, connection_id=self._connection_id)
        try:
            frame = protocol.decode(message)
        except ProtocolError:
            logger.warning("ignored a frame that is not a JSON object: %r", message[:200])
            return
        kind = frame["type"]
        request_id = frame.get("request_id")
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            request_id = None  # ours are integers; a server's odd one matches nothing
        if kind == "hello" and request_id is None:  # the greeting ?hello=1 asked for
            self.hello = frame
            self._server_connection_ids.add(frame.get("connection_id"))
            return
        turn_id = frame.get("turn_id")
        agent_id = frame.get("agent_id")
        if turn_id is not None:
            key = (agent_id, turn_id)
            if (
                kind == "agent_response_end"
                and isinstance(turn_id, int)
                and isinstance(agent_id, str)
            ):
                self._last_turn[agent_id] = max(self._last_turn.get(agent_id, 0), turn_id)
            request = self._requests.get(request_id) if request_id is not None else None
            if (
                kind == "agent_response_start"
                and request is not None
                and request.turn
                # Request ids are unique per client only, and others' turns reach us too.
                and frame.get("requested_by") in self._server_connection_ids
                and key not in self._turns
            ):
                self._turns[key] = request
            turn = self._turns.get(key)
            if turn is not None:
                turn.frames.append(frame)
                if kind == "agent_response_end":
                    del self._turns[key]
                    self._finish(turn)
                return
        else:
            request = self._requests.get(request_id) if request_id is not None else None
            if request is not None:
                request.frames.append(frame)
                # A refused turn is start, error, end (MemGPT's shape), or one error frame.
                if (
                    not request.turn
                    or kind == "agent_response_end"
                    or request.frames[0]["type"] != "agent_response_start"
                ):
                    self._finish(request)
                return
        self.unsolicited.append(frame)

    def _finish(self, request: _Request) -> None:
        self._requests.pop(request.id, None)
        error = next(
            (
                f
                for f in request.frames
                if f["type"] in _ERROR_TYPES
                or (
                    f["type"] == "command_response"
                    and not str(f.get("status", "")).startswith("OK")
                )
            ),
            None,
        )
        if error is None:
            request.finish()
        else:
            said = error.get("message") or error.get("status") or error
            message = f"{request.what} failed: {said}"
            request.finish(ServerResponseError(message, error, request.frames))

    def _fail_all(self, message: Callable[[_Request], str]) -> None:
        requests = list(self._requests.values())
        self._requests.clear()
        self._turns.clear()
        for request in requests:
            request.finish(LabConnectionError(message(request)))

    # -- requests ----------------------------------------------------------------------

    async def request(self, frame: Frame, *, what: str = "", turn: bool = False) -> list[Frame]:
        """Send one client frame and wait for its answer.

        Returns the answer frames: one for a command; for a turn (``turn=True``),
        ``agent_response_start`` through ``agent_response_end``.

        Raises:
            ServerResponseError: the answer is an error frame.
            RequestTimeoutError: no (complete) answer within ``timeout``.
            LabConnectionError: no connection, or it dropped while waiting.
        """
        if self._ws is None:
            await self.connect()
        ws = self._ws
        if ws is None:  # dropped again between connecting and now
            raise LabConnectionError(f"the connection to {self.url} dropped; try again")
        request_id = next(self._ids)
        text = protocol.encode({**frame, "request_id": request_id})
        request = _Request(request_id, what or frame["type"], turn, text)
        self._requests[request.id] = request
        try:
            await self._send_text(ws, text)
        except ConnectionClosed:
            if not turn:
                self._requests.pop(request.id, None)
                raise LabConnectionError(
                    f"the connection to {self.url} dropped before {request.what} was sent"
                ) from None
            # A turn waits: it is sent again once the client has reconnected.
            self._start_recovery()
        try:
            return await asyncio.wait_for(request.future, self.timeout)
        except TimeoutError:
            self._requests.pop(request.id, None)
            for key, pending in list(self._turns.items()):
                if pending is request:
                    del self._turns[key]
            got = ", ".join(f["type"] for f in request.frames) or "nothing"
            raise RequestTimeoutError(
                f"{request.what}: no complete answer from {self.url} within {self.timeout}s "
                f"(received: {got})"
            ) from None

    async def create_agent(self, **config: Any) -> str:
        """Create an agent on the server; returns its id. ``config`` as ``create_agent_from_config``."""
        frames = await self.request(protocol.command("create_agent", config), what="create_agent")
        return str(frames[-1]["agent_id"])

    async def send(self, message: str, agent_id: str) -> list[Frame]:
        """Send a user message; returns the turn's frames, ``agent_response_end`` last.

        Raises:
            ServerResponseError: the message was refused (an unknown agent...), or
                the turn failed; ``.frames`` holds what arrived.
        """
        return await self.request(
            protocol.user_message(message, agent_id), what=f"user_message to {agent_id}", turn=True
        )

    async def list_agents(self) -> list[dict[str, Any]]:
        """The server's agents: ``[{"id", "name", "turns"}, ...]``."""
        frames = await self.request(protocol.command("list_agents"), what="list_agents")
        return list(frames[-1]["agents"])

    async def get_memory(self, agent_id: str) -> dict[str, Any]:
        """An agent's memory snapshot (core memory blocks, recall/archival counts...)."""
        frames = await self.request(
            protocol.command("get_memory", agent_id=agent_id), what=f"get_memory of {agent_id}"
        )
        return dict(frames[-1]["memory"])

    async def attach(self, agent_id: str) -> None:
        """Receive the agent's turns (into :attr:`unsolicited`) without sending to it.

        Kept across reconnections: the client re-attaches and resumes on its own."""
        frames = await self.request(protocol.command("attach", agent_id=agent_id), what="attach")
        answer = frames[-1]
        canonical = str(answer.get("agent_id", agent_id))
        self._attached[canonical] = max(
            int(answer.get("turns", 0)), self._attached.get(canonical, 0)
        )

    async def detach(self, agent_id: str) -> None:
        """Stop receiving the agent's turns."""
        frames = await self.request(protocol.command("detach", agent_id=agent_id), what="detach")
        self._attached.pop(str(frames[-1].get("agent_id", agent_id)), None)

    async def delete_agent(self, agent_id: str) -> None:
        """Delete an agent (by id or name) from the server."""
        frames = await self.request(
            protocol.command("delete_agent", agent_id=agent_id), what=f"delete_agent {agent_id}"
        )
        self._attached.pop(str(frames[-1].get("agent_id", agent_id)), None)

    async def resume(self, agent_id: str, after_turn: int = 0) -> Frame:
        """Attach, and have the agent's kept turns after ``after_turn`` replayed into
        :attr:`unsolicited`; returns the server's answer (``replayed_turns``, ``complete``)."""
        frames = await self.request(
            protocol.command("resume", agent_id=agent_id, after_turn=after_turn),
            what=f"resume {agent_id}",
        )
        answer = frames[-1]
        canonical = str(answer.get("agent_id", agent_id))
        self._attached[canonical] = max(after_turn, self._attached.get(canonical, 0))
        return answer

    async def list_checkpoints(self, agent_id: str) -> Frame:
        """The agent's history: the answer's ``checkpoints`` (oldest first: ``id``,
        ``parent_id``, ``turn``, ``step``, ``label``, ``created_at``) and ``current``."""
        frames = await self.request(
            protocol.command("list_checkpoints", agent_id=agent_id),
            what=f"list_checkpoints of {agent_id}",
        )
        return frames[-1]

    async def rewind(self, agent_id: str, checkpoint_id: str) -> str:
        """Put the agent back to ``checkpoint_id``; returns its current checkpoint.

        Raises:
            ServerResponseError: ``error_code`` ``unknown_checkpoint`` for one not in
                its history.
        """
        frames = await self.request(
            protocol.command("rewind", agent_id=agent_id, checkpoint_id=checkpoint_id),
            what=f"rewind {agent_id}",
        )
        return str(frames[-1]["current"])

    async def retry(self, agent_id: str) -> list[Frame]:
        """Run the agent's last user message again; returns the turn's frames like :meth:`send`.

        Sent again after a reconnect, like a ``send``: the server answers it with the
        run it already made, never by retrying twice.
        """
        return await self.request(
            protocol.command("retry", agent_id=agent_id), what=f"retry {agent_id}", turn=True
        )

    async def fork(
        self, agent_id: str, checkpoint_id: str | None = None, name: str | None = None
    ) -> Frame:
        """A new agent on the server from the agent's history up to ``checkpoint_id`` (its
        current one by default); returns the answer (the fork's ``agent_id``, ``agent_name``,
        ``forked_from``)."""
        fields = {
            key: value
            for key, value in (("checkpoint_id", checkpoint_id), ("name", name))
            if value is not None
        }
        # Not command(..., **fields): its first parameter is called ``name`` too.
        frame = {**protocol.command("fork", agent_id=agent_id), **fields}
        frames = await self.request(frame, what=f"fork {agent_id}")
        return frames[-1]

    async def server_hello(self) -> Frame:
        """Ask for the server's ``hello`` frame (protocol version, commands, features, limits)."""
        frames = await self.request(protocol.command("hello"), what="hello")
        return frames[-1]


class LabClient:
    """The blocking twin of :class:`AsyncLabClient`, safe in a Jupyter cell.

    It owns a daemon thread running a loop, on which an :class:`AsyncLabClient`
    does the work; each method submits the coroutine there and waits.
    Connects on construction. Arguments as :class:`AsyncLabClient`.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 10.0,
        *,
        recording: Recording | None = None,
        origin: str | None = None,
        max_unsolicited: int = DEFAULT_MAX_UNSOLICITED,
    ) -> None:
        self._client = AsyncLabClient(
            url,
            token,
            timeout,
            recording=recording,
            origin=origin,
            max_unsolicited=max_unsolicited,
        )
        self._loop = BackgroundLoop("memgpt_lab client")
        self._loop.start()
        try:
            self._call(self._client.connect())
        except BaseException:
            self._loop.close()
            raise

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        # The coroutine enforces the timeouts; waiting here longer would only hide them.
        return self._loop.run(coro)

    @property
    def url(self) -> str:
        return self._client.url

    @property
    def hello(self) -> Frame | None:
        """The server's ``hello`` frame on the current connection."""
        return self._client.hello

    @property
    def unsolicited(self) -> collections.deque[Frame]:
        """Frames no request waited for (turns of attached agents others asked for); bounded."""
        return self._client.unsolicited

    @property
    def session(self) -> str:
        """See :attr:`AsyncLabClient.session`."""
        return self._client.session

    def create_agent(self, **config: Any) -> str:
        """See :meth:`AsyncLabClient.create_agent`."""
        return self._call(self._client.create_agent(**config))

    def send(self, message: str, agent_id: str) -> list[Frame]:
        """See :meth:`AsyncLabClient.send`."""
        return self._call(self._client.send(message, agent_id))

    def list_agents(self) -> list[dict[str, Any]]:
        """See :meth:`AsyncLabClient.list_agents`."""
        return self._call(self._client.list_agents())

    def get_memory(self, agent_id: str) -> dict[str, Any]:
        """See :meth:`AsyncLabClient.get_memory`."""
        return self._call(self._client.get_memory(agent_id))

    def attach(self, agent_id: str) -> None:
        """See :meth:`AsyncLabClient.attach`."""
        self._call(self._client.attach(agent_id))

    def detach(self, agent_id: str) -> None:
        """See :meth:`AsyncLabClient.detach`."""
        self._call(self._client.detach(agent_id))

    def delete_agent(self, agent_id: str) -> None:
        """See :meth:`AsyncLabClient.delete_agent`."""
        self._call(self._client.delete_agent(agent_id))

    def resume(self, agent_id: str, after_turn: int = 0) -> Frame:
        """See :meth:`AsyncLabClient.resume`."""
        return self._call(self._client.resume(agent_id, after_turn))

    def list_checkpoints(self, agent_id: str) -> Frame:
        """See :meth:`AsyncLabClient.list_checkpoints`."""
        return self._call(self._client.list_checkpoints(agent_id))

    def rewind(self, agent_id: str, checkpoint_id: str) -> str:
        """See :meth:`AsyncLabClient.rewind`."""
        return self._call(self._client.rewind(agent_id, checkpoint_id))

    def retry(self, agent_id: str) -> list[Frame]:
        """See :meth:`AsyncLabClient.retry`."""
        return self._call(self._client.retry(agent_id))

    def fork(
        self, agent_id: str, checkpoint_id: str | None = None, name: str | None = None
    ) -> Frame:
        """See :meth:`AsyncLabClient.fork`."""
        return self._call(self._client.fork(agent_id, checkpoint_id, name))

    def server_hello(self) -> Frame:
        """See :meth:`AsyncLabClient.server_hello`."""
        return self._call(self._client.server_hello())

    def request(self, frame: Frame, *, turn: bool = False) -> list[Frame]:
        """See :meth:`AsyncLabClient.request`."""
        return self._call(self._client.request(frame, turn=turn))

    def close(self) -> None:
        """Close the connection and end the client's thread. Idempotent."""
        if self._loop.loop.is_closed():
            return
        self._call(self._client.close())
        self._loop.close()

    def __enter__(self) -> LabClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LabClient {self._client.url} connected={self._client.connected}>"
