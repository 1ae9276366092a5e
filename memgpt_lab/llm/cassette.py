"""Cassettes: record any model's answers once, replay them with no network and no key.

A :class:`Cassette` is itself a :class:`~memgpt_lab.llm.base.ChatModel`. Wrap a
model in one and every request (the messages and the function schemas) goes
into a JSON-lines file with the model's answer; run the same conversation
again and the answers come from the file::

    model = Cassette("tests/cassettes/greeting.jsonl", OpenAIChatModel(...))
    agent = create_agent_from_preset(DEFAULT_PRESET, None, model, clock=FixedClock())

The modes, as VCR users know them (``mode=None`` reads the environment
variable ``MEMGPT_LAB_CASSETTE_MODE``, else ``"once"``):

- ``"once"``: record when the file is missing, otherwise replay only;
- ``"none"``: replay only;
- ``"new_episodes"``: replay what matches, call the model for the rest and
  append it;
- ``"all"``: always call the model, and rewrite the file from scratch at the
  first answer.

A request matches a recording when the two are equal once normalised (see
:func:`normalise_request`: clock readings and ids do not count). Identical
requests replay in the order they were recorded, one recording per call. A
request with no recording left raises :class:`CassetteMismatchError`, which
shows the closest recorded request and a diff. An error the model raised
(:class:`~memgpt_lab.errors.LLMError`, for example a
:class:`~memgpt_lab.llm.base.ContextWindowExceededError`) is recorded too and
raised again on replay, so an agent that summarised replays identically.

The file holds one JSON object per line (UTF-8, a header first)::

    {"format": "memgpt_lab.cassette", "version": 1, "model": "gpt-4o-mini"}
    {"key": "3f0a…", "response": {<chat completion>}, "request": {"messages": […], "functions": […]}}
    {"key": "9bc1…", "error": {"type": "ContextWindowExceededError",
     "module": "memgpt_lab.llm.base", "message": "…"}, "request": {…}}

``key`` is the hash of the normalised request under this format version's
normalisation; with it a replay needs to decode only the answers it plays, not
every request in the file (that is also why the answer comes first). A line
without a key (a request edited by hand: delete its key, or one recorded with a
custom ``normalise``) is hashed when the file is loaded. Each pair is appended
and flushed as soon as the model answers, so a crash loses nothing already
recorded. Only what the model sees and says is written: never headers, keys or
client settings.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import json
import os
import re
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from memgpt_lab import _json
from memgpt_lab.errors import LLMError
from memgpt_lab.llm.base import ChatModel, IdentityCache

__all__ = [
    "CASSETTE_MODES",
    "CASSETTE_MODE_ENV",
    "Cassette",
    "CassetteMismatchError",
    "MessageNormaliser",
    "normalise_message",
    "normalise_request",
]

Message = dict[str, Any]

#: A function from a (normalised) message to the message to compare; see :func:`normalise_request`.
MessageNormaliser = Callable[[dict[str, Any]], dict[str, Any]]

#: The modes a cassette accepts; see the module docstring.
CASSETTE_MODES = ("once", "none", "new_episodes", "all")

#: The environment variable read when a cassette's mode is None.
CASSETTE_MODE_ENV = "MEMGPT_LAB_CASSETTE_MODE"

FORMAT = "memgpt_lab.cassette"
#: Bump when the normalisation changes: stored keys of older files are then recomputed.
FORMAT_VERSION = 1

TIME_PLACEHOLDER = "<time>"
ID_PLACEHOLDER = "<id>"

# Clock readings inside packaged texts: system.format_time's "2026-01-01 09:00:00 AM UTC+0000"
# anywhere, and the search results' "timestamp: 2026-01-01 09:00".
_TIMES = re.compile(
    r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [AP]M [A-Za-z]*[+-]\d{4}"
    r"|(?<=timestamp: )\d{4}-\d{2}-\d{2} \d{2}:\d{2}"
)
_NOT_JSON = object()
_KEY_PREFIX_BYTES = b'{"key": "'
_KEY_END_BYTES = b'", '
_REQUEST_FIELD = b', "request": {'
_KEY_LENGTH = 40  # hex digits of a 20-byte blake2b digest
_DIFF_LINES = 80
_DIFF_LINE_WIDTH = 240
_RERECORD = (
    'To record it, use mode="new_episodes" (append what is new) or '
    f"{CASSETTE_MODE_ENV}=all (re-record everything); "
    "with pytest, --cassette-mode new_episodes or --cassette-mode all."
)


class CassetteMismatchError(LLMError):
    """A cassette has no recording (left) for a request and may not record one.

    The message shows the closest recorded request and a diff of the two,
    normalised, and says how to re-record.

    Attributes:
        path: the cassette's file.
        request: this request, normalised.
        closest: the closest recorded request, normalised, or None.
        diff: the unified diff from ``closest`` to ``request`` (possibly cut short).
    """

    def __init__(
        self,
        message: str,
        path: Path,
        request: dict[str, Any],
        closest: dict[str, Any] | None = None,
        diff: str = "",
    ) -> None:
        super().__init__(message)
        self.path = path
        self.request = request
        self.closest = closest
        self.diff = diff


# --- normalising ------------------------------------------------------------------------


def _decoded(text: str) -> Any:
    """The JSON object or array ``text`` holds, or ``_NOT_JSON``."""
    if text[:1] not in ("{", "["):
        return _NOT_JSON
    try:
        return _json.loads(text)
    except ValueError:
        return _NOT_JSON


def _normalise_value(value: Any) -> Any:
    if isinstance(value, str):
        decoded = _decoded(value)
        if decoded is _NOT_JSON:
            return _TIMES.sub(TIME_PLACEHOLDER, value)
        return _normalise_value(decoded)
    if isinstance(value, dict):
        return {
            key: TIME_PLACEHOLDER if key == "time" else _normalise_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_normalise_value(item) for item in value]
    return value


def normalise_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """One message as a cassette compares it: what changes from run to run replaced.

    - a content that is a JSON text (a packaged user message, heartbeat, alert
      or function result, see :mod:`memgpt_lab.system`) is decoded, and so is any
      JSON text inside it; in it every ``time`` field becomes ``"<time>"``, and so
      do clock readings in its strings (``2026-01-01 09:00:00 AM UTC+0000``, and
      the search results' ``timestamp: 2026-01-01 09:00``);
    - ``id``, ``tool_call_id`` and the ids of ``tool_calls`` become ``"<id>"``.

    Anything else, plain-text contents included, is kept as it is. The agent's
    system message needs nothing: it holds memory counts and core memory, no
    clock reading. ``message`` is not changed.
    """
    out = dict(message)
    if "id" in out:
        out["id"] = ID_PLACEHOLDER
    if "tool_call_id" in out:
        out["tool_call_id"] = ID_PLACEHOLDER
    calls = out.get("tool_calls")
    if isinstance(calls, list):
        out["tool_calls"] = [
            {**call, "id": ID_PLACEHOLDER} if isinstance(call, Mapping) and "id" in call else call
            for call in calls
        ]
    content = out.get("content")
    if isinstance(content, str):
        decoded = _decoded(content)
        if decoded is not _NOT_JSON:
            out["content"] = _normalise_value(decoded)
    return out


def _message_normaliser(normalise: MessageNormaliser | None) -> MessageNormaliser:
    if normalise is None:
        return normalise_message
    return lambda message: normalise(normalise_message(message))


def normalise_request(
    request: Mapping[str, Any], normalise: MessageNormaliser | None = None
) -> dict[str, Any]:
    """A request (``{"messages": [...], "functions": [...]}``) as a cassette compares it.

    Each message goes through :func:`normalise_message`, then through
    ``normalise`` if given (it receives the normalised message, may change it
    and returns it; it must be a pure function of the message). Function
    schemas are compared as they are.
    """
    each = _message_normaliser(normalise)
    return {
        "messages": [each(message) for message in request.get("messages") or ()],
        "functions": [dict(schema) for schema in request.get("functions") or ()],
    }


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(value: Any) -> bytes:
    return hashlib.blake2b(_canonical(value).encode("utf-8"), digest_size=16).digest()


def _key(message_digests: Sequence[bytes], function_digests: Sequence[bytes]) -> str:
    counts = struct.pack(">II", len(message_digests), len(function_digests))
    joined = counts + b"".join(message_digests) + b"".join(function_digests)
    return hashlib.blake2b(joined, digest_size=_KEY_LENGTH // 2).hexdigest()


# --- the file -----------------------------------------------------------------------------


def _error_classes(base: type[LLMError] = LLMError) -> Iterator[type[LLMError]]:
    yield base
    for sub in base.__subclasses__():
        yield from _error_classes(sub)


def _error_class(name: str, module: str | None) -> type[LLMError]:
    """The LLMError subclass a recording names (importing memgpt_lab's own if need be)."""
    if module and module.startswith("memgpt_lab."):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    named = [cls for cls in _error_classes() if cls.__name__ == name]
    for cls in named:
        if cls.__module__ == module:
            return cls
    return named[0] if named else LLMError


def _recorded_error(error: Mapping[str, Any]) -> LLMError:
    cls = _error_class(str(error.get("type")), error.get("module"))
    message = str(error.get("message", ""))
    try:
        return cls(message)
    except TypeError:  # a class with another signature: keep the message at least
        return LLMError(message)


class _Entry:
    """One recorded pair, decoded only as far as it is used.

    A pair read with its key keeps only the bytes of its answer (``head``) and
    where its line is in the file: a long conversation's file is mostly
    requests, which a replay never decodes (a mismatch reads them again).
    """

    __slots__ = ("_digests", "head", "key", "length", "lineno", "offset", "record")

    def __init__(
        self,
        key: str,
        lineno: int,
        record: dict[str, Any] | None = None,
        head: bytes | None = None,
        offset: int = 0,
        length: int = 0,
    ) -> None:
        self.key = key
        self.lineno = lineno
        self.record = record
        self.head = head
        self.offset = offset
        self.length = length
        self._digests: list[bytes] | None = None

    @property
    def readable(self) -> bool:
        """Whether the pair can be read back (not one this cassette has just recorded)."""
        return self.record is not None or self.length > 0

    def parsed(self, path: Path) -> dict[str, Any]:
        if self.record is None:
            with path.open("rb") as file:
                file.seek(self.offset)
                self.record = _json.loads(file.read(self.length))
        return self.record

    def outcome(self, path: Path) -> dict[str, Any]:
        """``{"response": ...}`` or ``{"error": ...}``."""
        if self.record is None and self.head is not None:
            head = self.head.decode("utf-8")
            for field in ('"response": ', '"error": '):
                if head.startswith(field):
                    try:
                        value, _ = json.JSONDecoder().raw_decode(head, len(field))
                    except ValueError:  # cut at a '"request"' inside the answer: read it all
                        break
                    return {field[1:-3]: value}
        return self.parsed(path)

    def request(self, path: Path, normalise: MessageNormaliser | None) -> dict[str, Any]:
        return normalise_request(self.parsed(path).get("request") or {}, normalise)

    def message_digests(self, path: Path, normalise: MessageNormaliser | None) -> list[bytes]:
        if self._digests is None:
            self._digests = [_digest(m) for m in self.request(path, normalise)["messages"]]
        return self._digests


def _readable(value: Any) -> Any:
    """For diffs: multi-line strings as lists of lines."""
    if isinstance(value, str) and "\n" in value:
        return value.split("\n")
    if isinstance(value, dict):
        return {key: _readable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_readable(item) for item in value]
    return value


def _render(request: Mapping[str, Any]) -> list[str]:
    """A normalised request as text lines: one block per message, then the functions."""
    lines: list[str] = []
    for index, message in enumerate(request["messages"]):
        lines.append(f"# message {index} ({message.get('role')})")
        lines += json.dumps(_readable(message), indent=2, sort_keys=True, ensure_ascii=False).split(
            "\n"
        )
    lines.append(f"# functions ({len(request['functions'])})")
    for schema in request["functions"]:
        lines += json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False).split("\n")
    return lines


def _unified_diff(old: list[str], new: list[str], old_name: str, new_name: str) -> str:
    lines = [
        line if len(line) <= _DIFF_LINE_WIDTH else f"{line[:_DIFF_LINE_WIDTH]}…"
        for line in difflib.unified_diff(old, new, old_name, new_name, lineterm="")
    ]
    if len(lines) > _DIFF_LINES:
        lines = [*lines[:_DIFF_LINES], f"… ({len(lines) - _DIFF_LINES} more diff lines)"]
    return "\n".join(lines)


def _common_prefix(a: Sequence[bytes], b: Sequence[bytes]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def _mode_from(mode: str | None) -> str:
    source = "mode"
    if mode is None:
        mode, source = os.environ.get(CASSETTE_MODE_ENV) or "once", CASSETTE_MODE_ENV
    if mode not in CASSETTE_MODES:
        raise ValueError(
            f"unknown cassette {source} {mode!r}; the modes are: {', '.join(CASSETTE_MODES)}"
        )
    return mode


class Cassette:
    """A model that records another model's answers to a file, and replays them.

    Args:
        path: the JSON-lines file (created with its folders when first recorded).
        model: the model to record; None to replay only (attach one later with
            :meth:`wrap`).
        mode: ``"once"``, ``"none"``, ``"new_episodes"`` or ``"all"`` (see the
            module docstring); None reads ``MEMGPT_LAB_CASSETTE_MODE``, else ``"once"``.
        name: the name to report; by default the model's, else the one in the
            file's header, else ``"cassette"``.
        normalise: an extra :data:`MessageNormaliser`, applied after
            :func:`normalise_message` to every message compared.

    The file is read (or, in ``"all"`` mode, replaced) at the first call, not
    before. Calls may come from several threads; the model is called outside
    the cassette's lock.

    Attributes:
        path, model, mode: as given (``mode`` resolved).
        played: answers (and errors) replayed from the file.
        recorded: answers (and errors) recorded from the model.

    Raises:
        ValueError: an unknown mode.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        model: ChatModel | None = None,
        mode: str | None = None,
        *,
        name: str | None = None,
        normalise: MessageNormaliser | None = None,
    ) -> None:
        self.path = Path(path)
        self.model = model
        self.mode = _mode_from(mode)
        self.normalise = normalise
        self.played = 0
        self.recorded = 0
        self._name = name
        self._header_model: str | None = None
        self._header_read = False
        self._lock = threading.Lock()
        each = _message_normaliser(normalise)
        self._message_digests = IdentityCache(lambda message: _digest(each(message)))
        self._function_digests = IdentityCache(_digest)
        self._started = False
        self._replays = False  # look requests up in the file
        self._records = False  # call the model for requests not found
        self._fresh = False  # the next write starts the file (header first)
        self._missing = False  # the file did not exist at the first call
        self._entries: list[_Entry] = []
        self._index: dict[str, list[_Entry]] = {}
        self._next: dict[str, int] = {}
        self._calls = 0

    def __repr__(self) -> str:
        model = self.model.name if self.model is not None else self._name
        return (
            f"Cassette({str(self.path)!r}, model={model!r}, mode={self.mode!r}, "
            f"played={self.played}, recorded={self.recorded})"
        )

    @property
    def name(self) -> str:
        """The explicit name, else the model's, else the file header's, else ``"cassette"``."""
        if self._name is not None:
            return self._name
        if self.model is not None:
            return self.model.name
        if not self._header_read:
            self._header_read = True
            self._header_model = self._read_header()
        return self._header_model or "cassette"

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def wrap(self, model: ChatModel) -> Cassette:
        """Record ``model``'s answers from now on; returns the cassette itself."""
        self.model = model
        return self

    # --- the ChatModel protocol ---------------------------------------------------------

    def chat(
        self, messages: Sequence[Message], functions: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        """Answer from the file if a recording matches, else from the model (see the modes).

        Raises:
            CassetteMismatchError: no recording matches and the mode does not record.
            LLMError: the model failed (or its recorded failure), or recording is
                needed and there is no model.
        """
        with self._lock:
            self._start()
            self._calls += 1
            message_digests = self._message_digests(messages)
            key = _key(message_digests, self._function_digests(functions))
            if self._replays:
                entry = self._take(key)
                if entry is not None:
                    self.played += 1
                    outcome = entry.outcome(self.path)
                    if "error" in outcome:
                        raise _recorded_error(outcome["error"])
                    response: dict[str, Any] = outcome["response"]
                    return response
            if not self._records:
                raise self._mismatch(key, messages, functions, message_digests)
            model = self.model
            if model is None:
                raise LLMError(
                    f"cassette {self.path} has no recording for this request and no model to "
                    "record it with; attach one with cassette.wrap(model)"
                )
        request = {"messages": list(messages), "functions": list(functions)}
        try:
            response = model.chat(messages, functions)
        except CassetteMismatchError:
            raise
        except LLMError as exc:
            cls = type(exc)
            error = {"type": cls.__name__, "module": cls.__module__, "message": str(exc)}
            self._write(key, {"error": error, "request": request})
            raise
        self._write(key, {"response": response, "request": request})
        return response

    # --- internals ----------------------------------------------------------------------

    def _start(self) -> None:
        """At the first call: read the file, or decide to record it."""
        if self._started:
            return
        exists = self.path.exists()
        self._missing = not exists
        if self.mode == "all" or (self.mode == "once" and not exists):
            self._records, self._fresh = True, True
        else:
            self._replays = True
            self._records = self.mode == "new_episodes"
            self._fresh = not exists or self.path.stat().st_size == 0
            if exists:
                self._load()
        self._started = True

    def _read_header(self) -> str | None:
        try:
            with self.path.open("rb") as file:
                first = file.readline()
        except OSError:
            return None
        header = self._header_of(first)
        return None if header is None else header.get("model")

    @staticmethod
    def _header_of(line: bytes) -> dict[str, Any] | None:
        if b'"format"' not in line:
            return None
        try:
            value = _json.loads(line)
        except ValueError:
            return None
        return value if isinstance(value, dict) and value.get("format") == FORMAT else None

    def _load(self) -> None:
        # Line by line, in bytes, keeping the answers only: a long conversation's file is
        # hundreds of megabytes of requests, which a replay need not decode or keep.
        trusted = self.normalise is None
        head_start = len(_KEY_PREFIX_BYTES) + _KEY_LENGTH + len(_KEY_END_BYTES)
        offset = 0
        with self.path.open("rb") as file:
            for lineno, line in enumerate(file, start=1):
                start, offset = offset, offset + len(line)
                stop = line.find(_REQUEST_FIELD, head_start) if trusted else -1
                if (
                    stop > 0
                    and line.startswith(_KEY_PREFIX_BYTES)
                    and line.startswith(_KEY_END_BYTES, head_start - len(_KEY_END_BYTES))
                ):
                    key = line[len(_KEY_PREFIX_BYTES) : head_start - 3].decode("ascii", "replace")
                    entry = _Entry(key, lineno, None, line[head_start:stop], start, len(line))
                else:
                    header = self._header_of(line) if lineno == 1 else None
                    if header is not None:
                        self._header_model = header.get("model")
                        self._header_read = True
                        trusted = trusted and header.get("version") == FORMAT_VERSION
                        continue
                    if not line.strip():
                        continue
                    entry = self._decode(line, lineno)
                self._entries.append(entry)
                self._index.setdefault(entry.key, []).append(entry)

    def _decode(self, line: bytes, lineno: int) -> _Entry:
        try:
            record = _json.loads(line)
        except ValueError as exc:  # UnicodeDecodeError is one too
            raise LLMError(
                f"cassette {self.path}, line {lineno}, is not valid JSON ({exc}); a recording "
                "cut short? Delete the line, or re-record with mode='all'"
            ) from None
        request = record.get("request") if isinstance(record, dict) else None
        if not isinstance(request, dict) or not ("response" in record or "error" in record):
            raise LLMError(
                f"cassette {self.path}, line {lineno}, is not a recording: expected an object "
                'with "request" and "response" (or "error")'
            )
        normalised = normalise_request(request, self.normalise)
        message_digests = [_digest(m) for m in normalised["messages"]]
        key = _key(message_digests, [_digest(f) for f in normalised["functions"]])
        entry = _Entry(key, lineno, record)
        entry._digests = message_digests
        return entry

    def _take(self, key: str) -> _Entry | None:
        """The next unplayed recording of ``key``, marked played; None if there is none."""
        recorded = self._index.get(key)
        position = self._next.get(key, 0)
        if recorded is None or position >= len(recorded):
            return None
        self._next[key] = position + 1
        return recorded[position]

    def _write(self, key: str, record: dict[str, Any]) -> None:
        """Append one pair to the file (after the header, if the file starts now)."""
        if self.normalise is None:  # a key means "under the default normalisation"
            record = {"key": key, **record}
        try:
            line = json.dumps(record, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise LLMError(f"cannot record the model's answer in {self.path}: {exc}") from None
        with self._lock:
            text = f"{line}\n"
            mode = "a"
            if self._fresh:
                header = {"format": FORMAT, "version": FORMAT_VERSION, "model": self.name}
                text = f"{json.dumps(header, ensure_ascii=False)}\n{text}"
                mode = "w"
                self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open(mode, encoding="utf-8", newline="\n") as file:
                file.write(text)
                file.flush()
            self._fresh = False
            self.recorded += 1
            if self._replays:  # new_episodes: this recording is used up, as if played
                recorded = self._index.setdefault(key, [])
                recorded.append(_Entry(key, 0, None))
                self._next[key] = len(recorded)

    def _mismatch(
        self,
        key: str,
        messages: Sequence[Message],
        functions: Sequence[dict[str, Any]],
        message_digests: list[bytes],
    ) -> CassetteMismatchError:
        request = normalise_request({"messages": messages, "functions": functions}, self.normalise)
        where = f"cassette {self.path} (mode {self.mode!r})"
        size = f"{len(messages)} messages, {len(functions)} functions"
        if self._missing:
            return CassetteMismatchError(
                f"{where} has no recording for this request ({size}): the file does not exist. "
                + _RERECORD,
                self.path,
                request,
            )
        used = len(self._index.get(key, ()))
        if used:
            return CassetteMismatchError(
                f"{where} has no recording left for this request ({size}): it was recorded "
                f"{used} time(s), and identical requests replay in recorded order, one recording "
                f"per call; this is call {self._calls} to the cassette. " + _RERECORD,
                self.path,
                request,
            )
        closest = self._closest(message_digests, request)
        if closest is None:
            return CassetteMismatchError(
                f"{where} has no recording for this request ({size}): it holds no recordings. "
                + _RERECORD,
                self.path,
                request,
            )
        entry, recorded, same = closest
        diff = _unified_diff(
            _render(recorded),
            _render(request),
            f"recorded (line {entry.lineno}, normalised)",
            "this request (normalised)",
        )
        return CassetteMismatchError(
            f"{where} has no recording for this request ({size}).\n"
            f"Closest recorded request: line {entry.lineno}, whose first {same} of "
            f"{len(recorded['messages'])} messages are the same as this request's.\n"
            f"{diff}\n{_RERECORD}",
            self.path,
            request,
            recorded,
            diff,
        )

    def _closest(
        self, message_digests: list[bytes], request: dict[str, Any]
    ) -> tuple[_Entry, dict[str, Any], int] | None:
        """The recording sharing the longest run of leading messages; ties by difflib ratio."""
        prefixes: list[tuple[int, _Entry]] = []
        for entry in self._entries:
            if not entry.readable:
                continue
            try:
                digests = entry.message_digests(self.path, self.normalise)
            except (OSError, ValueError):  # the file changed, or its last line was cut short
                continue
            prefixes.append((_common_prefix(digests, message_digests), entry))
        if not prefixes:
            return None
        best = max(p for p, _ in prefixes)
        tied = [e for p, e in prefixes if p == best][-5:]  # the latest few: likeliest kin
        lines = _render(request)

        def ratio(entry: _Entry) -> float:
            rendered = _render(entry.request(self.path, self.normalise))
            return difflib.SequenceMatcher(None, rendered, lines, autojunk=False).ratio()

        closest = max(tied, key=ratio) if len(tied) > 1 else tied[0]
        return closest, closest.request(self.path, self.normalise), best
