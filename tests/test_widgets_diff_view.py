"""DiffView: two recordings side by side, driven from Python (no browser)."""

from __future__ import annotations

import json

import pytest

from memgpt_lab.recorder import Recording, TickClock
from memgpt_lab.widgets import DiffView
from memgpt_lab.widgets.diff_view import diff_rows
from memgpt_lab.widgets.inspector import FrameFilter


def conversation(answers: list[str], *, start: float = 0.0, agent: str = "a1") -> Recording:
    """One user message per answer, each answered by a monologue, the answer and an end."""
    rec = Recording(clock=TickClock(start), wall_clock=TickClock(1_767_258_000.0 + start))
    for n, answer in enumerate(answers, 1):
        rec.record(
            "in", json.dumps({"type": "user_message", "message": f"q{n}", "agent_id": agent})
        )
        rec.record(
            "out", json.dumps({"type": "agent_response_start", "agent_id": agent, "turn_id": n})
        )
        for kind, text in (("internal_monologue", f"thinking {n}"), ("assistant_message", answer)):
            body = {
                "type": "agent_response",
                "message_type": kind,
                "message": text,
                "agent_id": agent,
            }
            rec.record("out", json.dumps(body, ensure_ascii=False))
        rec.record(
            "out", json.dumps({"type": "agent_response_end", "agent_id": agent, "turn_id": n})
        )
    return rec


@pytest.fixture
def pair() -> tuple[Recording, Recording]:
    left = conversation(["Hello Ada.", "I remember: tea.", "Bye."])
    right = conversation(
        ["Hello Ada.", "I can't remember that here.", "Bye."], start=50.0, agent="ffe0"
    )
    return left, right


def test_identical_runs_with_other_times_and_ids_agree() -> None:
    view = DiffView(conversation(["x", "y"]), conversation(["x", "y"], start=9.0, agent="zz"))
    assert view.counts == {"same": 10, "changed": 0, "only-left": 0, "only-right": 0}
    assert "the recordings agree" in view._summary.value
    view.differences_only = True
    assert view.rows == []
    assert "no rows pass the filter" in view._table.value


def test_a_changed_answer_is_one_changed_row_with_its_words_marked(
    pair: tuple[Recording, Recording],
) -> None:
    left, right = pair
    view = DiffView(left, right, labels=("memgpt_chat", "memgpt_minimal"))
    assert view.counts["changed"] == 1
    assert view.counts["only-left"] == view.counts["only-right"] == 0
    (changed,) = [row for row in view.rows if row.status == "changed"]
    assert changed.left is not None and changed.right is not None
    assert changed.left.json["message"] == "I remember: tea."
    assert changed.right.json["message"] == "I can't remember that here."
    assert any("message" in field for field in changed.fields)
    html = view._table.value
    assert "<del>remember: tea.</del>" in html or "<del>" in html and "tea." in html
    assert "<ins>" in html and "can&#x27;t" in html  # escaped, marked
    assert 'data-status="changed"' in html
    assert "memgpt_chat" in html and "memgpt_minimal" in html
    assert "memgpt_chat vs memgpt_minimal" in repr(view) or "1 changed" in repr(view)


def test_inserted_and_missing_frames_are_only_on_one_side() -> None:
    left = conversation(["a", "b"])
    right = conversation(["a", "b", "c"])
    view = DiffView(left, right, differences_only=True)
    assert view.counts["only-right"] == 5 and view.counts["only-left"] == 0
    assert {row.status for row in view.rows} == {"only-right"}
    assert all(row.left is None for row in view.rows)


def test_the_filters_are_the_inspectors(pair: tuple[Recording, Recording]) -> None:
    left, right = pair
    view = DiffView(left, right)
    view.set_filter(message_type="assistant_message")
    assert view.filter == FrameFilter(message_type="assistant_message")
    assert [row.status for row in view.rows] == ["same", "changed", "same"]
    view.set_filter(text="CAN'T")  # case-insensitive substring, as in the inspector
    assert len(view.rows) == 1 and view.rows[0].status == "changed"  # either side passes
    view.set_filter(text=r"remember: \w+", regex=True)
    assert len(view.rows) == 1
    view.set_filter(text="(", regex=True)  # invalid: shown, and constrains nothing
    assert "invalid regular expression" in view._summary.value
    assert len(view.rows) == 15
    view.set_filter(direction="in")
    assert {row.left.direction for row in view.rows if row.left} == {"in"}
    # The widgets show the filter, and using them filters the same way.
    view._filter_bar.dropdowns["direction"].value = "out"
    assert view.filter.direction == "out" and len(view.rows) == 12


def test_a_ready_diff_is_shown_as_it_is(pair: tuple[Recording, Recording]) -> None:
    left, right = pair
    diff = left.diff(right)
    view = DiffView(left, right, diff=diff, max_rows=4)
    assert view.diff is diff
    assert [r.status for r in diff_rows(diff)] == [r.status for r in view.rows]
    assert view._table.value.count("<tr class=") == 4
    assert "first 4 shown" in view._summary.value
    assert view.text() == str(diff)


def test_bad_arguments_say_what_is_wrong() -> None:
    rec = conversation(["x"])
    with pytest.raises(ValueError, match="two headings"):
        DiffView(rec, rec, labels=("one",))
    with pytest.raises(ValueError, match="max_rows"):
        DiffView(rec, rec, max_rows=0)
