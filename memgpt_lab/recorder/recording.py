"""The recording core: :class:`Recording`, a thread-safe list of frames, and :class:`TickClock`.

A :class:`Recording` is a thread-safe, append-only list of
:class:`~memgpt_lab.recorder.frame.Frame` objects. Anything that sees traffic
records into it: :class:`~memgpt_lab.recorder.mock.MockWebSocket` (a connection
object for tests and notebooks), a recording proxy, a server. Widgets subscribe
to it, tests assert on it, it is written and read as JSON lines or HAR, and two
recordings can be compared with :meth:`Recording.diff`.

Direction convention, used across the project: ``"out"`` is from the
server/agent side towards a client, ``"in"`` is from a client towards the
server. A ``MockWebSocket`` stands in for a client's connection as the
server sees it, so ``send()`` records ``"out"`` and ``feed()`` records ``"in"``.

Matching rules, shared by filters, :meth:`Recording.wait_for` and the
assertions, are in :mod:`memgpt_lab.recorder.matching`.

Call order for a test: build a ``Recording`` (inject clocks for deterministic
output), hand out ``MockWebSocket(recording)`` connections, run the code under
test, then ``wait_for`` what runs on other threads and ``assert_*`` on it.

This module imports no asyncio: :meth:`Recording.wait_for_async` brings it in
when first called.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, overload

from memgpt_lab.errors import FrameTimeoutError, RecordingAssertionError
from memgpt_lab.recorder.frame import _UNSET, OPCODES, Control, Frame
from memgpt_lab.recorder.matching import Expected, describe, frame_matches
from memgpt_lab.recorder.matching import predicate as _predicate

if TYPE_CHECKING:
    from memgpt_lab.recorder.diff import RecordingDiff
    from memgpt_lab.recorder.normalise import Normaliser
    from memgpt_lab.recorder.waiting import Waker

__all__ = ["Recording", "TickClock"]

logger = logging.getLogger(__name__)


class TickClock:
    """A deterministic clock: every call returns ``start``, then ``start + step``, ...

    Inject it as a :class:`Recording`'s clock so tables and exports are the same
    every run. Thread-safe.
    """

    def __init__(self, start: float = 0.0, step: float = 0.001) -> None:
        self.start = start
        self.step = step
        self._ticks = 0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            ticks = self._ticks
            self._ticks += 1
        return self.start + ticks * self.step

    def __repr__(self) -> str:
        return f"TickClock(start={self.start!r}, step={self.step!r})"


class _Scan:
    """Incremental search of a recording for ``count`` matching frames (sync and async)."""

    __slots__ = ("recording", "predicate", "count", "matched", "index", "epoch")

    def __init__(self, recording: Recording, expected: Expected | None, count: int) -> None:
        if count < 0:
            raise ValueError(f"count must be 0 or more, not {count}")
        self.recording = recording
        self.predicate = _predicate(expected)
        self.count = count
        self.matched: list[Frame] = []
        self.index = 0
        self.epoch = recording._epoch

    def advance(self) -> bool:
        """Look at the frames recorded since the last call; True once enough matched."""
        if self.count == 0:  # nothing to wait for
            return True
        rec = self.recording
        with rec._lock:
            if rec._epoch != self.epoch:  # cleared: start over on the new frames
                self.epoch, self.index, self.matched = rec._epoch, 0, []
            # index counts every frame ever recorded; a bounded recording may have
            # dropped some this scan never saw, which it then never sees.
            new = rec._slice_locked(max(self.index - rec._dropped, 0))
            self.index = rec._dropped + len(rec._frames)
        # Predicates run outside the lock so a slow one never stalls recorders.
        predicate, matched = self.predicate, self.matched
        for frame in new:
            if predicate(frame):
                matched.append(frame)
                if len(matched) >= self.count:
                    return True
        return False

    def behind(self) -> bool:
        """Whether frames arrived since the last ``advance``; call with the lock held."""
        rec = self.recording
        return rec._epoch != self.epoch or rec._dropped + len(rec._frames) > self.index

    def timeout_error(self, expected: Expected | None, timeout: float) -> FrameTimeoutError:
        seen = self.recording
        return FrameTimeoutError(
            f"waited {timeout:g}s for {self.count} frame(s) matching {describe(expected)}; "
            f"{len(self.matched)} matched. Frames seen ({len(seen)}):\n"
            f"{seen.table(limit=50)}"
        )


def _one_or_many(value: str | Collection[str] | None) -> Collection[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return frozenset(value)


def _needles(values: Collection[str] | None) -> list[str] | None:
    """The values as they appear quoted in JSON text, or None when one may be escaped."""
    if values is None:
        return None
    needles = []
    for value in values:
        if not isinstance(value, str):
            return None
        quoted = json.dumps(value, ensure_ascii=False)
        if quoted != f'"{value}"':  # needs escapes: it may be spelled several ways
            return None
        needles.append(quoted)
    return needles


class Recording(Sequence[Frame]):
    """A thread-safe, append-only list of frames, with filters, waits and assertions.

    ``record`` may be called from any thread. Indexing with a slice, filters and
    ``outgoing``/``incoming`` return a new ``Recording`` holding those frames
    (a snapshot; the frames keep their ``seq``).

    Args:
        clock: monotonic seconds for ``Frame.time``; inject a :class:`TickClock`
            for deterministic output. Timeouts always use real time.
        wall_clock: epoch seconds for ``Frame.wall_time``.
        max_frames: keep at most this many frames (a long-running server's
            bound): the oldest are dropped and counted in :attr:`dropped`;
            ``seq`` keeps counting. None (the default): keep every frame.

    Raises:
        ValueError: ``max_frames`` is less than 1.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        *,
        max_frames: int | None = None,
    ) -> None:
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be 1 or more (or None), not {max_frames}")
        self.clock = clock
        self.wall_clock = wall_clock
        self.max_frames = max_frames
        self._frames: list[Frame] | deque[Frame] = (
            [] if max_frames is None else deque(maxlen=max_frames)
        )
        self._dropped = 0
        self._seq = 0
        self._epoch = 0  # bumped by clear(), so waits restart their scan
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sync_waiters = 0
        self._wakers: set[Waker] = set()
        self._watched = False  # any waiter at all: the only check record() pays for
        self._subscribers: tuple[Callable[[Frame], object], ...] = ()
        self._connections = 0
        self._connection_info: dict[str, dict[str, Any]] = {}
        #: Entries a HAR file held that were not WebSocket connections (set by ``from_har``).
        self.skipped_entries = 0

    @classmethod
    def _snapshot(cls, frames: list[Frame], like: Recording) -> Recording:
        rec = cls(like.clock, like.wall_clock)
        rec._frames = frames
        rec._seq = frames[-1].seq if frames else 0
        rec._connection_info = dict(like._connection_info)
        return rec

    @property
    def dropped(self) -> int:
        """How many of the oldest frames ``max_frames`` dropped (since creation or ``clear``)."""
        return self._dropped

    def _slice_locked(self, start: int) -> list[Frame]:
        frames = self._frames
        if type(frames) is list:
            return frames[start:]
        return list(itertools.islice(frames, start, None))

    def _append_locked(self, frame: Frame) -> None:
        frames = self._frames
        if self.max_frames is not None and len(frames) == self.max_frames:
            self._dropped += 1  # the deque drops the oldest as this one goes in
        frames.append(frame)

    # -- recording -----------------------------------------------------------------

    def record(
        self,
        direction: str,
        payload: str | bytes | bytearray | memoryview | None,
        *,
        connection_id: str = "",
        opcode: str | None = None,
        close_code: int | None = None,
        close_reason: str | None = None,
    ) -> Frame:
        """Capture one frame and return it.

        The opcode is inferred from the payload (str: text, bytes: binary) unless
        given; a ``"close"`` frame takes no payload, ``"ping"`` and ``"pong"``
        take bytes (or None, for none). Waiters are woken, then
        subscribers are called on this thread.

        Raises:
            ValueError: ``direction`` is not ``"out"`` or ``"in"``.
            TypeError: the payload is neither str nor bytes.
        """
        if direction != "out" and direction != "in":
            raise ValueError(f"direction must be 'out' or 'in', not {direction!r}")
        body: str | bytes | None
        control: Control = None
        if opcode is None or opcode == "text" or opcode == "binary":
            kind = type(payload)
            if kind is str or kind is bytes:
                body = payload  # type: ignore[assignment]
            elif isinstance(payload, (str, bytes, bytearray, memoryview)):
                body = str(payload) if isinstance(payload, str) else bytes(payload)
            else:
                raise TypeError(f"payload must be str or bytes, not {kind.__name__}")
        elif opcode == "close":
            body = None
            if close_reason is None and close_code is not None:
                close_reason = ""
            control = (close_code, close_reason)
        elif opcode == "ping" or opcode == "pong":
            if payload is None:
                body = b""
            elif isinstance(payload, (bytes, bytearray, memoryview)):
                body = bytes(payload)
            else:
                raise TypeError(f"a {opcode} payload must be bytes, not {type(payload).__name__}")
            control = opcode
        else:
            raise ValueError(f"opcode must be one of {', '.join(OPCODES)}, not {opcode!r}")
        with self._lock:  # times read under the lock, so they never run backwards against seq
            now = self.clock()
            wall = self.wall_clock()
            seq = self._seq = self._seq + 1
            frame = Frame._make(seq, now, wall, direction, connection_id, body, control)
            if self.max_frames is None:
                self._frames.append(frame)
            else:
                self._append_locked(frame)
            if self._watched:
                self._wake_locked()
        subscribers = self._subscribers
        if subscribers:
            self._call_subscribers(subscribers, frame)
        return frame

    def record_close(
        self, direction: str, code: int | None = 1000, reason: str = "", *, connection_id: str = ""
    ) -> Frame:
        """Capture a close frame."""
        return self.record(
            direction,
            None,
            connection_id=connection_id,
            opcode="close",
            close_code=code,
            close_reason=reason,
        )

    def append(self, frame: Frame) -> Frame:
        """Capture an already-built frame (from a proxy or another recording).

        The frame is copied with this recording's next ``seq``; its times, payload
        and connection are kept. Returns the copy.
        """
        with self._lock:
            seq = self._seq = self._seq + 1
            copy = Frame._make(
                seq,
                frame.time,
                frame.wall_time,
                frame.direction,
                frame.connection_id,
                frame._payload,
                frame._control,
            )
            self._append_locked(copy)
            if self._watched:
                self._wake_locked()
        subscribers = self._subscribers
        if subscribers:
            self._call_subscribers(subscribers, copy)
        return copy

    def _wake_locked(self) -> None:
        if self._sync_waiters:
            self._cond.notify_all()
        for waker in self._wakers:
            waker.notify()

    def _update_watched_locked(self) -> None:
        self._watched = bool(self._sync_waiters or self._wakers)

    @staticmethod
    def _call_subscribers(subscribers: Iterable[Callable[[Frame], object]], frame: Frame) -> None:
        for callback in subscribers:
            try:
                callback(frame)
            except Exception:
                # A broken widget must not break the traffic it watches.
                logger.exception("Recording subscriber %r failed on frame #%d", callback, frame.seq)

    def subscribe(self, callback: Callable[[Frame], object]) -> Callable[[], None]:
        """Call ``callback(frame)`` after each new frame; returns a function that unsubscribes.

        Callbacks run on the thread that recorded the frame, in subscription order,
        outside the recording's lock (they may read the recording). With several
        recording threads, use ``frame.seq`` to order what arrives. Exceptions are
        logged and swallowed.
        """
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                subs = list(self._subscribers)
                if callback in subs:
                    subs.remove(callback)
                    self._subscribers = tuple(subs)

        return unsubscribe

    def set_connection_info(self, connection_id: str, info: Mapping[str, Any]) -> None:
        """Keep what is known of a connection's handshake, for HAR export and readers.

        ``info`` is plain JSON-able data; the keys HAR export reads are ``url``,
        ``method``, ``status``, ``status_text``, ``request_headers`` and
        ``response_headers`` (lists of ``[name, value]`` pairs, secrets already
        masked), ``subprotocol``, ``started`` (epoch seconds) and ``handshake_ms``.
        Setting it again replaces it.
        """
        with self._lock:
            self._connection_info[connection_id] = dict(info)

    def connection_info(self, connection_id: str) -> dict[str, Any] | None:
        """A copy of a connection's handshake information, or None when none was set."""
        with self._lock:
            info = self._connection_info.get(connection_id)
            return None if info is None else dict(info)

    @property
    def connections(self) -> dict[str, dict[str, Any]]:
        """Every connection's handshake information (a copy), by connection id."""
        with self._lock:
            return {cid: dict(info) for cid, info in self._connection_info.items()}

    def new_connection_id(self) -> str:
        """A short id unique in this recording: ``"c1"``, ``"c2"``..."""
        with self._lock:
            self._connections += 1
            return f"c{self._connections}"

    def clear(self) -> None:
        """Forget every frame; ``seq`` starts again at 1. Pending waits keep waiting."""
        with self._lock:
            self._frames = [] if self.max_frames is None else deque(maxlen=self.max_frames)
            self._dropped = 0
            self._seq = 0
            self._epoch += 1

    # -- Sequence ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._frames)

    @overload
    def __getitem__(self, index: int) -> Frame: ...

    @overload
    def __getitem__(self, index: slice) -> Recording: ...

    def __getitem__(self, index: int | slice) -> Frame | Recording:
        if isinstance(index, slice):
            with self._lock:
                held = self._frames
                frames = held[index] if type(held) is list else list(held)[index]
            return self._snapshot(frames, self)
        return self._frames[index]

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames())

    def __bool__(self) -> bool:
        return bool(self._frames)

    def __repr__(self) -> str:
        return f"<Recording {len(self._frames)} frames>"

    def frames(self) -> list[Frame]:
        """A copy of the frame list, taken atomically."""
        with self._lock:
            return list(self._frames)

    # -- queries -------------------------------------------------------------------

    def filter(
        self,
        direction: str | None = None,
        type: str | Collection[str] | None = None,
        message_type: str | Collection[str] | None = None,
        connection_id: str | Collection[str] | None = None,
        text: str | None = None,
        regex: str | re.Pattern[str] | None = None,
        predicate: Expected | None = None,
    ) -> Recording:
        """The frames matching every given criterion, as a new ``Recording``.

        Args:
            direction: ``"out"`` or ``"in"``.
            type: the JSON ``type``, or a collection of them.
            message_type: the JSON ``message_type``, or a collection of them.
            connection_id: a connection id, or a collection of them.
            text: a substring of the frame text.
            regex: a pattern searched in the frame text.
            predicate: any expected item (dict, str, regex, callable), see
                :func:`frame_matches`.
        """
        types = _one_or_many(type)
        message_types = _one_or_many(message_type)
        connections = _one_or_many(connection_id)
        type_needles = _needles(types)
        mtype_needles = _needles(message_types)
        pattern = re.compile(regex) if isinstance(regex, str) else regex
        check = _predicate(predicate) if predicate is not None else None
        out = []
        for frame in self.frames():
            if direction is not None and frame.direction != direction:
                continue
            if connections is not None and frame.connection_id not in connections:
                continue
            if text is not None and (frame.text is None or text not in frame.text):
                continue
            if pattern is not None and (frame.text is None or not pattern.search(frame.text)):
                continue
            if types is not None or message_types is not None:
                if frame._json is _UNSET and frame.text is not None and "\\u" not in frame.text:
                    # Not parsed yet: skip the JSON parse when the wanted value cannot be
                    # in the text at all (a plain string shows up literally, quoted).
                    body = frame.text
                    if type_needles and not any(n in body for n in type_needles):
                        continue
                    if mtype_needles and not any(n in body for n in mtype_needles):
                        continue
                value = frame.json
                if not isinstance(value, dict):
                    continue
                if types is not None and value.get("type") not in types:
                    continue
                if message_types is not None and value.get("message_type") not in message_types:
                    continue
            if check is not None and not check(frame):
                continue
            out.append(frame)
        return self._snapshot(out, self)

    def outgoing(self) -> Recording:
        """The ``"out"`` frames (server/agent to client)."""
        return self.filter(direction="out")

    def incoming(self) -> Recording:
        """The ``"in"`` frames (client to server)."""
        return self.filter(direction="in")

    def messages(self) -> list[Any]:
        """The parsed JSON of every frame that has some, in order."""
        return [value for value in (frame.json for frame in self.frames()) if value is not None]

    def texts(self) -> list[str]:
        """The text of every text frame, in order."""
        return [frame.text for frame in self.frames() if frame.text is not None]

    def count_by(self, key: str) -> dict[Any, int]:
        """How many frames have each value of ``key``, in first-seen order.

        Args:
            key: ``"type"``, ``"message_type"``, ``"direction"``, ``"connection_id"``
                or ``"opcode"``. Frames without the field count under ``None``.
        """
        if key not in ("type", "message_type", "direction", "connection_id", "opcode"):
            raise ValueError(f"cannot count frames by {key!r}")
        counts: dict[Any, int] = {}
        for frame in self.frames():
            value = getattr(frame, key)
            counts[value] = counts.get(value, 0) + 1
        return counts

    # -- waiting -------------------------------------------------------------------

    def wait_for(
        self, predicate: Expected | None = None, *, count: int = 1, timeout: float = 5.0
    ) -> list[Frame]:
        """Block until ``count`` frames match ``predicate``; return the first ``count``.

        Frames recorded before the call count too. Safe from any thread except the
        one that must record the frames (use :meth:`wait_for_async` in a loop).

        Raises:
            FrameTimeoutError: not enough frames matched within ``timeout`` seconds;
                the message lists the frames seen.
        """
        scan = _Scan(self, predicate, count)
        deadline = time.monotonic() + timeout
        while True:
            if scan.advance():
                return scan.matched[:count]
            with self._lock:
                if scan.behind():
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._sync_waiters += 1
                self._update_watched_locked()
                try:
                    self._cond.wait(remaining)
                finally:
                    self._sync_waiters -= 1
                    self._update_watched_locked()
        raise scan.timeout_error(predicate, timeout)

    async def wait_for_async(
        self, predicate: Expected | None = None, *, count: int = 1, timeout: float = 5.0
    ) -> list[Frame]:
        """Like :meth:`wait_for`, awaiting instead of blocking the event loop.

        Frames may be recorded on any thread, including this loop's.
        """
        scan = _Scan(self, predicate, count)
        from memgpt_lab.recorder.waiting import Waker  # asyncio, only when waited on

        waker = Waker()
        loop = waker.loop
        deadline = loop.time() + timeout
        with self._lock:
            self._wakers.add(waker)
            self._update_watched_locked()
        try:
            while True:
                waker.arm()  # before scanning, so a frame recorded meanwhile re-wakes us
                if scan.advance():
                    return scan.matched[:count]
                remaining = deadline - loop.time()
                if remaining <= 0 or not await waker.wait(remaining):
                    if scan.advance():
                        return scan.matched[:count]
                    break
        finally:
            with self._lock:
                self._wakers.discard(waker)
                self._update_watched_locked()
        raise scan.timeout_error(predicate, timeout)

    # -- assertions ----------------------------------------------------------------

    def _scope(self, direction: str | None) -> list[Frame]:
        frames = self.frames()
        if direction is None:
            return frames
        return [frame for frame in frames if frame.direction == direction]

    def _fail(self, message: str, frames: list[Frame]) -> RecordingAssertionError:
        seen = self._snapshot(frames, self)
        return RecordingAssertionError(
            f"{message}\nFrames seen ({len(frames)}):\n{seen.table(limit=50)}"
        )

    def assert_sent(self, expected: Expected, *, direction: str | None = None) -> Frame:
        """Assert that some frame (in ``direction``, if given) matches; return the first.

        Raises:
            RecordingAssertionError: none matched; the message shows the frames seen.
        """
        __tracebackhide__ = True
        frames = self._scope(direction)
        check = _predicate(expected)
        for frame in frames:
            if check(frame):
                return frame
        where = f" {direction!r}" if direction else ""
        raise self._fail(f"no{where} frame matched {describe(expected)}", frames)

    def assert_not_sent(self, expected: Expected, *, direction: str | None = None) -> None:
        """Assert that no frame (in ``direction``, if given) matches.

        Raises:
            RecordingAssertionError: some frame matched.
        """
        __tracebackhide__ = True
        frames = self._scope(direction)
        check = _predicate(expected)
        for frame in frames:
            if check(frame):
                raise self._fail(
                    f"frame #{frame.seq} matched {describe(expected)}, expected none to", frames
                )

    def assert_sequence(
        self, expected: Sequence[Expected], *, direction: str | None = None
    ) -> list[Frame]:
        """Assert the expected items match frames in this order, others allowed between.

        Returns the matching frames.

        Raises:
            RecordingAssertionError: an item matched no later frame.
        """
        __tracebackhide__ = True
        frames = self._scope(direction)
        found: list[Frame] = []
        position = 0
        for number, item in enumerate(expected, 1):
            check = _predicate(item)
            while position < len(frames) and not check(frames[position]):
                position += 1
            if position == len(frames):
                after = f" after frame #{found[-1].seq}" if found else ""
                raise self._fail(
                    f"item {number} of {len(expected)} not found{after}: {describe(item)}", frames
                )
            found.append(frames[position])
            position += 1
        return found

    def assert_frames(
        self, expected: Sequence[Expected], *, direction: str | None = None
    ) -> list[Frame]:
        """Assert the frames (in ``direction``, if given) are exactly these, in order.

        Raises:
            RecordingAssertionError: a frame does not match its item, or the counts differ.
        """
        __tracebackhide__ = True
        frames = self._scope(direction)
        problems = []
        if len(frames) != len(expected):
            problems.append(f"expected {len(expected)} frames, got {len(frames)}")
        for number, (item, frame) in enumerate(zip(expected, frames, strict=False), 1):
            if not frame_matches(item, frame):
                problems.append(f"frame {number} (#{frame.seq}) does not match {describe(item)}")
                break
        if problems:
            raise self._fail("; ".join(problems), frames)
        return frames

    # -- output --------------------------------------------------------------------

    def table(self, limit: int | None = None, width: int = 110, *, show_time: bool = True) -> str:
        """A fixed-width text table of the frames, one line each.

        Columns: seq, ms since this recording's first frame (unless ``show_time``
        is False), direction, type, message_type, size, and a preview filling the
        rest of ``width``. A connection column is added when there are several.

        Args:
            limit: show at most this many frames (the first ones).
            width: the line width the preview is cut to.
            show_time: whether to show the time column.
        """
        frames = self.frames()
        if not frames:
            return "(no frames)"
        shown = frames if limit is None else frames[:limit]
        multi = len({frame.connection_id for frame in frames}) > 1
        t0 = frames[0].time
        head = f"{'seq':>5} "
        if show_time:
            head += f"{'ms':>9} "
        if multi:
            head += f"{'conn':<6} "
        head += f"{'dir':<3} {'type':<20} {'message_type':<18} {'size':>6} "
        preview_width = max(width - len(head), 10)
        lines = [head + "preview"]
        for frame in shown:
            line = f"{frame.seq:>5} "
            if show_time:
                line += f"{(frame.time - t0) * 1000:>9.1f} "
            if multi:
                line += f"{frame.connection_id[:6]:<6} "
            kind = frame.type if frame.type is not None else f"({frame.opcode})"
            line += (
                f"{frame.direction:<3} {_cut(str(kind), 20):<20} "
                f"{_cut(frame.message_type or '', 18):<18} {frame.size:>6} "
                f"{_table_preview(frame, preview_width)}"
            )
            lines.append(line.rstrip())
        if len(shown) < len(frames):
            lines.append(f"... and {len(frames) - len(shown)} more frames")
        return "\n".join(lines)

    def to_jsonl(self, path_or_file: str | os.PathLike[str] | IO[str]) -> None:
        """Write one JSON object per frame (see :meth:`Frame.to_dict`).

        Connections' handshake information, if any was set, comes first, one
        ``{"connection_id": ..., "connection_info": {...}}`` line each.
        """
        from memgpt_lab.recorder.jsonl import write_jsonl

        write_jsonl(self.frames(), path_or_file, self.connections)

    @classmethod
    def from_jsonl(
        cls,
        path_or_file: str | os.PathLike[str] | IO[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> Recording:
        """The recording :meth:`to_jsonl` wrote; frames keep their ``seq`` and times.

        Raises:
            RecordingFormatError: a line is not a recorded frame.
        """
        from memgpt_lab.recorder.jsonl import read_jsonl

        frames, connections = read_jsonl(path_or_file)
        rec = cls._snapshot(frames, cls(clock, wall_clock))
        rec._connection_info = connections
        return rec

    def to_har(self, path_or_file: str | os.PathLike[str] | IO[str]) -> None:
        """Write HAR 1.2, one entry per connection, as Chrome DevTools writes WebSocket traffic.

        ``"in"`` frames (client to server) are ``"send"`` messages, ``"out"``
        frames are ``"receive"``: a HAR is written from the client's side. See
        :mod:`memgpt_lab.recorder.har` for the fields.
        """
        from memgpt_lab import __version__
        from memgpt_lab.recorder.har import write_har

        write_har(self.frames(), self.connections, path_or_file, creator_version=__version__)

    @classmethod
    def from_har(
        cls,
        path_or_file: str | os.PathLike[str] | IO[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> Recording:
        """The WebSocket traffic of a HAR file (Chrome DevTools, Playwright, this project).

        Each WebSocket entry becomes a connection (its handshake kept, see
        :meth:`connection_info`); HTTP entries are skipped and counted in
        :attr:`skipped_entries`. Files written by :meth:`to_har` read back with
        the same ``seq``, times and connection ids.

        Raises:
            RecordingFormatError: the file is not HAR or holds an unreadable message.
        """
        from memgpt_lab.recorder.har import read_har

        contents = read_har(path_or_file)
        rec = cls._snapshot(contents.frames, cls(clock, wall_clock))
        rec._connection_info = contents.connections
        rec.skipped_entries = contents.skipped
        return rec

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> Recording:
        """Read a recording from HAR or JSON lines, whichever the file is.

        The suffix decides (``.har``; ``.jsonl``, ``.ndjson``), else the content.

        Raises:
            RecordingFormatError: the file is neither, or not readable as what it seems.
            FileNotFoundError: there is no such file.
        """
        from memgpt_lab.recorder.formats import detect_format

        if detect_format(path) == "har":
            return cls.from_har(path, clock=clock, wall_clock=wall_clock)
        return cls.from_jsonl(path, clock=clock, wall_clock=wall_clock)

    def save(self, path: str | os.PathLike[str], format: str | None = None) -> str:
        """Write HAR or JSON lines, the counterpart of :meth:`load`; returns the format used.

        ``format`` is ``"har"`` (:meth:`to_har`) or ``"jsonl"`` (:meth:`to_jsonl`);
        by default a ``.har`` file is HAR and anything else JSON lines.

        Raises:
            ValueError: ``format`` is neither.
        """
        chosen = format or ("har" if os.fspath(path).lower().endswith(".har") else "jsonl")
        if chosen == "har":
            self.to_har(path)
        elif chosen == "jsonl":
            self.to_jsonl(path)
        else:
            raise ValueError(f"format must be 'har' or 'jsonl', not {format!r}")
        return chosen

    def diff(self, other: Recording, normalise: Normaliser | None = None) -> RecordingDiff:
        """Compare with ``other``, frame by frame, whatever their times and ids.

        Both are normalised (by default with :class:`~memgpt_lab.recorder.normalise.Normaliser`
        ``()``, the snapshots' normaliser: times, ids and uuids become placeholders
        in order of first appearance), then aligned by connection (paired by
        content: identical, then most alike, then in order of first appearance)
        and, within one, by order, tolerating inserted and missing frames;
        where frames differ, those of one kind (``type``, ``message_type``) are
        paired, the closest texts first. See :mod:`memgpt_lab.recorder.diff`.

        Returns:
            A :class:`~memgpt_lab.recorder.diff.RecordingDiff`: falsy when they
            agree; its rows say same / changed / only-left / only-right, and
            ``str()`` shows the differences.
        """
        from memgpt_lab.recorder.diff import diff_recordings

        return diff_recordings(self, other, normalise)


def _table_preview(frame: Frame, width: int) -> str:
    # The type columns already show type and message_type: spend the width on the rest.
    value = frame.json
    if isinstance(value, dict) and "type" in value:
        rest = {k: v for k, v in value.items() if k != "type" and k != "message_type"}
        text = json.dumps(rest, ensure_ascii=False, separators=(",", ":")) if rest else ""
        return _cut(text, width)
    return frame.preview(width)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
