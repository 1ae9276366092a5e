"""What the WebSocket server tests share: a sync client whose frames are read as dicts.

Not a test module (pytest collects ``test_*.py``); the tests import it by name,
their own folder being on ``sys.path``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from websockets.sync.client import ClientConnection, connect

from memgpt_lab.interface import AgentInterface
from memgpt_lab.ws import protocol

TIMEOUT = 10


def open_client(url: str, **kwargs: Any) -> ClientConnection:
    return connect(url, open_timeout=TIMEOUT, **kwargs)


def recv(ws: ClientConnection) -> dict[str, Any]:
    frame = json.loads(ws.recv(timeout=TIMEOUT))
    assert isinstance(frame, dict)
    return frame


def ask(ws: ClientConnection, frame: dict[str, Any] | str | bytes) -> dict[str, Any]:
    """Send a frame (a dict is sent as JSON) and read the next one."""
    ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))
    return recv(ws)


def hello(ws: ClientConnection) -> dict[str, Any]:
    answer = ask(ws, protocol.command("hello"))
    assert answer["type"] == "hello", answer
    return answer


def create(ws: ClientConnection, **config: Any) -> str:
    """Create an agent; its id."""
    answer = ask(ws, protocol.command("create_agent", config))
    assert answer["status"] == "OK: Agent initialized", answer
    return str(answer["agent_id"])


def until_end(ws: ClientConnection) -> list[dict[str, Any]]:
    """The frames up to and including the next ``agent_response_end``."""
    frames = [recv(ws)]
    while frames[-1]["type"] != "agent_response_end":
        frames.append(recv(ws))
    return frames


def talk(ws: ClientConnection, agent_id: str, message: str, **extra: Any) -> list[dict[str, Any]]:
    """Send a user message and read its turn to the end."""
    ws.send(json.dumps(protocol.user_message(message, agent_id, **extra)))
    return until_end(ws)


class Gate:
    """Builds a test's agents for a LabServer and holds a blocking one mid-turn until released.

    ``agent_class(config, interface, gate)`` makes each agent (an agent whose
    config says ``block`` sets :attr:`started` and waits for :attr:`release`);
    ``refuse(config)`` may raise to refuse a config, as a real factory would.
    """

    def __init__(
        self,
        agent_class: Callable[[dict[str, Any], AgentInterface, Gate], Any],
        refuse: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.agents: list[Any] = []
        self._agent_class = agent_class
        self._refuse = refuse

    def factory(self, config: dict[str, Any], interface: AgentInterface) -> Any:
        if self._refuse is not None:
            self._refuse(config)
        agent = self._agent_class(config, interface, self)
        self.agents.append(agent)
        return agent
