"""HistoryView and the Lab's agents, sessions and traffic export, driven from Python."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memgpt_lab import FixedClock, Recording, create_agent_from_preset
from memgpt_lab.agent import Agent
from memgpt_lab.humans import get_human_text
from memgpt_lab.persistence import AgentStore
from memgpt_lab.personas import get_persona_text
from memgpt_lab.widgets import AgentConsole, HistoryView, Lab


def make_agent(agent_id: str = "agent-1") -> Agent:
    return create_agent_from_preset(
        "memgpt_chat",
        None,
        None,
        get_persona_text("sam_pov"),
        get_human_text("basic"),
        clock=FixedClock(),
        id=agent_id,
    )


@pytest.fixture
def console() -> Iterator[AgentConsole]:
    view = AgentConsole(make_agent(), Recording())
    yield view
    view.close()


@pytest.fixture
def history(console: AgentConsole) -> Iterator[HistoryView]:
    view = HistoryView(console=console)
    yield view
    view.close()


def test_history_lists_checkpoints_by_turn_after_console_turns(
    console: AgentConsole, history: HistoryView
) -> None:
    assert [c.turn for c in history.checkpoints] == [0]
    console.send("hello")
    console.send("my name is Ada")
    assert history.checkpoints == console.agent.checkpoints()
    assert [(c.turn, c.step) for c in history.checkpoints] == [(0, 0), (1, 1), (2, 1), (2, 2)]
    html = history.list_html
    assert html.count("mlab-history-turn") == 3
    assert html.count("mlab-history-current") == 1 and "● current" in html
    assert "my name is Ada → core_memory_replace" in html
    assert history.selector.value == console.agent.checkpoint_id


def test_rewind_retry_and_fork_act_as_the_agent_api_says(
    console: AgentConsole, history: HistoryView
) -> None:
    agent = console.agent
    console.send("hello")
    console.send("my name is Ada")
    assert "Ada" in agent.memory.human
    after_hello = history.checkpoints[1].id

    assert history.rewind(after_hello) is True
    assert agent.checkpoint_id == after_hello and "Ada" not in agent.memory.human
    assert "other branch" in history.list_html  # the later checkpoints stay
    assert ("alert", "Rewound to checkpoint #1.") in console.entries

    console.send("my name is Ada")
    before = len(agent.checkpoints())
    result = history.retry()
    assert result is not None and result.replies == [
        "Nice to meet you, Ada! I've written your name down."
    ]
    assert len(agent.checkpoints()) > before and "Ada" in agent.memory.human
    assert "mlab-status-ok" in history.status

    forks: list[Agent] = []
    history.on_fork(forks.append)
    fork = history.fork(after_hello, "branch", agent_id="fork-1")
    assert fork is not None and forks == [fork]
    assert fork.name == "branch" and "Ada" not in fork.memory.human
    assert agent.checkpoint_id != after_hello  # the parent is untouched


def test_errors_go_to_the_status_line(history: HistoryView) -> None:
    assert history.retry() is None  # no user message yet
    assert "mlab-status-error" in history.status and "nothing to retry" in history.status
    assert history.rewind("no-such-checkpoint") is False
    assert history.last_error is not None
    assert history.diff("nope", "nope") is None and "Diff failed" in history.status


def test_diff_shows_the_core_memory_change_of_my_name_is_ada(
    console: AgentConsole, history: HistoryView
) -> None:
    console.send("hello")
    console.send("my name is Ada")
    console.send("remember that I like tea")
    cps = history.checkpoints
    diff = history.diff(cps[1].id, cps[-1].id)
    assert diff is not None
    assert list(diff.core) == ["human"] and "Name: Ada" in diff.core["human"][1]
    assert diff.archival_added == ["I like tea"] and diff.archival_removed == []
    assert "+ Name: Ada" in diff.text() and "Name: Ada" in history.diff_html
    assert len(console.agent.checkpoints()) == len(cps)  # the diff made no checkpoint
    assert not history.diff(cps[-1].id, cps[-1].id)


def test_lab_switcher_lists_a_fork_and_switches_back() -> None:
    lab = Lab(clock=FixedClock(), agent_id="agent-1")
    try:
        lab.console.send("hello")
        fork = lab.history.fork(name="branch", agent_id="fork-1")
        assert fork is not None and lab.agent is fork
        assert [a.id for a in lab.agents] == ["agent-1", "fork-1"]
        assert [value for _, value in lab.switcher.options] == ["agent-1", "fork-1"]
        assert lab.switcher.value == "fork-1"
        lab.switcher.value = "agent-1"
        assert lab.agent.id == "agent-1" and lab.history.agent is lab.agent
        assert lab.memory.agent is lab.agent
    finally:
        lab.close()


def test_lab_with_a_store_reopens_agents_saved_earlier(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    lab = Lab(clock=FixedClock(), agent_id="agent-1", store=path)
    lab.console.send("my name is Ada")
    lab.history.fork(name="branch", agent_id="fork-1")
    lab.close()

    with AgentStore(path) as store:
        assert sorted(s.id for s in store.list()) == ["agent-1", "fork-1"]
    again = Lab(clock=FixedClock(), agent_id="agent-1", store=path)
    try:
        values = [value for _, value in again.switcher.options]
        assert sorted(values) == ["agent-1", "fork-1"]
        other = "agent-1" if again.agent.id == "fork-1" else "fork-1"
        again.switcher.value = other
        assert again.agent.id == other and "Ada" in again.agent.memory.human
    finally:
        again.close()


def test_save_and_load_session_round_trip(tmp_path: Path) -> None:
    lab = Lab(clock=FixedClock(), agent_id="agent-1")
    try:
        lab.console.send("my name is Ada")
        frames = [f.to_dict() for f in lab.recording]
        lab.session_path.value = str(tmp_path / "session")
        lab._buttons["save"].click()
        assert "mlab-status-ok" in lab.status
        assert (tmp_path / "session" / "agent.json").exists()
        checkpoints = [c.label for c in lab.agent.checkpoints()]
    finally:
        lab.close()

    other = Lab(clock=FixedClock(), agent_id="agent-1")
    try:
        agent = other.load_session(tmp_path / "session")
        assert other.agent is agent and agent.id != "agent-1"  # that id is taken here
        assert "Ada" in agent.memory.human
        assert [c.label for c in agent.checkpoints()] == checkpoints
        assert [f.to_dict() for f in other.recording] == frames
        assert other.inspector.total_count == len(frames)
        other.session_path.value = str(tmp_path / "missing")
        other._buttons["load"].click()
        assert "mlab-status-error" in other.status
    finally:
        other.close()


def test_export_traffic_writes_json_lines_a_recording_reads_back(tmp_path: Path) -> None:
    lab = Lab(clock=FixedClock(), agent_id="agent-1")
    try:
        lab.console.send("hello")
        lab.traffic_path.value = str(tmp_path / "traffic.jsonl")
        lab._buttons["export"].click()
        back = Recording.from_jsonl(tmp_path / "traffic.jsonl")
        assert [f.to_dict() for f in back] == [f.to_dict() for f in lab.recording]
        assert len(back) > 0
    finally:
        lab.close()
