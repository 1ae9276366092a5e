"""Helpers shared by the widgets: coalesced refreshes and HTML escaping."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memgpt_lab.recorder import Recording

__all__ = ["Coalescer", "LiveRefresh", "esc"]


def esc(value: object) -> str:
    """``value`` as text that is safe inside HTML."""
    return html.escape("" if value is None else str(value), quote=True)


class Coalescer:
    """Call ``callback`` at most once per ``interval`` seconds, however often it is poked.

    ``poke()`` is cheap and safe from any thread (a Recording calls its
    subscribers on the recording thread): the first poke after a quiet spell
    starts a timer thread, later pokes before it fires are absorbed, so a
    burst of frames costs one refresh. The recording thread never sleeps or
    waits for the refresh.

    Call ``close()`` when done; a pending call is cancelled.

    ``timer`` makes the timer (``threading.Timer`` by default: ``timer(interval,
    function)`` with ``daemon``, ``start()`` and ``cancel()``); tests pass one they
    fire themselves instead of waiting on the clock.
    """

    def __init__(
        self,
        callback: Callable[[], object],
        interval: float = 0.1,
        *,
        timer: Callable[[float, Callable[[], None]], Any] = threading.Timer,
    ) -> None:
        self._callback = callback
        self._interval = interval
        self._make_timer = timer
        self._lock = threading.Lock()
        self._timer: Any = None
        self._closed = False

    @property
    def pending(self) -> bool:
        """True while a call is scheduled and has not started yet."""
        return self._timer is not None

    def poke(self) -> None:
        """Ask for a call; it happens within ``interval`` seconds."""
        with self._lock:
            if self._closed or self._timer is not None:
                return
            self._timer = self._make_timer(self._interval, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            if self._closed:
                return
        # Outside the lock: pokes during the callback schedule the next call,
        # so frames that arrive while refreshing are not lost.
        self._callback()

    def close(self) -> None:
        """Cancel a pending call and ignore later pokes."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()


class LiveRefresh:
    """Keeps a widget current with a Recording, however fast frames arrive.

    Every new frame, on whatever thread records it, pokes a :class:`Coalescer`,
    which calls ``refresh`` at most once per ``interval`` seconds on its timer
    thread. ``close()`` unsubscribes and cancels a pending refresh; idempotent.
    """

    def __init__(
        self, recording: Recording, refresh: Callable[[], object], interval: float
    ) -> None:
        self.coalescer = Coalescer(refresh, interval)
        self._unsubscribe: Callable[[], None] | None = recording.subscribe(
            lambda _frame: self.coalescer.poke()
        )

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.coalescer.close()
