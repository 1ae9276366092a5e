"""An asyncio event loop in a daemon thread, for callers that block.

A Jupyter cell already runs the kernel's loop on its thread, so sync APIs
(``SyncWebSocketInterface``, ``LabServer``, ``RecordingProxy``, ``LabClient``)
never run a loop there: each owns a :class:`BackgroundLoop` and hands it
coroutines. This is the one place that starts, feeds and winds down such a loop.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["BackgroundLoop"]

_T = TypeVar("_T")


# Loops still running when the program ends are wound down at exit, while daemon
# threads still run, so their pending tasks are cancelled rather than destroyed.
_running: weakref.WeakSet[BackgroundLoop] = weakref.WeakSet()


@atexit.register
def _close_running_loops() -> None:
    for background in list(_running):
        background.close()


async def _await(awaitable: Awaitable[_T]) -> _T:
    return await awaitable


class BackgroundLoop:
    """An event loop run by a daemon thread of its own.

    Call :meth:`start` once; then :meth:`run` (blocking) or :meth:`submit` from
    any other thread; :meth:`close` last. Closing cancels whatever is still
    pending on the loop (as ``asyncio.run`` does), stops it, joins the thread
    and closes the loop. A coroutine handed over after ``close`` began is closed
    unscheduled and ``closed_error()`` is raised.

    Args:
        name: the thread's name, also used in error messages.
        closed_error: makes the exception raised for use after close.
    """

    def __init__(self, name: str, closed_error: Callable[[], BaseException] | None = None) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed_error = closed_error or (lambda: RuntimeError(f"{name} is closed"))
        # Guards scheduling against the loop stopping, so no coroutine is handed
        # to a loop that will never run it.
        self._schedule_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._stopping = False

    def start(self) -> BackgroundLoop:
        """Start the thread; returns once the loop is running."""
        ready = threading.Event()
        self.loop.call_soon(ready.set)
        self.thread.start()
        ready.wait()
        _running.add(self)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            try:
                while tasks := asyncio.all_tasks(self.loop):
                    for task in tasks:
                        task.cancel()
                    self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                self.loop.close()

    @property
    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self.thread

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has begun."""
        return self._stopping

    @property
    def frozen(self) -> bool:
        """True while the interpreter shuts down: daemon threads no longer run, so
        waiting on the loop would never end (a widget's ``__del__`` may close us then)."""
        return sys.is_finalizing()

    def check_not_loop_thread(self, what: str) -> None:
        """Raise RuntimeError when called on the loop's thread, where blocking would deadlock."""
        if self.in_loop_thread:
            raise RuntimeError(
                f"{what} blocks until {self.name}'s thread does the work, so it cannot be "
                "called from that thread; await the coroutine there instead"
            )

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Schedule ``coro`` on the loop; returns a concurrent future. Any thread."""
        with self._schedule_lock:
            if self._stopping:
                coro.close()  # never scheduled: close it so it is not reported unawaited
                raise self._closed_error()
            return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, awaitable: Awaitable[_T], timeout: float | None = None) -> _T:
        """Await ``awaitable`` on the loop and return its result, from another thread.

        Raises:
            RuntimeError: called from the loop's own thread.
            TimeoutError: ``timeout`` seconds passed; the coroutine is cancelled.
        """
        # websockets' connect() and serve() are awaitable objects, not coroutines.
        coro = awaitable if asyncio.iscoroutine(awaitable) else _await(awaitable)
        try:
            self.check_not_loop_thread("run()")
        except RuntimeError:
            coro.close()
            raise
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():  # the coroutine's own TimeoutError (the same class on 3.11+)
                raise
            future.cancel()
            raise TimeoutError(f"{self.name}: gave up after {timeout} s") from None

    def close(self) -> None:
        """Cancel what is pending, stop the loop, join the thread, close the loop. Idempotent."""
        self.check_not_loop_thread("close()")
        with self._close_lock:
            if self._stopping:
                return
            with self._schedule_lock:
                self._stopping = True
            if self.frozen:
                return
            if self.thread.ident is None:  # never started
                self.loop.close()
                return
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            _running.discard(self)
