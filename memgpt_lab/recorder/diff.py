"""Comparing two recordings: :class:`RecordingDiff`, rows of same / changed / only-left / only-right.

Both recordings are normalised (:mod:`memgpt_lab.recorder.normalise`), their
connections paired in order of first appearance, and each pair's frames
aligned with :class:`difflib.SequenceMatcher` on the normalised frames, so an
inserted or missing frame shows as one row, not as every later frame changed.
Pure: no I/O.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import re
from collections.abc import Iterator, Sequence
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any

from memgpt_lab.recorder.frame import Frame
from memgpt_lab.recorder.normalise import NormalisedFrame, Normaliser

if TYPE_CHECKING:
    from memgpt_lab.recorder.recording import Recording

__all__ = ["STATUSES", "DiffRow", "RecordingDiff", "diff_frames", "diff_recordings"]

#: A row's status.
STATUSES = ("same", "changed", "only-left", "only-right")

_CONTEXT = 2  # same rows shown around a difference in str()
_EXACT_LIMIT = 20_000  # middles longer than this use difflib's autojunk heuristic
_SEQ = re.compile(r'([{,]\s*"seq"\s*:\s*)-?\d+')


def _loose(frame: NormalisedFrame) -> tuple[str, str, str]:
    """The key without ``seq``: a frame inserted renumbers every later one, yet they align."""
    if '"seq"' not in frame.body:
        return frame.key
    return (frame.direction, frame.opcode, _SEQ.sub(r'\1"<seq>"', frame.body))


def _row(connection: str, x: NormalisedFrame, y: NormalisedFrame) -> DiffRow:
    if x.key == y.key:
        return DiffRow("same", connection, x, y)
    return DiffRow("changed", connection, x, y, _changed_fields(x, y))


class DiffRow:
    """One aligned pair of frames.

    Attributes:
        status: ``"same"``, ``"changed"``, ``"only-left"`` or ``"only-right"``.
        connection: the connection's normalised name (``c1``...).
        left: the left frame (None for ``"only-right"``).
        right: the right frame (None for ``"only-left"``).
        fields: for ``"changed"``, the fields that differ: the frame's JSON keys
            (``"message"``, ``"seq"``...), or ``"direction"``, ``"opcode"``,
            ``"text"``, ``"data"``, ``"close"``; empty otherwise.
        left_normalised, right_normalised: the normalised frames compared.
    """

    __slots__ = ("status", "connection", "left_normalised", "right_normalised", "fields")

    def __init__(
        self,
        status: str,
        connection: str,
        left: NormalisedFrame | None,
        right: NormalisedFrame | None,
        fields: tuple[str, ...] = (),
    ) -> None:
        self.status = status
        self.connection = connection
        self.left_normalised = left
        self.right_normalised = right
        self.fields = fields

    @property
    def left(self) -> Frame | None:
        return None if self.left_normalised is None else self.left_normalised.frame

    @property
    def right(self) -> Frame | None:
        return None if self.right_normalised is None else self.right_normalised.frame

    def __repr__(self) -> str:
        seqs = f"{_seq(self.left)}/{_seq(self.right)}"
        fields = f" {','.join(self.fields)}" if self.fields else ""
        return f"<DiffRow {self.status} {self.connection} {seqs}{fields}>"


def _seq(frame: Frame | None) -> str:
    return "-" if frame is None else str(frame.seq)


def _changed_fields(left: NormalisedFrame, right: NormalisedFrame) -> tuple[str, ...]:
    fields = [
        name for name in ("direction", "opcode") if getattr(left, name) != getattr(right, name)
    ]
    if left.opcode != right.opcode:
        return tuple(fields)
    a, b = left.json(), right.json()
    if isinstance(a, dict) and isinstance(b, dict):
        keys = list(a) + [k for k in b if k not in a]
        fields += [k for k in keys if k not in a or k not in b or a[k] != b[k]]
    elif left.body != right.body:
        fields.append({"text": "text", "close": "close"}.get(left.opcode, "data"))
    return tuple(fields)


class _SameRun:
    """Frames that agree, pair by pair: rows made only when someone looks."""

    __slots__ = ("connection", "left", "right")

    def __init__(
        self, connection: str, left: list[NormalisedFrame], right: list[NormalisedFrame]
    ) -> None:
        self.connection = connection
        self.left = left
        self.right = right

    def rows(self) -> Iterator[DiffRow]:
        connection = self.connection
        for x, y in zip(self.left, self.right, strict=True):
            yield DiffRow("same", connection, x, y)


class RecordingDiff:
    """Two recordings aligned: falsy when they agree; ``str()`` shows the differences.

    Attributes:
        rows: every aligned pair, connection by connection, in order (same rows
            included; made on first use).
        left_count, right_count: how many frames each side had.
    """

    def __init__(
        self, parts: Sequence[DiffRow | _SameRun], left_count: int, right_count: int
    ) -> None:
        self._parts = parts
        self._rows: list[DiffRow] | None = None
        self.left_count = left_count
        self.right_count = right_count

    @property
    def rows(self) -> list[DiffRow]:
        if self._rows is None:
            rows: list[DiffRow] = []
            for part in self._parts:
                if isinstance(part, _SameRun):
                    rows.extend(part.rows())
                else:
                    rows.append(part)
            self._rows = rows
        return self._rows

    def __bool__(self) -> bool:
        return any(isinstance(p, DiffRow) and p.status != "same" for p in self._parts)

    def __iter__(self) -> Iterator[DiffRow]:
        return iter(self.rows)

    def _with(self, status: str) -> list[DiffRow]:
        return [row for row in self.rows if row.status == status]

    @property
    def same(self) -> list[DiffRow]:
        return self._with("same")

    @property
    def changed(self) -> list[DiffRow]:
        return self._with("changed")

    @property
    def only_left(self) -> list[DiffRow]:
        return self._with("only-left")

    @property
    def only_right(self) -> list[DiffRow]:
        return self._with("only-right")

    def counts(self) -> dict[str, int]:
        """How many rows of each status."""
        counts = dict.fromkeys(STATUSES, 0)
        for part in self._parts:
            if isinstance(part, _SameRun):
                counts["same"] += len(part.left)
            else:
                counts[part.status] += 1
        return counts

    def summary(self) -> str:
        """One line: ``2 changed, 1 only-left, 0 only-right, 40 same``."""
        c = self.counts()
        return (
            f"{c['changed']} changed, {c['only-left']} only-left, "
            f"{c['only-right']} only-right, {c['same']} same"
        )

    def __repr__(self) -> str:
        return f"<RecordingDiff {self.summary()}>"

    def __str__(self) -> str:
        return self.format()

    def format(
        self,
        *,
        context: int = _CONTEXT,
        width: int = 100,
        labels: tuple[str, str] = ("left", "right"),
        compact: bool = False,
    ) -> str:
        """A unified view: ``-`` left, ``+`` right, ``~`` changed fields, a few same rows around.

        Changed rows show both sides' message type and text (or the fields that
        differ); a run of rows that differ only in ``seq`` is one line. Connection
        headers (``@@ c1 @@``) appear when there are several. ``compact`` puts
        the header on one line (for pytest, which cuts long explanations).
        """
        if compact:
            lines = [
                f"-{labels[0]} ({self.left_count} frames) +{labels[1]} "
                f"({self.right_count} frames): {self.summary()}"
            ]
        else:
            lines = [
                f"--- {labels[0]}: {self.left_count} frames",
                f"+++ {labels[1]}: {self.right_count} frames",
                self.summary(),
            ]
        if not self:
            lines.append("(the recordings agree)")
            return "\n".join(lines)
        # Long runs of agreement keep only the rows that can be context; the rest is a count.
        rows: list[DiffRow | int] = []
        for part in self._parts:
            if isinstance(part, _SameRun) and len(part.left) > 2 * context + 1:
                run = list(itertools.islice(part.rows(), context))
                rows += run
                rows.append(len(part.left) - 2 * context)
                if context:
                    tail = _SameRun(part.connection, part.left[-context:], part.right[-context:])
                    rows += tail.rows()
            elif isinstance(part, _SameRun):
                rows += part.rows()
            else:
                rows.append(part)
        show: set[int] = set()
        for i, row in enumerate(rows):
            if isinstance(row, DiffRow) and row.status != "same":
                show.update(range(max(i - context, 0), min(i + context + 1, len(rows))))
        several = len({p.connection for p in self._parts}) > 1
        connection = None
        hidden = 0
        i = 0
        while i < len(rows):
            row = rows[i]
            if isinstance(row, int) or i not in show:
                hidden += row if isinstance(row, int) else 1
                i += 1
                continue
            if hidden:
                lines.append(f"  ... {hidden} same frame{'s' if hidden != 1 else ''}")
                hidden = 0
            if row.connection != connection:
                connection = row.connection
                if several:
                    lines.append(f"@@ {connection} @@")
            if row.status == "changed" and row.fields == ("seq",):
                j = i
                while j < len(rows):
                    after = rows[j]
                    if not (
                        isinstance(after, DiffRow)
                        and after.status == "changed"
                        and after.fields == ("seq",)
                        and after.connection == connection
                    ):
                        break
                    j += 1
                first = row
                lines.append(
                    f"~ {j - i} frame{'s' if j - i != 1 else ''} differ only in seq "
                    f"(left #{_seq(first.left)} is right #{_seq(first.right)})"
                )
                i = j
                continue
            if row.status == "same":
                assert row.left_normalised is not None
                lines.append("  " + _line(row.left_normalised, (), width))
            elif row.status == "only-left":
                assert row.left_normalised is not None
                lines.append("- " + _line(row.left_normalised, (), width))
            elif row.status == "only-right":
                assert row.right_normalised is not None
                lines.append("+ " + _line(row.right_normalised, (), width))
            else:
                minus, plus = _changed_lines(row, width)
                lines.append("- " + minus)
                lines.append("+ " + plus)
                lines.append(f"~   changed: {', '.join(row.fields)}")
            i += 1
        if hidden:
            lines.append(f"  ... {hidden} same frame{'s' if hidden != 1 else ''}")
        return "\n".join(lines)


def _line(frame: NormalisedFrame, fields: Sequence[str], width: int, skip: int = 0) -> str:
    """``#seq dir type message_type: shown`` for one normalised frame.

    ``skip`` characters of the shown text are left out (as ``…``), so that a
    difference far along a long text is in view.
    """
    head, text = _parts(frame, fields)
    if skip:
        text = "…" + text[skip:]
    line = f"{head}: {text}" if text else head
    return line if len(line) <= width else line[: width - 1] + "…"


def _changed_lines(row: DiffRow, width: int) -> tuple[str, str]:
    """The ``-`` and ``+`` lines of a changed row, both showing where they first differ."""
    left, right = row.left_normalised, row.right_normalised
    assert left is not None and right is not None
    (head, a), (_, b) = _parts(left, row.fields), _parts(right, row.fields)
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    room = width - len(head) - 4
    skip = common - room // 3 if common > room - 10 else 0
    return _line(left, row.fields, width, max(skip, 0)), _line(
        right, row.fields, width, max(skip, 0)
    )


def _parts(frame: NormalisedFrame, fields: Sequence[str]) -> tuple[str, str]:
    value = frame.json()
    head = f"#{frame.frame.seq:<5} {frame.direction:<3} "
    if isinstance(value, dict):
        kind = value.get("type", "")
        mtype = value.get("message_type")
        head += f"{kind}" + (f" {mtype}" if mtype else "")
        shown = []
        message = value.get("message")
        if message is not None and (not fields or "message" in fields or len(fields) == 0):
            shown.append(message if isinstance(message, str) else _compact(message))
        extra = [k for k in fields if k not in ("message", "type", "message_type")]
        if not fields and message is None:
            extra = [k for k in value if k not in ("type", "message_type", "seq")]
        shown += [f"{k}={_compact(value.get(k))}" for k in extra]
        text = " | ".join(str(s) for s in shown)
    elif frame.opcode == "text":
        head += "(text)"
        text = frame.body
    else:
        head += f"({frame.opcode})"
        text = frame.body
    return head, text.replace("\n", "\\n")


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _align(
    left: list[NormalisedFrame], right: list[NormalisedFrame], connection: str
) -> list[DiffRow | _SameRun]:
    rows: list[DiffRow | _SameRun] = []
    n, m = len(left), len(right)
    # Common head and tail first: linear, and exact whatever difflib's heuristics do.
    head = 0
    while head < n and head < m and left[head].key == right[head].key:
        head += 1
    tail = 0
    while tail < n - head and tail < m - head and left[n - 1 - tail].key == right[m - 1 - tail].key:
        tail += 1
    if head:
        rows.append(_SameRun(connection, left[:head], right[:head]))
    a, b = left[head : n - tail], right[head : m - tail]
    if a or b:
        matcher = SequenceMatcher(
            None,
            [_loose(f) for f in a],
            [_loose(f) for f in b],
            autojunk=max(len(a), len(b)) > _EXACT_LIMIT,
        )
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":  # equal but for seq, perhaps
                rows.extend(
                    _row(connection, a[i], b[j])
                    for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                )
                continue
            paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
            # (the junk heuristic may leave equal frames in a block: _row says "same")
            rows.extend(_row(connection, a[i1 + k], b[j1 + k]) for k in range(paired))
            rows.extend(
                DiffRow("only-left", connection, a[i], None) for i in range(i1 + paired, i2)
            )
            rows.extend(
                DiffRow("only-right", connection, None, b[j]) for j in range(j1 + paired, j2)
            )
    if tail:
        rows.append(_SameRun(connection, left[n - tail :], right[m - tail :]))
    return rows


def diff_frames(
    left: Sequence[Frame], right: Sequence[Frame], normalise: Normaliser | None = None
) -> RecordingDiff:
    """Align two frame sequences; see :meth:`Recording.diff`."""
    normaliser = normalise if normalise is not None else Normaliser()
    with _no_gc():
        return _diff(normaliser, left, right)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: a diff allocates hundreds of thousands of small
    acyclic objects, and every collection it would trigger walks all live objects."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _diff(normaliser: Normaliser, left: Sequence[Frame], right: Sequence[Frame]) -> RecordingDiff:
    a, b = normaliser.normalise(left), normaliser.normalise(right)
    by_left: dict[str, list[NormalisedFrame]] = {}
    for frame in a:
        by_left.setdefault(frame.connection, []).append(frame)
    by_right: dict[str, list[NormalisedFrame]] = {}
    for frame in b:
        by_right.setdefault(frame.connection, []).append(frame)
    rows: list[DiffRow | _SameRun] = []
    for connection in [*by_left, *(c for c in by_right if c not in by_left)]:
        rows.extend(_align(by_left.get(connection, []), by_right.get(connection, []), connection))
    return RecordingDiff(rows, len(left), len(right))


def diff_recordings(
    left: Recording, right: Recording, normalise: Normaliser | None = None
) -> RecordingDiff:
    """``left.diff(right, normalise)``; see :meth:`Recording.diff`."""
    return diff_frames(left.frames(), right.frames(), normalise)
