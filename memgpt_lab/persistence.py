"""Where an agent keeps its messages and its recall and archival memories.

An agent reads and writes through its persistence manager; the in-memory one
keeps everything in Python objects, for notebooks and tests. A manager must
offer ``messages`` (the in-context list), ``recall_memory``, ``archival_memory``
and the methods below.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from memgpt_lab.memory import ArchivalMemory, Embedder, RecallMemory

__all__ = ["InMemoryStateManager"]

Message = dict[str, Any]


class InMemoryStateManager:
    """Holds an agent's in-context messages, recall memory and archival memory in memory.

    Args:
        embed: optional embedding function for archival search (lexical otherwise).
        page_size: results per page of memory searches.
    """

    def __init__(self, embed: Embedder | None = None, page_size: int = 5) -> None:
        self.messages: list[Message] = []
        self.recall_memory = RecallMemory(page_size=page_size)
        self.archival_memory = ArchivalMemory(embed=embed, page_size=page_size)

    def __repr__(self) -> str:
        return (
            f"InMemoryStateManager(messages={len(self.messages)}, "
            f"recall={len(self.recall_memory)}, archival={len(self.archival_memory)})"
        )

    def append_to_messages(self, added: Iterable[Message], timestamp: datetime) -> None:
        """Add messages to the context and to recall memory (which keeps them for good)."""
        for message in added:
            self.messages.append(message)
            self.recall_memory.insert(message, timestamp)

    def swap_system_message(self, message: Message) -> None:
        """Put a new system message first (the agent rebuilds it when memory changes)."""
        if self.messages:
            self.messages[0] = message
        else:
            self.messages.append(message)

    def replace_messages(self, messages: Iterable[Message]) -> None:
        """Set the in-context list (after summarisation); recall memory is untouched."""
        self.messages[:] = list(messages)
