"""Helpers shared by the widgets: one scheduler thread, coalesced refreshes, HTML escaping.

Every live widget of the process refreshes from one long-lived daemon thread
(:func:`default_scheduler`), never from a thread of its own: however many
frames arrive, the process keeps the same threads, and each widget has at most
one refresh in flight.
"""

from __future__ import annotations

import heapq
import html
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from memgpt_lab.recorder import Recording

__all__ = ["Coalescer", "LiveRefresh", "Scheduler", "default_scheduler", "esc"]

logger = logging.getLogger(__name__)


def esc(value: object) -> str:
    """``value`` as text that is safe inside HTML."""
    return html.escape("" if value is None else str(value), quote=True)


class Scheduler:
    """Runs callbacks at given times, one after another, on one thread.

    With ``thread=True`` (what :func:`default_scheduler` makes) a daemon thread
    is started on the first :meth:`call_at` and lives as long as the process,
    sleeping while nothing is due. With ``thread=False`` nothing runs by itself:
    a test advances its ``clock`` and calls :meth:`run_due`, so no test waits on
    the wall clock.

    A callback that raises is logged; the callbacks after it still run.

    Args:
        clock: monotonic seconds.
        thread: run due callbacks on a thread of the scheduler's own.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, thread: bool = True) -> None:
        self.clock = clock
        self._threaded = thread
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()  # ties run in the order they were asked for
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<Scheduler {len(self._queue)} pending>"

    def __len__(self) -> int:
        """Callbacks waiting to run."""
        return len(self._queue)

    def call_at(self, when: float, callback: Callable[[], object]) -> None:
        """Run ``callback()`` once, as soon as ``clock()`` reaches ``when``."""
        with self._cond:
            heapq.heappush(self._queue, (when, next(self._order), callback))
            # Not alive: never started, or this is a child process forked after it started.
            if self._threaded and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(
                    target=self._serve, name="memgpt-lab-widgets", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def next_due(self) -> float | None:
        """When the earliest callback is due, or None."""
        with self._cond:
            return self._queue[0][0] if self._queue else None

    def run_due(self) -> int:
        """Run, on this thread, every callback due by now; returns how many ran."""
        ran = 0
        while True:
            with self._cond:
                if not self._queue or self._queue[0][0] > self.clock():
                    return ran
                _, _, callback = heapq.heappop(self._queue)
            self._run(callback)
            ran += 1

    @staticmethod
    def _run(callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception:
            logger.exception("widget refresh %r failed", callback)

    def _serve(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._queue:
                        delay = self._queue[0][0] - self.clock()
                        if delay <= 0:
                            _, _, callback = heapq.heappop(self._queue)
                            break
                        self._cond.wait(delay)
                    else:
                        self._cond.wait()
            self._run(callback)


_default: Scheduler | None = None
_default_lock = threading.Lock()


def default_scheduler() -> Scheduler:
    """The process's widget scheduler: one daemon thread, started when first needed."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Scheduler()
        return _default


_IDLE, _SCHEDULED, _RUNNING = "idle", "scheduled", "running"


class Coalescer:
    """Call ``callback`` at most once per ``interval`` seconds, however often it is poked.

    ``poke()`` is cheap and safe from any thread (a Recording calls its
    subscribers on the recording thread); it never waits for the callback.
    The first poke after a quiet spell schedules a call on the scheduler's
    thread; pokes until that call starts are absorbed, and pokes while it runs
    ask for one more call, at least ``interval`` seconds after this one
    started. So at most one call is in flight, calls start at least
    ``interval`` apart, and once the pokes stop at most one more call follows.

    A callback that returns True has more to do (a budgeted catch-up): it is
    called again, ``interval`` after it started, without a poke.

    Call ``close()`` when done; a pending call is dropped, a running one finishes.

    Args:
        callback: what to call; runs on the scheduler's thread.
        interval: the least time between the starts of two calls, in seconds.
        scheduler: where the calls run; :func:`default_scheduler` by default.
    """

    def __init__(
        self,
        callback: Callable[[], object],
        interval: float = 0.1,
        *,
        scheduler: Scheduler | None = None,
    ) -> None:
        if interval < 0:
            raise ValueError(f"interval must be at least 0, not {interval}")
        self._callback = callback
        self._interval = interval
        self._scheduler = scheduler if scheduler is not None else default_scheduler()
        self._lock = threading.Lock()
        self._state = _IDLE
        self._again = False
        self._last_start = float("-inf")
        self._closed = False
        self.calls = 0  #: how many times the callback has been called

    @property
    def pending(self) -> bool:
        """True while a call is scheduled and has not started yet."""
        return self._state == _SCHEDULED

    @property
    def running(self) -> bool:
        """True while the callback runs."""
        return self._state == _RUNNING

    def poke(self) -> None:
        """Ask for a call: within ``interval`` seconds of the last one's start."""
        with self._lock:
            if self._closed:
                return
            if self._state == _RUNNING:
                self._again = True
                return
            if self._state == _SCHEDULED:
                return
            self._schedule_locked()

    def _schedule_locked(self) -> None:
        self._state = _SCHEDULED
        when = max(self._scheduler.clock(), self._last_start + self._interval)
        self._scheduler.call_at(when, self._fire)

    def _fire(self) -> None:
        with self._lock:
            if self._closed or self._state != _SCHEDULED:
                return
            self._state = _RUNNING
            self._again = False
            self._last_start = self._scheduler.clock()
        more = False
        try:
            self.calls += 1
            more = self._callback() is True
        finally:
            with self._lock:
                self._state = _IDLE
                if (self._again or more) and not self._closed:
                    self._schedule_locked()

    def close(self) -> None:
        """Drop a pending call and ignore later pokes."""
        with self._lock:
            self._closed = True
            if self._state == _SCHEDULED:
                self._state = _IDLE


class LiveRefresh:
    """Keeps a widget current with a Recording, however fast frames arrive.

    Every new frame, on whatever thread records it, pokes a :class:`Coalescer`,
    which calls ``refresh`` at most once per ``interval`` seconds on the
    scheduler's thread (``refresh`` returning True asks to be called again:
    it has more to catch up on). ``close()`` unsubscribes and drops a pending
    refresh; idempotent.
    """

    def __init__(
        self,
        recording: Recording,
        refresh: Callable[[], object],
        interval: float,
        *,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.coalescer = Coalescer(refresh, interval, scheduler=scheduler)
        poke = self.coalescer.poke
        self._unsubscribe: Callable[[], None] | None = recording.subscribe(lambda _frame: poke())

    def poke(self) -> None:
        """Ask for a refresh, as a new frame does."""
        self.coalescer.poke()

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.coalescer.close()
