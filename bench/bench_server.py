"""The agent server as users run it: ``memgpt-lab serve`` in one process, clients in another.

Many short turns of the scripted agent ("hello there", one step, six frames),
from 1 and from 10 clients, each client ``TURNS`` turns after ``WARMUP`` turns
not counted. Measured side by side in the same run:

- ``memgpt-lab serve --port 0``, started as users start it, stopped with SIGTERM;
- baseline A, a bare ``websockets`` server in a process of its own answering
  every message with six fixed frames shaped like a one-step turn (the least
  a server sending those frames can do), driven by the same clients;
- baseline B, the same agents stepped in a process of their own, no server.

One process doing both jobs with no overhead of its own would reach
``1 / (1/bare + 1/in-process)`` turns/s; the server is held to a share of that.

The clients are asyncio coroutines in one process of their own (a ``spawn``
worker). On a two-core machine that is the cheapest client side: the server
and the clients get a core each, where more client processes would take CPU
from the server and threads would share one GIL. Each result's note gives the
CPU the client and server processes used during the timed window, so a run
bound by its client shows it.

Memory per idle connection and per agent is the growth of a fresh server
process's resident set (``VmRSS``) while they are opened, divided by their number.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from bench._common import Result

MESSAGE = "hello there"  # a scripted agent answers it in one step (see step_in_process)
TURNS = 300  # timed turns per client
WARMUP = 20  # turns per client before the timed ones
CLIENTS = (1, 10)
REPEAT = 3  # each figure is the best of this many runs, the runs interleaved
IDLE_CONNECTIONS = 200
AGENTS = 200
TIMEOUT = 60.0  # seconds any one measurement may take before the benchmark gives up

ROOT = Path(__file__).resolve().parents[1]
LAB_SERVER = (
    sys.executable,
    "-m",
    "memgpt_lab.cli",
    "serve",
    "--port",
    "0",
    "--max-agents",
    "1000",
)
BARE_SERVER = (sys.executable, "-c", "from bench.bench_server import serve_bare; serve_bare()")

_CREATE = json.dumps({"type": "command", "command": "create_agent", "config": {}})
_LIST = json.dumps({"type": "command", "command": "list_agents"})
_ERROR_TYPES = ("agent_response_error", "server_error")


class BenchError(RuntimeError):
    """A server under test misbehaved: did not start, refused a command, broke the protocol."""


# --------------------------------------------------------------------------- baseline A


def _compact(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


_TURN_FIELDS = {"agent_id": "bare0000cafe", "turn_id": 2}
_REPLY = "I hear you: “hello there”. Tell me more?"
#: What ``memgpt-lab serve`` sends for an ordinary one-step turn, field for field.
BARE_TURN = tuple(
    _compact(frame)
    for frame in (
        {"type": "agent_response_start", **_TURN_FIELDS, "requested_by": "c1", "seq": 9},
        {
            "type": "agent_response",
            "message_type": "internal_monologue",
            "message": "An ordinary message. Acknowledge it and keep the conversation going.",
            **_TURN_FIELDS,
            "seq": 10,
        },
        {
            "type": "agent_response",
            "message_type": "function_message",
            "message": f"Running send_message({{'message': '{_REPLY}'}})",
            **_TURN_FIELDS,
            "seq": 11,
        },
        {
            "type": "agent_response",
            "message_type": "assistant_message",
            "message": _REPLY,
            **_TURN_FIELDS,
            "seq": 12,
        },
        {
            "type": "agent_response",
            "message_type": "function_message",
            "message": "Success: None",
            **_TURN_FIELDS,
            "seq": 13,
        },
        {"type": "agent_response_end", **_TURN_FIELDS, "requested_by": "c1", "seq": 14},
    )
)
_BARE_ANSWER = _compact(
    {
        "type": "command_response",
        "status": "OK: Agent initialized",
        "command": "create_agent",
        "agent_id": _TURN_FIELDS["agent_id"],
        "agent_name": "agent_1",
        "model": "scripted",
        "seq": 1,
    }
)


async def _bare_handler(ws: Any) -> None:
    async for message in ws:
        if json.loads(message).get("type") == "command":
            await ws.send(_BARE_ANSWER)
        else:
            for frame in BARE_TURN:
                await ws.send(frame)


def serve_bare(host: str = "127.0.0.1", port: int = 0) -> None:
    """Baseline A: serve until SIGTERM, printing ``... ws://host:port/`` once listening.

    Answers a command with a ``command_response`` and any other message with
    :data:`BARE_TURN`; websockets' defaults otherwise, as ``memgpt-lab serve``.
    """
    from websockets.asyncio.server import serve

    async def main() -> None:
        stopped = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
        async with serve(_bare_handler, host, port) as server:
            bound = server.sockets[0].getsockname()[1]
            print(f"bare websockets serving on ws://{host}:{bound}/", flush=True)
            await stopped.wait()

    asyncio.run(main())


# --------------------------------------------------------------------------- server processes


class ServerProcess:
    """A server in a process of its own: its URL read from its first line, stopped with SIGTERM.

    Use as a context manager; leaving it stops the process (killing it if
    SIGTERM is not enough), also on errors.
    """

    def __init__(self, command: Sequence[str], name: str) -> None:
        self.command = list(command)
        self.name = name
        self.url = ""
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    def start(self, timeout: float = 30.0) -> ServerProcess:
        # A file, not a pipe: nobody reads the server's stderr until something goes wrong.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self._process = process = subprocess.Popen(
            self.command, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline() if ready else ""
        found = re.search(r"ws://\S+", line)
        if found is None:
            process.poll()
            stderr = self.stderr()
            self.stop()
            raise BenchError(
                f"{self.name} did not announce its URL within {timeout}s "
                f"(exit code {process.returncode}); stdout {line!r}, stderr {stderr[-2000:]!r}"
            )
        self.url = found.group(0)
        return self

    def stderr(self) -> str:
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then wait; SIGKILL if it has not ended within ``timeout``. Idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _rss_kib(pid: int) -> int:
    """The resident set of process ``pid`` in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for process {pid}")


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds process ``pid`` has used, all threads."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the clients
# Everything below runs in the client process: plain data in, plain data out.


async def _command(ws: Any, text: str) -> dict[str, Any]:
    """Send a command and read up to its ``command_response``, skipping ``hello`` frames."""
    await ws.send(text)
    while True:
        raw = await ws.recv()
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "command_response":
            if not str(frame.get("status", "")).startswith("OK"):
                raise BenchError(f"command {text} refused: {raw[:500]}")
            return frame
        if kind != "hello":
            raise BenchError(f"expected a command_response to {text}, got {raw[:500]}")


async def _turn(ws: Any, text: str) -> str | None:
    """Send one message and read its frames up to ``agent_response_end``.

    Returns None, or the text of the error frame that came instead (its turn is
    then over for this client).
    """
    await ws.send(text)
    while True:
        raw = await ws.recv()
        # Substring tests first: decoding every frame would make the client the bottleneck.
        if '"agent_response_end"' in raw:
            return None
        if "error" in raw and json.loads(raw).get("type") in _ERROR_TYPES:
            return str(raw)


async def _open_client(stack: contextlib.AsyncExitStack, url: str, warmup: int) -> tuple[Any, str]:
    """Connect, create an agent, run ``warmup`` turns; returns the socket and the turn's text."""
    from websockets.asyncio.client import connect

    ws = await stack.enter_async_context(connect(url))
    created = await _command(ws, _CREATE)
    message: dict[str, Any] = {"type": "user_message", "message": MESSAGE}
    if "agent_id" in created:
        message["agent_id"] = created["agent_id"]
    text = json.dumps(message)
    for _ in range(warmup):
        error = await _turn(ws, text)
        if error is not None:
            raise BenchError(f"a warm-up turn failed: {error[:500]}")
    return ws, text


async def _timed_turns(ws: Any, text: str, turns: int) -> tuple[list[float], str | None]:
    times: list[float] = []
    for _ in range(turns):
        start = time.perf_counter()
        error = await _turn(ws, text)
        if error is not None:
            return times, error
        times.append(time.perf_counter() - start)
    return times, None


async def _drive(
    url: str, clients: int, turns: int, warmup: int, server_pid: int
) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        sessions = await asyncio.gather(*(_open_client(stack, url, warmup) for _ in range(clients)))
        server_cpu = _cpu_seconds(server_pid)
        client_cpu = time.process_time()
        start = time.perf_counter()
        outcomes = await asyncio.gather(*(_timed_turns(ws, text, turns) for ws, text in sessions))
        seconds = time.perf_counter() - start
        client_cpu = time.process_time() - client_cpu
        server_cpu = _cpu_seconds(server_pid) - server_cpu
    times = sorted(t for done, _ in outcomes for t in done)
    errors = [error for _, error in outcomes if error is not None]
    return {
        "clients": clients,
        "turns": len(times),
        "failures": len(errors),
        "first_error": errors[0][:300] if errors else "",
        "rate": len(times) / seconds,
        "p50_ms": _percentile(times, 0.50) * 1000,
        "p99_ms": _percentile(times, 0.99) * 1000,
        "client_cpu": client_cpu / seconds,
        "server_cpu": server_cpu / seconds,
    }


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(len(ordered) * fraction) - 1)]


def drive(url: str, clients: int, turns: int, warmup: int, server_pid: int) -> dict[str, Any]:
    """``clients`` concurrent MemGPT-style clients, ``turns`` timed turns each.

    Each connects, creates an agent, runs ``warmup`` turns; then all run their
    timed turns at once. Returns turns/s over the timed window (all clients),
    latency (send to ``agent_response_end``) p50/p99 in ms, failed turns (an
    error frame ends that client's run), and the CPU the client and server
    processes used during the window, as a share of it.
    """
    return asyncio.run(asyncio.wait_for(_drive(url, clients, turns, warmup, server_pid), TIMEOUT))


async def _memory(url: str, pid: int, connections: int, agents: int) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    async with contextlib.AsyncExitStack() as stack:
        # The first agent and turns import the agent core and warm the turn path;
        # the first connections warm the handshake path: neither is per-connection cost.
        ws, text = await _open_client(stack, url, WARMUP)
        for _ in range(5):
            async with connect(url) as warm:
                await _command(warm, _LIST)
        before = _rss_kib(pid)
        for _ in range(connections):
            idle = await stack.enter_async_context(connect(url))
            await _command(idle, _LIST)
        with_connections = _rss_kib(pid)
        for _ in range(agents):
            await _command(ws, _CREATE)
        with_agents = _rss_kib(pid)
    return {
        "rss_kib": before,
        "per_connection_kib": (with_connections - before) / connections,
        "per_agent_kib": (with_agents - with_connections) / agents,
    }


def measure_memory(url: str, pid: int, connections: int, agents: int) -> dict[str, Any]:
    """Growth of server ``pid``'s resident set per idle connection and per new agent, KiB.

    Opens ``connections`` connections that each send ``list_agents`` and stay
    open, then creates ``agents`` agents on one connection.
    """
    return asyncio.run(asyncio.wait_for(_memory(url, pid, connections, agents), TIMEOUT))


# --------------------------------------------------------------------------- baseline B


def step_in_process(agents: int, turns: int, warmup: int) -> dict[str, Any]:
    """Baseline B: ``agents`` scripted agents, ``turns`` turns each, round robin, no server.

    The agents are kept as the server keeps them, in one shared in-memory ``AgentStore``,
    so the baseline steps the same agents the same way and the ratio sees only the server.
    Returns turns/s over the timed turns and the steps per timed turn.
    """
    from memgpt_lab.persistence import AgentStore
    from memgpt_lab.presets import DEFAULT_PRESET, create_agent_from_preset

    store = AgentStore()
    made = [
        store.save(create_agent_from_preset(DEFAULT_PRESET, None, "scripted"))
        for _ in range(agents)
    ]
    for _ in range(warmup):
        for agent in made:
            agent.turn(MESSAGE)
    steps = 0
    cpu = time.process_time()
    start = time.perf_counter()
    for _ in range(turns):
        for agent in made:
            steps += len(agent.turn(MESSAGE).steps)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    store.close()
    return {
        "rate": agents * turns / seconds,
        "steps_per_turn": steps / (agents * turns),
        "cpu_per_turn": cpu / (agents * turns),
    }


# --------------------------------------------------------------------------- run


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = dict(max(runs, key=lambda r: r["rate"]))
    best["failures"] = sum(r["failures"] for r in runs)
    best["first_error"] = next((r["first_error"] for r in runs if r["first_error"]), "")
    return best


def _describe(run: dict[str, Any]) -> str:
    return (
        f"p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms; "
        f"CPU during the run: server {run['server_cpu']:.0%}, clients {run['client_cpu']:.0%}"
    )


def run() -> list[Result]:
    from memgpt_lab.ws.proxy import RecordingProxy

    lab: dict[int, list[dict[str, Any]]] = {n: [] for n in CLIENTS}
    bare: dict[int, list[dict[str, Any]]] = {n: [] for n in CLIENTS}
    proxied: list[dict[str, Any]] = []
    in_process: list[dict[str, Any]] = []
    pool = multiprocessing.get_context("spawn").Pool(1)  # the client process, reused
    try:

        def call(fn: Any, *args: Any) -> dict[str, Any]:
            result: dict[str, Any] = pool.apply_async(fn, args).get(TIMEOUT + 10)
            return result

        for _ in range(REPEAT):
            # Fresh servers each round, as the in-process baseline starts from a fresh store:
            # every figure sees agents of the same age in a store of the same size.
            with (
                ServerProcess(LAB_SERVER, "memgpt-lab serve") as server,
                ServerProcess(BARE_SERVER, "the bare websockets server") as bare_server,
            ):
                for n in CLIENTS:
                    lab[n].append(call(drive, server.url, n, TURNS, WARMUP, server.pid))
                    bare[n].append(call(drive, bare_server.url, n, TURNS, WARMUP, bare_server.pid))
                in_process.append(call(step_in_process, CLIENTS[-1], TURNS, WARMUP))
                with RecordingProxy(bare_server.url) as proxy:
                    proxied.append(
                        call(drive, proxy.url, CLIENTS[-1], TURNS, WARMUP, bare_server.pid)
                    )
        with ServerProcess(LAB_SERVER, "memgpt-lab serve (for memory)") as server:
            memory = call(measure_memory, server.url, server.pid, IDLE_CONNECTIONS, AGENTS)
    finally:
        pool.terminate()
        pool.join()

    many = CLIENTS[-1]
    lab1, lab10 = _best(lab[1]), _best(lab[many])
    bare1, bare10 = _best(bare[1]), _best(bare[many])
    local = max(in_process, key=lambda r: r["rate"])
    limit = 1 / (1 / bare10["rate"] + 1 / local["rate"])
    # The same comparison in CPU seconds per turn: steadier than rates on a shared machine,
    # since time the process waits for a core counts in neither.
    cpu_server = min(r["server_cpu"] / r["rate"] for r in lab[many])
    cpu_limit = min(r["server_cpu"] / r["rate"] for r in bare[many]) + min(
        r["cpu_per_turn"] for r in in_process
    )
    every = [*lab[1], *lab[many], *bare[1], *bare[many], *proxied]
    failures = sum(r["failures"] for r in every)
    first_error = next((r["first_error"] for r in every if r["first_error"]), "")
    shape = f"× {TURNS} turns"
    return [
        Result(
            f"server: memgpt-lab serve, 1 client {shape}",
            lab1["rate"],
            "turns/s",
            note=_describe(lab1),
        ),
        Result(
            f"server: memgpt-lab serve, {many} clients {shape}",
            lab10["rate"],
            "turns/s",
            note=_describe(lab10),
        ),
        Result(
            f"server: bare websockets process, 1 client {shape}",
            bare1["rate"],
            "turns/s",
            note=_describe(bare1),
        ),
        Result(
            f"server: bare websockets process, {many} clients {shape}",
            bare10["rate"],
            "turns/s",
            note=_describe(bare10),
        ),
        Result(
            f"server: same agents stepped in-process, {many} × {TURNS} turns",
            local["rate"],
            "turns/s",
            note=f"{local['steps_per_turn']:.3f} steps per turn (the scripted agent adds a "
            "memory-pressure step now and then, in every setting alike)",
        ),
        Result(
            f"server: limit 1/(1/bare + 1/in-process), {many} clients",
            limit,
            "turns/s",
            note="one process stepping the agents and sending the frames, with no overhead; "
            f"0.7 × limit = {0.7 * limit:,.0f} turns/s",
        ),
        Result(
            f"server: memgpt-lab serve / limit, {many} clients", lab10["rate"] / limit, "ratio", 0.7
        ),
        Result(
            f"server: CPU per turn, (bare + in-process) / memgpt-lab serve, {many} clients",
            cpu_limit / cpu_server,
            "ratio",
            note=f"server {cpu_server * 1e6:,.0f} µs of CPU per turn; bare server plus "
            f"in-process agents {cpu_limit * 1e6:,.0f} µs",
        ),
        Result(
            f"server: turn latency p99, {many} clients",
            lab10["p99_ms"],
            "ms",
            10,
            higher_is_better=False,
        ),
        Result(
            "server: failed turns (error frames) in the runs above",
            failures,
            "turns",
            0,
            higher_is_better=False,
            note=first_error,
        ),
        Result(
            "server: memory per idle connection",
            memory["per_connection_kib"],
            "KiB",
            note=f"VmRSS growth over {IDLE_CONNECTIONS} connections that sent list_agents; "
            f"{memory['rss_kib'] / 1024:.1f} MiB before",
        ),
        Result(
            "server: memory per agent (new, no conversation yet)",
            memory["per_agent_kib"],
            "KiB",
            note=f"VmRSS growth over {AGENTS} create_agent commands",
        ),
        Result(
            f"proxy: turns/s through RecordingProxy / direct, {many} clients",
            _best(proxied)["rate"] / bare10["rate"],
            "ratio",
            note=f"bare websockets server behind the proxy, recording every frame: "
            f"{_best(proxied)['rate']:,.0f} turns/s",
        ),
    ]
