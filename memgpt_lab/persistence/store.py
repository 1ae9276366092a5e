"""AgentStore: agents kept in one SQLite file (or in memory), saved, loaded, listed, deleted.

::

    store = AgentStore("agents.db")
    store.save(agent)            # from now on every step of agent commits to the file
    ...                          # a kernel restart later:
    agent = store.load("sam", interface=interface)

An agent made with :func:`~memgpt_lab.presets.create_agent_from_preset` lives in a
private in-memory database; :meth:`AgentStore.save` copies it, with its whole
history, into the store and binds it there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memgpt_lab import system
from memgpt_lab.errors import UnknownNameError
from memgpt_lab.memory import Embedder
from memgpt_lab.persistence.agent_file import dump_agent, restore_agent
from memgpt_lab.persistence.database import Database, StorageError
from memgpt_lab.persistence.manager import StateManager, delete_checkpoints

if TYPE_CHECKING:
    from memgpt_lab.agent import Agent
    from memgpt_lab.interface import AgentInterface
    from memgpt_lab.llm.base import ChatModel

__all__ = ["AgentStore", "StoredAgent"]


@dataclass(frozen=True)
class StoredAgent:
    """One agent in a store, as :meth:`AgentStore.list` shows it."""

    id: str
    name: str
    preset_name: str | None
    model: str | None
    created_at: datetime
    updated_at: datetime


class AgentStore:
    """Agents in one SQLite database: a file (WAL, crash-safe) or ``":memory:"``.

    Args:
        path: the file (created if missing), or ``":memory:"``.
        durable: survive a power cut too, not only a crash (``synchronous=FULL``; slower).
        clock: the time of checkpoints.

    Raises:
        StorageError: the file is from a newer release, or not a memgpt_lab store.

    Agents share the store's one connection (guarded by a lock): use them from any
    thread. Close the store (or use it as a context manager) when done.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        durable: bool = False,
        clock: system.Clock = system.system_clock,
    ) -> None:
        self.database = Database(path, durable=durable, clock=clock)
        self.path = self.database.path

    def __repr__(self) -> str:
        return f"AgentStore({self.path!r})"

    def __enter__(self) -> AgentStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file; agents bound to the store can no longer step."""
        self.database.close()

    # --- agents -------------------------------------------------------------------------

    def save(self, agent: Agent) -> Agent:
        """Store ``agent`` (with its history) and bind it here: every later step commits
        to this store. Saving an agent that is already here stores its settings again.
        Returns the agent.

        Raises:
            StorageError: the store holds another agent with the same id.
        """
        with agent._lock:
            manager = agent.persistence_manager
            if manager.database is self.database:
                manager.sync_definition()
                return agent
            manager.sync_definition()
            assert manager.agent_id is not None
            restore_agent(self.database, dump_agent(manager.database, manager.agent_id))
            agent._rebind(
                StateManager.stored(
                    self.database,
                    manager.agent_id,
                    embed=manager.embed,
                    page_size=manager.page_size,
                )
            )
        return agent

    def load(
        self,
        id_or_name: str,
        interface: AgentInterface | None = None,
        model: ChatModel | str | None = None,
        *,
        clock: system.Clock = system.system_clock,
        embed: Embedder | None = None,
        page_size: int = 5,
    ) -> Agent:
        """The stored agent ``id_or_name``, bound to this store.

        Args:
            id_or_name: its id, or its name when no other agent has that name.
            interface: its observer.
            model: the model; by default the one it was saved with (its model string).
            clock: timestamps from now on.
            embed: the embedding function, if it was saved with one.
            page_size: results per page of memory searches.

        Raises:
            UnknownNameError: no agent of that id or name.
            StorageError: a name several agents have; or a model that cannot be rebuilt
                from a string (a replayed or custom model) and no ``model`` given.
        """
        from memgpt_lab.agent import Agent

        agent_id = self._resolve(id_or_name)
        manager = StateManager.stored(self.database, agent_id, embed=embed, page_size=page_size)
        return Agent._from_manager(manager, interface=interface, model=model, clock=clock)

    def list(self) -> list[StoredAgent]:
        """The agents in the store, oldest first."""
        with self.database.read() as conn:
            rows = conn.execute(
                "SELECT id, name, preset_name, model, created_at, updated_at FROM agents "
                "ORDER BY created_at, id"
            ).fetchall()
        return [
            StoredAgent(
                r[0], r[1], r[2], r[3], datetime.fromisoformat(r[4]), datetime.fromisoformat(r[5])
            )
            for r in rows
        ]

    def delete(self, id_or_name: str) -> None:
        """Delete an agent, its messages, passages and checkpoints (those a fork of it
        still needs are kept, as the fork's history).

        Raises:
            UnknownNameError, StorageError: as :meth:`load`.
        """
        agent_id = self._resolve(id_or_name)
        with self.database.transaction() as conn:
            conn.execute("UPDATE agents SET head_checkpoint_id = NULL WHERE id = ?", (agent_id,))
            own = {
                i
                for (i,) in conn.execute(
                    "SELECT id FROM checkpoints WHERE agent_id = ?", (agent_id,)
                ).fetchall()
            }
            delete_checkpoints(conn, agent_id, own)
            conn.execute("DELETE FROM agents WHERE id = ?", (agent_id,))

    def __contains__(self, id_or_name: object) -> bool:
        if not isinstance(id_or_name, str):
            return False
        try:
            self._resolve(id_or_name)
        except (UnknownNameError, StorageError):
            return False
        return True

    def _resolve(self, id_or_name: str) -> str:
        with self.database.read() as conn:
            if conn.execute("SELECT 1 FROM agents WHERE id = ?", (id_or_name,)).fetchone():
                return id_or_name
            named = [
                r[0] for r in conn.execute("SELECT id FROM agents WHERE name = ?", (id_or_name,))
            ]
            if len(named) == 1:
                return str(named[0])
            if named:
                raise StorageError(
                    f"{len(named)} agents are named {id_or_name!r} (ids {', '.join(named)}); "
                    "load one by its id"
                )
            known: list[Any] = [
                name for row in conn.execute("SELECT id, name FROM agents") for name in row
            ]
        raise UnknownNameError("agent", id_or_name, sorted(set(known)))
