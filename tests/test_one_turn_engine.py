"""One turn engine: a turn gives the same frames through every path that runs it.

The notebook console with a MockWebSocket, a SyncWebSocketInterface driven by hand,
and the server over a real socket all frame turns with memgpt_lab.turns, so their
outgoing frames agree field for field (but for the server's request bookkeeping).
"""

from __future__ import annotations

import json
from typing import Any

from websockets.sync.client import connect

from memgpt_lab.presets import create_agent_from_preset
from memgpt_lab.recorder import MockWebSocket, Recording
from memgpt_lab.system import FixedClock
from memgpt_lab.widgets import AgentConsole
from memgpt_lab.ws import SyncWebSocketInterface
from memgpt_lab.ws.server import LabServer

MESSAGES = ["Hello, is anyone there?", "My name is Ada.", "Remember that I like tea."]
#: Fields only the server adds: who asked, which request.
SERVER_ONLY = {"requested_by", "request_id"}


def outgoing(texts: list[str]) -> list[dict[str, Any]]:
    frames = [json.loads(text) for text in texts]
    return [{k: v for k, v in f.items() if k not in SERVER_ONLY} for f in frames]


def agent(interface: Any = None) -> Any:
    return create_agent_from_preset(
        "memgpt_chat",
        {"name": "sam"},
        "scripted",
        None,
        None,
        interface,
        clock=FixedClock(),
        id="sam",
    )


def through_the_console() -> list[dict[str, Any]]:
    recording = Recording()
    console = AgentConsole(agent(), recording=recording)
    try:
        for text in MESSAGES:
            assert console.send(text) is not None, console.last_error
    finally:
        console.close()
    return outgoing([f.text for f in recording if f.direction == "out" and f.text])


def through_an_interface() -> list[dict[str, Any]]:
    ws = MockWebSocket()
    with SyncWebSocketInterface(agent_id="sam") as interface:
        interface.register_client(ws)
        sam = agent(interface)
        for text in MESSAGES:
            interface.begin_turn()
            sam.turn(text)
            interface.end_turn()
        interface.flush()
    return outgoing([f.text for f in ws.recording if f.text])


def through_the_server() -> list[dict[str, Any]]:
    texts: list[str] = []
    with LabServer() as server, connect(server.url) as ws:
        ws.send(
            json.dumps(
                {
                    "type": "command",
                    "command": "create_agent",
                    "config": {"id": "sam", "name": "sam"},
                }
            )
        )
        assert json.loads(ws.recv(timeout=10))["status"] == "OK: Agent initialized"
        for text in MESSAGES:
            ws.send(json.dumps({"type": "user_message", "message": text, "agent_id": "sam"}))
            while True:
                frame = ws.recv(timeout=10)
                assert isinstance(frame, str)
                texts.append(frame)
                if json.loads(frame)["type"] == "agent_response_end":
                    break
    frames = outgoing(texts)
    # the server's seq counts the create_agent answer too: number the turns' frames from 1
    return [{**f, "seq": f["seq"] - 1} for f in frames]


def test_console_interface_and_server_send_the_same_frames() -> None:
    console = through_the_console()
    assert console[0] == {"type": "agent_response_start", "agent_id": "sam", "turn_id": 1, "seq": 1}
    assert {f["turn_id"] for f in console} == {1, 2, 3}
    assert console == through_an_interface()
    assert console == through_the_server()
