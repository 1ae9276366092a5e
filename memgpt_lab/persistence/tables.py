"""The SQL of one agent's messages and archival passages (no policy, no Python objects).

:class:`AgentTables` reads and writes the rows of one agent in a
:class:`~memgpt_lab.persistence.database.Database`. Writes go through a
``writes(label)`` context, which the agent's
:class:`~memgpt_lab.persistence.manager.StateManager` provides: it opens (or
joins) the step's transaction and yields the checkpoint the rows belong to.
Only rows on the agent's current branch (``live = 1``) are read.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

from memgpt_lab.persistence.database import Database, clean_text, embedding_blob, to_json

__all__ = ["AgentTables", "Writes", "insert_rows", "message_json", "standalone_tables"]

Writes = Callable[[str], AbstractContextManager["str | None"]]

#: Rows per INSERT: one statement, so that FTS5 indexes a batch at once.
_CHUNK = 500
_SQL_CACHE: dict[tuple[str, int], str] = {}


def insert_rows(
    conn: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` into ``table`` in multi-row statements (values bound, never formatted)."""
    head = f"INSERT INTO {table}({', '.join(columns)}) VALUES "
    group = "(" + ", ".join("?" * len(columns)) + ")"
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        key = (head, len(chunk))
        sql = _SQL_CACHE.get(key)
        if sql is None:
            sql = _SQL_CACHE[key] = head + ", ".join([group] * len(chunk))
        conn.execute(sql, [value for row in chunk for value in row])


def message_json(message: dict[str, Any]) -> str:
    """A message as stored (the same text every time for the same dict)."""
    return to_json(message)


#: The columns of a message and of a passage, as agent files write them (without the agent).
MESSAGE_COLUMNS = (
    "uid",
    "checkpoint_id",
    "live",
    "in_recall",
    "said",
    "role",
    "created_at",
    "day",
    "text",
    "message",
)
PASSAGE_COLUMNS = ("seq", "checkpoint_id", "live", "created_at", "text", "embedding")
_MESSAGE_COLUMNS = ("agent_id", *MESSAGE_COLUMNS)
_PASSAGE_COLUMNS = ("agent_id", *PASSAGE_COLUMNS)


class AgentTables:
    """SQL for one agent's rows. Counts are cached (``recall_count``, ``archival_count``).

    Args:
        database: where the rows are.
        agent_id: whose rows.
        writes: ``writes(label)`` opens or joins a transaction and yields the checkpoint
            id to tag rows with; by default a plain transaction and no checkpoint.
    """

    def __init__(self, database: Database, agent_id: str, writes: Writes | None = None) -> None:
        self.database = database
        self.agent_id = agent_id
        self.writes: Writes = writes or self._plain_writes
        self.recall_count = 0
        self.archival_count = 0
        self.next_uid = 1
        self.refresh()

    @contextmanager
    def _plain_writes(self, label: str) -> Iterator[str | None]:
        with self.database.transaction():
            yield None

    def refresh(self) -> None:
        """Re-read the counts (after a rollback, a rewind, another writer)."""
        with self.database.read() as conn:
            self.recall_count = conn.execute(
                "SELECT count(*) FROM messages WHERE agent_id = ? AND in_recall = 1 AND live = 1",
                (self.agent_id,),
            ).fetchone()[0]
            self.archival_count = conn.execute(
                "SELECT count(*) FROM archival WHERE agent_id = ? AND live = 1", (self.agent_id,)
            ).fetchone()[0]
            top = conn.execute(
                "SELECT max(uid) FROM messages WHERE agent_id = ?", (self.agent_id,)
            ).fetchone()[0]
        self.next_uid = (top or 0) + 1

    # --- messages ------------------------------------------------------------------

    def insert_messages(
        self,
        messages: Sequence[tuple[dict[str, Any], datetime, str, bool]],
        in_recall: bool,
        label: str,
    ) -> list[int]:
        """Store ``(message, timestamp, text, said)`` rows; returns their uids, in order."""
        if not messages:
            return []
        with self.writes(label) as checkpoint_id:
            conn = self.database.conn
            first = self.next_uid
            rows = [
                (
                    self.agent_id,
                    first + offset,
                    checkpoint_id,
                    1,
                    int(in_recall),
                    int(said),
                    str(message.get("role", "")),
                    timestamp.isoformat(),
                    timestamp.date().isoformat(),
                    clean_text(text),
                    message_json(message),
                )
                for offset, (message, timestamp, text, said) in enumerate(messages)
            ]
            insert_rows(conn, "messages", _MESSAGE_COLUMNS, rows)
        self.database.note_unindexed(len(rows))
        self.next_uid = first + len(rows)
        if in_recall:
            self.recall_count += len(rows)
        return list(range(first, first + len(rows)))

    def messages_by_uid(self, uids: Sequence[int]) -> list[dict[str, Any]]:
        """The messages with these uids, in the order given."""
        if not uids:
            return []
        with self.database.read() as conn:
            found = dict(
                conn.execute(
                    "SELECT uid, message FROM messages WHERE agent_id = ? "
                    "AND uid IN (SELECT value FROM json_each(?))",
                    (self.agent_id, json.dumps(list(uids))),
                ).fetchall()
            )
        missing = [uid for uid in uids if uid not in found]
        if missing:
            raise LookupError(f"agent {self.agent_id!r} has no messages with uids {missing[:10]}")
        return [json.loads(found[uid]) for uid in uids]

    def recall_rows(self) -> list[tuple[str, str]]:
        """Every recall message on the current branch: ``(created_at, message JSON)``, oldest first."""
        with self.database.read() as conn:
            return conn.execute(
                "SELECT created_at, message FROM messages "
                "WHERE agent_id = ? AND in_recall = 1 AND live = 1 ORDER BY id",
                (self.agent_id,),
            ).fetchall()

    def text_search(
        self, needle: str, said_only: bool, offset: int, limit: int
    ) -> tuple[int, list[tuple[str, str]]]:
        """Recall messages whose text contains ``needle`` (lower case), oldest first.

        Three characters or more go through the trigram index; shorter ones scan.
        """
        said = " AND m.said = 1" if said_only else ""
        needle = clean_text(needle)
        if len(needle) >= 3:
            self.database.index_messages()  # what the last steps stored is searchable
            match = '"' + needle.replace('"', '""') + '"'
            source = (
                "FROM messages_fts f CROSS JOIN messages m ON m.id = f.rowid "
                "WHERE messages_fts MATCH ? AND m.agent_id = ? AND m.in_recall = 1 AND m.live = 1"
            )
            params: tuple[Any, ...] = (match, self.agent_id)
        else:
            source = (
                "FROM messages m WHERE m.agent_id = ? AND m.in_recall = 1 AND m.live = 1 "
                "AND lab_contains(m.text, ?)"
            )
            params = (self.agent_id, needle)
        return self._page("m.created_at, m.message", source + said, params, "m.id", offset, limit)

    def date_search(
        self, start: str, end: str, offset: int, limit: int
    ) -> tuple[int, list[tuple[str, str]]]:
        """Recall messages stored on days ``start`` to ``end`` (ISO dates, inclusive)."""
        source = "FROM messages WHERE agent_id = ? AND day BETWEEN ? AND ? AND in_recall = 1 AND live = 1"
        params = (self.agent_id, start, end)
        return self._page("created_at, message", source, params, "id", offset, limit)

    def _page(
        self,
        columns: str,
        source: str,
        params: tuple[Any, ...],
        order: str,
        offset: int,
        limit: int,
    ) -> tuple[int, list[Any]]:
        """(how many rows ``source`` matches, one page of ``columns`` in ``order``), in one read."""
        with self.database.read() as conn:
            total = conn.execute(f"SELECT count(*) {source}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT {columns} {source} ORDER BY {order} LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
        return total, rows

    # --- archival ------------------------------------------------------------------

    def insert_passages(
        self,
        texts: Sequence[str],
        timestamp: datetime,
        embeddings: Sequence[Sequence[float] | None] | None,
        label: str,
    ) -> list[int]:
        """Store passages (one transaction); returns their ids (1, 2, ... on the branch)."""
        if not texts:
            return []
        stamp = timestamp.isoformat()
        with self.writes(label) as checkpoint_id:
            first = self.archival_count + 1
            vectors: Iterable[Any] = embeddings if embeddings is not None else [None] * len(texts)
            rows = [
                (
                    self.agent_id,
                    first + offset,
                    checkpoint_id,
                    1,
                    stamp,
                    clean_text(text),
                    embedding_blob(vec),
                )
                for offset, (text, vec) in enumerate(zip(texts, vectors, strict=True))
            ]
            insert_rows(self.database.conn, "archival", _PASSAGE_COLUMNS, rows)
        self.archival_count += len(rows)
        return list(range(first, first + len(rows)))

    _PASSAGE = "a.seq, a.text, a.created_at, a.embedding"

    def passage_rows(self) -> list[tuple[int, str, str, bytes | None]]:
        """Every passage on the current branch, in order."""
        with self.database.read() as conn:
            return conn.execute(
                f"SELECT {self._PASSAGE} FROM archival a WHERE a.agent_id = ? AND a.live = 1 "
                "ORDER BY a.seq",
                (self.agent_id,),
            ).fetchall()

    def search_passages_ranked(
        self, match: str, offset: int, limit: int
    ) -> tuple[int, list[tuple[int, str, str, bytes | None]]]:
        """Passages matching an FTS5 query, best bm25 first (ties: oldest first).

        FTS5 ranks inside its index (``rank`` is bm25) and keeps only the best ``k``;
        the agent's live rows among them are kept. Rows of other agents or of other
        branches can crowd them out: then ``k`` grows until the page is full. When the
        table holds no such rows (a big archive usually), the index alone counts.
        """
        wanted = offset + limit
        with self.database.read() as conn:
            others = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM archival WHERE agent_id < ?) "
                "OR EXISTS (SELECT 1 FROM archival WHERE agent_id > ?) "
                "OR EXISTS (SELECT 1 FROM archival WHERE agent_id = ? AND live = 0)",
                (self.agent_id, self.agent_id, self.agent_id),
            ).fetchone()[0]
            if others:
                count = (
                    "SELECT count(*) FROM archival_fts f CROSS JOIN archival a ON a.id = f.rowid "
                    "WHERE archival_fts MATCH ? AND a.agent_id = ? AND a.live = 1"
                )
                total = conn.execute(count, (match, self.agent_id)).fetchone()[0]
            else:  # every row is this agent's, on its branch: the index alone counts
                total = conn.execute(
                    "SELECT count(*) FROM archival_fts WHERE archival_fts MATCH ?", (match,)
                ).fetchone()[0]
            best = max(wanted, 1)
            while True:
                rows = conn.execute(
                    f"SELECT {self._PASSAGE} FROM (SELECT rowid, rank FROM archival_fts "
                    "WHERE archival_fts MATCH ? ORDER BY rank, rowid LIMIT ?) f "
                    "CROSS JOIN archival a ON a.id = f.rowid "
                    "WHERE a.agent_id = ? AND a.live = 1 ORDER BY f.rank, f.rowid",
                    (match, best, self.agent_id),
                ).fetchall()
                if len(rows) >= min(wanted, total):
                    break
                best *= 4
        return total, rows[offset:wanted]

    def search_passages_containing(
        self, needle: str, offset: int, limit: int
    ) -> tuple[int, list[tuple[int, str, str, bytes | None]]]:
        """Passages whose text contains ``needle`` (lower case), oldest first (a scan)."""
        source = "FROM archival a WHERE a.agent_id = ? AND a.live = 1 AND lab_contains(a.text, ?)"
        params = (self.agent_id, clean_text(needle))
        return self._page(self._PASSAGE, source, params, "a.seq", offset, limit)

    def search_passages_by_vector(
        self, vector: Sequence[float], offset: int, limit: int
    ) -> tuple[int, list[tuple[int, str, str, bytes | None]]]:
        """Passages by cosine similarity to ``vector``, best first; those scoring 0 or less
        are left out (ties: oldest first). A scan: one cosine per passage."""
        with self.database.read() as conn:
            scored = conn.execute(
                "SELECT seq, score FROM (SELECT a.seq, lab_cosine(a.embedding, ?) AS score "
                "FROM archival a WHERE a.agent_id = ? AND a.live = 1) WHERE score > 0",
                (embedding_blob(vector), self.agent_id),
            ).fetchall()
            scored.sort(key=lambda row: (-row[1], row[0]))
            page = [seq for seq, _ in scored[offset : offset + limit]]
            found = {
                row[0]: row
                for row in conn.execute(
                    f"SELECT {self._PASSAGE} FROM archival a WHERE a.agent_id = ? AND a.live = 1 "
                    "AND a.seq IN (SELECT value FROM json_each(?))",
                    (self.agent_id, json.dumps(page)),
                ).fetchall()
            }
        return len(scored), [found[seq] for seq in page]


def standalone_tables() -> AgentTables:
    """Tables of an agent of its own in a private in-memory database (a memory made alone)."""
    database = Database(":memory:")
    agent_id = uuid.uuid4().hex[:12]
    now = database.now().isoformat()
    with database.transaction() as conn:
        conn.execute(
            "INSERT INTO agents(id, name, system_prompt, config, functions, model_name, core, "
            "counters, context, created_at, updated_at) "
            "VALUES (?, '', '', '{}', '[]', '', '{}', '{}', '[]', ?, ?)",
            (agent_id, now, now),
        )
    return AgentTables(database, agent_id)
