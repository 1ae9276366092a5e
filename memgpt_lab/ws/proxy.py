"""A recording WebSocket proxy: put it between any client and any server.

::

    with RecordingProxy(server.url) as proxy:
        ...connect the client to proxy.url instead...
    proxy.recording.table()

For each client connection the proxy opens one to the upstream server (same
path and query) *during the client's handshake*, so the handshake is
end to end:

- the client's subprotocol offer (``Sec-WebSocket-Protocol``) goes upstream
  and the upstream's choice comes back (none if it chose none);
- ``Authorization`` and ``Cookie`` go upstream (``forward_headers``), the
  client's ``Origin`` too unless ``origin`` says otherwise, plus any
  ``extra_headers``; the upstream's ``Set-Cookie`` comes back;
- an upstream refusal (400, 401, 403...) reaches the client with the same
  status, reason, headers (``WWW-Authenticate``...) and body; an unreachable
  upstream, or a status outside the standard list, is a 502.

Each handshake, accepted or refused, is kept as plain data (see
:func:`handshake_info`: URL, status, headers with secrets masked by
:func:`mask_headers`, subprotocol, start time) in :attr:`RecordingProxy.handshakes`
and, when the recording can hold it, in the recording itself, so HAR export
has it.

Then the proxy forwards every message both ways, text as text and binary as
binary, and records each into a :class:`~memgpt_lab.recorder.Recording`:
``"in"`` is client to upstream, ``"out"`` upstream to client. When one side
closes, the proxy records that close frame (code and reason), closes the
other side with the same code and reason, and records the other side's
answering close. A side that drops without a close frame is recorded as code
1006 and the other side's TCP connection is dropped too, so the client sees
what happened upstream.

Pings: websockets answers a ping at each hop in its protocol layer, so the
sender gets its pong from the proxy at once. The proxy also sends the ping on
with the same payload, so an upstream that watches its clients' liveness (or
a client its server's) sees it; the answer to that forwarded ping ends at the
proxy, and an unsolicited pong (a one-way heartbeat) is forwarded as it is.
With ``record_pings=True`` every ping and pong the proxy receives is
recorded as a ``"ping"``/``"pong"`` control frame. Messages are forwarded
whole (fragments are reassembled); that is what the recording shows as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
)
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Origin, Subprotocol

from memgpt_lab.recorder import Recording
from memgpt_lab.ws._serving import BackgroundServer

__all__ = ["MASK", "RecordingProxy", "handshake_info", "mask_headers", "mask_url"]

logger = logging.getLogger(__name__)

#: What a masked secret reads as.
MASK = "***"
_NO_STATUS = 1005  # "no status code": a close frame without one; cannot be sent on
_ABNORMAL = 1006  # no close frame at all; never on the wire
# Headers whose values are credentials, whatever their names say.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# Any header or query parameter whose name has one of these in it is a credential
# (``auth_token``, ``X-Auth``, ``client_secret``, ``id_token``, ``jwt``...); ``key`` and
# ``pass`` only as a whole part of the name (``x-api-key``, ``key``, but not ``keyword``).
# Session ids are not masked: the server names its session in its hello frame anyway,
# and it is what tells one session's connections from another's.
_SECRET_WORDS = re.compile(
    r"token|secret|passw|pwd|auth|jwt|credential|signature|api_?key|(?:^|[^a-z])(?:key|pass)(?:$|[^a-z])",
    re.IGNORECASE,
)
# Challenges and announcements that merely name a scheme; nothing secret in them.
_PUBLIC_HEADERS = frozenset({"www-authenticate", "proxy-authenticate"})
# Per hop, or rebuilt by the proxy: never copied from an upstream refusal.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "date",
        "server",
        "sec-websocket-accept",
        "sec-websocket-extensions",
    }
)


# --------------------------------------------------------------------------- masking


def _mask_value(name: str, value: str) -> str:
    lower = name.lower()
    if lower in ("cookie", "set-cookie"):
        # Keep the cookie names (and Set-Cookie's attributes), hide the values.
        parts = value.split(";")
        first = parts if lower == "cookie" else parts[:1]
        masked = [f"{p.split('=', 1)[0]}={MASK}" if "=" in p else p for p in first] + parts[
            len(first) :
        ]
        return ";".join(masked)
    if lower in ("authorization", "proxy-authorization"):
        scheme, _, credentials = value.partition(" ")
        return f"{scheme} {MASK}" if credentials else MASK
    return MASK


def _is_secret(name: str) -> bool:
    lower = name.lower()
    if lower.startswith("sec-websocket-") or lower in _PUBLIC_HEADERS:
        return False  # nonces, negotiation and challenges, not credentials
    return lower in _SECRET_HEADERS or _SECRET_WORDS.search(lower) is not None


def mask_headers(headers: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Headers as ``[name, value]`` pairs, in order, with credentials masked.

    ``Authorization: Bearer abc`` becomes ``Bearer ***``; cookies keep their
    names (``a=***; b=***``), ``Set-Cookie`` its attributes; any other header
    whose name says token, secret, password, auth, jwt, credential, signature
    or key (``X-Auth``, ``X-Api-Key``, ``X-Auth-Token``) is ``***``.
    """
    return [
        [name, _mask_value(name, value) if _is_secret(name) else value] for name, value in headers
    ]


def mask_url(url: str) -> str:
    """``url`` with its credentials masked and everything else kept as it was written.

    The user and password of ``ws://user:password@host`` become ``***``; so does
    the value of each query parameter whose name is a credential's, by the same
    words as :func:`mask_headers` (``token``, ``auth_token``, ``client_secret``,
    ``api_key``, ``jwt``...). The rest of the query is kept byte for byte (its
    encoding, blank values, order). Session ids (``?session=``) are not masked.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{MASK if user else ''}{colon}{MASK if colon else ''}@{host}"
    query = parts.query
    if query:
        pieces = []
        for piece in query.split("&"):
            name, eq, value = piece.partition("=")
            if eq and value and _SECRET_WORDS.search(unquote_plus(name)):
                piece = f"{name}={MASK}"
            pieces.append(piece)
        query = "&".join(pieces)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def handshake_info(
    url: str,
    request_headers: Iterable[tuple[str, str]],
    status: int,
    status_text: str,
    response_headers: Iterable[tuple[str, str]],
    *,
    subprotocol: str | None,
    started: float,
) -> dict[str, Any]:
    """One connection's opening handshake as plain JSON-able data, secrets masked.

    Keys: ``url``, ``method`` (``"GET"``), ``status``, ``status_text``,
    ``request_headers`` and ``response_headers`` (``[name, value]`` pairs, see
    :func:`mask_headers`), ``subprotocol`` (or None) and ``started`` (epoch seconds).
    """
    return {
        "url": mask_url(url),
        "method": "GET",
        "status": status,
        "status_text": status_text,
        "request_headers": mask_headers(request_headers),
        "response_headers": mask_headers(response_headers),
        "subprotocol": subprotocol,
        "started": started,
    }


# --------------------------------------------------------------------------- control frames

# (opcode "ping" | "pong", payload, solicited: a pong answering a ping this connection sent)
_ControlHandler = Callable[[str, bytes, bool], None]


class _ControlTap:
    """Hands a connection's pings and pongs to the proxy; holds them until it listens."""

    def __init__(self) -> None:
        self.handler: _ControlHandler | None = None
        self.held: list[tuple[str, bytes, bool]] = []

    def __call__(self, event: object, pending: Mapping[bytes, Any]) -> None:
        if not isinstance(event, Frame) or event.opcode not in (Opcode.PING, Opcode.PONG):
            return
        data = bytes(event.data)
        ping = event.opcode is Opcode.PING
        item = ("ping" if ping else "pong", data, not ping and data in pending)
        if self.handler is None:
            self.held.append(item)
        else:
            self.handler(*item)

    def listen(self, handler: _ControlHandler) -> None:
        self.handler = handler
        held, self.held = self.held, []
        for item in held:
            handler(*item)


class _TapServerConnection(ServerConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.control = _ControlTap()

    def process_event(self, event: Any) -> None:
        if self.request is not None:
            self.control(event, self.pending_pings)  # before a pong acknowledges its ping
        super().process_event(event)


class _TapClientConnection(ClientConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.control = _ControlTap()

    def process_event(self, event: Any) -> None:
        if self.response is not None:
            self.control(event, self.pending_pings)
        super().process_event(event)


def _offered_subprotocols(headers: Headers) -> list[Subprotocol]:
    return [
        Subprotocol(p.strip())
        for value in headers.get_all("Sec-WebSocket-Protocol")
        for p in value.split(",")
        if p.strip()
    ]


# --------------------------------------------------------------------------- the proxy


class RecordingProxy(BackgroundServer):
    """Forwards WebSocket connections to ``upstream_url`` and records every frame.

    Runs on a loop in a background thread, like :class:`~memgpt_lab.ws.server.LabServer`:
    ``start()`` / ``stop()`` or ``with``; clients connect to :attr:`url`.

    Args:
        upstream_url: the server to forward to (``ws://host:port``; a path in it
            is ignored: each client's own path and query are used).
        recording: where to record; a new one by default (:attr:`recording`).
        host: where to listen; loopback by default.
        port: 0 (the default) picks a free port.
        max_size: the largest message accepted from either side, or None.
        open_timeout: seconds allowed for the upstream handshake.
        forward_headers: request headers passed upstream when the client sends them.
        origin: True passes the client's ``Origin`` on, False sends none, a str
            sends that origin whatever the client said.
        extra_headers: request headers the proxy adds (an API key, say).
        record_pings: record pings and pongs as ``"ping"``/``"pong"`` frames.
    """

    _thread_name = "memgpt_lab proxy"

    def __init__(
        self,
        upstream_url: str,
        recording: Recording | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_size: int | None = 1 << 22,
        open_timeout: float = 10.0,
        forward_headers: Sequence[str] = ("Authorization", "Cookie"),
        origin: bool | str = True,
        extra_headers: Mapping[str, str] | None = None,
        record_pings: bool = False,
    ) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"upstream_url must be a ws:// or wss:// URL, not {upstream_url!r}")
        self.upstream_url = upstream_url
        self._upstream = parts
        super().__init__(host, port)
        self.recording = recording if recording is not None else Recording()
        self.max_size = max_size
        self.open_timeout = open_timeout
        self.forward_headers = tuple(forward_headers)
        self.origin = origin
        self.extra_headers = dict(extra_headers or {})
        self.record_pings = record_pings
        #: Each connection's handshake (see :func:`handshake_info`), by connection id; the
        #: recording holds the same (:meth:`Recording.connection_info`), so HAR export has it.
        self.handshakes: dict[str, dict[str, Any]] = {}
        # Upstream connections opened during a client's handshake, until its handler runs.
        self._opened: dict[ServerConnection, ClientConnection] = {}
        self._cids: dict[ServerConnection, str] = {}
        self._began: dict[ServerConnection, tuple[float, float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def _upstream_for(self, path: str) -> str:
        parts = self._upstream
        target = urlsplit(path)
        return urlunsplit((parts.scheme, parts.netloc, target.path, target.query, ""))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- handshake ---------------------------------------------------------------------

    def _upstream_headers(self, request: Request) -> tuple[list[tuple[str, str]], Origin | None]:
        headers = [
            (name, value)
            for name in self.forward_headers
            for value in request.headers.get_all(name)
        ]
        headers.extend(self.extra_headers.items())
        if self.origin is True:
            client_origin = request.headers.get("Origin")
            origin = Origin(client_origin) if client_origin else None
        else:
            origin = Origin(self.origin) if isinstance(self.origin, str) else None
        return headers, origin

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        self._began[connection] = (time.monotonic(), self.recording.wall_clock())
        headers, origin = self._upstream_headers(request)
        subprotocols = _offered_subprotocols(request.headers)
        try:
            upstream = await connect(
                self._upstream_for(request.path),
                additional_headers=headers or None,
                origin=origin,
                subprotocols=subprotocols or None,
                max_size=self.max_size,
                open_timeout=self.open_timeout,
                # The client's own keepalive and close timing travel through us.
                ping_interval=None,
                create_connection=_TapClientConnection,
            )
        except InvalidStatus as exc:
            return _refusal(exc.response)
        except (TimeoutError, OSError, InvalidHandshake) as exc:
            logger.warning("upstream %s unreachable: %r", self.upstream_url, exc)
            return connection.respond(
                HTTPStatus.BAD_GATEWAY, f"upstream {self.upstream_url} unreachable: {exc}\n"
            )
        self._opened[connection] = upstream
        # The handler claims it; if the handler never runs (the client's handshake
        # fails after this, as a plain HTTP request's does, or the client goes away),
        # the upstream connection is closed once the client's is.
        connection.connection_lost_waiter.add_done_callback(
            lambda _: self._close_unclaimed(connection)
        )
        return None

    def _select_subprotocol(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        upstream = self._opened.get(connection)
        return upstream.subprotocol if upstream is not None else None

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> None:
        upstream = self._opened.get(connection)
        if upstream is not None and upstream.response is not None and response.status_code == 101:
            for cookie in upstream.response.headers.get_all("Set-Cookie"):
                response.headers["Set-Cookie"] = cookie  # appends: one header per cookie
        cid = self.recording.new_connection_id()
        self._cids[connection] = cid
        began = self._began.pop(connection, None)
        now = (time.monotonic(), self.recording.wall_clock())
        (monotonic, wall) = began if began is not None else now
        info = handshake_info(
            self._upstream_for(request.path),
            request.headers.raw_items(),
            response.status_code,
            response.reason_phrase,
            response.headers.raw_items(),
            subprotocol=upstream.subprotocol if upstream is not None else None,
            started=wall,
        )
        info["handshake_ms"] = round((now[0] - monotonic) * 1000.0, 3)
        self.handshakes[cid] = info
        self.recording.set_connection_info(cid, info)

    def _close_unclaimed(self, client: ServerConnection) -> None:
        self._cids.pop(client, None)
        self._began.pop(client, None)
        upstream = self._opened.pop(client, None)
        if upstream is not None:
            self._spawn(upstream.close(1001))

    # -- forwarding --------------------------------------------------------------------

    async def _handle(self, client: ServerConnection) -> None:
        upstream = self._opened.pop(client)
        connection_id = self._cids.pop(client, None) or self.recording.new_connection_id()
        assert isinstance(client, _TapServerConnection)
        assert isinstance(upstream, _TapClientConnection)
        client.control.listen(self._controller(upstream, "in", connection_id))
        upstream.control.listen(self._controller(client, "out", connection_id))
        to_upstream = asyncio.create_task(self._pump(client, upstream, "in", connection_id))
        to_client = asyncio.create_task(self._pump(upstream, client, "out", connection_id))
        try:
            await asyncio.gather(to_upstream, to_client)
        finally:
            for task in (to_upstream, to_client):
                task.cancel()
            await asyncio.gather(to_upstream, to_client, return_exceptions=True)
            # Both ends are closed by now, unless this handler was cancelled.
            upstream.transport.abort()
            client.transport.abort()

    def _controller(self, sink: Connection, direction: str, cid: str) -> _ControlHandler:
        """What to do with a ping or pong that arrived from the side opposite ``sink``."""

        def control(opcode: str, data: bytes, solicited: bool) -> None:
            if self.record_pings:
                self.recording.record(direction, data, opcode=opcode, connection_id=cid)
            if opcode == "ping":
                self._spawn(_send_ping(sink, data))
            elif not solicited:  # a heartbeat pong; an answer to our own ping ends here
                self._spawn(_send_pong(sink, data))

        return control

    async def _pump(self, source: Connection, sink: Connection, direction: str, cid: str) -> None:
        """Forward ``source``'s messages to ``sink`` until ``source`` closes, then pass it on."""
        record = self.recording.record
        try:
            async for message in source:
                record(direction, message, connection_id=cid)
                try:
                    await sink.send(message)
                except ConnectionClosed:
                    # sink closed first: the other pump records that and passes it on,
                    # which ends this loop with source's answering close.
                    continue
        except ConnectionClosed:
            pass
        close = source.protocol.close_rcvd
        if close is None:
            sent = source.protocol.close_sent
            if sent is None:
                # No close frame either way: source's TCP connection just dropped.
                self.recording.record_close(
                    direction, _ABNORMAL, "connection dropped", connection_id=cid
                )
                sink.transport.abort()
                return
            if sink.protocol.state is not State.OPEN:
                return  # sink closed first: the other pump recorded it and passed it on
            # Source broke the protocol (text that is no UTF-8, a frame too big...):
            # websockets closed it (1007, 1009...); sink learns why, with the same code.
            close = sent
        self.recording.record_close(direction, close.code, close.reason, connection_id=cid)
        await _pass_close(sink, close)

    # -- lifecycle ---------------------------------------------------------------------

    async def _open(self) -> Server:
        return await serve(
            self._handle,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            process_response=self._process_response,
            select_subprotocol=self._select_subprotocol,
            max_size=self.max_size,
            ping_interval=None,
            create_connection=_TapServerConnection,
        )

    def start(self) -> RecordingProxy:
        """Listen in a background thread; returns once connections are accepted."""
        return super().start()

    def stop(self) -> None:
        """Close every connection (1001 to clients; upstream sees it passed on) and stop."""
        self._stop()

    async def _shutdown(self, server: Server, **options: Any) -> None:
        server.close()
        await server.wait_closed()
        # A copy: closing clients' connections pops entries (see _close_unclaimed).
        for upstream in list(self._opened.values()):
            await upstream.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def __enter__(self) -> RecordingProxy:
        return self.start()

    def __repr__(self) -> str:
        state = self.url if self._server is not None else "stopped"
        return f"<RecordingProxy {state} -> {self.upstream_url} frames={len(self.recording)}>"


def _refusal(upstream: Response) -> Response:
    """The upstream's refusal as the client gets it: same status, headers and body."""
    try:
        status = HTTPStatus(upstream.status_code)
    except ValueError:  # a status outside the standard list: say the gateway failed
        status = HTTPStatus.BAD_GATEWAY
        body = f"upstream answered {upstream.status_code} {upstream.reason_phrase}\n".encode()
        return Response(
            status.value,
            status.phrase,
            Headers(
                [
                    ("Connection", "close"),
                    ("Content-Length", str(len(body))),
                    ("Content-Type", "text/plain; charset=utf-8"),
                ]
            ),
            body,
        )
    body = bytes(upstream.body)
    headers = Headers(
        [(k, v) for k, v in upstream.headers.raw_items() if k.lower() not in _HOP_HEADERS]
    )
    headers["Connection"] = "close"
    headers["Content-Length"] = str(len(body))
    return Response(status.value, upstream.reason_phrase or status.phrase, headers, body)


async def _send_ping(sink: Connection, data: bytes) -> None:
    # A ping whose payload is still awaiting its pong cannot be sent twice; the
    # pending one stands for both.
    with contextlib.suppress(ConnectionClosed, ConcurrencyError):
        await sink.ping(data)


async def _send_pong(sink: Connection, data: bytes) -> None:
    with contextlib.suppress(ConnectionClosed):
        await sink.pong(data)


async def _pass_close(sink: Connection, close: Close) -> None:
    code = close.code
    with contextlib.suppress(ConnectionClosed):
        if code == _NO_STATUS:
            await sink.close()  # 1000 is the nearest code that may be sent
        else:
            await sink.close(code, close.reason)
