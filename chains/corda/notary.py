"""The validating notary cluster: per-member validation, uniqueness, and signed checkpoints.

Each member validates independently before it signs a txid (signatures, contracts, time
window against *its own* clock reading, uniqueness), so a transaction is notarised only when
a BFT quorum (strictly more than 2/3, i.e. 2f+1 of 3f+1) agrees. Members that refuse are
reported with their reasons; uniqueness is committed only once a quorum has signed, so a
failed notarisation consumes nothing.

Ordering: the cluster appends notarised txids to the pending height in notarisation order;
``checkpoint()`` seals them into the next height. Two transactions consuming the same state
can never both be notarised, which is also how concurrent transactions touching the same IBC
state (held as a single unspent state per IBC object) are serialised.

Checkpoint preimage: see lightclients/corda/checkpoint.py. ``tx_root`` is the merkle.py root
over the height's txids in notarisation order (ZERO_HASH for an empty height); ``prev_hash``
is the previous checkpoint's hash (ZERO_HASH at height 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from chains.corda import merkle
from chains.corda.contracts import (
    Contract,
    ContractError,
    LedgerTransaction,
    StateAndRef,
    verify_ledger,
)
from chains.corda.ibc_host import IBC_CONTRACT, ibc_messages
from chains.corda.transaction import SignedTransaction, TransactionError, ref_key
from chains.ibc.errors import IbcError
from chains.ibc.handler import IbcHandler
from chains.store.smt import SparseMerkleTree
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.corda.v1 import lightclient_pb2 as lc
from lightclients.corda.checkpoint import checkpoint_hash, notary_set_hash, quorum, sign_checkpoint
from lightclients.crypto import ed25519_public_key, ed25519_sign
from lightclients.interface import Height


class NotaryError(ValueError):
    """The cluster refused to notarise; the message says which check failed."""


class DoubleSpend(NotaryError):
    def __init__(self, ref: tuple[bytes, int], conflicting_txid: bytes) -> None:
        self.ref = ref
        self.conflicting_txid = conflicting_txid
        super().__init__(
            f"input {ref[0].hex()[:16]}:{ref[1]} was already consumed by tx {conflicting_txid.hex()}"
        )


class TimeWindowError(NotaryError):
    """The tx's time window does not contain a quorum of the members' clocks."""


class IbcRejected(NotaryError):
    """The transaction's IBC messages failed; nothing of it was notarised."""


@dataclass
class NotarisedTx:
    stx: SignedTransaction
    notary_sigs: dict[bytes, bytes]
    height: int
    ibc_results: list[object] = field(default_factory=list)


@dataclass
class SignedCheckpoint:
    checkpoint: lc.Checkpoint
    signatures: list[lc.NotarySignature]
    notary_set: list[bytes]

    def header(self, trusted_height: int) -> lc.Header:
        return lc.Header(
            checkpoint=self.checkpoint,
            signatures=self.signatures,
            trusted_height=trusted_height,
            notary_set=lc.NotarySet(public_keys=self.notary_set),
        )


def check_time_window(tw: pb.TimeWindow | None, now_ns: int) -> None:
    if tw is None:
        return
    if tw.from_ns and now_ns < tw.from_ns:
        raise TimeWindowError(f"time window opens at {tw.from_ns}, notary clock reads {now_ns}")
    if tw.until_ns and now_ns >= tw.until_ns:
        raise TimeWindowError(f"time window closed at {tw.until_ns}, notary clock reads {now_ns}")


@dataclass
class NotaryCluster:
    """A simulated cluster of validating notaries that also keeps the ledger and checkpoints.

    ``identity`` is the notary party named in states and transactions; it stays fixed when the
    member set rotates, as a Corda notary service identity does.
    """

    chain_id: str
    identity: bytes
    member_seeds: list[bytes]
    contracts: Mapping[str, Contract]
    ibc_store: SparseMerkleTree = field(default_factory=SparseMerkleTree)
    transactions: dict[bytes, NotarisedTx] = field(default_factory=dict)
    consumed: dict[tuple[bytes, int], bytes] = field(default_factory=dict)
    checkpoints: list[SignedCheckpoint] = field(default_factory=list)
    pending: list[bytes] = field(default_factory=list)
    next_seeds: list[bytes] | None = None
    ibc: IbcHandler | None = None
    revision_number: int = 0
    last_exec_ns: int = 0

    def __post_init__(self) -> None:
        if len(self.identity) != 32:
            raise NotaryError("notary identity must be 32 bytes")
        if self.ibc is not None and self.ibc.store is not self.ibc_store:
            raise NotaryError("the IBC handler must run over the cluster's ibc_store")
        self.members = [ed25519_public_key(s) for s in self.member_seeds]
        notary_set_hash(self.members)  # rejects duplicates

    @property
    def height(self) -> int:
        return len(self.checkpoints)

    # --- validation ---------------------------------------------------------------------

    def resolve(self, refs: Sequence[pb.StateRef]) -> tuple[StateAndRef, ...]:
        out = []
        for ref in refs:
            tx = self.transactions.get(bytes(ref.txid))
            if tx is None or ref.index >= len(tx.stx.wtx.outputs):
                raise NotaryError(f"state {ref.txid.hex()[:16]}:{ref.index} is not on this ledger")
            out.append(StateAndRef(tx.stx.wtx.outputs[ref.index], ref))
        return tuple(out)

    def ledger_transaction(self, stx: SignedTransaction) -> LedgerTransaction:
        w = stx.wtx
        return LedgerTransaction(
            txid=stx.txid,
            inputs=self.resolve(w.inputs),
            references=self.resolve(w.references),
            outputs=w.outputs,
            commands=w.commands,
            signers=frozenset(stx.valid_signers()),
            notary=w.notary,
            time_window=w.time_window,
            ibc_view=self.ibc_store.get if self.ibc is not None else None,
        )

    def check_unique(self, stx: SignedTransaction) -> None:
        seen: set[tuple[bytes, int]] = set()
        for ref in stx.wtx.inputs:
            key = ref_key(ref)
            if key in seen:
                raise NotaryError(f"input {key[0].hex()[:16]}:{key[1]} is listed twice")
            seen.add(key)
            if key in self.consumed:
                raise DoubleSpend(key, self.consumed[key])
        for ref in stx.wtx.references:
            key = ref_key(ref)
            if key in self.consumed:
                raise DoubleSpend(key, self.consumed[key])

    def validate(self, stx: SignedTransaction, now_ns: int) -> None:
        """What one member checks before signing; raises NotaryError naming the failed check."""
        if stx.wtx.notary != self.identity:
            raise NotaryError("transaction names a different notary")
        if stx.txid in self.transactions:
            raise NotaryError(f"tx {stx.txid.hex()} is already notarised")
        try:
            stx.check_signatures()
            verify_ledger(self.ledger_transaction(stx), self.contracts)
        except (TransactionError, ContractError) as exc:
            raise NotaryError(str(exc)) from None
        check_time_window(stx.wtx.time_window, now_ns)
        self.check_unique(stx)

    def notarise(self, stx: SignedTransaction, clocks: Sequence[int]) -> dict[bytes, bytes]:
        """Run every member (member i reads ``clocks[i]``); commit on a >2/3 quorum.

        Returns the members' signatures over the txid. Raises the first refusal's error when
        the quorum is not reached, leaving the ledger unchanged.
        """
        if len(clocks) != len(self.member_seeds):
            raise NotaryError("one clock reading per member is required")
        sigs: dict[bytes, bytes] = {}
        refusals: list[NotaryError] = []
        for seed, key, now in zip(self.member_seeds, self.members, clocks, strict=True):
            try:
                self.validate(stx, now)
            except NotaryError as exc:
                refusals.append(exc)
                continue
            sigs[key] = ed25519_sign(seed, stx.txid)
        if len(sigs) < quorum(len(self.members)):
            raise refusals[0]
        signing_clocks = sorted(now for key, now in zip(self.members, clocks, strict=True) if key in sigs)
        results = self._execute_ibc(stx, signing_clocks[len(signing_clocks) // 2])
        for ref in stx.wtx.inputs:
            self.consumed[ref_key(ref)] = stx.txid
        self.transactions[stx.txid] = NotarisedTx(stx, sigs, self.height + 1, results)
        self.pending.append(stx.txid)
        return sigs

    def _execute_ibc(self, stx: SignedTransaction, median_ns: int) -> list[object]:
        if not any(c.contract == IBC_CONTRACT for c in stx.wtx.commands):
            return []
        if self.ibc is None:
            raise IbcRejected("this chain runs no IBC host")
        prev_ns = self.checkpoints[-1].checkpoint.timestamp + 1 if self.checkpoints else 0
        exec_ns = max(median_ns, prev_ns, self.last_exec_ns)
        try:
            results, _ = self.ibc.execute(ibc_messages(stx.wtx.commands), self.pending_height(), exec_ns)
        except (IbcError, ContractError) as exc:
            raise IbcRejected(f"IBC messages of tx {stx.txid.hex()[:16]} failed: {exc}") from None
        self.last_exec_ns = exec_ns
        return results

    def pending_height(self) -> Height:
        return Height(self.revision_number, self.height + 1)

    # --- checkpoints --------------------------------------------------------------------

    def rotate(self, next_seeds: list[bytes]) -> None:
        """Schedule a new member set; the next checkpoint commits it, the one after uses it."""
        notary_set_hash([ed25519_public_key(s) for s in next_seeds])
        self.next_seeds = list(next_seeds)

    def checkpoint(self, now_ns: int, online: Sequence[int] | None = None) -> SignedCheckpoint:
        """Seal pending txs and the current IBC root into the next height.

        ``online`` lists the member indices that sign (all by default), so tests and the node
        can model members that are down; the cluster does not itself enforce the quorum here
        because the verifier (the light client) is what must refuse a short one.
        """
        prev = self.checkpoints[-1] if self.checkpoints else None
        if prev is not None and now_ns <= prev.checkpoint.timestamp:
            raise NotaryError("checkpoint time must increase")
        if now_ns < self.last_exec_ns:
            raise NotaryError("checkpoint time must not precede the IBC execution time of its transactions")
        next_members = (
            [ed25519_public_key(s) for s in self.next_seeds] if self.next_seeds is not None else self.members
        )
        cp = lc.Checkpoint(
            chain_id=self.chain_id,
            height=self.height + 1,
            timestamp=now_ns,
            prev_hash=checkpoint_hash(prev.checkpoint) if prev is not None else merkle.ZERO_HASH,
            tx_root=merkle.merkle_root(self.pending) if self.pending else merkle.ZERO_HASH,
            ibc_root=self.ibc_store.commit(),
            notary_set_hash=notary_set_hash(self.members),
            next_notary_set_hash=notary_set_hash(next_members),
        )
        signing = range(len(self.member_seeds)) if online is None else online
        sigs = [sign_checkpoint(self.member_seeds[i], cp) for i in signing]
        signed = SignedCheckpoint(cp, sigs, list(self.members))
        self.checkpoints.append(signed)
        self.pending = []
        if self.next_seeds is not None:
            self.member_seeds, self.members, self.next_seeds = self.next_seeds, next_members, None
        return signed
