"""QBFT light client rules, each pinned by a header or proof that breaks exactly that rule."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.evm import IBC_HANDLER_ADDRESS, EvmChain, seal_header
from kakehashi.qbft.v1 import lightclient_pb2 as pb
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
from lightclients.qbft import QbftClient, encode_header_message, encode_misbehaviour_message
from lightclients.qbft.header import Vote
from tests.unit.test_qbft_support import (
    ADDRS,
    KEYS,
    NS,
    T0,
    header_msg,
    make_chain,
    new_client,
    now_of,
    produce,
)

PATH = b"commitments/ports/transfer/channels/channel-0/sequences/1"
VALUE = b"packet commitment bytes"


def _update(client: QbftClient, store: MemoryClientStore, msg: bytes, now: int) -> list[Height]:
    client.verify_client_message(store, msg, now)
    if client.check_for_misbehaviour(store, msg):
        client.update_state_on_misbehaviour(store, msg)
        return []
    return client.update_state(store, msg)


@pytest.fixture
def chain() -> EvmChain:
    c = make_chain()
    produce(c, 1)
    return c


def test_three_of_four_seals_accepted_one_and_two_rejected(chain: EvmChain) -> None:
    client, store = new_client(chain, 1)
    produce(chain, 2)
    seals = list(chain.header(2).extra.seals)
    assert len(seals) == 4
    now = now_of(chain, 2)
    for count in (1, 2):
        with pytest.raises(InvalidClientMessage, match="> 2/3"):
            client.verify_client_message(store, header_msg(chain, 2, 1, seals[:count]), now)
    assert _update(client, store, header_msg(chain, 2, 1, seals[:3]), now) == [Height(0, 2)]
    assert client.latest_height(store) == Height(0, 2)


def test_duplicated_seal_counts_once(chain: EvmChain) -> None:
    client, store = new_client(chain, 1)
    produce(chain, 2)
    s = list(chain.header(2).extra.seals)
    with pytest.raises(InvalidClientMessage, match="only 2 of"):
        client.verify_client_message(store, header_msg(chain, 2, 1, [s[0], s[0], s[1], s[1]]), now_of(chain, 2))
    client.verify_client_message(store, header_msg(chain, 2, 1, [s[0], s[0], s[1], s[2]]), now_of(chain, 2))


def test_header_with_seals_inside_extra_data_rejected(chain: EvmChain) -> None:
    client, store = new_client(chain, 1)
    produce(chain, 2)
    header = chain.light_client_header(2, 1)
    header.header_rlp = chain.header(2).encode()
    with pytest.raises(InvalidClientMessage, match="empty seal list"):
        client.verify_client_message(store, encode_header_message(header), now_of(chain, 2))


def test_clock_drift_rejected_until_time_catches_up(chain: EvmChain) -> None:
    client, store = new_client(chain, 1)
    produce(chain, 100)
    msg = header_msg(chain, 2, 1)
    header_time = chain.header(2).timestamp * NS
    with pytest.raises(InvalidClientMessage, match="clock drift"):
        client.verify_client_message(store, msg, header_time - 10 * NS)
    client.verify_client_message(store, msg, header_time - 9 * NS)
    assert _update(client, store, msg, header_time) == [Height(0, 2)]


def test_expired_client_refuses_update_and_proofs(chain: EvmChain) -> None:
    chain.ibc.store.set(PATH, VALUE)
    produce(chain, 2)
    client, store = new_client(chain, 2, trusting=3600 * NS)
    produce(chain, 3)
    proof = chain.ibc_proof(PATH, 2)
    fresh = now_of(chain, 2, 3599)
    client.verify_membership(store, Height(0, 2), proof, IBC_HANDLER_ADDRESS, PATH, VALUE, fresh)
    late = now_of(chain, 2, 3600)
    assert client.status(store, late) is Status.EXPIRED
    with pytest.raises(ClientNotActive):
        client.verify_client_message(store, header_msg(chain, 3, 2), late)
    with pytest.raises(ClientNotActive):
        client.verify_membership(store, Height(0, 2), proof, IBC_HANDLER_ADDRESS, PATH, VALUE, late)
    with pytest.raises(ClientNotActive):
        client.verify_non_membership(store, Height(0, 2), proof, IBC_HANDLER_ADDRESS, b"other", late)


def _fork(seconds: list[int]) -> EvmChain:
    c = make_chain()
    produce(c, 1)
    for s in seconds:
        produce(c, s)
    return c


def test_conflicting_header_at_stored_height_freezes() -> None:
    a, b = _fork([5]), _fork([6])
    assert a.header(1) == b.header(1) and a.header(2) != b.header(2)
    client, store = new_client(a, 1)
    now = now_of(b, 2)
    assert _update(client, store, header_msg(a, 2, 1), now) == [Height(0, 2)]
    assert _update(client, store, header_msg(a, 2, 1), now) == []  # same block again: no-op
    assert client.status(store, now) is Status.ACTIVE
    conflicting = header_msg(b, 2, 1)
    client.verify_client_message(store, conflicting, now)
    assert client.check_for_misbehaviour(store, conflicting)
    client.update_state_on_misbehaviour(store, conflicting)
    assert client.status(store, now) is Status.FROZEN
    with pytest.raises(ClientNotActive):
        client.verify_client_message(store, header_msg(a, 2, 1), now)


def test_misbehaviour_message_two_headers_one_height() -> None:
    a, b = _fork([5]), _fork([6])
    client, store = new_client(a, 1)
    ha, hb = a.light_client_header(2, 1), b.light_client_header(2, 1)
    now = now_of(b, 2)
    with pytest.raises(InvalidClientMessage, match="do not conflict"):
        client.verify_client_message(store, encode_misbehaviour_message(ha, ha), now)
    msg = encode_misbehaviour_message(ha, hb)
    client.verify_client_message(store, msg, now)
    assert client.check_for_misbehaviour(store, msg)
    client.update_state_on_misbehaviour(store, msg)
    assert client.status(store, now) is Status.FROZEN


def test_time_going_backwards_is_misbehaviour() -> None:
    a, b = _fork([10, 20]), _fork([2, 3, 4])
    client, store = new_client(a, 1)
    now = now_of(a, 3)
    _update(client, store, header_msg(a, 3, 1), now)
    backwards = header_msg(b, 4, 1)
    client.verify_client_message(store, backwards, now)
    assert client.check_for_misbehaviour(store, backwards)
    ha, hb = a.light_client_header(3, 1), b.light_client_header(4, 1)
    evidence = encode_misbehaviour_message(ha, hb)
    client.verify_client_message(store, evidence, now)
    assert client.check_for_misbehaviour(store, evidence)
    client.update_state_on_misbehaviour(store, evidence)
    assert client.status(store, now) is Status.FROZEN
    with pytest.raises(ClientNotActive):
        client.verify_non_membership(store, Height(0, 3), a.ibc_proof(PATH, 3), IBC_HANDLER_ADDRESS, PATH, now)


def test_module_implements_the_light_client_interface() -> None:
    client = QbftClient()
    assert isinstance(client, LightClientModule)
    assert client.client_type == "10-qbft"
    assert client.status(MemoryClientStore(), T0) is Status.UNKNOWN


def test_membership_and_forged_proofs(chain: EvmChain) -> None:
    client, store = new_client(chain, 1)
    chain.ibc.store.set(PATH, VALUE)
    produce(chain, 2)
    now = now_of(chain, 2)
    _update(client, store, header_msg(chain, 2, 1), now)
    proof = chain.ibc_proof(PATH, 2)
    h2 = Height(0, 2)
    client.verify_membership(store, h2, proof, IBC_HANDLER_ADDRESS, PATH, VALUE, now)
    with pytest.raises(InvalidProof):  # value changed
        client.verify_membership(store, h2, proof, IBC_HANDLER_ADDRESS, PATH, VALUE + b"x", now)
    with pytest.raises(InvalidProof):  # key changed
        client.verify_membership(store, h2, proof, IBC_HANDLER_ADDRESS, PATH + b"0", VALUE, now)
    with pytest.raises(InvalidProof):  # root changed: height 1 predates the commitment
        client.verify_membership(store, Height(0, 1), chain.ibc_proof(PATH, 2), IBC_HANDLER_ADDRESS, PATH, VALUE, now)
    nodes = pb.StorageProof.FromString(proof)
    tampered = bytearray(nodes.proof[-1])
    tampered[-1] ^= 1
    nodes.proof[-1] = bytes(tampered)
    with pytest.raises(InvalidProof):  # a proof node changed
        client.verify_membership(
            store, h2, nodes.SerializeToString(), IBC_HANDLER_ADDRESS, PATH, VALUE, now
        )
    with pytest.raises(InvalidProof, match="prefix"):
        client.verify_membership(store, h2, proof, b"ibc", PATH, VALUE, now)
    with pytest.raises(InvalidProof):
        client.verify_membership(store, h2, b"\xff\xff", IBC_HANDLER_ADDRESS, PATH, VALUE, now)


def test_non_membership(chain: EvmChain) -> None:
    client, store = new_client(chain, 1)
    chain.ibc.store.set(PATH, VALUE)
    produce(chain, 2)
    now = now_of(chain, 2)
    _update(client, store, header_msg(chain, 2, 1), now)
    absent = b"receipts/ports/transfer/channels/channel-0/sequences/9"
    client.verify_non_membership(store, Height(0, 2), chain.ibc_proof(absent, 2), IBC_HANDLER_ADDRESS, absent, now)
    with pytest.raises(InvalidProof, match="is committed"):
        client.verify_non_membership(store, Height(0, 2), chain.ibc_proof(PATH, 2), IBC_HANDLER_ADDRESS, PATH, now)
    client.verify_non_membership(store, Height(0, 1), chain.ibc_proof(PATH, 1), IBC_HANDLER_ADDRESS, PATH, now)
    chain.ibc.store.delete(PATH)
    produce(chain, 3)
    _update(client, store, header_msg(chain, 3, 2), now_of(chain, 3))
    client.verify_non_membership(store, Height(0, 3), chain.ibc_proof(PATH, 3), IBC_HANDLER_ADDRESS, PATH, now_of(chain, 3))


def test_proof_height_needs_a_stored_consensus_state(chain: EvmChain) -> None:
    client, store = new_client(chain, 1)
    produce(chain, 2)
    produce(chain, 3)
    now = now_of(chain, 3)
    _update(client, store, header_msg(chain, 3, 1), now)  # skips height 2
    with pytest.raises(ConsensusStateNotFound):
        client.verify_non_membership(store, Height(0, 2), chain.ibc_proof(PATH, 2), IBC_HANDLER_ADDRESS, PATH, now)
    with pytest.raises(InvalidProof, match="above the latest"):
        client.verify_non_membership(store, Height(0, 4), chain.ibc_proof(PATH, 3), IBC_HANDLER_ADDRESS, PATH, now)


def test_rotation_committed_by_old_quorum_accepted_with_skipping() -> None:
    chain = make_chain()
    produce(chain, 1)
    client, store = new_client(chain, 1)
    new_validator = ADDRS[4]
    for s in (2, 3, 4):
        chain.produce_block([], T0 + s * NS, KEYS[:4], vote=Vote(new_validator, True))
    assert len(chain.validators) == 5
    produce(chain, 5, KEYS[1:5])  # 4 of 5, only 3 of them from the trusted set of 4
    assert len(chain.header(5).extra.validators) == 5
    assert _update(client, store, header_msg(chain, 5, 1), now_of(chain, 5)) == [Height(0, 5)]


def test_rotation_not_committed_by_old_quorum_rejected(chain: EvmChain) -> None:
    client, store = new_client(chain, 1)
    other = make_chain(validators=3, first=4)  # an entirely new validator set
    produce(other, 1, KEYS[4:7])
    produce(other, 2, KEYS[4:7])
    with pytest.raises(InvalidClientMessage, match="trusted validators"):
        client.verify_client_message(store, header_msg(other, 2, 1), now_of(other, 2))


def test_header_needs_two_thirds_of_its_own_validators(chain: EvmChain) -> None:
    client, store = new_client(chain, 1)
    big = make_chain(validators=7)
    produce(big, 1, KEYS[:7])
    produce(big, 2, KEYS[:7])
    resealed = seal_header(big.header(2), KEYS[:4])  # all 4 trusted, but only 4 of its 7
    with pytest.raises(InvalidClientMessage, match="4 of the header's 7"):
        client.verify_client_message(
            store, header_msg(big, 2, 1, list(resealed.extra.seals)), now_of(big, 2)
        )


def test_malformed_input_is_a_typed_error_and_changes_nothing(chain: EvmChain) -> None:
    client, store = new_client(chain, 1)
    produce(chain, 2)
    before = dict(store.data)
    now = now_of(chain, 2)
    for junk in (b"\xff\x00garbage", b"", b"\x0a\x03abc"):
        with pytest.raises(InvalidClientMessage):
            client.verify_client_message(store, junk, now)
    header = chain.light_client_header(2, 1)
    header.header_rlp = header.header_rlp[:-1]
    with pytest.raises(InvalidClientMessage, match="header"):
        client.verify_client_message(store, encode_header_message(header), now)
    header = chain.light_client_header(2, 1)
    header.seals[0] = header.seals[0][:64]
    with pytest.raises(InvalidClientMessage, match="seal"):
        client.verify_client_message(store, encode_header_message(header), now)
    header = chain.light_client_header(2, 1)
    del header.account_proof[-1]
    with pytest.raises(InvalidClientMessage, match="account proof"):
        client.verify_client_message(store, encode_header_message(header), now)
    header = chain.light_client_header(2, 1)
    header.trusted_height.revision_height = 7
    with pytest.raises(InvalidClientMessage, match="trusted height"):
        client.verify_client_message(store, encode_header_message(header), now)
    assert store.data == before


def test_same_block_sealed_in_another_round_is_not_a_conflict() -> None:
    a, b = make_chain(), make_chain()
    for c in (a, b):
        produce(c, 1)
    a.produce_block([], T0 + 5 * NS, KEYS[:4], round_number=0)
    b.produce_block([], T0 + 5 * NS, KEYS[:4], round_number=1)
    assert a.header(2).commit_hash() != b.header(2).commit_hash()
    assert a.header(2).block_hash() == b.header(2).block_hash()
    client, store = new_client(a, 1)
    now = now_of(a, 2)
    assert _update(client, store, header_msg(a, 2, 1), now) == [Height(0, 2)]
    other_round = header_msg(b, 2, 1)
    client.verify_client_message(store, other_round, now)
    assert not client.check_for_misbehaviour(store, other_round)
    assert client.update_state(store, other_round) == []
    assert client.status(store, now) is Status.ACTIVE


_FUZZ_CHAIN = make_chain()
produce(_FUZZ_CHAIN, 1)
_FUZZ_CHAIN.ibc.store.set(PATH, VALUE)
produce(_FUZZ_CHAIN, 2)
_FUZZ_MSG = header_msg(_FUZZ_CHAIN, 2, 1)
_FUZZ_PROOF = _FUZZ_CHAIN.ibc_proof(PATH, 2)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(_FUZZ_MSG) - 1), st.integers(1, 255))
def test_corrupted_header_message_is_a_client_error_or_still_valid(index: int, xor: int) -> None:
    client, store = new_client(_FUZZ_CHAIN, 1)
    before = dict(store.data)
    data = bytearray(_FUZZ_MSG)
    data[index] ^= xor
    with contextlib.suppress(ClientError):
        client.verify_client_message(store, bytes(data), now_of(_FUZZ_CHAIN, 2))
    assert store.data == before


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(_FUZZ_PROOF) - 1), st.integers(1, 255))
def test_corrupted_storage_proof_is_rejected(index: int, xor: int) -> None:
    client, store = new_client(_FUZZ_CHAIN, 1)
    now = now_of(_FUZZ_CHAIN, 2)
    _update(client, store, _FUZZ_MSG, now)
    data = bytearray(_FUZZ_PROOF)
    data[index] ^= xor
    try:
        client.verify_membership(store, Height(0, 2), bytes(data), IBC_HANDLER_ADDRESS, PATH, VALUE, now)
    except InvalidProof:
        return
    # A flip that still verifies can only be one protobuf would parse to the same nodes.
    assert pb.StorageProof.FromString(bytes(data)) == pb.StorageProof.FromString(_FUZZ_PROOF)
