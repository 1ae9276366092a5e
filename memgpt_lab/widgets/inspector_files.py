"""The inspector's Load and Export bar, and the filter applied to a whole Recording.

Kept apart from :mod:`memgpt_lab.widgets.inspector`'s internals: it talks to
the inspector only through :attr:`TrafficInspector.recording
<memgpt_lab.widgets.inspector.TrafficInspector.recording>`,
:attr:`~memgpt_lab.widgets.inspector.TrafficInspector.filter` and
:meth:`~memgpt_lab.widgets.inspector.TrafficInspector.show`, and it filters
with the inspector's own :class:`~memgpt_lab.widgets.inspector.FrameFilter` and
:class:`~memgpt_lab.widgets.inspector.FrameIndex` (which
:class:`~memgpt_lab.widgets.diff_view.DiffView` uses too).
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from memgpt_lab.widgets._util import esc
from memgpt_lab.widgets.inspector import FrameFilter, FrameIndex

if TYPE_CHECKING:
    from memgpt_lab.recorder import Frame, Recording
    from memgpt_lab.widgets.inspector import TrafficInspector

__all__ = [
    "FORMATS",
    "RecordingFiles",
    "export_target",
    "filter_recording",
    "passing_seqs",
    "write_recording",
]

#: Export formats: label -> the name :func:`write_recording` takes.
FORMATS = {"HAR": "har", "JSON lines": "jsonl"}
_SCOPES = {"filtered view": True, "whole recording": False}
# Suffixes that decide the format when a file is loaded (Recording.load): never write
# another format under them.
_FORMAT_OF_SUFFIX = {".har": "har", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SUFFIX_OF_FORMAT = {"har": ".har", "jsonl": ".jsonl"}


def _suffix_format(path: str) -> str | None:
    return _FORMAT_OF_SUFFIX.get(Path(path).suffix.lower())


def export_target(path: str | Path, format: str) -> tuple[Path, str]:
    """Where and as what to export: the path's suffix decides, else ``format``.

    A ``.har`` path is HAR and a ``.jsonl`` (``.ndjson``) path JSON lines, as
    :meth:`Recording.load <memgpt_lab.recorder.Recording.load>` will read them;
    a path without a suffix gets ``format``'s (``.har``, ``.jsonl``); any other
    suffix is written as ``format`` (``load`` then tells by the content).

    Raises:
        ValueError: ``format`` is not ``"har"`` or ``"jsonl"``, or contradicts the suffix.
    """
    if format not in _SUFFIX_OF_FORMAT:
        raise ValueError(f"format must be 'har' or 'jsonl', not {format!r}")
    target = Path(path).expanduser()
    by_suffix = _suffix_format(str(target))
    if by_suffix is not None:
        if by_suffix != format:
            raise ValueError(
                f"{target.name} is a {target.suffix} file: {by_suffix}, not {format}"
                " (Load would not read it back); change the suffix or the format"
            )
        return target, format
    if not target.suffix:
        target = target.with_name(target.name + _SUFFIX_OF_FORMAT[format])
    return target, format


def passing_seqs(frames: list[Frame], flt: FrameFilter) -> set[int]:
    """The ``seq`` of each frame that passes ``flt``, as the inspector decides it.

    An invalid regex constrains nothing (the inspector shows it as a message).
    """
    index = FrameIndex()
    index.extend(frames)
    try:
        pattern = flt.pattern()
    except re.error:
        pattern, flt = None, replace(flt, text="", regex=False)
    return {frames[i].seq for i in index.query(flt, pattern)}


def filter_recording(recording: Recording, flt: FrameFilter) -> Recording:
    """The frames of ``recording`` that pass ``flt``, as a new Recording (same seq)."""
    frames = list(recording)
    seqs = passing_seqs(frames, flt)
    return recording.filter(predicate=lambda frame: frame.seq in seqs)


def write_recording(recording: Recording, path: str | Path, format: str | None = None) -> str:
    """Write ``recording`` as HAR or JSON lines; returns the format used.

    :meth:`Recording.save <memgpt_lab.recorder.Recording.save>`: ``format`` is
    ``"har"`` or ``"jsonl"``; by default ``.har`` files are HAR and anything else
    JSON lines.
    """
    return recording.save(path, format)


class RecordingFiles(widgets.HBox):
    """A path, a format, a scope, and Load / Export buttons for a TrafficInspector.

    Export writes the filtered view (what the inspector's filters let through)
    or the whole recording; Load reads HAR or JSON lines
    (:meth:`Recording.load <memgpt_lab.recorder.Recording.load>`) and shows it in
    the inspector. Problems are shown next to the buttons, not raised, when a
    button is clicked; the methods raise them.

    The path's suffix and the format agree: typing a ``.har`` or ``.jsonl`` path
    sets the format, choosing a format changes such a suffix, and a path
    without a suffix gets the format's on export (see :func:`export_target`).
    """

    def __init__(self, inspector: TrafficInspector, path: str = "traffic.har") -> None:
        self._inspector = inspector
        self.path = widgets.Text(
            value=path, description="file", layout=widgets.Layout(width="260px")
        )
        self.format = widgets.Dropdown(
            options=list(FORMATS.items()),
            value=_suffix_format(path) or "har",
            layout=widgets.Layout(width="auto"),
        )
        self.path.observe(self._path_changed, "value")
        self.format.observe(self._format_changed, "value")
        self.scope = widgets.Dropdown(
            options=list(_SCOPES.items()), value=True, layout=widgets.Layout(width="auto")
        )
        self.load_button = widgets.Button(
            description="Load", icon="folder-open", layout=widgets.Layout(width="auto")
        )
        self.export_button = widgets.Button(
            description="Export", icon="download", layout=widgets.Layout(width="auto")
        )
        self.status = widgets.HTML()
        for widget, name in (
            (self.path, "path"),
            (self.format, "format"),
            (self.scope, "scope"),
            (self.load_button, "load"),
            (self.export_button, "export"),
            (self.status, "status"),
        ):
            widget.add_class(f"mlab-files-{name}")
        self.load_button.on_click(lambda _b: self._clicked(self.load))
        self.export_button.on_click(lambda _b: self._clicked(self.export))
        super().__init__(
            [self.path, self.format, self.scope, self.load_button, self.export_button, self.status]
        )
        self.add_class("mlab-inspector-files")

    def export(
        self,
        path: str | Path | None = None,
        *,
        format: str | None = None,
        filtered: bool | None = None,
    ) -> int:
        """Write the filtered view (or, ``filtered=False``, the whole recording).

        Args default to the bar's fields, which :func:`export_target` reconciles
        (a path without a suffix gets the format's, shown in the field); a
        ``path`` given without a ``format`` is written as :meth:`Recording.save
        <memgpt_lab.recorder.Recording.save>` does (``.har`` is HAR, anything
        else JSON lines). Returns the frames written.

        Raises:
            ValueError: ``format`` contradicts the path's suffix (``.har``, ``.jsonl``).
        """
        chosen: str | None
        if path is None:
            raw = self.path.value
            target, chosen = export_target(raw, format or _suffix_format(raw) or self.format.value)
            if not Path(raw).suffix:
                self.path.value = raw + target.suffix
        elif format is not None:
            target, chosen = export_target(path, format)
        else:
            target, chosen = Path(path).expanduser(), None
        only_view = self.scope.value if filtered is None else filtered
        recording = self._inspector.recording
        if only_view:
            recording = filter_recording(recording, self._inspector.filter)
        used = write_recording(recording, target, chosen)
        what = "filtered view" if only_view else "whole recording"
        self._say(f"exported {len(recording):,} frames ({what}) to {target} as {used}")
        return len(recording)

    def load(self, path: str | Path | None = None) -> Recording:
        """Read a HAR or JSON lines file and show it in the inspector; returns it."""
        from memgpt_lab.recorder import Recording

        target = Path(path if path is not None else self.path.value).expanduser()
        recording = Recording.load(target)
        self._inspector.show(recording)
        self._say(f"loaded {len(recording):,} frames from {target}")
        return recording

    # The observers only sync two fields (no I/O); each changes the other only when they
    # disagree, so they do not call each other back and forth.
    def _path_changed(self, change: dict[str, Any]) -> None:
        by_suffix = _suffix_format(change["new"])
        if by_suffix is not None and by_suffix != self.format.value:
            self.format.value = by_suffix

    def _format_changed(self, change: dict[str, Any]) -> None:
        text = self.path.value
        by_suffix = _suffix_format(text)
        if by_suffix is not None and by_suffix != change["new"]:
            suffix = Path(text).suffix
            self.path.value = text[: len(text) - len(suffix)] + _SUFFIX_OF_FORMAT[change["new"]]

    def _clicked(self, action: Any) -> None:
        try:
            action()
        except (OSError, ValueError) as exc:  # a missing file, a file that is no recording
            self._say(f"{type(exc).__name__}: {exc}", error=True)

    def _say(self, text: str, *, error: bool = False) -> None:
        style = ' style="color:var(--jp-error-color1,#c62828)"' if error else ""
        kind = "error" if error else "ok"
        self.status.value = f'<span class="mlab-files-{kind}"{style}>{esc(text)}</span>'

    @property
    def message(self) -> str:
        """The last status line, as text."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.status.value))
