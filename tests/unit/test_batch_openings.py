"""Light-client multiproof openings (qbft and corda) and the one-header-check-per-height rule.

Each client's ``open_batch`` runs the same status, height and prefix rules as its single
``verify_membership`` and answers by lookup afterwards; a header that is exactly the one
stored at its height is accepted without checking a single signature, any other header at
that height is fully verified (and is misbehaviour when it is validly signed)."""

from __future__ import annotations

from dataclasses import replace

import pytest

import lightclients.corda.checkpoint as corda_checkpoint
import lightclients.qbft.client as qbft_client
from chains.corda.notary import NotaryCluster
from chains.evm import IBC_HANDLER_ADDRESS, EvmChain, seal_header
from chains.evm.ibc_proofs import ibc_multiproof
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.qbft.v1 import lightclient_pb2 as qpb
from lightclients.corda import initial_states
from lightclients.corda.checkpoint import sign_checkpoint
from lightclients.corda.client import CordaLightClient, header_message
from lightclients.crypto import sha256
from lightclients.interface import (
    BatchProofModule,
    ClientNotActive,
    ConsensusStateNotFound,
    Height,
    InvalidClientMessage,
    InvalidProof,
    MemoryClientStore,
    Status,
)
from lightclients.qbft import QbftClient, encode_header_message
from tests.unit.test_qbft_support import (
    KEYS,
    NS,
    header_msg,
    make_chain,
    new_client,
    now_of,
    produce,
)
from tests.unit.test_qbft_support import (
    T0 as T0_QBFT,
)

PATHS = [f"commitments/ports/transfer/channels/channel-0/sequences/{i}".encode() for i in range(1, 9)]
ABSENT = [f"receipts/ports/transfer/channels/channel-0/sequences/{i}".encode() for i in range(1, 4)]


def _value(path: bytes) -> bytes:
    return sha256(path)


class Counter:
    """Counts calls of a signature primitive a client module imported."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> None:
        self.calls = 0
        real = getattr(module, name)

        def counting(*args: object) -> object:
            self.calls += 1
            return real(*args)

        monkeypatch.setattr(module, name, counting)

    def take(self) -> int:
        n, self.calls = self.calls, 0
        return n


def _update(client: QbftClient | CordaLightClient, store: MemoryClientStore, msg: bytes, now: int) -> list[Height]:
    client.verify_client_message(store, msg, now)
    if client.check_for_misbehaviour(store, msg):
        client.update_state_on_misbehaviour(store, msg)
        return []
    return client.update_state(store, msg)


# --- qbft -----------------------------------------------------------------------------------


def _evm() -> tuple[EvmChain, QbftClient, MemoryClientStore]:
    chain = make_chain()
    produce(chain, 1)
    client, store = new_client(chain, 1)
    for p in PATHS:
        chain.ibc.store.set(p, _value(p))
    produce(chain, 2)
    _update(client, store, header_msg(chain, 2, 1), now_of(chain, 2))
    return chain, client, store


def _evm_multiproof(chain: EvmChain, height: int, paths: list[bytes]) -> bytes:
    root = chain.prove(IBC_HANDLER_ADDRESS, [], height).storage_root
    return ibc_multiproof(chain.state.store, root, paths)


def test_qbft_opening_answers_like_single_proofs() -> None:
    chain, client, store = _evm()
    now, h2 = now_of(chain, 2), Height(0, 2)
    assert isinstance(client, BatchProofModule)
    proof = _evm_multiproof(chain, 2, PATHS + ABSENT)
    assert client.is_batch_proof(proof) and not client.is_batch_proof(chain.ibc_proof(PATHS[0], 2))
    opening = client.open_batch(store, h2, IBC_HANDLER_ADDRESS, proof, now)
    for p in PATHS:
        assert opening.covers(p)
        opening.verify_membership(p, _value(p))
        client.verify_membership(store, h2, chain.ibc_proof(p, 2), IBC_HANDLER_ADDRESS, p, _value(p), now)
        with pytest.raises(InvalidProof, match="not keccak256"):
            opening.verify_membership(p, b"other")
        with pytest.raises(InvalidProof, match="is committed"):
            opening.verify_non_membership(p)
    for p in ABSENT:
        opening.verify_non_membership(p)
        with pytest.raises(InvalidProof, match="nothing is committed"):
            opening.verify_membership(p, b"x")
    stranger = b"commitments/ports/transfer/channels/channel-0/sequences/99"
    assert not opening.covers(stranger)
    with pytest.raises(InvalidProof, match="does not cover"):
        opening.verify_non_membership(stranger)


def test_qbft_open_batch_runs_the_single_proof_rules() -> None:
    chain, client, store = _evm()
    now, h2 = now_of(chain, 2), Height(0, 2)
    proof = _evm_multiproof(chain, 2, PATHS)
    with pytest.raises(InvalidProof, match="prefix"):
        client.open_batch(store, h2, b"ibc", proof, now)
    with pytest.raises(InvalidProof, match="above the latest"):
        client.open_batch(store, Height(0, 3), IBC_HANDLER_ADDRESS, proof, now)
    with pytest.raises(InvalidProof):  # the multiproof is for height 2's root, not height 1's
        client.open_batch(store, Height(0, 1), IBC_HANDLER_ADDRESS, proof, now)
    with pytest.raises(InvalidProof, match="canonical"):
        client.open_batch(store, h2, IBC_HANDLER_ADDRESS, proof + b"\x1a\x00", now)
    with pytest.raises(InvalidProof, match="multiproof holds"):
        client.open_batch(store, h2, IBC_HANDLER_ADDRESS, chain.ibc_proof(PATHS[0], 2), now)
    with pytest.raises(InvalidProof, match="open_batch"):
        client.verify_membership(store, h2, proof, IBC_HANDLER_ADDRESS, PATHS[0], _value(PATHS[0]), now)
    unsorted = qpb.StorageProof.FromString(proof)
    unsorted.multiproof.slots.reverse()
    with pytest.raises(InvalidProof, match="ascending"):
        client.open_batch(store, h2, IBC_HANDLER_ADDRESS, unsorted.SerializeToString(deterministic=True), now)
    with pytest.raises(ClientNotActive):
        client.open_batch(store, h2, IBC_HANDLER_ADDRESS, proof, now + 30 * 24 * 3600 * NS)
    produce(chain, 3)
    produce(chain, 4)
    _update(client, store, header_msg(chain, 4, 2), now_of(chain, 4))
    with pytest.raises(ConsensusStateNotFound):
        client.open_batch(store, Height(0, 3), IBC_HANDLER_ADDRESS, proof, now_of(chain, 4))


def test_qbft_same_header_again_checks_no_seal(monkeypatch: pytest.MonkeyPatch) -> None:
    chain = make_chain()
    produce(chain, 1)
    client, store = new_client(chain, 1)
    produce(chain, 2)
    now = now_of(chain, 2)
    seals = Counter(monkeypatch, qbft_client, "secp256k1_recover_address")
    msg = header_msg(chain, 2, 1)
    assert _update(client, store, msg, now) == [Height(0, 2)]
    assert seals.take() >= 3
    assert _update(client, store, msg, now) == []
    assert seals.take() == 0  # the no-op path: nothing recovered
    # The same block with another quorum of seals is still the same block: no-op too.
    assert _update(client, store, header_msg(chain, 2, 1, list(chain.header(2).extra.seals)[1:]), now) == []
    assert seals.take() == 0
    # The signed bytes are what is compared: seals and account proof are not even read, so
    # a copy with a broken account proof is the same no-op and writes nothing.
    broken = chain.light_client_header(2, 1)
    broken.account_proof[-1] = broken.account_proof[-1][:-1] + b"\x00"
    before = dict(store.data)
    assert _update(client, store, encode_header_message(broken), now) == []
    assert seals.take() == 0 and store.data == before


def test_qbft_same_block_in_another_round_is_fully_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = make_chain(), make_chain()
    for c in (a, b):
        produce(c, 1)
    a.produce_block([], T0_QBFT + 5 * NS, KEYS[:4], round_number=0)
    b.produce_block([], T0_QBFT + 5 * NS, KEYS[:4], round_number=1)
    client, store = new_client(a, 1)
    now = now_of(a, 2)
    assert _update(client, store, header_msg(a, 2, 1), now) == [Height(0, 2)]
    seals = Counter(monkeypatch, qbft_client, "secp256k1_recover_address")
    assert _update(client, store, header_msg(b, 2, 1), now) == []  # same block: a duplicate
    assert seals.take() >= 3  # but its other signed bytes were checked


def test_qbft_other_header_at_a_stored_height_is_fully_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    chain = make_chain()
    produce(chain, 1)
    client, store = new_client(chain, 1)
    produce(chain, 2)
    now = now_of(chain, 2)
    _update(client, store, header_msg(chain, 2, 1), now)
    seals = Counter(monkeypatch, qbft_client, "secp256k1_recover_address")
    real = chain.header(2).without_seals()
    genuine = chain.light_client_header(2, 1)
    # One committed field changed at a time; unsigned changes fail the seal check, the
    # re-sealed vanity change (same consensus state, other block) is misbehaviour.
    for changed in (replace(real, timestamp=real.timestamp + 1), replace(real, state_root=b"\x07" * 32),
                    replace(real, extra=replace(real.extra, vanity=b"\x66" * 32))):
        header = qpb.Header(header_rlp=changed.encode(), seals=list(genuine.seals),
                            trusted_height=genuine.trusted_height, account_proof=list(genuine.account_proof))
        with pytest.raises(InvalidClientMessage):
            client.verify_client_message(store, encode_header_message(header), now)
        assert seals.take() > 0
    forged = replace(real, extra=replace(real.extra, vanity=b"\x66" * 32))
    sealed = seal_header(forged, KEYS[:4])
    evidence = encode_header_message(qpb.Header(header_rlp=forged.encode(), seals=list(sealed.extra.seals),
                                                trusted_height=genuine.trusted_height,
                                                account_proof=list(genuine.account_proof)))
    client.verify_client_message(store, evidence, now)
    assert seals.take() >= 3
    assert client.check_for_misbehaviour(store, evidence)
    client.update_state_on_misbehaviour(store, evidence)
    assert client.status(store, now) is Status.FROZEN


# --- corda ----------------------------------------------------------------------------------

SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC
LC = CordaLightClient()


def _corda() -> tuple[NotaryCluster, MemoryClientStore]:
    c = NotaryCluster("corda-1", sha256(b"notary-service"), [sha256(f"n-{i}".encode()) for i in range(4)], {})
    genesis = c.checkpoint(T0)
    store = MemoryClientStore()
    cs, cons = initial_states(genesis.checkpoint, genesis.notary_set, 3600 * SEC, 10 * SEC)
    LC.initialize(store, cs, cons, T0)
    for p in PATHS:
        c.ibc_store.set(p, _value(p))
    for i in range(50):
        c.ibc_store.set(f"other/{i}".encode(), bytes([i + 1]))
    cp = c.checkpoint(T0 + SEC)
    _update(LC, store, header_message(cp.header(1)), T0 + SEC)
    return c, store


def test_corda_opening_answers_like_single_proofs() -> None:
    c, store = _corda()
    signed = c.signed_checkpoint(2)
    assert signed is not None
    view = c.ibc_store.at(signed.checkpoint.ibc_root)
    proof = view.prove_many_bytes(PATHS + ABSENT)
    h2, now = Height(0, 2), T0 + SEC
    assert LC.is_batch_proof(proof) and not LC.is_batch_proof(view.prove_bytes(PATHS[0]))
    opening = LC.open_batch(store, h2, b"ibc", proof, now)
    for p in PATHS:
        opening.verify_membership(p, _value(p))
        LC.verify_membership(store, h2, view.prove_bytes(p), b"ibc", p, _value(p), now)
        with pytest.raises(InvalidProof, match="another value"):
            opening.verify_membership(p, b"other")
    for p in ABSENT:
        opening.verify_non_membership(p)
    assert not opening.covers(b"other/1")
    with pytest.raises(InvalidProof, match="no entry"):
        opening.verify_membership(b"other/1", b"\x02")
    with pytest.raises(InvalidProof, match="prefix"):
        LC.open_batch(store, h2, b"other", proof, now)
    with pytest.raises(InvalidProof, match="does not verify"):
        LC.open_batch(store, Height(0, 1), b"ibc", proof, now)
    with pytest.raises(InvalidProof, match="canonical"):
        LC.open_batch(store, h2, b"ibc", proof + b"\x2a\x00", now)
    with pytest.raises(InvalidProof):  # a batch is not a single proof
        LC.verify_membership(store, h2, proof, b"ibc", PATHS[0], _value(PATHS[0]), now)
    with pytest.raises(ClientNotActive):
        LC.open_batch(store, h2, b"ibc", proof, now + 3600 * SEC)


def test_corda_same_checkpoint_again_checks_no_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    c, store = _corda()
    sigs = Counter(monkeypatch, corda_checkpoint, "ed25519_verify")
    cp = c.checkpoint(T0 + 2 * SEC)
    msg = header_message(cp.header(2))
    assert _update(LC, store, msg, T0 + 2 * SEC) == [Height(0, 3)]
    assert sigs.take() >= 3
    assert _update(LC, store, msg, T0 + 2 * SEC) == []
    assert sigs.take() == 0


def test_corda_other_checkpoint_at_a_stored_height_is_fully_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    c, store = _corda()
    honest = c.signed_checkpoint(2)
    assert honest is not None
    sigs = Counter(monkeypatch, corda_checkpoint, "ed25519_verify")
    for field, value in (("tx_root", b"\x66" * 32), ("prev_hash", b"\x01" * 32), ("timestamp", T0 + SEC + 1)):
        changed = lc.Checkpoint()
        changed.CopyFrom(honest.checkpoint)
        setattr(changed, field, value)
        stale = lc.Header(checkpoint=changed, signatures=honest.signatures, trusted_height=1,
                          notary_set=lc.NotarySet(public_keys=honest.notary_set))
        with pytest.raises(InvalidClientMessage, match="signed"):
            LC.verify_client_message(store, header_message(stale), T0 + SEC)
        assert sigs.take() > 0
    # Re-signed by the real notaries with another tx_root: the consensus state is the same,
    # but two checkpoints at one height is equivocation.
    other = lc.Checkpoint()
    other.CopyFrom(honest.checkpoint)
    other.tx_root = b"\x66" * 32
    evidence = header_message(lc.Header(checkpoint=other, signatures=[sign_checkpoint(s, other) for s in c.member_seeds],
                                        trusted_height=1, notary_set=lc.NotarySet(public_keys=honest.notary_set)))
    LC.verify_client_message(store, evidence, T0 + SEC)
    assert sigs.take() >= 3
    assert LC.check_for_misbehaviour(store, evidence)
