"""A recording WebSocket proxy: put it between any client and any server.

::

    with RecordingProxy(server.url) as proxy:
        ...connect the client to proxy.url instead...
    proxy.recording.table()

For each client connection the proxy opens one to the upstream server (same
path and query; ``Authorization`` and ``Origin`` passed on) *during the
client's handshake*, so an upstream refusal (401, 403...) reaches the client
as the same HTTP status. Then it forwards every message both ways, text as
text and binary as binary, and records each into a
:class:`~memgpt_lab.recorder.Recording`: ``"in"`` is client to upstream,
``"out"`` upstream to client. When one side closes, the proxy records that
close frame (code and reason), closes the other side with the same code
and reason, and records the other side's answering close. A side that drops
without a close frame is recorded as code 1006 and the other side's TCP
connection is dropped too, so the client sees what happened upstream.

Pings are answered at each hop by websockets, not forwarded. Messages are
forwarded whole (fragments are reassembled); that is what the recording
shows as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Request, Response
from websockets.typing import Origin

from memgpt_lab.recorder import Recording
from memgpt_lab.ws._serving import BackgroundServer

__all__ = ["RecordingProxy"]

logger = logging.getLogger(__name__)

_FORWARDED_HEADERS = ("Authorization",)
_NO_STATUS = 1005  # "no status code": a close frame without one; cannot be sent on
_ABNORMAL = 1006  # no close frame at all; never on the wire


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
        # Upstream connections opened during a client's handshake, until its handler runs.
        self._opened: dict[ServerConnection, ClientConnection] = {}
        self._unclaimed: set[asyncio.Task[None]] = set()

    def _upstream_for(self, path: str) -> str:
        parts = self._upstream
        target = urlsplit(path)
        return urlunsplit((parts.scheme, parts.netloc, target.path, target.query, ""))

    # -- handshake ---------------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        headers = {k: request.headers[k] for k in _FORWARDED_HEADERS if k in request.headers}
        origin = request.headers.get("Origin")
        try:
            upstream = await connect(
                self._upstream_for(request.path),
                additional_headers=headers or None,
                origin=Origin(origin) if origin else None,
                max_size=self.max_size,
                open_timeout=self.open_timeout,
                # The client's own keepalive and close timing travel through us.
                ping_interval=None,
            )
        except InvalidStatus as exc:
            upstream_response = exc.response
            body = upstream_response.body.decode("utf-8", "replace")
            try:
                status = HTTPStatus(upstream_response.status_code)
            except ValueError:  # a status outside the standard list: say the gateway failed
                status = HTTPStatus.BAD_GATEWAY
            return connection.respond(status, body)
        except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
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

    def _close_unclaimed(self, client: ServerConnection) -> None:
        upstream = self._opened.pop(client, None)
        if upstream is not None:
            task = asyncio.get_running_loop().create_task(upstream.close(1001))
            self._unclaimed.add(task)
            task.add_done_callback(self._unclaimed.discard)

    # -- forwarding --------------------------------------------------------------------

    async def _handle(self, client: ServerConnection) -> None:
        upstream = self._opened.pop(client)
        connection_id = self.recording.new_connection_id()
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
            if source.protocol.close_sent is None:
                # No close frame either way: source's TCP connection just dropped.
                self.recording.record_close(
                    direction, _ABNORMAL, "connection dropped", connection_id=cid
                )
                sink.transport.abort()
            return
        self.recording.record_close(direction, close.code, close.reason, connection_id=cid)
        await _pass_close(sink, close)

    # -- lifecycle ---------------------------------------------------------------------

    async def _open(self) -> Server:
        return await serve(
            self._handle,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            max_size=self.max_size,
            ping_interval=None,
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

    def __enter__(self) -> RecordingProxy:
        return self.start()

    def __repr__(self) -> str:
        state = self.url if self._server is not None else "stopped"
        return f"<RecordingProxy {state} -> {self.upstream_url} frames={len(self.recording)}>"


async def _pass_close(sink: Connection, close: Close) -> None:
    code = close.code
    with contextlib.suppress(ConnectionClosed):
        if code == _NO_STATUS:
            await sink.close()  # 1000 is the nearest code that may be sent
        else:
            await sink.close(code, close.reason)
