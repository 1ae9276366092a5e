"""SweepView, driven from Python (no browser): filters, pages, the chart, a run opened."""

from __future__ import annotations

import concurrent.futures
import json
import re
from pathlib import Path

import pytest

from memgpt_lab.sweep import Conversation, ConversationTurn, Expect, Sweep, SweepResult
from memgpt_lab.widgets import SweepView, TrafficInspector
from memgpt_lab.widgets._util import esc
from memgpt_lab.widgets.sweep_view import pass_rate_svg, run_row, transcript_html

CONVERSATIONS = [
    Conversation("greeting", (ConversationTurn("Hello, is anyone there?", Expect(max_steps=2)),)),
    Conversation(
        "fact",
        (
            ConversationTurn(
                "Remember that my favourite language is <OCaml>.",
                Expect(calls=("archival_memory_insert",)),
            ),
            ConversationTurn("What do you remember about my favourite language?"),
        ),
    ),
]


@pytest.fixture(scope="module")
def result() -> SweepResult:
    sweep = Sweep(CONVERSATIONS, presets=["memgpt_chat", "memgpt_minimal"], repeats=2)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return sweep.run(pool, progress=False)


def test_the_table_shows_every_run_a_page_at_a_time(result):
    view = SweepView(result, page_size=5)
    assert view.filtered_count == len(result) == 8
    assert len(view.rows) == 5 and [r["run_id"] for r in view.rows] == [
        run["run_id"] for run in result[:5]
    ]
    view.go_to_page(1)
    assert len(view.rows) == 3
    view.go_to_page(9)  # clamped
    assert len(view.rows) == 3
    first = run_row(result[0])
    assert first["turns"] == "1/1" and first["status"] == "passed"
    steps = result[0]["turns"][0]["steps"]
    assert first["tokens"] == sum(s["prompt_tokens"] + s["completion_tokens"] for s in steps) > 0
    assert first["latency_ms"] == round(sum(s["latency"] for s in steps) * 1000, 1) > 0
    view.close()


def test_filters_narrow_the_table_and_the_chart(result):
    view = SweepView(result)
    view.set_filter(preset="memgpt_minimal", conversation="fact")
    assert view.filtered_count == 2
    assert {r["status"] for r in view.rows} == {"failed"}
    assert "memgpt_chat" not in view.chart.value
    assert "50% (2/4)" in view.chart.value  # the second turn has no check, and ran
    view.set_filter(preset=None, conversation=None, status="passed")
    assert view.filtered_count == 6
    view.set_filter(status=None, search="ocaml")
    assert view.filtered_count == 4
    view.set_filter(search="no such words")
    assert view.filtered_count == 0 and view.rows == []
    with pytest.raises(ValueError, match="no run has preset 'nope'"):
        view.set_filter(preset="nope")
    with pytest.raises(ValueError, match="cannot filter on colour"):
        view.set_filter(colour="red")
    view.close()


def test_a_dropdown_change_filters_as_a_user_would(result):
    view = SweepView(result)
    view._dropdowns["status"].value = "failed"
    assert view.filtered_count == 2
    view.close()


def test_selecting_a_run_shows_its_transcript_and_its_traffic(result):
    view = SweepView(result)
    failing = next(run for run in result if run["status"] == "failed")
    view.table.selected_run = failing["run_id"]  # what a click sets
    assert view.selected is failing
    html = view.transcript.value
    assert "✗ calls" in html and "not called: archival_memory_insert" in html
    assert "&lt;OCaml&gt;" in html and "<OCaml>" not in html  # escaped
    assert isinstance(view.inspector, TrafficInspector)
    assert view.traffic.children == (view.inspector,)
    assert view.inspector.total_count == len(failing["traffic"])
    first = view.inspector.recording[0]
    assert first.direction == "in" and json.loads(first.text or "")["type"] == "user_message"
    old = view.inspector
    view.select(result[0]["run_id"])
    assert view.inspector is not old and view.inspector.total_count == len(result[0]["traffic"])
    view.select(None)
    assert view.inspector is None and view.traffic.children == ()
    with pytest.raises(KeyError, match="no run 'x'"):
        view.select("x")
    view.close()


def test_the_chart_is_a_pure_function_of_the_rates():
    rates = {("b", "scripted"): (1, 4), ("a", "scripted"): (3, 3), ("a", "cassette:x"): (0, 2)}
    svg = pass_rate_svg(rates)
    assert svg == pass_rate_svg(dict(reversed(list(rates.items()))))
    bars = re.findall(r'data-preset="([^"]+)" data-model="([^"]+)"', svg)
    assert bars == [("a", "cassette:x"), ("a", "scripted"), ("b", "scripted")]
    assert "100% (3/3)" in svg and "25% (1/4)" in svg and "0% (0/2)" in svg
    assert "no runs" in pass_rate_svg({})


def test_a_run_that_raised_shows_its_error(tmp_path: Path):
    conversation = Conversation("c", (ConversationTurn("hi"),))
    broken = tmp_path / "broken.json"
    broken.write_text("not JSON {", "utf-8")
    result = Sweep([conversation], models=[f"replay:{broken}"]).run(
        concurrent.futures.ThreadPoolExecutor(1), progress=False
    )
    html = transcript_html(result[0])
    error = result[0]["error"]
    assert error["type"] == "LLMError" and "neither JSON nor JSON lines" in error["message"]
    assert f'<div class="mlab-entry mlab-error">LLMError: {esc(error["message"])}</div>' in html
    view = SweepView(result)
    view.select(result[0]["run_id"])
    assert view.inspector is not None and view.inspector.total_count == 0
    view.close()
