"""The widgets' FrameIndex reads every frame as ``json.loads`` would, however it is fed.

The index reads a text frame's ``type`` and ``message_type`` with msgspec and
falls back to ``json`` where msgspec refuses; chunks are appended one frame at
a time or with numpy. Whatever the path, each frame's codes must be what
``json.loads`` says, and the posting lists must list exactly its positions.
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt_lab._json import LIMIT, nests_deeper
from memgpt_lab.recorder import Recording, TickClock
from memgpt_lab.widgets import inspector as inspector_module
from memgpt_lab.widgets.inspector import COLUMNS, FILTER_FIELDS, FrameFilter, FrameIndex

ANY_TEXT = st.text(st.characters(exclude_categories=()))  # surrogates included
FIELD_VALUES = st.one_of(
    st.sampled_from(["agent_response", "user_message", "internal_monologue", "", "é\u2028"]),
    ANY_TEXT,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities are written as json writes them
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def frame_texts(draw: st.DrawFn) -> str:
    """Texts a recording may hold: JSON objects with the two fields in every shape, and worse."""
    members: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(["type", "message_type", "message", "seq", "x"]))
        members.append((name, draw(FIELD_VALUES)))
    escaped_keys = draw(st.booleans())  # "\u0074ype" is the key "type"

    def key(name: str) -> str:
        written = json.dumps(name)
        return written.replace("t", "\\u0074", 1) if escaped_keys else written

    text = "{" + ",".join(f"{key(k)}:{json.dumps(v)}" for k, v in members) + "}"
    return draw(
        st.sampled_from(
            [
                text,  # duplicate keys included: the last one counts
                " \t" + text + "\r\n",
                text[:-1],  # cut short
                text.replace('"', "'"),
                "[" + text + "]",
                "[" * 3000 + "]" * 3000,  # deeper than json can parse
                '{"type": ' + "[" * 200 + "]" * 200 + "}",
                '{"type": "a", "x": ' + "[" * (LIMIT - 1) + "]" * (LIMIT - 1) + "}",
                '{"type": "a", "x": ' + "[" * LIMIT + "]" * LIMIT + "}",  # json reads it; too deep
                '{"type": "a", "n": ' + "9" * 4300 + "}",
                '{"type": "a", "n": ' + "9" * 4301 + "}",  # json refuses; msgspec skips it
                '{"type": "a", "s": "' + "9" * 4301 + '"}',  # digits in a string: JSON
                '{"type": "agent_response", "x": "\\ud800"}',  # lone surrogate escape: valid JSON
                '{"type": "a\\ud800b"}',
                '{"type": "agent_response", "message_type": "x", "n": NaN}',
                '{"type": 1e400}',
                '{"type": 123456789012345678901234567890}',
                "\ufeff" + text,
                text + " x",
            ]
        )
        | ANY_TEXT
    )


FRAMES = st.lists(
    st.tuples(
        st.sampled_from(["in", "out"]),
        st.one_of(frame_texts(), st.binary(max_size=4), st.none()),  # None: a close frame
        st.sampled_from(["", "c1", "c2", "c\ud800"]),
    ),
    max_size=40,
)


def recording(frames: list[tuple[str, str | bytes | None, str]]) -> Recording:
    rec = Recording(clock=TickClock(step=0.001))
    for direction, payload, connection in frames:
        if payload is None:
            rec.record_close(direction, 1000, "bye", connection_id=connection)
        else:
            rec.record(direction, payload, connection_id=connection)
    return rec


def as_json_reads_it(frame: Any) -> tuple[str, ...]:
    """The index's values for a frame, from ``json.loads`` (and the depth limit of all JSON
    read from outside: more than ``LIMIT`` levels is not JSON, as ``Frame.json`` says)."""
    body = None
    if frame.opcode == "text":
        try:
            body = json.loads(frame.text)
        except (ValueError, RecursionError):
            body = None
        if nests_deeper(body, LIMIT):
            body = None
    frame_type, message_type = (
        (body.get("type"), body.get("message_type")) if type(body) is dict else (None, None)
    )
    shown = frame.json if type(frame.json) is dict else {}  # Frame.json reads it the same way
    assert (str(shown.get("type")), str(shown.get("message_type"))) == (
        str(frame_type),
        str(message_type),
    )
    if frame_type == "agent_response" and message_type:
        lane = str(message_type)
    else:
        lane = frame.opcode if frame_type is None else str(frame_type)
    return (
        frame.direction,
        "" if frame_type is None else str(frame_type),
        "" if message_type is None else str(message_type),
        frame.connection_id,
        lane,
    )


def assert_index_reads_like_json(index: FrameIndex, rec: Recording) -> None:
    assert len(index) == len(rec)
    for pos, frame in enumerate(rec):
        assert index.frames[pos] is frame
        assert tuple(index.value_at(f, pos) for f in COLUMNS) == as_json_reads_it(frame), pos
    for field in FILTER_FIELDS:
        column = index.columns[field]
        for code, posting in enumerate(index.postings[field]):
            assert list(posting) == [p for p in range(len(rec)) if column[p] == code]


#: Ways to feed the index: the module settings each one patches (None: a frame per extend).
WAYS: dict[str, dict[str, int] | None] = {
    "one by one": None,
    "numpy, blocks of 5 read 2 at a time": {
        "_VECTOR_FROM": 1,
        "_APPEND_BLOCK": 5,
        "_READ_CHUNK": 2,
    },
    "numpy, sorting": {"_VECTOR_FROM": 1, "_FEW_VALUES": 0, "_READ_CHUNK": 3},
    "at once, appended frame by frame": {"_VECTOR_FROM": 10**9},
}


def built(rec: Recording, how: str) -> FrameIndex:
    index = FrameIndex()
    settings_ = WAYS[how]
    if settings_ is None:
        for frame in rec:
            index.extend([frame])
        return index
    with ExitStack() as stack:
        for name, value in settings_.items():
            stack.enter_context(patch.object(inspector_module, name, value))
        index.extend(rec.frames())
    return index


@settings(max_examples=300, deadline=None)
@given(FRAMES, st.sampled_from(list(WAYS)))
def test_every_way_of_indexing_reads_frames_as_json_loads_does(frames: Any, how: str) -> None:
    rec = recording(frames)
    assert_index_reads_like_json(built(rec, how), rec)


def test_a_chunk_with_one_frame_msgspec_refuses_is_read_whole() -> None:
    good = json.dumps({"type": "agent_response", "message_type": "assistant_message", "seq": 1})
    texts = [good] * 700
    texts[350] = '{"type": "agent_response", "message_type": "odd", "n": NaN}'
    texts[351] = json.dumps({"type": 7})
    rec = recording([("out", text, "c1") for text in texts])
    index = FrameIndex()
    index.extend(rec.frames())  # one chunk, appended with numpy
    assert_index_reads_like_json(index, rec)
    assert index.counts("message_type") == {"assistant_message": 698, "odd": 1}
    assert index.values("type") == ["7", "agent_response"]


def test_more_values_than_a_short_column_holds_switch_it_to_wide_codes() -> None:
    rec = recording([("out", '{"type": "ping"}', f"c{n}") for n in range(70_000)])
    index = FrameIndex()
    index.extend(rec.frames()[:100])  # a short column first, then past 65,535 codes
    index.extend(rec.frames()[100:])
    assert index.columns["connection_id"].typecode == "I"
    assert index.value_at("connection_id", 69_999) == "c69999"
    assert list(index.query(FrameFilter(connection_id="c66000"))) == [66_000]


@pytest.mark.parametrize("size", [1, 511, 512, 40_000])
def test_a_server_recording_indexes_the_same_at_any_size(size: int) -> None:
    texts = [
        json.dumps({"type": "user_message", "message": "hi"}),
        json.dumps({"type": "agent_response_start", "seq": 2}),
        json.dumps(
            {"type": "agent_response", "message_type": "internal_monologue", "message": "m"}
        ),
        json.dumps({"type": "agent_response_end"}),
    ]
    rec = recording([("out", texts[n % 4], f"c{n % 3}") for n in range(size)])
    index = FrameIndex()
    index.extend(rec.frames())
    assert_index_reads_like_json(index, rec)


def test_indexing_leaves_the_recordings_texts_as_they_were() -> None:
    # msgspec reading a non-ASCII str made Python keep a UTF-8 copy inside it: 190 B a frame
    texts = [
        json.dumps({"type": "agent_response", "message": f"café {n}"}, ensure_ascii=False)
        for n in range(600)
    ]
    rec = recording([("out", text, "c1") for text in texts])
    sizes = [sys.getsizeof(frame.text) for frame in rec]
    FrameIndex().extend(rec.frames())  # with numpy
    for frame in rec:
        FrameIndex().extend([frame])  # one by one
    assert [sys.getsizeof(frame.text) for frame in rec] == sizes


def test_a_frame_read_one_by_one_keeps_its_text_as_it_was_too() -> None:
    # NaN sends its chunk down the one-by-one path, which must not leave a UTF-8 copy either
    texts = [
        json.dumps({"type": "agent_response", "message": f"café {n}"}, ensure_ascii=False)
        for n in range(40)
    ]
    texts.append('{"type": "agent_response", "message": "déjà", "n": NaN}')
    rec = recording([("out", text, "c1") for text in texts])
    sizes = [sys.getsizeof(frame.text) for frame in rec]
    index = FrameIndex()
    index.extend(rec.frames())
    assert index.value_at("type", 40) == "agent_response"  # read by json: NaN is JSON to it
    assert [sys.getsizeof(frame.text) for frame in rec] == sizes


def test_a_str_subclass_is_coded_by_its_text_whatever_came_before() -> None:
    class Direction(str):
        def __str__(self) -> str:
            return "sub:" + super().__str__()

    rec = recording([("out", '{"type": "a"}', "c1")] * 2)
    odd = rec.frames()[1].replace(direction=Direction("out"))
    first, second = FrameIndex(), FrameIndex()
    first.extend([rec.frames()[0]])  # a plain "out" known before the subclass
    first.extend([odd])
    second.extend([odd])
    assert first.value_at("direction", 1) == second.value_at("direction", 0) == "sub:out"


def test_a_block_that_fails_halfway_leaves_the_index_as_it_was() -> None:
    old = [("out", '{"type": "a"}', f"c{n % 3}") for n in range(1000)]
    rec = recording(old + [("in", '{"type": "b"}', "c9")] * 1000)  # values new to the index
    index = FrameIndex()
    index.extend(rec.frames()[:1000])

    def state() -> tuple[Any, ...]:
        postings = {f: [list(p) for p in lists if p] for f, lists in index.postings.items()}
        shown = {f: (index.values(f), index.counts(f)) for f in FILTER_FIELDS}
        return len(index), {f: list(c) for f, c in index.columns.items()}, postings, shown

    before = state()
    append_many = FrameIndex._append_many

    def then_interrupted(self: FrameIndex, *args: Any) -> None:
        append_many(self, *args)  # columns and postings appended, the frames not yet
        raise KeyboardInterrupt

    with (
        patch.object(FrameIndex, "_append_many", then_interrupted),
        pytest.raises(KeyboardInterrupt),
    ):
        index.extend(rec.frames()[1000:])
    assert state() == before
    index.extend(rec.frames()[1000:])  # and it goes on from there
    assert_index_reads_like_json(index, rec)


def test_integers_longer_than_python_reads_follow_its_setting() -> None:
    text = '{"type": "a", "n": ' + "9" * 700 + "}"  # short, yet past a limit of 640 digits
    rec = recording([("out", text, "c1")] * 600)
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert rec[0].json is None  # json refuses the number, so the frame is not JSON
        for how in WAYS:
            assert built(rec, how).values("type") == [""], how
    finally:
        sys.set_int_max_str_digits(before)
