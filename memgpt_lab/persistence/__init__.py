"""Where agents keep their state: one SQLite engine, in memory or in a file.

- :class:`AgentStore`: agents in a file (or ``":memory:"``): ``save``, ``load``,
  ``list``, ``delete``. Every step of a stored agent is one transaction.
- :class:`StateManager`: one agent's messages, memories and checkpoints in a
  :class:`Database`; :class:`InMemoryStateManager` is one on a private in-memory
  database (every agent's default: the same engine, only not on disk).
- :class:`Checkpoint`: a point in an agent's history (see ``Agent.checkpoints()``,
  ``rewind``, ``retry``, ``fork``).
- Agent files: ``Agent.export`` / ``Agent.import_file`` (our versioned JSON, or
  Letta's ``.af``); :mod:`memgpt_lab.persistence.agent_file`.

Names are imported on first use (the memory module and this package need each other).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "AgentStore": "memgpt_lab.persistence.store",
    "Checkpoint": "memgpt_lab.persistence.manager",
    "Database": "memgpt_lab.persistence.database",
    "InMemoryStateManager": "memgpt_lab.persistence.manager",
    "SCHEMA_VERSION": "memgpt_lab.persistence.database",
    "StateManager": "memgpt_lab.persistence.manager",
    "StorageError": "memgpt_lab.persistence.database",
    "StoredAgent": "memgpt_lab.persistence.store",
    "UnknownCheckpointError": "memgpt_lab.persistence.manager",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memgpt_lab.persistence' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from memgpt_lab.persistence.database import SCHEMA_VERSION as SCHEMA_VERSION
    from memgpt_lab.persistence.database import Database as Database
    from memgpt_lab.persistence.database import StorageError as StorageError
    from memgpt_lab.persistence.manager import Checkpoint as Checkpoint
    from memgpt_lab.persistence.manager import InMemoryStateManager as InMemoryStateManager
    from memgpt_lab.persistence.manager import StateManager as StateManager
    from memgpt_lab.persistence.manager import UnknownCheckpointError as UnknownCheckpointError
    from memgpt_lab.persistence.store import AgentStore as AgentStore
    from memgpt_lab.persistence.store import StoredAgent as StoredAgent
