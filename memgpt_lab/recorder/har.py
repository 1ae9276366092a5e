"""HAR 1.2 with WebSocket messages, as Chrome DevTools writes them, both ways.

One entry per connection: ``_resourceType: "websocket"``, the handshake as
``request`` (GET, the ``ws://`` URL, headers) and ``response`` (101), and the
frames as ``_webSocketMessages``: ``{"type": "send" | "receive", "time": epoch
seconds, "opcode": 1 | 2 | 8 | 9 | 10, "data": ...}``; binary, ping and pong
data are base64, text is the text, a close frame's data is its reason.

Direction, from the recorder's point of view: a HAR is written by the client
(the browser), so ``"send"`` is what the client sent, the recorder's ``"in"``,
and ``"receive"`` is what the server sent, the recorder's ``"out"``.

This project adds underscore fields (HAR's way to extend) so its own files
read back exactly: ``_connectionId`` and ``_handshakeRecorded`` on an entry,
``_seq`` and ``_time`` (monotonic seconds) on a message, ``_closeCode`` on a
close message, and ``_closeReason: null`` on a close message with no reason at
all (its ``data`` is then ``""``, as for an empty reason). Files from Chrome DevTools and Playwright's ``record_har``
lack them: connections are then numbered ``c1``, ``c2``... in entry order and
frames are ordered by time. Playwright writes message times in epoch
milliseconds; times too large to be seconds are read as such. HTTP entries
are skipped and counted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import parse_qsl, urlsplit

from memgpt_lab import _json
from memgpt_lab.recorder.formats import RecordingFormatError, opened
from memgpt_lab.recorder.frame import Frame

__all__ = ["HarContents", "read_har", "write_har"]

_OPCODE_NUMBERS = {"text": 1, "binary": 2, "close": 8, "ping": 9, "pong": 10}
_OPCODE_NAMES = {number: name for name, number in _OPCODE_NUMBERS.items()}
_TYPE = {"in": "send", "out": "receive"}
_DIRECTION = {"send": "in", "receive": "out"}
#: Message times above this are epoch milliseconds (in seconds it is the year 5138).
_MILLISECONDS = 1e11
#: What a connection's handshake looks like when nothing recorded it.
_DEFAULT_URL = "ws://localhost/"


@dataclass
class HarContents:
    """What :func:`read_har` found: the frames, each connection's handshake, what it skipped."""

    frames: list[Frame]
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: int = 0  # entries that are not WebSocket connections (HTTP requests)


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    return None


def _status(value: Any) -> int:
    """An HTTP status as an int; 101 (the handshake's) when there is none to read."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return 101


def _headers(pairs: Iterable[Any] | None) -> list[dict[str, str]]:
    return [{"name": str(name), "value": str(value)} for name, value in (pairs or ())]


def _message(frame: Frame) -> str:
    """One ``_webSocketMessages`` item as JSON text."""
    payload = frame.payload
    opcode = frame.opcode
    extra = ""
    if type(payload) is str:
        data = payload
    elif isinstance(payload, bytes):
        data = base64.b64encode(payload).decode("ascii")
    else:
        data = frame.close_reason or ""
        if frame.close_code is not None:
            extra = f',"_closeCode":{int(frame.close_code)}'
        if frame.close_reason is None:  # no reason at all, not an empty one
            extra += ',"_closeReason":null'
    return (
        f'{{"type":"{_TYPE.get(frame.direction, frame.direction)}","time":{float(frame.wall_time)!r},'
        f'"opcode":{_OPCODE_NUMBERS[opcode]},"data":{json.dumps(data, ensure_ascii=False)}'
        f',"_seq":{frame.seq},"_time":{float(frame.time)!r}{extra}}}'
    )


def _entry_head(cid: str, info: Mapping[str, Any] | None, frames: list[Frame]) -> dict[str, Any]:
    recorded = info is not None
    info = info or {}
    url = str(info.get("url") or _DEFAULT_URL)
    started = info.get("started")
    if started is None:
        started = frames[0].wall_time if frames else 0.0
    status = _status(info.get("status"))
    wait = info.get("handshake_ms")
    wait = float(wait) if isinstance(wait, (int, float)) and wait >= 0 else 0.0
    status_text = info.get("status_text")
    if not isinstance(status_text, str):
        status_text = "Switching Protocols" if status == 101 else ""
    query = [
        {"name": k, "value": v} for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)
    ]
    response_headers = _headers(info.get("response_headers"))
    entry: dict[str, Any] = {
        "startedDateTime": _iso(float(started)),
        "time": wait,
        "request": {
            "method": str(info.get("method", "GET")),
            "url": url,
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": _headers(info.get("request_headers")),
            "queryString": query,
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {
            "status": status,
            "statusText": status_text,
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": response_headers,
            "content": {"size": 0, "mimeType": "x-unknown"},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": 0,
        },
        "cache": {},
        "timings": {
            "blocked": -1,
            "dns": -1,
            "connect": -1,
            "ssl": -1,
            "send": 0,
            "wait": wait,
            "receive": 0,
        },
        "_resourceType": "websocket",
        "_connectionId": cid,
        "_handshakeRecorded": recorded,
    }
    if info.get("subprotocol"):
        entry["_subprotocol"] = str(info["subprotocol"])
    return entry


def write_har(
    frames: Iterable[Frame],
    connections: Mapping[str, Mapping[str, Any]],
    path_or_file: str | os.PathLike[str] | IO[str],
    *,
    creator_version: str = "0",
) -> int:
    """Write HAR 1.2, one entry per connection, in the order they started; returns the entries.

    A connection started at its handshake's ``started`` time, else at its first
    frame; one with neither comes last.

    A connection with handshake information (``connections[cid]``: ``url``,
    ``method``, ``status``, ``status_text``, ``request_headers``,
    ``response_headers`` as lists of pairs, ``subprotocol``, ``started`` in epoch
    seconds, ``handshake_ms``) but no frames, such as a refused handshake, still
    gets its entry. Messages are written as they are built, so memory stays
    flat however many frames there are.
    """
    by_connection: dict[str, list[Frame]] = {}
    for frame in frames:
        by_connection.setdefault(frame.connection_id, []).append(frame)
    for cid in connections:
        by_connection.setdefault(cid, [])

    def started(item: tuple[str, list[Frame]]) -> float:
        cid, conn_frames = item
        when = (connections.get(cid) or {}).get("started")
        if isinstance(when, (int, float)):
            return float(when)
        return conn_frames[0].wall_time if conn_frames else float("inf")

    ordered = sorted(by_connection.items(), key=started)  # stable: ties keep first-frame order
    with opened(path_or_file, "w") as file:
        log_head = {
            "version": "1.2",
            "creator": {"name": "memgpt_lab", "version": creator_version},
            "pages": [],
        }
        file.write('{"log":' + json.dumps(log_head)[:-1] + ',"entries":[\n')
        for number, (cid, conn_frames) in enumerate(ordered):
            head = json.dumps(
                _entry_head(cid, connections.get(cid), conn_frames), ensure_ascii=False
            )
            file.write((",\n" if number else "") + head[:-1] + ',"_webSocketMessages":[')
            chunk: list[str] = []
            for index, frame in enumerate(conn_frames):
                chunk.append(("\n" if index == 0 else ",\n") + _message(frame))
                if len(chunk) >= 4096:
                    file.writelines(chunk)
                    chunk = []
            file.writelines(chunk)
            file.write("]}")
        file.write("\n]}}\n")
    return len(by_connection)


def _is_websocket(entry: Mapping[str, Any]) -> bool:
    if entry.get("_resourceType") == "websocket" or "_webSocketMessages" in entry:
        return True
    request = entry.get("request")
    url = request.get("url", "") if isinstance(request, Mapping) else ""
    return isinstance(url, str) and url.startswith(("ws://", "wss://"))


def _pairs(headers: Any) -> list[list[str]]:
    if not isinstance(headers, list):
        return []
    return [
        [str(h.get("name", "")), str(h.get("value", ""))] for h in headers if isinstance(h, Mapping)
    ]


def _info(entry: Mapping[str, Any]) -> dict[str, Any]:
    request = entry.get("request") if isinstance(entry.get("request"), Mapping) else {}
    response = entry.get("response") if isinstance(entry.get("response"), Mapping) else {}
    assert isinstance(request, Mapping) and isinstance(response, Mapping)
    response_headers = _pairs(response.get("headers"))
    subprotocol = entry.get("_subprotocol")
    if subprotocol is None:
        subprotocol = next(
            (v for n, v in response_headers if n.lower() == "sec-websocket-protocol"), None
        )
    info: dict[str, Any] = {
        "url": request.get("url"),
        "method": request.get("method", "GET"),
        "status": _status(response.get("status")),
        # None when not given: the writer then puts the status's standard text.
        "status_text": (
            response.get("statusText") if isinstance(response.get("statusText"), str) else None
        ),
        "request_headers": _pairs(request.get("headers")),
        "response_headers": response_headers,
        "subprotocol": subprotocol,
        "started": _epoch(entry.get("startedDateTime")),
    }
    wait = (
        (entry.get("timings") or {}).get("wait")
        if isinstance(entry.get("timings"), Mapping)
        else None
    )
    if isinstance(wait, (int, float)) and wait >= 0:
        info["handshake_ms"] = float(wait)
    return info


def _frame(message: Any, cid: str, where: str) -> Frame:
    if not isinstance(message, Mapping):
        raise RecordingFormatError(f"{where}: a WebSocket message must be an object")
    direction = _DIRECTION.get(message.get("type"))  # type: ignore[arg-type]
    if direction is None:
        raise RecordingFormatError(
            f"{where}: message type must be 'send' or 'receive', not {message.get('type')!r}"
        )
    opcode = _OPCODE_NAMES.get(message.get("opcode"))  # type: ignore[arg-type]
    if opcode is None:
        raise RecordingFormatError(
            f"{where}: unsupported opcode {message.get('opcode')!r} (1, 2, 8, 9 or 10)"
        )
    wall = message.get("time")
    if not isinstance(wall, (int, float)) or isinstance(wall, bool):
        raise RecordingFormatError(f"{where}: 'time' must be epoch seconds, not {wall!r}")
    if wall > _MILLISECONDS:  # Playwright writes milliseconds where DevTools writes seconds
        wall = wall / 1000
    data = message.get("data", "")
    if not isinstance(data, str):
        raise RecordingFormatError(f"{where}: 'data' must be a string")
    mono = message.get("_time", wall)
    seq = message.get("_seq", 0)
    if opcode == "text":
        return Frame(seq, mono, wall, direction, "text", text=data, connection_id=cid)
    if opcode == "close":
        code = message.get("_closeCode", message.get("code"))
        return Frame(
            seq,
            mono,
            wall,
            direction,
            "close",
            connection_id=cid,
            close_code=code,
            close_reason=None if "_closeReason" in message and not data else data,
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RecordingFormatError(f"{where}: {opcode} data is not base64") from exc
    return Frame(seq, mono, wall, direction, opcode, data=raw, connection_id=cid)


def read_har(path_or_file: str | os.PathLike[str] | IO[str]) -> HarContents:
    """The WebSocket connections of a HAR file: frames, handshakes, and the HTTP entries skipped.

    Raises:
        RecordingFormatError: the file is not JSON, has no ``log.entries``, or
            holds a message that cannot be read (the message names the entry).
    """
    with opened(path_or_file, "r") as file:
        name = getattr(file, "name", "<stream>")
        try:
            document = _json.loads(file.read())
        except ValueError as exc:
            raise RecordingFormatError(f"{name}: not JSON ({exc})") from exc
    log = document.get("log") if isinstance(document, Mapping) else None
    entries = log.get("entries") if isinstance(log, Mapping) else None
    if not isinstance(entries, list):
        raise RecordingFormatError(f"{name}: not a HAR file (no log.entries list)")
    creator = log.get("creator") if isinstance(log, Mapping) else None
    ours = isinstance(creator, Mapping) and creator.get("name") == "memgpt_lab"
    contents = HarContents(frames=[])
    keyed: list[tuple[float, int, int, Frame]] = []
    all_seq = True
    numbered = 0
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not _is_websocket(entry):
            contents.skipped += 1
            continue
        numbered += 1
        cid = entry.get("_connectionId")
        if not isinstance(cid, str):
            cid = f"c{numbered}"
            while cid in contents.connections:
                cid += "'"
        if not (ours and entry.get("_handshakeRecorded") is False):
            contents.connections[cid] = _info(entry)
        messages = entry.get("_webSocketMessages") or []
        if not isinstance(messages, list):
            raise RecordingFormatError(f"{name}, entry {index}: _webSocketMessages must be a list")
        for position, message in enumerate(messages):
            frame = _frame(message, cid, f"{name}, entry {index}, message {position}")
            all_seq = all_seq and isinstance(message.get("_seq"), int)
            keyed.append((frame.wall_time, index, position, frame))
    if all_seq:
        contents.frames = sorted((item[3] for item in keyed), key=lambda f: f.seq)
    else:
        keyed.sort(key=lambda item: item[:3])
        for seq, (*_, frame) in enumerate(keyed, 1):
            frame.seq = seq
        contents.frames = [item[3] for item in keyed]
    return contents
