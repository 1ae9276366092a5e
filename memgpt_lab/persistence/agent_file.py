"""Agent files: an agent as one JSON document, ours or Letta's ``.af``.

Our format (``"format": "memgpt-lab/agent"``, versioned) holds the rows of
every table for one agent: what it is, its head state, every message and
passage (with their checkpoint and branch), and optionally its checkpoints.
Reading it back gives the same rows (:func:`dump_agent`, :func:`restore_agent`);
:meth:`AgentStore.save` moves agents between databases the same way.

Letta's Agent File (``.af``) is written in its current shape (a document of
``agents``, ``blocks``, ``tools``...) and read in that shape or the first one (a
single agent with ``core_memory`` and ``in_context_message_indices``), as far
as its fields map onto ours (see :func:`to_letta` and :func:`from_letta`); what
Letta has no field for (archival passages, counters, the preset) rides in the
agent's ``metadata`` under ``"memgpt_lab"``, which Letta keeps and ignores.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memgpt_lab import _json
from memgpt_lab.persistence.database import (
    Database,
    StorageError,
    embedding_blob,
    embedding_values,
    to_json,
)
from memgpt_lab.persistence.manager import COUNTERS, ancestors_sql, state_at
from memgpt_lab.persistence.tables import MESSAGE_COLUMNS, PASSAGE_COLUMNS, insert_rows

__all__ = [
    "AGENT_FILE_FORMAT",
    "AGENT_FILE_VERSION",
    "dump_agent",
    "from_letta",
    "read_agent_file",
    "restore_agent",
    "to_letta",
    "write_agent_file",
]

log = logging.getLogger(__name__)

AGENT_FILE_FORMAT = "memgpt-lab/agent"
#: The version this release writes; files up to it are read.
AGENT_FILE_VERSION = 1

_AGENT_COLUMNS = (
    "id",
    "name",
    "preset_name",
    "system_prompt",
    "config",
    "functions",
    "model",
    "model_name",
    "embedding",
    "core",
    "counters",
    "context",
    "last_call",
    "head_checkpoint_id",
    "created_at",
    "updated_at",
)
_AGENT_JSON = {"config", "functions", "core", "counters", "context", "last_call"}
_CHECKPOINT_COLUMNS = (
    "id",
    "agent_id",
    "parent_id",
    "depth",
    "turn",
    "step",
    "label",
    "created_at",
    "context_set",
    "context_add",
    "core",
    "counters",
)
_CHECKPOINT_JSON = {"context_set", "context_add", "core", "counters"}
_MESSAGE_COLUMNS = MESSAGE_COLUMNS
_PASSAGE_COLUMNS = PASSAGE_COLUMNS


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps(value: Any) -> str | None:
    return None if value is None else to_json(value)


# --- our format -------------------------------------------------------------------------


def dump_agent(database: Database, agent_id: str, *, checkpoints: bool = True) -> dict[str, Any]:
    """Every row of one agent, as plain data (JSON columns parsed).

    With ``checkpoints``, every message and passage (each branch) and every checkpoint
    of its history (a fork's inherited ones too, marked ``"owned": false``). Without,
    only what is on the current branch, under one new checkpoint holding the head state.
    """
    with database.read() as conn:
        row = conn.execute(
            f"SELECT {', '.join(_AGENT_COLUMNS)} FROM agents WHERE id = ?", (agent_id,)
        ).fetchone()
        if row is None:
            raise StorageError(f"the store holds no agent {agent_id!r}")
        agent = {
            key: _loads(value) if key in _AGENT_JSON else value
            for key, value in zip(_AGENT_COLUMNS, row, strict=True)
        }
        live_only = "" if checkpoints else " AND live = 1"
        messages = [
            dict(zip(_MESSAGE_COLUMNS, (*r[:-1], json.loads(r[-1])), strict=True))
            for r in conn.execute(
                f"SELECT {', '.join(_MESSAGE_COLUMNS)} FROM messages WHERE agent_id = ?"
                f"{live_only} ORDER BY id",
                (agent_id,),
            )
        ]
        passages = [
            dict(zip(_PASSAGE_COLUMNS, (*r[:-1], embedding_values(r[-1])), strict=True))
            for r in conn.execute(
                f"SELECT {', '.join(_PASSAGE_COLUMNS)} FROM archival WHERE agent_id = ?"
                f"{live_only} ORDER BY id",
                (agent_id,),
            )
        ]
        if checkpoints:
            history = _history(conn, agent_id)
        else:
            head = conn.execute(
                "SELECT turn, step FROM checkpoints WHERE id = ?", (agent["head_checkpoint_id"],)
            ).fetchone()
            uids, core, counters = state_at(conn, agent["head_checkpoint_id"])
            now = database.now()
            root = database.new_id(now)
            history = [
                {
                    "id": root,
                    "owned": True,
                    "parent_id": None,
                    "depth": 0,
                    "turn": head[0],
                    "step": head[1],
                    "label": "exported",
                    "created_at": now.isoformat(),
                    "context_set": uids,
                    "context_add": None,
                    "core": core,
                    "counters": {**COUNTERS, **counters},
                }
            ]
            agent["head_checkpoint_id"] = root
            for item in (*messages, *passages):
                item["checkpoint_id"] = root
    return {
        "format": AGENT_FILE_FORMAT,
        "version": AGENT_FILE_VERSION,
        "exported_at": datetime.now(UTC).isoformat(),
        "agent": agent,
        "checkpoints": history,
        "messages": messages,
        "archival": passages,
    }


def _history(conn: Any, agent_id: str) -> list[dict[str, Any]]:
    columns = ", ".join(f"c.{c}" for c in _CHECKPOINT_COLUMNS)
    rows = conn.execute(
        f"SELECT {columns} FROM checkpoints c WHERE c.agent_id = ? ORDER BY c.depth, c.id",
        (agent_id,),
    ).fetchall()
    root = min(rows, key=lambda r: r[3]) if rows else None
    if root is not None and root[2] is not None:
        rows = conn.execute(ancestors_sql(columns), (root[2],)).fetchall() + rows
    history = []
    for r in rows:
        item = {
            key: _loads(value) if key in _CHECKPOINT_JSON else value
            for key, value in zip(_CHECKPOINT_COLUMNS, r, strict=True)
        }
        item["owned"] = item.pop("agent_id") == agent_id
        history.append(item)
    history.sort(key=lambda c: (c["depth"], c["id"]))
    return history


def restore_agent(database: Database, data: dict[str, Any], *, agent_id: str | None = None) -> str:
    """Write an agent's rows (from :func:`dump_agent` or :func:`read_agent_file`) into
    ``database``, in one transaction; returns its id.

    Checkpoints the database already holds from another agent's history are shared;
    the agent's own are given new ids if theirs are taken (a file imported twice).

    Raises:
        StorageError: the database already holds an agent with that id.
    """
    _check_format(data, "agent data")
    agent = dict(data["agent"])
    agent["id"] = agent_id or agent["id"]
    history = data.get("checkpoints") or []
    with database.transaction() as conn:
        if conn.execute("SELECT 1 FROM agents WHERE id = ?", (agent["id"],)).fetchone():
            raise StorageError(
                f"the store already holds an agent with id {agent['id']!r}; "
                "import this one under another id (id=...)"
            )
        existing = {
            r[0]
            for r in conn.execute(
                "SELECT id FROM checkpoints WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps([c["id"] for c in history]),),
            )
        }
        rename: dict[str, str] = {}
        if any(c["owned"] and c["id"] in existing for c in history):
            now = database.now()
            for c in history:
                if c["owned"]:
                    rename[c["id"]] = database.new_id(now)

        def ref(checkpoint_id: str | None) -> str | None:
            return None if checkpoint_id is None else rename.get(checkpoint_id, checkpoint_id)

        row = [_dumps(agent[key]) if key in _AGENT_JSON else agent[key] for key in _AGENT_COLUMNS]
        row[_AGENT_COLUMNS.index("context")] = json.dumps(agent["context"])
        row[_AGENT_COLUMNS.index("head_checkpoint_id")] = ref(agent["head_checkpoint_id"])
        insert_rows(conn, "agents", _AGENT_COLUMNS, [row])
        database.new_id.seed(max((ref(c["id"]) or "" for c in history), default=None))
        insert_rows(
            conn,
            "checkpoints",
            _CHECKPOINT_COLUMNS,
            [
                (
                    ref(c["id"]),
                    agent["id"] if c["owned"] else None,
                    ref(c["parent_id"]),
                    c["depth"],
                    c["turn"],
                    c["step"],
                    c["label"],
                    c["created_at"],
                    None if c["context_set"] is None else json.dumps(c["context_set"]),
                    None if c["context_add"] is None else json.dumps(c["context_add"]),
                    _dumps(c["core"]),
                    _dumps(c["counters"]),
                )
                for c in history
                if c["owned"] or c["id"] not in existing
            ],
        )
        insert_rows(
            conn,
            "messages",
            ("agent_id", *_MESSAGE_COLUMNS),
            [
                (
                    agent["id"],
                    m["uid"],
                    ref(m["checkpoint_id"]),
                    m["live"],
                    m["in_recall"],
                    m["said"],
                    m["role"],
                    m["created_at"],
                    m["day"],
                    m["text"],
                    to_json(m["message"]),
                )
                for m in data.get("messages") or []
            ],
        )
        insert_rows(
            conn,
            "archival",
            ("agent_id", *_PASSAGE_COLUMNS),
            [
                (
                    agent["id"],
                    p["seq"],
                    ref(p["checkpoint_id"]),
                    p["live"],
                    p["created_at"],
                    p["text"],
                    embedding_blob(p["embedding"]),
                )
                for p in data.get("archival") or []
            ],
        )
    return str(agent["id"])


def _check_format(data: Any, where: str) -> None:
    if not isinstance(data, dict) or data.get("format") != AGENT_FILE_FORMAT:
        raise StorageError(
            f"{where} is not a memgpt_lab agent file (no format {AGENT_FILE_FORMAT!r})"
        )
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise StorageError(
            f"{where}: version {version!r} is not a version of the agent file format"
        )
    if version > AGENT_FILE_VERSION:
        raise StorageError(
            f"{where} was written by a newer memgpt_lab (agent file version {version}; this "
            f"one reads versions up to {AGENT_FILE_VERSION}): upgrade memgpt_lab to read it"
        )


def write_agent_file(path: str | os.PathLike[str], document: dict[str, Any]) -> Path:
    """Write a document (ours or an ``.af``) as UTF-8 JSON, atomically (a temporary file
    renamed into place)."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as out:
            json.dump(document, out, indent=1)
            out.write("\n")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def read_agent_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an agent file, ours or Letta's (``.af``), as our agent data.

    Raises:
        StorageError: not JSON, not an agent file, or from a newer release.
    """
    where = os.fspath(path)
    try:
        document = _json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StorageError(f"{where} is not JSON: {exc}") from None
    if isinstance(document, dict) and "format" in document:
        _check_format(document, where)
        return document
    if isinstance(document, str):  # some .af files hold their JSON as a JSON string
        try:
            document = _json.loads(document)
        except ValueError:
            raise StorageError(f"{where} is neither our agent file nor Letta's .af") from None
    if isinstance(document, dict) and ("agents" in document or "core_memory" in document):
        return from_letta(document, where)
    raise StorageError(f"{where} is neither our agent file nor Letta's .af")


# --- Letta's Agent File -------------------------------------------------------------------

#: Our functions that Letta's MemGPT agents call by the same name and arguments.
LETTA_TOOL_TYPES = {
    "send_message": "letta_core",
    "pause_heartbeats": "letta_core",
    "conversation_search": "letta_core",
    "conversation_search_date": "letta_core",
    "archival_memory_insert": "letta_core",
    "archival_memory_search": "letta_core",
    "core_memory_append": "letta_memory_core",
    "core_memory_replace": "letta_memory_core",
}

_BLOCK_DESCRIPTIONS = {
    "persona": "The persona block: Stores details about your current persona, guiding how "
    "you behave and respond.",
    "human": "The human block: Stores key details about the person you are conversing with.",
}


def _provider_parts(model: str | None) -> tuple[str | None, str | None, str | None]:
    """``(provider, model, endpoint)`` of a model string; Nones for ``scripted`` and others."""
    if not model or model == "scripted" or ":" not in model:
        return None, None, None
    from memgpt_lab.llm.providers import PROVIDERS, parse_model_string

    try:
        spec = parse_model_string(model)
    except (ValueError, LookupError):
        return None, None, None
    profile = PROVIDERS[spec.provider]
    return spec.provider, spec.model, spec.base_url or profile.base_url


def to_letta(
    data: dict[str, Any], system_message: str, schemas: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Our agent data as a Letta Agent File (its current, multi-agent shape).

    Args:
        data: from :func:`dump_agent` (the current branch is written).
        system_message: the agent's system message as the model sees it (Letta keeps
            it as the first in-context message).
        schemas: the JSON schemas of the agent's functions (its ``tools``).
    """
    agent = data["agent"]
    config = agent["config"]
    provider, model_name, endpoint = _provider_parts(agent["model"])
    created = agent["created_at"]
    live = [m for m in data["messages"] if m["live"]]
    letta_messages: list[dict[str, Any]] = [
        _letta_message("message-0", "system", system_message, agent, created)
    ]
    call_id: str | None = None
    for row in live:
        message = row["message"]
        ident = f"message-{row['uid']}"
        role = message.get("role")
        item = _letta_message(ident, "user", message.get("content"), agent, row["created_at"])
        if role == "assistant":
            item["role"] = "assistant"
            call = message.get("function_call")
            if call:
                call_id = f"call-{row['uid']}"
                item["tool_calls"] = [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": call.get("name"),
                            "arguments": call.get("arguments"),
                        },
                    }
                ]
        elif role in ("function", "tool"):
            item["role"] = "tool"
            item["name"] = message.get("name")
            item["tool_call_id"] = call_id
            status = _status_of(message.get("content"))
            item["tool_returns"] = [
                {
                    "tool_call_id": call_id,
                    "status": "error" if status == "Failed" else "success",
                    "stdout": None,
                    "stderr": None,
                    "func_response": message.get("content"),
                }
            ]
        elif role == "system":
            item["role"] = "system"
        else:
            item["name"] = message.get("name")
        letta_messages.append(item)
    blocks = [
        {
            "value": value,
            "limit": config.get(f"{label}_char_limit", max(len(value), 1)),
            "project_id": None,
            "template_name": None,
            "is_template": False,
            "template_id": None,
            "base_template_id": None,
            "deployment_id": None,
            "entity_id": None,
            "preserve_on_migration": False,
            "label": label,
            "read_only": False,
            "description": _BLOCK_DESCRIPTIONS.get(label, ""),
            "metadata": {},
            "hidden": None,
            "id": f"block-{index}",
        }
        for index, (label, value) in enumerate(agent["core"].items())
    ]
    tools = [
        {
            "id": f"tool-{index}",
            "tool_type": LETTA_TOOL_TYPES.get(schema["name"], "custom"),
            "description": schema.get("description", ""),
            "source_type": "python",
            "name": schema["name"],
            "tags": [LETTA_TOOL_TYPES[schema["name"]]]
            if schema["name"] in LETTA_TOOL_TYPES
            else [],
            "source_code": None,
            "json_schema": schema,
            "args_json_schema": None,
            "return_char_limit": config.get("function_result_char_limit", 3000),
            "pip_requirements": None,
            "npm_requirements": None,
            "default_requires_approval": None,
            "metadata_": {},
        }
        for index, schema in enumerate(schemas)
    ]
    extras = {
        "format": AGENT_FILE_FORMAT,
        "version": AGENT_FILE_VERSION,
        "agent": {k: v for k, v in agent.items() if k not in ("context",)},
        "context_only": [m["uid"] for m in live if not m["in_recall"]],
        "head": next(
            {"turn": c["turn"], "step": c["step"]}
            for c in data["checkpoints"]
            if c["id"] == agent["head_checkpoint_id"]
        ),
        "archival": [p for p in data["archival"] if p["live"]],
    }
    letta_agent = {
        "name": agent["name"],
        "memory_blocks": [],
        "tools": [],
        "tool_ids": [tool["id"] for tool in tools],
        "source_ids": [],
        "block_ids": [block["id"] for block in blocks],
        "tool_rules": [],
        "tags": [],
        "system": agent["system_prompt"],
        "agent_type": "memgpt_agent",
        "llm_config": {
            "model": model_name or agent["model_name"],
            "display_name": None,
            "model_endpoint_type": "openai" if provider else None,
            "model_endpoint": endpoint,
            "provider_name": provider,
            "model_wrapper": None,
            "context_window": config.get("context_window"),
            "put_inner_thoughts_in_kwargs": False,
            "handle": f"{provider}/{model_name}" if provider else None,
            "temperature": 0.7,
            "max_tokens": None,
        },
        "embedding_config": None,
        "initial_message_sequence": None,
        "include_base_tools": False,
        "include_multi_agent_tools": False,
        "include_base_tool_rules": False,
        "include_default_source": False,
        "description": f"memgpt_lab agent from preset {agent['preset_name']}"
        if agent["preset_name"]
        else "memgpt_lab agent",
        "metadata": {"memgpt_lab": extras},
        "message_buffer_autoclear": False,
        "timezone": "UTC",
        "id": "agent-0",
        "in_context_message_ids": ["message-0", *(f"message-{uid}" for uid in agent["context"])],
        "messages": letta_messages,
        "files_agents": [],
        "group_ids": [],
    }
    return {
        "agents": [letta_agent],
        "groups": [],
        "blocks": blocks,
        "files": [],
        "sources": [],
        "tools": tools,
        "mcp_servers": [],
        "metadata": {"exported_by": "memgpt_lab"},
        "created_at": datetime.now(UTC).isoformat(),
    }


def _letta_message(
    ident: str, role: str, text: Any, agent: dict[str, Any], created_at: str
) -> dict[str, Any]:
    return {
        "type": "message",
        "role": role,
        "content": [{"type": "text", "text": text, "signature": None}] if text else [],
        "name": None,
        "otid": None,
        "sender_id": None,
        "batch_item_id": None,
        "group_id": None,
        "id": ident,
        "model": agent["model_name"],
        "agent_id": "agent-0",
        "tool_calls": None,
        "tool_call_id": None,
        "tool_returns": [],
        "created_at": created_at,
        "approve": None,
        "approval_request_id": None,
        "denial_reason": None,
        "approvals": [],
    }


def _status_of(content: Any) -> str | None:
    try:
        packet = _json.loads(content) if isinstance(content, str) else None
    except ValueError:
        return None
    return packet.get("status") if isinstance(packet, dict) else None


def _text_of(content: Any) -> str | None:
    """A Letta message's text: its text parts joined (reasoning when there is no text)."""
    if content is None or isinstance(content, str):
        return content
    parts = [p for p in content if isinstance(p, dict)]
    texts = [str(p.get("text")) for p in parts if p.get("type") == "text" and p.get("text")]
    if not texts:
        texts = [
            str(p.get("reasoning") or p.get("text"))
            for p in parts
            if p.get("type") in ("reasoning", "omitted_reasoning")
            and (p.get("reasoning") or p.get("text"))
        ]
    return "\n".join(texts) if texts else None


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = datetime.now(UTC)
    else:
        moment = datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def from_letta(document: dict[str, Any], where: str = "the .af file") -> dict[str, Any]:
    """A Letta Agent File (either shape) as our agent data, under one checkpoint.

    What maps: the system prompt, the persona and human blocks (values and limits),
    the messages (roles, texts, the first tool call, times) and which are in
    context, the functions that exist here by the same name, the model (provider,
    name, endpoint) and context window. What does not is logged and left out:
    other blocks, tools we have no function for, tool rules, sources and files,
    groups, environment variables. Archival passages come back only from our own
    ``.af`` files (Letta's format has no field for them).
    """
    from memgpt_lab.agent import AgentConfig
    from memgpt_lab.functions import DEFAULT_FUNCTIONS
    from memgpt_lab.memory import recall_text

    if "agents" in document:
        agents = document.get("agents") or []
        if not agents:
            raise StorageError(f"{where} holds no agent")
        if len(agents) > 1:
            log.warning("%s holds %d agents; reading the first", where, len(agents))
        agent = agents[0]
        by_id = {b.get("id"): b for b in document.get("blocks") or []}
        blocks = [by_id[i] for i in agent.get("block_ids") or [] if i in by_id]
        blocks += agent.get("memory_blocks") or []
        tools_by_id = {t.get("id"): t for t in document.get("tools") or []}
        tools = [tools_by_id[i] for i in agent.get("tool_ids") or [] if i in tools_by_id]
        tools += agent.get("tools") or []
        messages = agent.get("messages") or []
        ids = [m.get("id") for m in messages]
        in_context = [ids.index(i) for i in agent.get("in_context_message_ids") or [] if i in ids]
    else:
        agent = document
        blocks = agent.get("core_memory") or []
        tools = agent.get("tools") or []
        messages = agent.get("messages") or []
        in_context = [int(i) for i in agent.get("in_context_message_indices") or []]
    found = (agent.get("metadata") or agent.get("metadata_") or {}).get("memgpt_lab")
    extras: dict[str, Any] = found if isinstance(found, dict) else {}
    ours = extras.get("agent")
    ignored = [
        k for k in ("tool_rules", "tool_exec_environment_variables", "source_ids") if agent.get(k)
    ]
    if ignored:
        log.warning("%s: %s have no counterpart here and are left out", where, ", ".join(ignored))

    core: dict[str, str] = {"persona": "", "human": ""}
    limits: dict[str, int] = {}
    for block in blocks:
        label = block.get("label")
        if label in core:
            core[label] = str(block.get("value") or "")
            limits[label] = max(int(block.get("limit") or 0), len(core[label]), 1)
        else:
            log.warning("%s: memory block %r has no counterpart here and is left out", where, label)

    llm = agent.get("llm_config") or {}
    config = asdict(AgentConfig())
    if ours:
        config.update(ours["config"])
    else:
        config["name"] = str(agent.get("name") or "agent")
        if isinstance(llm.get("context_window"), int):
            config["context_window"] = max(256, llm["context_window"])
        for label, limit in limits.items():
            config[f"{label}_char_limit"] = limit
    config = {f.name: config[f.name] for f in fields(AgentConfig)}

    names = [str(t.get("name")) for t in tools if t.get("name")]
    functions = [n for n in names if n in DEFAULT_FUNCTIONS]
    dropped = [n for n in names if n not in DEFAULT_FUNCTIONS]
    if dropped:
        log.warning(
            "%s: tools %s have no function here and are left out", where, ", ".join(dropped)
        )
    if ours:
        functions = list(ours["functions"])
    elif "send_message" not in functions:
        functions.insert(0, "send_message")

    model = ours["model"] if ours else _letta_model(llm)
    context_only = set(extras.get("context_only") or []) if ours else set()
    rows: list[dict[str, Any]] = []
    uid_at: dict[int, int] = {}
    used: set[int] = set()
    top = 0
    root = "imported"
    compiled = in_context[0] if in_context else None
    for index, item in enumerate(messages):
        role = item.get("role")
        if role == "system" and (index == compiled or index not in in_context):
            continue  # the compiled system message: rebuilt here from the prompt and memory
        message = _our_message(item)
        if message is None:
            continue
        uid = _uid_of(item.get("id")) if ours else None
        if uid is None or uid in used:
            uid = top + 1
        used.add(uid)
        top = max(top, uid)
        moment = _timestamp(item.get("created_at"))
        text, said = recall_text(message)
        rows.append(
            {
                "uid": uid,
                "checkpoint_id": root,
                "live": 1,
                "in_recall": int(role != "system" and uid not in context_only),
                "said": int(said),
                "role": str(message.get("role")),
                "created_at": moment.isoformat(),
                "day": moment.date().isoformat(),
                "text": text.lower(),
                "message": message,
            }
        )
        uid_at[index] = uid
    context = [uid_at[index] for index in in_context if index in uid_at]
    now = datetime.now(UTC).isoformat()
    counters = {**COUNTERS, **((ours or {}).get("counters") or {})}
    head = extras.get("head") if ours else None
    head_turn, head_step = (head["turn"], head["step"]) if isinstance(head, dict) else (0, 0)
    if ours:
        agent_row = {**ours, "context": context, "head_checkpoint_id": root}
    else:
        agent_row = {
            "id": uuid.uuid4().hex[:12],
            "name": config["name"],
            "preset_name": None,
            "system_prompt": str(agent.get("system") or ""),
            "config": config,
            "functions": functions,
            "model": model,
            "model_name": str(llm.get("model") or model or "unknown"),
            "embedding": None,
            "core": core,
            "counters": counters,
            "context": context,
            "last_call": None,
            "head_checkpoint_id": root,
            "created_at": str(agent.get("created_at") or now),
            "updated_at": now,
        }
    checkpoint = {
        "id": root,
        "owned": True,
        "parent_id": None,
        "depth": 0,
        "turn": head_turn,
        "step": head_step,
        "label": f"imported from {os.path.basename(where)}",
        "created_at": now,
        "context_set": context,
        "context_add": None,
        "core": agent_row["core"],
        "counters": agent_row["counters"],
    }
    passages = []
    for passage in extras.get("archival") or [] if ours else []:
        passages.append({**passage, "checkpoint_id": root, "live": 1})
    return {
        "format": AGENT_FILE_FORMAT,
        "version": AGENT_FILE_VERSION,
        "agent": agent_row,
        "checkpoints": [checkpoint],
        "messages": rows,
        "archival": passages,
    }


def _uid_of(ident: Any) -> int | None:
    if isinstance(ident, str) and ident.startswith("message-"):
        tail = ident.removeprefix("message-")
        if tail.isdigit():
            return int(tail)
    return None


def _letta_model(llm: dict[str, Any]) -> str | None:
    from memgpt_lab.llm.providers import PROVIDERS

    name = llm.get("model")
    provider = llm.get("provider_name") or llm.get("model_endpoint_type")
    if not isinstance(name, str) or provider not in PROVIDERS:
        return None
    endpoint = llm.get("model_endpoint")
    default = PROVIDERS[provider].base_url
    at = f"@{endpoint}" if isinstance(endpoint, str) and endpoint and endpoint != default else ""
    if provider == "openai" and at == "@https://api.openai.com/v1":
        at = ""
    return f"{provider}:{name}{at}"


def _our_message(item: dict[str, Any]) -> dict[str, Any] | None:
    """A Letta message as ours (OpenAI-style, MemGPT's function_call), or None."""
    role = item.get("role")
    text = _text_of(item.get("content"))
    if role == "assistant":
        message: dict[str, Any] = {"role": "assistant", "content": text}
        calls = item.get("tool_calls") or []
        if calls:
            function = calls[0].get("function") or {}
            arguments = function.get("arguments")
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments or {})
            message["function_call"] = {"name": function.get("name"), "arguments": arguments}
        return message
    if role in ("tool", "function"):
        if text is None:
            returns = item.get("tool_returns") or []
            text = returns[0].get("func_response") if returns else None
        return {"role": "function", "name": item.get("name"), "content": text}
    if role == "user":
        message = {"role": "user", "content": text}
        if item.get("name"):
            message["name"] = item["name"]
        return message
    if role == "system":
        return {"role": "system", "content": text}
    return None
