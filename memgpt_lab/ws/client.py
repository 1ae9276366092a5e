"""A small client for the lab's agent server (:mod:`memgpt_lab.ws.server`).

Two twins share one core: :class:`AsyncLabClient` for coroutines, and
:class:`LabClient`, which runs an ``AsyncLabClient`` on a loop in a
background thread and blocks for each answer. Use ``LabClient`` from a
Jupyter cell: the kernel's own loop already runs on the cell's thread, so
the client must not run a loop there::

    with LabClient(server.url) as client:
        agent_id = client.create_agent(persona="sam_pov")
        frames = client.send("Hi, I'm Ann.", agent_id)

Every request carries a ``request_id``, which the server echoes: that is
how answers are matched to requests, and how a turn (``agent_response_start``
… ``agent_response_end``) is matched to the ``send`` that caused it, even
when other clients talk to the same agent.

Errors: :class:`~memgpt_lab.errors.ServerResponseError` when the server
answers with an error frame, :class:`~memgpt_lab.errors.RequestTimeoutError`
when it does not answer in time, and
:class:`~memgpt_lab.errors.LabConnectionError` when the connection cannot be
made, is refused, or drops while a request waits. After a drop the next
request reconnects, retrying with backoff for at most ``timeout`` seconds.
Agents live on the server, so they survive a reconnection; attachments
(which agents' turns this connection sees) do not.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
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


class _Request:
    """One request waiting for its answer: a single frame, or a whole turn."""

    __slots__ = ("id", "what", "turn", "frames", "future")

    def __init__(self, request_id: int, what: str, turn: bool) -> None:
        self.id = request_id
        self.what = what
        self.turn = turn
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
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 10.0,
        *,
        recording: Recording | None = None,
        origin: str | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout
        self.recording = recording
        self.origin = origin
        #: The server's ``hello`` frame on the current connection.
        self.hello: Frame | None = None
        #: Frames no request waited for (turns of attached agents that others asked for).
        self.unsolicited: list[Frame] = []
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._requests: dict[int, _Request] = {}
        self._turns: dict[tuple[Any, Any], _Request] = {}
        self._ids = itertools.count(1)
        self._connecting: asyncio.Lock | None = None
        self._closed = False
        self._connection_id = ""  # in our own recording
        self._server_connection_id: Any = None  # the server's name for this connection

    # -- connecting --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def connect(self) -> None:
        """Connect (or reconnect), retrying with backoff for up to ``timeout`` seconds.

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
                        self.url,
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
            except (OSError, InvalidHandshake, ConnectionClosed, asyncio.TimeoutError) as exc:
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

    async def close(self) -> None:
        """Close the connection (code 1000). Idempotent; pending requests fail."""
        self._closed = True
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
                self._fail_all(
                    lambda request: (
                        f"the connection to {self.url} dropped (close code {code}) while "
                        f"{request.what} waited for its answer; it may have run on the server "
                        "(check with list_agents or get_memory)"
                    )
                )

    def _received(self, message: str | bytes) -> None:
        if self.recording is not None:
            self.recording.record("out", message, connection_id=self._connection_id)
        try:
            frame = protocol.decode(message)
        except ProtocolError:
            logger.warning("ignored a frame that is not a JSON object: %r", message[:200])
            return
        if frame["type"] == "hello":
            self.hello = frame
            self._server_connection_id = frame.get("connection_id")
            return
        request_id = frame.get("request_id")
        if not isinstance(request_id, (str, int)):  # ours are; a server's odd one matches nothing
            request_id = None
        turn_id = frame.get("turn_id")
        if turn_id is not None:
            key = (frame.get("agent_id"), turn_id)
            request = self._requests.get(request_id)  # type: ignore[arg-type]
            if (
                frame["type"] == "agent_response_start"
                and request is not None
                and request.turn
                # Request ids are unique per connection only; others' turns reach us too.
                and frame.get("requested_by") == self._server_connection_id
            ):
                self._turns[key] = request
            turn = self._turns.get(key)
            if turn is not None:
                turn.frames.append(frame)
                if frame["type"] == "agent_response_end":
                    del self._turns[key]
                    self._finish(turn)
                return
        else:
            request = self._requests.get(request_id)  # type: ignore[arg-type]
            if request is not None:
                request.frames.append(frame)
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
                or (f["type"] == "command_response" and f.get("status") != "OK")
            ),
            None,
        )
        if error is None:
            request.finish()
        else:
            message = f"{request.what} failed: {error.get('message', error)}"
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
        request = _Request(next(self._ids), what or frame["type"], turn)
        self._requests[request.id] = request
        text = protocol.encode({**frame, "request_id": request.id})
        try:
            if self.recording is not None:
                self.recording.record("in", text, connection_id=self._connection_id)
            await ws.send(text)
        except ConnectionClosed:
            self._requests.pop(request.id, None)
            raise LabConnectionError(
                f"the connection to {self.url} dropped before {request.what} was sent"
            ) from None
        try:
            return await asyncio.wait_for(request.future, self.timeout)
        except asyncio.TimeoutError:
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
        """Receive the agent's turns (into :attr:`unsolicited`) without sending to it."""
        await self.request(protocol.command("attach", agent_id=agent_id), what="attach")

    async def detach(self, agent_id: str) -> None:
        """Stop receiving the agent's turns."""
        await self.request(protocol.command("detach", agent_id=agent_id), what="detach")


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
    ) -> None:
        self._client = AsyncLabClient(url, token, timeout, recording=recording, origin=origin)
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
    def unsolicited(self) -> list[Frame]:
        """Frames no request waited for (turns of attached agents others asked for)."""
        return self._client.unsolicited

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
