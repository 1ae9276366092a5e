"""TrafficInspector: the frames of a Recording as a filterable, paged, live table.

The Python side keeps a :class:`FrameIndex` (a few short strings per frame,
built once as frames arrive) and sends the browser only the visible page of
rows, so a recording of 100,000 frames filters in milliseconds and the
notebook stays responsive. Frames recorded from any thread reach the view
through a :class:`~memgpt_lab.widgets._util.Coalescer`: at most one refresh per
``interval`` seconds, done by updating traits of the existing widgets.

Typical use, as the last expression of a cell::

    TrafficInspector(recording)
"""

from __future__ import annotations

import bisect
import json
import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets as widgets
import traitlets

from memgpt_lab.widgets._util import LiveRefresh, esc

if TYPE_CHECKING:
    from memgpt_lab.recorder import Frame, Recording

__all__ = ["FrameFilter", "FrameIndex", "TrafficInspector", "format_detail", "hexdump"]

_ASSETS = Path(__file__).parent
#: The filter fields that are compared for equality, in the order of the dropdowns.
FILTER_FIELDS = ("direction", "type", "message_type", "connection_id")
#: Dropdown value that stands for "no constraint" (ipywidgets cannot select ``None``).
_ALL = "\x00all"
_PREVIEW_CHARS = 120
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


class FrameIndex:
    """Per-frame columns of what the inspector filters on, grown incrementally.

    Each frame is looked at once (its JSON parsed once, by the Frame), when it
    is appended; queries then compare short strings and use posting lists
    (field value -> positions) so a selective filter never visits every frame.
    Not thread-safe on its own: the inspector guards it with its lock.
    """

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.times: list[float] = []
        self.columns: dict[str, list[str]] = {f: [] for f in FILTER_FIELDS}
        self.postings: dict[str, dict[str, list[int]]] = {f: {} for f in FILTER_FIELDS}
        self.texts: list[str] = []
        self.lowered: list[str] = []
        self.by_seq: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.frames)

    def extend(self, frames: Iterable[Frame]) -> None:
        """Append frames (in recording order) to the index."""
        columns = [self.columns[f] for f in FILTER_FIELDS]
        postings = [self.postings[f] for f in FILTER_FIELDS]
        for frame in frames:
            pos = len(self.frames)
            self.frames.append(frame)
            self.times.append(frame.time)
            self.by_seq[frame.seq] = pos
            values = (
                _key(frame.direction),
                _key(frame.type),
                _key(frame.message_type),
                _key(frame.connection_id),
            )
            for column, posting, value in zip(columns, postings, values, strict=True):
                column.append(value)
                posting.setdefault(value, []).append(pos)
            text = _search_text(frame)
            self.texts.append(text)
            self.lowered.append(text.lower())

    def values(self, field: str) -> list[str]:
        """The distinct values of ``field`` seen so far, sorted."""
        return sorted(self.postings[field])

    def counts(self, field: str) -> dict[str, int]:
        """How many frames have each non-empty value of ``field``."""
        return {v: len(p) for v, p in sorted(self.postings[field].items()) if v}

    def query(
        self, flt: FrameFilter, pattern: re.Pattern[str] | None = None, start: int = 0
    ) -> list[int]:
        """Positions (ascending) of the frames from ``start`` on that pass ``flt``.

        Args:
            flt: the filter; its ``text`` is searched as a substring unless
                ``pattern`` is given.
            pattern: the compiled ``flt.pattern()``, compiled once by the caller.
            start: first position to consider, for incremental updates.
        """
        equalities = flt.equalities()
        candidates: Iterable[int]
        if start == 0 and equalities:
            # The shortest posting list bounds the work; the others are checked per frame.
            lists = [(self.postings[f].get(v, []), f) for f, v in equalities]
            shortest, field = min(lists, key=lambda item: len(item[0]))
            candidates = shortest
            equalities = [(f, v) for f, v in equalities if f != field]
        else:
            candidates = range(start, len(self.frames))
        for field, value in equalities:
            column = self.columns[field]
            candidates = [i for i in candidates if column[i] == value]
        if pattern is not None:
            texts, search = self.texts, pattern.search
            candidates = [i for i in candidates if search(texts[i])]
        elif flt.text:
            needle, lowered = flt.text.lower(), self.lowered
            candidates = [i for i in candidates if needle in lowered[i]]
        return list(candidates)


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
    if frame.json is not None:
        return "json", json.dumps(frame.json, indent=2, ensure_ascii=False)
    if frame.opcode == "text" and frame.text is not None:
        return "text", frame.text
    return "binary", hexdump(frame.data or b"")


def _preview(frame: Frame) -> str:
    if frame.opcode == "close":
        return f"close {_key(frame.close_code)} {_key(frame.close_reason)}".strip()
    if frame.text is None:
        data = frame.data or b""
        head = " ".join(f"{b:02x}" for b in data[:16])
        return f"{len(data)} bytes: {head}" + (" ..." if len(data) > 16 else "")
    body = frame.json
    if isinstance(body, dict) and "message" in body:
        message = body["message"]
        text = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False)
    else:
        text = frame.text
    text = " ".join(text.split())
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"


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
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        self._recording = recording
        self._page_size = page_size
        self._lock = threading.RLock()
        self._index = FrameIndex()
        self._filter = FrameFilter()
        self._effective = self._filter
        self._pattern: re.Pattern[str] | None = None
        self._matches: list[int] = []
        self._matched_upto = 0
        self._shown: tuple[int, ...] | None = None
        self._option_keys: dict[str, tuple[str, ...]] = {}
        self._counted_upto = -1
        self._syncing = False

        self.table = _FrameTable(follow=follow)
        self._dropdowns = {
            field: widgets.Dropdown(
                options=[("all", _ALL)],
                value=_ALL,
                description=field.replace("_id", ""),
                layout=widgets.Layout(width="auto"),
                style={"description_width": "initial"},
            )
            for field in FILTER_FIELDS
        }
        self._search = widgets.Text(
            placeholder="search frame text", layout=widgets.Layout(width="260px")
        )
        self._regex = widgets.Checkbox(
            value=False, description="regex", indent=False, layout=widgets.Layout(width="auto")
        )
        self._follow_box = widgets.Checkbox(
            value=follow, description="follow", indent=False, layout=widgets.Layout(width="auto")
        )
        self._message = widgets.HTML()
        self._buttons = {
            name: widgets.Button(description=label, layout=widgets.Layout(width="auto"))
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

        for field, dropdown in self._dropdowns.items():
            dropdown.add_class(f"mlab-filter-{field.replace('_', '-')}")
            dropdown.observe(self._on_filter_widget, "value")
        self._search.add_class("mlab-filter-text")
        self._regex.add_class("mlab-filter-regex")
        self._follow_box.add_class("mlab-follow")
        self._message.add_class("mlab-inspector-message")
        self._page_label.add_class("mlab-page-label")
        self._counts.add_class("mlab-inspector-counts")
        self.detail.add_class("mlab-inspector-detail")
        for name, button in self._buttons.items():
            button.add_class(f"mlab-page-{name}")
            button.on_click(lambda _b, name=name: self._on_page_button(name))
        self._search.observe(self._on_filter_widget, "value")
        self._regex.observe(self._on_filter_widget, "value")
        widgets.link((self._follow_box, "value"), (self.table, "follow"))
        self.table.observe(self._on_follow, "follow")
        self.table.observe(self._on_selected, "selected_seq")

        super().__init__(
            children=[
                widgets.HBox(list(self._dropdowns.values())),
                widgets.HBox([self._search, self._regex, self._follow_box]),
                self._message,
                self.table,
                widgets.HBox([*self._buttons.values(), self._page_label]),
                self._counts,
                self.detail,
                self.files,
            ]
        )
        self.add_class("mlab-inspector")

        self.refresh()
        self._live = LiveRefresh(recording, self.refresh, interval) if live else None

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
        with self._lock:
            return {field: self._index.counts(field) for field in FILTER_FIELDS}

    @property
    def selected_frame(self) -> Frame | None:
        """The selected Frame, or None."""
        seq = self.table.selected_seq
        with self._lock:
            pos = None if seq is None else self._index.by_seq.get(seq)
            return None if pos is None else self._index.frames[pos]

    def refresh(self) -> None:
        """Pick up new frames and bring every part of the widget up to date."""
        with self._lock:
            self._catch_up()
            self._update_view()

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
        self.refresh()  # the index starts over: the frames are not the ones indexed
        if live is not None:
            self._live = LiveRefresh(recording, self.refresh, self._interval)

    def select(self, seq: int | None) -> None:
        """Select the frame with ``seq`` (None clears) and page to it if it passes the filter.

        Raises:
            LookupError: no frame with that seq has been seen.
        """
        with self._lock:
            if seq is None:
                self.table.selected_seq = None
                return
            pos = self._index.by_seq.get(seq)
            if pos is None:
                raise LookupError(
                    f"no frame with seq {seq} among the {len(self._index)} frames recorded"
                    " (call refresh() if it was recorded just now)"
                )
            self.table.selected_seq = seq
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
        if self._live is not None:
            self._live.close()
        for child in self._all_children():
            child.close()
        super().close()

    # -- internals ----------------------------------------------------------

    _message_text = ""

    def _all_children(self) -> list[widgets.Widget]:
        return [
            *self.children,
            *self._dropdowns.values(),
            self._search,
            self._regex,
            self._follow_box,
            *self._buttons.values(),
            *self.files.children,
        ]

    def _catch_up(self) -> None:
        recording, index = self._recording, self._index
        done = len(index)
        total = len(recording)
        if done and (total < done or recording[done - 1] is not index.frames[done - 1]):
            # The recording was cleared (and perhaps refilled): start over.
            self._index = index = FrameIndex()
            self._matches, self._matched_upto, self._shown = [], 0, None
            self._counted_upto = -1
            done = 0
        if total > done:
            index.extend(recording[done:total])
        if self._matched_upto < len(index):
            self._matches.extend(index.query(self._effective, self._pattern, self._matched_upto))
            self._matched_upto = len(index)

    def _page_count(self) -> int:
        return max(1, math.ceil(len(self._matches) / self._page_size))

    def _update_view(self) -> None:
        index, table, size = self._index, self.table, self._page_size
        page_count = self._page_count()
        page = page_count - 1 if table.follow else min(table.page, page_count - 1)
        start = page * size
        shown = tuple(self._matches[start : start + size])
        with table.hold_sync():
            if shown != self._shown:
                table.rows = [self._row(pos) for pos in shown]
                self._shown = shown
            table.total_count = len(index)
            table.filtered_count = len(self._matches)
            table.page_count = page_count
            table.page = page
        first, last = (start + 1, start + len(shown)) if shown else (0, 0)
        self._page_label.value = (
            f"rows {first}–{last} of {len(self._matches):,}"
            f" (page {page + 1} of {page_count}; {len(index):,} frames recorded)"
        )
        self._buttons["first"].disabled = self._buttons["prev"].disabled = page == 0
        self._buttons["next"].disabled = self._buttons["last"].disabled = page == page_count - 1
        if self._counted_upto != len(index):
            self._counted_upto = len(index)
            self._update_options()
            self._counts.value = self._counts_html()

    def _row(self, pos: int) -> dict[str, Any]:
        index = self._index
        frame = index.frames[pos]
        return {
            "seq": frame.seq,
            "t_ms": round((index.times[pos] - index.times[0]) * 1000.0, 1),
            "direction": frame.direction,
            "type": _key(frame.type),
            "message_type": _key(frame.message_type),
            "connection_id": _key(frame.connection_id),
            "size": frame.size,
            "preview": _preview(frame),
        }

    def _update_options(self) -> None:
        syncing, self._syncing = self._syncing, True
        try:
            for field, dropdown in self._dropdowns.items():
                wanted = getattr(self._filter, field)
                keys = tuple(self._index.values(field))
                if wanted is not None and wanted not in keys:
                    keys = tuple(sorted((*keys, wanted)))
                if self._option_keys.get(field) == keys:
                    continue
                self._option_keys[field] = keys
                value = dropdown.value
                # Replacing the options resets the value; put it back.
                dropdown.options = [("all", _ALL)] + [(k or "(none)", k) for k in keys]
                dropdown.value = value if value == _ALL or value in keys else _ALL
        finally:
            self._syncing = syncing

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
        self._matches = self._index.query(self._effective, self._pattern)
        self._matched_upto = len(self._index)
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
        syncing, self._syncing = self._syncing, True
        try:
            self._counted_upto = -1  # an unseen value must be added to the options
            self._update_options()
            for field, dropdown in self._dropdowns.items():
                value = getattr(flt, field)
                dropdown.value = _ALL if value is None else value
            self._search.value = flt.text
            self._regex.value = flt.regex
        finally:
            self._syncing = syncing
        self._counted_upto = -1
        self._update_view()

    def _on_filter_widget(self, _change: dict[str, Any]) -> None:
        if self._syncing:
            return
        values = {
            field: None if dropdown.value == _ALL else dropdown.value
            for field, dropdown in self._dropdowns.items()
        }
        with self._lock:
            self._apply_filter(
                FrameFilter(**values, text=self._search.value, regex=self._regex.value)
            )

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
        with self._lock:
            pos = self._index.by_seq.get(frame.seq, 0)
            t_ms = (self._index.times[pos] - self._index.times[0]) * 1000.0
        kind, body = format_detail(frame)
        facts = [
            f"seq {frame.seq}",
            esc(frame.direction),  # a loaded recording's fields can be any text
            esc(frame.opcode),
            f"type {esc(_key(frame.type)) or '—'}",
            f"message_type {esc(_key(frame.message_type)) or '—'}",
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
