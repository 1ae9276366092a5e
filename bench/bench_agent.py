"""The offline agent's speed, and the cost of ``import memgpt_lab``."""

from __future__ import annotations

import subprocess
import sys

from bench._common import Result, best_rate
from memgpt_lab import system
from memgpt_lab.presets import DEFAULT_PRESET, create_agent_from_preset

MESSAGES = [
    "How was your day?",
    "Tell me something about yourself.",
    "I went for a run this morning.",
    "What should I cook tonight?",
]


def _agent():
    return create_agent_from_preset(DEFAULT_PRESET, None, "scripted", clock=system.FixedClock())


def _steps(n: int = 3000) -> int:
    agent = _agent()
    for i in range(n):
        agent.step(MESSAGES[i % len(MESSAGES)])
    return n


def _turns(n: int = 500) -> int:
    agent = _agent()
    for i in range(n):
        agent.turn(
            f"remember that fact number {i} is true" if i % 2 else "what do you remember about fact"
        )
    return n


_IMPORT = "import time; t = time.perf_counter(); import memgpt_lab; print(time.perf_counter() - t)"


def _import_seconds(statement: str, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", statement], capture_output=True, text=True, check=True
        )
        times.append(float(out.stdout.strip()))
    return min(times)


def run() -> list[Result]:
    return [
        Result(
            "offline agent: steps/s (send_message steps)", best_rate(_steps, 3), "steps/s", 2000
        ),
        Result(
            "offline agent: turns/s (archival insert / search, 2 steps each)",
            best_rate(_turns, 3),
            "turns/s",
        ),
        Result(
            "import memgpt_lab",
            _import_seconds(_IMPORT),
            "s",
            0.3,
            higher_is_better=False,
        ),
        Result(
            "import memgpt_lab + agent core (presets)",
            _import_seconds(_IMPORT.replace("import memgpt_lab;", "import memgpt_lab.presets;")),
            "s",
            higher_is_better=False,
        ),
    ]
