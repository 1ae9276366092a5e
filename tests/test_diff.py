"""Normalising and diffing recordings: two runs agree whatever their times and ids; differences read well."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from memgpt_lab.recorder import Frame, Recording, TickClock
from memgpt_lab.recorder.diff import STATUSES, RecordingDiff, diff_frames
from memgpt_lab.recorder.normalise import Normaliser
from memgpt_lab.ws.client import LabClient
from memgpt_lab.ws.server import LabServer


def conversation(name: str) -> Recording:
    """A real server's recording of one conversation: fresh ids, sessions and times every run."""
    with LabServer() as server, LabClient(server.url) as client:
        agent = client.create_agent(persona="sam_pov", human="basic")
        client.send("Hello, is anyone there?", agent)
        client.send(f"My name is {name}", agent)
    return server.recording


@pytest.fixture(scope="module")
def ada() -> Recording:
    return conversation("Ada")


def test_two_runs_of_one_conversation_agree(ada: Recording) -> None:
    again = conversation("Ada")
    assert ada[0].json["session"] != again[0].json["session"]  # really different ids
    diff = ada.diff(again)
    assert not diff
    assert diff.counts() == {"same": len(ada), "changed": 0, "only-left": 0, "only-right": 0}
    assert "(the recordings agree)" in str(diff)


def test_a_changed_answer_shows_its_texts(ada: Recording) -> None:
    bob = conversation("Bob")
    diff = ada.diff(bob)
    assert diff
    assert {row.status for row in diff} == {"same", "changed"}
    changed = diff.changed
    assert all(row.fields == ("message",) for row in changed)
    assert [row.left.seq for row in changed] == [row.right.seq for row in changed]  # type: ignore[union-attr]
    said = [row for row in changed if row.left.message_type == "assistant_message"]  # type: ignore[union-attr]
    assert said and "Ada" in said[0].left.text and "Bob" in said[0].right.text  # type: ignore[union-attr, operator]
    text = str(diff)
    assert "- #11    in  user_message: My name is Ada" in text
    assert "+ #11    in  user_message: My name is Bob" in text
    assert re.search(r"^- .*assistant_message: Nice to meet you, Ada!", text, re.M)
    assert re.search(r"^\+ .*assistant_message: Nice to meet you, Bob!", text, re.M)
    assert "~   changed: message" in text
    assert "same frames" in text  # long runs of agreement are folded


def rec_of(*texts: str, connection: str = "c1") -> Recording:
    rec = Recording(clock=TickClock(), wall_clock=TickClock())
    for text in texts:
        rec.record("out", text, connection_id=connection)
    return rec


def frames(n: int, insert_at: int | None = None, seq: bool = True) -> Recording:
    rec = Recording()
    for i in range(n):
        if i == insert_at:
            rec.record("out", '{"type":"extra","message":"inserted"}', connection_id="c1")
        body = f'{{"type":"agent_response","message":"step {i}"'
        body += f',"seq":{rec._seq + 1}}}' if seq else "}"
        rec.record("out", body, connection_id="c1")
    return rec


def test_an_inserted_frame_is_one_row_not_every_later_one() -> None:
    left, right = frames(50), frames(50, insert_at=20)
    diff = left.diff(right, normalise=Normaliser(seq=True))
    assert diff.counts() == {"same": 50, "changed": 0, "only-left": 0, "only-right": 1}
    (row,) = diff.only_right
    assert row.left is None and row.right is not None and row.right.json["message"] == "inserted"
    assert "+ #21    out extra: inserted" in str(diff)
    # The other way round it is missing.
    back = right.diff(left, normalise=Normaliser(seq=True))
    assert [r.status for r in back if r.status != "same"] == ["only-left"]


def test_seq_kept_by_default_then_renumbered_frames_fold_into_one_line() -> None:
    left, right = frames(50), frames(50, insert_at=20)
    diff = left.diff(right)
    counts = diff.counts()
    assert counts["only-right"] == 1 and counts["changed"] == 30 and counts["same"] == 20
    assert all(row.fields == ("seq",) for row in diff.changed)
    text = str(diff)
    assert "~ 30 frames differ only in seq (left #21 is right #22)" in text
    assert text.count("\n") < 20


def test_connections_pair_by_content_whatever_their_names_and_order() -> None:
    left = Recording()
    left.record("in", "a", connection_id="x")
    left.record("in", "b", connection_id="y")
    left.record("out", "a2", connection_id="x")
    right = Recording()
    right.record("in", "b", connection_id="q")  # another order of arrival...
    right.record("in", "a", connection_id="p")
    right.record("out", "a2", connection_id="p")
    # ...pairs x with p and y with q: by content, whatever the names and the order.
    assert not left.diff(right)
    right.record("out", "b2", connection_id="q")
    assert [(r.connection, r.status) for r in left.diff(right)] == [
        ("c1", "same"),
        ("c1", "same"),
        ("c2", "same"),
        ("c2", "only-right"),
    ]


def test_changed_fields_for_every_kind_of_frame() -> None:
    a = Recording()
    b = Recording()
    Payload = str | bytes | tuple[int, str]
    pairs: list[tuple[str, Payload, str, Payload]] = [
        ("out", "plain", "out", "other"),
        ("out", b"\x00", "out", b"\x01"),
        ("out", (1000, "bye"), "out", (1001, "bye")),
        ("out", '{"type":"t","k":1}', "out", '{"type":"t","k":2,"new":true}'),
        ("in", "direction", "out", "direction"),
        ("out", "opcode", "out", b"opcode"),
    ]
    for da, xa, db, xb in pairs:  # each one frame in the place of one other, between same ones
        for rec, direction, x in ((a, da, xa), (b, db, xb)):
            if isinstance(x, tuple):
                rec.record_close(direction, *x)
            else:
                rec.record(direction, x)
            rec.record("out", "between")
    rows = [r for r in diff_frames(a.frames(), b.frames()) if r.status != "same"]
    assert [r.fields for r in rows] == [
        ("text",),
        ("data",),
        ("close",),
        ("k", "new"),
        ("direction",),
        ("opcode",),
    ]
    assert repr(rows[0]) == "<DiffRow changed c1 1/1 text>"


def test_empty_recordings_agree_and_summary() -> None:
    diff = Recording().diff(Recording())
    assert not diff and diff.rows == [] and diff.summary().endswith("0 same")
    assert STATUSES == ("same", "changed", "only-left", "only-right")
    one = rec_of("x")
    diff = one.diff(Recording())
    assert diff and diff.summary() == "0 changed, 1 only-left, 0 only-right, 0 same"
    assert repr(diff) == "<RecordingDiff 0 changed, 1 only-left, 0 only-right, 0 same>"


# --------------------------------------------------------------------------- normaliser


def bodies(normaliser: Normaliser, *texts: str) -> list[str]:
    return [f.body for f in normaliser.normalise(rec_of(*texts))]


def test_ids_and_uuids_become_placeholders_in_order_of_first_appearance() -> None:
    u1, u2 = str(uuid.uuid4()), str(uuid.uuid4())
    out = bodies(
        Normaliser(),
        f'{{"agent_id":"abc","id":"{u1}","note":"see {u2}"}}',
        f'{{"forked_from":"abc","session":"s9","x":"{u2.upper()}","agent_id":null}}',
        '{"turn_id":1,"request_id":1,"checkpoint_id":"zz"}',
    )
    assert out == [
        '{"agent_id":"<id:1>","id":"<id:2>","note":"see <uuid:1>"}',
        '{"forked_from":"<id:1>","session":"<id:3>","x":"<uuid:1>","agent_id":null}',
        '{"turn_id":"<turn_id:1>","request_id":"<request_id:1>","checkpoint_id":"<id:4>"}',
    ]


def test_times_become_placeholders() -> None:
    out = bodies(
        Normaliser(),
        '{"time":1700000000.5,"created_at":"2024-01-01T10:00:00Z","m":"at 2024-05-01 10:00:00 AM UTC+0000 ok"}',
    )
    assert out == ['{"time":"<time>","created_at":"<time>","m":"at <time> ok"}']
    assert bodies(Normaliser(times=False), '{"time":1}') == ['{"time":1}']


def test_seq_is_kept_unless_asked() -> None:
    assert bodies(Normaliser(), '{"seq":4}') == ['{"seq":4}']
    assert bodies(Normaliser(seq=True), '{"seq":4}') == ['{"seq":"<seq>"}']


def test_only_real_json_keys_are_touched() -> None:
    # A key spelled inside a string value is escaped: it is text, not a key.
    text = '{"message":"{\\"agent_id\\":\\"abc\\"}","agent_id":"real"}'
    assert bodies(Normaliser(), text) == [
        '{"message":"{\\"agent_id\\":\\"abc\\"}","agent_id":"<id:1>"}'
    ]


def test_user_rules_run_after_the_built_in_ones() -> None:
    normaliser = Normaliser(rules=[(r"\d+ ms", "<ms>")]).with_rules(str.upper)
    assert bodies(normaliser, '{"m":"took 12 ms","agent_id":"a"}') == [
        '{"M":"TOOK <MS>","AGENT_ID":"<ID:1>"}'
    ]
    assert "rules=2" in repr(normaliser)
    with pytest.raises(TypeError, match="a rule is a"):
        Normaliser(rules=[42])  # type: ignore[list-item]


def test_nothing_normalised_when_all_is_off() -> None:
    plain = Normaliser(times=False, ids=False, uuids=False)
    text = f'{{"agent_id":"a","time":1,"u":"{uuid.uuid4()}"}}'
    (frame,) = plain.normalise(rec_of(text, connection="zz"))
    assert frame.body == text and frame.connection == "zz"


def test_custom_id_keys() -> None:
    assert bodies(Normaliser(id_keys=("token",)), '{"token":"t1","id":"x"}') == [
        '{"token":"<id:1>","id":"x"}'
    ]


def test_a_difference_far_along_a_long_text_is_in_view() -> None:
    long = "x" * 300
    left = rec_of(f'{{"type":"t","message":"{long} Ada"}}')
    right = rec_of(f'{{"type":"t","message":"{long} Bob"}}')
    lines = str(left.diff(right)).splitlines()
    minus = next(line for line in lines if line.startswith("- "))
    plus = next(line for line in lines if line.startswith("+ "))
    assert minus.endswith("xx Ada") and plus.endswith("xx Bob")
    assert "…x" in minus and len(minus) <= 102


def test_texts_the_bulk_pass_cannot_split_are_normalised_one_by_one() -> None:
    # A NUL in a text, and a match that would run from one text into the next.
    assert bodies(Normaliser(), '{"agent_id":"a"}', "x\0y", '{"agent_id":"b"}') == [
        '{"agent_id":"<id:1>"}',
        "x\0y",
        '{"agent_id":"<id:2>"}',
    ]
    assert bodies(Normaliser(), ',"id":"x', 'y"', '{"id":"z"}') == [
        ',"id":"x',
        'y"',
        '{"id":"<id:1>"}',
    ]


# --------------------------------------------------------------------------- alignment


def chat(*spec: tuple[str, str, str, str]) -> Recording:
    """A recording of ``(connection, direction, type, message)`` frames; each connection's
    agent id is its own, so the normaliser numbers them in order of first appearance."""
    rec = Recording(clock=TickClock(), wall_clock=TickClock())
    for cid, direction, kind, message in spec:
        body = {"type": kind, "message": message, "agent_id": f"agent-{cid}"}
        rec.record(direction, json.dumps(body), connection_id=cid)
    return rec


def shown(diff: RecordingDiff) -> list[tuple[str, str, str | None, str | None]]:
    def text(frame: Frame | None) -> str | None:
        return None if frame is None else frame.json["message"]

    return [(r.connection, r.status, text(r.left), text(r.right)) for r in diff]


def test_an_insert_next_to_a_change_pairs_the_frames_that_are_alike() -> None:
    left = chat(
        ("a", "in", "user_message", "hi"),
        ("b", "in", "user_message", "yo"),
        ("a", "out", "agent_response", "hello"),
        ("b", "out", "agent_response", "sup"),
        ("a", "out", "agent_response_end", ""),
        ("b", "out", "agent_response_end", ""),
    )
    right = chat(
        ("a", "in", "user_message", "hi"),
        ("b", "in", "user_message", "yo"),
        ("a", "out", "internal_monologue", "thinking"),
        ("a", "out", "agent_response", "hello!"),
        ("a", "out", "agent_response_end", ""),
        ("b", "out", "agent_response_end", ""),
    )
    diff = left.diff(right)
    assert shown(diff) == [
        ("c1", "same", "hi", "hi"),
        ("c1", "only-right", None, "thinking"),
        ("c1", "changed", "hello", "hello!"),
        ("c1", "same", "", ""),
        ("c2", "same", "yo", "yo"),
        ("c2", "only-left", "sup", None),
        ("c2", "same", "", ""),
    ]
    assert diff.changed[0].fields == ("message",)
    text = str(diff)
    assert "+ #3     out internal_monologue: thinking" in text
    assert "- #3     out agent_response: hello\n+ #4     out agent_response: hello!" in text


def test_of_several_alike_frames_the_closest_text_is_paired() -> None:
    left = chat(("a", "out", "agent_response", "the weather in Lisbon is mild"))
    right = chat(
        ("a", "out", "agent_response", "something else entirely"),
        ("a", "out", "agent_response", "the weather in Lisbon is mild today"),
    )
    assert shown(left.diff(right)) == [
        ("c1", "only-right", None, "something else entirely"),
        ("c1", "changed", "the weather in Lisbon is mild", "the weather in Lisbon is mild today"),
    ]
    # Frames of other kinds are not paired when more than one differs on a side...
    left = chat(("a", "out", "internal_monologue", "x"), ("a", "out", "function_call", "f()"))
    right = chat(("a", "out", "agent_response", "y"), ("a", "out", "function_return", "ok"))
    assert [r.status for r in left.diff(right)] == ["only-left"] * 2 + ["only-right"] * 2
    # ...but one frame in the place of one other is a change.
    left = chat(("a", "out", "internal_monologue", "x"), ("a", "out", "agent_response_end", ""))
    right = chat(("a", "out", "agent_response", "y"), ("a", "out", "agent_response_end", ""))
    assert [(r.status, r.fields) for r in left.diff(right)] == [
        ("changed", ("type", "message")),
        ("same", ()),
    ]


def test_a_long_run_of_differences_pairs_alike_frames_without_a_quadratic_table() -> None:
    kinds = ("internal_monologue", "agent_response", "function_call")
    left = chat(*(("a", "out", kinds[i % 3], f"left {i}") for i in range(300)))
    right = chat(*(("a", "out", kinds[i % 3], f"right {i}") for i in range(1, 301)))
    diff = left.diff(right)
    # one frame missing at the start, one added at the end: the kinds stay in step
    assert diff.counts() == {"same": 0, "changed": 299, "only-left": 1, "only-right": 1}
    assert all(r.left.type == r.right.type for r in diff.changed)  # type: ignore[union-attr]
    # All of one kind, one more on the right: paired in order, the extra one at the end.
    left = chat(*(("a", "out", "agent_response", f"left {i}") for i in range(100)))
    right = chat(*(("a", "out", "agent_response", f"right {i}") for i in range(101)))
    assert [r.status for r in left.diff(right)] == ["changed"] * 100 + ["only-right"]


def test_a_missing_connection_is_only_left_whole() -> None:
    left = chat(
        ("a", "in", "user_message", "hi"),
        ("b", "in", "user_message", "yo"),
        ("c", "in", "user_message", "hey"),
        ("b", "out", "agent_response", "sup"),
        ("c", "out", "agent_response", "hey there"),
    )
    right = chat(
        ("a", "in", "user_message", "hi"),
        ("c", "in", "user_message", "hey"),
        ("c", "out", "agent_response", "hey there"),
    )
    diff = left.diff(right)
    assert shown(diff) == [
        ("c1", "same", "hi", "hi"),
        ("c2", "only-left", "yo", None),
        ("c2", "only-left", "sup", None),
        ("c3", "same", "hey", "hey"),
        ("c3", "same", "hey there", "hey there"),
    ]
    assert diff.summary() == "0 changed, 2 only-left, 0 only-right, 3 same"
    # The other way round it is only-right, under a name of its own.
    back = right.diff(left)
    assert [(r.connection, r.status) for r in back if r.status != "same"] == [
        ("c3", "only-right"),
        ("c3", "only-right"),
    ]
    assert "@@ c3 @@\n+ #2     in  user_message: yo" in str(back)


def test_connections_that_arrive_in_another_order_agree() -> None:
    left = chat(
        ("a", "in", "user_message", "hi"),
        ("b", "in", "user_message", "yo"),
        ("c", "in", "user_message", "hey"),
        ("a", "out", "agent_response", "hello"),
        ("b", "out", "agent_response", "sup"),
    )
    right = chat(
        ("b", "in", "user_message", "yo"),
        ("a", "in", "user_message", "hi"),
        ("b", "out", "agent_response", "sup"),
        ("c", "in", "user_message", "hey"),
        ("a", "out", "agent_response", "hello"),
    )
    diff = left.diff(right)
    assert not diff, str(diff)
    assert diff.counts()["same"] == 5
    # A real change in one of them is still found, in the right connection.
    right.record("in", json.dumps({"type": "user_message", "message": "more"}), connection_id="c")
    assert [(r.connection, r.status) for r in left.diff(right) if r.status != "same"] == [
        ("c3", "only-right")
    ]


def test_unlike_connections_fall_back_to_order_and_similar_ones_pair_by_content() -> None:
    left = chat(("x", "in", "user_message", "one"), ("y", "in", "user_message", "two"))
    right = chat(("p", "in", "user_message", "uno"), ("q", "in", "user_message", "dos"))
    assert shown(left.diff(right)) == [
        ("c1", "changed", "one", "uno"),
        ("c2", "changed", "two", "dos"),
    ]
    # x pairs with q, which shares most of its frames; y, like nothing, takes what is left.
    left = chat(
        ("x", "in", "user_message", "one"),
        ("x", "out", "agent_response", "A"),
        ("x", "out", "agent_response", "B"),
        ("y", "in", "user_message", "two"),
    )
    right = chat(
        ("p", "in", "user_message", "two!"),
        ("q", "in", "user_message", "one"),
        ("q", "out", "agent_response", "A"),
        ("q", "out", "agent_response", "C"),
    )
    assert shown(left.diff(right)) == [
        ("c1", "same", "one", "one"),
        ("c1", "same", "A", "A"),
        ("c1", "changed", "B", "C"),
        ("c2", "changed", "two", "two!"),
    ]


def test_connections_pair_and_renumber_when_a_text_holds_a_nul() -> None:
    def rec(*order: str) -> Recording:
        r = chat(*((c, "in", "user_message", f"hi from {c}") for c in order))
        for c in order:  # a raw text with a NUL: the passes over joined texts cannot split it
            r.record("out", f"raw\0{c}", connection_id=c)
        return r

    left, right = rec("a", "b"), rec("b", "a")
    assert left[2].text == "raw\0a"
    diff = left.diff(right)
    assert not diff, str(diff)
    assert left.diff(rec("b")).summary() == "0 changed, 2 only-left, 0 only-right, 2 same"


def test_a_diff_of_lone_surrogates_prints_on_a_utf8_terminal() -> None:
    left, right = Recording(), Recording()
    left.record("out", json.dumps({"type": "agent_response", "message": "fine"}))
    right.record(
        "out", json.dumps({"type": "agent_response", "message": "bad \ud800"}, ensure_ascii=False)
    )
    shown = str(left.diff(right))
    shown.encode("utf-8")  # what print() to a UTF-8 stdout does; raised before
    assert "bad \\ud800" in shown
