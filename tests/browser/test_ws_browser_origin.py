"""A browser's ``WebSocket``: connects from an allowed origin, is refused from another."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from memgpt_lab.ws.server import LabServer

TIMEOUT = 20


@pytest.fixture
def server() -> Iterator[LabServer]:
    with LabServer() as server:
        yield server


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
def page_server(serve_page: Any) -> Iterator[int]:
    with serve_page(PAGE) as port:
        yield port


@pytest.mark.browser
def test_a_browser_connects_from_an_allowed_origin_and_is_refused_from_another(
    server: LabServer, page_server: int, chromium_launch_options: Any
) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # A second site name for the same loopback page server: a cross-site origin.
        options = chromium_launch_options("--host-resolver-rules=MAP evil.test 127.0.0.1")
        browser = playwright.chromium.launch(**options)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT * 1000)
            results = {}
            for host in ("127.0.0.1", "evil.test"):
                page.goto(f"http://{host}:{page_server}/page.html")
                # ?hello=1: the lab's greeting first (MemGPT clients connect without it)
                results[host] = page.evaluate("url => labTalk(url)", server.url + "?hello=1")
        finally:
            browser.close()

    allowed, evil = results["127.0.0.1"], results["evil.test"]
    assert allowed["opened"] is True
    assert allowed["code"] == 1000
    types = [f["type"] for f in allowed["frames"]]
    assert types[:3] == ["hello", "command_response", "agent_response_start"]
    assert allowed["frames"][1]["status"] == "OK: Agent initialized"
    assert types[-1] == "agent_response_end"
    assert evil["origin"] == f"http://evil.test:{page_server}"  # the page did load there
    assert evil["opened"] is False
    assert evil["frames"] == []
    assert evil["code"] == 1006
    assert server.rejections == [(403, f"origin 'http://evil.test:{page_server}' is not allowed")]
