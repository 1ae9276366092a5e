"""HAR both ways: our files validate against HAR 1.2 and read back exactly; DevTools and Playwright files read."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memgpt_lab.recorder import Recording, RecordingFormatError, TickClock
from memgpt_lab.recorder.formats import detect_format
from memgpt_lab.ws import protocol

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "har"
NODE_MODULES = ROOT / ".cache" / "npm" / "node_modules"


def fields(frame: Any) -> tuple[Any, ...]:
    return (
        frame.seq,
        frame.time,
        frame.wall_time,
        frame.direction,
        frame.opcode,
        frame.payload,
        frame.connection_id,
        frame.close_code,
        frame.close_reason,
    )


def sample() -> Recording:
    """Two connections, every opcode, one refused handshake, Unicode beyond the BMP."""
    rec = Recording(clock=TickClock(5.0, 0.25), wall_clock=TickClock(1_704_067_200.0, 0.5))
    rec.set_connection_info(
        "c1",
        {
            "url": "ws://127.0.0.1:8282/?hello=1&session=abc",
            "method": "GET",
            "status": 101,
            "status_text": "Switching Protocols",
            "request_headers": [["Host", "127.0.0.1:8282"], ["Authorization", "***"]],
            "response_headers": [["Upgrade", "websocket"], ["Sec-WebSocket-Protocol", "memgpt"]],
            "subprotocol": "memgpt",
            "started": 1_704_067_199.75,
            "handshake_ms": 1.5,
        },
    )
    rec.set_connection_info(
        "c3", {"url": "ws://127.0.0.1:8282/", "status": 403, "status_text": "Forbidden"}
    )
    rec.record(
        "in",
        protocol.encode(protocol.user_message('héllo 👋 "quoted"\n', agent_id="a1")),
        connection_id="c1",
    )
    rec.record("out", protocol.encode(protocol.agent_response_start()), connection_id="c1")
    rec.record("in", "plain text, not JSON", connection_id="c2")
    rec.record("out", b"\x00\x01\xfe\xff", connection_id="c2")
    rec.record("in", b"are you there", connection_id="c2", opcode="ping")
    rec.record("out", b"are you there", connection_id="c2", opcode="pong")
    rec.record("out", protocol.encode(protocol.agent_response_end()), connection_id="c1")
    rec.record_close("in", 1000, "bye ✓", connection_id="c1")
    rec.record_close("out", 1006, "", connection_id="c2")
    return rec


def test_round_trip_keeps_every_frame_and_handshake(tmp_path: Path) -> None:
    rec = sample()
    path = tmp_path / "traffic.har"
    rec.to_har(path)
    back = Recording.from_har(path)
    assert [fields(f) for f in back] == [fields(f) for f in rec]
    assert back.connection_info("c1") == rec.connection_info("c1")  # every key given
    refused = back.connection_info("c3")
    assert refused is not None  # a handshake without frames keeps its entry
    assert (refused["status"], refused["status_text"], refused["method"]) == (
        403,
        "Forbidden",
        "GET",
    )
    assert back.connection_info("c2") is None  # nothing was known, nothing is made up
    assert back.skipped_entries == 0
    assert not back.diff(rec)


def test_written_har_is_devtools_shaped(tmp_path: Path) -> None:
    path = tmp_path / "traffic.har"
    sample().to_har(path)
    log = json.loads(path.read_text(encoding="utf-8"))["log"]
    assert log["version"] == "1.2" and log["creator"]["name"] == "memgpt_lab"
    entries = {e["_connectionId"]: e for e in log["entries"]}
    # In the order they started (handshake, else first frame); c3 has neither: last.
    assert list(entries) == ["c1", "c2", "c3"]
    c1, c2, c3 = entries["c1"], entries["c2"], entries["c3"]
    assert c1["_resourceType"] == "websocket"
    assert c1["request"]["method"] == "GET"
    assert c1["request"]["url"] == "ws://127.0.0.1:8282/?hello=1&session=abc"
    assert c1["request"]["queryString"] == [
        {"name": "hello", "value": "1"},
        {"name": "session", "value": "abc"},
    ]
    assert {"name": "Authorization", "value": "***"} in c1["request"]["headers"]
    assert c1["response"]["status"] == 101
    assert c1["startedDateTime"] == "2023-12-31T23:59:59.750Z"
    assert c1["timings"]["wait"] == 1.5 and c1["time"] == 1.5
    messages = c1["_webSocketMessages"]
    # "in" (client to server) is what the client sent: "send"; "out" is "receive".
    assert [m["type"] for m in messages] == ["send", "receive", "receive", "send"]
    assert [m["opcode"] for m in messages] == [1, 1, 1, 8]
    assert messages[0]["time"] == 1_704_067_200.0  # epoch seconds
    assert json.loads(messages[0]["data"])["message"] == 'héllo 👋 "quoted"\n'
    assert messages[3]["data"] == "bye ✓" and messages[3]["_closeCode"] == 1000
    kinds = [(m["type"], m["opcode"], m["data"]) for m in c2["_webSocketMessages"]]
    assert kinds == [
        ("send", 1, "plain text, not JSON"),
        ("receive", 2, "AAH+/w=="),  # binary data is base64
        ("send", 9, "YXJlIHlvdSB0aGVyZQ=="),
        ("receive", 10, "YXJlIHlvdSB0aGVyZQ=="),
        ("receive", 8, ""),
    ]
    assert c3["response"]["status"] == 403 and c3["_webSocketMessages"] == []


def _validate(*paths: Path) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "node is needed to validate HAR files (Debian's nodejs)"
    assert (NODE_MODULES / "har-validator").is_dir(), (
        "har-validator is not installed: `make test` installs it under .cache/npm"
    )
    result = subprocess.run(
        [node, str(FIXTURES / "validate_har.js"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
    )
    assert result.stderr == "", result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_written_har_validates_against_the_har_1_2_schema(tmp_path: Path) -> None:
    ours = tmp_path / "ours.har"
    sample().to_har(ours)
    empty = tmp_path / "empty.har"
    Recording().to_har(empty)
    bare = tmp_path / "bare.har"  # no handshake recorded: the defaults must validate too
    rec = Recording()
    rec.record("in", "hi")
    rec.to_har(bare)
    broken = tmp_path / "broken.har"
    document = json.loads(ours.read_text(encoding="utf-8"))
    del document["log"]["entries"][0]["timings"]
    broken.write_text(json.dumps(document), encoding="utf-8")
    results = _validate(ours, empty, bare, broken, FIXTURES / "devtools_websocket.har")
    assert [r["valid"] for r in results] == [True, True, True, False, True], results
    assert "timings" in json.dumps(results[3]["errors"])  # the validator does look


def test_reads_a_chrome_devtools_har() -> None:
    rec = Recording.from_har(FIXTURES / "devtools_websocket.har")
    assert rec.skipped_entries == 2  # the page and the fetch
    assert len(rec) == 5 and [f.seq for f in rec] == [1, 2, 3, 4, 5]
    assert [f.direction for f in rec] == ["out", "in", "out", "in", "out"]
    assert {f.connection_id for f in rec} == {"c1"}
    assert rec[1].json == {"type": "user_message", "message": "héllo 👋", "agent_id": "agent_1"}
    assert rec[3].opcode == "binary" and rec[3].data == b"\x00\x01\x02\xff"
    assert rec[0].wall_time == 1714557600.102 and rec[0].time == rec[0].wall_time
    info = rec.connection_info("c1")
    assert info is not None
    assert info["url"] == "ws://127.0.0.1:8282/?hello=1"
    assert info["status"] == 101
    assert ["Origin", "http://127.0.0.1:8282"] in info["request_headers"]
    assert info["started"] == pytest.approx(1714557600.1)
    assert info["handshake_ms"] == 1.9
    assert rec.filter(type="agent_response_end")[0].seq == 5


def test_reads_a_playwright_har_with_and_without_messages() -> None:
    rec = Recording.from_har(FIXTURES / "playwright_websocket.har")
    assert rec.skipped_entries == 1
    assert [(f.connection_id, f.direction, f.type) for f in rec] == [
        ("c1", "in", "command"),
        ("c1", "out", "command_response"),
    ]
    # Playwright's message times are epoch milliseconds: read as seconds like the rest.
    assert [f.wall_time for f in rec] == [1714561200.06, 1714561200.0705]
    assert set(rec.connections) == {"c1", "c2"}  # the second socket sent nothing
    assert rec.connection_info("c1")["subprotocol"] == "memgpt"  # type: ignore[index]
    assert rec.connection_info("c2")["url"] == "ws://127.0.0.1:8282/other"  # type: ignore[index]


def test_foreign_connections_interleave_by_time(tmp_path: Path) -> None:
    def entry(url: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "request": {"url": url},
            "response": {"status": 101},
            "_webSocketMessages": messages,
        }

    har = {
        "log": {
            "entries": [
                entry(
                    "ws://a/",
                    [
                        {"type": "send", "time": 1.0, "opcode": 1, "data": "a1"},
                        {"type": "send", "time": 3.0, "opcode": 1, "data": "a2"},
                    ],
                ),
                entry("ws://b/", [{"type": "receive", "time": 2.0, "opcode": 1, "data": "b1"}]),
            ]
        }
    }
    path = tmp_path / "two.har"
    path.write_text(json.dumps(har), encoding="utf-8")
    rec = Recording.load(path)
    assert [(f.seq, f.connection_id, f.text) for f in rec] == [
        (1, "c1", "a1"),
        (2, "c2", "b1"),
        (3, "c1", "a2"),
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "not JSON"),
        ('{"nolog": 1}', "no log.entries list"),
        (
            '{"log": {"entries": [{"_resourceType": "websocket", "_webSocketMessages": [{"type": "send", "time": 1, "opcode": 3, "data": ""}]}]}}',
            "unsupported opcode 3",
        ),
        (
            '{"log": {"entries": [{"_resourceType": "websocket", "_webSocketMessages": [{"type": "sent", "time": 1, "opcode": 1, "data": ""}]}]}}',
            "'send' or 'receive', not 'sent'",
        ),
        (
            '{"log": {"entries": [{"_resourceType": "websocket", "_webSocketMessages": [{"type": "send", "time": 1, "opcode": 2, "data": "%%%"}]}]}}',
            "binary data is not base64",
        ),
        (
            '{"log": {"entries": [{"_resourceType": "websocket", "_webSocketMessages": [{"type": "send", "time": "noon", "opcode": 1, "data": ""}]}]}}',
            "'time' must be epoch seconds",
        ),
        (
            '{"log": {"entries": [{"_resourceType": "websocket", "_webSocketMessages": [{"type": "send", "time": 1, "opcode": 1, "data": 5}]}]}}',
            "'data' must be a string",
        ),
        (
            '{"log": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "not JSON .*nested deeper than 512 levels",
        ),
    ],
)
def test_bad_har_files_say_what_is_wrong(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "bad.har"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(RecordingFormatError, match=message) as info:
        Recording.from_har(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("response", [{}, {"status": None}, {"status": "101"}, None])
def test_an_entry_without_a_status_reads_and_writes_back_as_101(
    tmp_path: Path, response: object
) -> None:
    entry: dict[str, object] = {
        "_resourceType": "websocket",
        "request": {"url": "ws://h/"},
        "_webSocketMessages": [{"type": "send", "time": 1.5, "opcode": 1, "data": "hi"}],
    }
    if response is not None:
        entry["response"] = response
    path = tmp_path / "nostatus.har"
    path.write_text(json.dumps({"log": {"entries": [entry]}}), encoding="utf-8")
    rec = Recording.from_har(path)
    (cid,) = rec.connections
    assert rec.connection_info(cid)["status"] == 101
    again = tmp_path / "again.har"
    rec.to_har(again)
    (written,) = json.loads(again.read_text(encoding="utf-8"))["log"]["entries"]
    assert written["response"]["status"] == 101
    assert written["response"]["statusText"] == "Switching Protocols"
    assert Recording.from_har(again).texts() == ["hi"]
    # Connection info set by hand without a status writes the same way.
    by_hand = Recording()
    by_hand.record("in", "x", connection_id="c1")
    by_hand.set_connection_info("c1", {"url": "ws://h/", "status": None, "status_text": None})
    buffer = io.StringIO()
    by_hand.to_har(buffer)
    (entry_out,) = json.loads(buffer.getvalue())["log"]["entries"]
    assert (entry_out["response"]["status"], entry_out["response"]["statusText"]) == (
        101,
        "Switching Protocols",
    )


def test_a_close_without_a_reason_keeps_none_and_an_empty_reason_stays_empty(
    tmp_path: Path,
) -> None:
    rec = Recording(clock=TickClock(), wall_clock=TickClock(1_700_000_000.0))
    rec.record("in", None, opcode="close", connection_id="a")  # no code, no reason
    rec.record_close("out", 1000, "", connection_id="a")
    rec.record_close("out", 4000, "bye", connection_id="b")
    path = tmp_path / "closes.har"
    rec.to_har(path)
    back = Recording.from_har(path)
    assert [(f.close_code, f.close_reason) for f in back] == [
        (None, None),
        (1000, ""),
        (4000, "bye"),
    ]
    assert [fields(f) for f in back] == [fields(f) for f in rec]
    # A foreign close message without the marker reads as it always did.
    foreign = {"type": "receive", "time": 1.0, "opcode": 8, "data": ""}
    entry = {"_resourceType": "websocket", "_webSocketMessages": [foreign]}
    path.write_text(json.dumps({"log": {"entries": [entry]}}), encoding="utf-8")
    assert [f.close_reason for f in Recording.from_har(path)] == [""]


def test_load_picks_the_format(tmp_path: Path) -> None:
    rec = sample()
    rec.to_har(tmp_path / "a.har")
    rec.to_jsonl(tmp_path / "a.jsonl")
    rec.to_har(tmp_path / "har_without_suffix")
    rec.to_jsonl(tmp_path / "jsonl_without_suffix")
    for name, kind in [
        ("a.har", "har"),
        ("a.jsonl", "jsonl"),
        ("har_without_suffix", "har"),
        ("jsonl_without_suffix", "jsonl"),
    ]:
        assert detect_format(tmp_path / name) == kind
        back = Recording.load(tmp_path / name)
        assert [fields(f) for f in back] == [fields(f) for f in rec], name
        assert set(back.connections) == {"c1", "c3"}, name
        assert back.connection_info("c1") == rec.connection_info("c1"), name
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    (tmp_path / "other").write_text("hello\n", encoding="utf-8")
    with pytest.raises(RecordingFormatError, match="empty file"):
        Recording.load(tmp_path / "empty")
    with pytest.raises(RecordingFormatError, match="neither HAR"):
        Recording.load(tmp_path / "other")
    rec.to_jsonl(tmp_path / "deep.jsonl")
    deep = (tmp_path / "deep.jsonl").read_text(encoding="utf-8").splitlines()
    deep.insert(1, "[" * 100_000 + "]" * 100_000)  # json raised RecursionError here
    (tmp_path / "deep.jsonl").write_text("\n".join(deep), encoding="utf-8")
    with pytest.raises(RecordingFormatError, match="line 2.*nested deeper than 512 levels"):
        Recording.load(tmp_path / "deep.jsonl")
    with pytest.raises(FileNotFoundError):
        Recording.load(tmp_path / "missing.har")


def test_save_is_the_counterpart_of_load(tmp_path: Path) -> None:
    rec = sample()
    assert rec.save(tmp_path / "a.HAR") == "har"  # the suffix decides, in any case
    assert rec.save(tmp_path / "a.jsonl") == "jsonl"
    assert rec.save(str(tmp_path / "no_suffix")) == "jsonl"
    assert rec.save(tmp_path / "forced.jsonl", "har") == "har"  # an explicit format wins
    for name, kind in [("a.HAR", "har"), ("a.jsonl", "jsonl"), ("no_suffix", "jsonl")]:
        assert detect_format(tmp_path / name) == kind, name
        back = Recording.load(tmp_path / name)
        assert [fields(f) for f in back] == [fields(f) for f in rec], name
        assert back.connection_info("c1") == rec.connection_info("c1"), name
    assert json.loads((tmp_path / "forced.jsonl").read_text(encoding="utf-8"))["log"]
    with pytest.raises(ValueError, match="'har' or 'jsonl', not 'csv'"):
        rec.save(tmp_path / "x", "csv")
    assert not (tmp_path / "x").exists()


def test_entries_in_the_order_connections_started(tmp_path: Path) -> None:
    rec = Recording(clock=TickClock(), wall_clock=TickClock(100.0, 1.0))
    rec.record("in", "late one's first frame", connection_id="late")  # wall time 100
    rec.set_connection_info("refused", {"status": 403, "started": 50.0})  # no frames
    rec.set_connection_info("late", {"started": 99.5})
    rec.record("in", "x", connection_id="early")  # 101, no handshake known
    path = tmp_path / "order.har"
    rec.to_har(path)
    log = json.loads(path.read_text(encoding="utf-8"))["log"]
    assert [e["_connectionId"] for e in log["entries"]] == ["refused", "late", "early"]


def test_har_to_a_stream() -> None:
    buffer = io.StringIO()
    sample().to_har(buffer)
    buffer.seek(0)
    assert len(Recording.from_har(buffer)) == len(sample())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(
        st.text(
            alphabet=st.one_of(
                st.characters(exclude_categories=()), st.integers(0xD800, 0xDFFF).map(chr)
            )
        ),
        max_size=5,
    ),
    blobs=st.lists(st.binary(), max_size=3),
)
def test_any_text_any_bytes_survive_both_formats(
    tmp_path: Path, texts: list[str], blobs: list[bytes]
) -> None:
    # All of Unicode, lone surrogates included: a recording may hold what a socket would refuse.
    # Surrogates are written as JSON escapes, so a high one followed by a low one reads back
    # as the character the pair stands for: exactly what JSON can carry, nothing lost beyond.
    rec = Recording()
    for i, text in enumerate(texts):
        rec.record("in" if i % 2 else "out", text, connection_id=f"c{i % 2}")
    for blob in blobs:
        rec.record("out", blob, connection_id="c9")
    for suffix, write in (("har", rec.to_har), ("jsonl", rec.to_jsonl)):
        path = tmp_path / f"fuzz.{suffix}"
        write(path)
        path.read_bytes().decode("utf-8")  # always valid UTF-8 on disk
        back = Recording.load(path)
        expected = [
            fields(f.replace(text=json.loads(json.dumps(f.text))) if f.text else f) for f in rec
        ]
        assert [fields(f) for f in back] == expected
        # Onto any open text file, whatever its encoding: the same frames read back.
        for encoding in ("utf-8", "ascii", "latin-1"):
            opened = tmp_path / f"opened.{encoding}.{suffix}"
            with open(opened, "w", encoding=encoding) as file:
                getattr(rec, f"to_{suffix}")(file)
            with open(opened, encoding=encoding) as file:
                again = Recording.from_har(file) if suffix == "har" else Recording.from_jsonl(file)
            assert [fields(f) for f in again] == expected, encoding
