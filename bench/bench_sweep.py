"""Sweeps: 1,000 scripted runs of a 5-turn conversation, in-process and on executors.

Figures (each the better of two measurements): runs/s in one process (``execute_run`` in a
loop in a fresh interpreter, the baseline), on a
process pool of 1 and of 2, and on a 2-worker Dask ``LocalCluster`` (worker
processes, started before timing, as a cluster already running would be); each
executor's rate as a ratio of the in-process rate; and each executor's overhead
per run: the worker-time a run costs beyond the in-process time
(``workers / rate - 1 / in-process rate``), the price of shipping a run out and
its result (frames included) back.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench._common import Result
from memgpt_lab.sweep import Conversation, ConversationTurn, Expect, Sweep, execute_run

RUNS = 1000
ROOT = Path(__file__).resolve().parents[1]
TURNS = (
    ConversationTurn("Hello, is anyone there?", Expect(max_steps=2)),
    ConversationTurn("My name is Ada.", Expect(reply="Ada", calls=("core_memory_replace",))),
    ConversationTurn("Remember that my favourite language is OCaml."),
    ConversationTurn("What do you remember about my favourite language?", Expect(reply="OCaml")),
    ConversationTurn("How was your day?"),
)


def _sweep(runs: int) -> Sweep:
    return Sweep([Conversation("five_turns", TURNS)], repeats=runs)


def _loop(runs: int) -> float:
    specs = _sweep(runs).specs()
    start = time.perf_counter()
    for spec in specs:
        run = execute_run(spec)
        assert run["status"] == "passed", run["error"]
    return runs / (time.perf_counter() - start)


def _in_process(runs: int) -> float:
    # a fresh interpreter, as a script looping over runs would be: this one has imported
    # pandas, dask and distributed, whose objects make every garbage collection slower
    code = f"from bench.bench_sweep import _loop; print(_loop({runs}))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return float(out.stdout.strip())


def _on(executor: concurrent.futures.Executor, runs: int) -> float:
    sweep = _sweep(runs)
    start = time.perf_counter()
    result = sweep.run(executor, progress=False)
    elapsed = time.perf_counter() - start
    assert result.passed and len(result) == runs
    return runs / elapsed


def _processes(workers: int) -> Callable[[int], float]:
    def rate(runs: int) -> float:
        context = multiprocessing.get_context("forkserver")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            pool.submit(int).result()  # the workers' start is not a run's cost
            return _on(pool, runs)

    return rate


def _dask(runs: int) -> float:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        executor = client.get_executor()
        executor.submit(int).result()
        return _on(executor, runs)


def run() -> list[Result]:
    # each figure is the better of two measurements, taken in turn (baseline, executors,
    # baseline, executors), so that load from elsewhere on the machine hits all alike
    executors = (
        ("1 process", 1, _processes(1)),
        ("2 processes", 2, _processes(2)),
        ("Dask LocalCluster, 2 workers", 2, _dask),
    )
    baseline = 0.0
    rates = [0.0] * len(executors)
    for _ in range(2):
        baseline = max(baseline, _in_process(RUNS))
        for index, (_label, _workers, measure) in enumerate(executors):
            rates[index] = max(rates[index], measure(RUNS))
    results = [
        Result(
            f"sweep: {RUNS:,} scripted runs x 5 turns, in-process (baseline)", baseline, "runs/s"
        )
    ]
    for (label, workers, _measure), rate in zip(executors, rates, strict=True):
        overhead = (workers / rate - 1 / baseline) * 1000
        results += [
            Result(f"sweep: {label}", rate, "runs/s"),
            Result(f"sweep: {label} / in-process", rate / baseline, "x"),
            Result(
                f"sweep: {label}, overhead per run (worker time)",
                overhead,
                "ms",
                higher_is_better=False,
            ),
        ]
    return results
