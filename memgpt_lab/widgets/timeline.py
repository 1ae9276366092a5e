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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import ipywidgets as widgets

from memgpt_lab.widgets._util import LiveRefresh, esc

if TYPE_CHECKING:
    from memgpt_lab.recorder import Frame, Recording

__all__ = ["PALETTE", "Timeline", "lane_of", "timeline_svg"]

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
    if frame.type == "agent_response" and frame.message_type:
        return str(frame.message_type)
    if frame.type is not None:
        return str(frame.type)
    return str(frame.opcode)


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


def timeline_svg(
    recording: Recording | Sequence[Frame],
    width: int = 800,
    height: int | None = None,
    *,
    gap_ms: float = 1000.0,
    max_marks_per_lane: int = 2000,
) -> str:
    """The frames of ``recording`` over time, as a standalone SVG document.

    Args:
        recording: a Recording, or any sequence of Frames in time order.
        width: width in pixels.
        height: height in pixels; by default enough for every lane.
        gap_ms: without turn markers, a silence this long marks a turn boundary.
        max_marks_per_lane: above this, a lane's marks are merged per pixel
            column (the mark's tooltip gives the count) to keep the SVG small.

    Returns:
        SVG text with classes for tests and styling: ``mlab-timeline`` (root),
        ``mlab-lane`` (``data-lane``), ``mlab-mark`` (``data-seq``,
        ``data-lane``), ``mlab-turn`` / ``mlab-boundary`` and ``mlab-tick``.
    """
    frames = list(recording)
    lanes: dict[str, int] = {}
    for frame in frames:
        lanes.setdefault(lane_of(frame), len(lanes))
    lane_count = max(1, len(lanes))
    if height is None:
        height = _TOP + lane_count * _LANE_HEIGHT + _AXIS_HEIGHT
    plot_left, plot_right = _LABEL_WIDTH, max(_LABEL_WIDTH + 10, width - _RIGHT)
    plot_bottom = height - _AXIS_HEIGHT
    lane_height = (plot_bottom - _TOP) / lane_count
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="mlab-timeline" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif"'
        f' font-size="11" data-frames="{len(frames)}" data-lanes="{len(lanes)}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    if not frames:
        out.append(
            f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle"'
            ' fill="#777777">no frames yet</text></svg>'
        )
        return "".join(out)

    t0 = frames[0].time
    span_ms = max((frames[-1].time - t0) * 1000.0, 1.0)
    scale = (plot_right - plot_left) / span_ms

    def x_of(frame: Frame) -> float:
        return plot_left + (frame.time - t0) * 1000.0 * scale

    out.extend(_turns(frames, x_of, _TOP, plot_bottom, gap_ms))
    for name, lane in lanes.items():
        y = _TOP + lane * lane_height
        colour = PALETTE[lane % len(PALETTE)]
        shade = 0.06 + 0.04 * (lane % 2)  # alternate lanes, to tell them apart
        out.append(
            f'<g class="mlab-lane" data-lane="{esc(name)}">'
            f'<rect x="{plot_left}" y="{_fmt(y)}" width="{plot_right - plot_left}"'
            f' height="{_fmt(lane_height)}" fill="{colour}" fill-opacity="{shade:.2f}"/>'
            f'<text x="{plot_left - 6}" y="{_fmt(y + lane_height / 2 + 4)}" text-anchor="end"'
            f' fill="{colour}">{esc(name)}</text></g>'
        )
    out.extend(_marks(frames, lanes, x_of, lane_height, max_marks_per_lane))
    out.extend(_axis(span_ms, scale, plot_left, plot_right, plot_bottom))
    out.append("</svg>")
    return "".join(out)


def _turns(
    frames: list[Frame], x_of: Callable[[Frame], float], top: float, bottom: float, gap_ms: float
) -> list[str]:
    out: list[str] = []
    starts = [f for f in frames if f.type == "agent_response_start"]
    ends = [f for f in frames if f.type == "agent_response_end"]
    if starts or ends:
        open_start: Frame | None = None
        for frame in frames:
            if frame.type == "agent_response_start":
                open_start = frame
            elif frame.type == "agent_response_end" and open_start is not None:
                x1, x2 = x_of(open_start), x_of(frame)
                out.append(
                    f'<rect class="mlab-turn" x="{_fmt(x1)}" y="{top}"'
                    f' width="{_fmt(max(x2 - x1, 1.0))}" height="{_fmt(bottom - top)}"'
                    ' fill="#000000" fill-opacity="0.05"/>'
                )
                open_start = None
        for frame in starts + ends:
            kind = "start" if frame.type == "agent_response_start" else "end"
            x = _fmt(x_of(frame))
            out.append(
                f'<line class="mlab-boundary mlab-boundary-{kind}" data-seq="{frame.seq}"'
                f' x1="{x}" x2="{x}" y1="{top}" y2="{_fmt(bottom)}" stroke="#555555"'
                f' stroke-width="1" stroke-opacity="0.6"/>'
            )
        return out
    for before, after in zip(frames, frames[1:], strict=False):
        if (after.time - before.time) * 1000.0 > gap_ms:
            x = _fmt((x_of(before) + x_of(after)) / 2)
            out.append(
                f'<line class="mlab-boundary mlab-boundary-gap" data-seq="{after.seq}"'
                f' x1="{x}" x2="{x}" y1="{top}" y2="{_fmt(bottom)}" stroke="#555555"'
                ' stroke-dasharray="4 3" stroke-width="1"/>'
            )
    return out


def _mark(x: float, y: float, colour: str, direction: str, attrs: str, title: str) -> str:
    if direction == "in":
        tag = "rect"
        shape = (
            f'<rect x="{_fmt(x - _MARK)}" y="{_fmt(y - _MARK)}" width="{_fmt(2 * _MARK)}"'
            f' height="{_fmt(2 * _MARK)}" fill="{colour}" stroke="#ffffff" stroke-width="0.5"'
        )
    else:
        tag = "circle"
        shape = (
            f'<circle cx="{_fmt(x)}" cy="{_fmt(y)}" r="{_fmt(_MARK)}" fill="{colour}"'
            ' stroke="#ffffff" stroke-width="0.5"'
        )
    return f'{shape} class="mlab-mark" {attrs}><title>{esc(title)}</title></{tag}>'


def _marks(
    frames: list[Frame],
    lanes: dict[str, int],
    x_of: Callable[[Frame], float],
    lane_height: float,
    max_marks: int,
) -> list[str]:
    per_lane: dict[str, list[Frame]] = {name: [] for name in lanes}
    for frame in frames:
        per_lane[lane_of(frame)].append(frame)
    t0 = frames[0].time
    out: list[str] = []
    for name, lane_frames in per_lane.items():
        lane = lanes[name]
        colour = PALETTE[lane % len(PALETTE)]
        y = _TOP + lane * lane_height + lane_height / 2
        if len(lane_frames) <= max_marks:
            for frame in lane_frames:
                ms = (frame.time - t0) * 1000.0
                out.append(
                    _mark(
                        x_of(frame),
                        y,
                        colour,
                        frame.direction,
                        f'data-seq="{frame.seq}" data-lane="{esc(name)}"',
                        f"#{frame.seq} {frame.direction} {name} +{ms:.1f} ms",
                    )
                )
            continue
        # Too many to draw one by one: one mark per pixel column and direction.
        buckets: dict[tuple[int, str], list[Frame]] = {}
        for frame in lane_frames:
            buckets.setdefault((round(x_of(frame)), frame.direction), []).append(frame)
        for (x, direction), group in sorted(buckets.items()):
            out.append(
                _mark(
                    float(x),
                    y,
                    colour,
                    direction,
                    f'data-seq="{group[0].seq}" data-lane="{esc(name)}" data-count="{len(group)}"',
                    f"{len(group)} {direction} {name} frames from #{group[0].seq}",
                )
            )
    return out


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

    Args:
        recording: the Recording to draw.
        width: SVG width in pixels.
        live: subscribe and redraw by itself; otherwise call :meth:`refresh`.
        interval: seconds between live redraws (redrawing is O(frames)).
        **options: passed on to :func:`timeline_svg`.

    Call :meth:`close` to unsubscribe.
    """

    def __init__(
        self,
        recording: Recording,
        width: int = 800,
        *,
        live: bool = True,
        interval: float = 0.25,
        **options: float,
    ) -> None:
        super().__init__()
        self.add_class("mlab-timeline-widget")
        self._recording = recording
        self._width = width
        self._options = options
        self._lock = threading.Lock()
        self.refresh()
        self._live = LiveRefresh(recording, self.refresh, interval) if live else None

    def __repr__(self) -> str:
        return f"<Timeline of {len(self._recording)} frames>"

    def refresh(self) -> None:
        """Redraw from the recording's current frames."""
        with self._lock:
            self.value = timeline_svg(self._recording, self._width, **self._options)  # type: ignore[arg-type]

    def close(self) -> None:
        """Unsubscribe from the recording and close the widget."""
        if self._live is not None:
            self._live.close()
        super().close()
