"""The on-chain proxy client's rules (12-proxy), each against real signed enclave messages.

The tracked chain is a real EVM chain (QBFT seals, MPT proofs); its headers and proofs go
through the SIMULATED enclave logic (``lightclients/proxy/enclave.py``) of up to three
operators, as a relayer in proxy mode would submit them. Host time is an argument, so key
expiry and the trusting-period context run in simulated time.
"""

from __future__ import annotations

import pytest

from chains.ibc.host import paths
from kakehashi.proxy.v1 import proxy_pb2 as pb
from lightclients.interface import (
    ClientNotActive,
    Height,
    InvalidClientMessage,
    InvalidProof,
    MemoryClientStore,
    Status,
)
from lightclients.proxy.attestation import SimulatedAuthority, operator_sign, registration
from lightclients.proxy.client import ProxyLightClient, enclave_key_key
from lightclients.proxy.enclave import Signed
from lightclients.proxy.messages import decode, encode, parse_update, update_message
from tests.support.basehost import ChainHost
from tests.support.cordahost import CordaHost
from tests.support.evmhost import EvmHost
from tests.support.host import SECOND, START_NS
from tests.support.proxyhost import Operator, ProxiedHost, sha256

TP = 3600 * SECOND
PATH = paths.packet_commitment("transfer", "channel-0", 1)


class Rig:
    """A proxy client (on a notional host at time ``now``) of a real EVM chain."""

    def __init__(self, operators: int = 1, threshold: int = 1, key_expiration_ns: int = 10 * 24 * 3600 * SECOND,
                 src: ChainHost | None = None) -> None:
        self.src = src or EvmHost("chain-b", 1002, START_NS, 5 * SECOND)
        self.p = ProxiedHost(self.src, operators, threshold, key_expiration_ns)
        self.client = ProxyLightClient()
        self.store = MemoryClientStore()
        self.trusted = self.src.height
        self.client.initialize(self.store, self.p.client_state(TP, 30 * SECOND), self.p.consensus_state(),
                               self.src.now_ns)

    @property
    def now(self) -> int:
        return self.src.now_ns + SECOND

    def next_update(self, signed: Signed | None = None) -> bytes:
        """A header for the chain's next block, from the client's latest height."""
        if signed is None:
            self.src.idle()
            signed = self.p.signed_update(self.src.height, self.client.latest_height(self.store))
        return ProxiedHost.client_message(signed)

    def apply(self, message: bytes, now: int | None = None) -> list[Height]:
        self.client.verify_client_message(self.store, message, now or self.now)
        assert not self.client.check_for_misbehaviour(self.store, message)
        return self.client.update_state(self.store, message)

    def committed(self) -> bytes:
        """Write a packet commitment on the chain, seal it, and bring the client to that height."""
        self.src.store.set(PATH, b"\x11" * 32)
        self.apply(self.next_update())
        return b"\x11" * 32


def test_update_by_a_registered_key_moves_the_client_and_stores_the_key() -> None:
    rig = Rig()
    heights = rig.apply(rig.next_update())
    assert heights == [rig.src.height] and rig.client.latest_height(rig.store) == rig.src.height
    (op,) = rig.p.operators
    rec = decode(pb.EnclaveKeyRecord, rig.store.get(enclave_key_key(rig.p.keys[op.address])), "record")
    report = pb.AttestationReport.FromString(op.enclave.attested_keys()[0][2].report)
    assert rec.operator == op.address and rec.expires_at == report.attested_at + rig.p.key_expiration_ns
    assert rig.client.status(rig.store, rig.now) is Status.ACTIVE
    # the same update again is a duplicate (no heights), not an error
    again = rig.p.signed_update(rig.src.height, rig.trusted)
    rig.client.verify_client_message(rig.store, ProxiedHost.client_message(again), rig.now)


def test_membership_proof_is_accepted_and_bound_to_path_value_height_and_prefix() -> None:
    rig = Rig()
    value = rig.committed()
    h = rig.src.height
    proof = rig.p.prove(PATH, h)
    prefix = rig.src.prefix
    rig.client.verify_membership(rig.store, h, proof, prefix, PATH, value, rig.now)
    other_path = paths.packet_commitment("transfer", "channel-0", 2)
    with pytest.raises(InvalidProof, match="path"):
        rig.client.verify_membership(rig.store, h, proof, prefix, other_path, value, rig.now)
    with pytest.raises(InvalidProof, match="not this value"):
        rig.client.verify_membership(rig.store, h, proof, prefix, PATH, b"\x12" * 32, rig.now)
    with pytest.raises(InvalidProof, match="prefix"):
        rig.client.verify_membership(rig.store, h, proof, b"ibc", PATH, value, rig.now)
    # another height the client also trusts: the statement names its own height
    rig.apply(rig.next_update())
    with pytest.raises(InvalidProof, match="height"):
        rig.client.verify_membership(rig.store, rig.src.height, proof, prefix, PATH, value, rig.now)
    # a membership statement is not an absence statement
    with pytest.raises(InvalidProof, match="absence"):
        rig.client.verify_non_membership(rig.store, h, proof, prefix, PATH, rig.now)


def test_non_membership_proof_is_accepted_and_not_a_membership_proof() -> None:
    rig = Rig()
    rig.apply(rig.next_update())
    absent = paths.packet_receipt("transfer", "channel-0", 9)
    proof = rig.p.prove(absent, rig.src.height)
    rig.client.verify_non_membership(rig.store, rig.src.height, proof, rig.src.prefix, absent, rig.now)
    with pytest.raises(InvalidProof, match="not this value"):
        rig.client.verify_membership(rig.store, rig.src.height, proof, rig.src.prefix, absent, b"\x01", rig.now)


def test_membership_statement_against_another_state_id_is_rejected() -> None:
    rig = Rig()
    value = rig.committed()
    h = rig.src.height
    signed = rig.p.signed_proof(PATH, h)
    vm = pb.ProxyMessage.FromString(signed.message.message).verify_membership
    vm.state_id = b"\x00" * 32
    (op,) = rig.p.operators
    forged = op.enclave._sign(encode(pb.ProxyMessage(verify_membership=vm)), [rig.p.keys[op.address]])
    with pytest.raises(InvalidProof, match="not the one stored"):
        rig.client.verify_membership(rig.store, h, encode(forged.message), rig.src.prefix, PATH, value, rig.now)


def test_broken_state_id_chain_is_rejected() -> None:
    rig = Rig()
    rig.src.idle(2)
    good = rig.p.signed_update(rig.src.height, rig.trusted)
    (op,) = rig.p.operators

    def forged(mutate: object) -> bytes:
        up = parse_update(good.message.message)
        mutate(up)  # type: ignore[operator]
        signed = op.enclave._sign(update_message(up), [rig.p.keys[op.address]])
        return ProxiedHost.client_message(Signed(signed.message, good.registrations))

    with pytest.raises(InvalidClientMessage, match="state-id chain is broken"):
        rig.client.verify_client_message(rig.store, forged(
            lambda up: setattr(up, "prev_state_id", sha256(b"some other history"))), rig.now)
    with pytest.raises(InvalidClientMessage, match="no consensus state at prev height"):
        rig.client.verify_client_message(rig.store, forged(
            lambda up: setattr(up.prev_height, "revision_height", up.prev_height.revision_height + 1)), rig.now)
    rig.client.verify_client_message(rig.store, ProxiedHost.client_message(good), rig.now)


def test_expired_enclave_key_is_rejected_for_updates_and_proofs() -> None:
    rig = Rig(key_expiration_ns=120 * SECOND)
    value = rig.committed()  # registers the key
    h = rig.src.height
    proof = rig.p.prove(PATH, h)
    (op,) = rig.p.operators
    expires = decode(pb.EnclaveKeyRecord, rig.store.get(enclave_key_key(rig.p.keys[op.address])), "r").expires_at
    rig.client.verify_membership(rig.store, h, proof, rig.src.prefix, PATH, value, expires - 1)
    with pytest.raises(InvalidProof, match="expired"):
        rig.client.verify_membership(rig.store, h, proof, rig.src.prefix, PATH, value, expires)
    update = rig.next_update()
    with pytest.raises(InvalidClientMessage, match="expired"):
        rig.client.verify_client_message(rig.store, update, expires)


def test_registration_for_an_unregistered_authority_or_wrong_code_hash_is_rejected() -> None:
    rig = Rig()
    (op,) = rig.p.operators
    # a key whose report another "authority" signed
    rogue = SimulatedAuthority(sha256(b"not the pinned authority"))
    address = op.enclave.new_key()
    report, sig = rogue.attest(op.enclave.code_hash, address, op.address, rig.src.now_ns)
    op.enclave.attach(address, registration(report, sig, operator_sign(op.secret, report)))
    rig.p.keys[op.address] = address
    with pytest.raises(InvalidClientMessage, match="not signed by the pinned authority"):
        rig.client.verify_client_message(rig.store, rig.next_update(), rig.now)
    # an enclave running other code: its key is attested for its own code hash
    other = Operator("wrong-code", code_hash=sha256(b"a modified light-client bundle"))
    other.secret, other.address = op.secret, op.address  # same operator, other code
    other.elc = op.elc
    key = other.new_key(rig.p.authority, rig.src.now_ns)
    rig.p.operators = [other]
    rig.p.keys[op.address] = key
    with pytest.raises(InvalidClientMessage, match=r"runs code .* not the pinned"):
        rig.client.verify_client_message(rig.store, rig.next_update(), rig.now)


def test_unregistered_key_is_rejected_and_a_simulated_report_needs_the_flag() -> None:
    rig = Rig()
    rig.src.idle()
    signed = rig.p.signed_update(rig.src.height, rig.trusted)
    bare = ProxiedHost.client_message(Signed(signed.message, ()))  # no registration: key unknown
    with pytest.raises(InvalidClientMessage, match="not a registered enclave key"):
        rig.client.verify_client_message(rig.store, bare, rig.now)
    strict = Rig()
    strict.p.allow_simulated = False
    strict.store = MemoryClientStore()
    strict.client.initialize(strict.store, strict.p.client_state(TP, 30 * SECOND), strict.p.consensus_state(),
                             strict.src.now_ns)
    with pytest.raises(InvalidClientMessage, match="SIMULATED"):
        strict.client.verify_client_message(strict.store, strict.next_update(), strict.now)


def test_signature_by_a_non_operator_is_rejected() -> None:
    rig = Rig()
    outsider = Operator("outsider")
    outsider.elc = rig.p.operators[0].elc
    key = outsider.new_key(rig.p.authority, rig.src.now_ns)
    rig.p.operators, rig.p.keys = [outsider], {outsider.address: key}
    with pytest.raises(InvalidClientMessage, match="is not one of this client's operators"):
        rig.client.verify_client_message(rig.store, rig.next_update(), rig.now)
    # an operator's report co-signed by somebody else does not bind the key either
    rig2 = Rig()
    (op,) = rig2.p.operators
    address = op.enclave.new_key()
    report, sig = rig2.p.authority.attest(op.enclave.code_hash, address, op.address, rig2.src.now_ns)
    op.enclave.attach(address, registration(report, sig, operator_sign(outsider.secret, report)))
    rig2.p.keys[op.address] = address
    with pytest.raises(InvalidClientMessage, match="not signed by its operator"):
        rig2.client.verify_client_message(rig2.store, rig2.next_update(), rig2.now)


def test_below_threshold_operator_signatures_are_rejected() -> None:
    rig = Rig(operators=3, threshold=2)
    a, b, _ = rig.p.operators
    rig.p.signing = [a]
    with pytest.raises(InvalidClientMessage, match=r"1 operator.*2 of 3 required"):
        rig.client.verify_client_message(rig.store, rig.next_update(), rig.now)
    # two keys of one operator still count once
    second = a.new_key(rig.p.authority, rig.src.now_ns)
    first = rig.p.keys[a.address]
    signed = a.enclave._sign(
        rig.p.signed_update(rig.src.height, rig.trusted).message.message, [first, second])
    with pytest.raises(InvalidClientMessage, match="2 of 3 required"):
        rig.client.verify_client_message(rig.store, ProxiedHost.client_message(signed), rig.now)
    rig.p.signing = [a, b]
    assert rig.apply(rig.next_update()) == [rig.src.height]
    value = rig.committed()
    rig.p.signing = [b]
    lone = rig.p.prove(PATH, rig.src.height)
    with pytest.raises(InvalidProof, match="2 of 3 required"):
        rig.client.verify_membership(rig.store, rig.src.height, lone, rig.src.prefix, PATH, value, rig.now)
    rig.p.signing = None
    rig.client.verify_membership(rig.store, rig.src.height, rig.p.prove(PATH, rig.src.height), rig.src.prefix, PATH,
                                 value, rig.now)


def test_key_rotation_old_and_new_key_sign_during_the_overlap() -> None:
    rig = Rig(key_expiration_ns=300 * SECOND)
    (op,) = rig.p.operators
    old = rig.p.keys[op.address]
    rig.apply(rig.next_update())
    new = op.new_key(rig.p.authority, rig.src.now_ns)
    # during the overlap the enclave signs with both; the new key is registered by the update
    rig.src.idle()
    both = op.enclave.update_client(op.elc, rig.src.header(rig.src.height, rig.client.latest_height(rig.store)),
                                    rig.src.now_ns, [old, new])
    rig.apply(ProxiedHost.client_message(both))
    assert rig.store.get(enclave_key_key(new)) is not None
    # once the old key expired, its signature no longer counts, the new one carries the update
    rig.p.keys[op.address] = new
    old_exp = decode(pb.EnclaveKeyRecord, rig.store.get(enclave_key_key(old)), "r").expires_at
    rig.src.idle()
    late = op.enclave.update_client(op.elc, rig.src.header(rig.src.height, rig.client.latest_height(rig.store)),
                                    rig.src.now_ns, [old, new])
    assert rig.apply(ProxiedHost.client_message(late), old_exp + 1) == [rig.src.height]


def test_context_is_checked_against_host_time() -> None:
    rig = Rig()
    rig.apply(rig.next_update())  # the client's latest is newer than the trusted state below
    rig.src.idle()
    update = ProxiedHost.client_message(rig.p.signed_update(rig.src.height, rig.trusted))
    up = parse_update(pb.ClientMessage.FromString(update).update.message)
    ctx = up.context
    rig.client.verify_client_message(rig.store, update, ctx.trusted_state_timestamp + TP - 1)
    with pytest.raises(InvalidClientMessage, match="outside the trusting period"):
        rig.client.verify_client_message(rig.store, update, ctx.trusted_state_timestamp + TP)
    with pytest.raises(InvalidClientMessage, match="clock drift"):
        rig.client.verify_client_message(rig.store, update, up.timestamp - ctx.clock_drift)
    rig.client.verify_client_message(rig.store, update, up.timestamp - ctx.clock_drift + 1)
    # the client expires as the hosted client would, and then refuses everything
    latest = rig.client.timestamp_at_height(rig.store, rig.client.latest_height(rig.store))
    assert rig.client.status(rig.store, latest + TP) is Status.EXPIRED
    with pytest.raises(ClientNotActive):
        rig.client.verify_client_message(rig.store, update, latest + TP)


def test_context_must_carry_the_clients_trusting_period() -> None:
    rig = Rig()
    rig.src.idle()
    good = rig.p.signed_update(rig.src.height, rig.trusted)
    up = parse_update(good.message.message)
    up.context.trusting_period = 10 * TP
    (op,) = rig.p.operators
    forged = op.enclave._sign(update_message(up), [rig.p.keys[op.address]])
    with pytest.raises(InvalidClientMessage, match="trusting period"):
        rig.client.verify_client_message(rig.store, ProxiedHost.client_message(Signed(forged.message,
                                                                                      good.registrations)), rig.now)


def test_conflicting_state_at_a_trusted_height_is_misbehaviour() -> None:
    # Corda notaries signing a second checkpoint at one height: a different ibc_root, so a
    # different state id, which an honest enclave signs only when the chain forked.
    rig = Rig(src=CordaHost("chain-b", START_NS, 3 * SECOND))
    rig.apply(rig.next_update())
    h = rig.src.height
    forked = rig.p.conflicting_header(h, rig.trusted)
    rig.client.verify_client_message(rig.store, forked, rig.now)
    assert rig.client.check_for_misbehaviour(rig.store, forked)
    rig.client.update_state_on_misbehaviour(rig.store, forked)
    assert rig.client.status(rig.store, rig.now) is Status.FROZEN
    with pytest.raises(ClientNotActive):
        rig.client.verify_client_message(rig.store, rig.next_update(), rig.now)


def test_qbft_block_sealed_twice_is_misbehaviour_even_with_the_same_state() -> None:
    # The EVM test chain's equivocation keeps the state (another vanity): the state id still
    # differs, because it names the hosted client's stored block hash, so the proxy client
    # freezes as the direct qbft client would.
    rig = Rig()
    rig.apply(rig.next_update())
    h = rig.src.height
    forked = rig.p.conflicting_header(h, rig.trusted)
    genuine = ProxiedHost.client_message(rig.p.signed_update(h, rig.trusted))
    fork_up = parse_update(pb.ClientMessage.FromString(forked).update.message)
    real_up = parse_update(pb.ClientMessage.FromString(genuine).update.message)
    assert fork_up.timestamp == real_up.timestamp and fork_up.post_state_id != real_up.post_state_id
    rig.client.verify_client_message(rig.store, forked, rig.now)
    assert rig.client.check_for_misbehaviour(rig.store, forked)


def test_repeated_update_is_a_noop_that_checks_no_signature() -> None:
    rig = Rig()
    update = rig.next_update()
    rig.apply(update)
    from tests.unit.test_proxy_enclave import count_recoveries

    with count_recoveries() as calls:
        rig.client.verify_client_message(rig.store, update, rig.now)
    assert calls == [] and rig.client.update_state(rig.store, update) == []


def test_non_canonical_and_malformed_messages_are_rejected() -> None:
    rig = Rig()
    update = rig.next_update()
    with pytest.raises(InvalidClientMessage, match=r"canonical|decode"):
        rig.client.verify_client_message(rig.store, update + b"\x00", rig.now)
    with pytest.raises(InvalidClientMessage):
        rig.client.verify_client_message(rig.store, b"\xff\xff", rig.now)
    msg = pb.ClientMessage.FromString(update)
    del msg.update.signatures[:]
    with pytest.raises(InvalidClientMessage, match="no enclave signature"):
        rig.client.verify_client_message(rig.store, encode(msg), rig.now)
    msg = pb.ClientMessage.FromString(update)
    msg.update.signatures[0] = b"\x01" * 65
    with pytest.raises(InvalidClientMessage, match=r"malformed|not a registered"):
        rig.client.verify_client_message(rig.store, encode(msg), rig.now)


def test_initialize_validates_the_pinned_parameters() -> None:
    rig = Rig()
    cs = pb.ClientState.FromString(rig.p.client_state(TP, 30 * SECOND))
    cons = rig.p.consensus_state()
    for mutate, why in [
        (lambda c: setattr(c, "code_hash", b"\x01"), "code_hash"),
        (lambda c: setattr(c, "authority", b""), "authority"),
        (lambda c: setattr(c, "key_expiration", 0), "key_expiration"),
        (lambda c: c.operators.reverse() if len(c.operators) > 1 else c.operators.append(c.operators[0]), "ascending"),
        (lambda c: setattr(c, "operators_threshold", 2), "operators_threshold"),
        (lambda c: setattr(c, "trusting_period", 0), "trusting_period"),
        (lambda c: setattr(c, "frozen", True), "frozen"),
    ]:
        bad = pb.ClientState()
        bad.CopyFrom(cs)
        mutate(bad)
        with pytest.raises(InvalidClientMessage, match=why):
            ProxyLightClient().initialize(MemoryClientStore(), encode(bad), cons, rig.src.now_ns)


def test_batch_statement_opens_once_and_binds_paths_values_absence_and_signers() -> None:
    rig = Rig(operators=3, threshold=2)
    value = rig.committed()
    h = rig.src.height
    absent = paths.packet_receipt("transfer", "channel-0", 9)
    proof = rig.p.prove_many([PATH, absent], h)
    assert rig.client.is_batch_proof(proof) and not rig.client.is_batch_proof(rig.p.prove(PATH, h))
    opening = rig.client.open_batch(rig.store, h, rig.src.prefix, proof, rig.now)
    assert opening.covers(PATH) and opening.covers(absent) and not opening.covers(b"commitments/other")
    opening.verify_membership(PATH, value)
    opening.verify_non_membership(absent)
    with pytest.raises(InvalidProof, match="not this value"):
        opening.verify_membership(PATH, b"\x12" * 32)
    with pytest.raises(InvalidProof, match="not absence"):
        opening.verify_non_membership(PATH)
    with pytest.raises(InvalidProof, match="not this value"):
        opening.verify_membership(absent, b"")
    with pytest.raises(InvalidProof, match="prefix"):
        rig.client.open_batch(rig.store, h, b"ibc", proof, rig.now)
    a, _, _ = rig.p.operators
    rig.p.signing = [a]
    with pytest.raises(InvalidProof, match="2 of 3 required"):
        rig.client.open_batch(rig.store, h, rig.src.prefix, rig.p.prove_many([PATH, absent], h), rig.now)
    # entries must be strictly ascending: a reordered statement is refused even if signed
    signed = pb.SignedMessage.FromString(proof)
    batch = pb.ProxyMessage.FromString(signed.message).verify_membership_batch
    batch.entries.reverse()
    keys = [rig.p.keys[op.address] for op in rig.p.operators[:2]]
    resigned = rig.p.operators[0].enclave._sign(
        encode(pb.ProxyMessage(verify_membership_batch=batch)), keys[:1])
    other = rig.p.operators[1].enclave._sign(
        encode(pb.ProxyMessage(verify_membership_batch=batch)), keys[1:])
    both = pb.SignedMessage(message=resigned.message.message,
                            signatures=[*resigned.message.signatures, *other.message.signatures])
    with pytest.raises(InvalidProof, match="strictly ascending"):
        rig.client.open_batch(rig.store, h, rig.src.prefix, encode(both), rig.now)


def test_enclave_refuses_a_batch_its_multiproof_does_not_support() -> None:
    rig = Rig()
    value = rig.committed()
    h = rig.src.height
    (op,) = rig.p.operators
    direct = rig.src.prove_many([PATH], h)
    from lightclients.proxy.enclave import EnclaveError

    with pytest.raises(EnclaveError, match="rejected the multiproof"):
        op.enclave.verify_batch(op.elc, h, rig.src.prefix, [(PATH, b"\x00" * 32)], direct, rig.now,
                                [rig.p.keys[op.address]])
    with pytest.raises(EnclaveError, match="does not cover"):
        op.enclave.verify_batch(op.elc, h, rig.src.prefix, [(PATH, value), (b"commitments/x", None)], direct,
                                rig.now, [rig.p.keys[op.address]])
