"""A client nobody here wrote: Node's ``ws`` library (a browser's is in tests/browser)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from memgpt_lab.ws.server import LabServer

HERE = Path(__file__).parent
NODE_PATH = "/usr/share/nodejs"
TIMEOUT = 20


@pytest.fixture
def server() -> Iterator[LabServer]:
    with LabServer() as server:
        yield server


def test_nodes_ws_client_creates_an_agent_and_gets_a_whole_turn(server: LabServer) -> None:
    result = subprocess.run(
        ["node", str(HERE / "js" / "lab_client.js"), server.url, "Hello, my name is Ann."],
        env={**os.environ, "NODE_PATH": NODE_PATH},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "closed 1000 done\n"
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert [f["type"] for f in frames[:2]] == ["command_response", "agent_response_start"]
    assert frames[0]["status"] == "OK: Agent initialized"
    agent_id = frames[0]["agent_id"]
    turn = frames[1:]
    assert turn[-1]["type"] == "agent_response_end"
    assert turn[0]["request_id"] == turn[-1]["request_id"] == "node-1"
    assert {f["type"] for f in turn[1:-1]} == {"agent_response"}
    assert {(f["agent_id"], f["turn_id"]) for f in turn} == {(agent_id, 1)}
    said = [f["message"] for f in turn if f.get("message_type") == "assistant_message"]
    assert said and "Ann" in said[-1]
    assert server.agents[agent_id].name == "node"
