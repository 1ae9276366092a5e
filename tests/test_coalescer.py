"""Coalescer and Scheduler: at most one refresh in flight, no thread per refresh.

The scheduler runs on an injected clock with no thread of its own (``run_due``),
so nothing here waits on the wall clock; the thread test uses a real scheduler
thread and synchronises with events only.
"""

from __future__ import annotations

import json
import logging
import threading

import pytest

from memgpt_lab.recorder import Recording
from memgpt_lab.widgets._util import Coalescer, LiveRefresh, Scheduler


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def scheduler(clock: FakeClock) -> Scheduler:
    return Scheduler(clock, thread=False)


def test_a_burst_costs_one_call(scheduler, clock):
    calls: list[float] = []
    coalescer = Coalescer(lambda: calls.append(clock()), interval=0.25, scheduler=scheduler)
    for _ in range(10_000):
        coalescer.poke()
    assert len(scheduler) == 1 and coalescer.pending
    assert scheduler.run_due() == 1
    assert calls == [100.0] and not coalescer.pending
    assert len(scheduler) == 0  # nothing more to do: idle


def test_pokes_during_a_call_make_one_more_call_an_interval_later(scheduler, clock):
    calls: list[float] = []

    def refresh() -> None:
        calls.append(clock())
        if len(calls) == 1:
            clock.now += 0.05  # the refresh takes 50 ms, frames keep coming
            for _ in range(500):
                coalescer.poke()
                assert coalescer.running and len(scheduler) == 0  # no second call in flight

    coalescer = Coalescer(refresh, interval=0.25, scheduler=scheduler)
    coalescer.poke()
    scheduler.run_due()
    assert calls == [100.0]
    assert scheduler.next_due() == pytest.approx(100.25)  # an interval after the first started
    clock.now = 100.2
    assert scheduler.run_due() == 0
    clock.now = 100.25
    assert scheduler.run_due() == 1
    assert calls == [100.0, 100.25]
    assert len(scheduler) == 0 and not coalescer.pending


def test_calls_start_at_least_an_interval_apart(scheduler, clock):
    calls: list[float] = []
    coalescer = Coalescer(lambda: calls.append(clock()), interval=0.1, scheduler=scheduler)
    for _ in range(50):  # a poke every 10 ms for half a second
        coalescer.poke()
        scheduler.run_due()
        clock.now += 0.01
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert len(calls) == 5
    assert min(gaps) >= 0.1 - 1e-9


def test_a_callback_with_more_to_do_is_called_again_without_a_poke(scheduler, clock):
    left = [3]

    def catch_up() -> bool:
        left[0] -= 1
        return left[0] > 0

    coalescer = Coalescer(catch_up, interval=0.1, scheduler=scheduler)
    coalescer.poke()
    for _ in range(10):
        scheduler.run_due()
        clock.now += 0.1
    assert left == [0] and coalescer.calls == 3 and len(scheduler) == 0


def test_close_drops_the_pending_call_and_later_pokes(scheduler):
    calls: list[int] = []
    coalescer = Coalescer(lambda: calls.append(1), interval=0.1, scheduler=scheduler)
    coalescer.poke()
    coalescer.close()
    assert not coalescer.pending
    coalescer.poke()
    scheduler.run_due()
    assert calls == []


def test_a_failing_callback_is_logged_and_the_next_poke_still_works(scheduler, caplog):
    outcomes = iter([RuntimeError("boom"), None])

    def refresh() -> None:
        error = next(outcomes)
        if error is not None:
            raise error

    coalescer = Coalescer(refresh, interval=0, scheduler=scheduler)
    coalescer.poke()
    with caplog.at_level(logging.ERROR, logger="memgpt_lab.widgets._util"):
        scheduler.run_due()
    assert "boom" in caplog.text
    coalescer.poke()
    assert scheduler.run_due() == 1 and coalescer.calls == 2


def test_negative_interval_is_refused(scheduler):
    with pytest.raises(ValueError, match="interval must be at least 0"):
        Coalescer(lambda: None, interval=-1, scheduler=scheduler)


def test_live_refresh_turns_a_recording_burst_into_one_refresh(scheduler):
    rec = Recording()
    refreshes: list[int] = []
    live = LiveRefresh(rec, lambda: refreshes.append(len(rec)), 0.1, scheduler=scheduler)
    for i in range(10_000):
        rec.record("out", json.dumps({"type": "ping", "i": i}))
    assert len(scheduler) == 1
    scheduler.run_due()
    assert refreshes == [10_000]
    live.close()
    rec.record("out", "{}")
    assert len(scheduler) == 0 and rec._subscribers == ()


def test_thread_count_stays_flat_under_a_burst_while_a_refresh_runs():
    # The refresh blocks until the burst is over, as a slow redraw would: every
    # frame of the burst arrives while one refresh is in flight.
    scheduler = Scheduler()
    release, first_started, second_done = threading.Event(), threading.Event(), threading.Event()
    calls: list[int] = []

    def refresh() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            first_started.set()
            assert release.wait(timeout=30)
        else:
            second_done.set()

    rec = Recording()
    live = LiveRefresh(rec, refresh, 0.0, scheduler=scheduler)
    rec.record("out", "{}")
    assert first_started.wait(timeout=30)
    threads = threading.active_count()  # the scheduler's thread included
    seen: list[int] = []
    rec.subscribe(lambda _frame: seen.append(threading.active_count()))
    for i in range(20_000):
        rec.record("out", json.dumps({"i": i}))
    release.set()
    assert second_done.wait(timeout=30)
    # Calls run in order on the one thread: once this marker ran, the second call is over.
    marker = threading.Event()
    scheduler.call_at(scheduler.clock(), marker.set)
    assert marker.wait(timeout=30)
    live.close()
    assert max(seen) == threads
    assert calls == [0, 1]  # 20,000 frames during a refresh: one more refresh, not 20,000
    assert not live.coalescer.pending and not live.coalescer.running and len(scheduler) == 0
