"""The agent's three memories.

- :class:`CoreMemory`: two small text blocks, ``persona`` and ``human``, always
  in the context window (inside the system message), each with a character limit.
- :class:`RecallMemory`: every message of the conversation, in order, searchable
  by text (substring, case-insensitive) and by date, in pages.
- :class:`ArchivalMemory`: free-form passages the agent chose to keep, searchable
  in pages: ranked by bm25 over words by default, or by embedding when given one.

Recall and archival memory live in SQLite (see :mod:`memgpt_lab.persistence`):
searches run there, through FTS5 indexes. Made on their own (``RecallMemory()``)
they use a private in-memory database, the same engine an agent's store uses.
No clock of their own: timestamps are passed in.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from memgpt_lab.errors import MemoryLimitError, UnknownNameError
from memgpt_lab.messages import sent_text, user_packet

if TYPE_CHECKING:
    from memgpt_lab.persistence.tables import AgentTables

__all__ = [
    "ArchivalMemory",
    "ArchivalPassage",
    "CoreMemory",
    "DEFAULT_CHAR_LIMIT",
    "Page",
    "RecallEntry",
    "RecallMemory",
    "cosine",
    "recall_text",
    "tokenize",
]

DEFAULT_CHAR_LIMIT = 2000

# Letters and digits, as FTS5's unicode61 tokenizer splits words (an underscore separates).
_WORD = re.compile(r"[^\W_]+")
# Words too common to say anything about relevance in a lexical search.
_STOPWORD_TEXT = (
    "a an and are at be but by do for from had has have i in is it me my of on or "
    "so that the their there this to was we were what with you your about"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text`` without stop words: the terms of an archival search."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


class CoreMemory:
    """The persona and human blocks, each limited to a number of characters.

    Edits that would exceed a limit raise :class:`MemoryLimitError` and leave
    the block unchanged; the agent turns that into a failed function response.
    ``observer``, when set, is called after every successful edit (the agent's
    store uses it to keep the block stored).
    """

    FIELDS = ("persona", "human")

    def __init__(
        self,
        persona: str = "",
        human: str = "",
        persona_char_limit: int = DEFAULT_CHAR_LIMIT,
        human_char_limit: int = DEFAULT_CHAR_LIMIT,
    ) -> None:
        self.limits = {"persona": persona_char_limit, "human": human_char_limit}
        self.blocks = {"persona": "", "human": ""}
        self.observer: Callable[[], None] | None = None
        self.set("persona", persona)
        self.set("human", human)

    @property
    def persona(self) -> str:
        return self.blocks["persona"]

    @property
    def human(self) -> str:
        return self.blocks["human"]

    def _check_field(self, name: str) -> None:
        if name not in self.blocks:
            raise UnknownNameError("core memory section", name, self.FIELDS)

    def set(self, name: str, content: str) -> int:
        """Replace a whole block. Returns its new length."""
        self._check_field(name)
        if not isinstance(content, str):
            raise TypeError(f"core memory content must be str, not {type(content).__name__}")
        limit = self.limits[name]
        if len(content) > limit:
            raise MemoryLimitError(
                f"the {name} block would be {len(content)} characters, over its limit of {limit}; "
                "shorten it or move details to archival memory"
            )
        self.blocks[name] = content
        if self.observer is not None:
            self.observer()
        return len(content)

    def append(self, name: str, content: str) -> int:
        """Add a line to a block. Returns the block's new length."""
        self._check_field(name)
        current = self.blocks[name]
        return self.set(name, f"{current}\n{content}" if current else content)

    def replace(self, name: str, old_content: str, new_content: str) -> int:
        """Replace every occurrence of ``old_content`` in a block."""
        self._check_field(name)
        if not old_content:
            raise ValueError("old_content must not be empty")
        current = self.blocks[name]
        if old_content not in current:
            raise ValueError(f"Content not found in {name}: {old_content!r}")
        return self.set(name, current.replace(old_content, new_content))

    def usage(self) -> dict[str, tuple[int, int]]:
        """``{block: (characters used, limit)}``."""
        return {name: (len(text), self.limits[name]) for name, text in self.blocks.items()}

    def render(self) -> str:
        """The blocks as they appear in the system message."""
        return (
            f'<persona characters="{len(self.persona)}/{self.limits["persona"]}">\n'
            f"{self.persona}\n</persona>\n"
            f'<human characters="{len(self.human)}/{self.limits["human"]}">\n'
            f"{self.human}\n</human>"
        )

    def __repr__(self) -> str:
        used = ", ".join(f"{n}={u}/{lim}" for n, (u, lim) in self.usage().items())
        return f"CoreMemory({used})"


@dataclass(frozen=True)
class Page:
    """One page of search results: ``items`` of ``total`` matches, page ``page``."""

    items: list[Any]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))


def _check_page(page: int, page_size: int) -> int:
    if page < 0:
        raise ValueError(f"page must be 0 or more, not {page}")
    if page_size < 1:
        raise ValueError(f"page_size must be 1 or more, not {page_size}")
    return page_size


@dataclass(frozen=True)
class RecallEntry:
    """One message of the conversation, with the time it was stored."""

    timestamp: datetime
    message: dict[str, Any]

    @property
    def text(self) -> str:
        """What was said: a user's words (unpacked from their JSON), the agent's
        ``send_message`` text, or else the message's content."""
        return recall_text(self.message)[0]

    @property
    def said(self) -> bool:
        """True for what the user and the agent said to each other (not thoughts or results)."""
        return recall_text(self.message)[1]


class RecallMemory:
    """Every message of the conversation, searchable. Messages are never dropped.

    Args:
        page_size: results per page.
        tables: where the messages are (an agent's store); by default a private
            in-memory database.
    """

    def __init__(self, page_size: int = 5, *, tables: AgentTables | None = None) -> None:
        self.page_size = page_size
        self._tables = tables if tables is not None else _standalone_tables()

    def __len__(self) -> int:
        return self._tables.recall_count

    def __repr__(self) -> str:
        return f"RecallMemory({len(self)} messages)"

    @property
    def entries(self) -> list[RecallEntry]:
        """Every entry, oldest first (read from the store: for small memories and tests)."""
        return [_entry(row) for row in self._tables.recall_rows()]

    def insert(self, message: dict[str, Any], timestamp: datetime) -> None:
        """Store one message (in a transaction of its own, unless a step is under way)."""
        self.insert_many([message], timestamp)

    def insert_many(self, messages: Iterable[dict[str, Any]], timestamp: datetime) -> None:
        """Store messages in one transaction (a conversation loaded in bulk)."""
        rows = [_recall_row(message, timestamp) for message in messages]
        self._tables.insert_messages(rows, True, f"recall_memory.insert ({len(rows)})")

    def text_search(
        self, query: str, page: int = 0, page_size: int | None = None, said_only: bool = False
    ) -> Page:
        """Entries whose text contains ``query`` (case-insensitive), oldest first.

        ``said_only`` keeps what the user and the agent said to each other.
        """
        size = _check_page(page, self.page_size if page_size is None else page_size)
        total, rows = self._tables.text_search(query.lower(), said_only, page * size, size)
        return Page([_entry(row) for row in rows], total, page, size)

    def date_search(
        self,
        start_date: str | date,
        end_date: str | date,
        page: int = 0,
        page_size: int | None = None,
    ) -> Page:
        """Entries stored on ``start_date`` through ``end_date`` (``YYYY-MM-DD``, inclusive)."""
        start, end = _as_date(start_date), _as_date(end_date)
        if end < start:
            raise ValueError(f"end_date {end} is before start_date {start}")
        size = _check_page(page, self.page_size if page_size is None else page_size)
        total, rows = self._tables.date_search(
            start.isoformat(), end.isoformat(), page * size, size
        )
        return Page([_entry(row) for row in rows], total, page, size)


def recall_text(message: dict[str, Any]) -> tuple[str, bool]:
    """What recall search reads of a message: its text, and whether it was said.

    See :attr:`RecallEntry.text` and :attr:`RecallEntry.said`; both at once,
    reading a ``send_message`` call's arguments once (every stored message
    comes here).
    """
    sent = sent_text(message)
    said = message.get("role") == "user" or sent is not None
    packet = user_packet(message)
    if packet is not None and isinstance(packet.get("message"), str):
        return str(packet["message"]), said
    if sent is not None:
        return sent, said
    content = message.get("content")
    return (content if isinstance(content, str) else ""), said


def _recall_row(
    message: dict[str, Any], timestamp: datetime
) -> tuple[dict[str, Any], datetime, str, bool]:
    text, said = recall_text(message)
    return message, timestamp, text.lower(), said


def _entry(row: tuple[str, str]) -> RecallEntry:
    return RecallEntry(datetime.fromisoformat(row[0]), json.loads(row[1]))


def _standalone_tables() -> AgentTables:
    from memgpt_lab.persistence.tables import standalone_tables

    return standalone_tables()


def _as_date(value: str | date) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise ValueError(f"dates must be written YYYY-MM-DD, not {value!r}") from None


Embedder = Callable[[str], Sequence[float]]


@dataclass
class ArchivalPassage:
    """One passage in archival memory."""

    id: int
    text: str
    timestamp: datetime
    embedding: list[float] | None = field(repr=False, default=None)


class ArchivalMemory:
    """Passages the agent chose to keep, searchable in pages.

    Args:
        embed: optional function from text to a vector; when given, search ranks
            by cosine similarity instead of bm25 over words.
        page_size: results per page.
        tables: where the passages are (an agent's store); by default a private
            in-memory database.
    """

    def __init__(
        self,
        embed: Embedder | None = None,
        page_size: int = 5,
        *,
        tables: AgentTables | None = None,
    ) -> None:
        self.embed = embed
        self.page_size = page_size
        self._tables = tables if tables is not None else _standalone_tables()

    def __len__(self) -> int:
        return self._tables.archival_count

    def __repr__(self) -> str:
        return f"ArchivalMemory({len(self)} passages)"

    @property
    def passages(self) -> list[ArchivalPassage]:
        """Every passage, oldest first (read from the store: for small memories and tests)."""
        return [_passage(row) for row in self._tables.passage_rows()]

    def insert(self, text: str, timestamp: datetime) -> int:
        """Store a passage; returns its id."""
        return self.insert_many([text], timestamp)[0]

    def insert_many(self, texts: Iterable[str], timestamp: datetime) -> list[int]:
        """Store passages (documents, a dataset) in one transaction; returns their ids.

        Raises:
            ValueError: a passage is empty; then none is stored.
        """
        texts = list(texts)
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise ValueError("archival memory passages must not be empty")
        # the embedder may be slow (a remote model): call it before any lock is taken
        vectors = [list(self.embed(text)) for text in texts] if self.embed is not None else None
        label = (
            "archival_memory.insert"
            if len(texts) == 1
            else f"archival_memory.insert_many ({len(texts)})"
        )
        return self._tables.insert_passages(texts, timestamp, vectors, label)

    def search(self, query: str, page: int = 0, page_size: int | None = None) -> Page:
        """Passages relevant to ``query``, best first (ties: oldest first).

        With an embedder: by cosine similarity (those at 0 or below are left out).
        Otherwise by bm25 over the query's words (stop words left out); a query of
        stop words only matches passages that contain it, oldest first.
        """
        size = _check_page(page, self.page_size if page_size is None else page_size)
        tables = self._tables
        if self.embed is not None:
            total, rows = tables.search_passages_by_vector(
                list(self.embed(query)), page * size, size
            )
        else:
            words = list(dict.fromkeys(tokenize(query)))
            if words:
                match = " OR ".join('"' + word.replace('"', '""') + '"' for word in words)
                total, rows = tables.search_passages_ranked(match, page * size, size)
            else:
                needle = query.lower().strip()
                if not needle:
                    return Page([], 0, page, size)
                total, rows = tables.search_passages_containing(needle, page * size, size)
        return Page([_passage(row) for row in rows], total, page, size)


def _passage(row: tuple[int, str, str, bytes | None]) -> ArchivalPassage:
    from memgpt_lab.persistence.database import embedding_values

    seq, text, created_at, blob = row
    return ArchivalPassage(seq, text, datetime.fromisoformat(created_at), embedding_values(blob))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors (0 when either is zero): archival search's score."""
    from memgpt_lab.persistence.database import cosine as _cosine

    return _cosine(a, b)
