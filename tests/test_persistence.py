"""SQLite storage: the store, the schema and its versions, steps as transactions, crashes."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from memgpt_lab import system
from memgpt_lab.agent import Agent
from memgpt_lab.errors import LabError, UnknownNameError
from memgpt_lab.interface import AgentInterface
from memgpt_lab.llm import ContextWindowExceededError, ReplayModel, Turn
from memgpt_lab.memory import ArchivalMemory
from memgpt_lab.persistence import (
    SCHEMA_VERSION,
    AgentStore,
    Database,
    InMemoryStateManager,
    StateManager,
    StorageError,
)
from memgpt_lab.persistence.database import APPLICATION_ID, migrate
from memgpt_lab.presets import create_agent_from_preset
from memgpt_lab.system import FixedClock

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def make_agent(**options: Any) -> Agent:
    return create_agent_from_preset(
        "memgpt_chat",
        options.pop("config", None),
        options.pop("model", "scripted"),
        "Name: Sam\nA companion.",
        "Name: unknown",
        clock=FixedClock(),
        **options,
    )


def everything(agent: Agent) -> dict[str, Any]:
    """What an agent is and holds, for comparing a stored agent with its original."""
    return {
        "id": agent.id,
        "name": agent.name,
        "preset": agent.preset_name,
        "config": agent.config,
        "system_prompt": agent.system_prompt,
        "functions": list(agent.functions),
        "model": agent.model.name,
        "messages": agent.messages,
        "core": dict(agent.memory.blocks),
        "limits": dict(agent.memory.limits),
        "recall": [(e.timestamp, e.message) for e in agent.recall_memory.entries],
        "archival": [
            (p.id, p.text, p.timestamp, p.embedding) for p in agent.archival_memory.passages
        ],
        "counters": (
            agent.summaries,
            agent.alerted_about_memory_pressure,
            agent.heartbeats_paused_minutes,
        ),
        "checkpoints": agent.checkpoints(),
    }


# --- the engine --------------------------------------------------------------------------


def test_fts5_and_its_trigram_tokenizer_are_available() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("create virtual table t using fts5(x)")
    conn.execute("create virtual table g using fts5(x, tokenize='trigram')")
    conn.close()


def test_a_file_store_is_wal_with_foreign_keys_and_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "agents.db"
    with AgentStore(path) as store:
        conn = store.database.conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"agents", "checkpoints", "messages", "archival", "messages_fts"} <= tables
    assert path.exists()


def test_a_store_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agents.db"
    AgentStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(
        StorageError,
        match=f"newer memgpt_lab .schema version {SCHEMA_VERSION + 1}; "
        f"this one reads versions up to {SCHEMA_VERSION}",
    ):
        AgentStore(path)


def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("not a database at all")
    with pytest.raises(
        StorageError, match="cannot be opened as a memgpt_lab store: file is not a database"
    ):
        AgentStore(path)


def test_a_sqlite_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE stuff(x)")
    conn.close()
    with pytest.raises(StorageError, match="not a memgpt_lab store"):
        AgentStore(path)
    assert isinstance(StorageError("x"), LabError)


def test_migrations_run_in_order_once_each() -> None:
    ran: list[int] = []

    def step(n: int) -> Any:
        def migration(conn: sqlite3.Connection) -> None:
            ran.append(n)
            conn.execute(f"CREATE TABLE t{n}(x)")

        return migration

    conn = sqlite3.connect(":memory:", isolation_level=None)
    assert migrate(conn, {1: step(1)}) == 1
    assert migrate(conn, {1: step(1), 2: step(2), 3: step(3)}) == 3
    assert migrate(conn, {1: step(1), 2: step(2), 3: step(3)}) == 3
    assert ran == [1, 2, 3]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE t4(x)")
        raise RuntimeError("half-way")

    with pytest.raises(RuntimeError):
        migrate(conn, {1: step(1), 2: step(2), 3: step(3), 4: broken})
    # all or nothing: version 3 still, and no t4
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 't4'").fetchone()


def _fts_consistent(database: Database) -> None:
    """Index what waits, then FTS5's own check of the index against its table: raises
    ("malformed") if a row is missing, extra, or was taken out of the index wrongly."""
    database.index_messages()
    database.conn.execute(
        "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)"
    )


def test_messages_wait_for_the_index_and_a_search_indexes_them_first() -> None:
    agent = make_agent()
    database = agent.persistence_manager.database
    agent.turn("my favourite colour is vermilion")
    waiting = database.conn.execute("SELECT count(*) FROM messages_unindexed").fetchone()[0]
    assert waiting > 0 and database.unindexed == waiting
    assert agent.persistence_manager.recall_memory.text_search("vermilion").total >= 1
    assert database.conn.execute("SELECT count(*) FROM messages_unindexed").fetchone()[0] == 0
    _fts_consistent(database)


def test_enough_waiting_messages_are_indexed_without_a_search() -> None:
    from memgpt_lab.persistence.database import INDEX_BATCH

    agent = make_agent()
    database = agent.persistence_manager.database
    conn = database.conn
    stored = 0
    while stored <= INDEX_BATCH:
        agent.turn(f"note {stored}")
        assert database.unindexed < INDEX_BATCH
        stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    waiting = conn.execute("SELECT count(*) FROM messages_unindexed").fetchone()[0]
    assert waiting == database.unindexed
    assert stored - waiting >= INDEX_BATCH  # indexed on the way, no search asked
    _fts_consistent(database)


def test_rewinding_messages_that_wait_for_the_index_keeps_it_consistent() -> None:
    store = AgentStore()
    agent = store.save(make_agent())
    manager = agent.persistence_manager
    agent.turn("first thing: apricots")
    checkpoint = manager.checkpoints()[-1]
    agent.turn("second thing: blueberries")
    database = store.database
    database.index_messages()
    agent.turn("third thing: cherries")  # waits for the index
    manager.rewind(checkpoint.id)
    assert manager.prune() > 0  # deletes indexed and waiting rows alike
    _fts_consistent(database)
    search = manager.recall_memory.text_search
    assert search("apricots").total >= 1
    assert search("blueberries").total == 0
    assert search("cherries").total == 0
    _fts_consistent(database)


def test_indexing_what_waits_reads_only_what_waits() -> None:
    # The query plan, not a timing: the waiting ids are the outer loop, messages are looked up.
    database = make_agent().persistence_manager.database
    calls: list[str] = []
    database.conn.set_trace_callback(calls.append)
    try:
        database.index_messages()
    finally:
        database.conn.set_trace_callback(None)
    (insert,) = [sql for sql in calls if sql.startswith("INSERT INTO messages_fts")]
    plan = [row[3] for row in database.conn.execute("EXPLAIN QUERY PLAN " + insert)]
    assert plan[0] == "SCAN u", plan
    assert not any(step.startswith("SCAN m") for step in plan), plan


def test_closing_a_file_store_indexes_what_waits(tmp_path: Path) -> None:
    path = tmp_path / "agents.db"
    with AgentStore(path) as store:
        store.save(make_agent()).turn("a note about quinces")
        assert store.database.unindexed > 0
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM messages_unindexed").fetchone()[0] == 0
        hits = conn.execute(
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?", ('"quinces"',)
        ).fetchone()[0]
        assert hits >= 1
    finally:
        conn.close()


def test_a_version_1_file_is_migrated_and_its_messages_stay_searchable(tmp_path: Path) -> None:
    from memgpt_lab.persistence.database import MIGRATIONS

    path = tmp_path / "v1.db"
    with AgentStore(path) as store:
        store.save(make_agent(config={"name": "old"})).turn("the password is swordfish")
        store.database.index_messages()
    # Take the file back to version 1 as that release wrote it: triggers and all.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TABLE messages_unindexed")
    for trigger in ("insert", "delete", "update"):
        conn.execute(f"DROP TRIGGER messages_fts_{trigger}")
    v1_triggers = [s for s in _schema_v1_statements() if s.startswith("CREATE TRIGGER messages")]
    assert len(v1_triggers) == 3
    for statement in v1_triggers:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    assert max(MIGRATIONS) == SCHEMA_VERSION == 2
    with AgentStore(path) as store:
        agent = store.load("old")
        version = store.database.conn.execute("PRAGMA user_version").fetchone()[0]
        assert version == 2
        agent.turn("and the backup password is marlin")
        search = agent.persistence_manager.recall_memory.text_search
        assert search("swordfish").total >= 1
        assert search("marlin").total >= 1
        _fts_consistent(store.database)


def _schema_v1_statements() -> list[str]:
    from memgpt_lab.persistence import database

    return database._statements(database._SCHEMA_V1)


def test_the_in_memory_default_is_the_same_engine() -> None:
    agent = make_agent()
    manager = agent.persistence_manager
    assert isinstance(manager, StateManager)
    assert manager.database.in_memory
    assert isinstance(InMemoryStateManager(), StateManager)
    agent.turn("remember that the fence is blue")
    rows = manager.database.conn.execute("SELECT count(*) FROM archival").fetchone()[0]
    assert rows == 1
    standalone = ArchivalMemory()  # a memory on its own: a private in-memory database
    standalone.insert("alone", T0)
    assert [p.text for p in standalone.passages] == ["alone"]


def test_a_manager_holds_one_agent() -> None:
    manager = InMemoryStateManager()
    with pytest.raises(StorageError, match="holds no agent yet"):
        manager.recall_memory  # noqa: B018
    make_agent(persistence_manager=manager)
    with pytest.raises(ValueError, match="already holds agent"):
        make_agent(persistence_manager=manager)


# --- AgentStore ------------------------------------------------------------------------------


def test_save_load_list_delete(tmp_path: Path) -> None:
    path = tmp_path / "agents.db"
    agent = make_agent(config={"name": "sam", "context_window": 2400}, id="agent-1")
    agent.turn("my name is Ada")  # an agent can be saved at any point of its life
    agent.heartbeats_paused_minutes = 15
    store = AgentStore(path)
    assert store.save(agent) is agent
    for text in ["remember that the fence is blue", *[f"about the garden {i}" for i in range(6)]]:
        agent.turn(text)  # every step commits to the file from now on
    assert agent.summaries >= 1
    expected = everything(agent)
    store.close()

    with AgentStore(path) as store:
        assert [(a.id, a.name, a.preset_name, a.model) for a in store.list()] == [
            ("agent-1", "sam", "memgpt_chat", "scripted")
        ]
        loaded = store.load("sam", clock=FixedClock(T0 + timedelta(hours=1)))
        assert everything(loaded) == expected
        assert "agent-1" in store and "sam" in store and "nobody" not in store
        # it goes on as the original would have
        twin = make_agent(config={"name": "sam", "context_window": 2400}, id="agent-1")
        for text in ["my name is Ada", "remember that the fence is blue"]:
            twin.turn(text)
        loaded.turn("what do you remember about the fence")
        store.delete("agent-1")
        assert store.list() == []
        for table in ("agents", "checkpoints", "messages", "archival"):
            rows = store.database.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            assert rows == 0, table
        with pytest.raises(UnknownNameError, match="unknown agent 'sam'"):
            store.load("sam")


def test_every_part_of_an_agent_is_stored(tmp_path: Path) -> None:
    def embed(text: str) -> list[float]:
        return [float(len(text)), 1 / 3]

    embed.name = "length-embedder"  # type: ignore[attr-defined]
    agent = make_agent(persistence_manager=InMemoryStateManager(embed=embed))
    agent.turn("remember that tea is good")
    agent.alerted_about_memory_pressure = True
    with AgentStore(tmp_path / "a.db") as store:
        store.save(agent)
        expected = everything(agent)
    with AgentStore(tmp_path / "a.db") as store:
        row = store.database.conn.execute(
            "SELECT name, preset_name, system_prompt, config, functions, model, model_name, "
            "embedding, core, counters, context FROM agents"
        ).fetchone()
        (name, preset, prompt, config, functions, model, model_name, embedding, core,
         counters, context) = row  # fmt: skip
        assert (name, preset, model, model_name) == ("agent", "memgpt_chat", "scripted", "scripted")
        assert prompt == agent.system_prompt
        assert json.loads(config)["context_window"] == 8192
        assert json.loads(functions) == list(agent.functions)
        assert embedding == "length-embedder"
        assert json.loads(core) == agent.memory.blocks
        assert json.loads(counters)["alerted_about_memory_pressure"] is True
        assert len(json.loads(context)) == len(agent.messages) - 1
        loaded = store.load(agent.id, embed=embed)
        assert loaded.archival_memory.passages[0].embedding == [11.0, 1 / 3]
        assert loaded.alerted_about_memory_pressure is True
        assert everything(loaded) == expected


def test_a_model_string_never_holds_the_key(tmp_path: Path) -> None:
    from memgpt_lab.llm import OpenAIChatModel

    model = OpenAIChatModel("gpt-4o-mini", api_key="sk-very-secret-key")
    agent = make_agent(model=model)
    path = tmp_path / "agents.db"
    with AgentStore(path) as store:
        store.save(agent)
        assert store.list()[0].model == "openai:gpt-4o-mini"
        local = OpenAIChatModel("llama3.1", provider="ollama", base_url="http://127.0.0.1:9/v1")
        store.save(make_agent(model=local, id="local"))
        assert store.list()[1].model == "ollama:llama3.1@http://127.0.0.1:9/v1"
        loaded = store.load("local")
        assert isinstance(loaded.model, OpenAIChatModel)
        assert (loaded.model.provider, loaded.model.base_url) == ("ollama", "http://127.0.0.1:9/v1")
    for file in tmp_path.iterdir():
        assert b"sk-very-secret-key" not in file.read_bytes()


def test_a_model_no_string_can_rebuild_must_be_given(tmp_path: Path) -> None:
    with AgentStore(tmp_path / "a.db") as store:
        store.save(make_agent(model=ReplayModel(["hi"]), id="replayed"))
        with pytest.raises(
            StorageError, match="cannot be rebuilt from a model string; pass model="
        ):
            store.load("replayed")
        assert store.load("replayed", model="scripted").model.name == "scripted"


def test_names_ids_and_clashes(tmp_path: Path) -> None:
    with AgentStore(tmp_path / "a.db") as store:
        store.save(make_agent(id="one"))
        store.save(make_agent(id="two"))
        with pytest.raises(StorageError, match="2 agents are named 'agent'"):
            store.load("agent")
        with pytest.raises(StorageError, match="already holds an agent with id 'one'"):
            store.save(make_agent(id="one"))
        with pytest.raises(UnknownNameError) as caught:
            store.delete("three")
        assert caught.value.available == ["agent", "one", "two"]


def test_a_second_copy_of_an_agent_cannot_write_over_the_first(tmp_path: Path) -> None:
    with AgentStore(tmp_path / "a.db") as store:
        store.save(make_agent(id="shared"))
        first, second = store.load("shared"), store.load("shared")
        first.turn("hello")
        with pytest.raises(StorageError, match="changed by another writer"):
            second.turn("hello from the other copy")
        assert len(store.load("shared").recall_memory) == 3
        store.delete("shared")
        with pytest.raises(StorageError, match="no longer in the store"):
            first.turn("anyone there?")


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = AgentStore(tmp_path / "a.db")
    agent = store.save(make_agent())
    store.close()
    with pytest.raises(StorageError, match="is closed"):
        agent.turn("hello")


# --- steps are transactions ---------------------------------------------------------------


def table_rows(database: Database) -> dict[str, list[Any]]:
    conn = database.conn
    return {
        table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        for table in ("agents", "checkpoints", "messages", "archival")
    }


class Exploding(AgentInterface):
    def function_message(self, msg: str, msg_obj: dict[str, Any] | None = None) -> None:
        if msg.startswith("Success"):
            raise RuntimeError("observer broke")


@pytest.mark.parametrize(
    "turn",
    [
        Turn("Noting.", "core_memory_append", {"name": "human", "content": "Likes tea"}),
        Turn("Keeping it.", "archival_memory_insert", {"content": "the fence is blue"}),
        Turn("Quiet.", "pause_heartbeats", {"minutes": 30}),
    ],
    ids=["core", "archival", "pause"],
)
def test_a_failed_step_writes_nothing(tmp_path: Path, turn: Turn) -> None:
    with AgentStore(tmp_path / "a.db") as store:
        agent = store.save(make_agent(model=ReplayModel(["hello", turn])))
        agent.step("first")
        before = table_rows(store.database), everything(agent)
        agent.interface = Exploding()
        with pytest.raises(RuntimeError, match="observer broke"):
            agent.step("second")
        assert (table_rows(store.database), everything(agent)) == before


def test_a_model_that_fails_after_summarising_writes_nothing(tmp_path: Path) -> None:
    class AlwaysOverflow:
        """Answers the summary request; overflows on every real call."""

        name = "always-overflow"

        def chat(self, messages: Any, functions: Any) -> dict[str, Any]:
            if not functions:
                return Turn("a summary").completion(0, self.name)
            raise ContextWindowExceededError("too long")

    with AgentStore(tmp_path / "a.db") as store:
        agent = store.save(make_agent(model=ReplayModel(["a"] * 4)))
        for text in ("one", "two", "three", "four"):
            agent.step(text)
        before = table_rows(store.database), everything(agent)
        agent.model = AlwaysOverflow()  # summarises (a context change, a new row), then fails
        with pytest.raises(ContextWindowExceededError):
            agent.step("five")
        assert everything(agent) == {**before[1], "model": "always-overflow"}
        after = table_rows(store.database)
        assert {k: v for k, v in after.items() if k != "agents"} == {
            k: v for k, v in before[0].items() if k != "agents"
        }


def test_text_that_utf8_cannot_hold_is_stored_exactly(tmp_path: Path) -> None:
    with AgentStore(tmp_path / "a.db") as store:
        agent = store.save(make_agent())
        agent.turn("lone \ud800 surrogate")
        agent.memory.set("human", "Name: \udfff")
        expected = everything(agent)
        assert store.load(agent.id).memory.human == "Name: \udfff"
        assert everything(store.load(agent.id))["recall"] == expected["recall"]


def test_direct_memory_edits_outside_a_step_are_stored(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with AgentStore(path) as store:
        agent = store.save(make_agent())
        agent.memory.append("human", "Likes tea")  # as the memory widget edits it
        ids = agent.archival_memory.insert_many([f"passage {i}" for i in range(100)], T0)
        assert ids == list(range(1, 101))
        labels = [c.label for c in agent.checkpoints()]
        assert labels[-1] == "archival_memory.insert_many (100)"  # one change, one checkpoint
        agent.recall_memory.insert({"role": "user", "content": "from elsewhere"}, T0)
    with AgentStore(path) as store:
        again = store.load(agent.id)
        assert again.memory.human == "Name: unknown\nLikes tea"
        assert len(again.archival_memory) == 100 and len(again.recall_memory) == 1


# --- search in SQLite -----------------------------------------------------------------------


def test_searches_page_as_before(tmp_path: Path) -> None:
    with AgentStore(tmp_path / "a.db") as store:
        agent = store.save(make_agent())
        recall = agent.recall_memory
        for day in range(1, 8):
            stamp = datetime(2026, 1, day, 12, tzinfo=UTC)
            recall.insert(
                {"role": "user", "content": system.package_user_message(f"tea {day}", stamp)}, stamp
            )
        found = recall.text_search("TEA", page=1, page_size=3)
        assert [e.text for e in found.items] == ["tea 4", "tea 5", "tea 6"]
        assert (found.total, found.pages) == (7, 3)
        dated = recall.date_search("2026-01-03", "2026-01-05")
        assert [e.text for e in dated.items] == ["tea 3", "tea 4", "tea 5"]
        plan = " ".join(
            str(row[-1])
            for row in store.database.conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE agent_id = ? "
                "AND day BETWEEN ? AND ? AND in_recall = 1 AND live = 1",
                (agent.id, "2026-01-03", "2026-01-05"),
            )
        )
        assert "USING INDEX" in plan  # date ranges use an index


# --- crashes ----------------------------------------------------------------------------

CHILD = r"""
import sys
from datetime import datetime, timezone
from memgpt_lab.persistence import AgentStore
from memgpt_lab.presets import create_agent_from_preset
from memgpt_lab.system import FixedClock

store = AgentStore(sys.argv[1])
if "crash" in store:
    agent = store.load("crash")
else:
    agent = store.save(create_agent_from_preset(clock=FixedClock(), id="crash"))
done = sum(1 for c in agent.checkpoints() if c.step or c.label.startswith("archival"))
moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
while True:
    done += 1
    if done % 7 == 0:  # a bulk load: one long transaction
        agent.archival_memory.insert_many([f"bulk {done} {i}" for i in range(3000)], moment)
    elif done % 3 == 0:
        agent.step(f"remember that fact {done} is true")
    else:
        agent.step(f"hello {done}")
    print(done, flush=True)
"""


def check_after_crash(path: Path, printed: int) -> int:
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
    with AgentStore(path) as store:
        agent = store.load("crash")
        path_ids = []
        checkpoint_id = agent.checkpoint_id
        by_id = {c.id: c for c in agent.checkpoints()}
        while checkpoint_id is not None:
            path_ids.append(checkpoint_id)
            checkpoint_id = by_id[checkpoint_id].parent_id
        changes = [by_id[i] for i in reversed(path_ids)][1:]
        done = len(changes)
        # no finished change is lost (the child may have finished more before the signal
        # landed than it had printed when we sent it)
        assert printed <= done
        steps = [c for c in changes if c.step]
        bulk = [c for c in changes if c.label.startswith("archival_memory.insert_many")]
        assert len(steps) + len(bulk) == done
        # at a step boundary: whole steps only, each three messages, the last a result
        assert len(agent.recall_memory) == 3 * len(steps)
        assert agent.messages[-1]["role"] == "function" or not steps
        remembered = [c for c in steps if c.label.startswith("remember that")]
        assert len(agent.archival_memory) == len(remembered) + 3000 * len(bulk)
        last_user = [m for m in agent.messages if m["role"] == "user"][-1:] if steps else []
        for message in last_user:
            n = done if done % 7 else done - 1
            expected = f"remember that fact {n} is true" if n % 3 == 0 else f"hello {n}"
            assert json.loads(message["content"])["message"] == expected
        return done


def test_killed_at_random_moments_the_store_is_at_a_step_boundary(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    rng = random.Random(20260101)
    done = 0
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        printed = done
        try:
            for _ in range(rng.randint(1, 8)):  # wait for a random number of steps...
                line = child.stdout.readline()
                assert line, child.stderr.read() if child.stderr else "the child died"
                printed = int(line)
        finally:
            child.send_signal(signal.SIGKILL)  # ...then kill it, somewhere in the next one
            child.wait(30)
            child.stdout.close()
            if child.stderr is not None:
                child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        done = check_after_crash(path, printed)
    assert done >= 20


def test_archival_search_sees_only_the_agents_current_branch(tmp_path: Path) -> None:
    texts = [f"tea note {i} " + "word " * (i % 7) for i in range(40)]
    alone = ArchivalMemory(page_size=7)
    alone.insert_many(texts, T0)
    expected = [[p.text for p in alone.search("tea note", page=n).items] for n in range(7)]
    with AgentStore(tmp_path / "a.db") as store:
        agent = store.save(make_agent())
        other = store.save(make_agent(id="other"))
        # rows that rank well but are not this agent's, or not on its branch
        other.archival_memory.insert_many(["tea note"] * 50, T0)
        agent.archival_memory.insert_many(["tea note tea note"] * 30, T0)
        agent.rewind(agent.checkpoints()[0].id)
        agent.archival_memory.insert_many(texts, T0)
        archive = agent.archival_memory
        archive.page_size = 7
        pages = [archive.search("tea note", page=n) for n in range(7)]
        assert [[p.text for p in page.items] for page in pages] == expected
        assert {page.total for page in pages} == {40}
