"""The Corda ledger on SQLite: the notary cluster's LedgerStore and the node's ledger indexes.

Why on disk rather than in the cluster's memory: a node restarts at its last height by
reading this snapshot (its latest checkpoint row), not by replaying every block, and its
memory no longer grows with history. Every row of a height lands in the height's SQLite
transaction (``NodeDatabase.attach``), so a node killed at any instant finds the ledger at
exactly its last committed block.

Tables:
- ``corda_outputs``: every output ever notarised, keyed by (txid, idx), with its index key
  (contract, owner: see :func:`state_key`), creation (height, position of the tx in the
  height) and, once consumed, the consuming txid and height. The primary key is the
  uniqueness check (is this input consumed?); ``corda_outputs_by_key`` serves the ledger
  queries: the states of one (contract, owner) unconsumed at a height are the key's rows with
  ``consumed_at`` NULL or above that height, two index ranges, so a query costs the key's own
  states and never anybody else's history.
- ``corda_txs``: notarised txid -> height (a txid is notarised once).
- ``corda_locks``: DvP trade id -> its lock output, and how it ended (the exit command that
  consumed it), for the ``dvp_lock`` query.
- ``corda_checkpoints``: height -> the signed checkpoint (the light-client header encoding)
  and the members' batch signatures (chains/corda/batch.py).

While a block is produced, writes wait in memory (the overlay) and reads of the cluster see
them; the app's queries read committed rows only, as they run at committed heights.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from chains.corda.batch import NotaryBatch
from chains.corda.cash import CASH
from chains.corda.dvp import DVP, EXITS, lock_of
from chains.corda.ledger import LedgerOutput, SignedCheckpoint
from chains.corda.transaction import SignedTransaction, ref_key
from chains.node.db import DatabaseError, NodeDatabase
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.dvp.v1 import dvp_pb2
from lightclients.corda.client import encode

SCHEMA = """
CREATE TABLE IF NOT EXISTS corda_outputs (
    txid BLOB NOT NULL, idx INTEGER NOT NULL, contract TEXT NOT NULL, owner BLOB NOT NULL, state BLOB NOT NULL,
    created INTEGER NOT NULL, pos INTEGER NOT NULL, consumed_by BLOB, consumed_at INTEGER,
    PRIMARY KEY (txid, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS corda_outputs_by_key ON corda_outputs (contract, owner, consumed_at, created, pos, idx);
CREATE TABLE IF NOT EXISTS corda_txs (txid BLOB PRIMARY KEY, height INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS corda_locks (trade_id TEXT PRIMARY KEY, txid BLOB NOT NULL, idx INTEGER NOT NULL,
                                        exit_kind TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS corda_checkpoints (height INTEGER PRIMARY KEY, header BLOB NOT NULL, batch BLOB);
"""
# Only a pruning node needs these (created on its first prune): consumed outputs by when, and
# lock outputs by output.
PRUNE_SCHEMA = """
CREATE INDEX IF NOT EXISTS corda_outputs_by_consumed ON corda_outputs (consumed_at) WHERE consumed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS corda_locks_by_output ON corda_locks (txid, idx);
"""
WRITER = "corda.ledger"
_CHECKPOINT_CACHE = 256

StateKey = tuple[str, bytes]
"""(contract, owner): the owner is the Cash owner for Cash states and b"" for every other
contract (and for Cash whose data does not decode, which no owner query can ask for)."""


def state_key(state: pb.TransactionState) -> StateKey:
    """Where an output is filed; the Cash contract already refused any Cash that does not decode."""
    if state.contract != CASH:
        return (state.contract, b"")
    try:
        return (CASH, bytes(pb.Cash.FromString(state.data).owner))
    except DecodeError:
        return (CASH, b"")


@dataclass(frozen=True)
class IndexedState:
    """One output as a ledger query returns it, in ledger order (created, pos, index)."""

    txid: bytes
    index: int
    state: pb.TransactionState
    created: int
    pos: int

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.created, self.pos, self.index)


@dataclass(frozen=True)
class LockRecord:
    """A trade's DvpLock output and its fate, as of the committed state."""

    txid: bytes
    index: int
    state: pb.TransactionState
    created: int
    consumed_by: bytes | None
    consumed_at: int | None
    exit_kind: str | None


@dataclass
class _NewOutput:
    state: pb.TransactionState
    key: StateKey
    created: int
    pos: int
    consumed_by: bytes | None = None
    consumed_at: int | None = None


@dataclass
class _Overlay:
    """The pending height's writes, in the order they were made."""

    outputs: dict[tuple[bytes, int], _NewOutput] = field(default_factory=dict)
    spent: dict[tuple[bytes, int], tuple[bytes, int]] = field(default_factory=dict)  # committed outputs
    txs: dict[bytes, int] = field(default_factory=dict)
    locks: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    exits: dict[str, str] = field(default_factory=dict)
    checkpoints: dict[int, SignedCheckpoint] = field(default_factory=dict)


def _exit_kinds(commands: Sequence[pb.Command]) -> dict[str, str]:
    """trade id -> exit command name, for the DvP exits a verified tx carries."""
    out: dict[str, str] = {}
    for c in commands:
        if c.contract == DVP and c.name in EXITS:
            try:
                out[dvp_pb2.DvpCommand.FromString(c.data).trade_id] = str(c.name)
            except DecodeError:
                continue
    return out


def _signed_checkpoint(header: bytes, batch: bytes | None) -> SignedCheckpoint:
    h = lc.Header.FromString(header)
    return SignedCheckpoint(h.checkpoint, list(h.signatures), [bytes(k) for k in h.notary_set.public_keys],
                            NotaryBatch.decode(batch) if batch else None)


class SqliteLedgerStore:
    """:class:`chains.corda.ledger.LedgerStore` over the node database, plus the query reads.

    Build a new one to drop the pending height (the node does so to discard a block): the
    overlay is its only mutable state besides small caches of committed, immutable rows.
    """

    def __init__(self, db: NodeDatabase) -> None:
        self.db = db
        db.ensure_schema(SCHEMA)
        db.attach(WRITER, self)
        self._pending = _Overlay()
        self._pos = 0  # position of the next notarised tx in the pending height
        self._cache: OrderedDict[int, SignedCheckpoint] = OrderedDict()
        self.visited = 0  # rows the ledger queries read (the cost measure tests and benches use)
        self._prune_indexes = False
        rows = db.read("SELECT height, header, batch FROM corda_checkpoints ORDER BY height DESC LIMIT 1")
        self._latest: SignedCheckpoint | None = None
        if rows:
            height, header, batch = rows[0]
            try:
                self._latest = _signed_checkpoint(bytes(header), bytes(batch) if batch else None)
            except (DecodeError, ValueError) as exc:
                raise DatabaseError(f"the checkpoint at height {height} is unreadable: {exc}") from None

    # --- LedgerStore ------------------------------------------------------------------

    def output(self, txid: bytes, index: int, /) -> LedgerOutput | None:
        key = (bytes(txid), int(index))
        new = self._pending.outputs.get(key)
        if new is not None:
            return LedgerOutput(new.state, new.created, new.consumed_by)
        rows = self.db.read("SELECT state, created, consumed_by FROM corda_outputs WHERE txid = ? AND idx = ?", key)
        if not rows:
            return None
        state, created, consumed_by = rows[0]
        spent = self._pending.spent.get(key)
        if spent is not None:
            consumed_by = spent[0]
        return LedgerOutput(pb.TransactionState.FromString(bytes(state)),
                            int(created), bytes(consumed_by) if consumed_by is not None else None)

    def notarised_at(self, txid: bytes, /) -> int | None:
        height = self._pending.txs.get(bytes(txid))
        if height is not None:
            return height
        rows = self.db.read("SELECT height FROM corda_txs WHERE txid = ?", (bytes(txid),))
        return int(rows[0][0]) if rows else None

    def add_transaction(self, stx: SignedTransaction, height: int, /) -> None:
        p = self._pending
        txid = stx.txid
        for ref in stx.wtx.inputs:
            key = ref_key(ref)
            new = p.outputs.get(key)
            if new is not None:
                new.consumed_by, new.consumed_at = txid, height
            else:
                p.spent[key] = (txid, height)
        for i, state in enumerate(stx.wtx.outputs):
            p.outputs[(txid, i)] = _NewOutput(state, state_key(state), height, self._pos)
            lock = lock_of(state)
            if lock is not None:
                p.locks[lock.trade_id] = (txid, i)
        p.exits.update(_exit_kinds(stx.wtx.commands))
        p.txs[txid] = height
        self._pos += 1

    def add_checkpoint(self, signed: SignedCheckpoint, /) -> None:
        expected = (self._latest.checkpoint.height if self._latest is not None else 0) + 1
        if signed.checkpoint.height != expected:
            raise DatabaseError(f"checkpoint {signed.checkpoint.height} does not follow {expected - 1}")
        self._pending.checkpoints[signed.checkpoint.height] = signed
        self._latest = signed
        self._pos = 0

    def checkpoint(self, height: int, /) -> SignedCheckpoint | None:
        signed = self._pending.checkpoints.get(height) or self._cache.get(height)
        if signed is not None:
            return signed
        rows = self.db.read("SELECT header, batch FROM corda_checkpoints WHERE height = ?", (height,))
        if not rows:
            return None
        header, batch = rows[0]
        signed = _signed_checkpoint(bytes(header), bytes(batch) if batch else None)
        self._remember(height, signed)
        return signed

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        return self._latest

    def _remember(self, height: int, signed: SignedCheckpoint) -> None:
        self._cache[height] = signed
        if len(self._cache) > _CHECKPOINT_CACHE:
            self._cache.popitem(last=False)

    # --- HeightWriter -----------------------------------------------------------------

    def pending_writes(self) -> list[tuple[str, Sequence[Sequence[object]]]]:
        p = self._pending
        return [
            ("INSERT INTO corda_outputs (txid, idx, contract, owner, state, created, pos, consumed_by, consumed_at) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
             [(t, i, o.key[0], o.key[1], o.state.SerializeToString(deterministic=True), o.created, o.pos,
               o.consumed_by, o.consumed_at) for (t, i), o in p.outputs.items()]),
            ("UPDATE corda_outputs SET consumed_by = ?, consumed_at = ? WHERE txid = ? AND idx = ?",
             [(by, at, t, i) for (t, i), (by, at) in p.spent.items()]),
            ("INSERT INTO corda_txs (txid, height) VALUES (?, ?)", list(p.txs.items())),
            ("INSERT OR REPLACE INTO corda_locks (trade_id, txid, idx, exit_kind) VALUES (?, ?, ?, ?)",
             [(trade, t, i, p.exits.get(trade)) for trade, (t, i) in p.locks.items()]),
            ("UPDATE corda_locks SET exit_kind = ? WHERE trade_id = ?",
             [(kind, trade) for trade, kind in p.exits.items() if trade not in p.locks]),
            ("INSERT INTO corda_checkpoints (height, header, batch) VALUES (?, ?, ?)",
             [(h, encode(s.header(0)), s.batch.encode() if s.batch is not None else None)
              for h, s in p.checkpoints.items()]),
        ]

    def written(self) -> None:
        for height, signed in self._pending.checkpoints.items():
            self._remember(height, signed)
        self._pending = _Overlay()

    # --- the node's ledger queries (committed rows only) ------------------------------

    def unconsumed(self, key: StateKey, height: int, limit: int | None = None) -> list[IndexedState]:
        """The states of ``key`` unconsumed at ``height``, in ledger order; the first ``limit``.

        Two ranges of ``corda_outputs_by_key``: the live rows created by ``height`` (in ledger
        order, so the limit stops the read early), and the rows consumed after ``height``
        (what the key lost since; nothing at the latest height), merged back into order.
        """
        contract, owner = key
        live_sql = ("SELECT txid, idx, state, created, pos FROM corda_outputs INDEXED BY corda_outputs_by_key "
                    "WHERE contract = ? AND owner = ? AND consumed_at IS NULL AND created <= ? "
                    "ORDER BY created, pos, idx")
        live = self.db.read(live_sql + (" LIMIT ?" if limit is not None else ""),
                            (contract, owner, height, limit) if limit is not None else (contract, owner, height))
        # Rows the key lost after ``height``; those created after it too are read and dropped
        # here, so ``visited`` counts every row the index range holds.
        back = self.db.read(
            "SELECT txid, idx, state, created, pos FROM corda_outputs INDEXED BY corda_outputs_by_key "
            "WHERE contract = ? AND owner = ? AND consumed_at > ?", (contract, owner, height))
        self.visited += len(live) + len(back)
        back = [r for r in back if r[3] <= height]
        rows = [IndexedState(bytes(t), int(i), pb.TransactionState.FromString(bytes(s)), int(c), int(p))
                for t, i, s, c, p in [*live, *back]]
        if back:
            rows.sort(key=lambda r: r.order)
        return rows[:limit] if limit is not None else rows

    def prune(self, below: int, limit: int) -> int:
        """Delete up to ``limit`` checkpoints below ``below`` and as many outputs consumed
        before it, keeping DvP lock outputs (see CordaApp.prune_history); rows deleted."""
        if not self._prune_indexes:
            self.db.ensure_schema(PRUNE_SCHEMA)
            self._prune_indexes = True
        for height in [h for h in self._cache if h < below]:
            del self._cache[height]
        n = self.db.execute("DELETE FROM corda_checkpoints WHERE height IN "
                            "(SELECT height FROM corda_checkpoints WHERE height < ? LIMIT ?)", (below, limit))
        n += self.db.execute(
            "DELETE FROM corda_outputs WHERE (txid, idx) IN (SELECT o.txid, o.idx FROM corda_outputs o "
            "INDEXED BY corda_outputs_by_consumed WHERE o.consumed_at < ? AND NOT EXISTS "
            "(SELECT 1 FROM corda_locks l WHERE l.txid = o.txid AND l.idx = o.idx) LIMIT ?)", (below, limit))
        return n

    def lock(self, trade_id: str) -> LockRecord | None:
        rows = self.db.read(
            "SELECT l.txid, l.idx, o.state, o.created, o.consumed_by, o.consumed_at, l.exit_kind "
            "FROM corda_locks l JOIN corda_outputs o ON o.txid = l.txid AND o.idx = l.idx WHERE l.trade_id = ?",
            (trade_id,))
        if not rows:
            return None
        t, i, state, created, by, at, kind = rows[0]
        return LockRecord(bytes(t), int(i), pb.TransactionState.FromString(bytes(state)), int(created),
                          bytes(by) if by is not None else None, int(at) if at is not None else None,
                          str(kind) if kind is not None else None)
