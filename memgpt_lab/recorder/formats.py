"""What the file formats share: the error for a bad file, opening, and picking the format.

The formats themselves are :mod:`memgpt_lab.recorder.jsonl` and
:mod:`memgpt_lab.recorder.har`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from memgpt_lab.errors import LabError

__all__ = ["RecordingFormatError", "detect_format", "opened"]


class RecordingFormatError(LabError, ValueError):
    """A file that is not a recording in the format it was read as (the message says where)."""


@contextlib.contextmanager
def opened(path_or_file: str | os.PathLike[str] | IO[str], mode: str) -> Iterator[IO[str]]:
    """A text file for a path (UTF-8, closed afterwards) or the open file itself (left open)."""
    if isinstance(path_or_file, (str, os.PathLike)):
        # A lone surrogate cannot be UTF-8: written as the JSON escape \udXXX, which is
        # exactly what backslashreplace makes of it (it only occurs inside JSON strings).
        # (A high surrogate then a low one reads back as the character the pair encodes:
        # JSON cannot tell them apart. No socket delivers either; the protocol escapes them.)
        errors = "backslashreplace" if "w" in mode else "strict"
        with open(path_or_file, mode, encoding="utf-8", errors=errors) as f:
            yield f
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
        value = json.loads(first_line)
        if isinstance(value, dict) and ("direction" in value or "connection_info" in value):
            return "jsonl"
    if head.lstrip().startswith("{") and '"log"' in head:
        return "har"
    raise RecordingFormatError(
        f"{path}: neither HAR (a JSON object with a 'log') nor JSON lines (one frame per line)"
    )
