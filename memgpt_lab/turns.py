"""The turn engine: one I/O-free core that frames an agent's turns and routes their frames.

Every path that puts agent events on the wire drives this one core: the
WebSocket interfaces (sync and async), the notebook console, and the server.
So a turn gives the same frames whichever way it runs::

    {"type":"agent_response_start","agent_id":"a1","turn_id":1,"seq":1}
    {"type":"agent_response","message_type":"internal_monologue","message":"...","agent_id":"a1","turn_id":1,"seq":2}
    ...
    {"type":"agent_response_end","agent_id":"a1","turn_id":1,"seq":6}

- An :class:`Outbox` is one consumer (a connection, a registered client): a
  queue of encoded frames, its own ``seq`` (from 1, spliced into each frame as
  it is queued, so a frame shared by several consumers is encoded once), and a
  bound on the bytes it may hold. :meth:`Outbox.take` hands over everything
  queued in one batch; the adapter that owns the consumer sends it.
- A :class:`TurnEngine` belongs to one agent. Consumers are *subscribed* (they
  see every turn and every event) or take part in one turn as its requester.
  :meth:`TurnEngine.begin_turn` fixes a turn's recipients, so a consumer that
  subscribes mid-turn never sees half a turn; :meth:`TurnEngine.end_turn` queues
  the end after every event emitted before it, by construction.

Thread-safe: events come from whatever thread steps the agent. No sockets, no
event loop: an :class:`Outbox` calls ``on_ready`` (from the emitting thread,
outside the engine's lock) when its queue goes from empty to non-empty, and
``on_overflow`` once if its bound is passed; adapters wake their sender there.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from memgpt_lab.ws import protocol

__all__ = ["DEFAULT_MAX_QUEUED_BYTES", "Outbox", "TurnEngine"]

#: Bytes of frames an outbox may hold before its consumer counts as not reading (8 MiB).
DEFAULT_MAX_QUEUED_BYTES = 8 << 20


class Outbox:
    """One consumer's queue of encoded frames, numbered with its own ``seq``.

    Args:
        id: the consumer's name (a connection id...).
        max_queued_bytes: the most bytes (UTF-8, approximated by characters) the
            queue may hold; None for no bound. Past it the outbox is *overflowed*:
            it drops its queue, accepts nothing more, and calls ``on_overflow``.
        on_ready: called when the queue goes from empty to non-empty.
        on_overflow: called once, when the bound is passed.
    """

    __slots__ = (
        "id",
        "seq",
        "frames",
        "queued_chars",
        "max_queued_bytes",
        "overflowed",
        "closed",
        "on_ready",
        "on_overflow",
        "_lock",
    )

    def __init__(
        self,
        id: str = "",
        *,
        max_queued_bytes: int | None = DEFAULT_MAX_QUEUED_BYTES,
        on_ready: Callable[[], object] | None = None,
        on_overflow: Callable[[], object] | None = None,
    ) -> None:
        self.id = id
        self.seq = 0
        self.frames: collections.deque[str] = collections.deque()
        self.queued_chars = 0
        self.max_queued_bytes = max_queued_bytes
        self.overflowed = False
        self.closed = False
        self.on_ready = on_ready
        self.on_overflow = on_overflow
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Outbox {self.id!r} seq={self.seq} queued={len(self.frames)}>"

    def push(self, body: str) -> None:
        """Queue one encoded frame (a JSON object without ``seq``), numbering it."""
        # push_many for one frame, unrolled: this runs for every frame and every consumer
        with self._lock:
            if self.closed or self.overflowed:
                return
            was_empty = not self.frames
            self.seq += 1
            text = f'{body[:-1]},"seq":{self.seq}}}' if len(body) > 2 else f'{{"seq":{self.seq}}}'
            self.frames.append(text)
            self.queued_chars += len(text)
            limit = self.max_queued_bytes
            overflow = limit is not None and self.queued_chars > limit
            if overflow:
                self.overflowed = True
                self.frames.clear()
                self.queued_chars = 0
        if overflow:
            if self.on_overflow is not None:
                self.on_overflow()
        elif was_empty and self.on_ready is not None:
            self.on_ready()

    def push_many(self, bodies: Iterable[str]) -> None:
        """Queue frames as consecutive ``seq`` numbers; wake the sender at most once."""
        ready = overflow = False
        with self._lock:
            if self.closed or self.overflowed:
                return
            was_empty = not self.frames
            for body in bodies:
                self.seq += 1
                # seq spliced in last: the body is shared by every consumer, encoded once
                text = (
                    f'{body[:-1]},"seq":{self.seq}}}' if len(body) > 2 else f'{{"seq":{self.seq}}}'
                )
                self.frames.append(text)
                self.queued_chars += len(text)
            limit = self.max_queued_bytes
            if limit is not None and self.queued_chars > limit:
                self.overflowed = overflow = True
                self.frames.clear()
                self.queued_chars = 0
            elif was_empty and self.frames:
                ready = True
        if overflow and self.on_overflow is not None:
            self.on_overflow()
        elif ready and self.on_ready is not None:
            self.on_ready()

    def send(self, frame: Mapping[str, Any]) -> None:
        """Queue one frame given as a dict."""
        self.push(protocol.encode(dict(frame)))

    def take(self) -> list[str]:
        """Everything queued, oldest first; the queue is then empty."""
        with self._lock:
            frames = list(self.frames)
            self.frames.clear()
            self.queued_chars = 0
            return frames

    def close(self) -> None:
        """Accept nothing more and drop what is queued."""
        with self._lock:
            self.closed = True
            self.frames.clear()
            self.queued_chars = 0

    @property
    def queued(self) -> int:
        """Frames waiting to be taken."""
        return len(self.frames)


class TurnEngine:
    """Frames one agent's turns and routes each frame to the consumers that should see it.

    Args:
        agent_id: added to every frame as ``agent_id`` when set.
        fields: more additive fields for every frame (``agent_name``...).

    Events emitted outside a turn (an agent stepped by hand) go to the
    subscribers, with ``agent_id`` but no ``turn_id``.

    ``tap``, when set, is called with every frame's body (the JSON text without
    ``seq``), in order, under the engine's lock, after it was routed: what a
    server keeps to replay turns to clients that reconnect.
    """

    def __init__(self, agent_id: str | None = None, *, fields: Mapping[str, Any] | None = None):
        self.agent_id = agent_id
        self.fields: dict[str, Any] = {}
        if agent_id is not None:
            self.fields["agent_id"] = agent_id
        reserved = set(protocol.EVENT_FRAME_FIELDS) | {"turn_id", "agent_id"}
        clash = sorted(reserved.intersection(fields or {}))
        if clash:
            raise ValueError(f"fields may not set {', '.join(clash)}")
        self.fields.update(fields or {})
        self.subscribers: dict[str, Outbox] = {}
        self.turns = 0
        self.frames = 0  # frames framed, whether or not anyone was subscribed
        self.turn_id: int | None = None
        self.tap: Callable[[str], object] | None = None
        self._recipients: tuple[Outbox, ...] = ()
        self._lock = threading.RLock()
        self._encode_outside = self._encode = protocol.event_encoder(**self.fields)

    def __repr__(self) -> str:
        return (
            f"<TurnEngine agent={self.agent_id!r} subscribers={len(self.subscribers)} "
            f"turns={self.turns} open={self.turn_id is not None}>"
        )

    # -- consumers -------------------------------------------------------------------

    def subscribe(self, outbox: Outbox) -> None:
        """``outbox`` sees every turn from the next one on (and events outside turns)."""
        with self._lock:
            self.subscribers[outbox.id] = outbox

    def unsubscribe(self, outbox: Outbox | str) -> bool:
        """Stop routing to ``outbox`` (from the next turn on); returns whether it was subscribed."""
        key = outbox if isinstance(outbox, str) else outbox.id
        with self._lock:
            return self.subscribers.pop(key, None) is not None

    @property
    def recipients(self) -> tuple[Outbox, ...]:
        """Who gets the frames emitted now: the open turn's recipients, else the subscribers."""
        with self._lock:
            if self.turn_id is not None:
                return self._recipients
            return tuple(self.subscribers.values())

    # -- turns -----------------------------------------------------------------------

    def begin_turn(self, requester: Outbox | None = None, **echo: Any) -> int:
        """Open a turn: fix its recipients (the subscribers, and ``requester`` in any case)
        and queue ``agent_response_start``. Returns the turn's id.

        ``echo`` (a ``request_id``...) goes on the start and end frames.

        Raises:
            RuntimeError: a turn is already open.
        """
        with self._lock:
            if self.turn_id is not None:
                raise RuntimeError(f"turn {self.turn_id} is still open; end it first")
            recipients = list(self.subscribers.values())
            if requester is not None and requester not in recipients:
                recipients.append(requester)
            self.turns += 1
            self.turn_id = self.turns
            self._recipients = tuple(recipients)
            self._encode = protocol.event_encoder(**self.fields, turn_id=self.turn_id)
            self._deliver(protocol.agent_response_start(**self._turn_fields(), **echo))
            return self.turn_id

    def end_turn(
        self, error: str | None = None, *, error_code: str | None = None, **echo: Any
    ) -> None:
        """Close the open turn: an ``agent_response_error`` first when ``error`` is given,
        then ``agent_response_end``. Does nothing when no turn is open."""
        with self._lock:
            if self.turn_id is None:
                return
            fields = self._turn_fields()
            if error is not None:
                extra = {"error_code": error_code} if error_code else {}
                self._deliver(protocol.agent_response_error(error, **fields, **extra))
            self._deliver(protocol.agent_response_end(**fields, **echo))
            self.turn_id = None
            self._recipients = ()
            self._encode = self._encode_outside

    def _turn_fields(self) -> dict[str, Any]:
        return {**self.fields, "turn_id": self.turn_id}

    # -- events ----------------------------------------------------------------------

    def emit(self, kind: str, message: Any) -> None:
        """One agent event as an ``agent_response`` frame; ``user_message`` sends nothing."""
        if kind == "user_message":
            return
        with self._lock:
            body = self._encode(kind, message)
            self.frames += 1
            for outbox in (
                self._recipients if self.turn_id is not None else self.subscribers.values()
            ):
                outbox.push(body)
            if self.tap is not None:
                self.tap(body)

    def emit_many(self, events: Iterable[tuple[str, Any]]) -> None:
        """Several events as consecutive frames: no other thread's frame lands between."""
        with self._lock:
            for kind, message in events:
                self.emit(kind, message)

    def _deliver(self, frame: Mapping[str, Any]) -> None:
        body = protocol.encode(dict(frame))
        self.frames += 1
        for outbox in self.recipients:
            outbox.push(body)
        if self.tap is not None:
            self.tap(body)
