"""The validating notary cluster: per-member validation, uniqueness, and signed checkpoints.

Each member validates independently before it approves a txid (contracts, time window against
*its own* clock reading, uniqueness), so a transaction is notarised only when a BFT quorum
(strictly more than 2/3, i.e. 2f+1 of 3f+1) agrees. Members that refuse are reported with
their reasons; uniqueness is committed only once a quorum has approved, so a failed
notarisation consumes nothing.

What is checked once per tx rather than once per member: the checks whose outcome cannot
differ between members because they read only the tx and the ledger, which all members share
-- the notary named, the txid not yet notarised, the parties' signatures (each verified once,
see ``SignedTransaction.valid_signers``), and the resolution of inputs and references. The
cluster runs in one process, so repeating these deterministic computations per member would
only multiply their cost; what a member decides on its own (contract validity, its clock, the
uniqueness of the inputs) it still decides itself (docs/DECISIONS.md).

Signatures: members do not sign txids one by one. At ``checkpoint()`` each member signs the
height's batch once (chains/corda/batch.py, Corda 4 batch signing), and a tx's notary
signatures are those batch signatures with the txid's Merkle path (``notary_signatures``).

State: the UTXO ledger (outputs, consumed outputs, notarised txids, checkpoints) lives in a
:class:`~chains.corda.ledger.LedgerStore`; the cluster keeps only the pending height in
memory, so a cluster built over a persisted store and the IBC tree at its last checkpoint's
root continues exactly where the one that wrote them stopped.

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
from chains.corda.batch import NotaryBatch, sign_batch
from chains.corda.contracts import (
    Contract,
    ContractError,
    LedgerTransaction,
    StateAndRef,
    verify_ledger,
)
from chains.corda.ibc_host import IBC_CONTRACT, ibc_messages
from chains.corda.ledger import LedgerOutput, LedgerStore, MemoryLedgerStore, SignedCheckpoint
from chains.corda.transaction import SignedTransaction, TransactionError, ref_key
from chains.ibc.errors import IbcError
from chains.ibc.handler import IbcHandler
from chains.store.smt import SparseMerkleTree
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.corda.v1 import lightclient_pb2 as lc
from lightclients.corda.checkpoint import checkpoint_hash, notary_set_hash, quorum, sign_checkpoint
from lightclients.crypto import ed25519_public_key
from lightclients.interface import Height

__all__ = [
    "DoubleSpend",
    "IbcRejected",
    "NotarisedTx",
    "NotaryCluster",
    "NotaryError",
    "SignedCheckpoint",
    "TimeWindowError",
    "check_time_window",
]


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
    """A tx the cluster accepted into the pending height; its signatures come at checkpoint."""

    stx: SignedTransaction
    height: int
    ibc_results: list[object] = field(default_factory=list)
    approvals: tuple[bytes, ...] = ()  # members whose own checks passed


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
    member set rotates, as a Corda notary service identity does. ``ledger`` holds the UTXO
    state and the checkpoint chain; over a store that already holds checkpoints, ``ibc_store``
    must be the IBC tree at the latest one's ``ibc_root``.
    """

    chain_id: str
    identity: bytes
    member_seeds: list[bytes]
    contracts: Mapping[str, Contract]
    ibc_store: SparseMerkleTree = field(default_factory=SparseMerkleTree)
    ledger: LedgerStore = field(default_factory=MemoryLedgerStore)
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
        self._approvals: list[frozenset[bytes]] = []  # per pending txid
        self.latest = self.ledger.latest_checkpoint()
        if self.latest is not None:
            if self.ibc_store.root != bytes(self.latest.checkpoint.ibc_root):
                raise NotaryError("the IBC store is not at the latest checkpoint's ibc_root")
            if notary_set_hash(self.members) != bytes(self.latest.checkpoint.next_notary_set_hash):
                raise NotaryError("the member set is not the one the latest checkpoint committed to")
            # Every IBC execution of a sealed height ran at or before its checkpoint's time, so
            # this is exactly what the cluster that wrote the store would hold now.
            self.last_exec_ns = max(self.last_exec_ns, self.latest.checkpoint.timestamp)

    @property
    def height(self) -> int:
        return self.latest.checkpoint.height if self.latest is not None else 0

    def signed_checkpoint(self, height: int) -> SignedCheckpoint | None:
        return self.ledger.checkpoint(height)

    def notary_signatures(self, txid: bytes) -> list[pb.TxNotarySignature]:
        """The members' notary signatures on ``txid``; empty until its height is sealed."""
        height = self.ledger.notarised_at(txid)
        signed = self.ledger.checkpoint(height) if height is not None else None
        if signed is None or signed.batch is None:
            return []
        return signed.batch.signatures_for(txid)

    # --- validation ---------------------------------------------------------------------

    def _resolve(self, refs: Sequence[pb.StateRef]) -> list[tuple[StateAndRef, LedgerOutput]]:
        out = []
        for ref in refs:
            found = self.ledger.output(bytes(ref.txid), int(ref.index))
            if found is None:
                raise NotaryError(f"state {ref.txid.hex()[:16]}:{ref.index} is not on this ledger")
            out.append((StateAndRef(found.state, ref), found))
        return out

    def resolve(self, refs: Sequence[pb.StateRef]) -> tuple[StateAndRef, ...]:
        return tuple(s for s, _ in self._resolve(refs))

    def _prepare(self, stx: SignedTransaction) -> tuple[LedgerTransaction, list[LedgerOutput]]:
        """The checks every member would make alike, made once: (resolved tx, inputs then refs)."""
        if stx.wtx.notary != self.identity:
            raise NotaryError("transaction names a different notary")
        if self.ledger.notarised_at(stx.txid) is not None:
            raise NotaryError(f"tx {stx.txid.hex()} is already notarised")
        try:
            stx.check_signatures()
        except TransactionError as exc:
            raise NotaryError(str(exc)) from None
        w = stx.wtx
        inputs = self._resolve(w.inputs)
        references = self._resolve(w.references)
        ltx = LedgerTransaction(
            txid=stx.txid,
            inputs=tuple(s for s, _ in inputs),
            references=tuple(s for s, _ in references),
            outputs=w.outputs,
            commands=w.commands,
            signers=frozenset(stx.valid_signers()),
            notary=w.notary,
            time_window=w.time_window,
            ibc_view=self.ibc_store.get if self.ibc is not None else None,
        )
        return ltx, [o for _, o in inputs] + [o for _, o in references]

    def ledger_transaction(self, stx: SignedTransaction) -> LedgerTransaction:
        return self._prepare(stx)[0]

    def check_unique(self, stx: SignedTransaction, resolved: Sequence[LedgerOutput] | None = None) -> None:
        """No input listed twice, no input or reference already consumed."""
        refs = [*stx.wtx.inputs, *stx.wtx.references]
        found = resolved if resolved is not None else [self.ledger.output(*ref_key(r)) for r in refs]
        seen: set[tuple[bytes, int]] = set()
        for ref in stx.wtx.inputs:
            key = ref_key(ref)
            if key in seen:
                raise NotaryError(f"input {key[0].hex()[:16]}:{key[1]} is listed twice")
            seen.add(key)
        for ref, out in zip(refs, found, strict=True):
            if out is not None and out.consumed_by is not None:
                raise DoubleSpend(ref_key(ref), out.consumed_by)

    def _shared_checks(self, stx: SignedTransaction, ltx: LedgerTransaction,
                       resolved: Sequence[LedgerOutput]) -> NotaryError | None:
        """Contracts and uniqueness: the same inputs give every member the same answer.

        Why once: the members run here in one process over one ledger, so each would compute
        exactly this result from exactly these inputs (contract code is deterministic and reads
        only the tx, its resolved states and the IBC store as it was before the tx); running it
        per member multiplied the cost of a tx by the cluster size and changed no decision. What
        differs per member, its own clock, is still checked per member."""
        try:
            verify_ledger(ltx, self.contracts)
            self.check_unique(stx, resolved)
        except ContractError as exc:
            return NotaryError(str(exc))
        except NotaryError as exc:
            return exc
        return None

    def _member_checks(self, stx: SignedTransaction, ltx: LedgerTransaction, resolved: Sequence[LedgerOutput],
                       now_ns: int, shared: NotaryError | None = None) -> None:
        """What one member decides for itself: contracts and uniqueness (computed once, see
        ``_shared_checks``) and the time window on its own clock."""
        if shared is not None:
            raise shared
        check_time_window(stx.wtx.time_window, now_ns)

    def validate(self, stx: SignedTransaction, now_ns: int) -> None:
        """What one member checks before approving; raises NotaryError naming the failed check."""
        ltx, resolved = self._prepare(stx)
        self._member_checks(stx, ltx, resolved, now_ns, self._shared_checks(stx, ltx, resolved))

    def notarise(self, stx: SignedTransaction, clocks: Sequence[int]) -> NotarisedTx:
        """Run every member (member i reads ``clocks[i]``); commit on a >2/3 quorum.

        Returns the notarised tx with the approving members; their signatures are made when
        the height is sealed. Raises the first refusal's error when the quorum is not
        reached, leaving the ledger unchanged.
        """
        if len(clocks) != len(self.member_seeds):
            raise NotaryError("one clock reading per member is required")
        ltx, resolved = self._prepare(stx)
        shared = self._shared_checks(stx, ltx, resolved)
        approvals: list[tuple[bytes, int]] = []
        refusals: list[NotaryError] = []
        for key, now in zip(self.members, clocks, strict=True):
            try:
                self._member_checks(stx, ltx, resolved, now, shared)
            except NotaryError as exc:
                refusals.append(exc)
                continue
            approvals.append((key, now))
        if len(approvals) < quorum(len(self.members)):
            raise refusals[0]
        signing_clocks = sorted(now for _, now in approvals)
        results = self._execute_ibc(stx, signing_clocks[len(signing_clocks) // 2])
        height = self.height + 1
        self.ledger.add_transaction(stx, height)
        self.pending.append(stx.txid)
        approvers = tuple(key for key, _ in approvals)
        self._approvals.append(frozenset(approvers))
        return NotarisedTx(stx, height, results, approvers)

    def _execute_ibc(self, stx: SignedTransaction, median_ns: int) -> list[object]:
        if not any(c.contract == IBC_CONTRACT for c in stx.wtx.commands):
            return []
        if self.ibc is None:
            raise IbcRejected("this chain runs no IBC host")
        prev_ns = self.latest.checkpoint.timestamp + 1 if self.latest is not None else 0
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

    def _batch(self, signing: Sequence[int], tx_root: bytes) -> NotaryBatch | None:
        """Each signing member's batch signature over the pending txids it approved."""
        if not self.pending:
            return None
        signers: list[tuple[bytes, list[int] | None]] = []
        for i in signing:
            key = self.members[i]
            approved = [j for j, ap in enumerate(self._approvals) if key in ap]
            signers.append((self.member_seeds[i], None if len(approved) == len(self.pending) else approved))
        return sign_batch(self.pending, signers, tx_root)

    def checkpoint(self, now_ns: int, online: Sequence[int] | None = None) -> SignedCheckpoint:
        """Seal pending txs and the current IBC root into the next height.

        ``online`` lists the member indices that sign (all by default), so tests and the node
        can model members that are down; the cluster does not itself enforce the quorum here
        because the verifier (the light client) is what must refuse a short one.
        """
        prev = self.latest
        if prev is not None and now_ns <= prev.checkpoint.timestamp:
            raise NotaryError("checkpoint time must increase")
        if now_ns < self.last_exec_ns:
            raise NotaryError("checkpoint time must not precede the IBC execution time of its transactions")
        next_members = (
            [ed25519_public_key(s) for s in self.next_seeds] if self.next_seeds is not None else self.members
        )
        tx_root = merkle.merkle_root(self.pending) if self.pending else merkle.ZERO_HASH
        cp = lc.Checkpoint(
            chain_id=self.chain_id,
            height=self.height + 1,
            timestamp=now_ns,
            prev_hash=checkpoint_hash(prev.checkpoint) if prev is not None else merkle.ZERO_HASH,
            tx_root=tx_root,
            ibc_root=self.ibc_store.commit(),
            notary_set_hash=notary_set_hash(self.members),
            next_notary_set_hash=notary_set_hash(next_members),
        )
        signing = range(len(self.member_seeds)) if online is None else online
        sigs = [sign_checkpoint(self.member_seeds[i], cp) for i in signing]
        signed = SignedCheckpoint(cp, sigs, list(self.members), self._batch(signing, tx_root))
        self.ledger.add_checkpoint(signed)
        self.latest = signed
        self.pending = []
        self._approvals = []
        if self.next_seeds is not None:
            self.member_seeds, self.members, self.next_seeds = self.next_seeds, next_members, None
        return signed
