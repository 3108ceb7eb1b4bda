"""SQLite persistence for a chain node: one file, one transaction per committed height.

Why one transaction per height: a node killed at any instant must restart at its last
committed height with every block, trie node and receipt of that height intact, and with
nothing of a half-written height visible. Trie and SMT nodes are content-addressed, so the
node stores buffer their writes in memory and land them in the same SQLite transaction as
the block that references them; a crash before that commit leaves only unreferenced
nothing, and a crash after it leaves a complete height.

WAL mode lets the gRPC query path read a consistent snapshot while the block loop writes.
``synchronous=NORMAL`` in WAL mode survives a process crash (SIGKILL) without losing a
committed transaction; only an OS crash or power loss can drop the last transactions, which
is the trade every SQLite-backed chain node makes for throughput. ``durable=True`` selects
``synchronous=FULL`` for operators who want power-loss safety too.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes   (hash BLOB PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks  (height INTEGER PRIMARY KEY, hash BLOB NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs     (hash BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL,
                                    data BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS txs_by_height ON txs (height, idx);
CREATE TABLE IF NOT EXISTS meta    (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
"""


class DatabaseError(RuntimeError):
    """The node database is unreadable or inconsistent."""


class HeightWriter(Protocol):
    """An app's own rows that must land in the same SQLite transaction as its height.

    Why: an app that keeps state beside the trie nodes (the Corda ledger's outputs and
    checkpoints) must have it committed atomically with the block, or a crash between the two
    would leave a height whose state is half there. ``pending_writes`` is read inside the
    height's transaction (statements run in order with ``executemany``); ``written`` is called
    only after that transaction committed, so a failed commit leaves the writes buffered.
    """

    def pending_writes(self) -> Sequence[tuple[str, Sequence[Sequence[object]]]]: ...

    def written(self) -> None: ...


class BufferedNodeStore:
    """A content-addressed node store whose writes wait for the next height commit.

    Reads see buffered nodes first, so the state machine can build and prove a block before
    it is persisted.
    """

    def __init__(self, db: NodeDatabase) -> None:
        self._db = db
        self._pending: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        hit = self._pending.get(key)
        if hit is not None:
            return hit
        return self._db.get_node(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._pending[bytes(key)] = bytes(value)

    def drain(self) -> dict[bytes, bytes]:
        pending, self._pending = self._pending, {}
        return pending

    def discard(self) -> None:
        self._pending.clear()


class NodeDatabase:
    def __init__(self, path: Path, *, durable: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(SCHEMA)
        self.nodes = BufferedNodeStore(self)
        self._writers: dict[str, HeightWriter] = {}

    def attach(self, name: str, writer: HeightWriter) -> None:
        """Commit ``writer``'s rows with every height from now on (replaces one of the same name)."""
        self._writers[name] = writer

    def ensure_schema(self, script: str) -> None:
        """Create an app's own tables and indexes (idempotent DDL, run before any height commit)."""
        with self._lock:
            self._conn.executescript(script)

    def read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of one SELECT over the committed state (an app's own tables)."""
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # --- reads ---------------------------------------------------------------------

    def get_node(self, key: bytes) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT data FROM nodes WHERE hash = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def get_meta(self, key: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def latest_height(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT MAX(height) FROM blocks").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def get_block(self, height: int) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT data FROM blocks WHERE height = ?", (height,)).fetchone()
        return None if row is None else bytes(row[0])

    def get_tx(self, tx_hash: bytes) -> tuple[int, int, bytes] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT height, idx, data FROM txs WHERE hash = ?", (tx_hash,)
            ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), bytes(row[2]))

    def txs_at(self, height: int) -> list[tuple[bytes, bytes]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT hash, data FROM txs WHERE height = ? ORDER BY idx", (height,)
            ).fetchall()
        return [(bytes(h), bytes(d)) for h, d in rows]

    # --- the one write path --------------------------------------------------------

    def commit_height(
        self,
        height: int,
        block_hash: bytes,
        block: bytes,
        txs: Iterable[tuple[bytes, bytes]] = (),
        meta: dict[str, bytes] | None = None,
    ) -> None:
        """Persist a height atomically: buffered nodes, the block, its tx results, metadata."""
        latest = self.latest_height()
        if latest and height != latest + 1:
            raise DatabaseError(f"height {height} does not follow the last committed height {latest}")
        nodes = self.nodes.drain()
        try:
            with self._tx() as c:
                c.executemany("INSERT OR IGNORE INTO nodes (hash, data) VALUES (?, ?)", nodes.items())
                c.execute(
                    "INSERT INTO blocks (height, hash, data) VALUES (?, ?, ?)", (height, block_hash, block)
                )
                c.executemany(
                    "INSERT INTO txs (hash, height, idx, data) VALUES (?, ?, ?, ?)",
                    [(h, height, i, d) for i, (h, d) in enumerate(txs)],
                )
                if meta:
                    c.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        meta.items(),
                    )
                for writer in self._writers.values():
                    for sql, rows in writer.pending_writes():
                        c.executemany(sql, rows)
        except sqlite3.Error as exc:
            # Put the nodes back so a retry of the same height finds them.
            for k, v in nodes.items():
                self.nodes.put(k, v)
            raise DatabaseError(f"could not commit height {height}: {exc}") from exc
        for writer in self._writers.values():
            writer.written()

    def set_meta(self, key: str, value: bytes) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
