"""Record WebSocket traffic: :class:`Frame`, :class:`Recording`, :class:`MockWebSocket`.

A :class:`Recording` is a thread-safe, append-only list of :class:`Frame` objects.
Anything that sees traffic records into it: :class:`MockWebSocket` (a connection
object for tests and notebooks), a recording proxy, a server. Widgets subscribe
to it, tests assert on it, and it round-trips through JSON lines.

Direction convention, used across the project: ``"out"`` is from the
server/agent side towards a client, ``"in"`` is from a client towards the
server. A :class:`MockWebSocket` stands in for a client's connection as the
server sees it, so ``send()`` records ``"out"`` and ``feed()`` records ``"in"``.

Matching rules, shared by filters, :meth:`Recording.wait_for` and the
assertions (see :func:`frame_matches`): a dict matches a JSON frame that
contains it (:func:`matches`), a str is the exact frame text, a compiled regex
is searched in the text, and a callable is called with the frame.

Call order for a test: build a ``Recording`` (inject clocks for deterministic
output), hand out ``MockWebSocket(recording)`` connections, run the code under
test, then ``wait_for`` what runs on other threads and ``assert_*`` on it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import IO, TYPE_CHECKING, Any, TypeAlias, TypeVar, overload

from memgpt_lab.errors import FrameTimeoutError, RecordingAssertionError

if TYPE_CHECKING:
    from websockets.exceptions import ConnectionClosed

__all__ = [
    "ANY",
    "DIRECTIONS",
    "Expected",
    "Frame",
    "MockWebSocket",
    "OPCODES",
    "Recording",
    "TickClock",
    "describe",
    "frame_matches",
    "matches",
]

logger = logging.getLogger(__name__)

#: ``"out"``: server/agent side to client; ``"in"``: client to server.
DIRECTIONS = ("out", "in")
OPCODES = ("text", "binary", "close")

_T = TypeVar("_T")

_UNSET: Any = object()  # Frame.json not parsed yet (None is a valid cached result)


# --------------------------------------------------------------------------- matching


class _AnyType:
    """The type of :data:`ANY`."""

    __slots__ = ()
    _instance: _AnyType | None = None

    def __new__(cls) -> _AnyType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "ANY"

    def __reduce__(self) -> str:
        return "ANY"


#: Matches any value (the key must still be present), e.g. ``{"seq": ANY}``.
ANY = _AnyType()

#: What an expected item can be; see :func:`frame_matches`.
Expected: TypeAlias = "Mapping[str, Any] | str | re.Pattern[str] | Callable[[Frame], object]"


def matches(expected: Any, actual: Any) -> bool:
    """Whether JSON value ``actual`` matches ``expected``, partially.

    A dict matches a dict holding at least its keys, each matching recursively;
    a list matches a list of the same length, elementwise; :data:`ANY` matches
    anything; a compiled regex is searched in a string; other values compare
    equal, except that booleans only equal booleans (JSON ``true`` is not ``1``).
    """
    if expected is ANY:
        return True
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return False
        for key, value in expected.items():
            if key not in actual or not matches(value, actual[key]):
                return False
        return True
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return False
        return all(matches(e, a) for e, a in zip(expected, actual, strict=True))
    if isinstance(expected, re.Pattern):
        return isinstance(actual, str) and expected.search(actual) is not None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(expected == actual)


def frame_matches(expected: Expected, frame: Frame) -> bool:
    """Whether ``frame`` matches one expected item.

    Args:
        expected: a dict (the frame's JSON contains it, see :func:`matches`), a str
            (the exact frame text), a compiled regex (searched in the text), or a
            callable ``(frame) -> bool``.
        frame: the frame to test.
    """
    return _predicate(expected)(frame)


def _predicate(expected: Expected | None) -> Callable[[Frame], bool]:
    """Compile an expected item into a frame predicate; the one place matching is decided."""
    if expected is None:
        return lambda frame: True
    if isinstance(expected, Mapping):
        return lambda frame: matches(expected, frame.json)
    if isinstance(expected, str):
        return lambda frame: frame.text == expected
    if isinstance(expected, re.Pattern):
        pattern = expected
        return lambda frame: frame.text is not None and pattern.search(frame.text) is not None
    if callable(expected):
        func = expected
        return lambda frame: bool(func(frame))
    raise TypeError(
        "expected a dict, a str, a compiled regex or a callable(frame), "
        f"not {type(expected).__name__}"
    )


def describe(expected: Expected | None) -> str:
    """A short readable form of an expected item, for error messages."""
    if expected is None:
        return "any frame"
    if isinstance(expected, Mapping):
        try:
            return json.dumps(expected, ensure_ascii=False, default=repr)
        except (TypeError, ValueError):
            return repr(expected)
    if isinstance(expected, re.Pattern):
        return f"re.compile({expected.pattern!r})"
    if isinstance(expected, str):
        return repr(expected)
    return getattr(expected, "__qualname__", None) or repr(expected)


# --------------------------------------------------------------------------- Frame


class Frame:
    """One captured WebSocket frame. Built by :class:`Recording`; treat as immutable.

    Attributes:
        seq: 1-based position in the recording that captured it.
        time: monotonic seconds, from the recording's clock.
        wall_time: epoch seconds, from the recording's wall clock.
        direction: ``"out"`` (server to client) or ``"in"`` (client to server).
        opcode: ``"text"``, ``"binary"`` or ``"close"``.
        text: the text of a text frame, else None.
        data: the payload of a binary frame, else None.
        connection_id: which connection carried it (``"c1"``...), or ``""``.
        close_code: the code of a close frame, else None.
        close_reason: the reason of a close frame, else None.
    """

    __slots__ = (
        "seq",
        "time",
        "wall_time",
        "direction",
        "opcode",
        "text",
        "data",
        "connection_id",
        "close_code",
        "close_reason",
        "_json",
    )

    seq: int
    time: float
    wall_time: float
    direction: str
    opcode: str
    text: str | None
    data: bytes | None
    connection_id: str
    close_code: int | None
    close_reason: str | None

    def __init__(
        self,
        seq: int,
        time: float,
        wall_time: float,
        direction: str,
        opcode: str,
        text: str | None = None,
        data: bytes | None = None,
        connection_id: str = "",
        close_code: int | None = None,
        close_reason: str | None = None,
    ) -> None:
        self.seq = seq
        self.time = time
        self.wall_time = wall_time
        self.direction = direction
        self.opcode = opcode
        self.text = text
        self.data = data
        self.connection_id = connection_id
        self.close_code = close_code
        self.close_reason = close_reason
        self._json = _UNSET

    @property
    def payload(self) -> str | bytes | None:
        """The text or the binary data, whichever the frame has (None for close)."""
        return self.text if self.text is not None else self.data

    @property
    def json(self) -> Any:
        """The parsed JSON of a text frame, or None; parsed on first use, then cached."""
        value = self._json
        if value is _UNSET:
            value = None
            if self.text is not None:
                try:
                    value = json.loads(self.text)
                except ValueError:
                    value = None
            self._json = value
        return value

    @property
    def type(self) -> str | None:
        """The JSON ``type`` field, when the frame is a JSON object."""
        value = self.json
        return value.get("type") if isinstance(value, dict) else None

    @property
    def message_type(self) -> str | None:
        """The JSON ``message_type`` field, when the frame is a JSON object."""
        value = self.json
        return value.get("message_type") if isinstance(value, dict) else None

    @property
    def size(self) -> int:
        """Payload bytes: UTF-8 text, binary data, or code plus reason of a close frame."""
        if self.text is not None:
            text = self.text
            return len(text) if text.isascii() else len(text.encode("utf-8"))
        if self.data is not None:
            return len(self.data)
        if self.close_code is not None:
            return 2 + len((self.close_reason or "").encode("utf-8"))
        return 0

    def preview(self, width: int = 60) -> str:
        """One line showing the payload, cut to ``width`` characters."""
        if self.opcode == "close":
            shown = f"close {self.close_code if self.close_code is not None else ''}"
            if self.close_reason:
                shown += f" {self.close_reason}"
        elif self.text is not None:
            shown = self.text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            shown = shown.replace("\t", "\\t")
        else:
            data = self.data or b""
            shown = f"<{len(data)} bytes> {data[: max(width // 2, 1)].hex()}"
        if len(shown) > width:
            shown = shown[: max(width - 1, 0)] + "…"
        return shown

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; binary data is base64 under ``data_b64``."""
        out: dict[str, Any] = {
            "seq": self.seq,
            "time": self.time,
            "wall_time": self.wall_time,
            "direction": self.direction,
            "opcode": self.opcode,
            "connection_id": self.connection_id,
        }
        if self.text is not None:
            out["text"] = self.text
        if self.data is not None:
            out["data_b64"] = base64.b64encode(self.data).decode("ascii")
        if self.opcode == "close":
            out["close_code"] = self.close_code
            out["close_reason"] = self.close_reason
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Frame:
        """The frame :meth:`to_dict` described."""
        data = d.get("data_b64")
        return cls(
            int(d["seq"]),
            float(d["time"]),
            float(d.get("wall_time", 0.0)),
            d["direction"],
            d["opcode"],
            text=d.get("text"),
            data=base64.b64decode(data) if data is not None else None,
            connection_id=d.get("connection_id", ""),
            close_code=d.get("close_code"),
            close_reason=d.get("close_reason"),
        )

    def __repr__(self) -> str:
        conn = f" {self.connection_id}" if self.connection_id else ""
        return f"<Frame #{self.seq} {self.direction}{conn} {self.opcode} {self.preview(50)!r}>"


# --------------------------------------------------------------------------- waking asyncio


class _Waker:
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
        except asyncio.TimeoutError:
            return False
        return True


# --------------------------------------------------------------------------- Recording


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
            new = rec._frames[self.index :]
        self.index += len(new)
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
        return rec._epoch != self.epoch or len(rec._frames) > self.index

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
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        self._frames: list[Frame] = []
        self._seq = 0
        self._epoch = 0  # bumped by clear(), so waits restart their scan
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sync_waiters = 0
        self._wakers: set[_Waker] = set()
        self._watched = False  # any waiter at all: the only check record() pays for
        self._subscribers: tuple[Callable[[Frame], object], ...] = ()
        self._connections = 0

    @classmethod
    def _snapshot(cls, frames: list[Frame], like: Recording) -> Recording:
        rec = cls(like.clock, like.wall_clock)
        rec._frames = frames
        rec._seq = frames[-1].seq if frames else 0
        return rec

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
        given; a ``"close"`` frame takes no payload. Waiters are woken, then
        subscribers are called on this thread.

        Raises:
            ValueError: ``direction`` is not ``"out"`` or ``"in"``.
            TypeError: the payload is neither str nor bytes.
        """
        if direction != "out" and direction != "in":
            raise ValueError(f"direction must be 'out' or 'in', not {direction!r}")
        text: str | None = None
        data: bytes | None = None
        if opcode is None or opcode == "text" or opcode == "binary":
            kind = type(payload)
            if kind is str:
                text = payload  # type: ignore[assignment]
                opcode = "text"
            elif kind is bytes or isinstance(payload, (bytes, bytearray, memoryview)):
                data = bytes(payload)  # type: ignore[arg-type]
                opcode = "binary"
            else:
                raise TypeError(f"payload must be str or bytes, not {kind.__name__}")
        elif opcode == "close":
            if close_reason is None and close_code is not None:
                close_reason = ""
        else:
            raise ValueError(f"opcode must be one of {', '.join(OPCODES)}, not {opcode!r}")
        with self._lock:  # times read under the lock, so they never run backwards against seq
            now = self.clock()
            wall = self.wall_clock()
            seq = self._seq = self._seq + 1
            frame = Frame(
                seq,
                now,
                wall,
                direction,
                opcode,
                text,
                data,
                connection_id,
                close_code,
                close_reason,
            )
            self._frames.append(frame)
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
            copy = Frame(
                seq,
                frame.time,
                frame.wall_time,
                frame.direction,
                frame.opcode,
                frame.text,
                frame.data,
                frame.connection_id,
                frame.close_code,
                frame.close_reason,
            )
            self._frames.append(copy)
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

    def new_connection_id(self) -> str:
        """A short id unique in this recording: ``"c1"``, ``"c2"``..."""
        with self._lock:
            self._connections += 1
            return f"c{self._connections}"

    def clear(self) -> None:
        """Forget every frame; ``seq`` starts again at 1. Pending waits keep waiting."""
        with self._lock:
            self._frames = []
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
                frames = self._frames[index]
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
        waker = _Waker()
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
        """Write one JSON object per frame (see :meth:`Frame.to_dict`)."""
        lines = "".join(
            json.dumps(frame.to_dict(), ensure_ascii=False) + "\n" for frame in self.frames()
        )
        if isinstance(path_or_file, (str, os.PathLike)):
            with open(path_or_file, "w", encoding="utf-8") as file:
                file.write(lines)
        else:
            path_or_file.write(lines)

    @classmethod
    def from_jsonl(
        cls,
        path_or_file: str | os.PathLike[str] | IO[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> Recording:
        """The recording :meth:`to_jsonl` wrote; frames keep their ``seq`` and times."""
        if isinstance(path_or_file, (str, os.PathLike)):
            with open(path_or_file, encoding="utf-8") as file:
                text = file.read()
        else:
            text = path_or_file.read()
        frames = [Frame.from_dict(json.loads(line)) for line in text.splitlines() if line.strip()]
        return cls._snapshot(frames, cls(clock, wall_clock))


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


# --------------------------------------------------------------------------- MockWebSocket


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
        self._wakers: set[_Waker] = set()
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
        waker: _Waker | None = None
        try:
            while True:
                with self._lock:
                    value = ready()
                    if value is not None:
                        return value
                    if waker is None:
                        waker = _Waker()
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
