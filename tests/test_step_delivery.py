"""A step's frames are delivered when step() returns; a step commits all or nothing;
text is valid Unicode end to end, through a real agent and a strict mock socket."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosedError

from memgpt_lab import system
from memgpt_lab.agent import Agent
from memgpt_lab.interface import AgentInterface, MultiInterface
from memgpt_lab.llm import ReplayModel, Turn
from memgpt_lab.presets import create_agent_from_preset
from memgpt_lab.recorder import MockWebSocket
from memgpt_lab.system import FixedClock
from memgpt_lab.ws import AsyncWebSocketInterface, SyncWebSocketInterface
from memgpt_lab.ws import interface as interface_module


def make_agent(interface: AgentInterface | None = None, model: Any = "scripted") -> Agent:
    return create_agent_from_preset(
        "memgpt_chat", None, model, "Name: Sam", "Name: unknown", interface, clock=FixedClock()
    )


def test_the_ws_package_exports_the_interfaces() -> None:
    assert SyncWebSocketInterface is interface_module.SyncWebSocketInterface
    assert AsyncWebSocketInterface is interface_module.AsyncWebSocketInterface


def test_frames_are_on_the_mock_socket_when_step_returns() -> None:
    """MemGPT's own test read the mock socket right after step(), with no flush."""
    for _ in range(20):  # it used to find 0 of 4 frames most of the time
        ws = MockWebSocket()
        with SyncWebSocketInterface() as interface:
            interface.register_client(ws)
            agent = make_agent(interface)
            agent.step(system.package_user_message("Hello, is anyone there?"), first_message=True)
            assert [f.message_type for f in ws.recording] == [
                "internal_monologue",
                "function_message",
                "assistant_message",
                "function_message",
            ]


class Exploding(AgentInterface):
    """An observer that raises at the n-th function message."""

    def __init__(self, at: int | None) -> None:
        self.at = at
        self.seen = 0

    def function_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        self.seen += 1
        if self.seen == self.at:
            raise RuntimeError("observer broke")


def state(agent: Agent) -> str:
    return json.dumps(
        [
            agent.messages,
            agent.memory.blocks,
            [e.message for e in agent.recall_memory.entries],
            [p.text for p in agent.archival_memory.passages],
            agent.summaries,
            agent.heartbeats_paused_minutes,
        ]
    )


@pytest.mark.parametrize("at", [1, 2])
@pytest.mark.parametrize(
    "turn",
    [
        Turn("Noting it.", "core_memory_append", {"name": "human", "content": "Likes tea"}),
        Turn("Keeping it.", "archival_memory_insert", {"content": "the fence is blue"}),
        Turn("Quiet.", "pause_heartbeats", {"minutes": 30}),
    ],
    ids=["core", "archival", "pause"],
)
def test_an_observer_that_raises_undoes_the_whole_step(at: int, turn: Turn) -> None:
    """Before: the human block was edited but none of the step's messages were stored."""
    observer = Exploding(None)
    agent = make_agent(MultiInterface([observer]), ReplayModel(["hello", turn]))
    agent.step("first")
    before = state(agent)
    observer.at, observer.seen = at, 0
    with pytest.raises(RuntimeError, match="observer broke"):
        agent.step("second")
    assert state(agent) == before


def test_mock_socket_encodes_utf8_like_a_real_socket() -> None:
    ws = MockWebSocket()
    import asyncio

    with pytest.raises(UnicodeEncodeError):
        asyncio.run(ws.send('{"message":"\ud800"}'))
    assert len(ws.recording) == 0  # nothing was sent, so nothing is recorded
    asyncio.run(ws.send('{"message":"naïve ✓ 😀"}'))
    assert ws.recording[0].json == {"message": "naïve ✓ 😀"}


def test_mock_socket_enforces_the_clients_max_size() -> None:
    import asyncio

    ws = MockWebSocket(max_size=100)
    asyncio.run(ws.send("x" * 100))
    asyncio.run(ws.send("é" * 60))  # 120 bytes in UTF-8: the client closes with 1009
    assert ws.closed and ws.close_code == 1009
    with pytest.raises(ConnectionClosedError):
        asyncio.run(ws.send("more"))
    assert [(f.opcode, f.close_code) for f in ws.recording] == [
        ("text", None),
        ("text", None),
        ("close", 1009),
    ]


def test_an_oversized_frame_drops_that_client_alone() -> None:
    small, big = MockWebSocket(max_size=200), MockWebSocket()
    dropped: list[Any] = []
    with SyncWebSocketInterface(on_drop=lambda ws, exc: dropped.append(ws)) as interface:
        interface.register_client(small)
        interface.register_client(big)
        interface.assistant_message("short")
        interface.assistant_message("long " * 100)
        interface.assistant_message("after")
        interface.flush()
    assert dropped == [small]
    assert [f.json["message"] for f in big.recording] == ["short", "long " * 100, "after"]


def test_a_slow_client_over_its_bound_is_dropped_and_the_others_keep_everything() -> None:
    class Stuck:
        async def send(self, text: str) -> None:
            import asyncio

            await asyncio.Event().wait()  # never returns: a client that stopped reading

    stuck, fine = Stuck(), MockWebSocket()
    dropped: list[tuple[Any, BaseException]] = []
    with SyncWebSocketInterface(
        max_queued_bytes=5_000, on_drop=lambda ws, exc: dropped.append((ws, exc))
    ) as interface:
        interface.register_client(stuck)
        interface.register_client(fine)
        for n in range(200):
            interface.function_message(f"event {n} " * 4)
            fine.recording.wait_for(count=n + 1)  # the reading client never lags behind
        assert [ws for ws, _ in dropped] == [stuck]
        assert "fell more than 5000 bytes behind" in str(dropped[0][1])
        assert len(fine.recording) == 200
        interface.unregister_client(stuck)


#: All of Unicode, with lone surrogates drawn often (plain characters() almost never draws them).
ANY_TEXT = st.text(
    st.one_of(st.characters(exclude_categories=()), st.integers(0xD800, 0xDFFF).map(chr)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example("\ud800")
@example("a\udfff\ud83d")
@given(text=ANY_TEXT)
def test_any_text_reaches_a_strict_socket_through_a_real_agent(text: str) -> None:
    """All of Unicode, surrogates included: the agent echoes it, the frames stay valid UTF-8."""
    ws = MockWebSocket()
    with SyncWebSocketInterface() as interface:
        interface.register_client(ws)
        agent = make_agent(interface)
        agent.turn("hello")
        turn = agent.turn(text)
    assert ws.closed is False  # never dropped: every frame could be sent
    said = [
        json.loads(f.text)["message"] for f in ws.recording if f.message_type == "assistant_message"
    ]
    # the same text as JSON carries it (a pair of lone surrogates reads back as one character)
    assert said[-1] == json.loads(json.dumps(turn.replies[-1]))
    for frame in ws.recording:
        assert frame.text is not None
        frame.text.encode("utf-8")
    ws.recording.table()
    assert all(f.size > 0 for f in ws.recording)


def test_a_client_that_stops_reading_does_not_hang_the_agent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import asyncio

    class Stuck:
        async def send(self, text: str) -> None:
            await asyncio.Event().wait()  # a real socket whose reader went away

    fine = MockWebSocket()
    with SyncWebSocketInterface(step_timeout=0.05) as interface:
        interface.register_client(Stuck())
        interface.register_client(fine)
        agent = make_agent(interface)
        with caplog.at_level("WARNING", logger="memgpt_lab.ws.interface"):
            agent.step("Hello, is anyone there?")  # returns: it does not wait forever
        assert "not waiting for it" in caplog.text
        fine.recording.wait_for(count=4)  # the reading client is not held up either
        for client in interface.clients:
            if not isinstance(client, MockWebSocket):
                interface.unregister_client(client)
