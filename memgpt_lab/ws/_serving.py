"""A ``websockets`` server run on a background loop: what LabServer and RecordingProxy share."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server

from memgpt_lab._loop import BackgroundLoop

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """Serves on a :class:`BackgroundLoop` of its own, for notebooks, tests and scripts.

    Subclasses give :meth:`_open` (start listening) and :meth:`_shutdown` (wind
    down); this class owns the thread, ``start``/``stop``/``with``, and the
    address. ``port=0`` picks a free port, readable as :attr:`port` once started.
    """

    _thread_name = "memgpt_lab server"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = 0
        self._requested_port = port
        self._loop: BackgroundLoop | None = None
        self._server: Server | None = None

    @property
    def url(self) -> str:
        """``ws://host:port/`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def _open(self) -> Server:
        raise NotImplementedError

    async def _shutdown(self, server: Server, **options: Any) -> None:
        raise NotImplementedError

    def start(self) -> Any:
        """Listen in a background thread; returns (``self``) once connections are accepted."""
        if self._loop is not None:
            raise RuntimeError(f"{type(self).__name__} already started; create a new one")
        self._loop = BackgroundLoop(f"{self._thread_name} {self.host}")
        self._loop.start()
        try:
            self._server = self._loop.run(self._open())
        except BaseException:
            self._loop.close()
            raise
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def _stop(self, **options: Any) -> None:
        if self._loop is None or self._loop.closed:
            return
        if self._server is not None:
            self._loop.run(self._shutdown(self._server, **options))
            self._server = None
        self._loop.close()

    def stop(self) -> None:
        """Wind down and end the thread. Idempotent."""
        self._stop()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
