"""Agent interfaces that stream an agent's events to WebSocket clients.

Each agent event becomes one ``agent_response`` frame::

    {"type": "agent_response", "message_type": "internal_monologue", "message": "...",
     "seq": 1, "agent_id": "..."}

``seq`` counts frames per interface from 1, one sequence shared by every
client: a frame has the same ``seq`` on every client it reaches.
``agent_id`` and any ``extra_fields`` are additive fields, present only when
set. ``user_message`` events send nothing: the protocol has no server-to-client
frame for them.

Two twins share one core:

- :class:`AsyncWebSocketInterface` lives on an event loop you already run (a
  server). Register clients, then ``await flush()`` / ``await close()`` there.
- :class:`SyncWebSocketInterface` owns a daemon thread with its own loop.
  ``flush()`` and ``close()`` block, and are safe from any other thread,
  including a Jupyter cell (whose thread already runs the kernel's loop).

Agent events are plain synchronous calls, from the loop's own thread (an agent
stepped inside a coroutine) or any other thread (an agent stepped in a worker).
Either way the frame is numbered and encoded on the calling thread and queued;
one sender task per client awaits ``client.send(text)`` on the loop, in queue
order. So every client gets every frame, in the order the agent emitted them,
and ``flush()`` returning means every frame emitted before the call has been
sent, to every client still registered. No sleeps, no task per frame.

Clients are any object with an ``async send(str)``: a ``websockets``
connection, :class:`~memgpt_lab.recorder.MockWebSocket`, or
``unittest.mock.AsyncMock()``. A ``websockets`` connection belongs to the loop
that made it, so it must live on the interface's loop: the loop you run the
async interface on, or :attr:`SyncWebSocketInterface.loop` (use
:meth:`SyncWebSocketInterface.run` to connect or serve there).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Protocol, TypeVar

from memgpt_lab._loop import BackgroundLoop
from memgpt_lab.errors import InterfaceClosedError
from memgpt_lab.interface import AgentInterface
from memgpt_lab.ws import protocol

__all__ = [
    "AsyncWebSocketInterface",
    "SyncWebSocketInterface",
    "WebSocketClient",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_CLOSED_MESSAGE = "interface is closed; create a new one"

#: Fields the interface sets itself; ``extra_fields`` may not override them.
_RESERVED_FIELDS = frozenset({*protocol.EVENT_FRAME_FIELDS, "agent_id"})


class WebSocketClient(Protocol):
    """What the interfaces send to: anything with an awaitable ``send(text)``."""

    async def send(self, message: str, /) -> Any: ...


#: Called on the interface's loop when a client is dropped because ``send`` raised.
DropCallback = Callable[[WebSocketClient, BaseException], None]


class _Channel:
    """One client's queue of encoded frames and the state of its sender task.

    ``queue``, ``queued`` and ``scheduled`` are guarded by the core's lock;
    ``sent``, ``waiters`` and ``task`` are only touched on the loop.
    """

    __slots__ = ("ws", "queue", "queued", "sent", "scheduled", "stopped", "wake", "task", "waiters")

    def __init__(self, ws: WebSocketClient) -> None:
        self.ws = ws
        self.queue: list[str] = []
        self.queued = 0
        self.sent = 0
        # True until the sender task first looks at the queue, so frames queued
        # before the task exists do not schedule wake-ups of their own.
        self.scheduled = True
        self.stopped = False
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []


class _SenderCore:
    """Numbering, encoding and ordered delivery, shared by both interfaces.

    Thread-safe entry points: :meth:`emit`, :meth:`emit_many`,
    :meth:`register`, :meth:`unregister`. Loop-only: :meth:`flush`,
    :meth:`close`.

    Each client has its own queue and sender task, so a slow client delays
    only itself: the others' frames do not wait for it, and every client still
    sees frames in emission order. Emitters wake a sender only when its queue
    goes from empty to non-empty; the sender then takes everything queued in
    one batch, so a burst of events costs one thread hop, not one per frame.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None,
        *,
        agent_id: str | None,
        extra_fields: Mapping[str, Any] | None,
        on_drop: DropCallback | None,
    ) -> None:
        self.loop = loop
        self.on_drop = on_drop
        self.fields: dict[str, Any] = {}
        if agent_id is not None:
            self.fields["agent_id"] = agent_id
        reserved = _RESERVED_FIELDS.intersection(extra_fields or {})
        if reserved:
            raise ValueError(f"extra_fields may not set {', '.join(sorted(reserved))}")
        self.fields.update(extra_fields or {})
        self.encode_event = protocol.event_encoder(**self.fields)
        self.lock = threading.Lock()
        self.seq = 0
        self.closed = False
        self.channels: dict[int, _Channel] = {}
        self._closing: asyncio.Future[None] | None = None

    # -- any thread -------------------------------------------------------------------------

    def check_open(self) -> None:
        if self.closed:
            raise InterfaceClosedError(_CLOSED_MESSAGE)

    def emit(self, kind: str, message: str) -> None:
        """Number, encode and queue one event for every client."""
        self.emit_many(((kind, message),))

    def emit_many(self, events: Iterable[tuple[str, str]]) -> None:
        """Queue several events as consecutive frames: no other thread's frame lands between."""
        woken: list[_Channel] = []
        with self.lock:
            self.check_open()
            for kind, message in events:
                if kind == "user_message":
                    continue
                seq = self.seq + 1
                # Encoding under the lock keeps seq order and queue order the same.
                text = self.encode_event(kind, message, seq)
                self.seq = seq
                for channel in self.channels.values():
                    channel.queue.append(text)
                    channel.queued += 1
                    if not channel.scheduled:
                        channel.scheduled = True
                        woken.append(channel)
        if woken:
            self._call_on_loop(_set_wakes, woken)

    def register(self, ws: WebSocketClient) -> None:
        """Start sending to ``ws``: it gets every frame emitted after this returns."""
        assert self.loop is not None
        with self.lock:
            self.check_open()
            if id(ws) in self.channels:
                return
            channel = self.channels[id(ws)] = _Channel(ws)
        self._call_on_loop(self._start, channel)

    def unregister(self, ws: WebSocketClient) -> bool:
        """Stop sending to ``ws``; frames not yet sent to it are discarded."""
        with self.lock:
            channel = self.channels.pop(id(ws), None)
        if channel is None:
            return False
        channel.stopped = True
        if self.loop is not None and not self.loop.is_closed():
            self._call_on_loop(_set_wakes, (channel,))
        return True

    def clients(self) -> tuple[WebSocketClient, ...]:
        with self.lock:
            return tuple(channel.ws for channel in self.channels.values())

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def _call_on_loop(self, fn: Callable[[_T], None], arg: _T) -> None:
        assert self.loop is not None
        if self._on_loop():
            fn(arg)
            return
        try:
            self.loop.call_soon_threadsafe(fn, arg)
        except RuntimeError:
            # Only a loop that close() has already shut down refuses callbacks.
            if self.loop.is_closed():
                raise InterfaceClosedError(_CLOSED_MESSAGE) from None
            raise

    # -- on the loop ------------------------------------------------------------------------

    def _start(self, channel: _Channel) -> None:
        if channel.task is None and not channel.stopped:
            assert self.loop is not None
            channel.task = self.loop.create_task(
                self._send_loop(channel), name=f"memgpt_lab ws sender {channel.ws!r}"
            )

    async def _send_loop(self, channel: _Channel) -> None:
        try:
            while not channel.stopped:
                with self.lock:
                    batch = channel.queue
                    if batch:
                        channel.queue = []
                    else:
                        channel.scheduled = False
                if not batch:
                    await channel.wake.wait()
                    channel.wake.clear()
                    continue
                for text in batch:
                    if channel.stopped:
                        break
                    try:
                        await channel.ws.send(text)
                    except Exception as exc:
                        self._drop(channel, exc)
                        return
                    channel.sent += 1
                    if channel.waiters:
                        _release(channel)
        finally:
            channel.stopped = True
            _release(channel, everything=True)

    def _drop(self, channel: _Channel, exc: Exception) -> None:
        channel.stopped = True
        with self.lock:
            if self.channels.get(id(channel.ws)) is channel:
                del self.channels[id(channel.ws)]
        logger.warning("dropped WebSocket client %r: send failed: %r", channel.ws, exc)
        if self.on_drop is not None:
            try:
                self.on_drop(channel.ws, exc)
            except Exception:
                logger.exception("on_drop callback failed for client %r", channel.ws)

    async def flush(self) -> None:
        """Return once every frame queued before the call is sent to every client."""
        self.check_open()
        await self._flush()

    async def _flush(self) -> None:
        assert self.loop is not None
        with self.lock:
            targets = [(channel, channel.queued) for channel in self.channels.values()]
        pending: list[asyncio.Future[None]] = []
        for channel, target in targets:
            # A registration whose start callback has not run yet gets its task now.
            self._start(channel)
            if channel.sent < target and not channel.stopped:
                future = self.loop.create_future()
                channel.waiters.append((target, future))
                pending.append(future)
        if pending:
            await asyncio.gather(*pending)

    async def close(self) -> None:
        """Refuse new events, flush, then stop every sender task. Idempotent."""
        with self.lock:
            first = not self.closed
            self.closed = True
        if not first:
            if self._closing is not None:
                await asyncio.shield(self._closing)
            return
        if self.loop is None:  # never bound: nothing was ever sent
            return
        self._closing = self.loop.create_future()
        try:
            await self._flush()
            with self.lock:
                channels = list(self.channels.values())
                self.channels.clear()
            tasks = []
            for channel in channels:
                channel.stopped = True
                channel.wake.set()
                if channel.task is not None:
                    tasks.append(channel.task)
            await asyncio.gather(*tasks)
        finally:
            self._closing.set_result(None)


def _set_wakes(channels: Iterable[_Channel]) -> None:
    for channel in channels:
        channel.wake.set()


def _release(channel: _Channel, everything: bool = False) -> None:
    keep = []
    for target, future in channel.waiters:
        if everything or target <= channel.sent:
            if not future.done():
                future.set_result(None)
        else:
            keep.append((target, future))
    channel.waiters = keep


class _WebSocketInterfaceBase(AgentInterface):
    """Event methods and client bookkeeping common to both twins."""

    _core: _SenderCore

    @property
    def clients(self) -> tuple[WebSocketClient, ...]:
        """The registered clients, in registration order (a snapshot)."""
        return self._core.clients()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._core.closed

    @property
    def seq(self) -> int:
        """The ``seq`` of the last frame emitted, 0 before the first."""
        return self._core.seq

    def unregister_client(self, ws: WebSocketClient) -> None:
        """Stop sending to ``ws``, from any thread; frames not yet sent to it are dropped.

        Does nothing if ``ws`` is not registered (for example, already dropped).
        Does not close ``ws``.
        """
        self._core.unregister(ws)

    def user_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        """Sends nothing: the protocol has no server-to-client frame for user messages."""
        self._core.check_open()

    def internal_monologue(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        """Queue an ``internal_monologue`` frame for every client."""
        self._core.emit("internal_monologue", msg)

    def assistant_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        """Queue an ``assistant_message`` frame for every client."""
        self._core.emit("assistant_message", msg)

    def function_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        """Queue a ``function_message`` frame for every client."""
        self._core.emit("function_message", msg)

    def print_messages(self, messages: Iterable[Mapping[str, Any]]) -> None:
        """Replay a message history to the clients, as consecutive frames.

        The mapping is :func:`memgpt_lab.ws.protocol.events_from_messages`; it
        runs first, so a malformed history raises before anything is queued.
        """
        self._core.emit_many(protocol.events_from_messages(messages))


class AsyncWebSocketInterface(_WebSocketInterfaceBase):
    """Streams agent events to clients on an event loop you run.

    The interface binds to ``loop``, or else to the running loop the first
    time :meth:`register_client` (or :meth:`flush` / :meth:`close`) is called
    from a coroutine. Clients must belong to that loop. Events may be emitted
    from that loop's thread or any other thread.

    Typical use::

        async with AsyncWebSocketInterface(agent_id=agent.id) as interface:
            interface.register_client(ws)
            await asyncio.to_thread(agent.step, message)   # or agent.step() inline
            await interface.flush()                        # before agent_response_end

    Args:
        loop: the loop to send on; by default the running loop at first use.
        agent_id: added to every frame as ``agent_id`` when set.
        extra_fields: more additive fields for every frame.
        on_drop: called on the loop with ``(client, exception)`` when a client's
            ``send`` raises and the client is dropped (a warning is logged too).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        agent_id: str | None = None,
        extra_fields: Mapping[str, Any] | None = None,
        on_drop: DropCallback | None = None,
    ) -> None:
        self._core = _SenderCore(
            loop, agent_id=agent_id, extra_fields=extra_fields, on_drop=on_drop
        )

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop frames are sent on, or ``None`` before first use."""
        return self._core.loop

    def _bind(self, what: str) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._core.loop is None:
            if running is None:
                raise RuntimeError(
                    f"{what} needs the interface's event loop: call it from a coroutine, "
                    "or pass loop= to AsyncWebSocketInterface"
                )
            self._core.loop = running
        elif what != "register_client()" and running is not self._core.loop:
            raise RuntimeError(f"{what} must be awaited on the interface's event loop")

    def register_client(self, ws: WebSocketClient) -> None:
        """Send every frame emitted from now on to ``ws`` too.

        Call from a coroutine on the interface's loop, or from another thread
        once the interface is bound. Registering twice does nothing.

        Raises:
            InterfaceClosedError: the interface is closed.
        """
        self._core.check_open()
        self._bind("register_client()")
        self._core.register(ws)

    async def flush(self) -> None:
        """Wait until every frame emitted before this call is sent to every client.

        Clients dropped or unregistered meanwhile are not waited for.

        Raises:
            InterfaceClosedError: the interface is closed.
        """
        self._core.check_open()
        self._bind("flush()")
        await self._core.flush()

    async def close(self) -> None:
        """Flush, then stop sending; later events raise :class:`InterfaceClosedError`.

        Idempotent. The clients stay open: the interface does not own them.
        """
        if self._core.loop is not None:
            self._bind("close()")
        await self._core.close()

    async def __aenter__(self) -> AsyncWebSocketInterface:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class SyncWebSocketInterface(_WebSocketInterfaceBase):
    """Streams agent events to clients from a background thread of its own.

    The thread (a daemon, named ``thread_name``) starts in the constructor and
    runs :attr:`loop`; the sending is the same core the async interface runs.
    :meth:`flush`, :meth:`close` and :meth:`run` block the calling thread, so
    call them from any thread except the interface's own (for example, from an
    ``on_drop`` callback), where they would deadlock and raise instead.

    Typical use, in a script or a notebook cell::

        with SyncWebSocketInterface(agent_id="a1") as interface:
            interface.register_client(MockWebSocket(recording))
            agent.step("hi")
            interface.flush()

    Real ``websockets`` connections must be made on :attr:`loop`, for example
    ``ws = interface.run(websockets.asyncio.client.connect(url))``.

    Close it (or use ``with``): the thread holds the interface, so one never
    closed keeps its thread and loop until the process ends.

    Args:
        agent_id: added to every frame as ``agent_id`` when set.
        extra_fields: more additive fields for every frame.
        on_drop: called on the interface's thread with ``(client, exception)``
            when a client's ``send`` raises and the client is dropped.
        thread_name: the background thread's name.
    """

    def __init__(
        self,
        *,
        agent_id: str | None = None,
        extra_fields: Mapping[str, Any] | None = None,
        on_drop: DropCallback | None = None,
        thread_name: str = "memgpt_lab-ws-interface",
    ) -> None:
        self._bg = BackgroundLoop(thread_name, lambda: InterfaceClosedError(_CLOSED_MESSAGE))
        self._close_lock = threading.Lock()
        self._core = _SenderCore(
            self._bg.loop, agent_id=agent_id, extra_fields=extra_fields, on_drop=on_drop
        )
        self._bg.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The interface's event loop, run by :attr:`thread`; clients must belong to it."""
        return self._bg.loop

    @property
    def thread(self) -> threading.Thread:
        """The background thread running :attr:`loop`; it ends in :meth:`close`."""
        return self._bg.thread

    def run(self, awaitable: Awaitable[_T], timeout: float | None = None) -> _T:
        """Await ``awaitable`` on the interface's loop and return its result.

        For work that must happen on that loop, such as opening a
        ``websockets`` connection to register, or serving. Call from any other
        thread.

        Raises:
            InterfaceClosedError: the interface is closed.
            TimeoutError: ``timeout`` seconds passed (the coroutine is cancelled).
        """
        if self._core.closed:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise InterfaceClosedError(_CLOSED_MESSAGE)
        return self._bg.run(awaitable, timeout)

    def register_client(self, ws: WebSocketClient) -> None:
        """Send every frame emitted from now on to ``ws`` too. Any thread.

        Registering twice does nothing.

        Raises:
            InterfaceClosedError: the interface is closed.
        """
        self._core.register(ws)

    def flush(self) -> None:
        """Block until every frame emitted before this call is sent to every client.

        Clients dropped or unregistered meanwhile are not waited for.

        Raises:
            InterfaceClosedError: the interface is closed.
        """
        self._core.check_open()
        self._bg.check_not_loop_thread("flush()")
        self._bg.submit(self._core.flush()).result()

    def close(self) -> None:
        """Flush, stop sending, end the thread and close its loop. Idempotent.

        Later events, ``register_client`` and ``flush`` raise
        :class:`InterfaceClosedError`. The clients stay open: the interface
        does not own them (close real connections with :meth:`run` before
        closing the interface).
        """
        self._bg.check_not_loop_thread("close()")
        with self._close_lock:
            if self._bg.closed:
                return
            if not self._bg.frozen:
                self._bg.submit(self._core.close()).result()
            self._bg.close()

    def __enter__(self) -> SyncWebSocketInterface:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
