"""Packet and proof attacks over gRPC: forged membership / non-membership proofs, packets that
were never sent, late or replayed relays, unknown routes and oversized data.

Set up once per module with ICS-20 transfers: ``sent`` (EVM -> Corda, never relayed) is the
target of the proof forgeries, received on Corda by nobody but the attacker; ``delivered``
(EVM -> Corda) is received; ``acked`` (Corda -> EVM) is received and acknowledged; ``late``
(Corda -> EVM, 8 s timeout) is never received and timed out honestly; ``raced`` (Corda -> EVM,
8 s timeout) is received before its timeout. Between the Corda client's consensus states
at ``h_a`` and ``h_b`` the EVM IBC state changed, so a proof of one root fails at the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from chains.ibc.context import to_proto
from chains.ibc.host import paths
from chains.ibc.packets import MAX_PACKET_DATA
from kakehashi.ibc.v1 import channel_pb2 as chpb
from lightclients.interface import Height
from tests.adversarial.matrix import Attempt, attack
from tests.support.adversary import SEC, Net

CORE_CORDA = "IBC core on the Corda node (ICS-04)"
CORE_EVM = "IBC core on the EVM node (ICS-04)"
QBFT_PROOF = "10-qbft client on the Corda node (MPT storage proof)"
CORDA_PROOF = "11-corda client on the EVM node (ICS-23 proof)"


@dataclass
class Flows:
    sent: chpb.Packet
    delivered: chpb.Packet
    acked: chpb.Packet
    acked_ack: bytes
    late: chpb.Packet
    raced: chpb.Packet
    h_a: int
    h_b: int


@pytest.fixture(scope="module")
def flows(net: Net) -> Flows:
    evm, corda = net.evm, net.corda
    sent, delivered = net.transfers(evm, [600, 600])
    _, _ = net.deliver(evm, delivered)  # Corda's client of the EVM chain now has h_a
    h_a = net.client_height(corda)
    raced, late, acked = net.transfers(corda, [8, 8, 600])
    net.deliver(corda, raced)  # in time (first, with seconds to spare): the EVM chain stores its receipt
    _, acked_ack = net.deliver(corda, acked)
    update, h_b = net.update(corda)  # the EVM IBC state moved since h_a (two receipts)
    net.relay_ok(corda, [update, net.ack_msg(evm, acked, acked_ack, h_b)])
    deadline = time.monotonic() + 30
    while evm.time_ns() <= late.timeout_timestamp + SEC:  # the EVM clock passes both timeouts
        assert time.monotonic() < deadline, "the EVM clock did not pass the packet timeout"
        time.sleep(0.2)
    update, h = net.update(corda)
    net.relay_ok(corda, [update, net.timeout_msg(evm, late, h)])
    return Flows(sent, delivered, acked, acked_ack, late, raced, h_a, h_b)


def _recv_on_corda(net: Net, packet: chpb.Packet) -> tuple[list[object], chpb.MsgRecvPacket]:
    """An update to the EVM chain's latest height and the honest recv of ``packet`` there."""
    update, height = net.update(net.corda)
    return [update], net.recv_msg(net.evm, packet, height)


# --- membership proofs ---------------------------------------------------------------------------


@attack("membership proof with a forged value (packet data altered)", layer=QBFT_PROOF,
        where="lightclients/qbft/client.py verify_membership")
def test_recv_forged_value(net: Net, flows: Flows, attempt: Attempt) -> None:
    lead, msg = _recv_on_corda(net, flows.sent)
    msg.packet.data = msg.packet.data.replace(b'"amount":"1"', b'"amount":"9000"')
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [*lead, msg])
        attempt.failed(res, "ProofFailed", "is not keccak256 of the value")


@attack("membership proof of another path (a sent packet's proof for the next sequence)", layer=QBFT_PROOF,
        where="lightclients/mpt.py verify_proof")
def test_recv_proof_of_another_path(net: Net, flows: Flows, attempt: Attempt) -> None:
    lead, msg = _recv_on_corda(net, flows.sent)
    msg.packet.sequence = flows.delivered.sequence + 1000
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [*lead, msg])
        attempt.failed(res, "ProofFailed", f"commitments/ports/transfer/channels/{net.evm_transfer}/sequences/"
                       f"{msg.packet.sequence}")


@attack("membership proof against another root (proof of height a, claimed at height b)", layer=QBFT_PROOF,
        where="lightclients/mpt.py verify_proof")
def test_recv_proof_of_another_root(net: Net, flows: Flows, attempt: Attempt) -> None:
    msg = net.recv_msg(net.evm, flows.sent, flows.h_a)
    msg.proof_height.CopyFrom(to_proto(Height(0, flows.h_b)))
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [msg])
        attempt.failed(res, "ProofFailed", "proof node 0 does not hash to the reference its parent holds")


@attack("proof at a height with no consensus state", layer=QBFT_PROOF,
        where="lightclients/qbft/client.py _storage_value")
def test_recv_height_without_consensus_state(net: Net, flows: Flows, attempt: Attempt) -> None:
    unknown = flows.h_a + 1 if flows.h_a + 1 < flows.h_b else flows.h_a - 1
    msg = net.recv_msg(net.evm, flows.sent, unknown)
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [msg])
        attempt.failed(res, "ProofFailed", f"no consensus state at proof height 0-{unknown}")


@attack("recv of a packet that was never sent", layer=QBFT_PROOF,
        where="lightclients/qbft/client.py verify_membership")
def test_recv_packet_never_sent(net: Net, flows: Flows, attempt: Attempt) -> None:
    update, height = net.update(net.corda)
    ghost = chpb.Packet()
    ghost.CopyFrom(flows.sent)
    ghost.sequence = 10**6
    msg = net.recv_msg(net.evm, ghost, height)  # the node's own (absence) proof for that path
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [update, msg])
        attempt.failed(res, "ProofFailed", f"sequences/{10**6}", "nothing is committed at")


@attack("recv with an empty proof", layer=CORE_CORDA, where="chains/ibc/clients.py verify_membership")
def test_recv_empty_proof(net: Net, flows: Flows, attempt: Attempt) -> None:
    lead, msg = _recv_on_corda(net, flows.sent)
    msg.proof_commitment = b""
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [*lead, msg])
        attempt.failed(res, "ProofFailed", f"commitments/ports/transfer/channels/{net.evm_transfer}")


# --- routes and shape ------------------------------------------------------------------------------


@attack("packet for an unknown port", layer=CORE_CORDA, where="chains/ibc/channels.py get_channel")
def test_recv_unknown_port(net: Net, flows: Flows, attempt: Attempt) -> None:
    lead, msg = _recv_on_corda(net, flows.sent)
    msg.packet.destination_port = "nosuchport"
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [*lead, msg])
        attempt.failed(res, "NotFound", f"channel nosuchport/{net.corda_transfer} does not exist")


@attack("packet for an unknown channel", layer=CORE_CORDA, where="chains/ibc/channels.py get_channel")
def test_recv_unknown_channel(net: Net, flows: Flows, attempt: Attempt) -> None:
    lead, msg = _recv_on_corda(net, flows.sent)
    msg.packet.destination_channel = "channel-99"
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [*lead, msg])
        attempt.failed(res, "NotFound", "channel transfer/channel-99 does not exist")


@attack("oversized packet data (262,145 bytes)", layer=CORE_CORDA, where="chains/ibc/packets.py _check_packet_shape")
def test_recv_oversized_packet(net: Net, flows: Flows, attempt: Attempt) -> None:
    lead, msg = _recv_on_corda(net, flows.sent)
    msg.packet.data = b"x" * (MAX_PACKET_DATA + 1)
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [*lead, msg])
        attempt.failed(res, "PacketError", f"packet data is {MAX_PACKET_DATA + 1} bytes, more than {MAX_PACKET_DATA}")


# --- timing and replays ------------------------------------------------------------------------------


@attack("recv after the packet timed out", layer=CORE_EVM, where="chains/ibc/packets.py recv_packet")
def test_recv_after_timeout(net: Net, flows: Flows, attempt: Attempt) -> None:
    update, height = net.update(net.evm)
    # the EVM core refuses on the timeout before it looks at the proof (here the absence proof
    # of the commitment the honest timeout already deleted)
    msg = net.recv_msg(net.corda, flows.late, height)
    with attempt.watch(net.snapshot):
        res = net.relay(net.evm, [update, msg])
        attempt.failed(res, "PacketError", f"packet timed out at time {flows.late.timeout_timestamp}")


@attack("timeout of a packet that was received (receipt exists)", layer=QBFT_PROOF,
        where="lightclients/qbft/client.py verify_non_membership")
def test_timeout_after_recv(net: Net, flows: Flows, attempt: Attempt) -> None:
    update, height = net.update(net.corda)
    msg = net.timeout_msg(net.evm, flows.raced, height)
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [update, msg])
        attempt.failed(res, "ProofFailed", f"receipts/ports/transfer/channels/{net.evm_transfer}/sequences/"
                       f"{flows.raced.sequence}", "a value is committed at")


@attack("timeout with a stale absence proof (from before the recv, another root)", layer=QBFT_PROOF,
        where="lightclients/mpt.py verify_proof")
def test_timeout_with_stale_absence_proof(net: Net, flows: Flows, attempt: Attempt) -> None:
    update, height = net.update(net.corda)
    msg = net.timeout_msg(net.evm, flows.raced, height)
    path = paths.packet_receipt("transfer", net.evm_transfer, flows.raced.sequence)
    before_recv = flows.h_a  # the EVM chain had not received ``raced`` yet
    msg.proof_unreceived = net.proof(net.evm, path, before_recv)
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [update, msg])
        attempt.failed(res, "ProofFailed", f"absence proof of {path.decode()}")


@attack("replayed recv", layer=CORE_CORDA, where="chains/ibc/packets.py recv_packet (receipt)")
def test_replayed_recv(net: Net, flows: Flows, attempt: Attempt) -> None:
    msg = net.recv_msg(net.evm, flows.delivered, net.client_height(net.corda))
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [msg])
        attempt.noop(res, "packet already received")


@attack("replayed ack", layer=CORE_CORDA, where="chains/ibc/packets.py acknowledge_packet")
def test_replayed_ack(net: Net, flows: Flows, attempt: Attempt) -> None:
    msg = net.ack_msg(net.evm, flows.acked, flows.acked_ack, flows.h_b)
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [msg])
        attempt.noop(res, "packet already acknowledged or timed out")


@attack("replayed timeout", layer=CORE_CORDA, where="chains/ibc/packets.py timeout_packet")
def test_replayed_timeout(net: Net, flows: Flows, attempt: Attempt) -> None:
    msg = net.timeout_msg(net.evm, flows.late, net.client_height(net.corda))
    with attempt.watch(net.snapshot):
        res = net.relay(net.corda, [msg])
        attempt.noop(res, "packet already acknowledged or timed out")
