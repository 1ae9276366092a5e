"""Checkpoints and time travel: every step is a checkpoint; rewind, retry, fork, prune."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memgpt_lab.agent import Agent
from memgpt_lab.errors import UnknownNameError
from memgpt_lab.interface import CollectingInterface
from memgpt_lab.llm import ReplayModel, Turn
from memgpt_lab.persistence import AgentStore, Checkpoint, UnknownCheckpointError
from memgpt_lab.persistence.manager import SNAPSHOT_EVERY
from memgpt_lab.presets import create_agent_from_preset
from memgpt_lab.system import FixedClock


@pytest.fixture(params=["memory", "file"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Build agents in memory, or saved to a file store: the API is the same."""
    store = AgentStore(tmp_path / "agents.db") if request.param == "file" else None

    def build(model: Any = "scripted", **config: Any) -> Agent:
        agent = create_agent_from_preset(
            "memgpt_chat",
            config or None,
            model,
            "Name: Sam\nA companion.",
            "Name: unknown",
            clock=FixedClock(),
        )
        return store.save(agent) if store is not None else agent

    yield build
    if store is not None:
        store.close()


def state(agent: Agent) -> str:
    """Everything a rewind restores, as comparable text."""
    return json.dumps(
        {
            "messages": agent.messages,
            "core": agent.memory.blocks,
            "recall": [(e.timestamp.isoformat(), e.message) for e in agent.recall_memory.entries],
            "archival": [
                (p.id, p.text, p.timestamp.isoformat(), p.embedding)
                for p in agent.archival_memory.passages
            ],
            "counters": [
                agent.summaries,
                agent.alerted_about_memory_pressure,
                agent.heartbeats_paused_minutes,
            ],
            "counts": [len(agent.recall_memory), len(agent.archival_memory)],
        },
        sort_keys=True,
    )


def scenario(agent: Agent) -> dict[str, str]:
    """A conversation that edits every kind of memory; the state after each checkpoint."""
    seen = {str(agent.checkpoint_id): state(agent)}

    def note() -> None:
        seen[str(agent.checkpoint_id)] = state(agent)

    for text in (
        "my name is Ada",
        "remember that the fence is blue",
        "what do you remember about the fence",
        "what did I say about fence",
    ):
        for step in agent.turn(text).steps:
            assert step  # each step is checkpointed as it goes
        note()
    agent.memory_pressure_warning()
    note()
    agent.heartbeats_paused_minutes = 30  # between steps: recorded by the next checkpoint
    agent.alerted_about_memory_pressure = True
    for i in range(6):
        agent.turn(f"message number {i} about the garden")
        note()
    assert agent.summaries >= 1  # the small context window forced a summary
    return seen


# --- every step is a checkpoint ------------------------------------------------------------


def test_every_step_makes_a_checkpoint(make: Any) -> None:
    agent = make()
    assert [c.label for c in agent.checkpoints()] == ["created"]
    agent.turn("my name is Ada")
    agent.turn("hello there")
    agent.heartbeat()
    checkpoints = agent.checkpoints()
    assert all(isinstance(c, Checkpoint) for c in checkpoints)
    assert [(c.turn, c.step, c.label) for c in checkpoints] == [
        (0, 0, "created"),
        (1, 1, "my name is Ada → core_memory_replace"),
        (1, 2, "heartbeat → send_message"),
        (2, 1, "hello there → send_message"),
        (3, 1, "heartbeat: Automated timer → no call"),
    ]
    # a tree of parent links, oldest first, ids sorting by time
    assert [c.parent_id for c in checkpoints] == [None, *[c.id for c in checkpoints[:-1]]]
    assert [c.id for c in checkpoints] == sorted(c.id for c in checkpoints)
    assert [c.created_at for c in checkpoints] == sorted(c.created_at for c in checkpoints)
    assert agent.checkpoint_id == checkpoints[-1].id
    assert {c.agent_id for c in checkpoints} == {agent.id}


def test_long_user_words_make_a_short_label(make: Any) -> None:
    agent = make()
    agent.step("word " * 40)
    label = agent.checkpoints()[-1].label
    assert label.endswith("… → send_message") and len(label) < 80


def test_a_failed_step_makes_no_checkpoint(make: Any) -> None:
    agent = make(ReplayModel(["one"]))
    agent.step("first")
    before = (agent.checkpoints(), state(agent))
    with pytest.raises(Exception, match="no more responses"):
        agent.step("second")
    assert (agent.checkpoints(), state(agent)) == before


# --- rewind -----------------------------------------------------------------------------


def test_rewind_restores_every_memory_exactly(make: Any) -> None:
    agent = make(context_window=2400)
    seen = scenario(agent)
    ids = list(seen)
    # back and forth, out of order: each checkpoint comes back exactly as it was
    for checkpoint_id in [ids[0], ids[-1], ids[3], ids[1], ids[-2], ids[5], ids[0]]:
        agent.rewind(checkpoint_id)
        assert agent.checkpoint_id == checkpoint_id
        assert state(agent) == seen[checkpoint_id]


def test_rewind_undoes_memory_edits_made_after_the_checkpoint(make: Any) -> None:
    agent = make()
    agent.turn("hello")
    before = agent.checkpoint_id
    agent.turn("my name is Ada")
    agent.turn("remember that the fence is blue")
    assert agent.memory.human == "Name: Ada" and len(agent.archival_memory) == 1
    agent.rewind(str(before))
    assert agent.memory.human == "Name: unknown"
    assert len(agent.archival_memory) == 0
    assert agent.archival_memory.search("fence").total == 0
    assert agent.recall_memory.text_search("fence").total == 0
    assert "Name: unknown" in agent.messages[0]["content"]  # the system message follows


def test_a_rewound_agent_branches_and_both_answers_stay(make: Any) -> None:
    agent = make()
    agent.turn("hello")
    fork_point = agent.checkpoint_id
    first = agent.turn("remember that tea is good").replies
    first_tip = agent.checkpoint_id
    first_state = state(agent)
    agent.rewind(str(fork_point))
    second = agent.turn("remember that coffee is better").replies
    assert first != second
    tree = {c.id: c for c in agent.checkpoints()}
    assert first_tip in tree  # the first branch is still reachable
    children = [c for c in tree.values() if c.parent_id == fork_point]
    assert len(children) == 2
    assert [p.text for p in agent.archival_memory.passages] == ["coffee is better"]
    agent.rewind(str(first_tip))
    assert state(agent) == first_state
    assert [p.text for p in agent.archival_memory.passages] == ["tea is good"]


def test_a_step_after_a_rewind_continues_the_turn_numbering(make: Any) -> None:
    agent = make()
    agent.turn("one")
    agent.turn("two")
    agent.rewind(agent.checkpoints()[1].id)
    agent.turn("three")
    last = agent.checkpoints()[-1]
    assert (last.turn, last.step, last.parent_id) == (2, 1, agent.checkpoints()[1].id)


def test_rewind_to_an_unknown_checkpoint(make: Any) -> None:
    agent = make()
    agent.turn("hello")
    with pytest.raises(UnknownCheckpointError, match="no checkpoint 'nope' in the history") as e:
        agent.rewind("nope")
    assert isinstance(e.value, UnknownNameError) and isinstance(e.value, LookupError)
    assert e.value.available == sorted(c.id for c in agent.checkpoints())
    other = make()
    with pytest.raises(UnknownCheckpointError):
        agent.rewind(str(other.checkpoint_id))


def test_rewind_far_back_reads_snapshots(make: Any) -> None:
    agent = make()
    seen = {str(agent.checkpoint_id): state(agent)}
    for i in range(SNAPSHOT_EVERY + 30):
        agent.step(f"message {i}")
        seen[str(agent.checkpoint_id)] = state(agent)
    for index in (0, 1, SNAPSHOT_EVERY - 1, SNAPSHOT_EVERY, SNAPSHOT_EVERY + 1, len(seen) - 1):
        checkpoint_id = list(seen)[index]
        agent.rewind(checkpoint_id)
        assert state(agent) == seen[checkpoint_id], index


# --- retry ------------------------------------------------------------------------------


def test_retry_runs_the_last_user_message_again_and_undoes_its_edits(make: Any) -> None:
    model = ReplayModel(
        [
            "Hi!",
            Turn(
                "Noting.",
                "core_memory_append",
                {"name": "human", "content": "Likes tea", "request_heartbeat": True},
            ),
            Turn.say("Tea, lovely."),
            Turn.say("You like tea, I gather."),
        ]
    )
    agent = make(model)
    agent.turn("hello")
    first = agent.turn("I like tea")
    first_tip = agent.checkpoint_id
    assert first.replies == ["Tea, lovely."]
    assert agent.memory.human.endswith("Likes tea")
    again = agent.retry()
    assert again.replies == ["You like tea, I gather."]
    assert agent.memory.human == "Name: unknown"  # the first attempt's edit is undone
    users = [m for m in agent.messages if m["role"] == "user"]
    assert [json.loads(m["content"])["message"] for m in users] == ["hello", "I like tea"]
    assert first_tip in {c.id for c in agent.checkpoints()}


def test_retry_skips_heartbeats_and_needs_a_user_message(make: Any) -> None:
    agent = make()
    with pytest.raises(ValueError, match="nothing to retry"):
        agent.retry()
    agent.heartbeat()
    with pytest.raises(ValueError, match="nothing to retry"):
        agent.retry()
    agent.turn("my name is Ada")  # two steps: the message and its heartbeat
    result = agent.retry()
    assert result.replies == ["Nice to meet you, Ada! I've written your name down."]
    assert len(agent.recall_memory) == 2 + 6  # the timer heartbeat's step, then the turn


# --- fork -------------------------------------------------------------------------------


def test_fork_shares_history_and_then_goes_its_own_way(make: Any) -> None:
    agent = make()
    agent.turn("my name is Ada")
    middle = agent.checkpoint_id
    middle_state = state(agent)
    agent.turn("remember that the fence is blue")
    fork = agent.fork(middle, name="other")
    assert fork.id != agent.id and fork.name == "other"
    assert state(fork) == middle_state
    shared = [c.id for c in agent.checkpoints() if c.id <= str(middle)]
    assert [c.id for c in fork.checkpoints()][: len(shared)] == shared
    assert fork.checkpoints()[-1].parent_id == middle
    fork.turn("remember that the gate is red")
    assert [p.text for p in fork.archival_memory.passages] == ["the gate is red"]
    assert [p.text for p in agent.archival_memory.passages] == ["the fence is blue"]
    # the fork can go back into the history it shares
    fork.rewind(agent.checkpoints()[0].id)
    assert len(fork.recall_memory) == 0 and len(agent.recall_memory) == 12
    default = agent.fork()
    assert state(default) == state(agent) and default.name == f"{agent.name}-fork"


def test_a_fork_of_a_stored_agent_is_in_the_same_store(tmp_path: Path) -> None:
    with AgentStore(tmp_path / "agents.db") as store:
        agent = store.save(create_agent_from_preset(clock=FixedClock()))
        agent.turn("my name is Ada")
        fork = agent.fork(name="twin")
        fork.turn("remember that forks are cheap")
        assert sorted(a.name for a in store.list()) == ["agent", "twin"]
        store.delete(agent.id)  # the fork keeps the history it shares
        fork_id = fork.id
    with AgentStore(tmp_path / "agents.db") as store:
        again = store.load(fork_id)
        assert [p.text for p in again.archival_memory.passages] == ["forks are cheap"]
        assert again.checkpoints()[0].label == "created"
        again.rewind(again.checkpoints()[1].id)
        assert again.memory.human.startswith("Name: Ada\n")


def test_fork_from_a_checkpoint_on_another_branch(make: Any) -> None:
    agent = make()
    agent.turn("remember that tea is good")
    tip = agent.checkpoint_id
    tip_state = state(agent)
    agent.rewind(agent.checkpoints()[0].id)
    agent.turn("hello")
    fork = agent.fork(tip)
    assert state(fork) == tip_state


# --- prune and storage ---------------------------------------------------------------------


def test_prune_drops_abandoned_branches_only(make: Any) -> None:
    agent = make()
    agent.turn("hello")
    base = agent.checkpoint_id
    agent.turn("remember that tea is good")
    agent.rewind(str(base))
    fork = agent.fork()
    agent.turn("remember that coffee is better")
    now = state(agent)
    before = len(agent.checkpoints())
    assert agent.prune() == 2  # the tea branch: its two steps
    assert len(agent.checkpoints()) == before - 2
    assert state(agent) == now
    assert agent.prune() == 0
    fork.rewind(fork.checkpoints()[0].id)  # the fork's inherited history is intact
    assert len(fork.recall_memory) == 0


def test_a_step_stores_only_what_it_changed(tmp_path: Path) -> None:
    with AgentStore(tmp_path / "agents.db") as store:
        agent = store.save(
            create_agent_from_preset(agent_config={"context_window": 10**6}, clock=FixedClock())
        )
        for i in range(3 * SNAPSHOT_EVERY // 2):
            agent.step(f"message {i}")
        conn = store.database.conn
        rows = conn.execute(
            "SELECT depth, context_set, context_add, core, counters FROM checkpoints "
            "WHERE agent_id = ? ORDER BY depth",
            (agent.id,),
        ).fetchall()
        ordinary = [r for r in rows if r[0] % SNAPSHOT_EVERY]
        # a send_message step adds three messages to the context and changes nothing else
        assert all(r[1] is None and r[3] is None and r[4] is None for r in ordinary)
        assert {len(json.loads(r[2])) for r in ordinary} == {3}
        snapshots = [r for r in rows if r[0] % SNAPSHOT_EVERY == 0]
        assert [r[0] for r in snapshots] == [0, SNAPSHOT_EVERY]
        assert all(r[1] is not None and r[3] is not None for r in snapshots)
        # what a step adds does not grow with the history behind it
        sizes = [
            conn.execute(
                "SELECT sum(length(message) + length(text)) FROM messages m "
                "JOIN checkpoints c ON c.id = m.checkpoint_id WHERE c.depth = ?",
                (depth,),
            ).fetchone()[0]
            for depth in (2, 3 * SNAPSHOT_EVERY // 2)
        ]
        assert sizes[1] <= sizes[0] + 16  # a longer step number, nothing more


def test_checkpoints_and_rewind_under_threads(tmp_path: Path) -> None:
    import threading

    with AgentStore(tmp_path / "agents.db") as store:
        agents = [
            store.save(create_agent_from_preset(clock=FixedClock(), id=f"a{i}")) for i in range(4)
        ]
        errors: list[BaseException] = []

        def work(agent: Agent) -> None:
            try:
                for i in range(20):
                    agent.turn(f"remember that fact {i} is true")
                    if i % 5 == 4:
                        agent.rewind(agent.checkpoints()[-3].id)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(a,)) for a in agents]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        assert store.database.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for agent in agents:
            assert len(agent.archival_memory) == 16  # 20 facts, 4 rewinds of one turn
            loaded = AgentStore(tmp_path / "agents.db")
            try:
                copy = loaded.load(agent.id)
                assert state(copy) == state(agent)
            finally:
                loaded.close()


def test_an_observer_that_raises_leaves_no_checkpoint_and_no_rows(make: Any) -> None:
    class Exploding(CollectingInterface):
        def function_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
            if msg.startswith("Success"):
                raise RuntimeError("observer broke")

    agent = make()
    agent.turn("hello")
    before = (agent.checkpoints(), state(agent))
    agent.interface = Exploding()
    with pytest.raises(RuntimeError, match="observer broke"):
        agent.step("remember that the fence is blue")
    assert (agent.checkpoints(), state(agent)) == before
    database = agent.persistence_manager.database
    count = database.conn.execute("SELECT count(*) FROM archival").fetchone()[0]
    assert count == 0
