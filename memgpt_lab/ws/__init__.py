"""WebSocket adapters: the MemGPT protocol's frames and the interfaces that send them.

``from memgpt_lab.ws import SyncWebSocketInterface, AsyncWebSocketInterface`` works,
as MemGPT's own import path did; the server, client and proxy are in
:mod:`memgpt_lab.ws.server`, :mod:`memgpt_lab.ws.client` and :mod:`memgpt_lab.ws.proxy`.
The interfaces are imported on first use, so ``memgpt_lab.ws.protocol`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "AsyncWebSocketInterface",
    "ClientTooSlowError",
    "SyncWebSocketInterface",
    "WebSocketClient",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'memgpt_lab.ws' has no attribute {name!r}")
    value = getattr(importlib.import_module("memgpt_lab.ws.interface"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from memgpt_lab.ws.interface import (
        AsyncWebSocketInterface,
        ClientTooSlowError,
        SyncWebSocketInterface,
        WebSocketClient,
    )
