"""WebSocket interfaces: ordered, complete delivery of agent events as protocol frames.

No sleeps: every wait is on an event, a flush, or a frame arriving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from typing import Any
from unittest.mock import AsyncMock, call

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from memgpt_lab.errors import InterfaceClosedError
from memgpt_lab.interface import AgentInterface
from memgpt_lab.recorder import MockWebSocket, Recording
from memgpt_lab.ws import protocol
from memgpt_lab.ws.interface import AsyncWebSocketInterface, SyncWebSocketInterface

#: What an agent emits for one step that calls send_message, in order.
SEND_MESSAGE_STEP = [
    ("internal_monologue", "User said hi; greet them."),
    ("function_message", "Running send_message({'message': 'Hello!'})"),
    ("assistant_message", "Hello!"),
    ("function_message", "Success: None"),
]


def step(interface: AgentInterface, events: list[tuple[str, str]] = SEND_MESSAGE_STEP) -> None:
    for kind, message in events:
        interface.emit(kind, message)


def expected_frames(
    events: list[tuple[str, str]] = SEND_MESSAGE_STEP, first_seq: int = 1, **extra: Any
) -> list[dict[str, Any]]:
    return [
        {"type": "agent_response", "message_type": kind, "message": message, **extra, "seq": seq}
        for seq, (kind, message) in enumerate(events, start=first_seq)
    ]


class ListClient:
    """The smallest client: an async ``send`` that keeps the text."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)

    @property
    def frames(self) -> list[dict[str, Any]]:
        return [protocol.decode(text) for text in self.sent]


class FailingClient(ListClient):
    """Accepts ``ok`` frames, then raises on every send."""

    def __init__(self, ok: int, exc: Exception) -> None:
        super().__init__()
        self.ok = ok
        self.exc = exc

    async def send(self, text: str) -> None:
        if len(self.sent) >= self.ok:
            raise self.exc
        self.sent.append(text)


class GatedClient(ListClient):
    """Blocks in ``send`` until :meth:`open` is called; tells when a send is waiting.

    Its asyncio parts are made lazily on the loop it is sent from.
    """

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()
        self._gate: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def send(self, text: str) -> None:
        if self._gate is None:
            self._gate = asyncio.Event()
            self._loop = asyncio.get_running_loop()
        self.waiting.set()
        await self._gate.wait()
        self.sent.append(text)

    def open(self) -> None:
        """Let every send through; from any thread."""
        assert self._loop is not None and self._gate is not None
        self._loop.call_soon_threadsafe(self._gate.set)


class CountingClient(ListClient):
    """Sets :attr:`reached` once it has been sent ``until`` frames."""

    def __init__(self, until: int) -> None:
        super().__init__()
        self.until = until
        self.reached = threading.Event()

    async def send(self, text: str) -> None:
        self.sent.append(text)
        if len(self.sent) >= self.until:
            self.reached.set()


# -- order, seq, fields ---------------------------------------------------------------------


def test_sync_send_message_step_reaches_every_client_in_order() -> None:
    clients = [ListClient(), ListClient(), ListClient()]
    with SyncWebSocketInterface(agent_id="agent-1") as interface:
        for client in clients:
            interface.register_client(client)
        step(interface)
        interface.flush()
        for client in clients:
            assert client.frames == expected_frames(agent_id="agent-1")
        # One sequence across clients: the same frame is the same text everywhere.
        assert clients[0].sent == clients[1].sent == clients[2].sent
        assert interface.seq == 4


def test_frames_are_compact_json_without_agent_id_unless_set() -> None:
    client = ListClient()
    with SyncWebSocketInterface() as interface:
        interface.register_client(client)
        interface.assistant_message("héllo")
        interface.flush()
    assert client.sent == [
        '{"type":"agent_response","message_type":"assistant_message","message":"héllo","seq":1}'
    ]


def test_extra_fields_are_added_and_reserved_names_refused() -> None:
    client = ListClient()
    with SyncWebSocketInterface(agent_id="a", extra_fields={"session": "s1"}) as interface:
        interface.register_client(client)
        interface.internal_monologue("hm")
        interface.flush()
    assert client.frames == [
        {
            "type": "agent_response",
            "message_type": "internal_monologue",
            "message": "hm",
            "seq": 1,
            "agent_id": "a",
            "session": "s1",
        }
    ]
    with pytest.raises(ValueError, match="seq"):
        AsyncWebSocketInterface(extra_fields={"seq": 0})


def test_user_message_sends_nothing_and_takes_no_seq() -> None:
    client = ListClient()
    with SyncWebSocketInterface() as interface:
        interface.register_client(client)
        interface.user_message("hi")
        interface.assistant_message("hello")
        interface.flush()
    assert client.frames == expected_frames([("assistant_message", "hello")])


def test_client_gets_frames_emitted_after_it_registered() -> None:
    early, late = ListClient(), ListClient()
    with SyncWebSocketInterface() as interface:
        interface.register_client(early)
        interface.internal_monologue("one")
        interface.register_client(late)
        interface.register_client(late)  # twice: still one channel
        interface.internal_monologue("two")
        interface.flush()
        assert interface.clients == (early, late)
    assert [f["seq"] for f in early.frames] == [1, 2]
    # each client numbers the frames it gets from 1 (seq is per connection, as on the server)
    assert late.frames == expected_frames([("internal_monologue", "two")], first_seq=1)


def test_async_mock_send_is_awaited_once_per_frame_with_the_json_text() -> None:
    async def main() -> None:
        ws = AsyncMock()
        async with AsyncWebSocketInterface(agent_id="a") as interface:
            interface.register_client(ws)
            step(interface)
            await interface.flush()
        assert ws.send.await_count == len(SEND_MESSAGE_STEP)
        texts = [protocol.encode(frame) for frame in expected_frames(agent_id="a")]
        assert ws.send.await_args_list == [call(text) for text in texts]

    asyncio.run(main())


def test_sync_interface_with_async_mock() -> None:
    ws = AsyncMock()
    with SyncWebSocketInterface() as interface:
        interface.register_client(ws)
        step(interface)
        interface.flush()
        assert ws.send.await_count == 4
    assert [protocol.decode(c.args[0]) for c in ws.send.await_args_list] == expected_frames()


# -- threads and loops ----------------------------------------------------------------------


def test_events_from_many_threads_arrive_once_each_with_contiguous_seq() -> None:
    threads_n, per_thread = 8, 400
    clients = [ListClient(), ListClient()]
    start = threading.Barrier(threads_n)

    def agent(thread_index: int, interface: SyncWebSocketInterface) -> None:
        start.wait()  # all threads emit at once
        for n in range(per_thread):
            interface.function_message(f"{thread_index}:{n}")

    with SyncWebSocketInterface() as interface:
        for client in clients:
            interface.register_client(client)
        threads = [
            threading.Thread(target=agent, args=(i, interface), daemon=True)
            for i in range(threads_n)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        interface.flush()

    total = threads_n * per_thread
    for client in clients:
        frames = client.frames
        assert [f["seq"] for f in frames] == list(range(1, total + 1))
        messages = [f["message"] for f in frames]
        assert sorted(messages) == sorted(
            f"{i}:{n}" for i in range(threads_n) for n in range(per_thread)
        )
        for i in range(threads_n):
            mine = [int(m.split(":")[1]) for m in messages if m.startswith(f"{i}:")]
            assert mine == list(range(per_thread))
    assert clients[0].sent == clients[1].sent


def test_async_events_from_a_coroutine_on_the_loop_and_from_a_worker_thread() -> None:
    async def main() -> None:
        client = ListClient()
        async with AsyncWebSocketInterface() as interface:
            interface.register_client(client)
            step(interface)  # an agent stepped inline, on the loop's own thread
            await asyncio.to_thread(step, interface)  # an agent stepped in a worker thread
            await interface.flush()
            assert client.frames == expected_frames(SEND_MESSAGE_STEP * 2)
            assert interface.loop is asyncio.get_running_loop()

    asyncio.run(main())


def test_async_interface_bound_to_a_given_loop_accepts_registration_from_another_thread() -> None:
    async def main() -> None:
        client = ListClient()
        interface = AsyncWebSocketInterface(asyncio.get_running_loop())

        def worker() -> None:
            interface.register_client(client)
            step(interface)

        await asyncio.to_thread(worker)
        await interface.flush()
        await interface.close()
        assert client.frames == expected_frames()

    asyncio.run(main())


def test_async_register_needs_a_loop() -> None:
    interface = AsyncWebSocketInterface()
    with pytest.raises(RuntimeError, match="from a coroutine"):
        interface.register_client(ListClient())
    # Events before any client need no loop; they still take a seq.
    interface.internal_monologue("nobody listens")
    assert interface.seq == 1
    asyncio.run(interface.close())
    assert interface.closed


# -- flush and close wait for delivery --------------------------------------------------------


def test_async_flush_returns_only_after_the_slow_send_completes() -> None:
    async def main() -> None:
        slow = GatedClient()
        async with AsyncWebSocketInterface() as interface:
            interface.register_client(slow)
            step(interface)
            flushing = asyncio.ensure_future(interface.flush())
            await asyncio.to_thread(slow.waiting.wait)
            assert not flushing.done()
            assert slow.sent == []
            slow.open()
            await flushing
            assert slow.frames == expected_frames()

    asyncio.run(main())


def test_sync_flush_and_close_block_until_delivered() -> None:
    slow = GatedClient()
    interface = SyncWebSocketInterface()
    interface.register_client(slow)
    step(interface)
    done = threading.Event()

    def closer() -> None:
        interface.close()
        done.set()

    thread = threading.Thread(target=closer, daemon=True)
    thread.start()
    slow.waiting.wait()
    assert not done.is_set()
    slow.open()
    thread.join()
    assert done.is_set()
    assert slow.frames == expected_frames()
    assert interface.thread.is_alive() is False


def test_slow_client_does_not_hold_back_the_others() -> None:
    slow, fast = GatedClient(), CountingClient(until=4)
    with SyncWebSocketInterface() as interface:
        interface.register_client(slow)
        interface.register_client(fast)
        step(interface)
        slow.waiting.wait()
        # The fast client gets all four frames while the slow one is stuck on its first.
        fast.reached.wait()
        assert fast.frames == expected_frames()
        assert slow.sent == []
        slow.open()
        interface.flush()
        assert slow.frames == expected_frames()


def test_close_is_idempotent_and_use_after_close_raises() -> None:
    client = ListClient()
    interface = SyncWebSocketInterface()
    interface.register_client(client)
    step(interface)
    interface.close()
    interface.close()
    assert client.frames == expected_frames()
    assert interface.closed
    assert interface.thread.is_alive() is False
    assert interface.loop.is_closed()
    for use in (
        lambda: interface.internal_monologue("late"),
        lambda: interface.user_message("late"),
        lambda: interface.register_client(ListClient()),
        interface.flush,
        lambda: interface.print_messages([]),
    ):
        with pytest.raises(InterfaceClosedError, match="interface is closed; create a new one"):
            use()

    async def nothing() -> None:
        pass

    with pytest.raises(InterfaceClosedError):
        interface.run(nothing())  # and the coroutine is closed, not left unawaited


def test_async_close_is_idempotent_and_use_after_close_raises() -> None:
    async def main() -> None:
        client = ListClient()
        interface = AsyncWebSocketInterface()
        interface.register_client(client)
        step(interface)
        await asyncio.gather(interface.close(), interface.close())
        await interface.close()
        assert client.frames == expected_frames()
        with pytest.raises(InterfaceClosedError):
            interface.assistant_message("late")
        with pytest.raises(InterfaceClosedError):
            interface.register_client(ListClient())
        with pytest.raises(InterfaceClosedError):
            await interface.flush()
        assert interface.clients == ()

    asyncio.run(main())


def test_close_does_not_close_clients() -> None:
    ws = AsyncMock()
    with SyncWebSocketInterface() as interface:
        interface.register_client(ws)
        interface.internal_monologue("x")
    ws.close.assert_not_awaited()


def test_blocking_calls_from_the_interface_thread_raise_instead_of_deadlocking() -> None:
    with SyncWebSocketInterface() as interface:

        async def flush_from_inside() -> None:
            interface.flush()

        with pytest.raises(RuntimeError, match="cannot be called from that thread"):
            interface.run(flush_from_inside())


def test_unregister_stops_delivery() -> None:
    kept, removed = ListClient(), ListClient()
    with SyncWebSocketInterface() as interface:
        interface.register_client(kept)
        interface.register_client(removed)
        interface.internal_monologue("one")
        interface.flush()
        interface.unregister_client(removed)
        interface.unregister_client(removed)  # not registered: nothing happens
        interface.internal_monologue("two")
        interface.flush()
        assert interface.clients == (kept,)
    assert [f["message"] for f in kept.frames] == ["one", "two"]
    assert [f["message"] for f in removed.frames] == ["one"]


# -- dropped clients ------------------------------------------------------------------------


def test_failing_client_is_dropped_and_the_others_get_every_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = ConnectionResetError("peer went away")
    bad = FailingClient(ok=1, exc=error)
    good = [ListClient(), ListClient()]
    drops: list[tuple[object, BaseException]] = []
    caplog.set_level(logging.WARNING, logger="memgpt_lab.ws.interface")
    with SyncWebSocketInterface(on_drop=lambda ws, exc: drops.append((ws, exc))) as interface:
        interface.register_client(good[0])
        interface.register_client(bad)
        interface.register_client(good[1])
        step(interface)
        step(interface)
        interface.flush()
        assert interface.clients == (good[0], good[1])
    assert drops == [(bad, error)]
    assert bad.frames == expected_frames()[:1]
    for client in good:
        assert client.frames == expected_frames(SEND_MESSAGE_STEP * 2)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "dropped WebSocket client" in record.getMessage()
    assert "peer went away" in record.getMessage()


def test_on_drop_that_raises_is_logged_and_delivery_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def on_drop(ws: object, exc: BaseException) -> None:
        raise ValueError("callback bug")

    good = ListClient()
    with SyncWebSocketInterface(on_drop=on_drop) as interface:
        interface.register_client(FailingClient(ok=0, exc=OSError("x")))
        interface.register_client(good)
        step(interface)
        interface.flush()
    assert good.frames == expected_frames()
    assert any("on_drop callback failed" in r.getMessage() for r in caplog.records)


# -- print_messages ---------------------------------------------------------------------------


def test_print_messages_replays_history_as_frames() -> None:
    history: list[dict[str, Any]] = [
        {"role": "system", "content": "You are Sam."},
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "Greet them.",
            "function_call": {"name": "send_message", "arguments": '{"message": "Hello!"}'},
        },
        {"role": "function", "content": "Success: None"},
    ]
    client = ListClient()
    with SyncWebSocketInterface(agent_id="a") as interface:
        interface.register_client(client)
        interface.print_messages(history)
        interface.flush()
    assert client.frames == expected_frames(
        [
            ("internal_monologue", "Greet them."),
            ("assistant_message", "Hello!"),
            ("function_message", "Success: None"),
        ],
        agent_id="a",
    )


def test_print_messages_with_a_bad_history_sends_nothing() -> None:
    client = ListClient()
    with SyncWebSocketInterface() as interface:
        interface.register_client(client)
        with pytest.raises(ValueError, match="role"):
            interface.print_messages([{"role": "assistant", "content": "x"}, {"role": "?"}])
        interface.flush()
    assert client.sent == []


# -- real websockets over loopback ------------------------------------------------------------


def test_async_interface_over_real_websockets() -> None:
    async def main() -> None:
        interface = AsyncWebSocketInterface(agent_id="a")
        registered = asyncio.Event()

        async def handler(connection: ServerConnection) -> None:
            interface.register_client(connection)
            registered.set()
            await connection.wait_closed()

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                await registered.wait()
                await asyncio.to_thread(step, interface)  # the agent steps in a worker
                step(interface)
                await interface.flush()
                received = [json.loads(await ws.recv()) for _ in range(8)]
                await interface.close()
        assert received == expected_frames(SEND_MESSAGE_STEP * 2, agent_id="a")

    asyncio.run(main())


def test_sync_interface_over_real_websockets_served_on_its_loop() -> None:
    with SyncWebSocketInterface() as interface:
        registered = threading.Semaphore(0)

        async def handler(connection: ServerConnection) -> None:
            interface.register_client(connection)
            registered.release()
            await connection.wait_closed()

        async def start() -> Server:
            # serve() needs a running loop when called, so call it on the interface's loop.
            return await serve(handler, "127.0.0.1", 0)

        server = interface.run(start())
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        # One client from a thread of its own, one on the interface's loop:
        # connect() is an awaitable object, which run() accepts as well.
        with sync_connect(url) as sync_ws:
            async_ws = interface.run(connect(url))
            registered.acquire()
            registered.acquire()
            step(interface)
            interface.flush()
            received = [protocol.decode(sync_ws.recv()) for _ in range(4)]

            async def receive_and_close() -> list[dict[str, Any]]:
                frames = [protocol.decode(await async_ws.recv()) for _ in range(4)]
                await async_ws.close()
                return frames

            received_on_loop = interface.run(receive_and_close())

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        interface.run(stop())
    assert received == received_on_loop == expected_frames()


# -- MockWebSocket, the project's recording connection ------------------------------------------


RUNNING_SEND_MESSAGE = re.compile(r"^Running send_message\(")


def test_mock_websockets_record_the_step_in_order_on_each_connection() -> None:
    recording = Recording()
    first, second = MockWebSocket(recording), MockWebSocket(recording)
    with SyncWebSocketInterface(agent_id="a") as interface:
        interface.register_client(first)
        interface.register_client(second)
        step(interface)
        # Wait on the recording itself, without flushing: all 8 frames arrive.
        recording.wait_for({"type": "agent_response"}, count=8)
    for ws in (first, second):
        frames = recording.filter(connection_id=ws.id)
        assert [frame.direction for frame in frames] == ["out"] * 4
        assert [frame.json for frame in frames] == expected_frames(agent_id="a")
        frames.assert_sequence(
            [
                {"message_type": "internal_monologue"},
                {"message_type": "function_message", "message": RUNNING_SEND_MESSAGE},
                {"message_type": "assistant_message", "message": "Hello!"},
                {"message_type": "function_message", "message": "Success: None"},
            ]
        )
    assert not first.closed  # the interface does not own its clients


def test_closed_mock_websocket_is_dropped_with_connection_closed() -> None:
    recording = Recording()
    gone, stays = MockWebSocket(recording), MockWebSocket(recording)
    drops: list[tuple[object, BaseException]] = []

    async def main() -> None:
        async with AsyncWebSocketInterface(on_drop=lambda ws, e: drops.append((ws, e))) as iface:
            iface.register_client(gone)
            iface.register_client(stays)
            step(iface)
            await iface.flush()
            await gone.close()
            step(iface)
            await iface.flush()
            assert iface.clients == (stays,)

    asyncio.run(main())
    [(ws, exc)] = drops
    assert ws is gone and isinstance(exc, ConnectionClosed)
    assert len(recording.filter(connection_id=stays.id, type="agent_response")) == 8
    assert len(recording.filter(connection_id=gone.id, type="agent_response")) == 4


def test_mock_websocket_fail_after_drops_only_that_client() -> None:
    flaky, steady = MockWebSocket(fail_after=2), MockWebSocket()
    drops: list[BaseException] = []
    with SyncWebSocketInterface(on_drop=lambda ws, exc: drops.append(exc)) as interface:
        interface.register_client(flaky)
        interface.register_client(steady)
        step(interface)
        interface.flush()
    assert len(drops) == 1
    assert [f.json["seq"] for f in flaky.recording] == [1, 2]
    assert [f.json for f in steady.recording] == expected_frames()
