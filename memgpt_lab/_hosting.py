"""What the project's servers share: the loopback check and running until Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["is_loopback", "run_until_interrupted"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_until_interrupted(server: Any, announce: Callable[[], str]) -> None:
    """Start ``server`` (a context manager), print ``announce()`` once it listens, and
    serve until Ctrl-C or SIGTERM; then leave the ``with`` block, which stops it cleanly."""
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with server:
            print(announce(), flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()  # only Ctrl-C or SIGTERM end it
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM ends a server like Ctrl-C does: through the same clean path.
    raise KeyboardInterrupt
