"""The TrafficInspector and the Timeline live on a busy server, in the server's process.

As in a notebook: a :class:`~memgpt_lab.ws.server.LabServer` serves from a
thread of this process (the kernel's), its Recording watched by a live
TrafficInspector and a live Timeline (no browser: the widgets do all their
Python work, nothing is rendered). Ten MemGPT-style clients in a process of
their own run one-step turns as fast as the server answers. Measured side by
side in this run, runs interleaved, best of ``REPEAT``:

- the server's turns/s with the widgets / without them, and the same as CPU
  seconds per turn of this process (less disturbed by other processes on a
  shared machine than turns/s);
- how far the Timeline trails: the age of the oldest frame it has not drawn
  (0 when it has drawn every frame), sampled every 20 ms during the load: the
  95th percentile of the worst run, and the worst sample in the note;
- this process's threads during the load, with the widgets minus without;
- the seconds after the load stops until the process is idle (a 250 ms
  window using under 10% of a core).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import re
import threading
import time
from typing import Any

from bench._common import Result

CLIENTS = 10
TURNS = 400
WARMUP = 10
REPEAT = 4
SAMPLE = 0.02
IDLE_WINDOW = 0.25
IDLE_CPU = 0.10  # of one core
IDLE_GIVE_UP = 30.0

_FRAMES = re.compile(r'data-frames="(\d+)"')


def _drawn(svg: str) -> int:
    found = _FRAMES.search(svg[:600])
    return int(found.group(1)) if found else 0


def _until_idle(started: float) -> float:
    """Seconds from ``started`` until this process uses < IDLE_CPU of a core for IDLE_WINDOW."""
    while True:
        at, cpu = time.monotonic(), time.process_time()
        time.sleep(IDLE_WINDOW)
        if time.process_time() - cpu < IDLE_CPU * IDLE_WINDOW:
            return round(at - started, 3)
        if at - started > IDLE_GIVE_UP:
            return float("inf")


def _one_run(pool: concurrent.futures.Executor, with_widgets: bool) -> dict[str, Any]:
    from bench.bench_server import drive
    from memgpt_lab.ws.server import LabServer

    server = LabServer().start()
    rec = server.recording
    assert rec is not None
    widgets: list[Any] = []
    timeline = None
    if with_widgets:
        from memgpt_lab.widgets import Timeline, TrafficInspector

        widgets.append(TrafficInspector(rec))
        timeline = Timeline(rec)
        widgets.append(timeline)
    stop = threading.Event()
    samples: dict[str, Any] = {"threads": threading.active_count()}
    trails: list[float] = []

    def sample() -> None:
        while not stop.wait(SAMPLE):
            samples["threads"] = max(samples["threads"], threading.active_count())
            if timeline is not None:
                drawn, total = _drawn(timeline.value), len(rec)
                age = time.monotonic() - rec[drawn].time if drawn < total else 0.0
                trails.append(age)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        outcome = pool.submit(drive, server.url, CLIENTS, TURNS, WARMUP, os.getpid()).result()
        idle = _until_idle(time.monotonic())
    finally:
        stop.set()
        sampler.join()
        for widget in widgets:
            widget.close()
        server.stop()
    frames = len(rec)
    trails.sort()
    samples["trail_p95"] = trails[int(len(trails) * 0.95)] if trails else 0.0
    samples["trail_max"] = trails[-1] if trails else 0.0
    return {**outcome, **samples, "idle": idle, "frames": frames}


def run() -> list[Result]:
    context = multiprocessing.get_context("spawn")
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        for _ in range(REPEAT):
            for with_widgets in (False, True):
                runs[with_widgets].append(_one_run(pool, with_widgets))
    bare = max(runs[False], key=lambda r: r["rate"])
    live = max(runs[True], key=lambda r: r["rate"])
    cpu = {mode: min(r["server_cpu"] / r["rate"] for r in runs[mode]) for mode in runs}
    trail = max(r["trail_p95"] for r in runs[True])
    worst = max(r["trail_max"] for r in runs[True])
    threads = max(r["threads"] for r in runs[True]) - max(r["threads"] for r in runs[False])
    idle = max(r["idle"] for r in runs[True])
    fps = bare["rate"] * bare["frames"] / max(bare["turns"] + CLIENTS * WARMUP, 1)
    return [
        Result(
            "widgets live on a busy server: server speed with / without",
            live["rate"] / bare["rate"],
            "ratio",
            target=0.85,
            note=f"{live['rate']:,.0f} against {bare['rate']:,.0f} turns/s"
            f" (~{fps:,.0f} frames/s); server process CPU {live['server_cpu']:.0%}"
            f" / {bare['server_cpu']:.0%} of a core",
        ),
        Result(
            "widgets live: server CPU per turn, without / with widgets",
            cpu[False] / cpu[True],
            "ratio",
            target=0.85,
            note=f"{cpu[True] * 1e3:.2f} against {cpu[False] * 1e3:.2f} ms of CPU a turn (this"
            " process, the least of the runs): steadier than turns/s on a shared machine",
        ),
        Result(
            "widgets live: Timeline trails the recording by (p95 of samples)",
            trail,
            "s",
            target=0.5,
            higher_is_better=False,
            note=f"the worst run's 95th percentile; the worst sample of all: {worst:.2f} s",
        ),
        Result(
            "widgets live: threads during the load, with - without widgets",
            threads,
            "threads",
            target=1,
            higher_is_better=False,
            note="the widgets share one scheduler thread",
        ),
        Result(
            "widgets live: idle after the load stops",
            idle,
            "s",
            target=1.0,
            higher_is_better=False,
            note=f"worst of {REPEAT} runs; without widgets: "
            f"{max(r['idle'] for r in runs[False]):.2f} s",
        ),
    ]
