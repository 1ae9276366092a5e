"""The mock connection: :class:`MockWebSocket`, a real connection object that records.

Imports asyncio (through :mod:`memgpt_lab.recorder.waiting`); the recording core does not.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from memgpt_lab.recorder.frame import Frame
from memgpt_lab.recorder.recording import Recording
from memgpt_lab.recorder.waiting import Waker

if TYPE_CHECKING:
    from websockets.exceptions import ConnectionClosed

__all__ = ["MockWebSocket"]

_T = TypeVar("_T")


def _websockets() -> tuple[Any, Any]:
    """``websockets.exceptions`` and ``websockets.frames``, imported on first need."""
    from websockets import exceptions, frames

    return exceptions, frames


def _connection_closed_ok() -> type[BaseException]:
    exc: type[BaseException] = _websockets()[0].ConnectionClosedOK
    return exc


class MockWebSocket:
    """A client connection, as the server side sees it, that records its traffic.

    Shaped like a ``websockets`` asyncio connection: ``await send()``,
    ``await recv()``, ``async for``, ``await close()``. It is a real connection
    object, to be injected where a server or interface expects one.

    ``send`` records ``"out"`` frames. ``feed`` (the test playing the client) queues
    a message for ``recv`` and records an ``"in"`` frame; it may be called from any
    thread. ``recv`` may be awaited from any event loop.

    Args:
        recording: where frames go; a new :class:`Recording` when omitted.
        connection_id: the id on its frames; ``"c1"``, ``"c2"``... per recording
            when omitted.
        fail_after: simulate a broken client: ``send`` raises after this many
            successful sends. With only ``fail_with``, the first send fails.
        fail_with: the exception ``send`` raises then (an instance or class);
            ``ConnectionClosedError`` without close frames by default.
        max_size: the largest message, in bytes, the client accepts (``websockets``'
            default, 1 MiB); a bigger one is sent, then the client closes with
            1009 as a real one does, and later sends raise. None: no limit.

    Text is encoded as UTF-8 as a real socket does: a string holding a lone
    surrogate cannot be sent (``UnicodeEncodeError``) and is not recorded.
    """

    #: Some servers log the peer's address; a mock has none to speak of.
    remote_address: tuple[str, int] = ("mock", 0)

    def __init__(
        self,
        recording: Recording | None = None,
        *,
        connection_id: str | None = None,
        fail_after: int | None = None,
        fail_with: BaseException | type[BaseException] | None = None,
        max_size: int | None = 1 << 20,
    ) -> None:
        self.recording = recording if recording is not None else Recording()
        self.max_size = max_size
        self.id = connection_id if connection_id is not None else self.recording.new_connection_id()
        if fail_with is not None and fail_after is None:
            fail_after = 0
        self.fail_after = fail_after
        self.fail_with = fail_with
        self.sends = 0
        # Re-entrant: a subscriber of the recording may call back into this connection.
        self._lock = threading.RLock()
        self._inbox: deque[str | bytes] = deque()
        self._wakers: set[Waker] = set()
        self._closed = False
        self._failed = False
        # (code, reason) of the close frames, as websockets keeps them.
        self._close_sent: tuple[int, str] | None = None
        self._close_rcvd: tuple[int, str] | None = None
        self._rcvd_then_sent: bool | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MockWebSocket {self.id} {state}>"

    # -- state ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by either side, or broken)."""
        return self._closed

    @property
    def close_code(self) -> int | None:
        """The close code received (1006 when broken without one); None while open."""
        if not self._closed:
            return None
        return self._close_rcvd[0] if self._close_rcvd is not None else 1006

    @property
    def close_reason(self) -> str | None:
        """The close reason received; None while open."""
        if not self._closed:
            return None
        return self._close_rcvd[1] if self._close_rcvd is not None else ""

    def _close_exc(self) -> ConnectionClosed:
        exceptions, frames = _websockets()
        rcvd = frames.Close(*self._close_rcvd) if self._close_rcvd is not None else None
        sent = frames.Close(*self._close_sent) if self._close_sent is not None else None
        ok = (
            rcvd is not None
            and sent is not None
            and rcvd.code in frames.OK_CLOSE_CODES
            and sent.code in frames.OK_CLOSE_CODES
        )
        kind = exceptions.ConnectionClosedOK if ok else exceptions.ConnectionClosedError
        exc: ConnectionClosed = kind(rcvd, sent, self._rcvd_then_sent)
        return exc

    def _wake_locked(self) -> None:
        for waker in self._wakers:
            waker.notify()

    # -- server side: what the code under test calls ---------------------------------

    async def send(self, message: str | bytes) -> None:
        """Send one message to the client: records an ``"out"`` frame.

        Raises:
            websockets.exceptions.ConnectionClosed: the connection is closed.
            TypeError: the message is neither str nor bytes.
        """
        with self._lock:
            if self._failed and self.fail_with is not None:
                raise self._failure()
            if self._closed:
                raise self._close_exc()
            if self.fail_after is not None and self.sends >= self.fail_after:
                self._failed = self._closed = True
                self._wake_locked()
                raise self._failure()
            # What a real socket puts on the wire: UTF-8 (a lone surrogate raises here,
            # before anything is sent or recorded).
            size = len(message.encode("utf-8")) if isinstance(message, str) else len(message)
            self.recording.record("out", message, connection_id=self.id)
            self.sends += 1
            if self.max_size is not None and size > self.max_size:
                # The client refuses it and closes, as websockets does: 1009.
                self._closed = True
                reason = f"frame with {size} bytes exceeds limit of {self.max_size} bytes"
                self._close_rcvd = self._close_sent = (1009, reason)
                self._rcvd_then_sent = True
                self.recording.record_close("in", 1009, reason, connection_id=self.id)
                self._wake_locked()

    def _failure(self) -> BaseException:
        if self.fail_with is None:
            return self._close_exc()
        if isinstance(self.fail_with, type):
            return self.fail_with()
        return self.fail_with

    async def recv(self) -> str | bytes:
        """The next message fed by the client; waits for one.

        Messages fed before a close are still returned, then this raises.

        Raises:
            websockets.exceptions.ConnectionClosedOK: closed normally (1000/1001).
            websockets.exceptions.ConnectionClosedError: closed otherwise, or broken.
        """

        def next_message() -> str | bytes | None:
            if self._inbox:
                return self._inbox.popleft()
            if self._closed:
                raise self._close_exc()
            return None

        return await self._wait_until(next_message)

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Yield messages until the connection closes; re-raise an abnormal close."""
        while True:
            try:
                message = await self.recv()
            except _connection_closed_ok():
                return
            yield message

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection: records a ``"close"`` frame (``"out"``). Idempotent.

        The simulated client answers at once, as a well-behaved peer does, so
        pending ``recv`` calls raise ``ConnectionClosedOK`` for codes 1000/1001.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_sent = self._close_rcvd = (code, reason)
            self._rcvd_then_sent = False
            self.recording.record_close("out", code, reason, connection_id=self.id)
            self._wake_locked()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed, from any event loop."""
        await self._wait_until(lambda: True if self._closed else None)

    async def _wait_until(self, ready: Callable[[], _T | None]) -> _T:
        """Await until ``ready()`` (called with the lock held) returns non-None, or raises."""
        waker: Waker | None = None
        try:
            while True:
                with self._lock:
                    value = ready()
                    if value is not None:
                        return value
                    if waker is None:
                        waker = Waker()
                        self._wakers.add(waker)
                    waker.arm()
                await waker.wait()
        finally:
            if waker is not None:
                with self._lock:
                    self._wakers.discard(waker)

    # -- client side: what the test calls ------------------------------------------

    def feed(self, message: str | bytes) -> Frame:
        """Queue a message from the client for ``recv``; records an ``"in"`` frame.

        Thread-safe; callable from any thread or loop. Returns the recorded frame.

        Raises:
            websockets.exceptions.ConnectionClosed: the connection is closed.
            TypeError: the message is neither str nor bytes.
        """
        with self._lock:
            if self._closed:
                raise self._close_exc()
            frame = self.recording.record("in", message, connection_id=self.id)
            payload = frame.payload
            assert payload is not None
            self._inbox.append(payload)
            self._wake_locked()
            return frame

    def feed_close(self, code: int = 1000, reason: str = "") -> Frame | None:
        """Simulate the client closing: records a ``"close"`` frame (``"in"``).

        Messages fed before are still received; then ``recv`` raises
        ``ConnectionClosedOK`` (codes 1000/1001) or ``ConnectionClosedError``.
        Does nothing (returns None) when already closed. Thread-safe.
        """
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            # The server side echoes the close, as websockets does.
            self._close_rcvd = self._close_sent = (code, reason)
            self._rcvd_then_sent = True
            frame = self.recording.record_close("in", code, reason, connection_id=self.id)
            self._wake_locked()
            return frame
