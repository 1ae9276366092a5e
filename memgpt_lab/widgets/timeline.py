"""A timeline of a Recording's frames: one lane per kind of frame, as SVG.

``timeline_svg`` is a pure function (same recording, same SVG, byte for
byte); :class:`Timeline` is an ``ipywidgets.HTML`` holding that SVG which
refreshes as frames arrive, like the TrafficInspector.

Lanes are the ``message_type`` of ``agent_response`` frames and the ``type``
of every other frame (the opcode for frames that are not JSON), in order of
first appearance. Outgoing frames (server to client) are circles, incoming
ones squares. Turns (``agent_response_start`` to ``agent_response_end``) are
shaded; a recording without those markers gets a dashed line at every gap
longer than ``gap_ms``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np  # imported with the widgets, not at a widget's first draw

from memgpt_lab.widgets._util import LiveRefresh, Scheduler, esc
from memgpt_lab.widgets.inspector import (
    CHUNK,
    FIRST_CHUNK,
    FrameIndex,
    frame_fields,
    lane_name,
    shared_index,
)

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from memgpt_lab.recorder import Frame, Recording

__all__ = ["PALETTE", "Timeline", "TimelineModel", "lane_of", "timeline_svg"]

#: Lane colours, used in lane order (Tableau 10: distinct, readable on white and dark).
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)

_LABEL_WIDTH = 170
_RIGHT = 16
_TOP = 14
_LANE_HEIGHT = 22
_AXIS_HEIGHT = 30
_MARK = 4.0


def lane_of(frame: Frame) -> str:
    """The lane a frame is drawn in."""
    frame_type, message_type = frame_fields(frame)
    return lane_name(frame_type, message_type, frame.opcode)


def _nice_step(span_ms: float, ticks: int = 8) -> float:
    raw = span_ms / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _fmt(x: float) -> str:
    # Fixed precision keeps the SVG byte-for-byte reproducible.
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _ms_label(ms: float) -> str:
    return f"{ms:,.0f} ms" if ms >= 1 or ms == 0 else f"{ms:.2g} ms"


#: Time bins a TimelineModel keeps (a power of two: bins merge pairwise as time goes on).
BINS = 4096
#: The width of a bin at first, in seconds; it doubles whenever the frames outgrow the bins.
BASE_BIN = 1e-6
#: The most marks drawn, whatever the number of frames and lanes.
MAX_MARKS = 2000
_time_of, _seq_of = attrgetter("time"), attrgetter("seq")
#: Frames taken in at once from which the Timeline bins them with numpy (add_many).
_VECTOR_FROM = 256
#: Turn kinds for :meth:`TimelineModel.add`.
OTHER, TURN_START, TURN_END = 0, 1, 2


class _Cells:
    """Counts and first/last seq per time bin, for one lane and direction (or one kind of line)."""

    __slots__ = ("count", "first", "last")

    def __init__(self) -> None:
        self.count = [0] * BINS
        self.first = [0] * BINS
        self.last = [0] * BINS

    def add(self, b: int, seq: int) -> None:
        if self.count[b] == 0:
            self.first[b] = seq
        self.count[b] += 1
        self.last[b] = seq

    def halve(self) -> None:
        """Merge bins pairwise: bin i becomes bins 2i and 2i+1."""
        half = BINS // 2
        count, first, last = self.count, self.first, self.last
        for i in range(half):
            a, b = 2 * i, 2 * i + 1
            ca, cb = count[a], count[b]
            first[i] = first[a] if ca else first[b]
            last[i] = last[b] if cb else last[a]
            count[i] = ca + cb
        count[half:] = [0] * half
        first[half:] = [0] * half
        last[half:] = [0] * half


class TimelineModel:
    """A recording's frames binned by lane, direction and time: what the Timeline draws.

    Memory does not grow with the frames: ``BINS`` time bins per lane and
    direction, whose width doubles (merging bins pairwise) whenever the frames
    outgrow them, so the bins always cover the recording at 1/2,048 of its span
    or finer. Turns are kept as the time they cover per bin and the counts of
    their starts and ends; silences longer than ``gap_ms`` as counts too.

    Feed it frames in recording order with :meth:`add_frame` (or :meth:`add`),
    draw it with :meth:`svg`. Pure: same frames, same SVG, byte for byte.
    """

    def __init__(self, gap_ms: float = 1000.0) -> None:
        self.gap = gap_ms / 1000.0
        self.count = 0  #: frames taken in
        self.t0 = 0.0
        self.t_last = 0.0
        self.bin = BASE_BIN
        self.lanes: dict[str, int] = {}
        self._marks: dict[tuple[int, bool], _Cells] = {}  # (lane, outgoing) -> cells
        self._starts = _Cells()
        self._ends = _Cells()
        self._gaps = _Cells()
        self._cover = [0.0] * BINS  # seconds covered by finished turns, per bin
        self._open: float | None = None  # start time of the turn in progress
        self._open_seq = 0
        self.turns = 0  #: turn start markers seen
        self.ends = 0  #: turn end markers seen
        self._prev: tuple[float, int] | None = None

    def __repr__(self) -> str:
        return f"<TimelineModel {self.count} frames, {len(self.lanes)} lanes>"

    def _bin_of(self, t: float) -> int:
        offset = t - self.t0
        if offset <= 0:
            return 0
        while offset >= BINS * self.bin:
            self._halve()
        return min(int(offset / self.bin), BINS - 1)

    def _halve(self) -> None:
        for cells in (*self._marks.values(), self._starts, self._ends, self._gaps):
            cells.halve()
        cover, half = self._cover, BINS // 2
        for i in range(half):
            cover[i] = cover[2 * i] + cover[2 * i + 1]
        cover[half:] = [0.0] * half
        self.bin *= 2

    def _cover_span(self, start: float, end: float) -> None:
        if end <= start:
            return
        first, last = self._bin_of(start), self._bin_of(end)
        width, t0, cover = self.bin, self.t0, self._cover
        for b in range(first, last + 1):
            lo = max(start, t0 + b * width)
            hi = min(end, t0 + (b + 1) * width)
            if hi > lo:
                cover[b] += hi - lo

    def add_frame(self, frame: Frame) -> None:
        """Take in one frame (its JSON parsed here, not kept)."""
        frame_type, message_type = frame_fields(frame)
        kind = (
            TURN_START
            if frame_type == "agent_response_start"
            else TURN_END
            if frame_type == "agent_response_end"
            else OTHER
        )
        self.add(
            frame.time,
            frame.seq,
            lane_name(frame_type, message_type, frame.opcode),
            frame.direction != "in",
            kind,
        )

    def add(self, t: float, seq: int, lane: str, outgoing: bool, kind: int = OTHER) -> None:
        """Take in one frame: its time, seq, lane, direction and turn kind."""
        if self.count == 0:
            self.t0 = t
        self.count += 1
        if t > self.t_last or self.count == 1:
            self.t_last = t
        b = self._bin_of(t)
        number = self.lanes.get(lane)
        if number is None:
            number = self.lanes[lane] = len(self.lanes)
        key = (number, outgoing)
        cells = self._marks.get(key)
        if cells is None:
            cells = self._marks[key] = _Cells()
        cells.add(b, seq)
        if kind == TURN_START:
            self.turns += 1
            self._starts.add(b, seq)
            self._open, self._open_seq = t, seq
        elif kind == TURN_END:
            self.ends += 1
            self._ends.add(b, seq)
            if self._open is not None:
                self._cover_span(self._open, t)
                self._open = None
        prev = self._prev
        if prev is not None and t - prev[0] > self.gap:
            self._gaps.add(self._bin_of((prev[0] + t) / 2), seq)
        self._prev = (t, seq)

    def add_many(
        self,
        times: ArrayLike,
        seqs: ArrayLike,
        lane_codes: ArrayLike,
        lane_names: Sequence[str],
        outgoing: ArrayLike,
        kinds: ArrayLike,
    ) -> None:
        """Take in many frames at once, as :meth:`add` would one by one, vectorised.

        ``lane_codes[i]`` indexes ``lane_names``; the other sequences hold one
        value per frame, in recording order (numpy arrays or anything numpy reads).
        """
        t = np.asarray(times, dtype=np.float64)
        n = len(t)
        if n == 0:
            return
        seq = np.asarray(seqs, dtype=np.int64)
        codes = np.asarray(lane_codes, dtype=np.int64)
        out = np.asarray(outgoing, dtype=bool)
        kind = np.asarray(kinds, dtype=np.int64)
        if self.count == 0:
            self.t0 = self.t_last = float(t[0])
        self.count += n
        self.t_last = max(self.t_last, float(t.max()))
        # The width add() would have reached: bins merge pairwise, so binning every
        # frame at the final width is what adding them one by one ends with.
        while float(t.max()) - self.t0 >= BINS * self.bin:
            self._halve()
        t0, width = self.t0, self.bin

        def bins_of(values: Any) -> Any:
            offset = values - t0
            b = np.minimum((np.maximum(offset, 0.0) / width).astype(np.int64), BINS - 1)
            return np.where(offset <= 0, 0, b)

        b = bins_of(t)
        # (np.unique sorts, and imports numpy.ma the first time: bincount does neither.)
        present = np.flatnonzero(np.bincount(codes))
        first_at = [int(np.argmax(codes == code)) for code in present]
        lut = np.zeros(int(present[-1]) + 1, dtype=np.int64)
        for code in present[np.argsort(first_at)]:  # new lanes in order of first appearance
            name = lane_names[int(code)]
            number = self.lanes.get(name)
            if number is None:
                number = self.lanes[name] = len(self.lanes)
            lut[code] = number
        key = lut[codes] * 2 + out
        for k in np.flatnonzero(np.bincount(key)):
            lane, outgoing_k = divmod(int(k), 2)
            cells = self._marks.get((lane, bool(outgoing_k)))
            if cells is None:
                cells = self._marks[(lane, bool(outgoing_k))] = _Cells()
            mask = key == k
            _add_cells(cells, b[mask], seq[mask])
        starts, ends = kind == TURN_START, kind == TURN_END
        self.turns += int(starts.sum())
        self.ends += int(ends.sum())
        _add_cells(self._starts, b[starts], seq[starts])
        _add_cells(self._ends, b[ends], seq[ends])
        # Turns: an end closes the turn opened by the event just before it, if a start.
        events = np.flatnonzero(starts | ends)
        if len(events):
            is_start = kind[events] == TURN_START
            span_starts: list[float] = []
            span_ends: list[float] = []
            end_events = np.flatnonzero(~is_start)
            prev = end_events - 1
            opened = prev >= 0
            opened[opened] = is_start[prev[opened]]
            if len(end_events) and end_events[0] == 0 and self._open is not None:
                span_starts.append(self._open)
                span_ends.append(float(t[events[0]]))
            lo = t[events[prev[opened]]]
            hi = t[events[end_events[opened]]]
            cover = np.asarray(self._cover)
            spans_lo = np.concatenate([np.asarray(span_starts), lo])
            spans_hi = np.concatenate([np.asarray(span_ends), hi])
            keep = spans_hi > spans_lo
            spans_lo, spans_hi = spans_lo[keep], spans_hi[keep]
            first_bin, last_bin = bins_of(spans_lo), bins_of(spans_hi)
            single = first_bin == last_bin
            left = np.maximum(spans_lo[single], t0 + first_bin[single] * width)
            right = np.minimum(spans_hi[single], t0 + (first_bin[single] + 1) * width)
            np.add.at(cover, first_bin[single], np.maximum(right - left, 0.0))
            self._cover = cover.tolist()
            for start, end in zip(
                spans_lo[~single].tolist(), spans_hi[~single].tolist(), strict=True
            ):
                self._cover_span(start, end)
            last = events[-1]
            if is_start[-1]:
                self._open, self._open_seq = float(t[last]), int(seq[last])
            else:
                self._open = None
        # Silences longer than gap_ms, at their middle.
        before = np.empty(n, dtype=np.float64)
        before[1:] = t[:-1]
        if self._prev is not None:
            before[0] = self._prev[0]
            gaps = (t - before) > self.gap
        else:
            before[0] = t[0]
            gaps = (t - before) > self.gap
            gaps[0] = False
        if gaps.any():
            _add_cells(self._gaps, bins_of((before[gaps] + t[gaps]) / 2), seq[gaps])
        self._prev = (float(t[-1]), int(seq[-1]))

    # -- drawing --------------------------------------------------------------------

    def svg(
        self, width: int = 800, height: int | None = None, *, max_marks_per_lane: int = 2000
    ) -> str:
        """The timeline as a standalone SVG document (see :func:`timeline_svg`)."""
        lanes = self.lanes
        lane_count = max(1, len(lanes))
        if height is None:
            height = _TOP + lane_count * _LANE_HEIGHT + _AXIS_HEIGHT
        plot_left, plot_right = _LABEL_WIDTH, max(_LABEL_WIDTH + 10, width - _RIGHT)
        plot_bottom = height - _AXIS_HEIGHT
        lane_height = (plot_bottom - _TOP) / lane_count
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="mlab-timeline" width="{width}"'
            f' height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif"'
            # In a narrower cell the drawing shrinks to fit instead of scrolling sideways.
            ' style="max-width:100%;height:auto"'
            f' font-size="11" data-frames="{self.count}" data-lanes="{len(lanes)}">',
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        ]
        if not self.count:
            out.append(
                f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle"'
                ' fill="#777777">no frames yet</text></svg>'
            )
            return "".join(out)
        span = max(self.t_last - self.t0, 0.001)
        plot_w = plot_right - plot_left
        scale = plot_w / span  # pixels per second
        # Columns: marks of a lane and direction closer than 3 px are one mark.
        pairs = max(1, len(self._marks))
        columns = max(8, min(max_marks_per_lane, plot_w // 3, MAX_MARKS // pairs))
        used = min(BINS, int(span / self.bin) + 1)

        def column_of(b: int) -> int:
            return min(int(b * self.bin / span * columns), columns - 1)

        def x_of_bin(b: int) -> float:
            return plot_left + min((b + 0.5) * self.bin, span) * scale

        bounds = _bounds(used, column_of)
        out.extend(self._turns_svg(used, span, scale, plot_left, _TOP, plot_bottom, bounds))
        for name, lane in lanes.items():
            y = _TOP + lane * lane_height
            colour = PALETTE[lane % len(PALETTE)]
            shade = 0.06 + 0.04 * (lane % 2)  # alternate lanes, to tell them apart
            out.append(
                f'<g class="mlab-lane" data-lane="{esc(name)}">'
                f'<rect x="{plot_left}" y="{_fmt(y)}" width="{plot_w}"'
                f' height="{_fmt(lane_height)}" fill="{colour}" fill-opacity="{shade:.2f}"/>'
                f'<text x="{plot_left - 6}" y="{_fmt(y + lane_height / 2 + 4)}" text-anchor="end"'
                f' fill="{colour}">{esc(name)}</text></g>'
            )
        names = {number: esc(name) for name, number in lanes.items()}
        bin_ms, span_ms = self.bin * 1000.0, span * 1000.0
        for (lane, outgoing), cells in sorted(self._marks.items()):
            name = names[lane]  # escaped once: it is in every mark of the lane
            colour = PALETTE[lane % len(PALETTE)]
            y = _TOP + lane * lane_height + lane_height / 2
            direction = "out" if outgoing else "in"
            # The part of a mark that is the same for the whole lane, made once.
            if outgoing:
                head, tail = (
                    "<circle cx=",
                    (f' cy="{_fmt(y)}" r="{_fmt(_MARK)}" class="mlab-mark"'),
                )
                close = "</circle>"
                shift = 0.0
            else:
                head, tail = (
                    "<rect x=",
                    (
                        f' y="{_fmt(y - _MARK)}" width="{_fmt(2 * _MARK)}" height="{_fmt(2 * _MARK)}"'
                        ' class="mlab-mark"'
                    ),
                )
                close = "</rect>"
                shift = _MARK
            # Colour and outline once per lane and direction, not once per mark.
            out.append(
                f'<g class="mlab-marks" data-lane="{name}" data-direction="{direction}"'
                f' fill="{colour}" stroke="#ffffff" stroke-width="0.5">'
            )
            for col_first, count, first, last in _group(cells, bounds):
                if count == 1:
                    ms = min((col_first + 0.5) * bin_ms, span_ms)
                    title = f"#{first} {direction} {name} +{ms:.1f} ms"
                else:
                    title = f"{count:,} {direction} {name} frames, #{first}–#{last}"
                out.append(
                    f'{head}"{_fmt(x_of_bin(col_first) - shift)}"{tail} data-seq="{first}"'
                    f' data-lane="{name}" data-count="{count}"><title>{title}</title>{close}'
                )
            out.append("</g>")
        out.extend(_axis(span * 1000.0, scale / 1000.0, plot_left, plot_right, plot_bottom))
        out.append("</svg>")
        return "".join(out)

    def _turns_svg(
        self,
        used: int,
        span: float,
        scale: float,
        left: float,
        top: float,
        bottom: float,
        bounds: list[tuple[int, int]],
    ) -> list[str]:
        out: list[str] = []
        width = self.bin
        if self.turns or self.ends:
            cover = list(self._cover[:used])
            if self._open is not None:  # a turn in progress covers up to the last frame
                start, end = self._open, self.t_last
                first, last = int((start - self.t0) / width), int((end - self.t0) / width)
                for b in range(max(first, 0), min(last, used - 1) + 1):
                    lo = max(start, self.t0 + b * width)
                    hi = min(end, self.t0 + (b + 1) * width)
                    cover[b] += max(hi - lo, 0.0)
            out.extend(_shading(cover, used, width, span, scale, left, top, bottom))
            lines = [(self._starts, "start"), (self._ends, "end")]
        else:
            lines = [(self._gaps, "gap")]
        groups = [(kind, list(_group(cells, bounds))) for cells, kind in lines]
        # Boundaries closer than a few pixels would paint solid bars: the shading shows them.
        if sum(len(g) for _, g in groups) > len(bounds) // 2:
            return out
        for kind, group in groups:
            for col_first, count, first, _last in group:
                x = _fmt(left + min((col_first + 0.5) * width, span) * scale)
                dash = ' stroke-dasharray="4 3"' if kind == "gap" else ""
                opacity = "" if kind == "gap" else ' stroke-opacity="0.6"'
                out.append(
                    f'<line class="mlab-boundary mlab-boundary-{kind}" data-seq="{first}"'
                    f' data-count="{count}" x1="{x}" x2="{x}" y1="{top}" y2="{_fmt(bottom)}"'
                    f' stroke="#555555"{dash} stroke-width="1"{opacity}/>'
                )
        return out


def _add_cells(cells: _Cells, bins: Any, seqs: Any) -> None:
    """``cells.add(b, seq)`` for each pair, in order, vectorised."""
    n = len(bins)
    if not n:
        return
    if (bins[1:] >= bins[:-1]).all():  # in time order, as a recording's frames are: no sort
        first_at = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1])))
        where = bins[first_at]
        last_at = np.concatenate((first_at[1:], [n])) - 1
        counts = last_at - first_at + 1
    else:
        where, first_at, counts = np.unique(bins, return_index=True, return_counts=True)
        _, last_from_end = np.unique(bins[::-1], return_index=True)
        last_at = n - 1 - last_from_end
    count = np.asarray(cells.count, dtype=np.int64)
    first = np.asarray(cells.first, dtype=np.int64)
    last = np.asarray(cells.last, dtype=np.int64)
    empty = count[where] == 0
    first[where[empty]] = seqs[first_at[empty]]
    last[where] = seqs[last_at]
    count[where] += counts
    cells.count, cells.first, cells.last = count.tolist(), first.tolist(), last.tolist()


def _bounds(used: int, column_of: Callable[[int], int]) -> list[tuple[int, int]]:
    """The bins ``[start, end)`` of each column that has any, left to right."""
    out: list[tuple[int, int]] = []
    start, current = 0, column_of(0) if used else 0
    for b in range(1, used):
        column = column_of(b)
        if column != current:
            out.append((start, b))
            start, current = b, column
    if used:
        out.append((start, used))
    return out


def _group(cells: _Cells, bounds: list[tuple[int, int]]) -> Iterator[tuple[int, int, int, int]]:
    """``(first bin, count, first seq, last seq)`` per column with frames, left to right."""
    count, first, last = cells.count, cells.first, cells.last
    for b, end in bounds:
        total = sum(count[b:end])  # C-speed: the bins of a column at once
        if total:
            lo = b
            while not count[lo]:
                lo += 1
            hi = end - 1
            while not count[hi]:
                hi -= 1
            yield lo, total, first[lo], last[hi]


def _shading(
    cover: list[float],
    used: int,
    width: float,
    span: float,
    scale: float,
    left: float,
    top: float,
    bottom: float,
) -> list[str]:
    """Turns as shading: one rectangle per run of pixels that turns touch.

    Its opacity tells, in four steps, how much of the run's time turns cover,
    so dense turns are a light band (the share on hover), never a solid bar.
    """
    pixels = max(1, int(span * scale))
    per_pixel = [0.0] * pixels
    for b in range(used):
        if cover[b]:
            per_pixel[min(int((b + 0.5) * width * scale), pixels - 1)] += cover[b]
    pixel_time = span / pixels
    out: list[str] = []
    run_start, covered = -1, 0.0
    for px in range(pixels + 1):
        busy = px < pixels and per_pixel[px] > 0
        if busy:
            if run_start < 0:
                run_start, covered = px, 0.0
            covered += per_pixel[px]
        elif run_start >= 0:
            share = min(1.0, covered / ((px - run_start) * pixel_time))
            level = max(1, min(4, math.ceil(share * 4 - 1e-9)))
            out.append(
                f'<rect class="mlab-turn" x="{_fmt(left + run_start)}" y="{top}"'
                f' width="{_fmt(px - run_start)}" height="{_fmt(bottom - top)}"'
                f' fill="#000000" fill-opacity="{0.02 * level + 0.02:.2f}">'
                f"<title>{share:.0%} of this time in turns</title></rect>"
            )
            run_start = -1
    return out


def timeline_svg(
    recording: Recording | Sequence[Frame],
    width: int = 800,
    height: int | None = None,
    *,
    gap_ms: float = 1000.0,
    max_marks_per_lane: int = 2000,
) -> str:
    """The frames of ``recording`` over time, as a standalone SVG document.

    Marks of one lane and direction closer than 3 pixels are one mark whose
    tooltip gives the count; whatever the number of frames, the SVG holds at
    most a few thousand elements. Turns are shaded by how much of each pixel's
    time they cover; their start and end lines are drawn while they are sparse.

    Args:
        recording: a Recording, or any sequence of Frames in time order.
        width: width in pixels.
        height: height in pixels; by default enough for every lane.
        gap_ms: without turn markers, a silence this long marks a turn boundary.
        max_marks_per_lane: at most this many marks per lane and direction.

    Returns:
        SVG text with classes for tests and styling: ``mlab-timeline`` (root,
        ``data-frames``), ``mlab-lane`` (``data-lane``), ``mlab-mark``
        (``data-seq`` of its first frame, ``data-lane``, ``data-count``),
        ``mlab-turn`` / ``mlab-boundary`` and ``mlab-tick``.
    """
    model = TimelineModel(gap_ms)
    for frame in recording:
        model.add_frame(frame)
    return model.svg(width, height, max_marks_per_lane=max_marks_per_lane)


def _axis(span_ms: float, scale: float, left: float, right: float, bottom: float) -> list[str]:
    out = [
        f'<line class="mlab-axis" x1="{left}" x2="{_fmt(right)}" y1="{_fmt(bottom)}"'
        f' y2="{_fmt(bottom)}" stroke="#333333" stroke-width="1"/>'
    ]
    step = _nice_step(span_ms)
    count = int(span_ms / step + 1e-9)
    for i in range(count + 1):
        ms = i * step
        x = _fmt(left + ms * scale)
        out.append(
            f'<g class="mlab-tick"><line x1="{x}" x2="{x}" y1="{_fmt(bottom)}"'
            f' y2="{_fmt(bottom + 4)}" stroke="#333333"/>'
            f'<text x="{x}" y="{_fmt(bottom + 16)}" text-anchor="middle"'
            f' fill="#333333">{_ms_label(ms)}</text></g>'
        )
    return out


class Timeline(widgets.HTML):
    """The timeline SVG of a Recording as a widget that follows the recording.

    It shares the recording's :class:`~memgpt_lab.widgets.inspector.FrameIndex`
    with a TrafficInspector of the same recording (each frame's JSON is parsed
    once for both) and keeps a :class:`TimelineModel`, which takes in only the
    frames that are new since the last redraw; a redraw costs the same at a
    hundred frames or a million, and nothing is redrawn when nothing arrived.

    Args:
        recording: the Recording to draw.
        width: SVG width in pixels.
        live: subscribe and redraw by itself; otherwise call :meth:`refresh`.
        interval: the least seconds between live redraws.
        chunk: frames a live redraw takes in at most (a long recording is
            drawn as it is taken in, a chunk a redraw).
        scheduler: where live redraws run (the process's one widget thread by
            default); tests pass one on a clock of their own.
        gap_ms: without turn markers, a silence this long marks a turn boundary.
        max_marks_per_lane: at most this many marks per lane and direction.

    Call :meth:`close` to unsubscribe.
    """

    def __init__(
        self,
        recording: Recording,
        width: int = 800,
        *,
        live: bool = True,
        interval: float = 0.2,
        gap_ms: float = 1000.0,
        max_marks_per_lane: int = 2000,
        chunk: int = CHUNK,
        scheduler: Scheduler | None = None,
    ) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, not {chunk}")
        super().__init__()
        self.add_class("mlab-timeline-widget")
        self._recording = recording
        self._width = width
        self._gap_ms = gap_ms
        self._max_marks = max_marks_per_lane
        self._lock = threading.Lock()
        self._index = shared_index(recording)
        self._generation = -1
        self._model = TimelineModel(gap_ms)
        self._drawn = -1
        self._live: LiveRefresh | None = None
        if live:
            self._refresh(min(chunk, FIRST_CHUNK))
            self._live = LiveRefresh(
                recording, lambda: self._refresh(chunk), interval, scheduler=scheduler
            )
            if self._model.count < len(recording):
                self._live.poke()
        else:
            self.refresh()

    def __repr__(self) -> str:
        return f"<Timeline of {len(self._recording)} frames>"

    @property
    def model(self) -> TimelineModel:
        """What is drawn: the frames taken in so far, binned."""
        return self._model

    def refresh(self) -> None:
        """Take in every new frame and redraw."""
        self._refresh(None)

    def _refresh(self, limit: int | None) -> bool:
        with self._lock:
            index = self._index
            with index.lock:
                behind = index.catch_up(self._recording, limit)
                if index.generation != self._generation:
                    self._generation = index.generation
                    self._model = TimelineModel(self._gap_ms)
                    self._drawn = -1
                indexed = len(index)
                end = indexed if limit is None else min(indexed, self._model.count + limit)
                self._take_in(index, end)
                behind = behind or end < indexed
            model = self._model
            if model.count != self._drawn:
                self._drawn = model.count
                self.value = model.svg(self._width, max_marks_per_lane=self._max_marks)
            return behind

    def _take_in(self, index: FrameIndex, end: int) -> None:
        model, start = self._model, self._model.count
        if start >= end:
            return
        frames = index.frames
        lanes, lane_names = index.columns["lane"], index.names["lane"]
        directions, direction_names = index.columns["direction"], index.names["direction"]
        types, type_codes = index.columns["type"], index.codes["type"]
        start_code = type_codes.get("agent_response_start", -1)
        end_code = type_codes.get("agent_response_end", -1)
        if end - start >= _VECTOR_FROM:
            chunk = frames[start:end]
            in_code = direction_names.index("in") if "in" in direction_names else -1
            type_column = np.asarray(types[start:end])
            model.add_many(
                np.fromiter(map(_time_of, chunk), np.float64, len(chunk)),
                np.fromiter(map(_seq_of, chunk), np.int64, len(chunk)),
                np.asarray(lanes[start:end]),
                lane_names,
                np.asarray(directions[start:end]) != in_code,
                np.where(
                    type_column == start_code,
                    TURN_START,
                    np.where(type_column == end_code, TURN_END, OTHER),
                ),
            )
            return
        add = model.add
        for pos in range(start, end):
            frame = frames[pos]
            code = types[pos]
            kind = TURN_START if code == start_code else TURN_END if code == end_code else OTHER
            add(
                frame.time,
                frame.seq,
                lane_names[lanes[pos]],
                direction_names[directions[pos]] != "in",
                kind,
            )

    def close(self) -> None:
        """Unsubscribe from the recording and close the widget."""
        live = getattr(self, "_live", None)  # None too when __init__ refused its arguments
        if live is not None:
            live.close()
        super().close()
