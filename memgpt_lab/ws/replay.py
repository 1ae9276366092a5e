"""Traffic replay: run a captured session again against a live server and compare.

::

    result = replay(Recording.load("traffic.har"), "ws://127.0.0.1:8282")
    assert not result.diff, str(result.diff)

:func:`replay` walks the recording's client frames (``"in"``) in their recorded
order, each on its own connection (one live connection per recorded
``connection_id``, opened where that connection's first frame was), and after
each one waits for the server's answer instead of copying the recorded timing.
"The answer" is read from the recording with the protocol's own rules
(:mod:`memgpt_lab.ws.protocol`): as many turn ends as the recorded answer had
(``agent_response_end`` closes a turn; a ``command_response``, a
``server_error`` or an ``agent_response_error`` outside a turn each answer a
request alone); an answer without any (a ``hello`` greeting) waits for as
many frames. A client close is sent with its recorded code and reason. Close
frames are recorded as the original has them: the server's answering close
only on a connection where the original has one, so a capture cut before it
does not differ for that alone.

Ids the server makes up (``agent_id``, ``checkpoint_id``... any key ``id`` or
ending in ``_id``) differ on every run: each answer is paired frame by frame
with the recorded one, the new ids are learnt, and later client frames carry
them in place of the recorded ones, so ``user_message`` goes to the agent this
run created.

The live connection uses ``url``; when ``url`` has no path and the recording
knows the connection's URL (its handshake, see
:class:`~memgpt_lab.ws.proxy.RecordingProxy`), that path and query are used,
less the parameters whose secret was masked, and with a new session id in
place of the recorded ``?session=`` (one new id per recorded one, so
connections of one session stay together, and carried into client frames like
the ids above): a server that remembers its sessions' requests would
otherwise answer the replayed turns from what it remembers instead of running
them again. Recorded credentials are masked,
so pass them again with ``additional_headers`` (``--header`` on the command line).

The result holds the new recording (same connection ids, same directions) and
its diff against the original (:meth:`Recording.diff
<memgpt_lab.recorder.Recording.diff>`, normalised for times and ids by
default). Nothing is raised for a difference; a step whose answer did not come
within ``timeout`` is listed in :attr:`ReplayResult.incomplete` and the replay
goes on. A connection that could not be opened (the server unreachable, or its
handshake refused) is listed in :attr:`ReplayResult.unreachable`: the replay
did not run, which is not the same as a server that answers differently.
Bad input raises :class:`ValueError` before anything is sent: a URL that is no
``ws://``/``wss://`` URL with a host, a ``timeout`` that is not a positive
number, a recording without client frames (nothing to replay).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from memgpt_lab import _json
from memgpt_lab._loop import BackgroundLoop
from memgpt_lab.recorder import Frame, Recording

__all__ = ["IdMap", "ReplayResult", "ReplayStep", "TurnCounter", "plan", "replay", "replay_async"]

_MASK = "***"  # what the recording proxy writes for a secret (memgpt_lab.ws.proxy.MASK)
_ANSWER_ALONE = frozenset({"command_response", "server_error"})
_DATA = ("text", "binary")


# --------------------------------------------------------------------------- the pure core


class TurnCounter:
    """Counts answers in a stream of server frames, by the protocol's rules.

    Feed it each server frame's JSON (None for frames that are not JSON
    objects); :attr:`ends` counts the requests answered so far: a turn ends at
    its ``agent_response_end``; a ``command_response``, a ``server_error`` or an
    ``agent_response_error`` that belongs to no open turn ends one by itself.
    """

    def __init__(self) -> None:
        self.ends = 0
        self._open: set[tuple[Any, Any]] = set()

    def feed(self, message: Any) -> bool:
        """Count one frame; True when it ended an answer."""
        if not isinstance(message, Mapping):
            return False
        kind = message.get("type")
        key = (_key(message.get("agent_id")), _key(message.get("turn_id")))
        if kind == "agent_response_start":
            self._open.add(key)
            return False
        if kind == "agent_response_end":
            self._open.discard(key)
        elif kind == "agent_response_error":
            if key in self._open:
                return False  # the turn's own end follows
        elif kind not in _ANSWER_ALONE:
            return False
        self.ends += 1
        return True


def _key(value: Any) -> Any:
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


@dataclass
class ReplayStep:
    """One thing :func:`replay` does, and what it then waits for.

    Attributes:
        connection_id: the recorded connection this step belongs to.
        action: ``"open"`` (connect), ``"send"`` (a client frame) or ``"close"``.
        frame: the recorded client frame (``"send"``, ``"close"``), else None.
        answer: the recorded server frames that answered it (up to the
            connection's next client frame), close frames left out.
        ends: answers to wait for (see :class:`TurnCounter`); when 0, wait
            for ``len(answer)`` frames instead.
    """

    connection_id: str
    action: str
    frame: Frame | None
    answer: list[Frame] = field(default_factory=list)
    ends: int = 0

    @property
    def server_closed(self) -> bool:
        """The recorded server closed the connection in this step's answer."""
        return any(f.opcode == "close" for f in self._closes)

    _closes: list[Frame] = field(default_factory=list, repr=False)


def plan(recording: Iterable[Frame]) -> list[ReplayStep]:
    """The steps that replay ``recording``, in recorded order. Pure; no I/O.

    Control frames (pings and pongs) are not replayed: each hop answers its own.
    """
    steps: list[ReplayStep] = []
    current: dict[str, ReplayStep] = {}
    for frame in recording:
        cid = frame.connection_id
        step = current.get(cid)
        if step is None:
            step = current[cid] = ReplayStep(cid, "open", None)
            steps.append(step)
        if frame.direction == "in":
            if frame.opcode in _DATA:
                step = current[cid] = ReplayStep(cid, "send", frame)
                steps.append(step)
            elif frame.opcode == "close" and step.action != "close":
                step = current[cid] = ReplayStep(cid, "close", frame)
                steps.append(step)
        elif frame.opcode in _DATA:
            step.answer.append(frame)
        elif frame.opcode == "close":
            step._closes.append(frame)
    for step in steps:
        counter = TurnCounter()
        for frame in step.answer:
            counter.feed(frame.json)
        step.ends = counter.ends
    return steps


def _is_id_key(key: str) -> bool:
    return key == "id" or (key.endswith("_id") and key != "request_id")


class IdMap:
    """Recorded ids to this run's ids, learnt from answers, applied to client frames."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def learn(self, recorded: Sequence[Any], live: Sequence[Any]) -> None:
        """Pair recorded and live answer frames (JSON) by position, frames of one type
        with each other, and learn the ids that differ."""
        for old, new in zip(recorded, live, strict=False):
            if (
                isinstance(old, Mapping)
                and isinstance(new, Mapping)
                and old.get("type") == new.get("type")
                and not _json.nests_deeper(old, _json.MAX_DEPTH)
                and not _json.nests_deeper(new, _json.MAX_DEPTH)
            ):
                self._learn(old, new)

    def _learn(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        for key, value in old.items():
            other = new.get(key)
            if isinstance(value, Mapping) and isinstance(other, Mapping):
                self._learn(value, other)
            elif (
                _is_id_key(key)
                and isinstance(value, str)
                and isinstance(other, str)
                and value != other
                and value not in self.ids
            ):
                self.ids[value] = other

    def apply(self, value: Any) -> Any:
        """``value`` (JSON) with every string that is a recorded id replaced by the new one."""
        if not self.ids:
            return value
        if isinstance(value, str):
            return self.ids.get(value, value)
        if isinstance(value, list):
            return [self.apply(v) for v in value]
        if isinstance(value, Mapping):
            return {k: self.apply(v) for k, v in value.items()}
        return value

    def apply_text(self, text: str) -> str:
        """A client frame's text with the ids replaced, or as it was when it is not JSON."""
        if not self.ids:
            return text
        try:
            message = _json.loads(text, max_depth=_json.MAX_DEPTH)
        except ValueError:  # not JSON, or too deep to be one of the protocol's frames
            return text
        replaced = self.apply(message)
        if replaced == message:
            return text
        return json.dumps(replaced, ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------- the result


@dataclass
class ReplayResult:
    """What :func:`replay` returns.

    Attributes:
        original: the recording that was replayed.
        recording: this run's traffic, with the same connection ids and directions.
        diff: ``original.diff(recording)``: falsy when they agree.
        incomplete: one line per step whose answer did not come in time.
        unreachable: one line per connection that could not be opened (the
            server unreachable, the handshake refused): that part did not run.
    """

    original: Recording
    recording: Recording
    diff: Any
    incomplete: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The replay ran, agrees with the original, and every answer came."""
        return not self.diff and not self.incomplete and not self.unreachable

    def __str__(self) -> str:
        lines = [f"replay: {len(self.recording)} frames, original {len(self.original)}"]
        lines += [f"could not connect: {line}" for line in self.unreachable]
        lines += [f"incomplete: {line}" for line in self.incomplete]
        lines.append(str(self.diff) if self.diff else "no differences")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the adapter


class _Live:
    """One live connection: reads and records everything the server sends."""

    def __init__(self, ws: Any, cid: str, recording: Recording) -> None:
        self.ws = ws
        self.cid = cid
        self.recording = recording
        self.received: list[Any] = []  # JSON of each data frame (None if not JSON)
        self.counter = TurnCounter()
        self.changed = asyncio.Event()
        self.closed = False
        # The server's close frame is recorded only when the original has one on this
        # connection: a capture cut before it must not differ for that alone.
        self.record_close = False
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in self.ws:
                frame = self.recording.record("out", message, connection_id=self.cid)
                self.received.append(frame.json)
                self.counter.feed(frame.json)
                self.changed.set()
        except ConnectionClosed:
            pass
        close = self.ws.protocol.close_rcvd
        if close is not None and self.record_close:
            self.recording.record_close("out", close.code, close.reason, connection_id=self.cid)
        self.closed = True
        self.changed.set()

    async def wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ready():
            if self.closed:
                return False
            self.changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True


def _connection_url(
    url: str, info: Mapping[str, Any] | None, new_session: Callable[[str], str] = str
) -> str:
    parts = urlsplit(url)
    if (parts.path not in ("", "/")) or parts.query or not info or not info.get("url"):
        return url
    recorded = urlsplit(str(info["url"]))
    # A masked secret (?token=***) is no use to send: pass credentials as headers instead.
    query = [
        (k, new_session(v) if k == "session" and v else v)
        for k, v in parse_qsl(recorded.query, keep_blank_values=True)
        if v != _MASK
    ]
    return urlunsplit((parts.scheme, parts.netloc, recorded.path, urlencode(query), ""))


class _Run:
    """One replay: the live connections, the ids learnt, what went wrong."""

    def __init__(
        self,
        url: str,
        recording: Recording,
        timeout: float,
        headers: Mapping[str, str] | None,
        max_size: int | None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.headers = dict(headers or {}) or None
        self.max_size = max_size
        self.info = recording.connection_info
        self.server_closes = {
            f.connection_id for f in recording if f.direction == "out" and f.opcode == "close"
        }
        self.new = Recording(recording.clock, recording.wall_clock)
        self.live: dict[str, _Live] = {}
        self.incomplete: list[str] = []
        self.unreachable: list[str] = []
        self.ids = IdMap()

    async def step(self, number: int, step: ReplayStep) -> None:
        from websockets.exceptions import ConnectionClosed

        cid = step.connection_id
        where = f"step {number} ({step.action} on {cid or 'the connection'})"
        if step.action == "open":
            conn = await self.open(cid, where)
            if conn is None:
                return
        else:
            maybe = self.live.get(cid)
            if maybe is None:
                return  # its connection could not be opened: already reported
            conn = maybe
            frame = step.frame
            assert frame is not None
            if step.action == "close":
                await self.close(conn, frame)
                return
            if conn.closed:
                self.incomplete.append(f"{where}: the server had closed the connection")
                return
            payload: str | bytes
            if frame.text is not None:
                payload = self.ids.apply_text(frame.text)
            else:
                payload = frame.data or b""
            self.new.record("in", payload, connection_id=cid)
            try:
                await conn.ws.send(payload)
            except ConnectionClosed:
                self.incomplete.append(f"{where}: the server closed the connection")
                return
        await self.await_answer(conn, step, where)

    async def open(self, cid: str, where: str) -> _Live | None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake

        info = self.info(cid)
        subprotocol = info.get("subprotocol") if info else None
        try:
            ws = await connect(
                _connection_url(self.url, info, self.new_session),
                additional_headers=self.headers,
                subprotocols=[subprotocol] if subprotocol else None,
                open_timeout=self.timeout,
                max_size=self.max_size,
                ping_interval=None,
            )
        except (TimeoutError, OSError, InvalidHandshake) as exc:
            self.unreachable.append(f"{where}: could not connect to {self.url}: {exc}")
            return None
        conn = self.live[cid] = _Live(ws, cid, self.new)
        conn.record_close = cid in self.server_closes
        return conn

    def new_session(self, recorded: str) -> str:
        """This run's session id for a recorded one; the same for each of its connections."""
        new = self.ids.ids.get(recorded)
        if new is None:
            new = self.ids.ids[recorded] = uuid.uuid4().hex[:16]
        return new

    async def close(self, conn: _Live, frame: Frame) -> None:
        from websockets.exceptions import ConnectionClosed

        self.new.record_close(
            "in", frame.close_code, frame.close_reason or "", connection_id=conn.cid
        )
        code = frame.close_code
        with contextlib.suppress(ConnectionClosed):
            if code is None or code in (1005, 1006):  # never sent on the wire
                await conn.ws.close()
            else:
                await conn.ws.close(code, frame.close_reason or "")
        await conn.wait(lambda: conn.closed, self.timeout)

    async def await_answer(self, conn: _Live, step: ReplayStep, where: str) -> None:
        before = len(conn.received)
        if step.ends:
            target = conn.counter.ends + step.ends
            answered = await conn.wait(lambda: conn.counter.ends >= target, self.timeout)
        else:
            target = before + len(step.answer)
            answered = await conn.wait(lambda: len(conn.received) >= target, self.timeout)
        if not answered:
            why = "the connection closed" if conn.closed else f"nothing more in {self.timeout} s"
            self.incomplete.append(f"{where}: answer incomplete ({why})")
        self.ids.learn([f.json for f in step.answer], conn.received[before:])
        if step.server_closed:
            await conn.wait(lambda: conn.closed, self.timeout)

    async def finish(self) -> None:
        from websockets.exceptions import ConnectionClosed

        for conn in self.live.values():
            with contextlib.suppress(ConnectionClosed):
                await conn.ws.close()
            conn.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.reader


async def replay_async(
    recording: Recording,
    url: str,
    *,
    timeout: float = 30.0,
    normalise: Any = None,
    additional_headers: Mapping[str, str] | None = None,
    max_size: int | None = 1 << 22,
) -> ReplayResult:
    """:func:`replay` as a coroutine, for code already on a loop."""
    _check_input(recording, url, timeout)
    run = _Run(url, recording, timeout, additional_headers, max_size)
    try:
        for number, step in enumerate(plan(recording), 1):
            await run.step(number, step)
    finally:
        await run.finish()
    new = run.new
    diff = recording.diff(new) if normalise is None else recording.diff(new, normalise=normalise)
    return ReplayResult(recording, new, diff, run.incomplete, run.unreachable)


def _check_input(recording: Recording, url: str, timeout: float) -> None:
    """Raise ValueError for what cannot be replayed, before anything is sent."""
    from websockets.exceptions import InvalidURI
    from websockets.uri import parse_uri

    if not isinstance(url, str) or urlsplit(url).scheme not in ("ws", "wss"):
        raise ValueError(f"url must be a ws:// or wss:// URL, not {url!r}")
    try:
        parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(f"url {url!r} is not a WebSocket URL: {exc}") from None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValueError(f"timeout must be a number of seconds, not {timeout!r}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    if not any(f.direction == "in" for f in recording):
        raise ValueError(
            "nothing to replay: the recording has no client frames"
            f" ({len(recording)} frames, none of them 'in')"
        )


def replay(
    recording: Recording,
    url: str,
    *,
    timeout: float = 30.0,
    normalise: Any = None,
    additional_headers: Mapping[str, str] | None = None,
    max_size: int | None = 1 << 22,
) -> ReplayResult:
    """Replay ``recording``'s client frames against the server at ``url``; see the module.

    Blocks; safe in a Jupyter cell (it runs on a loop of its own). Use
    :func:`replay_async` from a coroutine.

    Args:
        recording: what to replay (:meth:`Recording.load` reads HAR and JSON lines).
        url: the live server, ``ws://host:port`` (see the module for paths).
        timeout: seconds to wait for each answer (and each handshake).
        normalise: passed to :meth:`Recording.diff`; its default when None.
        additional_headers: handshake headers to send (``Authorization``...); the
            recording's own are masked and never re-sent.
        max_size: the largest message accepted from the server, or None.

    Returns:
        A :class:`ReplayResult`: the new recording and its diff against ``recording``.

    Raises:
        ValueError: ``url`` is no ``ws://``/``wss://`` URL with a host, ``timeout``
            is not a positive number, or ``recording`` has no client frames.
    """
    _check_input(recording, url, timeout)
    loop = BackgroundLoop("memgpt_lab replay").start()
    try:
        return loop.run(
            replay_async(
                recording,
                url,
                timeout=timeout,
                normalise=normalise,
                additional_headers=additional_headers,
                max_size=max_size,
            )
        )
    finally:
        loop.close()
