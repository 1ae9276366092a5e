"""The one storage engine: a SQLite database, in memory (``":memory:"``) or in a file.

:class:`Database` owns one connection, guarded by a lock, so that agents used
from several threads (a server runs turns in worker threads) share it safely.
Files are opened in WAL mode with foreign keys on; the schema's version is kept
in ``PRAGMA user_version`` and migrated forward on open, from the first release
on; a file written by a newer release is refused.

Every logical change is one transaction (:meth:`Database.transaction`); nested
calls become savepoints. Parameters are always bound, never formatted into SQL.

The schema (version 2)::

    agents       one row per agent: what it is (config, preset, prompt, functions,
                 model string) and its head state (core memory, counters, the
                 in-context message uids, the head checkpoint)
    checkpoints  a tree of parent links, one per step; each records what its step
                 changed (messages added to the context, or the whole context when
                 it was replaced; core memory and counters when they changed)
    messages     every message an agent stored, tagged with its checkpoint; ``live``
                 says whether it is on the agent's current branch; ``in_recall``
                 whether recall memory holds it (summary alerts are context only)
    archival     archival passages, tagged and ``live`` the same way
    messages_fts FTS5 (trigram) over messages.text, the lower-cased words recall search
                 reads (a user's words, a send_message text...): substring search, as before
    messages_unindexed  ids of messages not in messages_fts yet (see below)
    archival_fts FTS5 (unicode61, bm25) over archival.text

Version 2 indexes messages lazily: a new message's id goes to ``messages_unindexed``
and :meth:`Database.index_messages` puts the waiting ones into ``messages_fts`` in one
statement, before any search reads the index (and whenever enough are waiting).
FTS5 writes a segment per transaction, so indexing each step's messages as it
commits cost about a fifth of a scripted step; in batches it costs next to nothing.
"""

from __future__ import annotations

import array
import contextlib
import json
import math
import os
import re
import secrets
import sqlite3
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from memgpt_lab import system
from memgpt_lab.errors import LabError

__all__ = [
    "APPLICATION_ID",
    "Database",
    "SCHEMA_VERSION",
    "StorageError",
    "clean_text",
    "cosine",
    "embedding_blob",
    "embedding_values",
    "to_json",
]

#: The schema this release writes; files up to this version open (and are migrated).
SCHEMA_VERSION = 2

#: ``PRAGMA application_id`` of a memgpt_lab store ("MGLB"), so other SQLite files are refused.
APPLICATION_ID = 0x4D474C42


class StorageError(LabError):
    """A store that cannot be used: from a newer release, not a memgpt_lab store, closed,
    or an agent changed by another writer since it was loaded."""


def cosine(a: Any, b: Any) -> float:
    """Cosine similarity of two vectors; 0 when either is zero (or missing)."""
    if a is None or b is None:
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def embedding_blob(vector: Any) -> bytes | None:
    """A vector as stored: float64, little-endian (exact for Python floats)."""
    if vector is None:
        return None
    values = array.array("d", (float(x) for x in vector))
    if sys.byteorder != "little":  # pragma: no cover - big-endian
        values.byteswap()
    return values.tobytes()


def embedding_values(blob: bytes | None) -> list[float] | None:
    """The vector a blob holds (see :func:`embedding_blob`)."""
    if blob is None:
        return None
    values = array.array("d")
    values.frombytes(blob)
    if sys.byteorder != "little":  # pragma: no cover - big-endian
        values.byteswap()
    return values.tolist()


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` as a TEXT column can hold it: lone surrogates (which UTF-8 cannot
    encode) become U+FFFD. Exact values go in JSON columns (see :func:`to_json`)."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def to_json(value: Any) -> str:
    """A JSON column's text: ASCII (so any Python string is kept exactly), the same
    text every time for the same value."""
    return json.dumps(value, default=repr)


def _sql_cosine(blob: bytes | None, query: bytes | None) -> float:
    return cosine(embedding_values(blob), embedding_values(query))


def _sql_contains(text: str | None, needle: str | None) -> int:
    # Python's lower(): the same case folding as recall search always had
    return int(bool(text is not None and needle and needle in text.lower()))


# --- schema --------------------------------------------------------------------------

_SCHEMA_V1 = """
CREATE TABLE agents (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    preset_name        TEXT,
    system_prompt      TEXT NOT NULL,
    config             TEXT NOT NULL,
    functions          TEXT NOT NULL,
    model              TEXT,
    model_name         TEXT NOT NULL,
    embedding          TEXT,
    core               TEXT NOT NULL,
    counters           TEXT NOT NULL,
    context            TEXT NOT NULL,
    last_call          TEXT,
    head_checkpoint_id TEXT REFERENCES checkpoints(id) DEFERRABLE INITIALLY DEFERRED,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE INDEX agents_name ON agents(name);

CREATE TABLE checkpoints (
    id           TEXT PRIMARY KEY,
    agent_id     TEXT REFERENCES agents(id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,
    parent_id    TEXT REFERENCES checkpoints(id) DEFERRABLE INITIALLY DEFERRED,
    depth        INTEGER NOT NULL,
    turn         INTEGER NOT NULL,
    step         INTEGER NOT NULL,
    label        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    context_set  TEXT,
    context_add  TEXT,
    core         TEXT,
    counters     TEXT
);
CREATE INDEX checkpoints_agent ON checkpoints(agent_id, id);
CREATE INDEX checkpoints_parent ON checkpoints(parent_id);

CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    agent_id      TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    uid           INTEGER NOT NULL,
    checkpoint_id TEXT REFERENCES checkpoints(id) DEFERRABLE INITIALLY DEFERRED,
    live          INTEGER NOT NULL,
    in_recall     INTEGER NOT NULL,
    said          INTEGER NOT NULL,
    role          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    day           TEXT NOT NULL,
    text          TEXT NOT NULL,
    message       TEXT NOT NULL,
    UNIQUE (agent_id, uid)
);
CREATE INDEX messages_recall ON messages(agent_id, in_recall, live);
CREATE INDEX messages_day ON messages(agent_id, day);
CREATE INDEX messages_checkpoint ON messages(checkpoint_id);

CREATE TABLE archival (
    id            INTEGER PRIMARY KEY,
    agent_id      TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    checkpoint_id TEXT REFERENCES checkpoints(id) DEFERRABLE INITIALLY DEFERRED,
    live          INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    text          TEXT NOT NULL,
    embedding     BLOB
);
CREATE INDEX archival_agent ON archival(agent_id, live, seq);
CREATE INDEX archival_checkpoint ON archival(checkpoint_id);

CREATE VIRTUAL TABLE messages_fts USING fts5(
    text, content='messages', content_rowid='id', tokenize='trigram case_sensitive 1'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;

CREATE VIRTUAL TABLE archival_fts USING fts5(
    text, content='archival', content_rowid='id', tokenize='unicode61'
);
CREATE TRIGGER archival_fts_insert AFTER INSERT ON archival BEGIN
    INSERT INTO archival_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER archival_fts_delete AFTER DELETE ON archival BEGIN
    INSERT INTO archival_fts(archival_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER archival_fts_update AFTER UPDATE OF text ON archival BEGIN
    INSERT INTO archival_fts(archival_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO archival_fts(rowid, text) VALUES (new.id, new.text);
END;
"""


def _statements(script: str) -> list[str]:
    """A script's statements, one by one (executescript would commit the transaction)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"an incomplete statement at the end of the schema: {pending!r}")
    return statements


def _create_v1(conn: sqlite3.Connection) -> None:
    for statement in _statements(_SCHEMA_V1):
        conn.execute(statement)


# Version 2: messages wait in messages_unindexed until Database.index_messages. A row
# leaves the index ('delete') only if it is in it, and an edited text waits again.
_SCHEMA_V2 = """
CREATE TABLE messages_unindexed (id INTEGER PRIMARY KEY);
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_unindexed(id) VALUES (new.id);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text)
        SELECT 'delete', old.id, old.text
        WHERE NOT EXISTS (SELECT 1 FROM messages_unindexed WHERE id = old.id);
    DELETE FROM messages_unindexed WHERE id = old.id;
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text)
        SELECT 'delete', old.id, old.text
        WHERE NOT EXISTS (SELECT 1 FROM messages_unindexed WHERE id = old.id);
    INSERT OR IGNORE INTO messages_unindexed(id) VALUES (new.id);
END;
"""


def _lazy_message_index_v2(conn: sqlite3.Connection) -> None:
    for statement in _statements(_SCHEMA_V2):
        conn.execute(statement)


#: ``MIGRATIONS[n]`` takes a database at version ``n - 1`` to version ``n``, in one
#: transaction. Version 0 is an empty file. Append, never edit, one per release that
#: changes the schema.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _create_v1,
    2: _lazy_message_index_v2,
}

#: Messages waiting for the search index before a write indexes them at once
#: (a search always indexes what waits first).
INDEX_BATCH = 256


def migrate(
    conn: sqlite3.Connection,
    migrations: dict[int, Callable[[sqlite3.Connection], None]] = MIGRATIONS,
    where: str = "the database",
) -> int:
    """Bring ``conn``'s schema up to the newest version in ``migrations``; returns it.

    Raises:
        StorageError: the file is from a newer release, or not a memgpt_lab store.
    """
    newest = max(migrations)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    application = conn.execute("PRAGMA application_id").fetchone()[0]
    if version > newest:
        raise StorageError(
            f"{where} was written by a newer memgpt_lab (schema version {version}; this one "
            f"reads versions up to {newest}): upgrade memgpt_lab to open it"
        )
    if application not in (0, APPLICATION_ID) or (
        application == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    ):
        raise StorageError(f"{where} is a SQLite database, but not a memgpt_lab store")
    for target in range(version + 1, newest + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            migrations[target](conn)
            # pragmas take no parameters; both values are integers of this module
            conn.execute(f"PRAGMA user_version = {int(target)}")
            conn.execute(f"PRAGMA application_id = {int(APPLICATION_ID)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return newest


# --- ids -----------------------------------------------------------------------------

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _decode(text: str) -> int:
    value = 0
    for char in text:
        value = (value << 5) | _CROCKFORD.index(char)
    return value


class _IdMaker:
    """ULIDs (26 characters, sorting by time), monotonic: each id is greater than every
    id made before in this process and every id in the databases it has opened, so a
    history copied from one database to another still sorts in the order it was made."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def seed(self, newest: str | None) -> None:
        if newest and len(newest) == 26 and all(c in _CROCKFORD for c in newest):
            with self._lock:
                self._last = max(self._last, _decode(newest))

    def __call__(self, moment: datetime) -> str:
        milliseconds = max(0, int(moment.timestamp() * 1000)) & ((1 << 48) - 1)
        with self._lock:
            value = (milliseconds << 80) | secrets.randbits(72)
            if value <= self._last:  # the same millisecond, or a clock that went back
                value = self._last + 1
            self._last = value
        return _encode(value)


#: One generator for the process: ids from different databases (an agent made in
#: memory, then saved to a file) still sort by time.
_NEW_ID = _IdMaker()


# --- the database --------------------------------------------------------------------


class Database:
    """One SQLite database and the one connection to it.

    Args:
        path: a file path, or ``":memory:"`` (the default) for a private in-memory database.
        durable: ``synchronous=FULL``: a committed step survives a power cut, at a cost
            in speed. By default (``NORMAL``, in WAL mode) a step survives a crash of the
            process, which is what the crash test checks.
        clock: the time of checkpoints (their ids sort by it).

    Raises:
        StorageError: the file is from a newer release or not a memgpt_lab store, or
            this Python's SQLite lacks FTS5's trigram tokenizer (SQLite 3.34 or later).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        durable: bool = False,
        clock: system.Clock = system.system_clock,
    ) -> None:
        self.path = os.fspath(path)
        self.in_memory = self.path == ":memory:" or self.path == ""
        self.clock = clock
        # One connection for every thread, guarded by ``lock`` (an in-memory database
        # exists only for its connection). Autocommit mode: transactions are explicit.
        self.lock = threading.RLock()
        self._depth = 0
        self._closed = False
        if not self.in_memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        try:
            self._configure(durable)
            migrate(self.conn, where=f"{self.path!r}")
        except sqlite3.DatabaseError as exc:  # not a database at all, or damaged
            self.conn.close()
            raise StorageError(
                f"{self.path!r} cannot be opened as a memgpt_lab store: {exc}"
            ) from None
        except BaseException:
            self.conn.close()
            raise
        # closed when the Database is collected (an in-memory one is often never closed)
        self._finalizer = weakref.finalize(self, self.conn.close)
        self.new_id = _NEW_ID
        self.new_id.seed(self.conn.execute("SELECT max(id) FROM checkpoints").fetchone()[0])
        #: About how many messages wait for the search index (see :meth:`index_messages`).
        self.unindexed = self.conn.execute("SELECT count(*) FROM messages_unindexed").fetchone()[0]

    def _configure(self, durable: bool) -> None:
        conn = self.conn
        if sqlite3.sqlite_version_info < (3, 34, 0):
            raise StorageError(
                f"SQLite {sqlite3.sqlite_version} lacks FTS5's trigram tokenizer; "
                "memgpt_lab needs SQLite 3.34 or later"
            )
        if not self.in_memory:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(f"{self.path!r}: cannot switch to WAL mode ({mode})")
            conn.execute("PRAGMA journal_size_limit = 67108864")
            conn.execute("PRAGMA mmap_size = 268435456")
        conn.execute("PRAGMA synchronous = FULL" if durable else "PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -32768")
        conn.create_function("lab_cosine", 2, _sql_cosine, deterministic=True)
        conn.create_function("lab_contains", 2, _sql_contains, deterministic=True)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"Database({self.path!r}, {state})"

    def check_open(self) -> None:
        if self._closed:
            raise StorageError(f"the store {self.path!r} is closed")

    def begin(self) -> None:
        """Open a transaction (a savepoint when one is open) and hold the lock until
        :meth:`commit` or :meth:`rollback`, which must come from the same thread."""
        self.lock.acquire()
        try:
            self.check_open()
            self.conn.execute("BEGIN IMMEDIATE" if self._depth == 0 else "SAVEPOINT nested")
        except BaseException:
            self.lock.release()
            raise
        self._depth += 1

    def commit(self) -> None:
        """Commit what :meth:`begin` opened (release a savepoint); rolls back if that fails."""
        try:
            self._depth -= 1
            if self._depth > 0:
                self.conn.execute("RELEASE nested")
                return
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        finally:
            self.lock.release()

    def rollback(self) -> None:
        """Undo what :meth:`begin` opened."""
        try:
            self._depth -= 1
            if self._depth > 0:
                self.conn.execute("ROLLBACK TO nested")
                self.conn.execute("RELEASE nested")
            elif self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self.lock.release()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction (a savepoint when nested) holding the lock: all or nothing."""
        self.begin()
        try:
            yield self.conn
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def index_messages(self) -> None:
        """Put every message waiting in ``messages_unindexed`` into ``messages_fts``, at once.

        Called before a search reads the index, and by writers once about
        :data:`INDEX_BATCH` messages wait. Part of the caller's transaction when one is open.
        """
        with self.transaction() as conn:
            # CROSS JOIN keeps the waiting ids as the outer loop: a plain JOIN let the planner
            # scan every message in id order, which made each call cost the whole table.
            conn.execute(
                "INSERT INTO messages_fts(rowid, text) SELECT m.id, m.text "
                "FROM messages_unindexed u CROSS JOIN messages m ON m.id = u.id ORDER BY u.id"
            )
            conn.execute("DELETE FROM messages_unindexed")
        self.unindexed = 0

    def note_unindexed(self, count: int) -> None:
        """``count`` more messages wait for the index; index them all once enough wait."""
        self.unindexed += count
        if self.unindexed >= INDEX_BATCH:
            self.index_messages()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reading, holding the lock."""
        with self.lock:
            self.check_open()
            yield self.conn

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    def now(self) -> datetime:
        return self.clock()

    def close(self) -> None:
        """Close the connection (a file's WAL is folded back into it)."""
        with self.lock:
            if self._closed:
                return
            if not self.in_memory and self.unindexed and not self._depth:
                # What waits for the search index goes in now: a file is left whole.
                with contextlib.suppress(sqlite3.Error):  # another process may hold it
                    self.index_messages()
            self._closed = True
            if not self.in_memory:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._finalizer()

    def size(self) -> int:
        """Bytes the database occupies (pages in use, the WAL folded in)."""
        with self.read() as conn:
            if not self.in_memory:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * page_size)
