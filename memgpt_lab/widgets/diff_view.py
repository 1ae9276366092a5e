"""DiffView: two recordings side by side, their differences highlighted.

The alignment is :meth:`Recording.diff <memgpt_lab.recorder.Recording.diff>`'s
(by connection and order, tolerant of inserted and missing frames, times and ids
normalised); this widget only shows it. Rows are ``same``, ``changed`` (the
differing fields listed, the changed text marked word by word), ``only-left`` or
``only-right``. The filters are the TrafficInspector's (the same
:class:`FilterBar` of controls, a :class:`FrameFilter` decided by a
:class:`FrameIndex`): a row is shown when the frame on either side passes.
Typical use::

    DiffView(recording_a, recording_b, labels=("memgpt_chat", "memgpt_minimal"))
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from memgpt_lab.recorder.diff import STATUSES
from memgpt_lab.widgets._util import esc
from memgpt_lab.widgets.inspector import FILTER_FIELDS, FilterBar, FrameFilter, FrameIndex
from memgpt_lab.widgets.inspector_files import passing_seqs

if TYPE_CHECKING:
    from memgpt_lab.recorder import Frame, Recording
    from memgpt_lab.recorder.diff import DiffRow, RecordingDiff

__all__ = ["DiffView", "diff_rows"]

_PREVIEW = 160

_CSS = """
.mlab-diffview table { border-collapse: collapse; width: 100%; table-layout: fixed;
  font-size: var(--jp-ui-font-size1, 13px); }
.mlab-diffview td { vertical-align: top; padding: 2px 6px; word-break: break-word;
  border-bottom: 1px solid var(--jp-border-color3, #eee); }
.mlab-diffview td.mlab-diff-n { width: 3em; opacity: 0.6; text-align: right; }
.mlab-diffview .mlab-diff-meta { font-size: 0.8em; opacity: 0.7; }
.mlab-diffview tr.mlab-diff-changed td.mlab-diff-side { background: rgba(255, 193, 7, 0.14); }
.mlab-diffview tr.mlab-diff-only-left td.mlab-diff-left { background: rgba(229, 57, 53, 0.13); }
.mlab-diffview tr.mlab-diff-only-right td.mlab-diff-right { background: rgba(76, 175, 80, 0.16); }
.mlab-diffview del { background: rgba(229, 57, 53, 0.25); text-decoration: none; }
.mlab-diffview ins { background: rgba(76, 175, 80, 0.3); text-decoration: none; }
.mlab-diffview .mlab-diff-fields { font-size: 0.8em; color: #b26a00; }
"""


def diff_rows(diff: RecordingDiff) -> list[DiffRow]:
    """The aligned pairs of a :meth:`Recording.diff` result, in order."""
    return list(diff.rows)


def _text(frame: Frame | None) -> str:
    if frame is None:
        return ""
    if frame.opcode == "close":
        return f"close {frame.close_code if frame.close_code is not None else ''} {frame.close_reason or ''}".strip()
    if frame.text is None:
        return f"<{len(frame.data or b'')} bytes> {(frame.data or b'')[:24].hex()}"
    body = frame.json
    if isinstance(body, dict) and "message" in body:
        message = body["message"]
        text = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False)
    else:
        text = frame.text
    text = " ".join(text.split())
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


def _marked(old: str, new: str) -> tuple[str, str]:
    """Both texts as HTML, the words that differ in ``<del>`` (left) and ``<ins>`` (right)."""
    a, b = re.split(r"(\s+)", old), re.split(r"(\s+)", new)
    left: list[str] = []
    right: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            left.append(esc("".join(a[i1:i2])))
            right.append(esc("".join(b[j1:j2])))
            continue
        if i2 > i1:
            left.append(f"<del>{esc(''.join(a[i1:i2]))}</del>")
        if j2 > j1:
            right.append(f"<ins>{esc(''.join(b[j1:j2]))}</ins>")
    return "".join(left), "".join(right)


def _meta(frame: Frame) -> str:
    kind = frame.message_type or frame.type or frame.opcode
    return f"#{frame.seq} {frame.direction} {frame.connection_id} {kind}".replace("  ", " ")


class DiffView(widgets.VBox):
    """Two recordings side by side; see the module.

    Args:
        left / right: the recordings to compare.
        diff: a ready :meth:`Recording.diff` result of the two; computed when None.
        normalise: passed to :meth:`Recording.diff` when the diff is computed.
        labels: the two columns' headings.
        differences_only: hide the ``same`` rows at first.
        max_rows: rows rendered at most (the counts cover all of them).
    """

    def __init__(
        self,
        left: Recording,
        right: Recording,
        *,
        diff: RecordingDiff | None = None,
        normalise: Any = None,
        labels: Sequence[str] = ("left", "right"),
        differences_only: bool = False,
        max_rows: int = 500,
    ) -> None:
        if len(labels) != 2:
            raise ValueError(f"labels takes two headings, not {len(labels)}")
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, not {max_rows}")
        self.left, self.right = left, right
        if diff is None:
            diff = left.diff(right) if normalise is None else left.diff(right, normalise=normalise)
        self.diff = diff
        self.labels = (str(labels[0]), str(labels[1]))
        self.max_rows = max_rows
        self._all_rows = diff_rows(diff)
        self._left_frames, self._right_frames = list(left), list(right)
        self._filter = FrameFilter()
        self._filter_bar = bar = FilterBar(self._on_filter_widget)
        bar.offer(self._values())
        self._only = widgets.Checkbox(
            differences_only,
            description="differences only",
            indent=False,
            layout=widgets.Layout(width="auto"),
        )
        self._summary = widgets.HTML()
        self._table = widgets.HTML()
        self._only.observe(lambda _change: self._render(), "value")
        self._summary.add_class("mlab-diff-summary")
        self._table.add_class("mlab-diff-table")
        style = widgets.HTML(f"<style>{_CSS}</style>", layout=widgets.Layout(height="0px"))
        super().__init__(
            [
                style,
                widgets.HBox(list(bar.dropdowns.values())),
                widgets.HBox([bar.search, bar.regex, self._only]),
                self._summary,
                self._table,
            ]
        )
        self.add_class("mlab-diffview")
        self._render()

    def __repr__(self) -> str:
        counts = self.counts
        shown = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
        return f"<DiffView {self.labels[0]} vs {self.labels[1]}: {shown or 'empty'}>"

    # -- public API ---------------------------------------------------------

    @property
    def counts(self) -> dict[str, int]:
        """Rows per status, over the whole diff."""
        return dict(self.diff.counts())

    @property
    def filter(self) -> FrameFilter:
        """The filter as set."""
        return self._filter

    @property
    def differences_only(self) -> bool:
        return bool(self._only.value)

    @differences_only.setter
    def differences_only(self, value: bool) -> None:
        self._only.value = bool(value)

    @property
    def rows(self) -> list[DiffRow]:
        """The rows that pass the filter (and ``differences_only``), all of them."""
        flt = self._filter
        if flt == FrameFilter():
            keep_left = keep_right = None
        else:
            keep_left = passing_seqs(self._left_frames, flt)
            keep_right = passing_seqs(self._right_frames, flt)
        out = []
        for row in self._all_rows:
            if self._only.value and row.status == "same":
                continue
            if keep_left is not None and keep_right is not None:
                on_left = row.left is not None and row.left.seq in keep_left
                on_right = row.right is not None and row.right.seq in keep_right
                if not (on_left or on_right):
                    continue
            out.append(row)
        return out

    def set_filter(
        self,
        direction: str | None = None,
        type: str | None = None,
        message_type: str | None = None,
        connection_id: str | None = None,
        text: str = "",
        regex: bool = False,
    ) -> None:
        """Replace the whole filter, as :meth:`TrafficInspector.set_filter` does."""
        flt = FrameFilter(direction, type, message_type, connection_id, text, regex)
        self._filter_bar.show(flt)
        self._on_filter_widget(flt)

    def text(self) -> str:
        """The readable unified view of the diff (``str()`` of the diff)."""
        return str(self.diff)

    # -- internals ----------------------------------------------------------

    def _values(self) -> dict[str, list[str]]:
        index = FrameIndex()
        index.extend(self._left_frames)
        index.extend(self._right_frames)
        return {field: index.values(field) for field in FILTER_FIELDS}

    def _on_filter_widget(self, flt: FrameFilter) -> None:
        self._filter = flt
        self._render()

    def _render(self) -> None:
        rows = self.rows
        counts = self.counts
        verdict = (
            "the recordings agree"
            if not any(counts[s] for s in STATUSES[1:])
            else ", ".join(f"<b>{counts[s]}</b> {s}" for s in STATUSES[1:] if counts[s])
        )
        shown = min(len(rows), self.max_rows)
        more = f"; first {shown} shown" if len(rows) > shown else ""
        message = ""
        try:
            self._filter.pattern()
        except re.error as error:
            message = f' <span class="mlab-status-error">invalid regular expression: {esc(error)}; text ignored</span>'
        self._summary.value = (
            f"<div>{esc(self.labels[0])} vs {esc(self.labels[1])}: {verdict} "
            f"({counts['same']} same); {len(rows)} rows pass the filter{more}{message}</div>"
        )
        self._table.value = self._table_html(rows[:shown])

    def _table_html(self, rows: Iterable[DiffRow]) -> str:
        head = (
            '<tr><th class="mlab-diff-n"></th>'
            f"<th>{esc(self.labels[0])}</th><th>{esc(self.labels[1])}</th></tr>"
        )
        body = []
        for n, row in enumerate(rows, 1):
            left_text, right_text = _text(row.left), _text(row.right)
            if row.status == "changed":
                left_html, right_html = _marked(left_text, right_text)
            else:
                left_html, right_html = esc(left_text), esc(right_text)
            fields = (
                f'<div class="mlab-diff-fields">differs in: {esc(", ".join(row.fields))}</div>'
                if row.fields
                else ""
            )
            cells = []
            for side, frame, html in (
                ("left", row.left, left_html),
                ("right", row.right, right_html),
            ):
                meta = f'<div class="mlab-diff-meta">{esc(_meta(frame))}</div>' if frame else ""
                extra = fields if frame is not None and side == "left" else ""
                cells.append(
                    f'<td class="mlab-diff-side mlab-diff-{side}">{meta}{html}{extra}</td>'
                )
            body.append(
                f'<tr class="mlab-diff-{row.status}" data-status="{row.status}">'
                f'<td class="mlab-diff-n">{n}</td>{"".join(cells)}</tr>'
            )
        if not body:
            body.append('<tr><td></td><td colspan="2"><i>no rows pass the filter</i></td></tr>')
        return f"<table>{head}{''.join(body)}</table>"
