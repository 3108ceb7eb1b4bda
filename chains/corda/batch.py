"""Batch notary signatures: one signature per member per height, checkable per transaction.

Why (Corda 4's batch signing): signing every txid costs each member one Ed25519 signature per
transaction. Instead, at each height a member signs once, over the Merkle root (merkle.py) of
the txids it approved there in notarisation order, and a transaction's notary signature is
that batch signature plus the txid's partial Merkle path to the signed root. Anyone holding
the member keys checks one transaction alone, without seeing the rest of the batch.

When a member approved every notarised tx of the height (always, in the node, where every
member reads the block time), its root is the checkpoint's ``tx_root``. A member whose own
checks refused some of them (its clock outside a time window) signs the root of the subset it
approved instead, so a batch signature never vouches for a tx its signer refused; the stored
``indices`` say which subset.

Signed message (the preimage): ``sha256(BATCH_DOMAIN || root)`` with
``BATCH_DOMAIN = b"kakehashi.corda.notary-batch.v1\\x00"``. The domain matters: the root of a
one-tx batch *is* that txid, so without it a batch signature would read as a party's signature
over the txid; and checkpoint signatures are over ``checkpoint_hash``, another preimage.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from chains.corda import merkle
from kakehashi.corda.v1 import ledger_pb2 as pb
from lightclients.crypto import ed25519_public_key, ed25519_sign, ed25519_verify, sha256

BATCH_DOMAIN = b"kakehashi.corda.notary-batch.v1\x00"


class NotarySignatureError(ValueError):
    """A transaction's notary signature is malformed, from an unknown key, or does not verify."""


def batch_message(root: bytes) -> bytes:
    """What a member signs for a batch whose txids have Merkle root ``root``."""
    if len(root) != 32:
        raise NotarySignatureError("a batch root is 32 bytes")
    return sha256(BATCH_DOMAIN + root)


@dataclass(frozen=True)
class NotaryBatch:
    """The txids notarised at one height and the members' batch signatures over them."""

    txids: tuple[bytes, ...]
    signatures: tuple[pb.MemberBatchSignature, ...]

    def encode(self) -> bytes:
        return pb.NotaryBatch(txids=self.txids, signatures=self.signatures).SerializeToString(deterministic=True)

    @classmethod
    def decode(cls, data: bytes) -> NotaryBatch:
        msg = pb.NotaryBatch()
        try:
            msg.ParseFromString(bytes(data))
        except DecodeError as exc:
            raise NotarySignatureError(f"notary batch does not decode: {exc}") from None
        return cls(tuple(bytes(t) for t in msg.txids), tuple(msg.signatures))

    def signatures_for(self, txid: bytes) -> list[pb.TxNotarySignature]:
        """Each signing member's notary signature on ``txid`` (none if it is not in the batch)."""
        try:
            position = self.txids.index(txid)
        except ValueError:
            return []
        out: list[pb.TxNotarySignature] = []
        levels_by_subset: dict[tuple[int, ...], list[list[bytes]]] = {}
        for member in self.signatures:
            subset = tuple(member.indices) or tuple(range(len(self.txids)))
            if position not in subset:
                continue
            levels = levels_by_subset.get(subset)
            if levels is None:
                levels = levels_by_subset[subset] = merkle.tree_levels([self.txids[i] for i in subset])
            index = subset.index(position)
            siblings = [pb.PartialNode(level=lv, index=ix, hash=h)
                        for (lv, ix), h in sorted(merkle.path_of(levels, index).items())]
            out.append(pb.TxNotarySignature(public_key=member.public_key, signature=member.signature,
                                            leaf_count=len(subset), index=index, siblings=siblings))
        return out


def sign_batch(txids: Sequence[bytes], signers: Sequence[tuple[bytes, Collection[int] | None]],
               root: bytes | None = None) -> NotaryBatch:
    """Each signer (seed, approved positions or None for all) signs its batch root once.

    A signer that approved none of ``txids`` does not sign; roots of equal subsets are
    computed once, so a cluster that agreed on everything hashes the tree once (not at all
    when the caller passes ``root``, the root of all of ``txids`` it already has).
    """
    if not txids:
        raise NotarySignatureError("a batch needs at least one txid")
    everything = tuple(range(len(txids)))
    roots: dict[tuple[int, ...], bytes] = {}
    if root is not None:
        roots[everything] = root
    signatures = []
    for seed, approved in signers:
        subset = everything if approved is None else tuple(sorted(set(approved)))
        if not subset:
            continue
        if subset[-1] >= len(txids) or subset[0] < 0:
            raise NotarySignatureError("approved position out of range")
        root = roots.get(subset)
        if root is None:
            root = roots[subset] = merkle.merkle_root([txids[i] for i in subset])
        signatures.append(pb.MemberBatchSignature(
            public_key=ed25519_public_key(seed), signature=ed25519_sign(seed, batch_message(root)),
            indices=[] if subset == everything else list(subset)))
    return NotaryBatch(tuple(txids), tuple(signatures))


def verify_notary_signature(txid: bytes, sig: pb.TxNotarySignature, notary_keys: Collection[bytes]) -> None:
    """Check one member's notary signature on ``txid`` alone; raises NotarySignatureError.

    The path rebuilds the root from the txid (merkle.root_from_partial refuses missing or
    stray siblings), and the member's key must be one of ``notary_keys`` and have signed that
    root's batch message. A wrong path, another txid or a signature over another root all end
    in a root the signature does not verify against.
    """
    if len(txid) != 32:
        raise NotarySignatureError("a txid is 32 bytes")
    key = bytes(sig.public_key)
    if key not in notary_keys:
        raise NotarySignatureError(f"{key.hex()[:16]} is not a key of this notary")
    if not 0 <= sig.index < sig.leaf_count:
        raise NotarySignatureError("leaf index out of range")
    siblings: dict[tuple[int, int], bytes] = {}
    for node in sig.siblings:
        if (node.level, node.index) in siblings:
            raise NotarySignatureError("the Merkle path names a sibling twice")
        siblings[(node.level, node.index)] = bytes(node.hash)
    try:
        root = merkle.root_from_partial(sig.leaf_count, {sig.index: txid}, siblings)
    except merkle.MerkleError as exc:
        raise NotarySignatureError(f"bad Merkle path: {exc}") from None
    if not ed25519_verify(key, batch_message(root), bytes(sig.signature)):
        raise NotarySignatureError(f"signature by {key.hex()[:16]} does not verify for this txid")


def check_notarised(txid: bytes, sigs: Sequence[pb.TxNotarySignature], notary_keys: Collection[bytes],
                    threshold: int) -> None:
    """``txid`` carries valid notary signatures from at least ``threshold`` distinct members."""
    signers: set[bytes] = set()
    for sig in sigs:
        verify_notary_signature(txid, sig, notary_keys)
        signers.add(bytes(sig.public_key))
    if len(signers) < threshold:
        raise NotarySignatureError(f"{len(signers)} distinct notary signatures, {threshold} required")
