"""The notary cluster's persistent state, behind the narrow storage interface it needs.

Why an interface: a node must restart at its last height without replaying history, so the
UTXO ledger cannot live only in the cluster's memory. The cluster asks little of its store
(an output and whether it is consumed, whether a txid is notarised, record a notarised tx,
record and read checkpoints), all point lookups or appends; the node implements them over
SQLite inside the height's transaction (chains/node/apps/corda_store.py), tests and in-memory
hosts use :class:`MemoryLedgerStore`. Like the SMT's node store, the store never decides
anything: validation stays in the cluster, so both stores give the same ledger.

Recording rules the cluster relies on (any store must keep them):
- ``add_transaction(stx, height)`` is called once per notarised tx, in notarisation order,
  after every check passed: each input becomes consumed by ``stx.txid``, each output becomes
  an unconsumed output created at ``height``, and the txid counts as notarised;
- ``add_checkpoint`` is called once per height, in height order, after that height's txs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chains.corda.batch import NotaryBatch
from chains.corda.transaction import SignedTransaction, ref_key
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.corda.v1 import lightclient_pb2 as lc


@dataclass
class SignedCheckpoint:
    checkpoint: lc.Checkpoint
    signatures: list[lc.NotarySignature]
    notary_set: list[bytes]
    batch: NotaryBatch | None = None  # the members' batch signatures over the height's txids

    def header(self, trusted_height: int) -> lc.Header:
        return lc.Header(
            checkpoint=self.checkpoint,
            signatures=self.signatures,
            trusted_height=trusted_height,
            notary_set=lc.NotarySet(public_keys=self.notary_set),
        )


@dataclass(frozen=True)
class LedgerOutput:
    """An output as the ledger holds it: the state, its creation height, who consumed it."""

    state: pb.TransactionState
    height: int
    consumed_by: bytes | None


class LedgerStore(Protocol):
    def output(self, txid: bytes, index: int, /) -> LedgerOutput | None:
        """The output (txid, index), consumed or not; None if no notarised tx created it."""
        ...

    def notarised_at(self, txid: bytes, /) -> int | None:
        """Height of the notarised tx ``txid`` (pending height included), else None."""
        ...

    def add_transaction(self, stx: SignedTransaction, height: int, /) -> None: ...

    def add_checkpoint(self, signed: SignedCheckpoint, /) -> None: ...

    def checkpoint(self, height: int, /) -> SignedCheckpoint | None: ...

    def latest_checkpoint(self) -> SignedCheckpoint | None: ...


class MemoryLedgerStore:
    """Everything in dicts: for tests and in-memory hosts, whose history fits in memory."""

    def __init__(self) -> None:
        self._outputs: dict[tuple[bytes, int], LedgerOutput] = {}
        self._txs: dict[bytes, tuple[int, SignedTransaction]] = {}
        self._checkpoints: list[SignedCheckpoint] = []

    def output(self, txid: bytes, index: int, /) -> LedgerOutput | None:
        return self._outputs.get((bytes(txid), int(index)))

    def notarised_at(self, txid: bytes, /) -> int | None:
        found = self._txs.get(bytes(txid))
        return found[0] if found is not None else None

    def transaction(self, txid: bytes) -> SignedTransaction | None:
        """The notarised tx itself (kept only here: the node keeps txs in its blocks)."""
        found = self._txs.get(bytes(txid))
        return found[1] if found is not None else None

    def unconsumed(self) -> list[tuple[pb.StateRef, pb.TransactionState]]:
        """Every unconsumed output in ledger order (a full scan, for tests)."""
        return [(pb.StateRef(txid=t, index=i), out.state) for (t, i), out in self._outputs.items()
                if out.consumed_by is None]

    def consumed(self) -> dict[tuple[bytes, int], bytes]:
        """Every consumed output and its consumer (a full scan, for tests)."""
        return {ref: out.consumed_by for ref, out in self._outputs.items() if out.consumed_by is not None}

    def __len__(self) -> int:
        return len(self._txs)

    def add_transaction(self, stx: SignedTransaction, height: int, /) -> None:
        txid = stx.txid
        for ref in stx.wtx.inputs:
            key = ref_key(ref)
            out = self._outputs[key]
            self._outputs[key] = LedgerOutput(out.state, out.height, txid)
        for i, state in enumerate(stx.wtx.outputs):
            self._outputs[(txid, i)] = LedgerOutput(state, height, None)
        self._txs[txid] = (height, stx)

    def add_checkpoint(self, signed: SignedCheckpoint, /) -> None:
        if signed.checkpoint.height != len(self._checkpoints) + 1:
            raise ValueError("checkpoints are recorded in height order")
        self._checkpoints.append(signed)

    def checkpoint(self, height: int, /) -> SignedCheckpoint | None:
        return self._checkpoints[height - 1] if 1 <= height <= len(self._checkpoints) else None

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        return self._checkpoints[-1] if self._checkpoints else None
