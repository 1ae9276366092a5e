"""Normalising a recording: what changes between two runs of the same conversation.

Times, ids and uuids differ from run to run; a :class:`Normaliser` replaces
them with placeholders so that two runs compare equal. Placeholders are
numbered in order of first appearance within one recording (the first agent
id seen is ``<id:1>`` wherever it recurs), so the structure of a conversation,
which id is which, survives normalising. Connections are renamed ``c1``,
``c2``... the same way.

It works on each frame's text with one regular expression, without parsing
JSON, so a 100,000-frame recording normalises in a fraction of a second:

* ``times``: the values of time keys (``time``, ``timestamp``, ``created_at``...)
  become ``"<time>"``, and ISO 8601 date-times anywhere in the text ``<time>``;
* ``ids``: the values of id keys (``id``, anything ending in ``_id``, ``session``,
  ``requested_by``, ``forked_from``, ``current``) become ``"<id:N>"`` (numbers ``"<turn_id:N>"``,
  counted per key);
* ``uuids``: uuids anywhere in the text become ``<uuid:N>``;
* ``seq`` (off by default): the values of ``seq`` become ``"<seq>"``;
* ``rules``: your own, applied after those, in order: ``(pattern, replacement)``
  pairs for :func:`re.sub` or callables ``text -> text``.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeAlias

from memgpt_lab import _json
from memgpt_lab.recorder.frame import Frame

__all__ = ["DEFAULT_ID_KEYS", "DEFAULT_TIME_KEYS", "NormalisedFrame", "Normaliser", "Rule"]

#: Keys whose values are ids (besides any key ending in ``_id``).
DEFAULT_ID_KEYS = ("id", "session", "requested_by", "forked_from", "current")
#: Keys whose values are times.
DEFAULT_TIME_KEYS = ("time", "timestamp", "created_at", "updated_at", "date", "started", "ended")

#: A user rule: ``(pattern, replacement)`` for :func:`re.sub`, or a callable ``text -> text``.
Rule: TypeAlias = "tuple[str | re.Pattern[str], str] | Callable[[str], str]"

_JSON_VALUE = r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null'
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ISO_TIME = (
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
    r"(?: ?[AP]M)?(?:Z|[+-]\d{2}:?\d{2}| ?UTC(?:[+-]\d{4})?)?"
)


_UNPARSED: Any = object()


class NormalisedFrame:
    """One frame as the normaliser sees it: what a diff or a snapshot compares.

    Attributes:
        connection: the connection's placeholder (``c1``, ``c2``...).
        direction: ``"out"`` or ``"in"``.
        opcode: ``"text"``, ``"binary"``, ``"close"``, ``"ping"`` or ``"pong"``.
        body: the normalised text; base64 for binary data; ``"code reason"`` for a close.
        frame: the frame it came from.
    """

    __slots__ = ("connection", "direction", "opcode", "body", "frame", "key", "_parsed")

    def __init__(
        self, connection: str, direction: str, opcode: str, body: str, frame: Frame
    ) -> None:
        self.connection = connection
        self.direction = direction
        self.opcode = opcode
        self.body = body
        self.frame = frame
        self.key = (direction, opcode, body)
        self._parsed: Any = _UNPARSED

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON (or not text)."""
        if self.opcode != "text":
            return None
        try:
            return _json.loads(self.body)
        except ValueError:
            return None

    def parsed(self) -> Any:
        """:meth:`json`, parsed once and kept: the same object each time, not to be changed."""
        if self._parsed is _UNPARSED:
            self._parsed = self.json()
        return self._parsed

    def to_dict(self) -> dict[str, Any]:
        """The readable form snapshots store: connection, direction, then the JSON or the text."""
        out: dict[str, Any] = {"connection": self.connection, "direction": self.direction}
        if self.opcode == "text":
            value = self.json()
            if value is not None or self.body.strip() == "null":
                out["json"] = value
            else:
                out["text"] = self.body
        elif self.opcode == "close":
            code, _, reason = self.body.partition(" ")
            out["close"] = {"code": None if code == "None" else int(code), "reason": reason}
        else:
            out[self.opcode] = self.body  # base64
        return out

    @classmethod
    def frame_from_dict(cls, d: dict[str, Any], seq: int) -> Frame:
        """A frame that normalises back to what :meth:`to_dict` described (for stored snapshots)."""
        cid, direction = str(d["connection"]), str(d["direction"])
        if "json" in d:
            text = json.dumps(d["json"], ensure_ascii=False, separators=(",", ":"))
            return Frame(seq, 0.0, 0.0, direction, "text", text=text, connection_id=cid)
        if "text" in d:
            return Frame(seq, 0.0, 0.0, direction, "text", text=str(d["text"]), connection_id=cid)
        if "close" in d:
            close = d["close"]
            return Frame(
                seq,
                0.0,
                0.0,
                direction,
                "close",
                connection_id=cid,
                close_code=close.get("code"),
                close_reason=close.get("reason", ""),
            )
        for opcode in ("binary", "ping", "pong"):
            if opcode in d:
                data = base64.b64decode(d[opcode])
                return Frame(seq, 0.0, 0.0, direction, opcode, data=data, connection_id=cid)
        raise ValueError(f"not a normalised frame: {d!r}")


class Normaliser:
    """Replaces what changes between runs (times, ids, uuids; ``seq`` if asked) with placeholders.

    Args:
        times: replace times (the values of ``time_keys``, ISO 8601 date-times in text).
        ids: replace the values of id keys (``id_keys`` and any key ending in ``_id``)
            and rename connections ``c1``, ``c2``... in order of first appearance.
        uuids: replace uuids anywhere in the text.
        seq: replace the values of ``seq`` too (the per-connection frame number).
        id_keys: the keys whose values are ids, besides those ending in ``_id``.
        time_keys: the keys whose values are times.
        rules: more replacements, applied after these in order: ``(pattern,
            replacement)`` pairs for :func:`re.sub`, or callables ``text -> text``.

    A normaliser holds no state between calls: each :meth:`normalise` numbers
    its placeholders afresh.
    """

    def __init__(
        self,
        *,
        times: bool = True,
        ids: bool = True,
        uuids: bool = True,
        seq: bool = False,
        id_keys: Iterable[str] = DEFAULT_ID_KEYS,
        time_keys: Iterable[str] = DEFAULT_TIME_KEYS,
        rules: Sequence[Rule] = (),
    ) -> None:
        self.times = times
        self.ids = ids
        self.uuids = uuids
        self.seq = seq
        self.id_keys = tuple(id_keys)
        self.time_keys = tuple(time_keys)
        self.rules = tuple(rules)
        self._rules = [_compile_rule(rule) for rule in self.rules]
        keys = []
        if ids:
            keys.append("|".join(re.escape(k) for k in self.id_keys) + r"|[A-Za-z0-9_]*_id")
        if times:
            keys.append("|".join(re.escape(k) for k in self.time_keys))
        if seq:
            keys.append("seq")
        keys = [k for k in keys if k]
        # Two passes, each a pattern whose first character the regex engine can scan for
        # quickly: one alternation of all three would try every position (five times slower).
        self._keys = (
            re.compile(
                rf'(?P<lead>[{{,]\s*"(?P<key>{"|".join(keys)})"\s*:\s*)(?P<value>{_JSON_VALUE})'
            )
            if keys
            else None
        )
        # uuids and ISO date-times both hold a "-": texts without one skip this pass.
        dashed = []
        if uuids:
            dashed.append(rf"(?P<uuid>\b{_UUID}\b)")
        if times:
            dashed.append(rf"(?P<time>\b{_ISO_TIME})")
        self._dashed = re.compile("|".join(dashed)) if dashed else None
        self._id_keys = frozenset(self.id_keys)
        self._time_keys = frozenset(self.time_keys)

    def __repr__(self) -> str:
        return (
            f"Normaliser(times={self.times}, ids={self.ids}, uuids={self.uuids}, seq={self.seq}, "
            f"rules={len(self.rules)})"
        )

    def with_rules(self, *rules: Rule) -> Normaliser:
        """A copy with more rules, applied after this one's."""
        return Normaliser(
            times=self.times,
            ids=self.ids,
            uuids=self.uuids,
            seq=self.seq,
            id_keys=self.id_keys,
            time_keys=self.time_keys,
            rules=(*self.rules, *rules),
        )

    def normalise(self, frames: Iterable[Frame]) -> list[NormalisedFrame]:
        """Normalise frames in order, numbering placeholders by first appearance among them."""
        placeholders: dict[str, str] = {}
        counts: dict[str, int] = {}
        connections: dict[str, str] = {}
        # A replacement depends only on the matched text once its placeholder exists,
        # so matches are memoised: the same "agent_id":"..." recurs on every frame.
        memo: dict[str, str] = {}
        time_keys = self._time_keys
        keys = self._keys
        dashed = self._dashed
        rules = self._rules
        ids = self.ids

        def placeholder(raw: str, kind: str) -> str:
            found = placeholders.get(raw)
            if found is None:
                number = counts[kind] = counts.get(kind, 0) + 1
                found = placeholders[raw] = f"<{kind}:{number}>"
            return found

        def replacement(lead: str, key: str, value: str) -> str:
            if value == "null":
                return lead + value
            if key == "seq":
                shown = "<seq>"
            elif key in time_keys:
                shown = "<time>"
            elif value.startswith('"'):
                shown = placeholder(value[1:-1], "id")
            else:  # a number: counted per key (turn 1 and request 1 are not one thing)
                shown = placeholder(f"{key}\0{value}", key)
            return f'{lead}"{shown}"'

        def replace_key(match: re.Match[str]) -> str:
            text = match.group(0)
            found = memo.get(text)
            if found is None:
                found = memo[text] = replacement(*match.group("lead", "key", "value"))
            return found

        def replace_dashed(match: re.Match[str]) -> str:
            if match.group("uuid") is not None:
                return placeholder(match.group(0).lower(), "uuid")
            return "<time>"

        frames = list(frames)
        texts = [f._payload for f in frames if type(f._payload) is str]
        bodies = iter(self._bulk_keys(texts, replacement, memo) if keys is not None else texts)
        out: list[NormalisedFrame] = []
        append = out.append
        for frame in frames:
            cid = frame.connection_id
            if ids:
                name = connections.get(cid)
                if name is None:
                    name = connections[cid] = f"c{len(connections) + 1}"
            else:
                name = cid
            payload = frame._payload
            if type(payload) is str:
                body = next(bodies)
                if body is None:  # the bulk pass could not tell this frame apart
                    body = keys.sub(replace_key, payload) if keys is not None else payload
                if dashed is not None and "-" in body:
                    body = dashed.sub(replace_dashed, body)
                for rule in rules:
                    body = rule(body)
            elif payload is None:
                body = f"{frame.close_code} {frame.close_reason or ''}"
            else:
                body = base64.b64encode(payload).decode("ascii")  # type: ignore[arg-type]
            append(NormalisedFrame(name, frame.direction, frame.opcode, body, frame))
        return out

    def _bulk_keys(
        self, texts: list[str], replacement: Callable[[str, str, str], str], memo: dict[str, str]
    ) -> list[str | None]:
        """The key pass over every text at once: one scan, no Python call per match.

        The texts are joined with NUL (never raw in JSON), split by the pattern,
        the matched values replaced in a list, and the result split back. When a
        text holds a NUL or a match would cross two texts, every text is
        answered None and normalised one by one instead.
        """
        assert self._keys is not None
        if not texts:
            return []
        joined = "\0".join(texts)
        if joined.count("\0") != len(texts) - 1:
            return [None] * len(texts)
        parts = self._keys.split(joined)  # pre, lead, key, value, pre, lead, key, value, ..., pre
        leads, names, values = parts[1::4], parts[2::4], parts[3::4]
        if "\0" in "".join(leads) or "\0" in "".join(values):  # a match across two texts
            return [None] * len(texts)  # (checked before any placeholder is handed out)
        get = memo.get
        replaced = []
        for lead, name, value in zip(leads, names, values, strict=True):
            text = lead + value
            found = get(text)
            if found is None:
                found = memo[text] = replacement(lead, name, value)
            replaced.append(found)
        parts[1::4] = replaced
        empty = [""] * len(replaced)
        parts[2::4] = empty
        parts[3::4] = empty
        out: list[str | None] = list("".join(parts).split("\0"))
        if len(out) != len(texts):
            return [None] * len(texts)
        return out

    def to_data(self, frames: Iterable[Frame]) -> list[dict[str, Any]]:
        """Normalised frames as readable JSON-able dicts (what a snapshot stores)."""
        return [frame.to_dict() for frame in self.normalise(frames)]


def _compile_rule(rule: Rule) -> Callable[[str], str]:
    if callable(rule):
        return rule
    if isinstance(rule, tuple) and len(rule) == 2 and isinstance(rule[1], str):
        pattern = re.compile(rule[0]) if isinstance(rule[0], str) else rule[0]
        replacement = rule[1]
        return lambda text: pattern.sub(replacement, text)
    raise TypeError(f"a rule is a (pattern, replacement) pair or a callable(text), not {rule!r}")
