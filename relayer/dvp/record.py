"""The settlement client's own record of the trades it handled (SQLite, WAL).

Why keep one when the chains are the truth: ``dvp list`` and the feed's report need the
trades this client touched, their terms (the chains keep only a hash on the EVM side), when
they were locked (the latency histogram) and which back-office events were already
published (so a restarted client publishes each event once). The state column is only a
cache of what the chains said last; ``status`` re-reads the chains and overwrites it.

WAL lets ``dvp status`` / ``dvp list`` read while a feed writes; each write is its own short
transaction, so a killed client loses at most the write in flight.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kakehashi.dvp.v1 import dvp_pb2

SCHEMA = """
CREATE TABLE IF NOT EXISTS trades (
    trade_id     TEXT PRIMARY KEY,
    terms        BLOB,
    timeout_ns   INTEGER,
    channel      TEXT,
    state        TEXT NOT NULL,
    evm_status   TEXT NOT NULL DEFAULT 'none',
    corda_status TEXT NOT NULL DEFAULT 'none',
    sequence     INTEGER,
    evm_lock_tx  TEXT,
    corda_lock_tx TEXT,
    corda_exit_tx TEXT,
    error        TEXT,
    published    TEXT NOT NULL DEFAULT '[]',
    created_s    REAL NOT NULL,
    locked_s     REAL,
    final_s      REAL,
    updated_s    REAL NOT NULL,
    st_chain     TEXT
);
"""
# Columns added after the first release: (name, SQL type); a record file without them gains them on open.
_ADDED = (("st_chain", "TEXT"),)
_COLUMNS = ("terms", "timeout_ns", "channel", "state", "evm_status", "corda_status", "sequence", "evm_lock_tx",
            "corda_lock_tx", "corda_exit_tx", "error", "locked_s", "final_s", "st_chain")


class RecordError(RuntimeError):
    """The trade record cannot be opened or written."""


@dataclass
class TradeRow:
    trade_id: str
    state: str
    terms: dvp_pb2.Terms | None = None
    timeout_ns: int | None = None
    channel: str | None = None
    evm_status: str = "none"
    corda_status: str = "none"
    sequence: int | None = None
    evm_lock_tx: str | None = None
    corda_lock_tx: str | None = None
    corda_exit_tx: str | None = None
    error: str | None = None
    published: list[str] = field(default_factory=list)
    created_s: float = 0.0
    locked_s: float | None = None
    final_s: float | None = None
    updated_s: float = 0.0
    st_chain: str | None = None  # the ST chain (path) the trade settled on; None before multi-path records

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "trade_id": self.trade_id, "state": self.state, "evm_status": self.evm_status,
            "corda_status": self.corda_status, "sequence": self.sequence, "channel": self.channel,
            "timeout_ns": self.timeout_ns, "evm_lock_tx": self.evm_lock_tx, "corda_lock_tx": self.corda_lock_tx,
            "corda_exit_tx": self.corda_exit_tx, "error": self.error, "events": list(self.published),
            "created_s": self.created_s, "locked_s": self.locked_s, "final_s": self.final_s,
            "st_chain": self.st_chain,
        }
        if self.terms is not None:
            t = self.terms
            doc["terms"] = {
                "security_token": "0x" + t.security_token.hex(), "st_quantity": t.st_quantity,
                "cash_issuer": t.cash_issuer.hex(), "sc_brand": t.sc_brand, "sc_amount": t.sc_amount,
                "seller": {"evm": "0x" + t.seller_evm.hex(), "corda": t.seller_corda.hex()},
                "buyer": {"evm": "0x" + t.buyer_evm.hex(), "corda": t.buyer_corda.hex()},
                "deadline_ns": t.deadline_ns,
            }
        return doc


class TradeRecord:
    """One SQLite file; safe to share between the tasks of one event loop and across processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            have = {r[1] for r in self._db.execute("PRAGMA table_info(trades)")}
            for name, kind in _ADDED:
                if name not in have:
                    self._db.execute(f"ALTER TABLE trades ADD COLUMN {name} {kind}")
        except (sqlite3.Error, OSError) as exc:
            raise RecordError(f"trade record {self.path}: {exc}") from None
        self._lock = threading.Lock()
        self.defaults: dict[str, Any] = {}

    def scoped(self, **defaults: Any) -> TradeRecord:
        """This record (same file and connection) filling ``defaults`` into every row it creates:
        each ST chain's settlement client writes its ``st_chain`` so. Close the original only."""
        view = copy.copy(self)
        view.defaults = {**self.defaults, **defaults}
        return view

    def close(self) -> None:
        self._db.close()

    def get(self, trade_id: str) -> TradeRow | None:
        with self._lock:
            cur = self._db.execute("SELECT * FROM trades WHERE trade_id = ?", (trade_id,))
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        return _row(dict(zip(names, row, strict=True))) if row is not None else None

    def all(self) -> list[TradeRow]:
        with self._lock:
            cur = self._db.execute("SELECT * FROM trades ORDER BY created_s, trade_id")
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return [_row(dict(zip(names, r, strict=True))) for r in rows]

    def changed_since(self, updated_s: float) -> list[TradeRow]:
        """Rows written at or after ``updated_s`` (a watcher's incremental read; ties re-read)."""
        with self._lock:
            cur = self._db.execute("SELECT * FROM trades WHERE updated_s >= ? ORDER BY updated_s, trade_id",
                                   (updated_s,))
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return [_row(dict(zip(names, r, strict=True))) for r in rows]

    def create(self, trade_id: str, state: str, **values: Any) -> TradeRow:
        """Insert the trade, or update it when this client saw it before (a retried settle)."""
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO trades (trade_id, state, created_s, updated_s) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(trade_id) DO NOTHING", (trade_id, state, now, now))
        self.update(trade_id, state=state, **{**self.defaults, **values})
        row = self.get(trade_id)
        assert row is not None
        return row

    def update(self, trade_id: str, **values: Any) -> None:
        sets, args = [], []
        for key, value in values.items():
            if key not in _COLUMNS:
                raise RecordError(f"unknown trade column {key!r}")
            if key == "terms" and isinstance(value, dvp_pb2.Terms):
                value = value.SerializeToString(deterministic=True)
            sets.append(f"{key} = ?")
            args.append(value)
        sets.append("updated_s = ?")
        args.append(time.time())
        with self._lock:
            self._db.execute(f"UPDATE trades SET {', '.join(sets)} WHERE trade_id = ?", (*args, trade_id))

    def mark_published(self, trade_id: str, event: str) -> bool:
        """Record that ``event`` went out for the trade; False when it already had."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT published FROM trades WHERE trade_id = ?", (trade_id,)).fetchone()
                done = json.loads(row[0]) if row is not None else []
                if event in done:
                    self._db.execute("COMMIT")
                    return False
                if row is not None:
                    self._db.execute("UPDATE trades SET published = ? WHERE trade_id = ?",
                                     (json.dumps([*done, event]), trade_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return True


def _row(d: dict[str, Any]) -> TradeRow:
    terms = dvp_pb2.Terms.FromString(d["terms"]) if d["terms"] is not None else None
    return TradeRow(
        trade_id=d["trade_id"], state=d["state"], terms=terms, timeout_ns=d["timeout_ns"], channel=d["channel"],
        evm_status=d["evm_status"], corda_status=d["corda_status"], sequence=d["sequence"],
        evm_lock_tx=d["evm_lock_tx"], corda_lock_tx=d["corda_lock_tx"], corda_exit_tx=d["corda_exit_tx"],
        error=d["error"], published=list(json.loads(d["published"])), created_s=d["created_s"],
        locked_s=d["locked_s"], final_s=d["final_s"], updated_s=d["updated_s"], st_chain=d.get("st_chain"),
    )
