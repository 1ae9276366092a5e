"""Comparing two recordings: :class:`RecordingDiff`, rows of same / changed / only-left / only-right.

Both recordings are normalised (:mod:`memgpt_lab.recorder.normalise`), then:

* connections are paired by content: each with an identical one on the other
  side (the first unused, in order), else with the most alike (most frames in
  common), else in order of first appearance; one missing on a side is
  only-left or only-right whole. Placeholders (``<id:N>``...) are numbered
  afresh connection by connection in the order of the pairs, so connections
  that arrived in another order, or after a missing one, still agree;
* each pair's frames are aligned with :class:`difflib.SequenceMatcher` on the
  normalised frames, so an inserted or missing frame shows as one row, not as
  every later frame changed. Where frames differ, those alike (same direction,
  opcode, ``type`` and ``message_type``) are paired, the closest texts first;
  the rest are only-left / only-right (one frame in the place of one other is
  a change).

Pure: no I/O.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import re
from collections import Counter, deque
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
_COMMON = 32  # a frame this many connections hold does not tell connections apart
_PAIR_LIMIT = 4096  # differing frames paired by a table up to left x right cells; beyond, by kind
_Key = tuple[str, str, str]  # direction, opcode, body
#: A numbered placeholder the normaliser put in: ``<id:3>``, ``<uuid:1>``, ``<turn_id:2>``.
_NUMBERED = re.compile(r'<([^<>:\s"\\\x00]+):(\d+)>')
_UNNUMBERED = re.compile(r'(<[^<>:\s"\\\x00]+:)\d+(>)')  # the same, the number left out


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
    a, b = left.parsed(), right.parsed()
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


def _printable(text: str) -> str:
    """``text`` with lone surrogates (which no UTF-8 terminal or file takes) as ``\\udXXX``."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
        return _printable("\n".join(lines))


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
            rows.extend(_block(a[i1:i2], b[j1:j2], connection))
    if tail:
        rows.append(_SameRun(connection, left[n - tail :], right[m - tail :]))
    return rows


def _block(a: list[NormalisedFrame], b: list[NormalisedFrame], connection: str) -> list[DiffRow]:
    """Rows for frames that differ: alike ones paired, the rest only-left / only-right."""
    rows: list[DiffRow] = []
    i = j = 0
    for x, y in [*_alike_pairs(a, b), (len(a), len(b))]:
        if x - i == 1 and y - j == 1:  # one frame in the place of one other: a change
            rows.append(_row(connection, a[i], b[j]))
        else:
            rows.extend(DiffRow("only-left", connection, f, None) for f in a[i:x])
            rows.extend(DiffRow("only-right", connection, None, f) for f in b[j:y])
        if x < len(a):
            # (the junk heuristic may leave equal frames in a block: _row says "same")
            rows.append(_row(connection, a[x], b[y]))
        i, j = x + 1, y + 1
    return rows


def _alike_pairs(a: list[NormalisedFrame], b: list[NormalisedFrame]) -> list[tuple[int, int]]:
    """Indices of the frames of ``a`` and ``b`` to pair, in order.

    Small blocks: the most pairs of frames of one kind, the closest texts among
    them (a table of ``len(a) * len(b)`` cells). Larger ones: the kinds aligned
    as sequences, frames of one kind paired in order.
    """
    if not a or not b:
        return []
    ka, kb = [_kind(f) for f in a], [_kind(f) for f in b]
    n, m = len(a), len(b)
    if ka == kb:  # as many pairs as frames: only one way to have them
        return [(i, i) for i in range(n)]
    if n * m > _PAIR_LIMIT:
        head = 0
        while head < n and head < m and ka[head] == kb[head]:
            head += 1
        tail = 0
        while tail < n - head and tail < m - head and ka[n - 1 - tail] == kb[m - 1 - tail]:
            tail += 1
        matcher = SequenceMatcher(
            None, ka[head : n - tail], kb[head : m - tail], autojunk=max(n, m) > _EXACT_LIMIT
        )
        middle = [
            (head + i + k, head + j + k)
            for i, j, size in matcher.get_matching_blocks()
            for k in range(size)
        ]
        ends = [(n - tail + k, m - tail + k) for k in range(tail)]
        return [(i, i) for i in range(head)] + middle + ends
    # score[i][j]: the best pairing of a[:i] with b[:j]; a pair weighs 1 plus its likeness
    # (< 1), so more pairs win first, then closer texts.
    score = [[0.0] * (m + 1) for _ in range(n + 1)]
    took = [[False] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        row, above, kind, body = score[i], score[i - 1], ka[i - 1], a[i - 1].body
        for j in range(1, m + 1):
            best = above[j] if above[j] >= row[j - 1] else row[j - 1]
            if kb[j - 1] == kind:
                paired = above[j - 1] + 1.0 + _likeness(body, b[j - 1].body)
                if paired > best:
                    best = paired
                    took[i][j] = True
            row[j] = best
    pairs: list[tuple[int, int]] = []
    i, j = n, m
    while i and j:
        if took[i][j]:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif score[i - 1][j] >= score[i][j - 1]:
            i -= 1
        else:
            j -= 1
    pairs.reverse()
    return pairs


def _kind(frame: NormalisedFrame) -> tuple[str, ...]:
    """What makes two frames alike: direction, opcode, and a JSON object's type and message_type."""
    if frame.opcode == "text" and frame.body[:1] == "{":
        value = frame.parsed()
        if isinstance(value, dict):
            kind, mtype = value.get("type"), value.get("message_type")
            return (frame.direction, frame.opcode, _hashable(kind), _hashable(mtype))
    return (frame.direction, frame.opcode)


def _hashable(value: Any) -> str:
    return value if isinstance(value, str) else _compact(value)


def _likeness(x: str, y: str) -> float:
    """How much of two texts is a common beginning and end, 0 to 1 (a cheap similarity)."""
    shortest, longest = min(len(x), len(y)), max(len(x), len(y))
    if not longest:
        return 1.0
    lo, hi = 0, shortest  # slices compare in C: a binary search finds each length quickly
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if x[:mid] == y[:mid]:
            lo = mid
        else:
            hi = mid - 1
    prefix = lo
    lo, hi = 0, shortest - prefix
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if x[len(x) - mid :] == y[len(y) - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return (prefix + lo) / longest


def _loose_keys(frames: list[NormalisedFrame]) -> list[_Key]:
    """The frames' keys without ``seq`` values and placeholder numbers (for pairing connections)."""
    bodies = [f.body for f in frames]
    # split() keeps the captured groups and drops the rest (the numbers), all in C
    loose = "".join(_SEQ.split("".join(_UNNUMBERED.split("\0".join(bodies))))).split("\0")
    if len(loose) != len(bodies):  # a body holds a NUL: one at a time
        loose = ["".join(_SEQ.split("".join(_UNNUMBERED.split(body)))) for body in bodies]
    return [(f.direction, f.opcode, text) for f, text in zip(frames, loose, strict=True)]


def _pair_connections(
    left: dict[str, list[NormalisedFrame]], right: dict[str, list[NormalisedFrame]]
) -> list[tuple[str | None, str | None]]:
    """Pairs of connection names, in the left's order, then the right's unpaired ones.

    Identical connections pair first (placeholder numbers and ``seq`` aside), then
    the most alike (the most frames in common, as a share of both; see
    :func:`_most_alike`), then the rest in order of first appearance.
    """
    lefts, rights = list(left), list(right)
    partner: dict[str, str] = {}
    if len(lefts) > 1 or len(rights) > 1:
        left_keys = {name: _loose_keys(frames) for name, frames in left.items()}
        right_keys = {name: _loose_keys(frames) for name, frames in right.items()}
        waiting: dict[tuple[_Key, ...], deque[str]] = {}
        for name in rights:
            waiting.setdefault(tuple(right_keys[name]), deque()).append(name)
        for name in lefts:
            queue = waiting.get(tuple(left_keys[name]))
            if queue:
                partner[name] = queue.popleft()
        rest_left = [n for n in lefts if n not in partner]
        taken = set(partner.values())
        rest_right = [n for n in rights if n not in taken]
        if rest_left and rest_right and len(rest_left) * len(rest_right) > 1:
            alike = _most_alike(
                [left_keys[n] for n in rest_left], [right_keys[n] for n in rest_right]
            )
            for x, y in alike:
                partner[rest_left[x]] = rest_right[y]
    unpaired = iter([n for n in rights if n not in set(partner.values())])
    for name in lefts:  # the rest in order of first appearance
        if name not in partner:
            found = next(unpaired, None)
            if found is None:
                break
            partner[name] = found
    pairs: list[tuple[str | None, str | None]] = [(n, partner.get(n)) for n in lefts]
    paired = set(partner.values())
    pairs += [(None, n) for n in rights if n not in paired]
    return pairs


def _most_alike(left: list[list[_Key]], right: list[list[_Key]]) -> list[tuple[int, int]]:
    """Pairs of indices of the most alike frame sequences, most alike first; unlike ones unpaired.

    Alike: the share of frames in common, as :meth:`difflib.SequenceMatcher.ratio`
    counts it but in any order. A frame held by more than ``_COMMON`` sequences on
    the right tells nothing apart and is not counted, so with an index of which
    sequences hold which frame this stays about linear in the frames.
    """
    holders: dict[_Key, dict[int, int]] = {}
    for j, frames in enumerate(right):
        for key, count in Counter(frames).items():
            holders.setdefault(key, {})[j] = count
    scored = []
    for i, frames in enumerate(left):
        common: dict[int, int] = {}
        for key, count in Counter(frames).items():
            held = holders.get(key)
            if held is None or len(held) > _COMMON:
                continue
            for j, other in held.items():
                common[j] = common.get(j, 0) + min(count, other)
        for j, shared in common.items():
            scored.append((-2 * shared / (len(frames) + len(right[j])), abs(i - j), i, j))
    scored.sort()
    pairs = []
    used_left: set[int] = set()
    used_right: set[int] = set()
    for _, _, i, j in scored:
        if i not in used_left and j not in used_right:
            pairs.append((i, j))
            used_left.add(i)
            used_right.add(j)
    return pairs


def _renumbered(
    frames_by_connection: dict[str, list[NormalisedFrame]], order: list[str]
) -> dict[str, list[NormalisedFrame]]:
    """The frames with their placeholders numbered by first appearance in ``order``.

    The normaliser numbered them in order of arrival; numbered connection by
    connection in the order of the pairs instead, two sides whose connections
    arrived in another order (or one of which lacks a connection) agree. When
    that changes nothing the frames are returned as they are.
    """
    frames = [f for name in order for f in frames_by_connection[name]]
    bodies = [f.body for f in frames]
    joined = "\0".join(bodies)
    parts = _NUMBERED.split(joined)  # text, kind, number, text, kind, number, ..., text
    kinds, numbers = parts[1::3], parts[2::3]
    counts: dict[str, int] = {}
    new: dict[tuple[str, str], str] = {}
    for found in dict.fromkeys(zip(kinds, numbers, strict=True)):
        counts[found[0]] = counts.get(found[0], 0) + 1
        new[found] = str(counts[found[0]])
    if all(number == new[kind, number] for kind, number in new):
        return frames_by_connection
    renumbered = [f"<{k}:{new[k, n]}>" for k, n in zip(kinds, numbers, strict=True)]
    parts[1::3] = renumbered
    parts[2::3] = [""] * len(renumbered)
    texts = "".join(parts).split("\0")
    if len(texts) != len(bodies):  # a body holds a NUL: one at a time
        texts = [_NUMBERED.sub(lambda m: f"<{m[1]}:{new[m[1], m[2]]}>", body) for body in bodies]
    out: dict[str, list[NormalisedFrame]] = {}
    it = iter(texts)
    for name in order:
        out[name] = [
            f
            if (text := next(it)) == f.body
            else NormalisedFrame(f.connection, f.direction, f.opcode, text, f.frame)
            for f in frames_by_connection[name]
        ]
    return out


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
    pairs = _pair_connections(by_left, by_right)
    if len(by_left) > 1 or len(by_right) > 1:
        both = [(x, y) for x, y in pairs if x is not None and y is not None]
        by_left = _renumbered(
            by_left, [x for x, _ in both] + [x for x, y in pairs if x is not None and y is None]
        )
        by_right = _renumbered(
            by_right, [y for _, y in both] + [y for x, y in pairs if x is None and y is not None]
        )
    rows: list[DiffRow | _SameRun] = []
    names = set(by_left)
    for x, y in pairs:
        if x is not None:
            name = x
        else:
            assert y is not None
            name = _name_of_right(y, names, normaliser.ids)
            names.add(name)
        rows.extend(
            _align(
                by_left.get(x, []) if x is not None else [],
                by_right.get(y, []) if y is not None else [],
                name,
            )
        )
    return RecordingDiff(rows, len(left), len(right))


def _name_of_right(name: str, taken: set[str], numbered: bool) -> str:
    """A right-only connection's name: the next ``cN`` when names are placeholders, else its own."""
    if numbered:
        n = len(taken) + 1
        while f"c{n}" in taken:
            n += 1
        return f"c{n}"
    while name in taken:
        name += "'"
    return name


def diff_recordings(
    left: Recording, right: Recording, normalise: Normaliser | None = None
) -> RecordingDiff:
    """``left.diff(right, normalise)``; see :meth:`Recording.diff`."""
    return diff_frames(left.frames(), right.frames(), normalise)
