"""The flow of MemGPT's old ``test_websocket_interface.py``, with real assertions.

A socket registered on a WebSocket interface; an agent from the default
preset (persona ``sam_pov``, human ``basic``) in an in-memory state manager;
one packaged user message stepped as the first message; then the frames the
socket received are checked: types, order, JSON content, the assistant's
words. Once with :class:`MockWebSocket`, once with a plain ``AsyncMock`` (as
MemGPT's own test did), once through the async interface.
"""

from __future__ import annotations

import asyncio
import json
from unittest.mock import AsyncMock

import pytest

from memgpt_lab import system
from memgpt_lab.errors import InterfaceClosedError
from memgpt_lab.humans import get_human_text
from memgpt_lab.persistence import InMemoryStateManager
from memgpt_lab.personas import get_persona_text
from memgpt_lab.presets import DEFAULT_PRESET, create_agent_from_preset
from memgpt_lab.recorder import MockWebSocket
from memgpt_lab.ws.interface import AsyncWebSocketInterface, SyncWebSocketInterface

GREETING = "Hello! Yes, I'm here. I'm Sam. What's on your mind?"
SEND_MESSAGE_STEP = [
    {"message_type": "internal_monologue"},
    {
        "message_type": "function_message",
        "message": f"Running send_message({{'message': {GREETING!r}}})",
    },
    {"message_type": "assistant_message", "message": GREETING},
    {"message_type": "function_message", "message": "Success: None"},
]


def make_agent(interface):
    return create_agent_from_preset(
        DEFAULT_PRESET,
        None,  # agent_config: the defaults
        "scripted",
        get_persona_text("sam_pov"),
        get_human_text("basic"),
        interface,
        InMemoryStateManager(),
        clock=system.FixedClock(),
    )


def first_step(agent):
    user_message = system.package_user_message("Hello, is anyone there?")
    return agent.step(user_message, first_message=True, skip_verify=True)


def check_frames(frames: list[dict]) -> None:
    assert [f["type"] for f in frames] == ["agent_response"] * 4
    assert [f["seq"] for f in frames] == [1, 2, 3, 4]
    assert len(frames) == len(SEND_MESSAGE_STEP)
    for frame, expected in zip(frames, SEND_MESSAGE_STEP, strict=True):
        assert {k: frame[k] for k in expected} == expected
    assert frames[0]["message"]  # the inner monologue is not empty


def test_sync_interface_into_mock_websocket():
    ws = MockWebSocket()
    interface = SyncWebSocketInterface()
    interface.register_client(ws)
    agent = make_agent(interface)

    new_messages, heartbeat_request, function_failed, token_warning = first_step(agent)
    interface.flush()

    assert (heartbeat_request, function_failed, token_warning) == (False, False, False)
    assert [m["role"] for m in new_messages] == ["user", "assistant", "function"]
    recording = ws.recording
    assert all(frame.direction == "out" and frame.opcode == "text" for frame in recording)
    check_frames(recording.messages())
    recording.assert_sequence(
        [
            {"message_type": "internal_monologue"},
            {"message_type": "assistant_message", "message": GREETING},
        ]
    )

    interface.close()
    interface.close()  # idempotent
    assert not interface.thread.is_alive()
    with pytest.raises(InterfaceClosedError):
        first_step(agent)  # the agent's events reach a closed interface


def test_sync_interface_into_async_mock():
    ws = AsyncMock()
    interface = SyncWebSocketInterface()
    interface.register_client(ws)
    agent = make_agent(interface)

    first_step(agent)
    interface.close()  # close flushes: every frame has been sent when it returns

    assert ws.send.await_count == 4
    texts = [call.args[0] for call in ws.send.await_args_list]
    check_frames([json.loads(text) for text in texts])


def test_async_interface_into_mock_websocket():
    async def main() -> MockWebSocket:
        ws = MockWebSocket()
        async with AsyncWebSocketInterface() as interface:
            interface.register_client(ws)
            agent = make_agent(interface)
            first_step(agent)  # agent events from the loop's own thread
            await interface.flush()
            assert len(ws.recording) == 4
            # an agent stepped in a worker thread, as a server does
            await asyncio.to_thread(agent.turn, "how are you?")
            await interface.flush()
        return ws

    ws = asyncio.run(main())
    frames = ws.recording.messages()
    check_frames(frames[:4])
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert frames[-2]["message_type"] == "assistant_message"
    assert "“how are you”" in frames[-2]["message"]


def test_two_clients_get_the_same_frames_and_a_failing_one_is_dropped():
    good, broken, also_good = MockWebSocket(), MockWebSocket(fail_after=1), AsyncMock()
    dropped = []
    interface = SyncWebSocketInterface(on_drop=lambda ws, exc: dropped.append(ws))
    for client in (good, broken, also_good):
        interface.register_client(client)
    agent = make_agent(interface)
    first_step(agent)
    interface.close()

    assert dropped == [broken]
    assert len(broken.recording) == 1
    check_frames(good.recording.messages())
    assert [
        json.loads(c.args[0]) for c in also_good.send.await_args_list
    ] == good.recording.messages()
