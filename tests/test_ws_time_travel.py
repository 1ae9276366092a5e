"""Agents kept in a store across restarts, and the time-travel commands, over real sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect
from ws_helpers import TIMEOUT, ask, create, until_end

from memgpt_lab.errors import LabError, ServerResponseError
from memgpt_lab.interface import AgentInterface
from memgpt_lab.persistence import AgentStore
from memgpt_lab.ws import protocol
from memgpt_lab.ws.client import LabClient
from memgpt_lab.ws.server import COMMANDS, ERROR_CODES, LabServer


def turn(ws: ClientConnection, frame: dict[str, Any]) -> list[dict[str, Any]]:
    ws.send(json.dumps(frame))
    return until_end(ws)


def command(kind: str, config: dict[str, Any] | None = None, /, **fields: Any) -> dict[str, Any]:
    """A command frame; ``fields`` may include ``name`` (fork's)."""
    return {**protocol.command(kind, config), **fields}


@pytest.fixture
def server() -> Iterator[LabServer]:
    with LabServer(grace=5) as server:
        yield server


@pytest.fixture
def ws(server: LabServer) -> Iterator[ClientConnection]:
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        yield ws


def no_seq(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in frame.items() if k != "seq"} for frame in frames]


# --------------------------------------------------------------------------- restarts


def test_a_restarted_server_has_its_agents_with_their_memory(tmp_path: Path) -> None:
    db = tmp_path / "lab.sqlite"
    with LabServer(db=db) as first, connect(first.url, open_timeout=TIMEOUT) as ws:
        agent_id = create(ws, name="sam")
        for text in ("Hello, is anyone there?", "My name is Ada."):
            assert turn(ws, protocol.user_message(text, "sam"))[-1]["type"] == "agent_response_end"
        memory = ask(ws, command("get_memory", agent_id="sam"))["memory"]
        history = ask(ws, command("list_checkpoints", agent_id="sam"))
    with LabServer(db=db, agents=[{"name": "sam"}]) as second:
        assert list(second.agents) == [agent_id]  # the start-up agent was not made again
        with connect(second.url, open_timeout=TIMEOUT) as ws:
            agents = ask(ws, command("list_agents"))["agents"]
            assert [(a["id"], a["name"]) for a in agents] == [(agent_id, "sam")]
            assert ask(ws, command("get_memory", agent_id="sam"))["memory"] == memory
            assert "Ada" in memory["core_memory"]["human"]
            again = ask(ws, command("list_checkpoints", agent_id=agent_id))
            assert again["checkpoints"] == history["checkpoints"]
            assert again["current"] == history["current"]
            agent: Any = second.agents[agent_id]
            recalled = agent.recall_memory.text_search("My name is Ada")
            assert recalled.total >= 1
            frames = turn(ws, protocol.user_message("What is my name?", "sam"))
            assert frames[-1]["type"] == "agent_response_end"
            assert not [f for f in frames if f["type"] == "agent_response_error"]


def test_delete_agent_deletes_it_from_the_store(tmp_path: Path) -> None:
    db = tmp_path / "lab.sqlite"
    with LabServer(db=db) as server, connect(server.url, open_timeout=TIMEOUT) as ws:
        create(ws, name="keep")
        create(ws, name="gone")
        assert ask(ws, command("delete_agent", agent_id="gone"))["status"] == "OK: Agent deleted"
    with AgentStore(db) as store:
        assert [agent.name for agent in store.list()] == ["keep"]


def test_agents_of_one_server_share_one_in_memory_store(server: LabServer) -> None:
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        create(ws, name="a")
        create(ws, name="b")
    assert server.store is not None and server.store.path == ":memory:"
    databases = {id(agent.persistence_manager.database) for agent in server.agents.values()}  # type: ignore[attr-defined]
    assert databases == {id(server.store.database)}
    assert [agent.name for agent in server.store.list()] == ["a", "b"]


def test_an_agent_store_that_cannot_be_loaded_stops_the_start(tmp_path: Path) -> None:
    db = tmp_path / "lab.sqlite"
    db.write_text("not a database, not even close" * 100)
    with pytest.raises(LabError, match="could not open the agent store .*not a database"):
        LabServer(db=db).start()


# --------------------------------------------------------------------------- the commands


def test_hello_lists_the_time_travel_commands(ws: ClientConnection) -> None:
    hello = ask(ws, command("hello"))
    assert hello["commands"][-4:] == ["list_checkpoints", "rewind", "retry", "fork"]
    assert list(COMMANDS) == hello["commands"]
    assert {"unknown_checkpoint", "no_history", "nothing_to_retry"} <= set(ERROR_CODES)


def test_list_checkpoints_rewind_and_retry_frames(ws: ClientConnection) -> None:
    agent_id = create(ws, name="sam")
    fresh = ask(ws, command("get_memory", agent_id="sam"))["memory"]
    listed = ask(ws, {**command("list_checkpoints", agent_id="sam"), "request_id": "l1"})
    [created] = listed["checkpoints"]
    assert listed == {
        "type": "command_response",
        "status": "OK: 1 checkpoint(s) of agent sam",
        "command": "list_checkpoints",
        "agent_id": agent_id,
        "agent_name": "sam",
        "checkpoints": [
            {
                "id": created["id"],
                "parent_id": None,
                "turn": 0,
                "step": 0,
                "label": "created",
                "created_at": created["created_at"],
            }
        ],
        "current": created["id"],
        "request_id": "l1",
        "seq": listed["seq"],
    }
    first = turn(ws, protocol.user_message("Hello, is anyone there?", "sam"))
    after = ask(ws, command("list_checkpoints", agent_id="sam"))["checkpoints"]
    assert [(c["parent_id"], c["turn"], c["step"]) for c in after] == [
        (None, 0, 0),
        (created["id"], 1, 1),
    ]
    retried = turn(ws, {**command("retry", agent_id="sam"), "request_id": "r1"})
    connection_id = retried[0]["requested_by"]
    echo = {"request_id": "r1", "requested_by": connection_id, "command": "retry"}
    assert no_seq(retried) == [
        {"type": "agent_response_start", "agent_id": agent_id, "turn_id": 2, **echo},
        *[{**frame, "turn_id": 2} for frame in no_seq(first)[1:-1]],
        {"type": "agent_response_end", "agent_id": agent_id, "turn_id": 2, **echo},
    ]
    branches = ask(ws, command("list_checkpoints", agent_id="sam"))
    assert len(branches["checkpoints"]) == 3  # the first answer stays, as a branch
    assert [c["parent_id"] for c in branches["checkpoints"][1:]] == [created["id"]] * 2
    assert branches["current"] == branches["checkpoints"][-1]["id"]
    rewound = ask(ws, {**command("rewind", agent_id="sam", checkpoint_id=created["id"])})
    assert rewound == {
        "type": "command_response",
        "status": f"OK: agent sam rewound to {created['id']}",
        "command": "rewind",
        "agent_id": agent_id,
        "agent_name": "sam",
        "current": created["id"],
        "seq": rewound["seq"],
    }
    memory = ask(ws, command("get_memory", agent_id="sam"))["memory"]
    assert (memory["core_memory"], memory["recall_count"]) == (
        fresh["core_memory"],
        fresh["recall_count"],
    )


def test_retry_without_a_user_message_is_an_error_inside_the_turn(ws: ClientConnection) -> None:
    agent_id = create(ws, name="sam")
    frames = no_seq(turn(ws, {**command("retry", agent_id="sam"), "request_id": 7}))
    echo = {"request_id": 7, "requested_by": frames[0]["requested_by"], "command": "retry"}
    assert frames == [
        {"type": "agent_response_start", "agent_id": agent_id, "turn_id": 1, **echo},
        {
            "type": "agent_response_error",
            "message": f"nothing to retry: agent {agent_id!r} has no user message yet",
            "agent_id": agent_id,
            "turn_id": 1,
            "error_code": "nothing_to_retry",
        },
        {"type": "agent_response_end", "agent_id": agent_id, "turn_id": 1, **echo},
    ]


def test_fork_hosts_a_new_agent_from_a_checkpoint(server: LabServer, ws: ClientConnection) -> None:
    agent_id = create(ws, name="sam")
    turn(ws, protocol.user_message("My name is Ada.", "sam"))
    created = ask(ws, command("list_checkpoints", agent_id="sam"))["checkpoints"][0]["id"]
    forked = ask(ws, {**command("fork", agent_id="sam", checkpoint_id=created), "request_id": 3})
    fork_id = forked["agent_id"]
    assert forked == {
        "type": "command_response",
        "status": "OK: Agent forked",
        "command": "fork",
        "agent_id": fork_id,
        "agent_name": "sam-fork",
        "model": "scripted",
        "forked_from": {"agent_id": agent_id, "agent_name": "sam", "checkpoint_id": created},
        "current": forked["current"],
        "request_id": 3,
        "seq": forked["seq"],
    }
    assert fork_id != agent_id and fork_id in server.agents
    named = ask(ws, command("fork", agent_id="sam", name="ada-branch"))
    assert (named["agent_name"], named["forked_from"]["agent_name"]) == ("ada-branch", "sam")
    again = ask(ws, command("fork", agent_id="sam"))
    assert again["agent_name"] == "sam-fork-2"
    fork_memory = ask(ws, command("get_memory", agent_id="sam-fork"))["memory"]
    assert "Ada" not in fork_memory["core_memory"]["human"]  # from before the name was said
    assert (
        "Ada"
        in ask(ws, command("get_memory", agent_id="ada-branch"))["memory"]["core_memory"]["human"]
    )
    history = ask(ws, command("list_checkpoints", agent_id="sam-fork"))
    assert history["checkpoints"][0]["id"] == created
    assert history["current"] == forked["current"]
    frames = turn(ws, protocol.user_message("Hello, is anyone there?", "sam-fork"))
    assert frames[0]["agent_id"] == fork_id and frames[-1]["type"] == "agent_response_end"
    assert server.store is not None
    assert {a.name for a in server.store.list()} == {"sam", "sam-fork", "ada-branch", "sam-fork-2"}


@pytest.mark.parametrize(
    ("frame", "status", "code"),
    [
        (
            command("rewind", agent_id="sam", checkpoint_id="nope"),
            "Error: no checkpoint 'nope' in the history of agent {id!r} (1 checkpoints; "
            "agent.checkpoints() lists them)",
            "unknown_checkpoint",
        ),
        (
            command("fork", agent_id="sam", checkpoint_id="nope"),
            "Error: no checkpoint 'nope' in the history of agent {id!r} (1 checkpoints; "
            "agent.checkpoints() lists them)",
            "unknown_checkpoint",
        ),
        (
            command("rewind", agent_id="sam"),
            "Error: rewind's 'checkpoint_id' must be a non-empty string",
            "bad_frame",
        ),
        (
            command("fork", agent_id="sam", name=3),
            "Error: fork's 'name' must be a non-empty string",
            "bad_frame",
        ),
        (
            command("fork", agent_id="sam", name="sam"),
            "Error: an agent named 'sam' already exists",
            "name_taken",
        ),
    ],
)
def test_errors_name_the_agent_and_carry_a_code(
    ws: ClientConnection, frame: dict[str, Any], status: str, code: str
) -> None:
    agent_id = create(ws, name="sam")
    name = frame["command"]
    answer = ask(ws, {**frame, "request_id": "e"})
    assert answer == {
        "type": "command_response",
        "status": status.format(id=agent_id),
        "command": name,
        "agent_id": agent_id,
        "agent_name": "sam",
        "error_code": code,
        "request_id": "e",
        "seq": answer["seq"],
    }


@pytest.mark.parametrize("name", ["list_checkpoints", "rewind", "retry", "fork"])
def test_an_unknown_agent_is_refused(ws: ClientConnection, name: str) -> None:
    answer = ask(ws, command(name, agent_id="ghost", checkpoint_id="x"))
    assert answer["type"] == "command_response"
    assert (answer["command"], answer["agent_id"], answer["error_code"]) == (
        name,
        "ghost",
        "unknown_agent",
    )


class Plain:
    """A hosted agent without checkpoints (a custom factory's object)."""

    def __init__(self, config: dict[str, Any], interface: AgentInterface) -> None:
        self.id = "plain1"
        self.name = str(config.get("name", "plain"))
        self.interface = interface

    def turn(self, message: str) -> None:
        self.interface.assistant_message(message)

    def memory_snapshot(self) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize("name", ["list_checkpoints", "rewind", "retry", "fork"])
def test_an_agent_without_history_is_refused(name: str) -> None:
    with (
        LabServer(agent_factory=Plain) as server,
        connect(server.url, open_timeout=TIMEOUT) as ws,
    ):
        ask(ws, command("create_agent", {"name": "p"}))
        answer = ask(ws, command(name, agent_id="p", checkpoint_id="x"))
    assert (
        answer["status"] == "Error: agent p keeps no history: its type (Plain) has no checkpoints"
    )
    assert answer["error_code"] == "no_history"


# --------------------------------------------------------------------------- the client


def test_client_methods(server: LabServer) -> None:
    with LabClient(server.url, timeout=TIMEOUT) as client:
        agent_id = client.create_agent(name="sam")
        client.send("Hello, is anyone there?", "sam")
        listed = client.list_checkpoints("sam")
        first = listed["checkpoints"][0]["id"]
        assert listed["current"] == listed["checkpoints"][-1]["id"]
        frames = client.retry("sam")
        assert [f["type"] for f in (frames[0], frames[-1])] == [
            "agent_response_start",
            "agent_response_end",
        ]
        assert frames[0]["command"] == "retry" and frames[0]["agent_id"] == agent_id
        assert client.rewind("sam", first) == first
        with pytest.raises(ServerResponseError) as caught:
            client.rewind("sam", "nope")
        assert caught.value.frame["error_code"] == "unknown_checkpoint"
        forked = client.fork("sam", first, name="other")
        assert forked["agent_name"] == "other"
        assert client.fork("sam")["agent_name"] == "sam-fork"
        with pytest.raises(ServerResponseError) as caught:
            client.retry("other")
        assert caught.value.frame["error_code"] == "nothing_to_retry"


def test_serve_takes_db() -> None:
    from memgpt_lab.cli import _parser

    assert _parser().parse_args(["serve", "--db", "lab.sqlite"]).db == "lab.sqlite"
    assert _parser().parse_args(["serve"]).db is None
