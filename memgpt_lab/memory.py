"""The agent's three memories.

- :class:`CoreMemory`: two small text blocks, ``persona`` and ``human``, always
  in the context window (inside the system message), each with a character limit.
- :class:`RecallMemory`: every message of the conversation, in order, searchable
  by text and by date, in pages.
- :class:`ArchivalMemory`: free-form passages the agent chose to keep, searchable
  in pages; a lexical search by default, or by embedding when given one.

Pure Python: no I/O, no clock of their own (timestamps are passed in).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from memgpt_lab.errors import MemoryLimitError, UnknownNameError
from memgpt_lab.messages import sent_text, user_packet

__all__ = [
    "ArchivalMemory",
    "ArchivalPassage",
    "CoreMemory",
    "DEFAULT_CHAR_LIMIT",
    "Page",
    "RecallEntry",
    "RecallMemory",
    "tokenize",
]

DEFAULT_CHAR_LIMIT = 2000

_WORD = re.compile(r"[a-z0-9]+")
# Words too common to say anything about relevance in a lexical search.
_STOPWORD_TEXT = (
    "a an and are at be but by do for from had has have i in is it me my of on or "
    "so that the their there this to was we were what with you your about"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text`` without stop words, for lexical search."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


class CoreMemory:
    """The persona and human blocks, each limited to a number of characters.

    Edits that would exceed a limit raise :class:`MemoryLimitError` and leave
    the block unchanged; the agent turns that into a failed function response.
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


def _paginate(items: Sequence[Any], page: int, page_size: int) -> Page:
    if page < 0:
        raise ValueError(f"page must be 0 or more, not {page}")
    if page_size < 1:
        raise ValueError(f"page_size must be 1 or more, not {page_size}")
    start = page * page_size
    return Page(list(items[start : start + page_size]), len(items), page, page_size)


@dataclass(frozen=True)
class RecallEntry:
    """One message of the conversation, with the time it was stored."""

    timestamp: datetime
    message: dict[str, Any]

    @property
    def text(self) -> str:
        """What was said: a user's words (unpacked from their JSON), the agent's
        ``send_message`` text, or else the message's content."""
        packet = user_packet(self.message)
        if packet is not None and isinstance(packet.get("message"), str):
            return str(packet["message"])
        said = sent_text(self.message)
        if said is not None:
            return said
        content = self.message.get("content")
        return content if isinstance(content, str) else ""

    @property
    def said(self) -> bool:
        """True for what the user and the agent said to each other (not thoughts or results)."""
        return self.message.get("role") == "user" or sent_text(self.message) is not None


class RecallMemory:
    """Every message of the conversation, searchable. Messages are never dropped."""

    def __init__(self, page_size: int = 5) -> None:
        self.page_size = page_size
        self.entries: list[RecallEntry] = []

    def __len__(self) -> int:
        return len(self.entries)

    def insert(self, message: dict[str, Any], timestamp: datetime) -> None:
        self.entries.append(RecallEntry(timestamp, message))

    def truncate(self, length: int) -> None:
        """Forget every entry after the first ``length`` (undoing a step that failed)."""
        del self.entries[length:]

    def text_search(
        self, query: str, page: int = 0, page_size: int | None = None, said_only: bool = False
    ) -> Page:
        """Entries whose text contains ``query`` (case-insensitive), oldest first.

        ``said_only`` keeps what the user and the agent said to each other.
        """
        needle = query.lower()
        hits = [e for e in self.entries if needle in e.text.lower() and (not said_only or e.said)]
        return _paginate(hits, page, self.page_size if page_size is None else page_size)

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
        hits = [e for e in self.entries if start <= e.timestamp.date() <= end]
        return _paginate(hits, page, self.page_size if page_size is None else page_size)


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
    tokens: Counter[str] = field(repr=False, default_factory=Counter)
    embedding: Sequence[float] | None = field(repr=False, default=None)


class ArchivalMemory:
    """Passages the agent chose to keep, searchable in pages.

    Args:
        embed: optional function from text to a vector; when given, search ranks
            by cosine similarity instead of word overlap.
        page_size: results per page.
    """

    def __init__(self, embed: Embedder | None = None, page_size: int = 5) -> None:
        self.embed = embed
        self.page_size = page_size
        self.passages: list[ArchivalPassage] = []

    def __len__(self) -> int:
        return len(self.passages)

    def insert(self, text: str, timestamp: datetime) -> int:
        """Store a passage; returns its id."""
        if not text.strip():
            raise ValueError("archival memory passages must not be empty")
        passage = ArchivalPassage(len(self.passages) + 1, text, timestamp, Counter(tokenize(text)))
        if self.embed is not None:
            passage.embedding = list(self.embed(text))
        self.passages.append(passage)
        return passage.id

    def truncate(self, length: int) -> None:
        """Forget every passage after the first ``length`` (undoing a step that failed)."""
        del self.passages[length:]

    def search(self, query: str, page: int = 0, page_size: int | None = None) -> Page:
        """Passages relevant to ``query``, best first (ties: oldest first)."""
        score = self._scorer(query)
        scored = sorted(((score(p), p.id, p) for p in self.passages), key=lambda s: (-s[0], s[1]))
        return _paginate(
            [p for value, _, p in scored if value > 0],
            page,
            self.page_size if page_size is None else page_size,
        )

    def _scorer(self, query: str) -> Callable[[ArchivalPassage], float]:
        if self.embed is not None:
            vector = list(self.embed(query))
            return lambda p: _cosine(vector, p.embedding) if p.embedding is not None else 0.0
        words = set(tokenize(query))
        if not words:  # a query of stop words only: fall back to a substring match
            needle = query.lower().strip()
            return lambda p: float(bool(needle) and needle in p.text.lower())
        return lambda p: sum(1 for w in words if w in p.tokens) / len(words)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
