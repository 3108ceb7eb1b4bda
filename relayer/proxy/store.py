"""The proxy's persistent store of hosted clients: one SQLite file, one key space per client.

Why a write buffer per request: the enclave logic writes through a ClientStore as it goes,
and a request that fails half-way must leave nothing behind (a rejected header changes no
hosted client). Each request works on a :class:`HostedStore` and the service commits it in
one SQLite transaction only when the request succeeded (or, for a detected equivocation,
when the freeze must stick). WAL with ``synchronous=NORMAL`` survives SIGKILL, as the
nodes' databases do.

The store itself is untrusted, as a real enclave's host storage is: a tampered consensus
state changes the state id the enclave computes from it, and the chain then refuses the
update as a broken state-id chain.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class ProxyStore:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (client TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
                        "PRIMARY KEY (client, key)) WITHOUT ROWID")

    def close(self) -> None:
        self.db.close()

    def get(self, client: str, key: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM kv WHERE client = ? AND key = ?", (client, key)).fetchone()
        return None if row is None else bytes(row[0])

    def clients(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT client FROM kv ORDER BY client")]

    def view(self, client: str, fresh: bool = False) -> HostedStore:
        """A write buffer over one hosted client's keys; ``fresh`` starts from an empty client
        (the old one is dropped when this buffer is committed)."""
        return HostedStore(self, client, fresh)


class HostedStore:
    """A ClientStore over one hosted client, buffering writes until :meth:`commit`."""

    def __init__(self, parent: ProxyStore, client: str, fresh: bool) -> None:
        self.parent = parent
        self.client = client
        self.fresh = fresh
        self.writes: dict[str, bytes | None] = {}

    def get(self, key: str) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return None if self.fresh else self.parent.get(self.client, key)

    def set(self, key: str, value: bytes) -> None:
        self.writes[key] = bytes(value)

    def delete(self, key: str) -> None:
        self.writes[key] = None

    def exists(self) -> bool:
        return self.get("clientState") is not None

    def commit(self) -> None:
        db = self.parent.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if self.fresh:
                db.execute("DELETE FROM kv WHERE client = ?", (self.client,))
            for key, value in sorted(self.writes.items()):
                if value is None:
                    db.execute("DELETE FROM kv WHERE client = ? AND key = ?", (self.client, key))
                else:
                    db.execute("INSERT OR REPLACE INTO kv (client, key, value) VALUES (?, ?, ?)",
                               (self.client, key, value))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.writes.clear()
        self.fresh = False
