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

Reads of trie/SMT nodes go through a shared LRU cache bounded in bytes. Nodes are stored
under their own hash and never rewritten, so a cached entry can never be stale: the only
value a hash can ever name is the one already cached. Only nodes read from, or committed
to, the database enter it, so a height that failed to commit leaves nothing behind.

The ``state`` table is a flat key -> value copy of an app's latest state (what the EVM
node answers unproved queries at its latest height from), written in the height's
transaction so it always matches the committed trie root of the last committed height.

Node ids record when a node was last written, which is what pruning needs
(``chains/node/prune.py``): each height's nodes get ids above every id before, a node written
again (the same content put by a later height) moves to a new id, and ``node_heights`` keeps
the first id of each height. So the nodes with ids below the first id of height E were last
written before E, and the only ones of them a root at E or later can still reach are those
the root at E reaches (the tries are persistent: a new node refers to nodes it wrote in the
same height or to nodes the previous root reached).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

SCHEMA = """
-- Nodes land in rowid order with a separate hash index: random 32-byte keys over rows of up
-- to ~500 bytes made a WITHOUT ROWID table split and rebalance large leaf pages on every
-- insert (a height's commit took twice as long). Databases made before keep their layout;
-- both answer the same statements.
CREATE TABLE IF NOT EXISTS nodes   (id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks  (height INTEGER PRIMARY KEY, hash BLOB NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs     (hash BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL,
                                    data BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS txs_by_height ON txs (height, idx);
CREATE TABLE IF NOT EXISTS meta    (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state   (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
-- The first node id of each height (see the module doc); only on databases whose nodes have ids.
CREATE TABLE IF NOT EXISTS node_heights (height INTEGER PRIMARY KEY, first_id INTEGER NOT NULL);
"""

DEFAULT_NODE_CACHE_BYTES = 64 << 20
DEFAULT_SQLITE_CACHE_BYTES = 64 << 20
# Per-entry bookkeeping (dict slot, key object, list links) counted against the byte bound.
_ENTRY_OVERHEAD = 120


class DatabaseError(RuntimeError):
    """The node database is unreadable or inconsistent."""


class NodeCache:
    """Least-recently-used map of node hash -> encoding, bounded by the bytes it holds.

    Safe without invalidation because the store is content-addressed (see module doc).
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("node cache size must be >= 0")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> bytes | None:
        hit = self._entries.get(key)
        if hit is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return hit

    def discard(self, keys: Iterable[bytes]) -> None:
        for key in keys:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= len(key) + len(old) + _ENTRY_OVERHEAD

    def add(self, key: bytes, value: bytes) -> None:
        cost = len(key) + len(value) + _ENTRY_OVERHEAD
        if cost > self.max_bytes or key in self._entries:
            return
        self._entries[key] = value
        self.bytes += cost
        entries = self._entries
        while self.bytes > self.max_bytes:
            old_key, old = entries.popitem(last=False)
            self.bytes -= len(old_key) + len(old) + _ENTRY_OVERHEAD
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
    def __init__(
        self,
        path: Path,
        *,
        durable: bool = False,
        node_cache_bytes: int = DEFAULT_NODE_CACHE_BYTES,
        sqlite_cache_bytes: int = DEFAULT_SQLITE_CACHE_BYTES,
    ) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._conn.execute("PRAGMA foreign_keys=ON")
        # Node inserts land at random keys of a large B-tree: SQLite's default 2 MB page
        # cache made each height's commit re-read the pages it was about to update.
        self._conn.execute(f"PRAGMA cache_size={-max(1, sqlite_cache_bytes >> 10)}")
        self._conn.executescript(SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(nodes)")}
        # Databases from before node ids keep hash-keyed rows: they work, but cannot be pruned.
        self.node_ids = "id" in columns
        row = self._conn.execute("SELECT MAX(id) FROM nodes").fetchone() if self.node_ids else None
        self._next_id = (int(row[0]) + 1) if row is not None and row[0] is not None else 1
        self.node_cache = NodeCache(node_cache_bytes)
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
            hit = self.node_cache.get(key)
            if hit is not None:
                return hit
            row = self._conn.execute("SELECT data FROM nodes WHERE hash = ?", (key,)).fetchone()
            if row is None:
                return None
            data = bytes(row[0])
            self.node_cache.add(bytes(key), data)
        return data

    def get_state(self, key: bytes) -> bytes | None:
        """The latest committed value of a flat-state key (see module doc)."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def get_states(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Several flat-state values in one statement, in the order of ``keys``."""
        if not keys:
            return []
        found: dict[bytes, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start:start + 500])
                marks = ",".join("?" * len(chunk))
                for k, v in self._conn.execute(f"SELECT key, value FROM state WHERE key IN ({marks})", chunk):
                    found[bytes(k)] = bytes(v)
        return [found.get(bytes(k)) for k in keys]

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

    def get_block_hash(self, height: int) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT hash FROM blocks WHERE height = ?", (height,)).fetchone()
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
        state: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        """Persist a height atomically: buffered nodes, the block, its tx results, metadata,
        and the height's changes to the flat state (None deletes a key)."""
        latest = self.latest_height()
        if latest and height != latest + 1:
            raise DatabaseError(f"height {height} does not follow the last committed height {latest}")
        nodes = self.nodes.drain()
        try:
            with self._tx() as c:
                first_id = self._insert_nodes(c, nodes)
                if first_id is not None:
                    c.execute("INSERT OR REPLACE INTO node_heights (height, first_id) VALUES (?, ?)",
                              (height, first_id))
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
                if state:
                    self._write_state(c, state)
                for writer in self._writers.values():
                    for sql, rows in writer.pending_writes():
                        c.executemany(sql, rows)
        except sqlite3.Error as exc:
            # Put the nodes back so a retry of the same height finds them.
            for k, v in nodes.items():
                self.nodes.put(k, v)
            raise DatabaseError(f"could not commit height {height}: {exc}") from exc
        self._next_id += len(nodes) if self.node_ids else 0
        with self._lock:
            add = self.node_cache.add
            for k, v in nodes.items():
                add(k, v)
        for writer in self._writers.values():
            writer.written()

    @staticmethod
    def _write_state(c: sqlite3.Connection, state: Mapping[bytes, bytes | None]) -> None:
        c.executemany(
            "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(k, v) for k, v in state.items() if v is not None],
        )
        c.executemany("DELETE FROM state WHERE key = ?", [(k,) for k, v in state.items() if v is None])

    def write_state(self, state: Mapping[bytes, bytes | None], meta: dict[str, bytes] | None = None) -> None:
        """Flat-state changes (and metadata) outside a height: an app (re)building its index.

        Buffered nodes are persisted too, so the index never names a root that is not on disk.
        """
        nodes = self.nodes.drain()
        try:
            with self._tx() as c:
                self._insert_nodes(c, nodes)
                self._write_state(c, state)
                if meta:
                    c.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        meta.items(),
                    )
        except sqlite3.Error as exc:
            for k, v in nodes.items():
                self.nodes.put(k, v)
            raise DatabaseError(f"could not write the state index: {exc}") from exc
        self._next_id += len(nodes) if self.node_ids else 0

    def _insert_nodes(self, c: sqlite3.Connection, nodes: Mapping[bytes, bytes]) -> int | None:
        """Write nodes with ids from ``_next_id`` on (a node already stored moves to its new id);
        the first id used, or None on a database without node ids."""
        if not self.node_ids:
            c.executemany("INSERT OR IGNORE INTO nodes (hash, data) VALUES (?, ?)", nodes.items())
            return None
        first = self._next_id
        c.executemany("INSERT OR REPLACE INTO nodes (id, hash, data) VALUES (?, ?, ?)",
                      [(first + i, k, v) for i, (k, v) in enumerate(nodes.items())])
        return first

    def set_meta(self, key: str, value: bytes) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- pruning (chains/node/prune.py) -----------------------------------------------

    def first_node_id(self, height: int) -> int | None:
        """The first node id of ``height``: nodes below it were last written before it."""
        with self._lock:
            row = self._conn.execute("SELECT first_id FROM node_heights WHERE height = ?", (height,)).fetchone()
        return None if row is None else int(row[0])

    def node_rows(self, hashes: Sequence[bytes]) -> dict[bytes, tuple[int, bytes]]:
        """hash -> (id, data) of the stored nodes among ``hashes`` (absent ones are left out)."""
        found: dict[bytes, tuple[int, bytes]] = {}
        with self._lock:
            for start in range(0, len(hashes), 500):
                chunk = list(hashes[start:start + 500])
                marks = ",".join("?" * len(chunk))
                for i, h, d in self._conn.execute(f"SELECT id, hash, data FROM nodes WHERE hash IN ({marks})", chunk):
                    found[bytes(h)] = (int(i), bytes(d))
        return found

    def node_ids_between(self, start: int, end: int, limit: int) -> list[tuple[int, bytes]]:
        """(id, hash) of nodes with start <= id < end, in id order, at most ``limit``."""
        with self._lock:
            rows = self._conn.execute("SELECT id, hash FROM nodes WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                                      (start, end, limit)).fetchall()
        return [(int(i), bytes(h)) for i, h in rows]

    def delete_nodes(self, doomed: Sequence[tuple[int, bytes]]) -> None:
        """Delete nodes by id in one transaction; their cache entries go too."""
        if not doomed:
            return
        with self._tx() as c:
            c.executemany("DELETE FROM nodes WHERE id = ?", [(i,) for i, _ in doomed])
        with self._lock:
            self.node_cache.discard(h for _, h in doomed)

    def prune_below(self, height: int, limit: int, extra: Sequence[tuple[str, str, str]] = ()) -> int:
        """Delete up to ``limit`` rows per table of heights below ``height``: blocks, their tx
        results, node id marks, and each ``extra`` (table, key column, height column) an app
        adds. The latest block is never below the retained window. Rows deleted."""
        deleted = 0
        tables = [("blocks", "height", "height"), ("txs", "hash", "height"), ("node_heights", "height", "height"),
                  *extra]
        with self._tx() as c:
            for table, key, column in tables:
                cur = c.execute(f"DELETE FROM {table} WHERE {key} IN "
                                f"(SELECT {key} FROM {table} WHERE {column} < ? LIMIT ?)", (height, limit))
                deleted += max(cur.rowcount, 0)
        return deleted

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """One write statement in its own transaction (an app's pruning); rows changed."""
        with self._tx() as c:
            cur = c.execute(sql, params)
        return max(cur.rowcount, 0)

    def used_bytes(self) -> int:
        """Bytes of database pages in use (WAL content included, free pages not): what the data
        takes, whatever the file size SQLite keeps for reuse."""
        with self._lock:
            pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
            free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
            size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def file_bytes(self) -> int:
        """Bytes on disk: the database file and its WAL."""
        return sum(p.stat().st_size for p in (self.path, self.path.with_name(self.path.name + "-wal")) if p.exists())
