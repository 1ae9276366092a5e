"""Persistence figures: archival and recall at a million rows, steps on a file, checkpoints.

"Before" is the archival search this package had until the SQLite store: a scan of
every passage in Python, scoring word overlap. It is kept here, verbatim in what
it computes, to be measured in the same run (at 200,000 passages, where a query
still finishes in about a second); the store is measured on the same corpus.

The corpus: passages of 12 content words (pseudo-words of 2 to 4 syllables, drawn
from a Zipf distribution over 30,000 words, the most common ones left out as stop
words would be) with stop words between them, about 110 characters; queries of
one to three content words from the same distribution. Files live in a temporary
directory, deleted at the end.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import Result, best_rate
from memgpt_lab import system
from memgpt_lab.functions import archival_memory_search, conversation_search
from memgpt_lab.memory import ArchivalMemory, tokenize
from memgpt_lab.persistence import AgentStore
from memgpt_lab.presets import create_agent_from_preset

PASSAGES = 1_000_000
MESSAGES = 1_000_000
BEFORE_PASSAGES = 200_000
BATCH = 100_000
QUERIES = 300
BEFORE_QUERIES = 5
STEPS = 2_000
CHECKPOINT_STEPS = 1_000

_STOP = [
    "a",
    "an",
    "and",
    "are",
    "at",
    "be",
    "but",
    "by",
    "do",
    "for",
    "from",
    "had",
    "has",
    "have",
    "i",
    "in",
    "is",
    "it",
    "me",
    "my",
    "of",
    "on",
    "or",
    "so",
    "that",
    "the",
    "their",
    "there",
    "this",
    "to",
    "was",
    "we",
    "were",
    "what",
    "with",
    "you",
    "your",
    "about",
]
MOMENT = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


class _Words:
    """A Zipf vocabulary of pseudo-words, deterministic."""

    def __init__(self, seed: int = 7, size: int = 30_000, skip: int = 200) -> None:
        rng = random.Random(seed)
        syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
        words: set[str] = set()
        while len(words) < size:
            words.add("".join(rng.choices(syllables, k=rng.randint(2, 4))))
        self.words = sorted(words)
        rng.shuffle(self.words)
        self.cumulative = list(itertools.accumulate(1 / (i + skip) for i in range(size)))

    def draw(self, rng: random.Random, k: int) -> list[str]:
        return rng.choices(self.words, cum_weights=self.cumulative, k=k)


def _passages(words: _Words, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    content = words.draw(rng, 12 * n)
    stops = rng.choices(_STOP, k=12 * n)
    out = []
    for i in range(n):
        base = 12 * i
        out.append(
            " ".join(f"{content[base + j]} {stops[base + j]}" for j in range(12)).capitalize() + "."
        )
    return out


def _queries(words: _Words, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(words.draw(rng, rng.choice((1, 2, 2, 3)))) for _ in range(n)]


# --- before: the scan archival search was --------------------------------------------


@dataclass
class _ScannedPassage:
    id: int
    text: str
    timestamp: datetime
    tokens: Counter[str] = field(repr=False, default_factory=Counter)


class _ScanArchival:
    """Archival search before SQLite, as ``memgpt_lab.memory.ArchivalMemory`` had it: every
    passage scored in Python (the share of the query's words it holds), sorted, paged."""

    def __init__(self, page_size: int = 5) -> None:
        self.page_size = page_size
        self.passages: list[_ScannedPassage] = []

    def insert(self, text: str, timestamp: datetime) -> int:
        passage = _ScannedPassage(len(self.passages) + 1, text, timestamp, Counter(tokenize(text)))
        self.passages.append(passage)
        return passage.id

    def search(self, query: str, page: int = 0) -> tuple[list[_ScannedPassage], int]:
        score = self._scorer(query)
        scored = sorted(((score(p), p.id, p) for p in self.passages), key=lambda s: (-s[0], s[1]))
        hits = [p for value, _, p in scored if value > 0]
        start = page * self.page_size
        return hits[start : start + self.page_size], len(hits)

    def _scorer(self, query: str) -> Callable[[_ScannedPassage], float]:
        words = set(tokenize(query))
        if not words:
            needle = query.lower().strip()
            return lambda p: float(bool(needle) and needle in p.text.lower())
        return lambda p: sum(1 for w in words if w in p.tokens) / len(words)


def _percentiles(times: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return p50 * 1000, p99 * 1000


def _timed(fn: Callable[[str], Any], queries: Sequence[str]) -> list[float]:
    times = []
    for query in queries:
        start = time.perf_counter()
        fn(query)
        times.append(time.perf_counter() - start)
    return times


def _agent(**config: Any) -> Any:
    return create_agent_from_preset(
        "memgpt_chat", config or None, "scripted", clock=system.FixedClock()
    )


# --- the figures ---------------------------------------------------------------------


def _before_and_after_at_200k(words: _Words, corpus: list[str]) -> list[Result]:
    queries = _queries(words, BEFORE_QUERIES, seed=11)
    scan = _ScanArchival()
    for text in corpus[:BEFORE_PASSAGES]:
        scan.insert(text, MOMENT)
    before = statistics.median(_timed(scan.search, queries))
    archive = ArchivalMemory()
    archive.insert_many(corpus[:BEFORE_PASSAGES], MOMENT)
    after_p50, _ = _percentiles(_timed(archive.search, _queries(words, QUERIES, seed=12)))
    return [
        Result(
            f"before: archival search, Python scan of {BEFORE_PASSAGES:,} passages (p50)",
            before * 1000,
            "ms",
            note=f"today's scan, {BEFORE_QUERIES} queries",
        ),
        Result(
            f"after: archival search, SQLite FTS5 bm25 over {BEFORE_PASSAGES:,} (p50)",
            after_p50,
            "ms",
            higher_is_better=False,
        ),
        Result(
            f"archival search at {BEFORE_PASSAGES:,}: speed-up over the scan (p50)",
            before * 1000 / after_p50,
            "x",
        ),
    ]


def _million(words: _Words, corpus: list[str], folder: Path) -> list[Result]:
    store = AgentStore(folder / "million.db")
    try:
        agent = store.save(_agent())
        start = time.perf_counter()
        for first in range(0, PASSAGES, BATCH):
            agent.archival_memory.insert_many(corpus[first : first + BATCH], MOMENT)
        rate = PASSAGES / (time.perf_counter() - start)
        queries = _queries(words, QUERIES, seed=13)
        archival_memory_search(agent, queries[0])  # warm the cache, as a running agent has it
        p50, p99 = _percentiles(_timed(lambda q: archival_memory_search(agent, q), queries))

        talker = store.save(_agent())
        lines = _passages(words, MESSAGES // 2, seed=21)
        start = time.perf_counter()
        for first in range(0, len(lines), BATCH // 2):
            batch: list[dict[str, Any]] = []
            for line in lines[first : first + BATCH // 2]:
                batch.append({"role": "user", "content": system.package_user_message(line, MOMENT)})
                batch.append(
                    {
                        "role": "assistant",
                        "content": "Thinking it over.",
                        "function_call": {
                            "name": "send_message",
                            "arguments": f'{{"message": "You said: {line}"}}',
                        },
                    }
                )
            talker.recall_memory.insert_many(batch, MOMENT)
        recall_rate = MESSAGES / (time.perf_counter() - start)
        topics = [q.split()[0] for q in _queries(words, QUERIES, seed=14)]
        conversation_search(talker, topics[0])
        recall_p50, recall_p99 = _percentiles(
            _timed(lambda q: conversation_search(talker, q), topics)
        )
        size = store.database.size()
    finally:
        store.close()
    return [
        Result(
            f"archival insert_many, {PASSAGES:,} passages into a file ({BATCH:,} a call)",
            rate,
            "passages/s",
            50_000,
            note=f"store on disk: {size / 2**20:,.0f} MiB with {MESSAGES:,} recall messages",
        ),
        Result(f"archival_memory_search over {PASSAGES:,} passages (p50)", p50, "ms", 20, False),
        Result(f"archival_memory_search over {PASSAGES:,} passages (p99)", p99, "ms", 100, False),
        Result(f"recall insert_many, {MESSAGES:,} messages (trigram index)", recall_rate, "msgs/s"),
        Result(
            f"conversation_search over {MESSAGES:,} messages (p50)",
            recall_p50,
            "ms",
            20,
            False,
            note=f"p99 {recall_p99:.1f} ms; substring match, oldest first, as before",
        ),
    ]


_TEXTS = [
    "How was your day?",
    "Tell me something about yourself.",
    "I went for a run this morning.",
    "What should I cook tonight?",
]


def _steps(agent: Any) -> Callable[[], int]:
    counter = itertools.count()

    def run() -> int:
        for _ in range(STEPS):
            agent.step(_TEXTS[next(counter) % len(_TEXTS)])
        return STEPS

    return run


def _stepping(folder: Path) -> list[Result]:
    memory = best_rate(_steps(_agent()), 3)
    store = AgentStore(folder / "steps.db")
    try:
        on_file = best_rate(_steps(store.save(_agent())), 3)
    finally:
        store.close()
    return [
        Result("offline agent steps/s, in memory", memory, "steps/s", 2000),
        Result("offline agent steps/s, file-backed store (WAL)", on_file, "steps/s"),
        Result("file-backed / in-memory steps/s", on_file / memory, "ratio", 0.5),
    ]


def _checkpoints(folder: Path) -> list[Result]:
    store = AgentStore(folder / "checkpoints.db")
    try:
        agent = store.save(_agent())
        sizes = [store.database.size()]
        for block in range(2):
            for i in range(CHECKPOINT_STEPS):
                agent.step(_TEXTS[i % len(_TEXTS)] + f" ({block}, {i})")
            sizes.append(store.database.size())
        first, second = (
            (sizes[1] - sizes[0]) / CHECKPOINT_STEPS,
            (sizes[2] - sizes[1]) / CHECKPOINT_STEPS,
        )
        payload = store.database.conn.execute(
            "SELECT (SELECT sum(length(message) + length(text)) FROM messages) + "
            "(SELECT sum(coalesce(length(context_add), 0) + coalesce(length(context_set), 0) + "
            "coalesce(length(core), 0) + coalesce(length(counters), 0) + length(label) + 60) "
            "FROM checkpoints)"
        ).fetchone()[0] / (2 * CHECKPOINT_STEPS)
        ids = [c.id for c in agent.checkpoints()]
        far, tip = ids[-1 - CHECKPOINT_STEPS], ids[-1]
        times = []
        for _ in range(3):
            start = time.perf_counter()
            agent.rewind(far)
            times.append(time.perf_counter() - start)
            agent.rewind(tip)
    finally:
        store.close()
    return [
        Result(
            f"checkpoint storage: bytes per step after {CHECKPOINT_STEPS:,} steps",
            first,
            "bytes",
            higher_is_better=False,
            note=(
                f"the next {CHECKPOINT_STEPS:,}: {second:,.0f} bytes/step (no growth with history); "
                f"rows alone: {payload:,.0f} bytes/step (three messages, the checkpoint); "
                "the rest is indexes (FTS5 trigram)"
            ),
        ),
        Result(
            f"rewind to a checkpoint {CHECKPOINT_STEPS:,} steps back",
            min(times) * 1000,
            "ms",
            higher_is_better=False,
        ),
    ]


def run() -> list[Result]:
    words = _Words()
    corpus = _passages(words, PASSAGES, seed=1)
    results = _before_and_after_at_200k(words, corpus)
    with tempfile.TemporaryDirectory(prefix="memgpt-bench-") as folder:
        results += _million(words, corpus, Path(folder))
        results += _stepping(Path(folder))
        results += _checkpoints(Path(folder))
    return results
