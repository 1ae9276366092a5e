"""The real-browser HAR round trip: Chromium talks to the agent server from a page; the
browser's HAR (Playwright's ``record_har``), and a DevTools-style HAR built from the CDP
``Network.webSocket*`` events, load with ``Recording.from_har`` and match what the server
recorded."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memgpt_lab.recorder import Recording
from memgpt_lab.ws.replay import replay
from memgpt_lab.ws.server import LabServer

TIMEOUT = 20

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>lab client</title>
<script>
// Greeted (?hello=1), creates an agent, sends two messages, one of them all of
// Unicode's hard cases, then a binary frame, and closes; resolves with the frames.
function labTalk(url) {
  return new Promise((resolve) => {
    const frames = [];
    const messages = ["Hello, my name is Zoë 🦜.", "Ünïcödé \\u2028 \\u0000 𝄞 \\\\ \\" end"];
    let agent = null;
    const ws = new WebSocket(url);
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      const frame = JSON.parse(event.data);
      frames.push(frame);
      if (frame.type === "hello") {
        ws.send(JSON.stringify({type: "command", command: "create_agent", config: {name: "web"}}));
      } else if (frame.type === "command_response") {
        agent = frame.agent_id;
        ws.send(JSON.stringify({type: "user_message", message: messages.shift(), agent_id: agent}));
      } else if (frame.type === "agent_response_end") {
        if (messages.length) {
          ws.send(JSON.stringify({type: "user_message", message: messages.shift(), agent_id: agent}));
        } else {
          ws.send(new Uint8Array([0, 255, 1, 128]));  // binary: the server answers with an error
          setTimeout(() => ws.close(1000, "bye"), 200);
        }
      }
    };
    ws.onclose = (event) => resolve({frames, code: event.code});
  });
}
</script>
"""

CDP_EVENTS = (
    "webSocketCreated",
    "webSocketWillSendHandshakeRequest",
    "webSocketHandshakeResponseReceived",
    "webSocketFrameSent",
    "webSocketFrameReceived",
    "webSocketClosed",
)


@pytest.fixture
def page_server(serve_page: Any) -> Iterator[int]:
    with serve_page(PAGE) as port:
        yield port


def devtools_har(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """A HAR as Chrome DevTools exports WebSocket traffic, from the CDP events seen.

    DevTools writes one entry per socket: the handshake as request/response, and
    ``_webSocketMessages`` with ``time`` in epoch seconds (CDP ``timestamp`` is
    monotonic, so it is shifted by the handshake's ``wallTime``).
    """
    sockets: dict[str, dict[str, Any]] = {}
    offset = 0.0
    for name, params in events:
        entry = sockets.setdefault(
            params["requestId"],
            {"_resourceType": "websocket", "_webSocketMessages": [], "time": 0, "cache": {}},
        )
        if name == "webSocketCreated":
            entry["request"] = {
                "method": "GET",
                "url": params["url"],
                "httpVersion": "HTTP/1.1",
                "headers": [],
                "queryString": [],
                "cookies": [],
                "headersSize": -1,
                "bodySize": 0,
            }
        elif name == "webSocketWillSendHandshakeRequest":
            offset = params["wallTime"] - params["timestamp"]
            started = datetime.datetime.fromtimestamp(params["wallTime"], datetime.UTC)
            entry["startedDateTime"] = started.isoformat().replace("+00:00", "Z")
            entry["request"]["headers"] = [
                {"name": k, "value": v} for k, v in params["request"]["headers"].items()
            ]
        elif name == "webSocketHandshakeResponseReceived":
            response = params["response"]
            entry["response"] = {
                "status": response["status"],
                "statusText": response["statusText"],
                "httpVersion": "HTTP/1.1",
                "headers": [{"name": k, "value": v} for k, v in response["headers"].items()],
                "cookies": [],
                "content": {"size": 0, "mimeType": "x-unknown"},
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": -1,
            }
            entry["timings"] = {
                "blocked": -1,
                "dns": -1,
                "connect": -1,
                "send": 0,
                "wait": 0,
                "receive": 0,
            }
        elif name in ("webSocketFrameSent", "webSocketFrameReceived"):
            frame = params["response"]
            entry["_webSocketMessages"].append(
                {
                    "type": "send" if name == "webSocketFrameSent" else "receive",
                    "time": params["timestamp"] + offset,
                    "opcode": frame["opcode"],
                    "data": frame["payloadData"],  # binary frames: base64 already
                }
            )
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "WebInspector", "version": "537.36"},
            "pages": [],
            "entries": list(sockets.values()),
        }
    }


def data_frames(recording: Recording) -> list[tuple[str, str | bytes | None]]:
    return [(f.direction, f.payload) for f in recording if f.opcode in ("text", "binary")]


@pytest.mark.browser
def test_a_browsers_har_of_a_session_matches_what_the_server_recorded(
    page_server: int, chromium_launch_options: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    har_path = tmp_path / "playwright.har"
    events: list[tuple[str, dict[str, Any]]] = []
    with LabServer() as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(**chromium_launch_options())
        try:
            context = browser.new_context(record_har_path=str(har_path))
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            for name in CDP_EVENTS:
                cdp.on(f"Network.{name}", lambda params, name=name: events.append((name, params)))
            page.goto(f"http://127.0.0.1:{page_server}/page.html")
            result = page.evaluate("(url) => labTalk(url)", server.url + "?hello=1")
            context.close()  # writes the HAR
        finally:
            browser.close()
        assert server.recording is not None
        server.recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=TIMEOUT)
    assert result["code"] == 1000
    assert any(f["type"] == "agent_response_end" for f in result["frames"])
    expected = data_frames(server.recording)
    assert ("in", b"\x00\xff\x01\x80") in expected
    assert any("𝄞" in str(payload) for _, payload in expected)

    from_playwright = Recording.from_har(har_path)
    assert from_playwright.skipped_entries >= 1  # the page itself, an HTTP entry
    assert data_frames(from_playwright) == expected
    (info,) = from_playwright.connections.values()
    assert info["status"] == 101 and info["url"] == server.url + "?hello=1"
    times = [f.wall_time for f in from_playwright]
    assert times == sorted(times)
    assert abs(times[0] - server.recording[0].wall_time) < 60  # epoch seconds, not ms

    devtools_path = tmp_path / "devtools.har"
    devtools_path.write_text(json.dumps(devtools_har(events)), encoding="utf-8")
    from_devtools = Recording.from_har(devtools_path)
    assert data_frames(from_devtools) == expected
    assert abs(from_devtools[0].wall_time - server.recording[0].wall_time) < 60

    # The browser's session is a regression test of a server: replayed against a fresh one,
    # nothing differs but times and ids.
    with LabServer() as fresh:
        result = replay(from_playwright, fresh.url, timeout=TIMEOUT)
    assert result.ok, str(result)

    # And this project's own HAR of the server's side reads back the same.
    ours = tmp_path / "server.har"
    server.recording.to_har(ours)
    assert data_frames(Recording.from_har(ours)) == expected
    assert base64.b64encode(b"\x00\xff\x01\x80").decode() in ours.read_text(encoding="utf-8")
