"""An agent's state in a store: in-context messages, memories, counters, checkpoints.

A :class:`StateManager` holds one agent's rows in a
:class:`~memgpt_lab.persistence.database.Database` and keeps a Python cache of
what is read on every step (the in-context messages, core memory, counters),
written through: after any public call returns, the database holds exactly what
the agent holds.

Changes come in units (:meth:`StateManager.change`). A step is one unit: its
rows are written in one transaction, opened at the first write (after the
model has answered, so no lock is held while a model thinks) and committed at
the end with a checkpoint recording what the step changed. If anything raises,
the transaction rolls back and the cache is read back from the database: the
agent is exactly as before the step. A write made outside a step (an archival
bulk load, a summary made by hand) is a unit, and a checkpoint, of its own;
core memory and counters edited between steps are written to the agent's row
at once and recorded by the next checkpoint.

Checkpoints form a tree of parent links, ids sorting by time. Rows are never
moved or copied when the agent rewinds: each is tagged with the checkpoint that
made it, and ``live`` says whether it is on the current branch, so a rewind
flips the rows of the checkpoints between the two branches, and the abandoned
branch stays reachable until pruned. A checkpoint stores only what its step
changed (the messages added to the context, or the whole context when it was
replaced; core memory and counters when they changed), plus a full snapshot
every :data:`SNAPSHOT_EVERY` levels so that restoring one reads a bounded
number of rows.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memgpt_lab import _json
from memgpt_lab.errors import UnknownNameError
from memgpt_lab.memory import ArchivalMemory, Embedder, RecallMemory, recall_text
from memgpt_lab.persistence.database import Database, StorageError, clean_text, to_json
from memgpt_lab.persistence.tables import AgentTables

if TYPE_CHECKING:
    from memgpt_lab.agent import Agent

__all__ = [
    "COUNTERS",
    "Checkpoint",
    "InMemoryStateManager",
    "SNAPSHOT_EVERY",
    "StateManager",
    "UnknownCheckpointError",
]

log = logging.getLogger(__name__)

Message = dict[str, Any]

#: The counters a checkpoint restores, and their values for a new agent.
COUNTERS: dict[str, Any] = {
    "summaries": 0,
    "alerted_about_memory_pressure": False,
    "heartbeats_paused_minutes": 0,
}

#: A checkpoint at every depth that is a multiple of this holds the whole state.
SNAPSHOT_EVERY = 100


class UnknownCheckpointError(UnknownNameError):
    """A checkpoint id that is not in the agent's history (``agent.checkpoints()`` lists it)."""

    def __init__(self, checkpoint_id: str, agent_id: str, available: Iterable[str]) -> None:
        super().__init__("checkpoint", checkpoint_id, available)
        self.args = (
            f"no checkpoint {checkpoint_id!r} in the history of agent {agent_id!r} "
            f"({len(self.available)} checkpoints; agent.checkpoints() lists them)",
        )


@dataclass(frozen=True)
class Checkpoint:
    """A point in an agent's history: the state after one step (or one change).

    Attributes:
        id: sorts by time (a ULID).
        parent_id: the checkpoint before it; None for an agent's first.
        agent_id: the agent that made it (a fork shares its source's up to the fork).
        turn: the turn (a user's message or another event and the heartbeats after it).
        step: the step in the turn, 1 for the first; 0 for a change outside a step.
        label: what happened: the user's words or the event, and the function called.
        created_at: when (the store's clock).
    """

    id: str
    parent_id: str | None
    agent_id: str | None
    turn: int
    step: int
    label: str
    created_at: datetime


_CHECKPOINT = "c.id, c.parent_id, c.agent_id, c.turn, c.step, c.label, c.created_at"


def _checkpoint(row: Sequence[Any]) -> Checkpoint:
    return Checkpoint(
        row[0], row[1], row[2], row[3], row[4], row[5], datetime.fromisoformat(row[6])
    )


def ancestors_sql(columns: str = "c.id") -> str:
    """SQL for a checkpoint (``?``) and its ancestors, with ``columns`` of each."""
    return (
        "WITH RECURSIVE chain(id) AS (SELECT ? UNION ALL "
        "SELECT p.parent_id FROM checkpoints p JOIN chain ON p.id = chain.id "
        "WHERE p.parent_id IS NOT NULL) "
        f"SELECT {columns} FROM checkpoints c JOIN chain ON c.id = chain.id"
    )


def _chain(conn: Any, start: str, min_depth: int) -> list[tuple[str, int]]:
    """``(id, depth)`` of ``start`` and its ancestors down to ``min_depth``, deepest first."""
    return conn.execute(
        "WITH RECURSIVE chain(id, parent_id, depth) AS ("
        "SELECT id, parent_id, depth FROM checkpoints WHERE id = ? UNION ALL "
        "SELECT c.id, c.parent_id, c.depth FROM checkpoints c JOIN chain ON c.id = chain.parent_id "
        "WHERE c.depth >= ?) SELECT id, depth FROM chain ORDER BY depth DESC",
        (start, min_depth),
    ).fetchall()


def _common_ancestor(
    conn: Any, a: str, a_depth: int, b: str, b_depth: int
) -> tuple[int, list[str], list[str]]:
    """The depth of ``a`` and ``b``'s last common ancestor, and the checkpoints from
    it (excluded) down to ``a`` and to ``b``. Reads a number of rows that grows with
    the distance between them, not with the depth of the tree."""
    chains: list[dict[int, str]] = [{a_depth: a}, {b_depth: b}]
    lowest = [a_depth, b_depth]
    top = min(a_depth, b_depth)
    span = 64
    while True:
        low = max(0, min(lowest) - span)
        for side in (0, 1):
            if lowest[side] > low:
                for ident, depth in _chain(conn, chains[side][lowest[side]], low):
                    chains[side][depth] = ident
                lowest[side] = low
        for depth in range(top, low - 1, -1):
            if depth in chains[0] and chains[0][depth] == chains[1].get(depth):
                return (
                    depth,
                    [i for d, i in chains[0].items() if d > depth],
                    [i for d, i in chains[1].items() if d > depth],
                )
        if low == 0:
            raise StorageError(f"checkpoints {a!r} and {b!r} share no history")
        span *= 2


def state_at(conn: Any, checkpoint_id: str) -> tuple[list[int], dict[str, str], dict[str, Any]]:
    """The in-context message uids, core memory and counters recorded at a checkpoint."""
    depth = conn.execute("SELECT depth FROM checkpoints WHERE id = ?", (checkpoint_id,)).fetchone()
    if depth is None:
        raise StorageError(f"no checkpoint {checkpoint_id!r}")
    floor = (depth[0] // SNAPSHOT_EVERY) * SNAPSHOT_EVERY
    rows = conn.execute(
        "WITH RECURSIVE chain(id, parent_id, depth) AS ("
        "SELECT id, parent_id, depth FROM checkpoints WHERE id = ? UNION ALL "
        "SELECT c.id, c.parent_id, c.depth FROM checkpoints c JOIN chain ON c.id = chain.parent_id "
        "WHERE c.depth >= ?) "
        "SELECT c.context_set, c.context_add, c.core, c.counters FROM chain "
        "JOIN checkpoints c ON c.id = chain.id ORDER BY chain.depth DESC",
        (checkpoint_id, floor),
    ).fetchall()
    base: list[int] | None = None
    added: list[list[int]] = []
    core: dict[str, str] | None = None
    counters: dict[str, Any] | None = None
    for context_set, context_add, core_json, counters_json in rows:
        if base is None:
            if context_set is not None:
                base = json.loads(context_set)
            elif context_add is not None:
                added.append(json.loads(context_add))
        if core is None and core_json is not None:
            core = json.loads(core_json)
        if counters is None and counters_json is not None:
            counters = json.loads(counters_json)
        if base is not None and core is not None and counters is not None:
            break
    if base is None or core is None or counters is None:
        raise StorageError(
            f"checkpoint {checkpoint_id!r} has no snapshot below it: the store is damaged"
        )
    return base + [uid for chunk in reversed(added) for uid in chunk], core, counters


def _ids(values: Iterable[str]) -> str:
    return json.dumps(list(values))


def delete_checkpoints(conn: Any, agent_id: str, candidates: set[str]) -> int:
    """Delete ``candidates`` (checkpoints of ``agent_id``) and the agent's rows tagged with
    them, except those another agent's history still needs (a fork's ancestors)."""
    if not candidates:
        return 0
    protected: set[str] = set()
    heirs = conn.execute(
        "SELECT parent_id FROM checkpoints WHERE parent_id IN (SELECT value FROM json_each(?)) "
        "AND (agent_id IS NULL OR agent_id != ?)",
        (_ids(candidates), agent_id),
    ).fetchall()
    for (parent,) in heirs:
        protected.update(i for (i,) in conn.execute(ancestors_sql(), (parent,)).fetchall())
    doomed = _ids(candidates - protected)
    for table in ("messages", "archival"):
        conn.execute(
            f"DELETE FROM {table} WHERE agent_id = ? "
            "AND checkpoint_id IN (SELECT value FROM json_each(?))",
            (agent_id, doomed),
        )
    return int(
        conn.execute(
            "DELETE FROM checkpoints WHERE id IN (SELECT value FROM json_each(?))", (doomed,)
        ).rowcount
    )


class _Change:
    """One logical change: one transaction (opened at the first write), one checkpoint."""

    def __init__(self, manager: StateManager, label: str, step: bool) -> None:
        self.manager = manager
        self.label = label
        self.step = step
        #: a step that continues its turn (a heartbeat, a warning) rather than starting one
        self.continues = False
        self.checkpoint_id: str | None = None
        self._open = False
        self.created_at: datetime | None = None

    def begin(self) -> str:
        """Open the transaction (once) and return the id of the checkpoint being made."""
        if self.checkpoint_id is None:
            database = self.manager.database
            database.begin()
            self._open = True
            try:
                self.manager._check_head()
            except BaseException:
                self.rollback()
                raise
            self.created_at = database.now()
            self.checkpoint_id = database.new_id(self.created_at)
        return self.checkpoint_id

    def commit(self) -> None:
        if self._open:
            self._open = False
            self.manager.database.commit()

    def rollback(self) -> None:
        if self._open:
            self._open = False
            self.manager.database.rollback()


@dataclass
class _Recorded:
    """What the head checkpoint recorded (the base of the next one's delta)."""

    uids: list[int]
    core: dict[str, str]
    counters: dict[str, Any]


class StateManager:
    """Where an agent keeps its messages, memories and history: one SQLite database.

    Args:
        database: a :class:`Database`, a file path, or ``":memory:"`` (the default).
        embed: optional embedding function for archival search (bm25 over words otherwise).
        page_size: results per page of memory searches.

    A manager holds one agent: :class:`~memgpt_lab.agent.Agent` attaches itself
    when built. Use :class:`~memgpt_lab.persistence.AgentStore` to keep agents in
    a file; an agent's manager is then bound to the store's database.
    """

    def __init__(
        self,
        database: Database | str | os.PathLike[str] = ":memory:",
        *,
        embed: Embedder | None = None,
        page_size: int = 5,
    ) -> None:
        self.database = database if isinstance(database, Database) else Database(database)
        self.embed = embed
        self.page_size = page_size
        self.agent: Agent | None = None
        self.agent_id: str | None = None
        self.messages: list[Message] = []
        self.counters: dict[str, Any] = dict(COUNTERS)
        self.turn = 0
        self.step = 0
        # the uid of each in-context message; None for one not stored yet (a summary's
        # alert, stored when the change commits: no lock is held while a model answers)
        self._uids: list[int | None] = []
        self._pending: dict[int, tuple[Message, datetime]] = {}
        self._stored = False
        self._lock = threading.RLock()
        self._change: _Change | None = None
        self._head: str | None = None
        self._head_depth = 0
        self._recorded = _Recorded([], {}, dict(COUNTERS))
        # what the agent's row holds of core memory and counters (written when they differ)
        self._row: tuple[dict[str, str], dict[str, Any]] = ({}, dict(COUNTERS))
        self._definition: dict[str, Any] = {}
        self._tables: AgentTables | None = None
        self._recall: RecallMemory | None = None
        self._archival: ArchivalMemory | None = None

    @classmethod
    def stored(
        cls,
        database: Database,
        agent_id: str,
        *,
        embed: Embedder | None = None,
        page_size: int = 5,
    ) -> StateManager:
        """A manager for an agent already in ``database`` (attach an Agent to read it)."""
        manager = cls(database, embed=embed, page_size=page_size)
        manager.agent_id = agent_id
        manager._stored = True
        return manager

    def __repr__(self) -> str:
        if self._tables is None:
            return f"{type(self).__name__}(unattached, {self.database!r})"
        return (
            f"{type(self).__name__}(agent={self.agent_id!r}, messages={len(self.messages)}, "
            f"recall={self._tables.recall_count}, archival={self._tables.archival_count})"
        )

    # --- the memories ---------------------------------------------------------------

    @property
    def recall_memory(self) -> RecallMemory:
        if self._recall is None:
            raise StorageError(
                "this persistence manager holds no agent yet: build an Agent with it"
            )
        return self._recall

    @property
    def archival_memory(self) -> ArchivalMemory:
        if self._archival is None:
            raise StorageError(
                "this persistence manager holds no agent yet: build an Agent with it"
            )
        return self._archival

    @property
    def checkpoint_id(self) -> str | None:
        """The head checkpoint: the last step (or change) stored."""
        return self._head

    # --- attaching --------------------------------------------------------------------

    def attach(self, agent: Agent) -> None:
        """Hold ``agent``: store it (a new agent) or read it back (a stored one).

        Raises:
            ValueError: the manager already holds another agent.
            StorageError: a new agent whose id is already in the store.
        """
        with self._lock:
            if self.agent is not None and self.agent is not agent:
                raise ValueError(
                    f"this persistence manager already holds agent {self.agent_id!r}; "
                    "give each agent its own"
                )
            self.agent = agent
            if self._stored:
                assert self.agent_id is not None
                self._tables = AgentTables(self.database, self.agent_id, self._write)
                self._read_head()
            else:
                if self.messages[1:]:
                    raise ValueError("a new agent's persistence manager must hold no messages")
                self.agent_id = agent.id
                self._create(agent)
                self._tables = AgentTables(self.database, self.agent_id, self._write)
                self._stored = True
            self._recall = RecallMemory(self.page_size, tables=self._tables)
            self._archival = ArchivalMemory(self.embed, self.page_size, tables=self._tables)
            agent.memory.observer = self.core_changed

    def _create(self, agent: Agent) -> None:
        database = self.database
        definition = agent._definition()
        core = dict(agent.memory.blocks)
        now = database.now()
        root = database.new_id(now)
        with database.transaction() as conn:
            if conn.execute("SELECT 1 FROM agents WHERE id = ?", (agent.id,)).fetchone():
                raise StorageError(
                    f"the store already holds an agent with id {agent.id!r}; give this one "
                    "another id"
                )
            conn.execute(
                "INSERT INTO agents(id, name, preset_name, system_prompt, config, functions, "
                "model, model_name, embedding, core, counters, context, last_call, "
                "head_checkpoint_id, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', NULL, ?, ?, ?)",
                (
                    agent.id,
                    *definition.values(),
                    to_json(core),
                    to_json(self.counters),
                    root,
                    now.isoformat(),
                    now.isoformat(),
                ),
            )
            conn.execute(
                "INSERT INTO checkpoints(id, agent_id, parent_id, depth, turn, step, label, "
                "created_at, context_set, context_add, core, counters) "
                "VALUES (?, ?, NULL, 0, 0, 0, 'created', ?, '[]', NULL, ?, ?)",
                (root, agent.id, now.isoformat(), to_json(core), to_json(self.counters)),
            )
        self._head, self._head_depth = root, 0
        self._recorded = _Recorded([], core, dict(self.counters))
        self._row = (core, dict(self.counters))
        self._definition = definition

    def _read_head(self) -> None:
        """Read the agent's head state from its row (attach, and after a failed change)."""
        assert self.agent is not None and self._tables is not None
        with self.database.read() as conn:
            row = conn.execute(
                "SELECT core, counters, context, last_call, head_checkpoint_id, name, "
                "preset_name, system_prompt, config, functions, model, model_name, embedding "
                "FROM agents WHERE id = ?",
                (self.agent_id,),
            ).fetchone()
            if row is None:
                raise StorageError(f"the store holds no agent {self.agent_id!r}")
            head = conn.execute(
                "SELECT depth, turn, step FROM checkpoints WHERE id = ?", (row[4],)
            ).fetchone()
            recorded = state_at(conn, row[4])
        core, counters, uids = json.loads(row[0]), json.loads(row[1]), json.loads(row[2])
        self._tables.refresh()
        messages = self._tables.messages_by_uid(uids)
        system = self.messages[0] if self.messages else {"role": "system", "content": ""}
        self.messages[:] = [system, *messages]
        self._uids = list(uids)
        self._pending = {}
        self.counters = {**COUNTERS, **counters}
        self._head = row[4]
        self._head_depth, self.turn, self.step = head
        self._recorded = _Recorded(*recorded)
        self._row = (dict(core), dict(self.counters))
        self._definition = dict(
            zip(
                (
                    "name",
                    "preset_name",
                    "system_prompt",
                    "config",
                    "functions",
                    "model",
                    "model_name",
                    "embedding",
                ),
                row[5:],
                strict=True,
            )
        )
        self.agent.memory.blocks.update(core)
        self.agent._set_usage_state(json.loads(row[3]) if row[3] else None)

    def _check_head(self) -> None:
        """Refuse to write over changes another writer (process, or a second copy) made."""
        row = self.database.conn.execute(
            "SELECT head_checkpoint_id FROM agents WHERE id = ?", (self.agent_id,)
        ).fetchone()
        if row is None:
            raise StorageError(f"agent {self.agent_id!r} is no longer in the store")
        if row[0] != self._head:
            raise StorageError(
                f"agent {self.agent_id!r} was changed by another writer since it was loaded "
                f"(its head is {row[0]!r}, this copy's is {self._head!r}); load it again"
            )

    def _require_attached(self) -> None:
        if self._tables is None or self.agent is None:
            raise StorageError(
                "this persistence manager holds no agent yet: build an Agent with it"
            )

    # --- units of change ------------------------------------------------------------------

    @contextmanager
    def change(self, label: str = "", *, step: bool = False) -> Iterator[_Change]:
        """One logical change: its writes are one transaction and make one checkpoint.

        Nested calls join the change under way. If the body raises, the transaction
        rolls back and the agent's state is read back from the database.
        """
        with self._lock:
            if self._change is not None:
                yield self._change
                return
            self._require_attached()
            change = _Change(self, label, step)
            self._change = change
            try:
                yield change
                self._record(change)
                change.commit()
            except BaseException:
                change.rollback()
                self._change = None
                try:
                    self._read_head()
                    assert self.agent is not None
                    self.agent._after_reload()
                except Exception:  # the original error matters more; this one is logged
                    log.exception(
                        "could not read agent %r back after a failed change", self.agent_id
                    )
                raise
            finally:
                self._change = None

    @contextmanager
    def _write(self, label: str) -> Iterator[str | None]:
        """The tables' ``writes``: join (or make) a change and tag rows with its checkpoint.
        A savepoint around the write undoes it alone if it fails."""
        with self.change(label) as change:
            checkpoint_id = change.begin()
            with self.database.transaction():
                yield checkpoint_id

    def _record(self, change: _Change) -> None:
        """Write the checkpoint of ``change`` and the agent's head row (before COMMIT)."""
        assert self.agent is not None and self._tables is not None
        if None in self._uids:
            self._store_pending(change)
        core = dict(self.agent.memory.blocks)
        recorded = self._recorded
        uids = [uid for uid in self._uids if uid is not None]
        dirty = uids != recorded.uids or core != recorded.core or self.counters != recorded.counters
        if not change.step and change.checkpoint_id is None and not dirty:
            return  # nothing happened
        checkpoint_id = change.begin()
        assert change.created_at is not None
        depth = self._head_depth + 1
        snapshot = depth % SNAPSHOT_EVERY == 0
        if change.step:
            turn, step = (
                (self.turn, self.step + 1) if change.continues and self.turn else (self.turn + 1, 1)
            )
        else:
            turn, step = self.turn, 0
        context_set = context_add = None
        if snapshot or uids[: len(recorded.uids)] != recorded.uids:
            context_set = json.dumps(uids)
        elif len(uids) > len(recorded.uids):
            context_add = json.dumps(uids[len(recorded.uids) :])
        conn = self.database.conn
        conn.execute(
            "INSERT INTO checkpoints(id, agent_id, parent_id, depth, turn, step, label, "
            "created_at, context_set, context_add, core, counters) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                checkpoint_id,
                self.agent_id,
                self._head,
                depth,
                turn,
                step,
                clean_text(change.label or "change"),
                change.created_at.isoformat(),
                context_set,
                context_add,
                to_json(core) if snapshot or core != recorded.core else None,
                to_json(self.counters) if snapshot or self.counters != recorded.counters else None,
            ),
        )
        usage = self.agent._usage_state()
        definition = self.agent._definition()
        if definition != self._definition:
            conn.execute(
                "UPDATE agents SET name = ?, preset_name = ?, system_prompt = ?, config = ?, "
                "functions = ?, model = ?, model_name = ?, embedding = ? WHERE id = ?",
                (*definition.values(), self.agent_id),
            )
        conn.execute(
            "UPDATE agents SET context = ?, last_call = ?, head_checkpoint_id = ?, "
            "updated_at = ? WHERE id = ?",
            (
                json.dumps(uids),
                None if usage is None else to_json(usage),
                checkpoint_id,
                change.created_at.isoformat(),
                self.agent_id,
            ),
        )
        if core != self._row[0]:
            conn.execute("UPDATE agents SET core = ? WHERE id = ?", (to_json(core), self.agent_id))
        if self.counters != self._row[1]:
            conn.execute(
                "UPDATE agents SET counters = ? WHERE id = ?",
                (to_json(self.counters), self.agent_id),
            )
        # the Python side moves on only once the rows are in (COMMIT follows at once)
        self._head, self._head_depth, self.turn, self.step = checkpoint_id, depth, turn, step
        self._recorded = _Recorded(list(uids), core, dict(self.counters))
        self._row = (core, dict(self.counters))
        self._definition = definition

    def _store_pending(self, change: _Change) -> None:
        """Store the in-context messages that have no row yet (context only, not recall)."""
        assert self._tables is not None
        pending = [
            (index, message)
            for index, (message, uid) in enumerate(zip(self.messages[1:], self._uids, strict=True))
            if uid is None
        ]
        rows = []
        for _, message in pending:
            text, said = recall_text(message)
            timestamp = self._pending.get(id(message), (message, self.database.now()))[1]
            rows.append((message, timestamp, text.lower(), said))
        uids = self._tables.insert_messages(rows, False, "context")
        for (index, _), uid in zip(pending, uids, strict=True):
            self._uids[index] = uid
        self._pending = {}

    # --- head state written through ------------------------------------------------------

    def _write_head(self, column: str, value: str) -> None:
        """Outside a change: store one column of the agent's row now (no checkpoint;
        the next one records it)."""
        with self.database.transaction() as conn:
            self._check_head()
            conn.execute(
                f"UPDATE agents SET {column} = ?, updated_at = ? WHERE id = ?",
                (value, self.database.now().isoformat(), self.agent_id),
            )

    def core_changed(self) -> None:
        """Core memory was edited (the CoreMemory's observer)."""
        with self._lock:
            if self._change is None and self.agent is not None and self._tables is not None:
                core = dict(self.agent.memory.blocks)
                self._write_head("core", to_json(core))
                self._row = (core, self._row[1])

    def set_counter(self, name: str, value: Any) -> None:
        """Set one of :data:`COUNTERS`, stored at once outside a step."""
        with self._lock:
            if self.counters.get(name) == value and name in self.counters:
                return
            self.counters[name] = value
            if self._change is None and self._tables is not None:
                self._write_head("counters", to_json(self.counters))
                self._row = (self._row[0], dict(self.counters))

    def sync_definition(self) -> None:
        """Store what the agent is (config, prompt, functions, model) if it changed."""
        with self._lock, self.database.transaction() as conn:
            assert self.agent is not None
            definition = self.agent._definition()
            if definition != self._definition:
                self._check_head()
                conn.execute(
                    "UPDATE agents SET name = ?, preset_name = ?, system_prompt = ?, config = ?, "
                    "functions = ?, model = ?, model_name = ?, embedding = ? WHERE id = ?",
                    (*definition.values(), self.agent_id),
                )
                self._definition = definition

    # --- the context, as MemGPT's managers offered it -----------------------------------

    def append_to_messages(self, added: Iterable[Message], timestamp: datetime) -> None:
        """Add messages to the context and to recall memory (which keeps them for good)."""
        added = list(added)
        if not added:
            return
        self._require_attached()
        assert self._tables is not None
        rows = []
        for message in added:
            text, said = recall_text(message)
            rows.append((message, timestamp, text.lower(), said))
        with self.change("messages"):
            uids = self._tables.insert_messages(rows, True, "messages")
            self.messages.extend(added)
            self._uids.extend(uids)

    def swap_system_message(self, message: Message) -> None:
        """Put a new system message first (the agent rebuilds it when memory changes;
        it is not stored: it is made from the rest)."""
        if self.messages:
            self.messages[0] = message
        else:
            self.messages.append(message)

    def replace_messages(self, messages: Iterable[Message]) -> None:
        """Set the in-context list, the system message first (after summarisation);
        recall memory is untouched. Messages not in context yet (a summary's alert)
        are stored as context-only messages when the change commits."""
        new = list(messages)
        self._require_attached()
        assert self.agent is not None
        known = list(zip(self.messages[1:], self._uids, strict=True))
        by_identity = {id(m): uid for m, uid in known}
        uids: list[int | None] = []
        pending: dict[int, tuple[Message, datetime]] = {}
        for message in new[1:]:
            if id(message) in by_identity:
                uid = by_identity[id(message)]
            else:
                uid = next((u for m, u in known if u is not None and m == message), None)
            if uid is None:
                previous = self._pending.get(id(message))
                pending[id(message)] = previous or (message, self.database.now())
            uids.append(uid)
        with self.change("context replaced"):
            self.messages[:] = new
            self._uids = uids
            self._pending = pending

    # --- history ------------------------------------------------------------------------

    def checkpoints(self) -> list[Checkpoint]:
        """The agent's checkpoints, oldest first: its own (every branch) and, for a fork,
        those of its source up to the fork."""
        self._require_attached()
        with self.database.read() as conn:
            own = conn.execute(
                f"SELECT {_CHECKPOINT} FROM checkpoints c WHERE c.agent_id = ? ORDER BY c.id",
                (self.agent_id,),
            ).fetchall()
            inherited = self._inherited(conn)
        found = {row[0]: _checkpoint(row) for row in [*own, *inherited]}
        return [found[key] for key in sorted(found)]

    def _inherited(self, conn: Any) -> list[Any]:
        root = conn.execute(
            "SELECT parent_id FROM checkpoints WHERE agent_id = ? ORDER BY depth LIMIT 1",
            (self.agent_id,),
        ).fetchone()
        if root is None or root[0] is None:
            return []
        return conn.execute(ancestors_sql(_CHECKPOINT), (root[0],)).fetchall()

    def _reachable(self, conn: Any, checkpoint_id: str) -> tuple[int, int, int]:
        """``(depth, turn, step)`` of a checkpoint in this agent's history.

        Raises:
            UnknownCheckpointError: it is not.
        """
        row = conn.execute(
            "SELECT agent_id, depth, turn, step FROM checkpoints WHERE id = ?", (checkpoint_id,)
        ).fetchone()
        if row is not None and (
            row[0] == self.agent_id or any(r[0] == checkpoint_id for r in self._inherited(conn))
        ):
            return row[1], row[2], row[3]
        known = [c.id for c in self.checkpoints()]
        raise UnknownCheckpointError(checkpoint_id, str(self.agent_id), known)

    def rewind(self, checkpoint_id: str) -> None:
        """Make ``checkpoint_id`` the head: every memory as it was then. The later
        checkpoints stay, as a branch, until :meth:`prune`.

        Raises:
            UnknownCheckpointError: not a checkpoint of this agent's history.
        """
        with self._lock:
            self._require_attached()
            if self._change is not None:
                raise StorageError("cannot rewind in the middle of a step")
            assert self._head is not None
            with self.database.transaction() as conn:
                self._check_head()
                depth, turn, step = self._reachable(conn, checkpoint_id)
                _, undo, redo = _common_ancestor(
                    conn, self._head, self._head_depth, checkpoint_id, depth
                )
                for live, ids in ((0, undo), (1, redo)):
                    for table in ("messages", "archival"):
                        conn.execute(
                            f"UPDATE {table} SET live = ? WHERE agent_id = ? "
                            "AND checkpoint_id IN (SELECT value FROM json_each(?))",
                            (live, self.agent_id, _ids(ids)),
                        )
                uids, core, counters = state_at(conn, checkpoint_id)
                conn.execute(
                    "UPDATE agents SET core = ?, counters = ?, context = ?, last_call = NULL, "
                    "head_checkpoint_id = ?, updated_at = ? WHERE id = ?",
                    (
                        to_json(core),
                        to_json({**COUNTERS, **counters}),
                        json.dumps(uids),
                        checkpoint_id,
                        self.database.now().isoformat(),
                        self.agent_id,
                    ),
                )
            self._after_move(checkpoint_id)

    def _after_move(self, checkpoint_id: str) -> None:
        """Read the head back after the database moved it (rewind, save)."""
        assert self.agent is not None
        self._head = checkpoint_id
        self._read_head()
        self.agent._after_reload()

    def prune(self) -> int:
        """Delete the checkpoints (and their rows) that are not on the way to the head:
        abandoned branches. A fork's history is kept. Returns how many were deleted."""
        with self._lock:
            self._require_attached()
            with self.database.transaction() as conn:
                self._check_head()
                keep = {i for (i,) in conn.execute(ancestors_sql(), (self._head,)).fetchall()}
                own = {
                    i
                    for (i,) in conn.execute(
                        "SELECT id FROM checkpoints WHERE agent_id = ?", (self.agent_id,)
                    ).fetchall()
                }
                return delete_checkpoints(conn, str(self.agent_id), own - keep)

    def last_user_step(self) -> tuple[str, Message] | None:
        """The latest checkpoint on the way to the head that began with a user's message,
        with that message: what :meth:`Agent.retry` runs again."""
        self._require_attached()
        with self.database.read() as conn:
            rows = conn.execute(
                ancestors_sql("c.id, c.parent_id, c.depth")
                + " WHERE c.step = 1 AND c.parent_id IS NOT NULL ORDER BY c.depth DESC",
                (self._head,),
            ).fetchall()
            for checkpoint_id, parent_id, _ in rows:
                first = conn.execute(
                    "SELECT message FROM messages WHERE agent_id = ? AND checkpoint_id = ? "
                    "ORDER BY uid LIMIT 1",
                    (self.agent_id, checkpoint_id),
                ).fetchone()
                if first is None:
                    continue
                message = json.loads(first[0])
                if _is_users_words(message):
                    return parent_id, message
        return None

    def fork(
        self, checkpoint_id: str | None, new_id: str, definition: dict[str, Any]
    ) -> StateManager:
        """A new agent in the same database whose history is this one's up to
        ``checkpoint_id`` (the head by default): the rows on the way there are copied,
        the checkpoints shared. Returns its manager (attach an Agent to it)."""
        with self._lock:
            self._require_attached()
            source = checkpoint_id or self._head
            assert source is not None
            database = self.database
            with database.transaction() as conn:
                depth, turn, step = self._reachable(conn, source)
                if conn.execute("SELECT 1 FROM agents WHERE id = ?", (new_id,)).fetchone():
                    raise StorageError(f"the store already holds an agent with id {new_id!r}")
                uids, core, counters = state_at(conn, source)
                label = conn.execute(
                    "SELECT label FROM checkpoints WHERE id = ?", (source,)
                ).fetchone()[0]
                path = _ids(i for (i,) in conn.execute(ancestors_sql(), (source,)).fetchall())
                now = database.now()
                root = database.new_id(now)
                counters = {**COUNTERS, **counters}
                conn.execute(
                    "INSERT INTO agents(id, name, preset_name, system_prompt, config, functions, "
                    "model, model_name, embedding, core, counters, context, last_call, "
                    "head_checkpoint_id, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                    (
                        new_id,
                        *definition.values(),
                        to_json(core),
                        to_json(counters),
                        json.dumps(uids),
                        root,
                        now.isoformat(),
                        now.isoformat(),
                    ),
                )
                conn.execute(
                    "INSERT INTO messages(agent_id, uid, checkpoint_id, live, in_recall, said, "
                    "role, created_at, day, text, message) "
                    "SELECT ?, uid, checkpoint_id, 1, in_recall, said, role, created_at, day, "
                    "text, message FROM messages WHERE agent_id = ? "
                    "AND checkpoint_id IN (SELECT value FROM json_each(?)) ORDER BY id",
                    (new_id, self.agent_id, path),
                )
                conn.execute(
                    "INSERT INTO archival(agent_id, seq, checkpoint_id, live, created_at, text, "
                    "embedding) SELECT ?, seq, checkpoint_id, 1, created_at, text, embedding "
                    "FROM archival WHERE agent_id = ? "
                    "AND checkpoint_id IN (SELECT value FROM json_each(?)) ORDER BY id",
                    (new_id, self.agent_id, path),
                )
                conn.execute(
                    "INSERT INTO checkpoints(id, agent_id, parent_id, depth, turn, step, label, "
                    "created_at, context_set, context_add, core, counters) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                    (
                        root,
                        new_id,
                        source,
                        depth + 1,
                        turn,
                        step,
                        clean_text(f"fork of {self.agent_id} at: {label}"),
                        now.isoformat(),
                        json.dumps(uids),
                        to_json(core),
                        to_json(counters),
                    ),
                )
        return StateManager.stored(database, new_id, embed=self.embed, page_size=self.page_size)


def _is_users_words(message: Message) -> bool:
    """A user's message (not a heartbeat, login or alert)."""
    if message.get("role") != "user":
        return False
    content = message.get("content")
    try:
        packet = _json.loads(content) if isinstance(content, str) else None
    except ValueError:
        return True
    return not isinstance(packet, dict) or packet.get("type", "user_message") == "user_message"


class InMemoryStateManager(StateManager):
    """A :class:`StateManager` on a private in-memory database (the default for agents).

    The same engine as a file: only the database lives in memory.

    Args:
        embed: optional embedding function for archival search (bm25 over words otherwise).
        page_size: results per page of memory searches.
    """

    def __init__(self, embed: Embedder | None = None, page_size: int = 5) -> None:
        super().__init__(":memory:", embed=embed, page_size=page_size)
