"""The recording proxy in front of servers nobody here wrote: Node's ``ws`` (Debian's node-ws)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.sync.client import ClientConnection, connect
from websockets.sync.server import ServerConnection, serve

from memgpt_lab.recorder import Recording
from memgpt_lab.ws.proxy import MASK, RecordingProxy, handshake_info, mask_headers, mask_url

HERE = Path(__file__).parent
NODE_PATH = "/usr/share/nodejs"
TIMEOUT = 10
GRAPHQL = "graphql-transport-ws"


@pytest.fixture
def node_server() -> Iterator[Callable[[str], str]]:
    """Starts ``tests/js/ws_server.js MODE``; returns its ws:// URL. Stopped at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(mode: str) -> str:
        process = subprocess.Popen(
            ["node", str(HERE / "js" / "ws_server.js"), mode],
            env={**os.environ, "NODE_PATH": NODE_PATH},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening "), line
        return f"ws://127.0.0.1:{int(line.split()[1])}"

    yield start
    for process in started:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=TIMEOUT)
        assert process.stdout is not None
        process.stdout.close()


def test_a_required_subprotocol_is_negotiated_end_to_end(
    node_server: Callable[[str], str],
) -> None:
    upstream = node_server("graphql")
    with connect(upstream, subprotocols=[GRAPHQL], open_timeout=TIMEOUT) as direct:
        assert direct.subprotocol == GRAPHQL
    with (
        RecordingProxy(upstream) as proxy,
        connect(proxy.url, subprotocols=["other", GRAPHQL], open_timeout=TIMEOUT) as ws,
    ):
        assert ws.subprotocol == GRAPHQL  # the upstream's choice, passed back
        ws.send(json.dumps({"type": "connection_init"}))
        ack = json.loads(ws.recv(timeout=TIMEOUT))
        assert ack["type"] == "connection_ack"
        assert ack["payload"]["protocol"] == GRAPHQL  # the upstream negotiated it itself
        ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": {"query": "{ é }"}}))
        assert json.loads(ws.recv(timeout=TIMEOUT))["payload"] == {"data": {"echo": "{ é }"}}
        assert json.loads(ws.recv(timeout=TIMEOUT)) == {"type": "complete", "id": "1"}
    frames = proxy.recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=TIMEOUT)
    assert [f.close_code for f in frames] == [1000, 1000]
    (info,) = proxy.handshakes.values()
    assert info["status"] == 101
    assert info["subprotocol"] == GRAPHQL
    assert info["handshake_ms"] >= 0
    assert proxy.recording.connection_info("c1") == info
    assert ["Sec-WebSocket-Protocol", GRAPHQL] in info["response_headers"]
    assert ["Sec-WebSocket-Protocol", f"other, {GRAPHQL}"] in info["request_headers"]


def test_a_client_that_offers_no_subprotocol_gets_what_it_would_get_directly(
    node_server: Callable[[str], str],
) -> None:
    upstream = node_server("graphql")

    def refused_close(url: str) -> tuple[int, str]:
        with connect(url, open_timeout=TIMEOUT) as ws:
            assert ws.subprotocol is None
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code, closed.value.rcvd.reason

    direct = refused_close(upstream)
    assert direct == (4406, "Subprotocol not acceptable")
    with RecordingProxy(upstream) as proxy:
        assert refused_close(proxy.url) == direct
        proxy.recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=TIMEOUT)
    assert [(f.direction, f.close_code) for f in proxy.recording] == [("out", 4406), ("in", 4406)]


def test_without_a_subprotocol_server_an_offer_is_answered_with_none(
    node_server: Callable[[str], str],
) -> None:
    upstream = node_server("plain")
    with (
        RecordingProxy(upstream) as proxy,
        connect(proxy.url, subprotocols=[GRAPHQL], open_timeout=TIMEOUT) as ws,
    ):
        # Node's ws selects the first offered protocol when it has no handler:
        # the proxy passes that choice back rather than deciding itself.
        ws.send("hello?")
        seen = json.loads(ws.recv(timeout=TIMEOUT))
        assert ws.subprotocol == seen["protocol"] == GRAPHQL
    with RecordingProxy(upstream) as proxy, connect(proxy.url, open_timeout=TIMEOUT) as ws:
        ws.send("hello?")
        assert json.loads(ws.recv(timeout=TIMEOUT))["protocol"] == ""
        assert ws.subprotocol is None


def test_credentials_cookies_and_origin_go_upstream_and_are_masked_in_the_record(
    node_server: Callable[[str], str], tmp_path: Path
) -> None:
    upstream = node_server("plain")
    headers = {"Authorization": "Bearer t0k3n", "Cookie": "a=1; b=2"}
    with (
        RecordingProxy(upstream) as proxy,
        connect(
            proxy.url + "api?token=abc&room=7",
            additional_headers=headers,
            origin="http://app.test",  # type: ignore[arg-type]
            open_timeout=TIMEOUT,
        ) as ws,
    ):
        ws.send("hello?")
        seen = json.loads(ws.recv(timeout=TIMEOUT))
        # The upstream's Set-Cookie on its 101 reaches the client.
        assert ws.response.headers.get_all("Set-Cookie") == ["session=s3cr3t; Path=/"]
    assert seen == {
        "protocol": "",
        "authorization": "Bearer t0k3n",
        "cookie": "a=1; b=2",
        "origin": "http://app.test",
        "api_key": None,
        "url": "/api?token=abc&room=7",
    }
    (info,) = proxy.handshakes.values()
    assert info["url"] == f"{upstream}/api?token={MASK}&room=7"
    request = dict(map(tuple, info["request_headers"]))
    assert request["Authorization"] == f"Bearer {MASK}"
    assert request["Cookie"] == f"a={MASK}; b={MASK}"
    assert request["Origin"] == "http://app.test"
    response = dict(map(tuple, info["response_headers"]))
    assert response["Set-Cookie"] == f"session={MASK}; Path=/"
    assert "t0k3n" not in json.dumps(proxy.handshakes)
    assert "s3cr3t" not in json.dumps(proxy.handshakes)
    # The HAR export carries the handshake, masked, as DevTools shows it.
    proxy.recording.to_har(tmp_path / "api.har")
    (entry,) = json.loads((tmp_path / "api.har").read_text(encoding="utf-8"))["log"]["entries"]
    assert entry["request"]["url"] == info["url"]
    assert {"name": "Authorization", "value": f"Bearer {MASK}"} in entry["request"]["headers"]
    assert entry["response"]["status"] == 101
    handshake = json.dumps([entry["request"], entry["response"]])  # the frames echo them, though
    assert "t0k3n" not in handshake and "s3cr3t" not in handshake and "abc" not in handshake


def test_origin_and_extra_headers_as_configured(node_server: Callable[[str], str]) -> None:
    upstream = node_server("plain")

    def seen_through(**options: object) -> dict[str, object]:
        with (
            RecordingProxy(upstream, **options) as proxy,  # type: ignore[arg-type]
            connect(proxy.url, origin="http://app.test", open_timeout=TIMEOUT) as ws,  # type: ignore[arg-type]
        ):
            ws.send("hello?")
            return json.loads(ws.recv(timeout=TIMEOUT))  # type: ignore[no-any-return]

    assert seen_through()["origin"] == "http://app.test"
    assert seen_through(origin=False)["origin"] is None
    assert seen_through(origin="https://lab.test")["origin"] == "https://lab.test"
    added = seen_through(extra_headers={"X-Api-Key": "k"}, forward_headers=())
    assert added["api_key"] == "k"


def test_a_refused_handshake_reaches_the_client_with_the_same_status_and_headers(
    node_server: Callable[[str], str], tmp_path: Path
) -> None:
    upstream = node_server("refuse")
    with pytest.raises(InvalidStatus) as direct:
        connect(upstream, open_timeout=TIMEOUT)
    with RecordingProxy(upstream) as proxy:
        with pytest.raises(InvalidStatus) as proxied:
            connect(proxy.url, additional_headers={"Authorization": "Bearer bad"})
        got, want = proxied.value.response, direct.value.response
        assert (got.status_code, got.reason_phrase) == (want.status_code, want.reason_phrase)
        assert got.status_code == 401
        assert got.headers["WWW-Authenticate"] == 'Bearer realm="lab"'
        assert got.body == want.body
        with connect(
            proxy.url, additional_headers={"Authorization": "Bearer good"}, open_timeout=TIMEOUT
        ) as ws:
            ws.send("in")
            assert ws.recv(timeout=TIMEOUT) == "in"
    refused, accepted = proxy.handshakes.values()
    assert proxy.recording.connections == proxy.handshakes  # kept in the recording too
    har = tmp_path / "refused.har"
    proxy.recording.to_har(har)
    loaded = Recording.from_har(har)
    assert {cid: info["status"] for cid, info in loaded.connections.items()} == {
        "c1": 401,
        "c2": 101,
    }
    assert (refused["status"], refused["status_text"]) == (401, "Unauthorized")
    assert ["WWW-Authenticate", 'Bearer realm="lab"'] in refused["response_headers"]
    assert ["Authorization", f"Bearer {MASK}"] in refused["request_headers"]
    assert accepted["status"] == 101


def test_pings_go_through_both_ways(node_server: Callable[[str], str]) -> None:
    upstream = node_server("plain")
    with RecordingProxy(upstream) as proxy, connect(proxy.url, open_timeout=TIMEOUT) as ws:
        assert ws.ping(b"cli").wait(TIMEOUT)  # answered by the proxy at once...
        assert ws.recv(timeout=TIMEOUT) == "server got ping cli"  # ...and sent on
        ws.send("ping-me")
        # The server's ping reaches this client, whose pong goes back to the proxy;
        # the server has its pong from the proxy's hop already.
        assert ws.recv(timeout=TIMEOUT) == "server got pong srv"
    assert [f.opcode for f in proxy.recording] == ["text", "text", "text", "close", "close"]


def test_pings_and_pongs_are_recorded_when_asked(node_server: Callable[[str], str]) -> None:
    upstream = node_server("plain")
    with (
        RecordingProxy(upstream, record_pings=True) as proxy,
        connect(proxy.url, open_timeout=TIMEOUT) as ws,
    ):
        assert ws.ping(b"cli").wait(TIMEOUT)
        assert ws.recv(timeout=TIMEOUT) == "server got ping cli"
        ws.send("ping-me")
        assert ws.recv(timeout=TIMEOUT) == "server got pong srv"
        frames = proxy.recording.wait_for(lambda f: f.opcode == "pong", count=2, timeout=TIMEOUT)
    control = [
        (f.direction, f.opcode, f.data) for f in proxy.recording if f.opcode in ("ping", "pong")
    ]
    assert sorted(control) == sorted(
        [
            ("in", "ping", b"cli"),
            ("out", "pong", b"cli"),
            ("out", "ping", b"srv"),
            ("in", "pong", b"srv"),
        ]
    )
    assert len(frames) == 2


def test_an_unsolicited_pong_is_forwarded() -> None:
    got: list[bytes] = []

    class PongSpy(ClientConnection):
        def process_event(self, event: object) -> None:
            if isinstance(event, WsFrame) and event.opcode is Opcode.PONG:
                got.append(bytes(event.data))
            super().process_event(event)  # type: ignore[arg-type]

    def heartbeat(ws: ServerConnection) -> None:
        ws.pong(b"beat")  # a one-way heartbeat, as some servers send
        for message in ws:
            ws.send(message)

    with serve(heartbeat, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.socket.getsockname()[1]
            with (
                RecordingProxy(f"ws://127.0.0.1:{port}") as proxy,
                connect(proxy.url, open_timeout=TIMEOUT, create_connection=PongSpy) as ws,
            ):
                ws.send("x")  # the pong was sent on before this echo
                assert ws.recv(timeout=TIMEOUT) == "x"
        finally:
            server.shutdown()
            thread.join()
    assert got == [b"beat"]


def test_masking_is_a_pure_function() -> None:
    assert mask_headers(
        [("Authorization", "Basic QQ=="), ("X-Auth-Token", "z"), ("Host", "h")]
    ) == [
        ["Authorization", f"Basic {MASK}"],
        ["X-Auth-Token", MASK],
        ["Host", "h"],
    ]
    assert mask_headers([("Sec-WebSocket-Key", "nonce")]) == [["Sec-WebSocket-Key", "nonce"]]
    assert mask_url("ws://h/p?api_key=1&q=a+b") == f"ws://h/p?api_key={MASK}&q=a+b"
    assert mask_url("ws://h/p") == "ws://h/p"
    info = handshake_info(
        "ws://h/?token=x",
        [("Cookie", "s=1")],
        101,
        "Switching Protocols",
        [],
        subprotocol=None,
        started=1.5,
    )
    assert info == {
        "url": f"ws://h/?token={MASK}",
        "method": "GET",
        "status": 101,
        "status_text": "Switching Protocols",
        "request_headers": [["Cookie", f"s={MASK}"]],
        "response_headers": [],
        "subprotocol": None,
        "started": 1.5,
    }


@pytest.mark.parametrize(
    "name",
    ["token", "auth_token", "id_token", "access-token", "client_secret", "x-api-key", "apikey"]
    + ["jwt", "password", "passwd", "pass", "key", "auth", "X-Amz-Signature", "credentials"],
)
def test_mask_url_masks_any_parameter_named_like_a_credential(name: str) -> None:
    assert mask_url(f"ws://h/p?{name}=s3cr3t&room=7") == f"ws://h/p?{name}={MASK}&room=7"


def test_mask_url_keeps_the_rest_of_the_url_as_written() -> None:
    # Encoding, blank values, flags and order untouched; session ids and look-alikes kept.
    kept = "ws://h:1/p?q=a%20b&plus=a+b&flag&blank=&session=abc&keyword=k&monkey=1&token="
    assert mask_url(kept) == kept
    assert (
        mask_url("ws://h/?q=a%20b&auth%5Ftoken=x&flag")
        == f"ws://h/?q=a%20b&auth%5Ftoken={MASK}&flag"
    )
    # User info: the password and the user.
    assert mask_url("ws://alice:hunter2@h:1/p?x=1") == f"ws://{MASK}:{MASK}@h:1/p?x=1"
    assert mask_url("wss://alice@h/") == f"wss://{MASK}@h/"


def test_mask_headers_masks_auth_style_names_but_not_challenges() -> None:
    headers = [
        ("X-Auth", "a"),
        ("X-Api-Key", "b"),
        ("X-JWT-Assertion", "c"),
        ("WWW-Authenticate", 'Bearer realm="api"'),
        ("Keep-Alive", "timeout=5"),
        ("X-Session", "s"),
    ]
    assert mask_headers(headers) == [
        ["X-Auth", MASK],
        ["X-Api-Key", MASK],
        ["X-JWT-Assertion", MASK],
        ["WWW-Authenticate", 'Bearer realm="api"'],
        ["Keep-Alive", "timeout=5"],
        ["X-Session", "s"],
    ]


def test_any_unicode_and_any_bytes_pass_through_unchanged(
    node_server: Callable[[str], str],
) -> None:
    upstream = node_server("plain")
    sent: list[str | bytes] = []
    # Every code point but the surrogates, which UTF-8 cannot carry (see the next test).
    text = st.text(alphabet=st.characters(codec="utf-8"))
    with RecordingProxy(upstream) as proxy, connect(proxy.url, open_timeout=TIMEOUT) as ws:

        @settings(max_examples=150, deadline=None)
        @given(text | st.binary())
        def round_trip(payload: str | bytes) -> None:
            if payload in ("hello?", "ping-me"):  # the server's own commands
                return
            ws.send(payload)
            assert ws.recv(timeout=TIMEOUT) == payload
            sent.append(payload)

        round_trip()
    proxy.recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=TIMEOUT)
    data = [f for f in proxy.recording if f.opcode in ("text", "binary")]
    assert [f.payload for f in data if f.direction == "in"] == sent
    assert [f.payload for f in data if f.direction == "out"] == sent
    assert any(isinstance(p, str) and not p.isascii() for p in sent)


@pytest.mark.parametrize("surrogate", ["\ud800", "\udfff", "a\udbff\udc00"[1:2]])
def test_a_text_frame_holding_a_surrogate_is_refused_and_never_forwarded(
    node_server: Callable[[str], str], surrogate: str
) -> None:
    upstream = node_server("plain")
    invalid = f"x{surrogate}y".encode("utf-8", "surrogatepass")  # what a broken client sends
    with RecordingProxy(upstream) as proxy, connect(proxy.url, open_timeout=TIMEOUT) as ws:
        with ws.send_context():  # past the client's own check, onto the wire as it is
            ws.protocol.send_text(invalid)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
        proxy.recording.wait_for(lambda f: f.opcode == "close", count=2, timeout=TIMEOUT)
    # Nothing reached upstream but the close, with the same code: it answered.
    assert [(f.direction, f.opcode, f.close_code) for f in proxy.recording] == [
        ("in", "close", 1007),
        ("out", "close", 1007),
    ]
