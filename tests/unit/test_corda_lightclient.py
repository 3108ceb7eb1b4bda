"""The corda light client against checkpoints made by the real notary cluster."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.corda.cash import ADMISSION, CASH, AdmissionContract, CashContract
from chains.corda.contracts import Contract
from chains.corda.notary import NotaryCluster, SignedCheckpoint
from kakehashi.corda.v1 import lightclient_pb2 as lc
from lightclients.corda import initial_states
from lightclients.corda.checkpoint import notary_set_hash, quorum, sign_checkpoint, trust_quorum
from lightclients.corda.client import (
    CordaLightClient,
    consensus_state_from_checkpoint,
    encode,
    header_message,
    misbehaviour_message,
)
from lightclients.crypto import ed25519_public_key, sha256
from lightclients.interface import (
    ClientError,
    ClientNotActive,
    ConsensusStateNotFound,
    Height,
    InvalidClientMessage,
    InvalidProof,
    LightClientModule,
    MemoryClientStore,
    Status,
)

SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC
TRUST = 3600 * SEC
DRIFT = 10 * SEC
CONTRACTS: dict[str, Contract] = {CASH: CashContract(), ADMISSION: AdmissionContract()}
RECEIPT = b"receipts/ports/dvp/channels/channel-0/sequences/1"
COMMITMENT = b"commitments/ports/dvp/channels/channel-0/sequences/1"
LC = CordaLightClient()


def seeds(prefix: str, n: int) -> list[bytes]:
    return [sha256(f"{prefix}-{i}".encode()) for i in range(n)]


def make_cluster(n: int = 4) -> NotaryCluster:
    return NotaryCluster("corda-1", sha256(b"notary-service"), seeds("notary", n), CONTRACTS)


def init_client(c: NotaryCluster, genesis: SignedCheckpoint, now: int | None = None) -> MemoryClientStore:
    store = MemoryClientStore()
    cs, cons = initial_states(genesis.checkpoint, genesis.notary_set, TRUST, DRIFT)
    LC.initialize(store, cs, cons, now if now is not None else genesis.checkpoint.timestamp)
    return store


def update(store: MemoryClientStore, header: lc.Header, now: int) -> list[Height]:
    msg = header_message(header)
    LC.verify_client_message(store, msg, now)
    assert not LC.check_for_misbehaviour(store, msg)
    return LC.update_state(store, msg)


def setup(n: int = 4) -> tuple[NotaryCluster, MemoryClientStore]:
    c = make_cluster(n)
    g = c.checkpoint(T0)
    return c, init_client(c, g)


def test_module_matches_interface() -> None:
    assert isinstance(LC, LightClientModule)
    assert LC.client_type == "11-corda"


def test_checkpoint_and_notary_set_golden_preimages() -> None:
    """sha256 over the deterministic protobuf encoding, fields in tag order (pinned bytes)."""
    import hashlib

    from lightclients.corda.checkpoint import checkpoint_bytes, checkpoint_hash

    cp = lc.Checkpoint(chain_id="corda-1", height=7, timestamp=1_700_000_000_000_000_000, prev_hash=b"\x01" * 32,
                       tx_root=b"\x02" * 32, ibc_root=b"\x03" * 32, notary_set_hash=b"\x04" * 32,
                       next_notary_set_hash=b"\x05" * 32)
    expected = bytes.fromhex(
        "0a07636f7264612d311007188080a8b1e39fe7cb17"
        + "".join(f"{tag:02x}20" + f"{fill:02x}" * 32 for tag, fill in ((0x22, 1), (0x2A, 2), (0x32, 3), (0x3A, 4), (0x42, 5)))
    )
    assert checkpoint_bytes(cp) == expected
    assert checkpoint_hash(cp) == hashlib.sha256(expected).digest()
    assert checkpoint_hash(cp).hex() == "69ff79518091f0b6f9efb383f8c1be25a878fdb1358f144d512dd855f3b4b80d"
    set_bytes = b"\x0a\x20" + b"\x11" * 32 + b"\x0a\x20" + b"\x22" * 32
    assert notary_set_hash([b"\x11" * 32, b"\x22" * 32]) == hashlib.sha256(set_bytes).digest()


@pytest.mark.parametrize("name", ["exist_left", "exist_middle", "exist_right",
                                  "nonexist_left", "nonexist_middle", "nonexist_right"])
def test_public_ics23_smt_vectors_through_the_client(name: str) -> None:
    """cosmos/ics23 SMT vectors: the client accepts them against a consensus state with their root."""
    from tests.conftest import load_vector

    vec = load_vector("cosmos-ics23", "smt", f"{name}.json")
    key, value, root, proof = (bytes.fromhex(vec[k]) for k in ("key", "value", "root", "proof"))
    keys = [ed25519_public_key(s) for s in seeds("notary", 4)]
    store = MemoryClientStore()
    cs = lc.ClientState(chain_id="corda-1", notary_keys=keys, threshold=3, latest_height=1,
                        trusting_period=TRUST, max_clock_drift=DRIFT)
    cons = lc.ConsensusState(timestamp=T0, ibc_root=root, notary_set_hash=notary_set_hash(keys),
                             next_notary_set_hash=notary_set_hash(keys))
    LC.initialize(store, encode(cs), encode(cons), T0)
    if value:
        LC.verify_membership(store, Height(0, 1), proof, b"ibc", key, value, T0)
        with pytest.raises(InvalidProof):
            LC.verify_membership(store, Height(0, 1), proof, b"ibc", key, value + b"!", T0)
        with pytest.raises(InvalidProof):
            LC.verify_non_membership(store, Height(0, 1), proof, b"ibc", key, T0)
    else:
        LC.verify_non_membership(store, Height(0, 1), proof, b"ibc", key, T0)
        with pytest.raises(InvalidProof):
            LC.verify_non_membership(store, Height(0, 1), proof, b"ibc", key + b"!", T0)


@settings(max_examples=150, deadline=None)
@given(junk=st.binary(max_size=300))
def test_fuzzed_client_messages_raise_client_errors_only(junk: bytes) -> None:
    c = make_cluster(4)
    store = init_client(c, c.checkpoint(T0))
    before = dict(store.data)
    with pytest.raises(ClientError):
        LC.verify_client_message(store, junk, T0 + SEC)
    with pytest.raises(InvalidProof):
        LC.verify_membership(store, Height(0, 1), junk, b"ibc", COMMITMENT, b"v", T0 + SEC)
    assert store.data == before


def test_quorum_arithmetic_is_strict() -> None:
    assert [quorum(n) for n in (1, 3, 4, 6, 7, 31)] == [1, 3, 3, 5, 5, 21]
    assert [trust_quorum(n) for n in (3, 4, 6, 7, 31)] == [2, 2, 3, 3, 11]


def test_two_of_four_rejected_three_of_four_accepted() -> None:
    c, store = setup(4)
    cp = c.checkpoint(T0 + SEC, online=[0, 1])
    with pytest.raises(InvalidClientMessage, match="2 of 4"):
        LC.verify_client_message(store, header_message(cp.header(1)), T0 + SEC)
    three = cp.header(1)
    three.signatures.append(sign_checkpoint(c.member_seeds[2], cp.checkpoint))
    assert update(store, three, T0 + SEC) == [Height(0, 2)]
    assert LC.latest_height(store) == Height(0, 2)
    assert LC.timestamp_at_height(store, Height(0, 2)) == T0 + SEC


def test_duplicate_signer_counted_once() -> None:
    c, store = setup(4)
    cp = c.checkpoint(T0 + SEC, online=[0, 1])
    h = cp.header(1)
    h.signatures.append(h.signatures[0])
    h.signatures.append(h.signatures[1])
    with pytest.raises(InvalidClientMessage, match="2 of 4"):
        LC.verify_client_message(store, header_message(h), T0 + SEC)


def test_signature_by_a_stranger_or_over_other_bytes_does_not_count() -> None:
    c, store = setup(4)
    cp = c.checkpoint(T0 + SEC, online=[0, 1])
    h = cp.header(1)
    h.signatures.append(sign_checkpoint(sha256(b"stranger"), cp.checkpoint))
    other = lc.Checkpoint()
    other.CopyFrom(cp.checkpoint)
    other.height = 99
    sig = sign_checkpoint(c.member_seeds[2], other)
    h.signatures.append(sig)
    with pytest.raises(InvalidClientMessage):
        LC.verify_client_message(store, header_message(h), T0 + SEC)


def test_committed_rotation_accepted_uncommitted_rejected() -> None:
    c, store = setup(4)
    new = seeds("rotated", 4)
    c.rotate(new)
    commit = c.checkpoint(T0 + SEC)  # old set signs, commits the new set
    assert commit.checkpoint.next_notary_set_hash == notary_set_hash([ed25519_public_key(s) for s in new])
    after = c.checkpoint(T0 + 2 * SEC)  # the new set signs
    update(store, commit.header(1), T0 + 2 * SEC)
    update(store, after.header(2), T0 + 2 * SEC)
    # A different cluster with the same chain id that never committed its set is refused.
    rogue = make_cluster(4)
    rogue.checkpoint(T0)
    rogue.member_seeds = seeds("rogue", 4)
    rogue.members = [ed25519_public_key(s) for s in rogue.member_seeds]
    forged = rogue.checkpoint(T0 + SEC)
    _, fresh = setup(4)
    with pytest.raises(InvalidClientMessage, match="not committed"):
        LC.verify_client_message(fresh, header_message(forged.header(1)), T0 + SEC)


def test_skipping_update_needs_more_than_a_third_of_trusted_set() -> None:
    # Rotate one member at a time: after two rotations the trusted set at height 1 overlaps the
    # header's set in 2 of 4 (> 1/3): accepted. After four, it overlaps in none: refused.
    c, store = setup(4)
    base = seeds("notary", 4)
    fresh = seeds("fresh", 4)
    headers = []
    for k in range(1, 5):
        c.rotate(fresh[:k] + base[k:])
        headers.append(c.checkpoint(T0 + k * SEC))
    last = c.checkpoint(T0 + 5 * SEC)
    # height 4 is signed by set {fresh0, fresh1, base2, base3}: two trusted members
    update(store, headers[2].header(1), T0 + 5 * SEC)
    # height 6 is signed by all-fresh keys: none of the trusted set (height 1) signed
    _, store2 = (None, init_client(c, _genesis_of(c)))
    with pytest.raises(InvalidClientMessage, match="trusted notaries"):
        LC.verify_client_message(store2, header_message(last.header(1)), T0 + 5 * SEC)
    # From height 4 (trusted set {f0,f1,b2,b3}) the all-fresh set shares f0,f1: 2 > 4/3.
    update(store, last.header(4), T0 + 5 * SEC)
    assert LC.latest_height(store) == Height(0, 6)


def _genesis_of(c: NotaryCluster) -> SignedCheckpoint:
    signed = c.signed_checkpoint(1)
    assert signed is not None
    return signed


def test_conflicting_checkpoints_freeze_the_client() -> None:
    c, store = setup(4)
    honest = c.checkpoint(T0 + SEC)
    evil = lc.Checkpoint()
    evil.CopyFrom(honest.checkpoint)
    evil.ibc_root = sha256(b"forged root")
    evil_header = lc.Header(checkpoint=evil, signatures=[sign_checkpoint(s, evil) for s in c.member_seeds[:3]],
                            trusted_height=1, notary_set=lc.NotarySet(public_keys=c.members))
    msg = misbehaviour_message(honest.header(1), evil_header)
    LC.verify_client_message(store, msg, T0 + SEC)
    assert LC.check_for_misbehaviour(store, msg)
    LC.update_state_on_misbehaviour(store, msg)
    assert LC.status(store, T0 + SEC) is Status.FROZEN
    with pytest.raises(ClientNotActive):
        LC.verify_client_message(store, header_message(honest.header(1)), T0 + SEC)
    with pytest.raises(ClientNotActive):
        LC.verify_non_membership(store, Height(0, 1), b"", b"ibc", RECEIPT, T0 + SEC)


def test_header_conflicting_with_stored_state_is_misbehaviour() -> None:
    c, store = setup(4)
    honest = c.checkpoint(T0 + SEC)
    update(store, honest.header(1), T0 + SEC)
    evil = lc.Checkpoint()
    evil.CopyFrom(honest.checkpoint)
    evil.ibc_root = sha256(b"other")
    h = lc.Header(checkpoint=evil, signatures=[sign_checkpoint(s, evil) for s in c.member_seeds],
                  trusted_height=1, notary_set=lc.NotarySet(public_keys=c.members))
    LC.verify_client_message(store, header_message(h), T0 + SEC)
    assert LC.check_for_misbehaviour(store, header_message(h))


def test_time_going_backwards_is_misbehaviour() -> None:
    c, store = setup(4)
    c.checkpoint(T0 + SEC)
    h3 = c.checkpoint(T0 + 3 * SEC)
    update(store, h3.header(1), T0 + 3 * SEC)
    # A valid-looking height-2 checkpoint timed after height 3.
    late = lc.Checkpoint()
    late.CopyFrom(c.signed_checkpoint(2).checkpoint)  # type: ignore[union-attr]
    late.timestamp = T0 + 4 * SEC
    h = lc.Header(checkpoint=late, signatures=[sign_checkpoint(s, late) for s in c.member_seeds],
                  trusted_height=1, notary_set=lc.NotarySet(public_keys=c.members))
    LC.verify_client_message(store, header_message(h), T0 + 4 * SEC)
    assert LC.check_for_misbehaviour(store, header_message(h))


def test_expired_client_refuses_everything() -> None:
    c, store = setup(4)
    cp = c.checkpoint(T0 + SEC)
    late = T0 + TRUST
    assert LC.status(store, late - 1) is Status.ACTIVE
    assert LC.status(store, late) is Status.EXPIRED
    with pytest.raises(ClientNotActive):
        LC.verify_client_message(store, header_message(cp.header(1)), late)
    with pytest.raises(ClientNotActive):
        LC.verify_membership(store, Height(0, 1), b"", b"ibc", COMMITMENT, b"x", late)


def test_header_trusting_an_expired_older_state_is_rejected() -> None:
    c, store = setup(4)
    cp2 = c.checkpoint(T0 + TRUST // 2)
    update(store, cp2.header(1), T0 + TRUST // 2)
    cp3 = c.checkpoint(T0 + TRUST)
    assert LC.status(store, T0 + TRUST) is Status.ACTIVE  # the latest (height 2) is still fresh
    with pytest.raises(InvalidClientMessage, match="trusting period"):
        LC.verify_client_message(store, header_message(cp3.header(1)), T0 + TRUST)
    LC.verify_client_message(store, header_message(cp3.header(2)), T0 + TRUST)


def test_clock_drift() -> None:
    c, store = setup(4)
    cp = c.checkpoint(T0 + 100 * SEC)
    with pytest.raises(InvalidClientMessage, match="clock_drift"):
        LC.verify_client_message(store, header_message(cp.header(1)), T0 + 100 * SEC - DRIFT)
    LC.verify_client_message(store, header_message(cp.header(1)), T0 + 100 * SEC - DRIFT + 1)


def test_time_must_increase_past_trusted_state() -> None:
    c, store = setup(4)
    cp = c.checkpoint(T0 + SEC)
    same = lc.Checkpoint()
    same.CopyFrom(cp.checkpoint)
    same.timestamp = T0
    h = lc.Header(checkpoint=same, signatures=[sign_checkpoint(s, same) for s in c.member_seeds],
                  trusted_height=1, notary_set=lc.NotarySet(public_keys=c.members))
    with pytest.raises(InvalidClientMessage, match="increase"):
        LC.verify_client_message(store, header_message(h), T0 + SEC)


def test_membership_and_forged_smt_proof() -> None:
    c, store = setup(4)
    c.ibc_store.set(COMMITMENT, b"\x11" * 32)
    for i in range(20):
        c.ibc_store.set(f"other/{i}".encode(), bytes([i]))
    cp = c.checkpoint(T0 + SEC)
    update(store, cp.header(1), T0 + SEC)
    view = c.ibc_store.at(cp.checkpoint.ibc_root)
    proof = view.prove_bytes(COMMITMENT)
    LC.verify_membership(store, Height(0, 2), proof, b"ibc", COMMITMENT, b"\x11" * 32, T0 + SEC)
    with pytest.raises(InvalidProof):
        LC.verify_membership(store, Height(0, 2), proof, b"ibc", COMMITMENT, b"\x12" * 32, T0 + SEC)
    with pytest.raises(InvalidProof, match="prefix"):
        LC.verify_membership(store, Height(0, 2), proof, b"other", COMMITMENT, b"\x11" * 32, T0 + SEC)
    forged = bytearray(proof)
    forged[-5] ^= 0x01
    with pytest.raises(InvalidProof):
        LC.verify_membership(store, Height(0, 2), bytes(forged), b"ibc", COMMITMENT, b"\x11" * 32, T0 + SEC)
    with pytest.raises(InvalidProof):
        LC.verify_membership(store, Height(0, 2), b"\xff\x00garbage", b"ibc", COMMITMENT, b"\x11" * 32, T0 + SEC)
    # The proof is for height 2's root; at height 1 (empty store) it fails.
    with pytest.raises(InvalidProof):
        LC.verify_membership(store, Height(0, 1), proof, b"ibc", COMMITMENT, b"\x11" * 32, T0 + SEC)
    with pytest.raises(ConsensusStateNotFound):
        LC.verify_membership(store, Height(0, 0), proof, b"ibc", COMMITMENT, b"\x11" * 32, T0 + SEC)


def test_receipt_absence_proof_for_unreceived_packet_only() -> None:
    c, store = setup(4)
    for i in range(8):
        c.ibc_store.set(f"receipts/ports/dvp/channels/channel-0/sequences/{i + 2}".encode(), b"\x01")
    cp2 = c.checkpoint(T0 + SEC)
    absent = c.ibc_store.at(cp2.checkpoint.ibc_root).prove_bytes(RECEIPT)
    c.ibc_store.set(RECEIPT, b"\x01")
    cp3 = c.checkpoint(T0 + 2 * SEC)
    update(store, cp2.header(1), T0 + 2 * SEC)
    update(store, cp3.header(2), T0 + 2 * SEC)
    LC.verify_non_membership(store, Height(0, 2), absent, b"ibc", RECEIPT, T0 + 2 * SEC)
    with pytest.raises(InvalidProof):
        LC.verify_non_membership(store, Height(0, 3), absent, b"ibc", RECEIPT, T0 + 2 * SEC)
    present = c.ibc_store.at(cp3.checkpoint.ibc_root).prove_bytes(RECEIPT)
    with pytest.raises(InvalidProof):
        LC.verify_non_membership(store, Height(0, 3), present, b"ibc", RECEIPT, T0 + 2 * SEC)
    LC.verify_membership(store, Height(0, 3), present, b"ibc", RECEIPT, b"\x01", T0 + 2 * SEC)


def test_malformed_messages_are_typed_errors_and_leave_store_untouched() -> None:
    c, store = setup(4)
    before = dict(store.data)
    for junk in (b"", b"\xff\xff\xff", b"\x0a\x05abc", "text"):
        with pytest.raises(ClientError):
            LC.verify_client_message(store, junk, T0)  # type: ignore[arg-type]
    cp = c.checkpoint(T0 + SEC)
    h = cp.header(1)
    h.notary_set.public_keys.append(b"short")
    with pytest.raises(InvalidClientMessage, match="notary"):
        LC.verify_client_message(store, header_message(h), T0 + SEC)
    assert store.data == before


def test_initialize_validates_threshold_and_set_hash() -> None:
    c = make_cluster(4)
    g = c.checkpoint(T0)
    cs = lc.ClientState(chain_id=c.chain_id, notary_keys=g.notary_set, threshold=2, latest_height=1,
                        trusting_period=TRUST, max_clock_drift=DRIFT)
    with pytest.raises(InvalidClientMessage, match="threshold"):
        LC.initialize(MemoryClientStore(), encode(cs), encode(consensus_state_from_checkpoint(g.checkpoint)), T0)
    cs.threshold = 3
    cons = consensus_state_from_checkpoint(g.checkpoint)
    cons.notary_set_hash = sha256(b"x")
    with pytest.raises(InvalidClientMessage, match="notary_set_hash"):
        LC.initialize(MemoryClientStore(), encode(cs), encode(cons), T0)


def test_duplicate_update_is_noop() -> None:
    c, store = setup(4)
    cp = c.checkpoint(T0 + SEC)
    assert update(store, cp.header(1), T0 + SEC) == [Height(0, 2)]
    assert LC.update_state(store, header_message(cp.header(1))) == []
