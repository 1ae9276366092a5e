"""One captured WebSocket frame: :class:`Frame`. Pure: no I/O, no event loop."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, TypeAlias

from memgpt_lab import _json

__all__ = ["DIRECTIONS", "OPCODES", "Frame"]

#: ``"out"``: server/agent side to client; ``"in"``: client to server.
DIRECTIONS = ("out", "in")
#: Data frames (text, binary) and control frames (close, ping, pong).
OPCODES = ("text", "binary", "close", "ping", "pong")

#: A frame's control slot: None (text, binary), (code, reason) (close), "ping" or "pong".
Control: TypeAlias = tuple[int | None, str | None] | str | None

_UNSET: Any = object()  # Frame.json not parsed yet (None is a valid cached result)


class Frame:
    """One captured WebSocket frame. Built by a recording; immutable by convention.

    A frame holds eight slots (about 100 bytes besides its payload): the opcode
    follows from the payload (str: text, bytes: binary, neither: close) and one
    slot for control frames (close code and reason, or ``"ping"``/``"pong"``),
    since those are rare.

    Attributes:
        seq: 1-based position in the recording that captured it.
        time: monotonic seconds, from the recording's clock.
        wall_time: epoch seconds, from the recording's wall clock.
        direction: ``"out"`` (server to client) or ``"in"`` (client to server).
        opcode: ``"text"``, ``"binary"`` or ``"close"``.
        text: the text of a text frame, else None.
        data: the payload of a binary, ping or pong frame, else None.
        connection_id: which connection carried it (``"c1"``...), or ``""``.
        close_code: the code of a close frame, else None.
        close_reason: the reason of a close frame, else None.

    Raises:
        ValueError: the opcode does not fit the payload (a text frame without
            text, a binary frame without data, a close frame with a payload).
    """

    __slots__ = (
        "seq",
        "time",
        "wall_time",
        "direction",
        "connection_id",
        "_payload",
        "_control",
        "_json",
    )

    seq: int
    time: float
    wall_time: float
    direction: str
    connection_id: str

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
        self.connection_id = connection_id
        if opcode == "text" and text is not None and data is None:
            self._payload: str | bytes | None = text
            self._control: Control = None
        elif opcode == "binary" and data is not None and text is None:
            self._payload = data if type(data) is bytes else bytes(data)
            self._control = None
        elif opcode == "close" and text is None and data is None:
            self._payload = None
            self._control = (close_code, close_reason)
        elif (opcode == "ping" or opcode == "pong") and text is None:
            self._payload = b"" if data is None else bytes(data)
            self._control = opcode
        else:
            raise ValueError(
                f"a {opcode!r} frame cannot hold text={_kind(text)} and data={_kind(data)}"
                if opcode in OPCODES
                else f"opcode must be one of {', '.join(OPCODES)}, not {opcode!r}"
            )
        self._json = _UNSET

    @classmethod
    def _make(
        cls,
        seq: int,
        time: float,
        wall_time: float,
        direction: str,
        connection_id: str,
        payload: str | bytes | None,
        control: Control,
    ) -> Frame:
        """Build without checks, for recordings that already checked (the hot path)."""
        frame = cls.__new__(cls)
        frame.seq = seq
        frame.time = time
        frame.wall_time = wall_time
        frame.direction = direction
        frame.connection_id = connection_id
        frame._payload = payload
        frame._control = control
        frame._json = _UNSET
        return frame

    @property
    def opcode(self) -> str:
        """``"text"``, ``"binary"`` or ``"close"``."""
        if type(self._payload) is str:
            return "text"
        control = self._control
        if control is None:
            return "binary"
        return "close" if type(control) is tuple else control  # type: ignore[return-value]

    @property
    def text(self) -> str | None:
        """The text of a text frame, else None."""
        payload = self._payload
        return payload if type(payload) is str else None

    @property
    def data(self) -> bytes | None:
        """The payload of a binary, ping or pong frame, else None."""
        payload = self._payload
        return payload if type(payload) is bytes else None

    @property
    def close_code(self) -> int | None:
        """The code of a close frame, else None."""
        control = self._control
        return control[0] if type(control) is tuple else None

    @property
    def close_reason(self) -> str | None:
        """The reason of a close frame, else None."""
        control = self._control
        return control[1] if type(control) is tuple else None

    @property
    def payload(self) -> str | bytes | None:
        """The text or the binary data, whichever the frame has (None for close)."""
        return self._payload

    @property
    def json(self) -> Any:
        """The parsed JSON of a text frame, or None; parsed on first use, then cached."""
        value = self._json
        if value is _UNSET:
            value = None
            text = self._payload
            if type(text) is str:
                try:
                    value = _json.loads(text)
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
        payload = self._payload
        if type(payload) is str:
            return len(payload) if payload.isascii() else len(payload.encode("utf-8"))
        if payload is not None:
            return len(payload)
        control = self._control
        if type(control) is tuple and control[0] is not None:
            return 2 + len((control[1] or "").encode("utf-8"))
        return 0

    def preview(self, width: int = 60) -> str:
        """One line showing the payload, cut to ``width`` characters."""
        payload = self._payload
        if payload is None:
            code = self.close_code
            shown = f"close {code if code is not None else ''}"
            if self.close_reason:
                shown += f" {self.close_reason}"
        elif isinstance(payload, str):
            shown = payload.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            shown = shown.replace("\t", "\\t")
        else:
            data = payload
            shown = f"<{len(data)} bytes> {data[: max(width // 2, 1)].hex()}"
            if self._control is not None:
                shown = f"{self._control} {shown}"
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
        payload = self._payload
        if type(payload) is str:
            out["text"] = payload
        elif type(payload) is bytes:  # binary, ping, pong
            out["data_b64"] = base64.b64encode(payload).decode("ascii")
        else:
            out["close_code"] = self.close_code
            out["close_reason"] = self.close_reason
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Frame:
        """The frame :meth:`to_dict` described.

        Raises:
            KeyError: a required field is missing.
            ValueError: a field has the wrong kind of value.
        """
        data = d.get("data_b64")
        return cls(
            int(d["seq"]),
            float(d["time"]),
            float(d.get("wall_time", 0.0)),
            d["direction"],
            d["opcode"],
            text=d.get("text"),
            data=base64.b64decode(data, validate=True) if data is not None else None,
            connection_id=d.get("connection_id", ""),
            close_code=d.get("close_code"),
            close_reason=d.get("close_reason"),
        )

    def replace(self, **changes: Any) -> Frame:
        """A copy with some fields changed (``seq``, ``time``, ``connection_id``...)."""
        fields: dict[str, Any] = {
            "seq": self.seq,
            "time": self.time,
            "wall_time": self.wall_time,
            "direction": self.direction,
            "opcode": self.opcode,
            "text": self.text,
            "data": self.data,
            "connection_id": self.connection_id,
            "close_code": self.close_code,
            "close_reason": self.close_reason,
        }
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Frame has no field {', '.join(sorted(unknown))}")
        fields.update(changes)
        return Frame(**fields)

    def __repr__(self) -> str:
        conn = f" {self.connection_id}" if self.connection_id else ""
        return f"<Frame #{self.seq} {self.direction}{conn} {self.opcode} {self.preview(50)!r}>"


def _kind(value: object) -> str:
    return "None" if value is None else type(value).__name__
