"""Small helpers shared by the benchmark modules.

Each ``bench/bench_*.py`` module defines ``run() -> list[Result]``;
``python -m bench`` imports them in name order and prints one table.
Figures are rates measured in this run, and ratios of two rates measured
side by side in the same run, so machines of different speed compare.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Result:
    """One benchmark figure and, where the issue sets one, its target."""

    name: str
    value: float
    unit: str
    target: float | None = None
    higher_is_better: bool = True
    note: str = ""

    @property
    def ok(self) -> bool | None:
        if self.target is None:
            return None
        if self.higher_is_better:
            return self.value >= self.target
        return self.value <= self.target


def best_rate(fn: Callable[[], int], repeat: int = 5) -> float:
    """Items per second of ``fn`` (which returns how many items it did), best of ``repeat``."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        items = fn()
        elapsed = time.perf_counter() - start
        best = max(best, items / elapsed)
    return best


def best_time(fn: Callable[[], object], repeat: int = 5) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
