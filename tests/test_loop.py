from __future__ import annotations

import asyncio
import threading

import pytest

from memgpt_lab._loop import BackgroundLoop


class Closed(Exception):
    pass


@pytest.fixture
def bg():
    loop = BackgroundLoop("test-loop", Closed).start()
    yield loop
    loop.close()


def test_run_returns_the_result_on_the_loop_thread(bg: BackgroundLoop) -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert bg.run(where()) == "test-loop"
    assert bg.thread.daemon


def test_run_accepts_awaitables_that_are_not_coroutines(bg: BackgroundLoop) -> None:
    class Ready:
        def __await__(self):
            return asyncio.sleep(0, result=42).__await__()

    assert bg.run(Ready()) == 42


def test_the_coroutines_own_timeout_error_passes_through(bg: BackgroundLoop) -> None:
    class Mine(TimeoutError):
        pass

    async def fail() -> None:
        raise Mine("mine")

    with pytest.raises(Mine, match="mine"):
        bg.run(fail())


def test_run_gives_up_after_its_timeout_and_cancels(bg: BackgroundLoop) -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    with pytest.raises(TimeoutError, match="gave up after 0.05 s"):
        bg.run(forever(), timeout=0.05)
    assert cancelled.wait(5)


def test_blocking_calls_from_the_loop_thread_raise_instead_of_deadlocking(
    bg: BackgroundLoop,
) -> None:
    async def nested() -> str:
        inner = asyncio.sleep(0)
        try:
            bg.run(inner)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    assert "cannot be called from that thread" in bg.run(nested())


def test_close_cancels_pending_tasks_and_is_idempotent() -> None:
    bg = BackgroundLoop("closing").start()
    started, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    bg.submit(forever())
    assert started.wait(5)
    bg.close()
    bg.close()
    assert cancelled.is_set()
    assert bg.closed and bg.loop.is_closed() and not bg.thread.is_alive()


def test_use_after_close_raises_the_given_error_and_closes_the_coroutine() -> None:
    bg = BackgroundLoop("used-after-close", Closed).start()
    bg.close()

    async def work() -> None:
        return None

    coro = work()
    with pytest.raises(Closed):
        bg.run(coro)
    assert coro.cr_frame is None  # closed, so never reported as unawaited


def test_a_loop_never_started_closes_cleanly() -> None:
    bg = BackgroundLoop("never-started")
    bg.close()
    assert bg.loop.is_closed()
    with pytest.raises(RuntimeError, match="never-started is closed"):
        bg.submit(asyncio.sleep(0))


@pytest.mark.parametrize(
    "script",
    [
        "from memgpt_lab import SyncWebSocketInterface, MockWebSocket\n"
        "interface = SyncWebSocketInterface()\n"
        "interface.register_client(MockWebSocket())\n"
        "interface.assistant_message('never flushed, never closed')\n",
        # a widget closes its interface from __del__, possibly during shutdown
        "from memgpt_lab.widgets import Lab\nLab()\n",
    ],
    ids=["interface", "lab"],
)
def test_a_program_that_never_closes_still_exits_cleanly(script: str) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stderr == ""
