"""TrafficInspector: the frames of a Recording as a filterable, paged, live table.

The Python side keeps a :class:`FrameIndex` (a few small integer codes per
frame, built once as frames arrive and shared with the recording's Timeline)
and sends the browser only the visible page of rows, so a recording of
100,000 frames filters in milliseconds and the notebook stays responsive. A
long recording shows its newest page at once; the index catches up behind it
a chunk per refresh. Frames recorded from any thread reach the view through a
:class:`~memgpt_lab.widgets._util.Coalescer`: at most one refresh in flight and
one per ``interval`` seconds, on the process's one widget thread, done by
updating traits of the existing widgets.

Typical use, as the last expression of a cell::

    TrafficInspector(recording)
"""

from __future__ import annotations

import bisect
import json
import math
import re
import sys
import threading
import weakref
from array import array
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import count, islice
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets as widgets
import msgspec
import numpy as np  # imported with the widgets, not at a widget's first draw
import traitlets

from memgpt_lab import _json
from memgpt_lab.widgets._util import LiveRefresh, Scheduler, esc

if TYPE_CHECKING:
    from memgpt_lab.recorder import Frame, Recording

__all__ = ["FilterBar", "FrameFilter", "FrameIndex", "TrafficInspector", "format_detail", "hexdump"]

_ASSETS = Path(__file__).parent
#: The filter fields that are compared for equality, in the order of the dropdowns.
FILTER_FIELDS = ("direction", "type", "message_type", "connection_id")
#: Dropdown value that stands for "no constraint" (ipywidgets cannot select ``None``).
_ALL = "\x00all"
_PREVIEW_CHARS = 120
#: Frames a live inspector indexes per refresh, so a long backlog never blocks a refresh.
CHUNK = 50_000
#: Frames a new live inspector indexes before it first shows (a small recording: all of them).
FIRST_CHUNK = 5_000
_HEXDUMP_LIMIT = 4096


def _key(value: object) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class FrameFilter:
    """What the inspector shows; ``None`` (or empty text) means no constraint.

    An empty string for ``type`` / ``message_type`` / ``connection_id``
    selects the frames that have none (non-JSON frames, frames without a
    ``message_type``). ``text`` is searched in the frame text: as a
    case-insensitive substring, or with ``regex=True`` as a regular expression,
    case-sensitive (start it with ``(?i)`` to ignore case; ``re.IGNORECASE``
    on every search would cost several times more on large recordings).
    """

    direction: str | None = None
    type: str | None = None
    message_type: str | None = None
    connection_id: str | None = None
    text: str = ""
    regex: bool = False

    def equalities(self) -> list[tuple[str, str]]:
        """The ``(field, value)`` pairs that constrain the frames."""
        return [(f, v) for f in FILTER_FIELDS if (v := getattr(self, f)) is not None]

    def pattern(self) -> re.Pattern[str] | None:
        """The compiled regex, or None for a substring search; raises ``re.error``."""
        if not (self.regex and self.text):
            return None
        return re.compile(self.text)


def _search_text(frame: Frame) -> str:
    if frame.opcode == "close":
        return f"{_key(frame.close_code)} {_key(frame.close_reason)}"
    return frame.text if frame.opcode == "text" and frame.text else ""


def _body(text: str) -> Any:
    """``json.loads(text)``, or None when it is not JSON (nested too deeply included)."""
    try:
        return _json.loads(text)
    except ValueError:
        return None


def parse(frame: Frame) -> Any:
    """The JSON of a text frame, to show it; None when not JSON or nested too deeply to show.

    Unlike ``Frame.json`` nothing is cached on the frame: the widgets look at
    each frame once and keep only a few small codes, so a long recording does
    not hold a parsed copy of every frame.
    """
    text = frame.text
    if text is None or frame.opcode != "text":
        return None
    try:
        return _json.loads(text, max_depth=_json.MAX_DEPTH)
    except ValueError:
        return None


def frame_fields(frame: Frame) -> tuple[Any, Any]:
    """``(type, message_type)`` of a frame's JSON object (None for what it lacks)."""
    text = frame.text
    body = _body(text) if text is not None and frame.opcode == "text" else None
    if type(body) is dict:
        return body.get("type"), body.get("message_type")
    return None, None


def lane_name(frame_type: Any, message_type: Any, opcode: str) -> str:
    """The Timeline lane of a frame with these fields (see :func:`~.timeline.lane_of`)."""
    if frame_type == "agent_response" and message_type:
        return str(message_type)
    if frame_type is not None:
        return str(frame_type)
    return str(opcode)


#: The coded columns of a :class:`FrameIndex`: the filter fields and the Timeline's lane.
COLUMNS = (*FILTER_FIELDS, "lane")


class _Fields(msgspec.Struct, frozen=True, gc=False):
    """The two fields of a frame's JSON object that the index keeps, when both are text or null.

    Decoded by msgspec, which checks the whole text as JSON but builds nothing
    else: a fifth of the time of ``json.loads`` or less. Where it refuses a text
    (a field that is not text, a lone surrogate, ``NaN``), and for the long
    texts it might read where ``json`` would not (see :func:`_needs_json`), the
    frame is read as ``Frame.json`` reads it, with :func:`memgpt_lab._json.loads`;
    so the index always agrees with ``Frame.json`` (tests/test_widgets_frame_index.py
    fuzzes the two against each other).
    """

    type: str | None = None
    message_type: str | None = None


_decode_fields = msgspec.json.Decoder(_Fields).decode
_DECODE_ERRORS = (msgspec.MsgspecError, ValueError, RecursionError)
_payload_of = attrgetter("_payload")  # a frame's text (str), data (bytes) or None; no property call
_direction_of, _connection_of = attrgetter("direction"), attrgetter("connection_id")
_READ_CHUNK = 4096  # frames read at a time (see FrameIndex._field_ids_of)
_APPEND_BLOCK = 65_536  # frames appended at a time (with numpy from _VECTOR_FROM frames)
_VECTOR_FROM = 512
_FEW_VALUES = 16  # a field with at most this many values in a block: postings by comparison
_UINT = {2: "uint16", 4: "uint32", 8: "uint64"}  # numpy dtype of an array's itemsize


def _utf8(text: str) -> str | bytes:
    """What msgspec should read of ``text``: itself when ASCII, else its UTF-8 bytes.

    Given a str that is not ASCII, msgspec asks Python for its UTF-8 form,
    which Python then keeps inside the str for as long as it lives: 190 bytes
    more held per frame of the recording (a lone surrogate raises
    UnicodeEncodeError here, a ValueError).
    """
    return text if text.isascii() else text.encode()


#: Texts up to this long cannot nest deeper than ``_json.LIMIT``.
_SHORT = 2 * _json.LIMIT


def _short() -> int:
    """Up to how long a text can neither nest too deeply nor hold an integer longer
    than ``int()`` reads (4,300 digits by default, 640 at the least; 0: no limit)."""
    return min(_SHORT, sys.get_int_max_str_digits() or _SHORT)


@lru_cache(maxsize=4)
def _digit_run(length: int) -> re.Pattern[str]:
    # Anchored at a run's first digit: unanchored, each start inside a long run
    # rescanned the run (seconds for a megabyte of runs just under the length).
    return re.compile(f"(?<![0-9])[0-9]{{{length}}}")


def _needs_json(text: str) -> bool:
    """Whether msgspec might read ``text`` where ``json`` would not: only ``json`` may decide.

    Too deep (``_json.loads`` refuses more than ``_json.LIMIT`` levels, msgspec
    about a thousand), or a run of digits longer than ``int()`` reads
    (``sys.set_int_max_str_digits``: ``json`` refuses such a number, msgspec
    skips it in a field it does not keep). False alarms (digits in a string)
    cost only the slower reading.
    """
    if len(text) <= _short():
        return False
    if _json.could_nest(text):
        return True
    most = sys.get_int_max_str_digits()
    return bool(most) and len(text) > most and _digit_run(most + 1).search(text) is not None


def _fields_key(frame: Frame, payload: object) -> Hashable:
    """What the index needs of a frame's payload: ``_Fields``, or ``(type, message_type, lane)``."""
    if type(payload) is not str:
        return ("", "", frame.opcode)
    if not _needs_json(payload):
        try:
            return _decode_fields(_utf8(payload))
        except _DECODE_ERRORS:
            pass
    body = _body(payload)
    if type(body) is not dict:
        return ("", "", "text")
    frame_type, message_type = body.get("type"), body.get("message_type")
    return (_key(frame_type), _key(message_type), lane_name(frame_type, message_type, "text"))


class FrameIndex:
    """Compact columns of what the widgets need from each frame, grown incrementally.

    Each frame is looked at once, when it is appended: its direction, ``type``,
    ``message_type``, connection and Timeline lane are kept as small integer
    codes (``array('H')``), with a posting list (value -> ascending positions,
    ``array('I')``) per filter field, so a selective filter never visits every
    frame. The frames themselves are referenced, not copied: a frame costs the
    index about 35 bytes, whatever its size.

    Frames are read a chunk at a time: the two JSON fields of every text frame
    (see :class:`_Fields`), whose codes are worked out once per distinct pair,
    then a dict lookup per frame for the pair, the direction and the connection;
    a long run of frames is appended with numpy. A million server frames index
    in about half a second.

    One index is shared by all the widgets of a recording (:func:`shared_index`);
    hold :attr:`lock` while using it from more than one thread.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.generation = 0  #: bumped when the index starts over (its recording was cleared)
        self._reset()

    def _reset(self) -> None:
        self.frames: list[Frame] = []
        self.codes: dict[str, dict[str, int]] = {f: {} for f in COLUMNS}
        self.names: dict[str, list[str]] = {f: [] for f in COLUMNS}
        self.columns: dict[str, array[int]] = {f: array("H") for f in COLUMNS}
        self.postings: dict[str, list[array[int]]] = {f: [] for f in FILTER_FIELDS}
        # a frame's fields key (see _fields_key) -> its number; the number's type,
        # message_type and lane codes
        self._field_ids: defaultdict[Hashable, int] = defaultdict(count().__next__)
        self._field_codes: list[tuple[int, int, int]] = []
        self._field_table: Any = ()  # _field_codes as a numpy array, made when needed

    def __len__(self) -> int:
        return len(self.frames)

    def __repr__(self) -> str:
        return f"<FrameIndex {len(self.frames)} frames>"

    def _code(self, field: str, value: str) -> int:
        codes = self.codes[field]
        code = codes.get(value)
        if code is not None:
            return code
        code = codes[value] = len(codes)
        self.names[field].append(value)
        if field in self.postings:
            self.postings[field].append(array("I"))
        column = self.columns[field]
        if code > 0xFFFF and column.typecode == "H":
            self.columns[field] = array("I", column)
        return code

    def _field_row(self, key: Hashable) -> tuple[int, int, int]:
        if type(key) is _Fields:
            frame_type, message_type = key.type, key.message_type
            values = (
                _key(frame_type),
                _key(message_type),
                lane_name(frame_type, message_type, "text"),
            )
        else:
            values = key  # type: ignore[assignment]  # (type, message_type, lane), from _fields_key
        return (
            self._code("type", values[0]),
            self._code("message_type", values[1]),
            self._code("lane", values[2]),
        )

    def _codes_of(self, field: str, values: list[Any]) -> list[int]:
        """The codes of ``field``'s values, one per frame (coding new ones)."""
        codes = self.codes[field]
        if set(map(type, values)) == {str}:  # (a str subclass would match its plain twin)
            with suppress(KeyError):
                return list(map(codes.__getitem__, values))  # all known: no Python loop
        return [self._code(field, v if type(v) is str else _key(v)) for v in values]

    def extend(self, frames: Iterable[Frame]) -> None:
        """Append frames (in recording order) to the index."""
        frames = frames if type(frames) is list else list(frames)
        for start in range(0, len(frames), _APPEND_BLOCK):
            block = (
                frames if len(frames) <= _APPEND_BLOCK else frames[start : start + _APPEND_BLOCK]
            )
            directions: list[int] = []
            connections: list[int] = []
            ids: list[int] = []
            for first in range(0, len(block), _READ_CHUNK):
                chunk = block if len(block) <= _READ_CHUNK else block[first : first + _READ_CHUNK]
                ids += self._field_ids_of(chunk)
                directions += self._codes_of("direction", list(map(_direction_of, chunk)))
                connections += self._codes_of("connection_id", list(map(_connection_of, chunk)))
            base = len(self.frames)
            try:
                if len(block) >= _VECTOR_FROM:
                    self._append_many(directions, connections, ids, base)
                else:
                    self._append_each(directions, connections, ids, base)
            except BaseException:  # KeyboardInterrupt included: leave no half-appended block
                self._truncate(base)
                raise
            self.frames.extend(block)

    def _truncate(self, length: int) -> None:
        """Drop what the columns and posting lists hold for positions from ``length`` on."""
        for column in self.columns.values():
            del column[length:]
        for posting_lists in self.postings.values():
            for posting in posting_lists:
                del posting[bisect.bisect_left(posting, length) :]

    def _field_ids_of(self, chunk: list[Frame]) -> list[int]:
        """The fields number of each frame of ``chunk``, numbering (and coding) new ones.

        A few passes over the chunk, each in C (map, list, dict lookups), building
        no tuple per frame; a chunk is small enough for its strings to stay in the
        CPU's cache from one pass to the next.
        """
        payloads = list(map(_payload_of, chunk))
        fields: list[Hashable] | None = None
        if set(map(type, payloads)) == {str} and (
            max(map(len, payloads)) <= _short() or not any(map(_needs_json, payloads))
        ):
            with suppress(*_DECODE_ERRORS):  # else a frame msgspec will not read: one by one
                # (_utf8 written out: a call per frame costs as much as the decoding)
                texts = [p if p.isascii() else p.encode() for p in payloads]
                fields = list(map(_decode_fields, texts))
        if fields is None:
            fields = list(map(_fields_key, chunk, payloads))
        field_ids, field_codes = self._field_ids, self._field_codes
        ids = list(map(field_ids.__getitem__, fields))
        if len(field_ids) > len(field_codes):
            field_codes.extend(map(self._field_row, islice(field_ids, len(field_codes), None)))
        return ids

    def _append_each(
        self, directions: list[int], connections: list[int], ids: list[int], base: int
    ) -> None:
        field_codes = self._field_codes
        direction, type_, message_type, connection, lane = (self.columns[f] for f in COLUMNS)
        by_direction, by_type, by_message_type, by_connection = (
            self.postings[f] for f in FILTER_FIELDS
        )
        for pos, d, c, field_id in zip(count(base), directions, connections, ids, strict=False):
            t, m, lane_code = field_codes[field_id]
            direction.append(d)
            type_.append(t)
            message_type.append(m)
            connection.append(c)
            lane.append(lane_code)
            by_direction[d].append(pos)
            by_type[t].append(pos)
            by_message_type[m].append(pos)
            by_connection[c].append(pos)

    def _append_many(
        self, directions: list[int], connections: list[int], ids: list[int], base: int
    ) -> None:
        if len(self._field_table) != len(self._field_codes):
            self._field_table = np.array(self._field_codes, dtype=np.int64).reshape(-1, 3)
        by_field = self._field_table[np.array(ids, dtype=np.intp)]
        values = {
            "direction": np.array(directions, dtype=np.int64),
            "type": by_field[:, 0],
            "message_type": by_field[:, 1],
            "connection_id": np.array(connections, dtype=np.int64),
            "lane": by_field[:, 2],
        }
        positions = np.arange(base, base + len(ids), dtype=np.uint32)
        for field, codes in values.items():
            column = self.columns[field]
            column.frombytes(codes.astype(_UINT[column.itemsize]).tobytes())
            if field not in self.postings:
                continue
            posting_lists = self.postings[field]
            present = np.flatnonzero(np.bincount(codes))
            if len(present) <= _FEW_VALUES:  # a pass per value beats sorting
                for code in present.tolist():
                    posting_lists[code].frombytes(positions[codes == code].tobytes())
                continue
            # Positions grouped by code, ascending within each group: a stable sort.
            order = np.argsort(codes.astype(_UINT[column.itemsize]), kind="stable")
            ordered = codes[order]
            cuts = (np.flatnonzero(ordered[1:] != ordered[:-1]) + 1).tolist()
            grouped = positions[order]
            for lo, hi in zip([0, *cuts], [*cuts, len(order)], strict=True):
                posting_lists[int(ordered[lo])].frombytes(grouped[lo:hi].tobytes())

    def catch_up(self, recording: Sequence[Frame], limit: int | None = None) -> bool:
        """Index the frames of ``recording`` not indexed yet, at most ``limit`` of them.

        Starts over (bumping :attr:`generation`) when the recording was cleared.
        Returns True when frames are left to index.
        """
        with self.lock:
            done, total = len(self.frames), len(recording)
            if done and (total < done or recording[done - 1] is not self.frames[done - 1]):
                self._reset()
                self.generation += 1
                done = 0
            end = total if limit is None else min(total, done + limit)
            if end > done:
                frames = recording[done:end]
                self.extend(frames.frames() if hasattr(frames, "frames") else frames)
            return end < total

    def value_at(self, field: str, pos: int) -> str:
        """The value of ``field`` of the frame at ``pos``."""
        return self.names[field][self.columns[field][pos]]

    def values(self, field: str) -> list[str]:
        """The distinct values of ``field`` of the frames indexed, sorted."""
        postings = self.postings.get(field)
        if postings is None:  # (the lane has no posting lists: every value coded is used)
            return sorted(self.codes[field])
        # A value coded in a block that was interrupted has no frames (see extend).
        return sorted(v for v, c in self.codes[field].items() if postings[c])

    def counts(self, field: str) -> dict[str, int]:
        """How many frames have each non-empty value of ``field``."""
        postings = self.postings[field]
        return {
            v: len(postings[c]) for v, c in sorted(self.codes[field].items()) if v and postings[c]
        }

    def query(
        self,
        flt: FrameFilter,
        pattern: re.Pattern[str] | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> array[int]:
        """Positions (ascending) of the frames in ``[start, stop)`` that pass ``flt``.

        Args:
            flt: the filter; its ``text`` is searched as a substring unless
                ``pattern`` is given.
            pattern: the compiled ``flt.pattern()``, compiled once by the caller.
            start: first position to consider, for incremental updates.
            stop: the position to stop before (by default, the end).
        """
        stop = len(self.frames) if stop is None else min(stop, len(self.frames))
        wanted: list[tuple[str, int]] = []
        for field, value in flt.equalities():
            code = self.codes[field].get(value)
            if code is None:
                return array("I")
            wanted.append((field, code))
        candidates: Iterable[int]
        if wanted:
            # The shortest posting list bounds the work; the others are checked per frame.
            field, code = min(wanted, key=lambda fc: len(self.postings[fc[0]][fc[1]]))
            posting = self.postings[field][code]
            lo = bisect.bisect_left(posting, start)
            hi = bisect.bisect_left(posting, stop, lo)
            candidates = posting[lo:hi]
            wanted.remove((field, code))
        else:
            candidates = range(start, stop)
        for field, code in wanted:
            column = self.columns[field]
            candidates = [i for i in candidates if column[i] == code]
        frames = self.frames
        if pattern is not None:
            search = pattern.search
            candidates = [i for i in candidates if search(_search_text(frames[i]))]
        elif flt.text:
            needle = flt.text.lower()
            candidates = [i for i in candidates if needle in _search_text(frames[i]).lower()]
        return candidates if isinstance(candidates, array) else array("I", candidates)


_shared: weakref.WeakKeyDictionary[Any, FrameIndex] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def shared_index(recording: Recording) -> FrameIndex:
    """The one :class:`FrameIndex` of ``recording`` that its widgets share."""
    with _shared_lock:
        index = _shared.get(recording)
        if index is None:
            index = _shared[recording] = FrameIndex()
        return index


def hexdump(data: bytes, limit: int = _HEXDUMP_LIMIT) -> str:
    """``data`` as offset, hex and printable-ASCII columns, 16 bytes a line."""
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        chunk = data[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexes:<47}  |{text}|")
    if len(data) > limit:
        lines.append(f"... {len(data) - limit} more bytes")
    return "\n".join(lines) if lines else "(empty)"


def format_detail(frame: Frame) -> tuple[str, str]:
    """The body of the detail pane: ``(kind, text)``, kind one of json/text/binary/close."""
    if frame.opcode == "close":
        reason = frame.close_reason or ""
        return "close", f"close code: {_key(frame.close_code) or '(none)'}\nreason: {reason}"
    body = parse(frame)
    if body is not None:
        return "json", json.dumps(body, indent=2, ensure_ascii=False)
    if frame.opcode == "text" and frame.text is not None:
        return "text", frame.text
    return "binary", hexdump(frame.data or b"")


def _preview(frame: Frame, body: Any = None) -> str:
    if frame.opcode == "close":
        return f"close {_key(frame.close_code)} {_key(frame.close_reason)}".strip()
    if frame.text is None:
        data = frame.data or b""
        head = " ".join(f"{b:02x}" for b in data[:16])
        return f"{len(data)} bytes: {head}" + (" ..." if len(data) > 16 else "")
    if isinstance(body, dict) and "message" in body:
        message = body["message"]
        text = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False)
    else:
        text = frame.text
    text = " ".join(text.split())
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"


def _row(children: list[widgets.Widget], css_class: str) -> widgets.HBox:
    """A row of controls that wraps rather than scrolling sideways in a narrow cell."""
    box = widgets.HBox(children, layout=widgets.Layout(flex_flow="row wrap", width="100%"))
    box.add_class(css_class)
    return box


class FilterBar:
    """The filter controls the TrafficInspector and the DiffView share.

    A dropdown per :data:`FILTER_FIELDS` field ("all" or one value), the search
    text and the regex box. It is not a widget: its owner lays out
    :attr:`dropdowns` and the other controls as it likes. What the user changes
    reaches ``on_change`` as the :class:`FrameFilter` now shown;
    :meth:`offer` and :meth:`show` change the controls without calling it.
    """

    def __init__(self, on_change: Callable[[FrameFilter], None]) -> None:
        self._on_change = on_change
        self._syncing = False
        self._offered: dict[str, tuple[str, ...]] = {field: () for field in FILTER_FIELDS}
        self._option_keys: dict[str, tuple[str, ...]] = {}
        self.dropdowns = {
            field: widgets.Dropdown(
                options=[("all", _ALL)],
                value=_ALL,
                description=field.replace("_id", ""),
                layout=widgets.Layout(width="auto"),
                style={"description_width": "initial"},
            )
            for field in FILTER_FIELDS
        }
        self.search = widgets.Text(
            placeholder="search frame text", layout=widgets.Layout(width="260px")
        )
        self.regex = widgets.Checkbox(
            value=False, description="regex", indent=False, layout=widgets.Layout(width="auto")
        )
        for field, dropdown in self.dropdowns.items():
            dropdown.add_class(f"mlab-filter-{field.replace('_', '-')}")
        self.search.add_class("mlab-filter-text")
        self.regex.add_class("mlab-filter-regex")
        for control in self.controls:
            control.observe(self._on_widget, "value")

    @property
    def controls(self) -> list[widgets.Widget]:
        """Every control: the dropdowns, the search text, the regex box."""
        return [*self.dropdowns.values(), self.search, self.regex]

    @property
    def value(self) -> FrameFilter:
        """The filter the controls show."""
        values = {
            field: None if dropdown.value == _ALL else dropdown.value
            for field, dropdown in self.dropdowns.items()
        }
        return FrameFilter(**values, text=self.search.value, regex=self.regex.value)

    def offer(self, values: Mapping[str, Iterable[str]]) -> None:
        """Offer these values (sorted) in the dropdowns; a value the filter shown needs stays."""
        self._offered = {field: tuple(values[field]) for field in FILTER_FIELDS}
        self._update_options(self.value)

    def show(self, flt: FrameFilter) -> None:
        """Make the controls show ``flt``; a value not offered is added to its dropdown."""
        with self._quiet():
            self._update_options(flt)
            for field, dropdown in self.dropdowns.items():
                value = getattr(flt, field)
                dropdown.value = _ALL if value is None else value
            self.search.value = flt.text
            self.regex.value = flt.regex

    def _update_options(self, wanted: FrameFilter) -> None:
        with self._quiet():
            for field, dropdown in self.dropdowns.items():
                keys = self._offered[field]
                needed = getattr(wanted, field)
                if needed is not None and needed not in keys:
                    keys = tuple(sorted((*keys, needed)))
                if self._option_keys.get(field) == keys:
                    continue
                self._option_keys[field] = keys
                value = dropdown.value
                # Replacing the options resets the value; put it back.
                dropdown.options = [("all", _ALL)] + [(k or "(none)", k) for k in keys]
                dropdown.value = value if value == _ALL or value in keys else _ALL

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        syncing, self._syncing = self._syncing, True
        try:
            yield
        finally:
            self._syncing = syncing

    def _on_widget(self, _change: dict[str, Any]) -> None:
        if not self._syncing:
            self._on_change(self.value)


class _FrameTable(anywidget.AnyWidget):
    """The clickable table of one page of frames (the view is inspector.js)."""

    _esm = (_ASSETS / "inspector.js").read_text(encoding="utf-8")
    _css = (_ASSETS / "inspector.css").read_text(encoding="utf-8")

    rows = traitlets.List(traitlets.Dict(), help="The rows of the visible page only.").tag(
        sync=True
    )
    selected_seq = traitlets.Int(
        None, allow_none=True, help="seq of the selected frame; set by a click."
    ).tag(sync=True)
    follow = traitlets.Bool(
        True, help="Keep the newest frame in view; the view clears it on scroll-away."
    ).tag(sync=True)
    total_count = traitlets.Int(0, help="Frames in the recording.").tag(sync=True)
    filtered_count = traitlets.Int(0, help="Frames that pass the filter.").tag(sync=True)
    page = traitlets.Int(0, help="Visible page, from 0.").tag(sync=True)
    page_count = traitlets.Int(1, help="Pages of the filtered frames (at least 1).").tag(sync=True)


class TrafficInspector(widgets.VBox):
    """The frames of a Recording: filters, a paged table, counts and a detail pane.

    Args:
        recording: the Recording to show; later frames appear as they arrive.
        page_size: rows per page (only these are sent to the browser).
        follow: keep the newest frame in view as frames stream in.
        live: subscribe to the recording and refresh by itself; with
            ``live=False`` call :meth:`refresh` to pick up new frames.
        interval: seconds between live refreshes, at most one per interval.
        chunk: frames a live refresh indexes at most, so the newest page of a
            long recording shows at once and the index catches up behind it.
        scheduler: where live refreshes run (the process's one widget thread
            by default); tests pass one on a clock of their own.

    Call :meth:`close` when done with it, to unsubscribe from the recording.
    """

    def __init__(
        self,
        recording: Recording,
        page_size: int = 50,
        follow: bool = True,
        *,
        live: bool = True,
        interval: float = 0.1,
        chunk: int = CHUNK,
        scheduler: Scheduler | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, not {chunk}")
        self._recording = recording
        self._page_size = page_size
        self._lock = threading.RLock()
        self._index = shared_index(recording)
        self._generation = -1
        self._filter = FrameFilter()
        self._effective = self._filter
        self._pattern: re.Pattern[str] | None = None
        # Positions that pass a filter; None while the filter is empty (every frame passes).
        self._matches: array[int] | None = None
        self._matched_upto = 0
        self._seen = 0  # frames in the recording as of the last refresh
        self._shown: tuple[int, ...] | None = None
        self._row_cache: dict[int, dict[str, Any]] = {}
        self._counted_upto = -1

        self.table = _FrameTable(follow=follow)
        self._filter_bar = FilterBar(self._on_filter_widget)
        self._follow_box = widgets.Checkbox(
            value=follow, description="follow", indent=False, layout=widgets.Layout(width="auto")
        )
        self._message = widgets.HTML()
        self._buttons = {
            # flex: none: at narrow widths a button keeps its label ("« first", not "« fi…").
            name: widgets.Button(
                description=label, layout=widgets.Layout(width="auto", flex="0 0 auto")
            )
            for name, label in (("first", "« first"), ("prev", "‹ prev"), ("next", "next ›"))
            + (("last", "last »"),)
        }
        self._page_label = widgets.HTML()
        self._counts = widgets.HTML()
        self.detail = widgets.HTML(value=self._detail_html(None))
        from memgpt_lab.widgets.inspector_files import RecordingFiles  # imports this module

        #: The Load / Export bar (:class:`~memgpt_lab.widgets.inspector_files.RecordingFiles`).
        self.files = RecordingFiles(self)
        self._interval = interval
        self._chunk = chunk
        self._scheduler = scheduler

        self._follow_box.add_class("mlab-follow")
        self._message.add_class("mlab-inspector-message")
        self._page_label.add_class("mlab-page-label")
        self._counts.add_class("mlab-inspector-counts")
        self.detail.add_class("mlab-inspector-detail")
        for name, button in self._buttons.items():
            button.add_class(f"mlab-page-{name}")
            button.on_click(lambda _b, name=name: self._on_page_button(name))
        widgets.link((self._follow_box, "value"), (self.table, "follow"))
        self.table.observe(self._on_follow, "follow")
        self.table.observe(self._on_selected, "selected_seq")

        bar = self._filter_bar
        super().__init__(
            children=[
                _row(list(bar.dropdowns.values()), "mlab-inspector-filters"),
                _row([bar.search, bar.regex, self._follow_box], "mlab-inspector-search"),
                self._message,
                self.table,
                _row([*self._buttons.values(), self._page_label], "mlab-inspector-pager"),
                self._counts,
                self.detail,
                self.files,
            ]
        )
        self.add_class("mlab-inspector")

        if live:
            # The newest page shows at once; the index catches up behind it in chunks.
            self._refresh(min(chunk, FIRST_CHUNK))
            self._live: LiveRefresh | None = None
            self._follow_live(recording)
        else:
            self.refresh()
            self._live = None

    def _follow_live(self, recording: Recording) -> None:
        self._live = LiveRefresh(
            recording,
            lambda: self._refresh(self._chunk),
            self._interval,
            scheduler=self._scheduler,
        )
        if self.indexed_count < len(recording):
            self._live.poke()  # the rest of the index, in chunks behind the newest page

    def __repr__(self) -> str:
        return (
            f"<TrafficInspector {self.filtered_count}/{self.total_count} frames,"
            f" page {self.page + 1}/{self.table.page_count}>"
        )

    # -- public API ---------------------------------------------------------

    @property
    def recording(self) -> Recording:
        """The Recording shown."""
        return self._recording

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows of the visible page, as sent to the browser."""
        return list(self.table.rows)

    @property
    def total_count(self) -> int:
        """Frames in the recording as of the last refresh."""
        return int(self.table.total_count)

    @property
    def filtered_count(self) -> int:
        """Frames that pass the filter as of the last refresh."""
        return int(self.table.filtered_count)

    @property
    def page_size(self) -> int:
        """Rows per page."""
        return self._page_size

    @property
    def page_count(self) -> int:
        """Pages of filtered frames (at least 1)."""
        return int(self.table.page_count)

    @property
    def page(self) -> int:
        """The visible page, from 0; setting it away from the last page stops following."""
        return int(self.table.page)

    @page.setter
    def page(self, page: int) -> None:
        self.go_to_page(page)

    @property
    def follow(self) -> bool:
        """Whether the newest frame is kept in view."""
        return bool(self.table.follow)

    @follow.setter
    def follow(self, value: bool) -> None:
        self.table.follow = bool(value)

    @property
    def indexed_count(self) -> int:
        """Frames indexed so far: filters, counts and dropdowns cover these.

        A live inspector indexes a long recording in chunks behind the newest
        page; :meth:`refresh` indexes everything.
        """
        return len(self._index)

    @property
    def filter(self) -> FrameFilter:
        """The filter as set (its text may be an invalid regex; see :attr:`message`)."""
        return self._filter

    @property
    def message(self) -> str:
        """The problem with the filter shown in the widget, or ``""``."""
        return self._message_text

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """Frames per ``type``, ``message_type``, ``direction`` and ``connection_id``."""
        with self._lock, self._index.lock:
            return {field: self._index.counts(field) for field in FILTER_FIELDS}

    @property
    def selected_frame(self) -> Frame | None:
        """The selected Frame, or None."""
        seq = self.table.selected_seq
        if seq is None:
            return None
        pos = self._position_of(seq)
        return None if pos is None else self._recording[pos]

    def refresh(self) -> None:
        """Pick up new frames, index them all and bring every part of the widget up to date."""
        self._refresh(None)

    def _refresh(self, limit: int | None) -> bool:
        with self._lock:
            behind = self._catch_up(limit)
            self._update_view()
            return behind

    def set_filter(
        self,
        direction: str | None = None,
        type: str | None = None,
        message_type: str | None = None,
        connection_id: str | None = None,
        text: str = "",
        regex: bool = False,
    ) -> None:
        """Replace the whole filter (arguments left out mean no constraint).

        An invalid regex is reported in the widget (:attr:`message`) and the
        text constraint is left out until it is fixed.
        """
        flt = FrameFilter(direction, type, message_type, connection_id, text, regex)
        with self._lock:
            self._apply_filter(flt)
            self._show_filter(flt)

    def show(self, recording: Recording) -> None:
        """Show ``recording`` instead (what Load does); the filter and follow are kept."""
        live, self._live = self._live, None
        if live is not None:
            live.close()
        with self._lock:
            self._recording = recording
            self.table.selected_seq = None
        if live is None:
            self.refresh()  # the index starts over: the frames are not the ones indexed
        else:
            self._refresh(min(self._chunk, FIRST_CHUNK))  # the newest page at once
            self._follow_live(recording)

    def select(self, seq: int | None) -> None:
        """Select the frame with ``seq`` (None clears) and page to it if it passes the filter.

        Raises:
            LookupError: no frame with that seq has been seen.
        """
        with self._lock:
            if seq is None:
                self.table.selected_seq = None
                return
            pos = self._position_of(seq)
            if pos is None:
                raise LookupError(
                    f"no frame with seq {seq} among the {self._seen} frames recorded"
                    " (call refresh() if it was recorded just now)"
                )
            self.table.selected_seq = seq
            if self._matches is None:
                self.go_to_page(pos // self._page_size)
                return
            at = bisect.bisect_left(self._matches, pos)
            if at < len(self._matches) and self._matches[at] == pos:
                self.go_to_page(at // self._page_size)

    def go_to_page(self, page: int) -> None:
        """Show ``page`` (clamped); a page before the last one stops following."""
        with self._lock:
            last = self._page_count() - 1
            page = max(0, min(page, last))
            if page < last:
                self.table.follow = False
            self.table.page = page
            self._update_view()

    def close(self) -> None:
        """Unsubscribe from the recording and close the widgets."""
        live = getattr(self, "_live", None)
        if live is not None:
            live.close()
        if hasattr(self, "_buttons"):  # not when __init__ refused its arguments
            for child in self._all_children():
                child.close()
        super().close()

    # -- internals ----------------------------------------------------------

    _message_text = ""

    def _all_children(self) -> list[widgets.Widget]:
        return [
            *self.children,
            *self._filter_bar.controls,
            self._follow_box,
            *self._buttons.values(),
            *self.files.children,
        ]

    def _position_of(self, seq: int) -> int | None:
        """Where the frame with ``seq`` is among the frames seen, or None."""
        rec, seen = self._recording, min(self._seen, len(self._recording))
        if not seen:
            return None
        guess = seq - rec[0].seq  # a recording numbers its frames 1, 2, 3...
        if 0 <= guess < seen and rec[guess].seq == seq:
            return guess
        for pos in range(seen):  # a loaded recording may number them otherwise
            if rec[pos].seq == seq:
                return pos
        return None

    def _catch_up(self, limit: int | None) -> bool:
        index = self._index
        with index.lock:
            behind = index.catch_up(self._recording, limit)
            if index.generation != self._generation:
                # A new index, or the recording was cleared (and perhaps refilled): start over.
                self._generation = index.generation
                self._matches = None if self._unfiltered() else array("I")
                self._matched_upto = 0
                self._shown = None
                self._row_cache = {}
                self._counted_upto = -1
            indexed = len(index)
            if self._matches is not None and self._matched_upto < indexed:
                self._matches.extend(
                    index.query(self._effective, self._pattern, self._matched_upto, indexed)
                )
            self._matched_upto = indexed
            # Unfiltered, the newest frames show before they are indexed.
            self._seen = len(self._recording) if self._matches is None else indexed
            if self._seen < indexed:  # cleared since the index caught up
                self._seen = indexed
        return behind

    def _unfiltered(self) -> bool:
        return not self._effective.equalities() and not self._effective.text

    def _match_count(self) -> int:
        return self._seen if self._matches is None else len(self._matches)

    def _page_count(self) -> int:
        return max(1, math.ceil(self._match_count() / self._page_size))

    def _update_view(self) -> None:
        table, size = self.table, self._page_size
        count = self._match_count()
        page_count = self._page_count()
        if table.follow:
            # The newest full page: the last page_size matches, however the pages fall.
            page, start = page_count - 1, max(0, count - size)
        else:
            page = min(table.page, page_count - 1)
            start = page * size
        end = min(start + size, count)
        if self._matches is None:
            shown = tuple(range(start, end))
        else:
            shown = tuple(self._matches[start:end])
        with table.hold_sync():
            if shown != self._shown:
                # Following, the page slides: rows already built are reused.
                cache = self._row_cache
                rows = [cache.get(pos) or self._row(pos) for pos in shown]
                self._row_cache = dict(zip(shown, rows, strict=True))
                table.rows = rows
                self._shown = shown
            table.total_count = max(self._seen, len(self._index))
            table.filtered_count = count
            table.page_count = page_count
            table.page = page
        first, last = (start + 1, start + len(shown)) if shown else (0, 0)
        indexed, total = len(self._index), table.total_count
        progress = f"; indexing: {indexed:,} of {total:,} frames" if indexed < total else ""
        self._page_label.value = (
            f"rows {first:,}–{last:,} of {count:,}"
            f" (page {page + 1} of {page_count}; {total:,} frames recorded{progress})"
        )
        self._buttons["first"].disabled = self._buttons["prev"].disabled = page == 0
        self._buttons["next"].disabled = self._buttons["last"].disabled = page == page_count - 1
        if self._counted_upto != indexed:
            self._counted_upto = indexed
            with self._index.lock:  # shared: another widget's refresh may be extending it
                self._update_options()
                counts = self._counts_html()
            self._counts.value = counts

    def _row(self, pos: int) -> dict[str, Any]:
        rec = self._recording
        frame = rec[pos]
        body = parse(frame)
        frame_type, message_type = (
            (body.get("type"), body.get("message_type"))
            if isinstance(body, dict)
            else frame_fields(frame)  # not JSON, or too deep to show: read as the index reads
        )
        return {
            "seq": frame.seq,
            "t_ms": round((frame.time - rec[0].time) * 1000.0, 1),
            "direction": frame.direction,
            "type": _key(frame_type),
            "message_type": _key(message_type),
            "connection_id": _key(frame.connection_id),
            "size": frame.size,
            "preview": _preview(frame, body),
        }

    def _update_options(self) -> None:
        self._filter_bar.offer({field: self._index.values(field) for field in FILTER_FIELDS})

    def _counts_html(self) -> str:
        parts = []
        for field in ("type", "message_type"):
            counts = self._index.counts(field)
            chips = " · ".join(
                f'<span class="mlab-count" data-field="{field}" data-value="{esc(value)}">'
                f"{esc(value)} <b>{n:,}</b></span>"
                for value, n in counts.items()
            )
            parts.append(f"<div><i>{field}:</i> {chips or '—'}</div>")
        return "".join(parts)

    def _apply_filter(self, flt: FrameFilter) -> None:
        self._filter = flt
        try:
            self._pattern = flt.pattern()
            self._effective = flt
            self._set_message("")
        except re.error as error:
            self._pattern = None
            self._effective = replace(flt, text="", regex=False)
            self._set_message(f"invalid regular expression {flt.text!r}: {error}; text ignored")
        with self._index.lock:
            indexed = len(self._index)
            if self._unfiltered():
                self._matches = None
            else:
                self._matches = self._index.query(self._effective, self._pattern, 0, indexed)
            self._matched_upto = indexed
            self._seen = len(self._recording) if self._matches is None else indexed
            self._seen = max(self._seen, indexed)
        self._shown = None
        if not self.table.follow:
            self.table.page = 0
        self._update_view()

    def _set_message(self, text: str) -> None:
        self._message_text = text
        self._message.value = (
            f'<span class="mlab-inspector-error" style="color:var(--jp-error-color1,#c62828)">'
            f"{esc(text)}</span>"
            if text
            else ""
        )

    def _show_filter(self, flt: FrameFilter) -> None:
        """Make the filter widgets show ``flt`` without re-filtering."""
        self._filter_bar.show(flt)
        self._update_view()

    def _on_filter_widget(self, flt: FrameFilter) -> None:
        with self._lock:
            self._apply_filter(flt)

    def _on_page_button(self, name: str) -> None:
        target = {
            "first": 0,
            "prev": self.page - 1,
            "next": self.page + 1,
            "last": self.page_count - 1,
        }[name]
        self.go_to_page(target)

    def _on_follow(self, change: dict[str, Any]) -> None:
        if change["new"]:
            with self._lock:
                self._update_view()

    def _on_selected(self, change: dict[str, Any]) -> None:
        self.detail.value = self._detail_html(self.selected_frame)

    def _detail_html(self, frame: Frame | None) -> str:
        if frame is None:
            return '<div class="mlab-detail-empty"><i>click a row to see the frame</i></div>'
        rec = self._recording
        t_ms = (frame.time - rec[0].time) * 1000.0 if len(rec) else 0.0
        kind, body = format_detail(frame)
        frame_type, message_type = frame_fields(frame)
        facts = [
            f"seq {frame.seq}",
            esc(frame.direction),  # a loaded recording's fields can be any text
            esc(frame.opcode),
            f"type {esc(_key(frame_type)) or '—'}",
            f"message_type {esc(_key(message_type)) or '—'}",
            f"connection {esc(_key(frame.connection_id)) or '—'}",
            f"{frame.size:,} bytes",
            f"+{t_ms:.1f} ms",
        ]
        return (
            f'<div class="mlab-detail" data-seq="{frame.seq}" data-kind="{kind}">'
            f'<div class="mlab-detail-head">{" · ".join(facts)}</div>'
            f'<pre class="mlab-detail-body mlab-detail-{kind}" style="max-height:320px;'
            f'overflow:auto;white-space:pre-wrap">{esc(body)}</pre></div>'
        )
