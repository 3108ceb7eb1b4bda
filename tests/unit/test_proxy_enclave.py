"""The SIMULATED enclave's sans-I/O logic: hosted clients, signing, aggregation, sealing, and
the golden vectors of every preimage the proxy hashes."""

from __future__ import annotations

import contextlib
import copy
import hashlib
from collections.abc import Iterator

import pytest

from chains.ibc.host import paths
from kakehashi.proxy.v1 import proxy_pb2 as pb
from lightclients.interface import Height, MemoryClientStore, Status
from lightclients.proxy import messages as proxy_messages
from lightclients.proxy import sealing
from lightclients.proxy.client import ProxyLightClient
from lightclients.proxy.enclave import Enclave, EnclaveError, MisbehaviourDetected
from lightclients.proxy.messages import (
    attestation_digest,
    message_digest,
    operator_digest,
    parse_membership,
    parse_update,
    state_id,
)
from tests.support.cordahost import CordaHost
from tests.support.evmhost import EvmHost
from tests.support.host import SECOND, START_NS
from tests.support.proxyhost import CODE_HASH, Operator, ProxiedHost, seeded

TP = 3600 * SECOND
GOLDEN_STATE_ID = "b2ec8664567d5265b93feb7f1c537c28aa94d9ad7c495f746385d6026332e386"


@contextlib.contextmanager
def count_recoveries() -> Iterator[list[bytes]]:
    """Every enclave-signature recovery the proxy client makes while the block runs."""
    calls: list[bytes] = []
    real = proxy_messages.secp256k1_recover_address

    def counting(digest: bytes, signature: bytes) -> bytes:
        calls.append(digest)
        return real(digest, signature)

    proxy_messages.secp256k1_recover_address = counting
    try:
        yield calls
    finally:
        proxy_messages.secp256k1_recover_address = real


# --- golden vectors: the preimages as the module docstrings write them ---------------------


def test_state_id_preimage() -> None:
    want = hashlib.sha256(b"kakehashi/proxy/v1/state-id\x00" + b"\x00\x07" + b"10-qbft" + b"\x00\x00\x00\x02\x01\x02"
                          + b"\x00\x00\x00\x01\x03" + b"\x00\x00\x00\x02\x04\x05").hexdigest()
    assert state_id("10-qbft", b"\x01\x02", b"\x03", b"\x04\x05").hex() == want
    assert want == GOLDEN_STATE_ID
    # no stored block identity (the creation height) is an empty, length-prefixed field
    assert state_id("10-qbft", b"\x01\x02", b"\x03") != state_id("10-qbft", b"\x01\x02", b"\x03", b"\x00")


def test_signed_digest_preimages_are_domain_separated() -> None:
    assert message_digest(b"\x0a\x00").hex() == hashlib.sha256(b"kakehashi/proxy/v1/message\x00\x0a\x00").hexdigest()
    assert message_digest(b"\x0a\x00").hex() == "72fbcb05b26e8dabde014295716800f3e30545ff0a5687152ceb9acac408ec0e"
    assert attestation_digest(b"r").hex() == "bbf7f580f38b0e66bf6da877796d9f0b7800c57ae66b5083d4e2cbd180595332"
    assert operator_digest(b"r").hex() == "3ebcc83d822e7982c6d6361d291d0503f5b0ca5bed417dda4ec560f266607226"
    assert len({message_digest(b"r"), attestation_digest(b"r"), operator_digest(b"r")}) == 3


def test_sealed_blob_layout() -> None:
    blob = sealing.seal(b"\x07" * 32, b"\x08" * 32, pb.SealedEnclaveKey(secret=b"\x09" * 32), b"\x0a" * 12)
    assert blob.hex() == ("4b4b485345414c310a0a0a0a0a0a0a0a0a0a0a0a343538c41a3eddf15835d9cbc8fcd169ccfe050c146c0f3d7b"
                          "dfb24fb4558ab74ca3613e7854c188e21fd6c5b6907ae80247")
    assert blob[:8] == b"KKHSEAL1" and blob[8:20] == b"\x0a" * 12


# --- sealing ----------------------------------------------------------------------------


def test_sealed_key_reopens_only_for_the_same_code_and_platform() -> None:
    op = Operator("seal")
    address = op.new_key(ProxiedHost(EvmHost("c", 9, START_NS)).authority, START_NS)
    platform = b"\x33" * 32
    blob = op.enclave.seal_key(address, platform)
    fresh = Enclave(CODE_HASH, seeded("other-instance"))
    assert fresh.unseal_key(blob, platform) == address
    assert [a for a, _, _ in fresh.attested_keys()] == [address]
    with pytest.raises(sealing.SealingError, match="other enclave code"):
        Enclave(hashlib.sha256(b"modified bundle").digest(), seeded("x")).unseal_key(blob, platform)
    with pytest.raises(sealing.SealingError, match="other enclave code or another platform"):
        Enclave(CODE_HASH, seeded("y")).unseal_key(blob, b"\x34" * 32)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(sealing.SealingError):
        Enclave(CODE_HASH, seeded("z")).unseal_key(tampered, platform)
    with pytest.raises(sealing.SealingError, match="magic"):
        Enclave(CODE_HASH, seeded("z")).unseal_key(b"not sealed", platform)


def test_enclave_adopts_only_an_attestation_of_its_own_key_and_code() -> None:
    authority = ProxiedHost(EvmHost("c", 9, START_NS)).authority
    op = Operator("adopt")
    address = op.enclave.new_key()
    other = Operator("someone-else").enclave.new_key()
    report, sig = authority.attest(CODE_HASH, other, op.address, START_NS)
    from lightclients.proxy.attestation import operator_sign, registration

    with pytest.raises(EnclaveError, match="names key"):
        op.enclave.attach(address, registration(report, sig, operator_sign(op.secret, report)))
    report, sig = authority.attest(b"\x01" * 32, address, op.address, START_NS)
    with pytest.raises(EnclaveError, match="attestation is for code"):
        op.enclave.attach(address, registration(report, sig, operator_sign(op.secret, report)))
    assert op.enclave.attested_keys() == []


# --- hosted clients -----------------------------------------------------------------------


def test_two_enclaves_following_one_chain_sign_identical_messages() -> None:
    src = EvmHost("chain-b", 1002, START_NS, 5 * SECOND)
    p = ProxiedHost(src, operators=2, threshold=2)
    p.client_state(TP, 30 * SECOND)
    start = src.height
    src.idle(3)
    signed = p.signed_update(src.height, start)  # asserts the two enclaves agree byte for byte
    assert len(signed.message.signatures) == 2 and len(signed.registrations) == 2
    up = parse_update(signed.message.message)
    assert (Height(up.prev_height.revision_number, up.prev_height.revision_height), up.post_height.revision_height) \
        == (start, src.height.revision_height)
    assert up.context.trusting_period == TP and up.context.clock_drift == 30 * SECOND


def test_enclave_refuses_a_header_of_another_chain_and_unknown_signers() -> None:
    src = EvmHost("chain-b", 1002, START_NS, 5 * SECOND)
    p = ProxiedHost(src)
    p.client_state(TP, 30 * SECOND)
    (op,) = p.operators
    impostor = EvmHost("chain-b", 1002, START_NS, 5 * SECOND, key_label="impostor")
    impostor.idle(2)
    before = copy.deepcopy(op.elc.data)
    with pytest.raises(EnclaveError, match="rejected the header"):
        op.enclave.update_client(op.elc, impostor.header(impostor.height, src.height), src.now_ns,
                                 [p.keys[op.address]])
    assert op.elc.data == before
    src.idle()
    with pytest.raises(EnclaveError, match="holds no attested key"):
        op.enclave.update_client(op.elc, src.header(src.height, Height(1, 1)), src.now_ns, [b"\x01" * 20])


def test_enclave_signs_proofs_only_for_what_the_hosted_client_verifies() -> None:
    src = EvmHost("chain-b", 1002, START_NS, 5 * SECOND)
    p = ProxiedHost(src)
    p.client_state(TP, 30 * SECOND)
    (op,) = p.operators
    path = paths.packet_commitment("transfer", "channel-0", 1)
    src.store.set(path, b"\x22" * 32)
    src.idle()
    proof = src.prove(path, src.height)
    p.signed_update(src.height, Height(1, 1))
    signed = op.enclave.verify_membership(op.elc, src.height, src.prefix, path, b"\x22" * 32, proof, src.now_ns,
                                          [p.keys[op.address]])
    vm = parse_membership(signed.message.message)
    assert vm.path == path and vm.value_hash == hashlib.sha256(b"\x22" * 32).digest()
    with pytest.raises(EnclaveError, match="rejected the proof"):
        op.enclave.verify_membership(op.elc, src.height, src.prefix, path, b"\x23" * 32, proof, src.now_ns,
                                     [p.keys[op.address]])
    with pytest.raises(EnclaveError, match="rejected the proof"):
        op.enclave.verify_non_membership(op.elc, src.height, src.prefix, path, proof, src.now_ns,
                                         [p.keys[op.address]])
    with pytest.raises(EnclaveError, match="name at least one"):
        op.enclave.verify_membership(op.elc, src.height, src.prefix, path, b"\x22" * 32, proof, src.now_ns, [])


def test_enclave_freezes_its_client_on_an_equivocating_checkpoint() -> None:
    src = CordaHost("chain-b", START_NS, 3 * SECOND)
    p = ProxiedHost(src)
    p.client_state(TP, 30 * SECOND)
    (op,) = p.operators
    start = src.height
    src.idle()
    p.signed_update(src.height, start)
    with pytest.raises(MisbehaviourDetected, match="equivocated"):
        op.enclave.update_client(op.elc, src.conflicting_header(src.height, start), src.now_ns,
                                 [p.keys[op.address]])
    assert op.enclave.status(op.elc, src.now_ns) is Status.FROZEN


def test_aggregated_updates_are_one_message_the_client_accepts() -> None:
    src = CordaHost("chain-b", START_NS, 3 * SECOND)
    p = ProxiedHost(src)
    cs, cons = p.client_state(TP, 30 * SECOND), p.consensus_state()
    client, store = ProxyLightClient(), MemoryClientStore()
    client.initialize(store, cs, cons, src.now_ns)
    (op,) = p.operators
    key = p.keys[op.address]
    steps = []
    trusted = src.height
    for _ in range(3):
        src.idle()
        steps.append(p.signed_update(src.height, trusted))
        trusted = src.height
    merged = op.enclave.aggregate([s.message for s in steps], [key])
    up = parse_update(merged.message.message)
    first, last = parse_update(steps[0].message.message), parse_update(steps[-1].message.message)
    assert up.prev_state_id == first.prev_state_id and up.post_state_id == last.post_state_id
    assert up.context.trusted_state_timestamp == first.context.trusted_state_timestamp
    assert up.context.untrusted_header_timestamp == last.timestamp
    msg = ProxiedHost.client_message(merged)
    client.verify_client_message(store, msg, src.now_ns + SECOND)
    assert client.update_state(store, msg) == [src.height]
    with pytest.raises(EnclaveError, match="does not continue"):
        op.enclave.aggregate([steps[0].message, steps[2].message], [key])
    foreign = Operator("foreign")
    with pytest.raises(EnclaveError, match="not signed by a key of this enclave"):
        foreign.enclave.aggregate([s.message for s in steps], [])
