"""Real-model plumbing: the agent's overhead over the raw SDK, cassette replay, serve-llm itself.

``memgpt-lab serve-llm`` runs in a process of its own, as users run it, so the
client side measured here does not share a GIL with the server.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._common import Result
from memgpt_lab import system
from memgpt_lab.llm import Cassette, OpenAIChatModel, ScriptedModel
from memgpt_lab.presets import DEFAULT_PRESET, create_agent_from_preset

MESSAGES = ["How was your day?", "Tell me something about yourself.", "What should I cook tonight?"]


@contextmanager
def serve_llm() -> Iterator[str]:
    """``memgpt-lab serve-llm`` in its own process; yields its ``/v1`` URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "memgpt_lab.cli", "serve-llm", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = next(word for word in line.split() if word.startswith("http://"))
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _agent(model: Any) -> Any:
    # the default window (8192): summarising keeps requests the size real agents send
    return create_agent_from_preset(DEFAULT_PRESET, None, model, clock=system.FixedClock())


class _Capturing(OpenAIChatModel):
    """Keeps every request body it sends, to replay them through the bare SDK."""

    bodies: list[dict[str, Any]]

    def send(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.bodies.append(dict(body))
        return super().send(body)


def _agent_vs_sdk(url: str, steps: int = 300) -> tuple[float, float, float]:
    """Agent steps/s, and requests/s of the same request bodies sent through the SDK bare
    (``client.post``, the transport's floor) and through ``chat.completions.create``."""
    import httpx2
    import openai

    model = _Capturing("scripted", base_url=url, api_key="sk-bench")
    model.bodies = []
    warm = _agent(model)
    for i in range(20):
        warm.step(MESSAGES[i % len(MESSAGES)])
    client = openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)

    def bare(body: dict[str, Any]) -> None:
        client.post("/chat/completions", body=body, cast_to=httpx2.Response).json()

    def create(body: dict[str, Any]) -> None:
        payload = dict(body)
        client.chat.completions.create(
            model=payload.pop("model"), messages=payload.pop("messages"), extra_body=payload
        )

    best = {"agent": 0.0, "bare": 0.0, "create": 0.0}
    for _ in range(3):
        model.bodies = []
        agent = _agent(model)
        start = time.perf_counter()
        for i in range(steps):
            agent.step(MESSAGES[i % len(MESSAGES)])
        best["agent"] = max(best["agent"], steps / (time.perf_counter() - start))
        bodies = list(model.bodies)
        for name, send in (("bare", bare), ("create", create)):
            start = time.perf_counter()
            for body in bodies:
                send(body)
            best[name] = max(best[name], len(bodies) / (time.perf_counter() - start))
    return best["agent"], best["bare"], best["create"]


def _served_latency(url: str, requests: int = 500) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of one client asking serve-llm for plain completions."""
    import openai

    client = openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)
    messages = [
        {"role": "system", "content": "You are Sam."},
        {"role": "user", "content": system.package_user_message("hello there", "2026-01-01")},
    ]
    for _ in range(20):
        client.chat.completions.create(model="scripted", messages=messages)
    times = []
    start = time.perf_counter()
    for _ in range(requests):
        t = time.perf_counter()
        client.chat.completions.create(model="scripted", messages=messages)
        times.append(time.perf_counter() - t)
    rate = requests / (time.perf_counter() - start)
    quantiles = statistics.quantiles(times, n=100)
    return rate, quantiles[49] * 1000, quantiles[98] * 1000


def _cassette_replay(path: Path, steps: int = 3000) -> float:
    """Agent steps/s replaying a cassette recorded from the scripted model."""
    recorder = Cassette(path, ScriptedModel(), mode="all")
    agent = _agent(recorder)
    for i in range(steps):
        agent.step(MESSAGES[i % len(MESSAGES)])
    best = 0.0
    for _ in range(3):
        agent = _agent(Cassette(path, mode="none"))
        start = time.perf_counter()
        for i in range(steps):
            agent.step(MESSAGES[i % len(MESSAGES)])
        best = max(best, steps / (time.perf_counter() - start))
    return best


def _matching_cost(path: Path) -> tuple[float, float]:
    """Microseconds per KB of request to match a fresh (uncached) request, at 1x and 8x size."""
    import json

    costs = []
    for size in (20, 160):
        messages = [{"role": "system", "content": "S"}] + [
            {
                "role": "user",
                "content": system.package_user_message(f"message {i} " * 5, "2026-01-01"),
            }
            for i in range(size)
        ]
        recorder = Cassette(path, ScriptedModel(), mode="all")
        recorder.chat(messages, [])
        kilobytes = len(json.dumps(messages)) / 1024
        best = float("inf")
        for _ in range(20):
            fresh = [dict(m) for m in messages]  # new objects: no per-message cache hit
            replay = Cassette(path, mode="none")
            start = time.perf_counter()
            replay.chat(fresh, [])
            best = min(best, time.perf_counter() - start)
        costs.append(best * 1e6 / kilobytes)
    return costs[0], costs[1]


def run() -> list[Result]:
    results: list[Result] = []
    with serve_llm() as url:
        agent_rate, bare_rate, create_rate = _agent_vs_sdk(url)
        rate, p50, p99 = _served_latency(url)
    results += [
        Result(
            "real model: agent steps/s through OpenAIChatModel (serve-llm)", agent_rate, "steps/s"
        ),
        Result("real model: the same requests, bare SDK (client.post)", bare_rate, "req/s"),
        Result("real model: the same requests, chat.completions.create", create_rate, "req/s"),
        Result(
            "real model: agent step / bare SDK call (time ratio)",
            bare_rate / agent_rate,
            "x",
            1.3,
            higher_is_better=False,
        ),
        Result("serve-llm: requests/s (scripted model, one client)", rate, "req/s"),
        Result("serve-llm: latency p50", p50, "ms", higher_is_better=False),
        Result("serve-llm: latency p99", p99, "ms", higher_is_better=False),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        replay_rate = _cassette_replay(Path(tmp) / "replay.jsonl")
        small, large = _matching_cost(Path(tmp) / "size.jsonl")
    results += [
        Result("cassette replay: agent steps/s", replay_rate, "steps/s", 5000),
        Result(
            "cassette matching: µs per KB of request, 20 messages",
            small,
            "µs/KB",
            higher_is_better=False,
        ),
        Result(
            "cassette matching: µs per KB of request, 160 messages",
            large,
            "µs/KB",
            higher_is_better=False,
        ),
        Result(
            "cassette matching: cost per KB at 8x size / at 1x (≤ 1.5: linear)",
            large / small,
            "x",
            1.5,
            higher_is_better=False,
        ),
    ]
    return results
