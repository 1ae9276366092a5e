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
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Protocol, TypeVar

from memgpt_lab._loop import BackgroundLoop
from memgpt_lab.errors import InterfaceClosedError
from memgpt_lab.interface import AgentInterface
from memgpt_lab.turns import Outbox, TurnEngine
from memgpt_lab.ws import protocol

__all__ = [
    "AsyncWebSocketInterface",
    "ClientTooSlowError",
    "SyncWebSocketInterface",
    "WebSocketClient",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_CLOSED_MESSAGE = "interface is closed; create a new one"

#: Fields the interface sets itself; ``extra_fields`` may not override them.
_RESERVED_FIELDS = frozenset({*protocol.EVENT_FRAME_FIELDS, "agent_id", "turn_id"})


class WebSocketClient(Protocol):
    """What the interfaces send to: anything with an awaitable ``send(text)``."""

    async def send(self, message: str, /) -> Any: ...


#: Called on the interface's loop when a client is dropped because ``send`` raised.
DropCallback = Callable[[WebSocketClient, BaseException], None]


class ClientTooSlowError(InterfaceClosedError):
    """A client fell more than its queue's bound behind and was dropped (see ``on_drop``)."""


class _Channel:
    """One client: its :class:`~memgpt_lab.turns.Outbox` and its sender task on the loop.

    ``sent``, ``waiters`` and ``task`` are only touched on the loop.
    """

    __slots__ = ("ws", "outbox", "sent", "stopped", "wake", "task", "waiters")

    def __init__(self, ws: WebSocketClient, outbox: Outbox) -> None:
        self.ws = ws
        self.outbox = outbox
        self.sent = 0
        self.stopped = False
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []


class _SenderCore:
    """Delivery for both interfaces: the turn engine frames, one sender task per client sends.

    Thread-safe entry points: :meth:`emit`, :meth:`emit_many`, :meth:`register`,
    :meth:`unregister`, the turn methods. Loop-only: :meth:`flush`, :meth:`close`.

    The :class:`~memgpt_lab.turns.TurnEngine` numbers and queues each frame on
    the emitting thread; a client's sender is woken only when its queue goes
    from empty to non-empty and then takes everything queued in one batch, so a
    step's frames cost one thread hop, not one per frame. Each client has its own
    queue and task: a slow client delays only itself, and one that falls more
    than ``max_queued_bytes`` behind is dropped.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None,
        *,
        agent_id: str | None,
        extra_fields: Mapping[str, Any] | None,
        on_drop: DropCallback | None,
        max_queued_bytes: int | None,
    ) -> None:
        self.loop = loop
        self.on_drop = on_drop
        reserved = _RESERVED_FIELDS.intersection(extra_fields or {})
        if reserved:
            raise ValueError(f"extra_fields may not set {', '.join(sorted(reserved))}")
        self.engine = TurnEngine(agent_id, fields=extra_fields)
        self.max_queued_bytes = max_queued_bytes
        self.lock = threading.Lock()
        self.closed = False
        self.channels: dict[int, _Channel] = {}
        self._count = 0
        self._closing: asyncio.Future[None] | None = None

    # -- any thread -------------------------------------------------------------------------

    def check_open(self) -> None:
        if self.closed:
            raise InterfaceClosedError(_CLOSED_MESSAGE)

    def emit(self, kind: str, message: str) -> None:
        """Frame one event for every client."""
        self.check_open()
        self.engine.emit(kind, message)

    def emit_many(self, events: Iterable[tuple[str, str]]) -> None:
        """Frame several events as consecutive frames: no other thread's frame lands between."""
        self.check_open()
        self.engine.emit_many(events)

    def register(self, ws: WebSocketClient) -> None:
        """Start sending to ``ws``: it gets every frame emitted after this returns."""
        assert self.loop is not None
        with self.lock:
            self.check_open()
            if id(ws) in self.channels:
                return
            self._count += 1
            outbox = Outbox(f"client{self._count}", max_queued_bytes=self.max_queued_bytes)
            channel = self.channels[id(ws)] = _Channel(ws, outbox)
            outbox.on_ready = lambda: self._call_on_loop(_set_wakes, (channel,))
            outbox.on_overflow = lambda: self._call_on_loop(self._overflowed, channel)
            self.engine.subscribe(outbox)
        self._call_on_loop(self._start, channel)

    def unregister(self, ws: WebSocketClient) -> bool:
        """Stop sending to ``ws``; frames not yet sent to it are discarded."""
        with self.lock:
            channel = self.channels.pop(id(ws), None)
        if channel is None:
            return False
        self._retire(channel)
        if self.loop is not None and not self.loop.is_closed():
            self._call_on_loop(_set_wakes, (channel,))
        return True

    def _retire(self, channel: _Channel) -> None:
        channel.stopped = True
        self.engine.unsubscribe(channel.outbox)
        channel.outbox.close()

    def clients(self) -> tuple[WebSocketClient, ...]:
        with self.lock:
            return tuple(channel.ws for channel in self.channels.values())

    def on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def _call_on_loop(self, fn: Callable[[_T], None], arg: _T) -> None:
        assert self.loop is not None
        if self.on_loop():
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
                channel.wake.clear()  # before take(): a frame queued after it wakes us
                batch = channel.outbox.take()
                if not batch:
                    await channel.wake.wait()
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

    def _overflowed(self, channel: _Channel) -> None:
        limit = self.max_queued_bytes
        self._drop(channel, ClientTooSlowError(f"the client fell more than {limit} bytes behind"))
        channel.wake.set()

    def _drop(self, channel: _Channel, exc: Exception) -> None:
        with self.lock:
            if self.channels.get(id(channel.ws)) is channel:
                del self.channels[id(channel.ws)]
            elif channel.stopped:
                return
        self._retire(channel)
        logger.warning("dropped WebSocket client %r: %r", channel.ws, exc)
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
            targets = [(channel, channel.outbox.seq) for channel in self.channels.values()]
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
                self._retire(channel)
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
        """Frames emitted so far (the ``seq`` of the last one, for a client registered
        from the start; each client numbers the frames it gets from 1)."""
        return self._core.engine.frames

    @property
    def engine(self) -> TurnEngine:
        """The turn engine that frames this interface's events (see :mod:`memgpt_lab.turns`)."""
        return self._core.engine

    def begin_turn(self, **echo: Any) -> int:
        """Open a turn: ``agent_response_start`` (with ``agent_id``, ``turn_id`` and ``echo``)
        to every client; the events that follow carry the ``turn_id``. Returns it."""
        self._core.check_open()
        return self._core.engine.begin_turn(**echo)

    def end_turn(
        self, error: str | None = None, *, error_code: str | None = None, **echo: Any
    ) -> None:
        """Close the open turn: ``agent_response_error`` first if ``error`` is given, then
        ``agent_response_end``, queued after every event of the turn."""
        self._core.check_open()
        self._core.engine.end_turn(error, error_code=error_code, **echo)

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
        max_queued_bytes: a client more than this far behind is dropped
            (:class:`ClientTooSlowError`); None (the default) for no bound.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        agent_id: str | None = None,
        extra_fields: Mapping[str, Any] | None = None,
        on_drop: DropCallback | None = None,
        max_queued_bytes: int | None = None,
    ) -> None:
        self._core = _SenderCore(
            loop,
            agent_id=agent_id,
            extra_fields=extra_fields,
            on_drop=on_drop,
            max_queued_bytes=max_queued_bytes,
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
        max_queued_bytes: a client more than this far behind is dropped
            (:class:`ClientTooSlowError`); None (the default) for no bound.
        step_timeout: the longest :meth:`step_done` waits for a step's frames to be
            taken (a client that stopped reading must not hang the agent).
    """

    def __init__(
        self,
        *,
        agent_id: str | None = None,
        extra_fields: Mapping[str, Any] | None = None,
        on_drop: DropCallback | None = None,
        thread_name: str = "memgpt_lab-ws-interface",
        max_queued_bytes: int | None = None,
        step_timeout: float = 10.0,
    ) -> None:
        self.step_timeout = step_timeout
        self._bg = BackgroundLoop(thread_name, lambda: InterfaceClosedError(_CLOSED_MESSAGE))
        self._close_lock = threading.Lock()
        self._core = _SenderCore(
            self._bg.loop,
            agent_id=agent_id,
            extra_fields=extra_fields,
            on_drop=on_drop,
            max_queued_bytes=max_queued_bytes,
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

    def step_done(self) -> None:
        """Deliver the step's frames before ``Agent.step()`` returns (see
        :meth:`AgentInterface.step_done`): a test may read the mock socket right after.

        On the interface's own thread (an agent stepped inside a coroutine on
        :attr:`loop`) it cannot wait; there the frames go out at the next await.
        A client that does not take them within ``step_timeout`` seconds (a real
        socket whose reader stopped) does not hold the agent up: the frames stay
        queued for it, and a warning is logged.
        """
        if self._core.closed or self._core.on_loop() or self._bg.closed:
            return
        if self._bg.thread is threading.current_thread():
            return
        waiting = self._bg.submit(self._core.flush())
        try:
            waiting.result(self.step_timeout)
        except concurrent.futures.TimeoutError:
            waiting.cancel()
            logger.warning(
                "a client took more than %ss to receive a step's frames; not waiting for it",
                self.step_timeout,
            )

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
