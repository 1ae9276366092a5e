"""Agent files: our versioned JSON (exact round trip) and Letta's Agent File (.af)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from memgpt_lab.agent import Agent
from memgpt_lab.persistence import AgentStore, Database, InMemoryStateManager, StorageError
from memgpt_lab.persistence.agent_file import AGENT_FILE_VERSION
from memgpt_lab.presets import create_agent_from_preset
from memgpt_lab.system import FixedClock


def embed(text: str) -> list[float]:
    return [float(len(text)), text.count("e") / 7]


def make_agent(**options: Any) -> Agent:
    return create_agent_from_preset(
        "memgpt_chat",
        {"name": "sam", "context_window": 2400},
        "scripted",
        "Name: Sam\nA companion.",
        "Name: unknown",
        clock=FixedClock(),
        **options,
    )


def lived(agent: Agent) -> Agent:
    """An agent with a history worth keeping: memory edits, passages with embeddings,
    summaries, a branch left behind by a rewind, a fork."""
    agent.turn("my name is Ada")
    agent.turn("remember that the fence is blue")
    back = agent.checkpoint_id
    agent.turn("remember that the gate is red")
    agent.rewind(str(back))  # the gate branch stays in the history
    for i in range(6):
        agent.turn(f"message number {i} about the garden")
    agent.archival_memory.insert_many(["one passage", "and another"], agent.now())
    agent.alerted_about_memory_pressure = True
    assert agent.summaries >= 1
    agent.rebuild_memory()  # the system message counts the passages loaded between steps
    return agent


def tables(database: Database, agent_id: str) -> dict[str, list[Any]]:
    """Every row of an agent in every table (surrogate row ids left out)."""
    conn = database.conn
    return {
        "agents": conn.execute("SELECT * FROM agents WHERE id = ?", (agent_id,)).fetchall(),
        "checkpoints": conn.execute(
            "SELECT * FROM checkpoints WHERE agent_id = ? ORDER BY id", (agent_id,)
        ).fetchall(),
        "messages": conn.execute(
            "SELECT agent_id, uid, checkpoint_id, live, in_recall, said, role, created_at, day, "
            "text, message FROM messages WHERE agent_id = ? ORDER BY id",
            (agent_id,),
        ).fetchall(),
        "archival": conn.execute(
            "SELECT agent_id, seq, checkpoint_id, live, created_at, text, embedding FROM archival "
            "WHERE agent_id = ? ORDER BY id",
            (agent_id,),
        ).fetchall(),
    }


def view(agent: Agent) -> dict[str, Any]:
    return {
        "messages": agent.messages,
        "core": agent.memory.blocks,
        "recall": [(e.timestamp, e.message) for e in agent.recall_memory.entries],
        "archival": [
            (p.id, p.text, p.timestamp, p.embedding) for p in agent.archival_memory.passages
        ],
        "counters": (agent.summaries, agent.alerted_about_memory_pressure),
        "config": agent.config,
        "functions": list(agent.functions),
        "prompt": agent.system_prompt,
    }


# --- ours -----------------------------------------------------------------------------------


def test_export_import_round_trip_is_exact_in_every_table(tmp_path: Path) -> None:
    agent = lived(make_agent(persistence_manager=InMemoryStateManager(embed=embed)))
    path = agent.export(tmp_path / "sam.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert (document["format"], document["version"]) == ("memgpt-lab/agent", AGENT_FILE_VERSION)
    with AgentStore(tmp_path / "agents.db") as store:
        copy = Agent.import_file(path, store=store, embed=embed, clock=FixedClock())
        assert copy.id == agent.id
        before = tables(agent.persistence_manager.database, agent.id)
        after = tables(store.database, copy.id)
        assert set(before) == set(after)
        for table in before:
            assert after[table] == before[table], table
        assert view(copy) == view(agent)
        assert [c.id for c in copy.checkpoints()] == [c.id for c in agent.checkpoints()]
        copy.rewind(copy.checkpoints()[0].id)  # the history came along
        assert len(copy.recall_memory) == 0


def test_export_without_checkpoints_keeps_the_current_state(tmp_path: Path) -> None:
    agent = lived(make_agent())
    path = agent.export(tmp_path / "sam.json", checkpoints=False)
    copy = Agent.import_file(path, clock=FixedClock())
    assert view(copy) == view(agent)
    assert [c.label for c in copy.checkpoints()] == ["exported"]
    copy.turn("what do you remember about the fence")  # and it goes on


def test_a_fork_exports_the_history_it_shares(tmp_path: Path) -> None:
    agent = make_agent()
    agent.turn("remember that the fence is blue")
    fork = agent.fork()
    fork.turn("hello")
    copy = Agent.import_file(fork.export(tmp_path / "fork.json"))
    assert [c.id for c in copy.checkpoints()] == [c.id for c in fork.checkpoints()]
    copy.rewind(copy.checkpoints()[0].id)
    assert len(copy.recall_memory) == 0


def test_importing_twice_into_one_store(tmp_path: Path) -> None:
    agent = lived(make_agent())
    path = agent.export(tmp_path / "sam.json")
    with AgentStore(tmp_path / "agents.db") as store:
        first = Agent.import_file(path, store=store)
        with pytest.raises(StorageError, match="already holds an agent with id"):
            Agent.import_file(path, store=store)
        second = Agent.import_file(path, store=store, id="twin")
        assert view(second) == view(first)
        assert not {c.id for c in first.checkpoints()} & {c.id for c in second.checkpoints()}
        second.rewind(second.checkpoints()[2].id)
        assert view(first) == view(agent)


def test_files_that_are_not_ours_or_too_new(tmp_path: Path) -> None:
    agent = make_agent()
    path = agent.export(tmp_path / "sam.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    document["version"] = AGENT_FILE_VERSION + 1
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(StorageError, match="newer memgpt_lab .agent file version 2"):
        Agent.import_file(newer)
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(StorageError, match="neither our agent file nor Letta's"):
        Agent.import_file(junk)
    junk.write_text("{not json", encoding="utf-8")
    with pytest.raises(StorageError, match="is not JSON"):
        Agent.import_file(junk)
    junk.write_text('{"agents": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    with pytest.raises(StorageError, match="is not JSON: JSON nested deeper than 512 levels"):
        Agent.import_file(junk)  # (json raised RecursionError)
    with pytest.raises(ValueError, match="format must be"):
        agent.export(tmp_path / "x.json", format="yaml")


# --- Letta's .af ------------------------------------------------------------------------------


def test_af_export_has_lettas_shape(tmp_path: Path) -> None:
    agent = lived(make_agent())
    document = json.loads(agent.export(tmp_path / "sam.af").read_text(encoding="utf-8"))
    assert set(document) >= {"agents", "groups", "blocks", "files", "sources", "tools"}
    (letta,) = document["agents"]
    assert letta["system"] == agent.system_prompt
    assert letta["agent_type"] == "memgpt_agent"
    assert letta["llm_config"]["context_window"] == 2400
    blocks = {b["label"]: b for b in document["blocks"]}
    assert blocks["human"]["value"] == agent.memory.human
    assert blocks["persona"]["limit"] == agent.config.persona_char_limit
    assert [b["id"] for b in document["blocks"]] == letta["block_ids"]
    assert [t["name"] for t in document["tools"]] == list(agent.functions)
    assert document["tools"][0]["json_schema"] == agent.function_schemas[0]
    messages = {m["id"]: m for m in letta["messages"]}
    assert messages[letta["in_context_message_ids"][0]]["role"] == "system"
    assert len(letta["in_context_message_ids"]) == len(agent.messages)
    calls = [m for m in letta["messages"] if m["tool_calls"]]
    assert calls[0]["tool_calls"][0]["function"]["name"] == "core_memory_replace"
    results = [m for m in letta["messages"] if m["role"] == "tool"]
    assert results[0]["tool_call_id"] == calls[0]["tool_calls"][0]["id"]
    assert results[0]["tool_returns"][0]["status"] == "success"


def test_af_round_trip_of_our_agent(tmp_path: Path) -> None:
    agent = lived(make_agent())
    copy = Agent.import_file(agent.export(tmp_path / "sam.af"))
    assert view(copy) == view(agent)
    assert copy.id == agent.id and copy.name == "sam"


LETTA_V2 = {
    "agents": [
        {
            "name": "memgpt_agent",
            "memory_blocks": [],
            "tools": [],
            "tool_ids": ["tool-0", "tool-1", "tool-2"],
            "block_ids": ["block-0", "block-1", "block-2"],
            "tool_rules": [{"tool_name": "conversation_search", "type": "continue_loop"}],
            "system": "You are MemGPT.",
            "agent_type": "memgpt_agent",
            "llm_config": {
                "model": "gpt-4o-mini",
                "model_endpoint_type": "openai",
                "model_endpoint": "https://api.openai.com/v1",
                "provider_name": "openai",
                "context_window": 32000,
            },
            "id": "agent-0",
            "in_context_message_ids": ["message-0", "message-1", "message-2", "message-3"],
            "messages": [
                {
                    "role": "system",
                    "content": [{"type": "text", "text": "compiled system prompt"}],
                    "id": "message-0",
                    "created_at": "2025-10-31T22:56:56.459100+00:00",
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": '{"type": "user_message", "message": "hi, I am Chad"}',
                        }
                    ],
                    "id": "message-1",
                    "created_at": "2025-10-31T22:57:00+00:00",
                },
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "A new friend."}],
                    "tool_calls": [
                        {
                            "id": "call-1",
                            "type": "function",
                            "function": {
                                "name": "send_message",
                                "arguments": '{"message": "Hello Chad!"}',
                            },
                        }
                    ],
                    "id": "message-2",
                    "created_at": "2025-10-31T22:57:01+00:00",
                },
                {
                    "role": "tool",
                    "name": "send_message",
                    "content": [{"type": "text", "text": '{"status": "OK", "message": "None"}'}],
                    "tool_call_id": "call-1",
                    "tool_returns": [{"tool_call_id": "call-1", "status": "success"}],
                    "id": "message-3",
                    "created_at": "2025-10-31T22:57:02+00:00",
                },
            ],
        }
    ],
    "groups": [],
    "blocks": [
        {"label": "human", "value": "First name: Chad", "limit": 20000, "id": "block-0"},
        {"label": "persona", "value": "I am Sam.", "limit": 20000, "id": "block-1"},
        {"label": "todo", "value": "- write tests", "limit": 500, "id": "block-2"},
    ],
    "files": [],
    "sources": [],
    "tools": [
        {"id": "tool-0", "name": "send_message"},
        {"id": "tool-1", "name": "conversation_search"},
        {"id": "tool-2", "name": "memory_insert"},
    ],
    "mcp_servers": [],
    "metadata": {"revision_id": "f6cd5a1e519d"},
}

LETTA_V1 = {
    "agent_type": "memgpt_agent",
    "core_memory": [
        {"label": "persona", "value": "I am Sam.", "limit": 5000},
        {"label": "human", "value": "Name: Chad", "limit": 5000},
    ],
    "created_at": "2025-04-01T03:47:27",
    "llm_config": {
        "model": "llama3.1",
        "model_endpoint_type": "ollama",
        "model_endpoint": "http://127.0.0.1:9/v1",
        "context_window": 8192,
    },
    "in_context_message_indices": [0, 2],
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "compiled"}]},
        {"role": "user", "content": [{"type": "text", "text": "evicted long ago"}]},
        {"role": "user", "content": [{"type": "text", "text": "still in view"}]},
    ],
    "name": "old_agent",
    "system": "You are Letta.",
    "tools": [{"name": "send_message"}, {"name": "archival_memory_search"}],
    "version": "0.6.47",
}


def test_reading_lettas_current_af(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "memgpt_agent.af"
    path.write_text(json.dumps(LETTA_V2), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        agent = Agent.import_file(path, model="scripted")
    logged = caplog.text
    assert "memory block 'todo'" in logged and "memory_insert" in logged and "tool_rules" in logged
    assert agent.name == "memgpt_agent" and agent.system_prompt == "You are MemGPT."
    assert agent.memory.human == "First name: Chad" and agent.memory.persona == "I am Sam."
    assert agent.config.context_window == 32000 and agent.config.human_char_limit == 20000
    assert list(agent.functions) == ["send_message", "conversation_search"]
    assert [m["role"] for m in agent.messages] == ["system", "user", "assistant", "function"]
    assert agent.messages[2]["function_call"] == {
        "name": "send_message",
        "arguments": '{"message": "Hello Chad!"}',
    }
    assert agent.messages[3] == {
        "role": "function",
        "name": "send_message",
        "content": '{"status": "OK", "message": "None"}',
    }
    assert [e.text for e in agent.recall_memory.entries] == [
        "hi, I am Chad",
        "Hello Chad!",
        '{"status": "OK", "message": "None"}',
    ]
    assert agent.recall_memory.entries[0].timestamp.isoformat() == "2025-10-31T22:57:00+00:00"
    stored = Agent.import_file(path)  # its model string: openai's gpt-4o-mini, built, not called
    assert stored.model.name == "openai:gpt-4o-mini"
    assert agent.turn("what did I say about Chad").replies


def test_reading_lettas_first_af_shape(tmp_path: Path) -> None:
    path = tmp_path / "old.af"
    path.write_text(json.dumps(LETTA_V1), encoding="utf-8")
    agent = Agent.import_file(path)
    assert agent.model.name == "ollama:llama3.1"
    assert [m.get("content") for m in agent.messages[1:]] == ["still in view"]
    assert [e.text for e in agent.recall_memory.entries] == ["evicted long ago", "still in view"]
    assert list(agent.functions) == ["send_message", "archival_memory_search"]
    assert agent.memory.human == "Name: Chad" and agent.config.persona_char_limit == 5000


def test_an_af_model_we_cannot_build_needs_one(tmp_path: Path) -> None:
    document = json.loads(json.dumps(LETTA_V2))
    document["agents"][0]["llm_config"] = {"model": "claude", "provider_name": "anthropic"}
    path = tmp_path / "claude.af"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(StorageError, match="cannot be rebuilt from the file; pass model="):
        Agent.import_file(path)
    assert Agent.import_file(path, model="scripted").model.name == "scripted"
