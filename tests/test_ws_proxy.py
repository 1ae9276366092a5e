"""The recording proxy, in front of a plain echo server and in front of the agent server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect
from websockets.sync.server import Server, ServerConnection, serve

from memgpt_lab.recorder import Recording
from memgpt_lab.ws.client import LabClient
from memgpt_lab.ws.proxy import RecordingProxy
from memgpt_lab.ws.server import LabServer

TIMEOUT = 10


def echo(ws: ServerConnection) -> None:
    """Echoes every message; ``close-please`` closes with 4001, ``drop`` drops the TCP link."""
    for message in ws:
        if message == "close-please":
            ws.close(4001, "bye")
        elif message == "drop":
            ws.socket.shutdown(socket.SHUT_RDWR)
            ws.socket.close()
            return
        else:
            ws.send(message if message != "whoami" else ws.request.path)  # type: ignore[union-attr]


@pytest.fixture
def echo_server() -> Iterator[Server]:
    with serve(echo, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server
        server.shutdown()
        thread.join()


@pytest.fixture
def proxy(echo_server: Server) -> Iterator[RecordingProxy]:
    port = echo_server.socket.getsockname()[1]
    with RecordingProxy(f"ws://127.0.0.1:{port}") as proxy:
        yield proxy


def summary(recording: Recording) -> list[tuple[object, ...]]:
    return [
        (f.connection_id, f.direction, f.opcode, f.payload, f.close_code, f.close_reason)
        for f in recording
    ]


def test_text_binary_and_a_client_close_are_forwarded_and_recorded(
    proxy: RecordingProxy,
) -> None:
    with connect(proxy.url + "room?x=1", open_timeout=TIMEOUT) as ws:
        ws.send("hello")
        assert ws.recv(timeout=TIMEOUT) == "hello"
        ws.send(b"\x00\xff")
        assert ws.recv(timeout=TIMEOUT) == b"\x00\xff"
        ws.send("whoami")  # the upstream sees the client's own path and query
        assert ws.recv(timeout=TIMEOUT) == "/room?x=1"
        ws.close(4000, "done")
    proxy.recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=TIMEOUT)
    assert summary(proxy.recording) == [
        ("c1", "in", "text", "hello", None, None),
        ("c1", "out", "text", "hello", None, None),
        ("c1", "in", "binary", b"\x00\xff", None, None),
        ("c1", "out", "binary", b"\x00\xff", None, None),
        ("c1", "in", "text", "whoami", None, None),
        ("c1", "out", "text", "/room?x=1", None, None),
        ("c1", "in", "close", None, 4000, "done"),
        ("c1", "out", "close", None, 4000, "done"),
    ]
    assert all(a.time <= b.time for a, b in zip(proxy.recording, proxy.recording[1:], strict=False))


def test_an_upstream_close_reaches_the_client_with_its_code_and_reason(
    proxy: RecordingProxy,
) -> None:
    with connect(proxy.url, open_timeout=TIMEOUT) as ws:
        ws.send("close-please")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "bye")
    frames = proxy.recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=TIMEOUT)
    assert [(f.direction, f.close_code, f.close_reason) for f in frames] == [
        ("out", 4001, "bye"),
        ("in", 4001, "bye"),
    ]


def test_an_upstream_that_drops_drops_the_client_too(proxy: RecordingProxy) -> None:
    with connect(proxy.url, open_timeout=TIMEOUT) as ws:
        ws.send("drop")
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is None  # no close frame: 1006, as upstream did
    frame = proxy.recording.wait_for(lambda f: f.opcode == "close", timeout=TIMEOUT)[0]
    assert (frame.direction, frame.close_code) == ("out", 1006)


def test_connections_are_kept_apart(proxy: RecordingProxy) -> None:
    with (
        connect(proxy.url, open_timeout=TIMEOUT) as one,
        connect(proxy.url, open_timeout=TIMEOUT) as two,
    ):
        one.send("1")
        two.send("2")
        assert (one.recv(timeout=TIMEOUT), two.recv(timeout=TIMEOUT)) == ("1", "2")
    texts = {(f.connection_id, f.text) for f in proxy.recording.filter(direction="out")}
    assert {t for t in texts if t[1] is not None} == {("c1", "1"), ("c2", "2")}


def test_an_unreachable_upstream_is_a_502() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        RecordingProxy(f"ws://127.0.0.1:{port}") as proxy,
        pytest.raises(InvalidStatus) as refused,
    ):
        connect(proxy.url, open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 502


def test_a_request_that_is_no_websocket_handshake_leaves_no_upstream_open() -> None:
    with LabServer() as server, RecordingProxy(server.url) as proxy:
        http = HTTPConnection("127.0.0.1", proxy.port, timeout=TIMEOUT)
        try:
            http.request("GET", "/")  # plain HTTP: no Upgrade header
            assert http.getresponse().status == 426
        finally:
            http.close()
        # The upstream connection opened for it during the handshake is closed again.
        assert server.recording is not None
        server.recording.wait_for(lambda f: f.opcode == "close", timeout=TIMEOUT)


def test_in_front_of_the_agent_server_it_records_what_the_server_records() -> None:
    with LabServer(token="tok") as server, RecordingProxy(server.url) as proxy:
        with pytest.raises(InvalidStatus) as refused:  # the server's refusal, passed on
            connect(proxy.url, origin="http://evil.test", open_timeout=TIMEOUT)
        assert refused.value.response.status_code == 403
        with LabClient(proxy.url, token="tok", timeout=TIMEOUT) as client:
            agent_id = client.create_agent(name="via proxy")
            frames = client.send("Hello, my name is Ann.", agent_id)
        assert server.recording is not None
        server.recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=TIMEOUT)
        proxy.recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=TIMEOUT)

    def texts(recording: Recording, direction: str) -> list[str]:
        return [f.text for f in recording.filter(direction=direction) if f.text is not None]

    assert texts(proxy.recording, "out") == texts(server.recording, "out")
    assert texts(proxy.recording, "in") == texts(server.recording, "in")
    assert [json.loads(t) for t in texts(proxy.recording, "out")][-len(frames) :] == frames
    assert {f.close_code for f in proxy.recording if f.opcode == "close"} == {1000}


def test_no_credential_reaches_the_recording_or_its_files(tmp_path: Path) -> None:
    secrets = ["hunter2", "alice", "SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5"]
    with LabServer() as server:
        upstream = server.url.replace("ws://", "ws://alice:hunter2@")
        with (
            RecordingProxy(upstream) as proxy,
            connect(
                proxy.url + "?auth_token=SECRET1&client_secret=SECRET2&hello=1&q=a%20b&flag",
                additional_headers={
                    "Authorization": "Bearer SECRET3",
                    "X-Auth": "SECRET4",
                    "Cookie": "sid=SECRET5",
                },
                open_timeout=TIMEOUT,
            ) as ws,
        ):
            assert json.loads(ws.recv(timeout=TIMEOUT))["type"] == "hello"
    (info,) = proxy.handshakes.values()
    assert info["url"].endswith("/?auth_token=***&client_secret=***&hello=1&q=a%20b&flag")
    proxy.recording.to_har(tmp_path / "m.har")
    proxy.recording.to_jsonl(tmp_path / "m.jsonl")
    for written in [json.dumps(proxy.handshakes), *(tmp_path / n for n in ("m.har", "m.jsonl"))]:
        text = written if isinstance(written, str) else written.read_text(encoding="utf-8")
        assert [s for s in secrets if s in text] == []


def test_an_upstream_refusal_with_a_nonstandard_status_is_a_502() -> None:
    def refuse(connection: ServerConnection, request: object) -> object:
        response = connection.respond(403, "go away\n")
        response.status_code = 599  # a status HTTPStatus does not know
        return response

    with serve(echo, "127.0.0.1", 0, process_request=refuse) as upstream:
        thread = threading.Thread(target=upstream.serve_forever, daemon=True)
        thread.start()
        port = upstream.socket.getsockname()[1]
        try:
            with (
                RecordingProxy(f"ws://127.0.0.1:{port}") as proxy,
                pytest.raises(InvalidStatus) as refused,
            ):
                connect(proxy.url, open_timeout=TIMEOUT)
        finally:
            upstream.shutdown()
    assert refused.value.response.status_code == 502
