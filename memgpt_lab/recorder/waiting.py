"""Waking a coroutine from any thread: what :meth:`Recording.wait_for_async` and
:class:`~memgpt_lab.recorder.mock.MockWebSocket` need from asyncio, and the only
part of the recorder besides the mock socket that imports it.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["Waker"]


class Waker:
    """Wakes one coroutine from any thread; created inside the coroutine's running loop.

    ``notify`` may be called from any thread, any number of times; at most one
    wake-up is in flight at a time. The waiting side calls ``arm`` before it
    checks its condition and ``wait`` after, so no notification is lost.
    """

    __slots__ = ("loop", "event", "pending")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        self.pending = False

    def notify(self) -> None:
        if self.pending:
            return  # a wake-up is already queued and will run after this change
        self.pending = True
        # A closed loop raises RuntimeError: nobody awaits this any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._fire)

    def _fire(self) -> None:
        self.pending = False
        self.event.set()

    def arm(self) -> None:
        self.event.clear()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for a notification; False on timeout."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            return False
        return True
