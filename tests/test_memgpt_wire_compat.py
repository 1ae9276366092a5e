"""A client written as MemGPT 0.2's ``ws_api`` clients were, against ``LabServer``.

The client below is written fresh from MemGPT's protocol description
(``/work/shared/MEMGPT_WS_PROTOCOL.md``), with a plain ``websockets`` client and
none of this project's client code: ``client_command_create`` and
``client_user_message`` build its frames; it sends ``create_agent`` and reads
*one* frame; then, per message, it reads until ``agent_response_end``,
``agent_response_error``, ``command_response`` or ``server_error``.

Each frame is checked twice: its MemGPT view (the keys MemGPT's frames have)
exactly, and its other keys against the documented additive ones. "Nothing
foreign arrives" is checked by a probe at the end of each session: a
``user_message`` without ``agent_id``, which MemGPT answers with a lone
``agent_response_error``; it must be the very next frame (``seq`` one more
than the last frame read), so nothing was queued in between.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from memgpt_lab.ws.server import LabServer

TIMEOUT = 30  # MemGPT's clients waited up to 30 s per frame

# --------------------------------------------------------------------------- the MemGPT-style client


def client_command_create(config: dict[str, Any]) -> str:
    return json.dumps({"type": "command", "command": "create_agent", "config": config})


def client_user_message(msg: str, agent_id: str | None = None) -> str:
    return json.dumps({"type": "user_message", "message": msg, "agent_id": agent_id})


STOP_TYPES = ("agent_response_end", "agent_response_error", "command_response", "server_error")


async def receive_one(ws: ClientConnection) -> dict[str, Any]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert isinstance(frame, dict)
    return frame


async def receive_until_stop(ws: ClientConnection) -> list[dict[str, Any]]:
    frames = [await receive_one(ws)]
    while frames[-1]["type"] not in STOP_TYPES:
        frames.append(await receive_one(ws))
    return frames


# --------------------------------------------------------------------------- checking frames

#: The keys of each server frame in MemGPT 0.2.
MEMGPT_KEYS = {
    "server_error": {"type", "message"},
    "command_response": {"type", "status"},
    "agent_response_error": {"type", "message"},
    "agent_response_start": {"type"},
    "agent_response_end": {"type"},
    "agent_response": {"type", "message_type", "message"},
}
#: The additive keys this server may put beside them (documented in memgpt_lab.ws.server).
ADDITIVE_KEYS = {
    "seq",
    "agent_id",
    "turn_id",
    "request_id",
    "requested_by",
    "error_code",
    "command",
    "agent_name",
    "model",
    "model_requested",
    "note",
    "ignored",
}


def memgpt_view(frame: dict[str, Any]) -> dict[str, Any]:
    """The frame as a MemGPT client reads it; fails on keys that are neither MemGPT's nor
    documented additions."""
    keys = MEMGPT_KEYS[frame["type"]]
    extra = set(frame) - keys
    assert extra <= ADDITIVE_KEYS, sorted(extra - ADDITIVE_KEYS)
    assert keys <= set(frame), frame
    return {key: frame[key] for key in keys}


def shape(frames: list[dict[str, Any]]) -> list[str]:
    """``type``, or ``message_type`` for agent_response frames."""
    return [memgpt_view(f).get("message_type", f["type"]) for f in frames]


def said(frames: list[dict[str, Any]]) -> list[str]:
    return [f["message"] for f in frames if f.get("message_type") == "assistant_message"]


async def probe(ws: ClientConnection, last: list[dict[str, Any]]) -> None:
    """Nothing foreign is queued: the answer to a probe is the very next frame."""
    await ws.send(client_user_message("probe"))
    answer = await receive_one(ws)
    assert memgpt_view(answer) == {
        "type": "agent_response_error",
        "message": "agent_name was not specified in the request",
    }
    assert answer["seq"] == last[-1]["seq"] + 1


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# MemGPT's example client's config and agent name.
EXAMPLE_CONFIG = {"persona": "sam_pov", "human": "cs_phd", "model": "gpt-4-1106-preview"}
AGENT_NAME = "agent_26"
ONE_STEP = ["agent_response_start", "internal_monologue", "function_message"]
ONE_STEP += ["assistant_message", "function_message", "agent_response_end"]


@pytest.fixture
def server() -> Iterator[LabServer]:
    # The agent the example client talks to, created at start as `serve --agent agent_26` does.
    agents = [{"name": AGENT_NAME, "persona": "sam_pov", "human": "cs_phd"}]
    with LabServer(agents=agents) as server:
        yield server


# --------------------------------------------------------------------------- sessions


def test_memgpts_example_client_runs_a_whole_session(server: LabServer) -> None:
    async def session() -> list[list[dict[str, Any]]]:
        async with connect(server.url) as ws:
            # Nothing before the client speaks: the one frame read is create_agent's answer.
            await ws.send(client_command_create(EXAMPLE_CONFIG))
            reads = [[await receive_one(ws)]]
            for message in ("Hello?", "My name is Ann.", "What is my name?"):
                await ws.send(client_user_message(message, agent_id=AGENT_NAME))
                reads.append(await receive_until_stop(ws))
            await probe(ws, reads[-1])
        return reads

    created, hello, name, question = run(session())
    assert [memgpt_view(f) for f in created] == [
        {"type": "command_response", "status": "OK: Agent initialized"}
    ]
    assert created[0]["seq"] == 1
    assert created[0]["model"] == "scripted"  # the server's policy, and it says so
    assert "gpt-4-1106-preview" in created[0]["note"]
    assert shape(hello) == ONE_STEP
    assert said(hello) == ["Hello, Priya! Yes, I'm here. I'm Sam. What's on your mind?"]
    assert shape(name) == [
        "agent_response_start",
        "internal_monologue",
        "function_message",
        "function_message",
        "internal_monologue",
        "function_message",
        "assistant_message",
        "function_message",
        "agent_response_end",
    ]
    assert said(name) == ["Nice to meet you, Ann! I've written your name down."]
    assert shape(question) == ONE_STEP
    assert "Ann" in said(question)[0]
    frames = [f for read in (created, hello, name, question) for f in read]
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    turn_frames = hello + name + question
    [agent_26] = [i for i, agent in server.agents.items() if agent.name == AGENT_NAME]
    assert {f["agent_id"] for f in turn_frames} == {agent_26}


def test_a_client_can_create_the_agent_it_names_and_then_talk_to_it(server: LabServer) -> None:
    async def session() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with connect(server.url) as ws:
            await ws.send(client_command_create({**EXAMPLE_CONFIG, "name": "sam"}))
            created = [await receive_one(ws)]
            await ws.send(client_user_message("Hello?", agent_id="sam"))
            turn = await receive_until_stop(ws)
            await probe(ws, turn)
        return created, turn

    created, turn = run(session())
    assert memgpt_view(created[0]) == {
        "type": "command_response",
        "status": "OK: Agent initialized",
    }
    assert created[0]["agent_name"] == "sam"
    assert shape(turn) == ONE_STEP
    assert {f["agent_id"] for f in turn} == {created[0]["agent_id"]}


def test_two_clients_on_one_agent_each_get_only_their_own_turns(server: LabServer) -> None:
    async def session() -> dict[str, list[list[dict[str, Any]]]]:
        async with connect(server.url) as a, connect(server.url) as b:
            reads: dict[str, list[list[dict[str, Any]]]] = {"a": [], "b": []}
            # In turn: a, b, a; then both at once.
            for ws, key, message in (
                (a, "a", "Hello?"),
                (b, "b", "My name is Bo."),
                (a, "a", "Hi"),
            ):
                await ws.send(client_user_message(message, agent_id=AGENT_NAME))
                reads[key].append(await receive_until_stop(ws))
            await a.send(client_user_message("From a", agent_id=AGENT_NAME))
            await b.send(client_user_message("From b", agent_id=AGENT_NAME))
            last_a, last_b = await asyncio.gather(receive_until_stop(a), receive_until_stop(b))
            reads["a"].append(last_a)
            reads["b"].append(last_b)
            await probe(a, last_a)
            await probe(b, last_b)
        return reads

    reads = run(session())
    for key, turns in reads.items():
        frames = [f for turn in turns for f in turn]
        assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1)), key
        for turn in turns:
            assert turn[0]["type"] == "agent_response_start"
            assert turn[-1]["type"] == "agent_response_end"
            assert {f["type"] for f in turn[1:-1]} == {"agent_response"}
            assert len({f["turn_id"] for f in turn}) == 1
    a_turns = [turn[0]["turn_id"] for turn in reads["a"]]
    b_turns = [turn[0]["turn_id"] for turn in reads["b"]]
    assert a_turns[:2] == [1, 3] and b_turns[:1] == [2]
    assert sorted(a_turns + b_turns) == [1, 2, 3, 4, 5]  # every turn reached exactly one client
    assert said(reads["b"][0]) == ["Nice to meet you, Bo! I've written your name down."]
    assert "From a" in said(reads["a"][-1])[0] and "From b" in said(reads["b"][-1])[0]


def test_two_clients_on_two_agents_never_see_each_others_frames(server: LabServer) -> None:
    async def client(name: str) -> list[list[dict[str, Any]]]:
        async with connect(server.url) as ws:
            await ws.send(client_command_create({**EXAMPLE_CONFIG, "name": name}))
            reads = [[await receive_one(ws)]]
            for message in ("Hello?", f"My name is {name.title()}.", "Still there?"):
                await ws.send(client_user_message(message, agent_id=name))
                reads.append(await receive_until_stop(ws))
            await probe(ws, reads[-1])
            return reads

    async def both() -> list[list[list[dict[str, Any]]]]:
        return list(await asyncio.gather(client("alpha"), client("beta")))

    for name, reads in zip(("alpha", "beta"), run(both()), strict=True):
        created, *turns = reads
        assert memgpt_view(created[0]) == {
            "type": "command_response",
            "status": "OK: Agent initialized",
        }
        agent_id = created[0]["agent_id"]
        for turn in turns:
            assert {f["agent_id"] for f in turn} == {agent_id}
        assert [turn[0]["turn_id"] for turn in turns] == [1, 2, 3]
        assert said(turns[1]) == [f"Nice to meet you, {name.title()}! I've written your name down."]


# --------------------------------------------------------------------------- MemGPT's errors


def test_bad_input_gets_the_frame_types_memgpt_answered_with(server: LabServer) -> None:
    async def session() -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
        async with connect(server.url) as ws:
            answers = []
            for sent in (
                "not json",
                json.dumps({"message": "no type"}),
                json.dumps({"type": "command", "command": "fly"}),
                json.dumps({"type": "shout"}),
                client_user_message("hi"),
            ):
                await ws.send(sent)
                answers.append(await receive_until_stop(ws))
            refusals = []
            for message, agent in (("hi", "ghost"), ("", AGENT_NAME), ("/memory", AGENT_NAME)):
                await ws.send(client_user_message(message, agent_id=agent))
                # MemGPT sent the end after the error, where a receive loop has stopped:
                # the next read gets it.
                refusals.append(await receive_until_stop(ws) + await receive_until_stop(ws))
            await probe(ws, refusals[-1])
        return answers, refusals

    answers, refusals = run(session())
    assert [[memgpt_view(f) for f in read] for read in answers] == [
        [{"type": "command_response", "status": "Error: bad data from client - not json"}],
        [
            {
                "type": "command_response",
                "status": "Error: bad data from client - {'message': 'no type'}",
            }
        ],
        [
            {
                "type": "server_error",
                "message": "unrecognized client command type: "
                "{'type': 'command', 'command': 'fly'}",
            }
        ],
        [
            {
                "type": "server_error",
                "message": "unrecognized client package data type: {'type': 'shout'}",
            }
        ],
        [
            {
                "type": "agent_response_error",
                "message": "agent_name was not specified in the request",
            }
        ],
    ]
    assert [f["error_code"] for read in answers for f in read] == [
        "bad_json",
        "no_type",
        "unknown_command",
        "unknown_type",
        "no_agent",
    ]
    for refusal in refusals:
        assert shape(refusal) == [
            "agent_response_start",
            "agent_response_error",
            "agent_response_end",
        ]
    assert refusals[0][1]["message"].startswith("unknown agent 'ghost'; agents: agent_26")
    assert refusals[1][1]["message"] == "Invalid input: ''"
    assert refusals[2][1]["message"] == "Invalid input: '/memory'"
    assert [r[1]["error_code"] for r in refusals] == [
        "unknown_agent",
        "invalid_input",
        "invalid_input",
    ]


def test_a_failed_create_agent_says_why_as_memgpt_did(server: LabServer) -> None:
    async def session() -> dict[str, Any]:
        async with connect(server.url) as ws:
            await ws.send(client_command_create({"persona": "nobody"}))
            return await receive_one(ws)

    answer = run(session())
    status = memgpt_view(answer)["status"]
    assert status.startswith("Error: Failed to init agent - unknown persona 'nobody'; available: ")
    assert answer["error_code"] == "unknown_name"
