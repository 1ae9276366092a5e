"""What the file formats share: the error for a bad file, opening, and picking the format.

The formats themselves are :mod:`memgpt_lab.recorder.jsonl` and
:mod:`memgpt_lab.recorder.har`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, cast

from memgpt_lab import _json
from memgpt_lab.errors import LabError

__all__ = ["RecordingFormatError", "detect_format", "opened"]


class RecordingFormatError(LabError, ValueError):
    """A file that is not a recording in the format it was read as (the message says where)."""


_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_escape(char: str) -> str:
    """``char`` as a JSON string escape (``\\u00e9``; a pair of them above U+FFFF)."""
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


class _JsonTextWriter:
    """Writes JSON text to any text file: what the file cannot encode goes as escapes.

    Non-ASCII characters occur only inside JSON strings, where ``\\uXXXX``
    stands for the same character, so the text means the same. A lone surrogate
    (which no UTF-8 file takes) is escaped, and so are other characters the
    file's encoding has no bytes for (an ASCII or Latin-1 file); a file that
    takes any text (``io.StringIO``) gets it as it is.
    (A high surrogate then a low one reads back as the character the pair
    encodes: JSON cannot tell them apart. No socket delivers either; the
    protocol escapes them.)
    """

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self._encoding = getattr(file, "encoding", None) or "utf-8"

    def write(self, text: str) -> None:
        # A text file encodes the whole text before it keeps any of it, so a failed
        # write wrote nothing; the common case costs nothing more.
        try:
            self._file.write(text)
        except UnicodeEncodeError:
            self._file.write(self._encodable(text))

    def writelines(self, lines: Iterable[str]) -> None:
        self.write("".join(lines))

    def _encodable(self, text: str) -> str:
        text = _SURROGATE.sub(lambda m: _json_escape(m.group()), text)
        try:
            text.encode(self._encoding)
            return text  # a UTF-8 file: the surrogates were all
        except UnicodeEncodeError:
            pass
        out = []
        for char in text:
            try:
                char.encode(self._encoding)
            except UnicodeEncodeError:
                char = _json_escape(char)
            out.append(char)
        return "".join(out)


@contextlib.contextmanager
def opened(path_or_file: str | os.PathLike[str] | IO[str], mode: str) -> Iterator[IO[str]]:
    """A text file for a path (UTF-8, closed afterwards) or the open file itself (left open).

    For writing JSON it is wrapped so that any text file takes any text: lone
    surrogates, and what the file's encoding cannot hold, go as JSON escapes.
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        # UTF-8 holds all but lone surrogates, which backslashreplace writes as the
        # JSON escape \udXXX (they only occur inside JSON strings).
        errors = "backslashreplace" if "w" in mode else "strict"
        with open(path_or_file, mode, encoding="utf-8", errors=errors) as f:
            yield f
    elif "w" in mode:
        yield cast("IO[str]", _JsonTextWriter(path_or_file))
    else:
        yield path_or_file


def detect_format(path: str | os.PathLike[str]) -> str:
    """``"har"`` or ``"jsonl"``: by the suffix (``.har``, ``.jsonl``/``.ndjson``), else by content.

    A file whose first non-blank character opens a JSON object holding ``"log"``
    is HAR; one JSON object per line is JSON lines.

    Raises:
        RecordingFormatError: the file is empty or neither.
        FileNotFoundError: there is no such file.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".har":
        return "har"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    with open(path, encoding="utf-8") as file:
        head = file.read(1 << 16)
    first_line = head.lstrip().split("\n", 1)[0]
    if not first_line:
        raise RecordingFormatError(f"{path}: empty file, neither HAR nor JSON lines")
    with contextlib.suppress(ValueError):
        value = _json.loads(first_line)
        if isinstance(value, dict) and ("direction" in value or "connection_info" in value):
            return "jsonl"
    if head.lstrip().startswith("{") and '"log"' in head:
        return "har"
    raise RecordingFormatError(
        f"{path}: neither HAR (a JSON object with a 'log') nor JSON lines (one frame per line)"
    )
