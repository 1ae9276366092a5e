"""The benchmarks stay runnable: every module imports and offers run()."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
MODULES = sorted(m.name for m in pkgutil.iter_modules([str(BENCH)]) if m.name.startswith("bench_"))


def test_there_are_benchmarks() -> None:
    assert {
        "bench_agent",
        "bench_recorder",
        "bench_ws_interface",
        "bench_inspector",
        "bench_server",
        "bench_llm",
        "bench_sweep",
    } <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_each_benchmark_module_imports_and_has_run(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert callable(module.run)
