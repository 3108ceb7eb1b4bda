"""Batch notary signatures: one member signature per height, each tx's signature checkable alone."""

from __future__ import annotations

import pytest

from chains.corda import merkle
from chains.corda.batch import (
    BATCH_DOMAIN,
    NotaryBatch,
    NotarySignatureError,
    batch_message,
    check_notarised,
    sign_batch,
    verify_notary_signature,
)
from chains.corda.cash import (
    ADMISSION,
    CASH,
    AdmissionContract,
    CashContract,
    admission_state,
    cash_state,
)
from chains.corda.notary import NotaryCluster
from chains.corda.transaction import SignedTransaction, WireTransaction
from kakehashi.corda.v1 import ledger_pb2 as pb
from lightclients.corda.checkpoint import quorum
from lightclients.crypto import ed25519_public_key, ed25519_verify, sha256

T0 = 1_700_000_000_000_000_000
SEEDS = [sha256(b"batch-test:member-%d" % i) for i in range(4)]
KEYS = [ed25519_public_key(s) for s in SEEDS]
TXIDS = [sha256(b"batch-test:tx-%d" % i) for i in range(5)]


def _copy(sig: pb.TxNotarySignature) -> pb.TxNotarySignature:
    out = pb.TxNotarySignature()
    out.CopyFrom(sig)
    return out


def test_batch_message_golden_preimage() -> None:
    root = bytes(range(32))
    assert BATCH_DOMAIN == b"kakehashi.corda.notary-batch.v1\x00"
    assert batch_message(root) == sha256(BATCH_DOMAIN + root)
    assert batch_message(root).hex() == "61a2dd8c5029cb9cb70f9d744a52fb874c5517feffd66c0f63a2868f24ce6df7"
    # A one-tx batch's root is its txid, yet the signed message is not the txid.
    assert merkle.merkle_root([TXIDS[0]]) == TXIDS[0] and batch_message(TXIDS[0]) != TXIDS[0]


def test_each_tx_signature_verifies_alone_and_members_sign_the_tx_root_once() -> None:
    batch = sign_batch(TXIDS, [(s, None) for s in SEEDS])
    assert len(batch.signatures) == 4 and all(not m.indices for m in batch.signatures)
    root = merkle.merkle_root(TXIDS)
    for member in batch.signatures:
        assert ed25519_verify(bytes(member.public_key), batch_message(root), bytes(member.signature))
    for txid in TXIDS:
        sigs = batch.signatures_for(txid)
        assert {bytes(s.public_key) for s in sigs} == set(KEYS)
        for sig in sigs:
            verify_notary_signature(txid, sig, KEYS)
        check_notarised(txid, sigs, KEYS, quorum(4))
    assert batch.signatures_for(sha256(b"not in the batch")) == []
    assert NotaryBatch.decode(batch.encode()) == batch
    single = sign_batch(TXIDS[:1], [(SEEDS[0], None)]).signatures_for(TXIDS[0])
    verify_notary_signature(TXIDS[0], single[0], KEYS)
    assert single[0].leaf_count == 1 and not single[0].siblings


def test_wrong_proof_root_txid_or_key_is_rejected() -> None:
    batch = sign_batch(TXIDS, [(s, None) for s in SEEDS])
    good = batch.signatures_for(TXIDS[2])[0]
    verify_notary_signature(TXIDS[2], good, KEYS)
    with pytest.raises(NotarySignatureError, match="does not verify"):
        verify_notary_signature(TXIDS[3], good, KEYS)  # another txid with this path
    flipped = _copy(good)
    flipped.siblings[0].hash = bytes(32)
    with pytest.raises(NotarySignatureError, match="does not verify"):
        verify_notary_signature(TXIDS[2], flipped, KEYS)  # wrong proof: another root
    moved = _copy(good)
    moved.index = 3
    with pytest.raises(NotarySignatureError):
        verify_notary_signature(TXIDS[2], moved, KEYS)
    stray = _copy(good)
    stray.siblings.add(level=0, index=6, hash=bytes(32))
    with pytest.raises(NotarySignatureError, match="bad Merkle path"):
        verify_notary_signature(TXIDS[2], stray, KEYS)
    for count in (0, 1 << 30):
        bad_count = _copy(good)
        bad_count.leaf_count = count
        with pytest.raises(NotarySignatureError):
            verify_notary_signature(TXIDS[2], bad_count, KEYS)
    # A real member signature over a different root (another batch) does not carry over.
    other = sign_batch(TXIDS[:4], [(SEEDS[0], None)]).signatures_for(TXIDS[2])[0]
    wrong_root = _copy(good)
    wrong_root.signature = other.signature
    with pytest.raises(NotarySignatureError, match="does not verify"):
        verify_notary_signature(TXIDS[2], wrong_root, KEYS)
    with pytest.raises(NotarySignatureError, match="not a key of this notary"):
        verify_notary_signature(TXIDS[2], good, KEYS[1:] if bytes(good.public_key) == KEYS[0] else KEYS[:1])
    with pytest.raises(NotarySignatureError, match="3 required"):
        check_notarised(TXIDS[2], [good, good], KEYS, 3)  # one member twice counts once


def test_a_member_signs_only_what_it_approved() -> None:
    """A member that refused a tx (its own clock) signs the root of the rest, never that tx."""
    issuer = sha256(b"batch-test:issuer")
    holder = sha256(b"batch-test:holder")
    notary = sha256(b"batch-test:notary")
    c = NotaryCluster("batch", notary, list(SEEDS), {CASH: CashContract(), ADMISSION: AdmissionContract()})
    pk = ed25519_public_key(issuer)
    adm = WireTransaction((), (admission_state(pk, [ed25519_public_key(holder)], notary),),
                          (pb.Command(contract=ADMISSION, name="Admit", signers=[pk]),), notary, sha256(b"s0"))
    c.notarise(SignedTransaction(adm).sign(issuer), [T0] * 4)
    txids = [adm.txid]
    for i in range(1, 4):
        window = pb.TimeWindow(from_ns=T0, until_ns=T0 + 10) if i == 2 else None
        w = WireTransaction((), (cash_state(pk, ed25519_public_key(holder), i, notary),),
                            (pb.Command(contract=CASH, name="Issue", signers=[pk]),), notary, sha256(b"s%d" % i),
                            references=(pb.StateRef(txid=adm.txid, index=0),), time_window=window)
        clocks = [T0, T0, T0, T0 + 99] if i == 2 else [T0] * 4  # member 3's clock is past tx 2's window
        assert len(c.notarise(SignedTransaction(w).sign(issuer), clocks).approvals) == (3 if i == 2 else 4)
        txids.append(w.txid)
    assert c.notary_signatures(txids[0]) == []  # nothing is signed before the height is sealed
    signed = c.checkpoint(T0 + 1)
    assert signed.batch is not None and signed.batch.txids == tuple(txids)
    for txid in txids:
        sigs = c.notary_signatures(txid)
        check_notarised(txid, sigs, KEYS, quorum(4))
        signers = {bytes(s.public_key) for s in sigs}
        assert signers == (set(KEYS[:3]) if txid == txids[2] else set(KEYS))
    by_key = {bytes(m.public_key): m for m in signed.batch.signatures}
    assert list(by_key[KEYS[3]].indices) == [0, 1, 3]
    # Members that approved everything signed the checkpoint's tx_root itself.
    root = bytes(signed.checkpoint.tx_root)
    assert root == merkle.merkle_root(txids)
    assert ed25519_verify(KEYS[0], batch_message(root), bytes(by_key[KEYS[0]].signature))
    assert not ed25519_verify(KEYS[3], batch_message(root), bytes(by_key[KEYS[3]].signature))
