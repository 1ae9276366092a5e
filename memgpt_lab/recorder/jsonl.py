"""JSON lines: one object per frame, as :meth:`Frame.to_dict` describes it.

Written in chunks and read line by line, so a million frames never make one
giant string. Pure: files in, frames out.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring
from typing import IO

from memgpt_lab.recorder.formats import RecordingFormatError, opened
from memgpt_lab.recorder.frame import Frame

__all__ = ["read_jsonl", "write_jsonl"]

_CHUNK = 4096  # lines per write


def _line(frame: Frame) -> str:
    # The same object as json.dumps(frame.to_dict(), ensure_ascii=False), built
    # directly: three times faster, and the key order is the format's.
    head = (
        f'{{"seq":{frame.seq},"time":{float(frame.time)!r},"wall_time":{float(frame.wall_time)!r},'
        f'"direction":{encode_basestring(frame.direction)},'
    )
    payload = frame.payload
    conn = encode_basestring(frame.connection_id)
    if type(payload) is str:
        return (
            f'{head}"opcode":"text","connection_id":{conn},"text":{encode_basestring(payload)}}}\n'
        )
    if type(payload) is bytes:
        data = base64.b64encode(payload).decode("ascii")
        return f'{head}"opcode":"binary","connection_id":{conn},"data_b64":"{data}"}}\n'
    code = "null" if frame.close_code is None else int(frame.close_code)
    reason = "null" if frame.close_reason is None else encode_basestring(frame.close_reason)
    return (
        f'{head}"opcode":"close","connection_id":{conn},'
        f'"close_code":{code},"close_reason":{reason}}}\n'
    )


def write_jsonl(frames: Iterable[Frame], path_or_file: str | os.PathLike[str] | IO[str]) -> int:
    """Write one JSON object per frame; returns how many were written."""
    count = 0
    with opened(path_or_file, "w") as file:
        chunk: list[str] = []
        for frame in frames:
            chunk.append(_line(frame))
            if len(chunk) >= _CHUNK:
                file.writelines(chunk)
                count += len(chunk)
                chunk = []
        file.writelines(chunk)
        count += len(chunk)
    return count


def iter_jsonl(path_or_file: str | os.PathLike[str] | IO[str]) -> Iterator[Frame]:
    """The frames a JSON lines file holds, in order; blank lines are skipped.

    Raises:
        RecordingFormatError: a line is not JSON or not a frame (the message
            names the line).
    """
    with opened(path_or_file, "r") as file:
        name = getattr(file, "name", "<stream>")
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                yield Frame.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise RecordingFormatError(
                    f"{name}, line {number}: not a recorded frame ({type(exc).__name__}: {exc})"
                ) from exc


def read_jsonl(path_or_file: str | os.PathLike[str] | IO[str]) -> list[Frame]:
    """Every frame of a JSON lines file; see :func:`iter_jsonl`."""
    return list(iter_jsonl(path_or_file))
