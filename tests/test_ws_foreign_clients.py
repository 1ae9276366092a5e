"""Clients nobody here wrote: Node's ``ws`` library, and a browser's ``WebSocket``."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memgpt_lab.ws.server import LabServer

HERE = Path(__file__).parent
NODE_PATH = "/usr/share/nodejs"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A second site name for the same loopback page server: a cross-site origin.
    "--host-resolver-rules=MAP evil.test 127.0.0.1",
]
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
    assert [f["type"] for f in frames[:3]] == ["hello", "command_response", "agent_response_start"]
    assert frames[1]["status"] == "OK"
    agent_id = frames[1]["agent_id"]
    turn = frames[2:]
    assert turn[-1]["type"] == "agent_response_end"
    assert turn[0]["request_id"] == turn[-1]["request_id"] == "node-1"
    assert {f["type"] for f in turn[1:-1]} == {"agent_response"}
    assert {(f["agent_id"], f["turn_id"]) for f in turn} == {(agent_id, 1)}
    said = [f["message"] for f in turn if f.get("message_type") == "assistant_message"]
    assert said and "Ann" in said[-1]
    assert server.agents[agent_id].name == "node"


PAGE = """<!doctype html>
<meta charset="utf-8">
<title>lab client</title>
<script>
// Connects, creates an agent, sends one message; resolves with what happened.
function labTalk(url) {
  return new Promise((resolve) => {
    const frames = [];
    let opened = false;
    const ws = new WebSocket(url);
    ws.onopen = () => { opened = true; };
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      frames.push(frame);
      if (frame.type === "hello") {
        ws.send(JSON.stringify({type: "command", command: "create_agent", config: {}}));
      } else if (frame.type === "command_response") {
        ws.send(JSON.stringify({type: "user_message", message: "Hi from a browser",
                                agent_id: frame.agent_id}));
      } else if (frame.type === "agent_response_end") {
        ws.close(1000, "bye");
      }
    };
    ws.onclose = (event) => resolve({opened, frames, code: event.code, origin: location.origin});
  });
}
</script>
"""


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "page.html").write_text(PAGE)

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield httpd.server_address[1]
        finally:
            httpd.shutdown()
            thread.join()


@pytest.mark.browser
def test_a_browser_connects_from_an_allowed_origin_and_is_refused_from_another(
    server: LabServer, page_server: int
) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT * 1000)
            results = {}
            for host in ("127.0.0.1", "evil.test"):
                page.goto(f"http://{host}:{page_server}/page.html")
                results[host] = page.evaluate("url => labTalk(url)", server.url)
        finally:
            browser.close()

    allowed, evil = results["127.0.0.1"], results["evil.test"]
    assert allowed["opened"] is True
    assert allowed["code"] == 1000
    types = [f["type"] for f in allowed["frames"]]
    assert types[:3] == ["hello", "command_response", "agent_response_start"]
    assert types[-1] == "agent_response_end"
    assert evil["origin"] == f"http://evil.test:{page_server}"  # the page did load there
    assert evil["opened"] is False
    assert evil["frames"] == []
    assert evil["code"] == 1006
    assert server.rejections == [(403, f"origin 'http://evil.test:{page_server}' is not allowed")]
