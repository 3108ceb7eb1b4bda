"""Attacks that need control of time, run in-process over the real chain state machines.

A relayer builds these messages; what makes them attacks is *when* they arrive (a header
from the future, a trusted state older than the trusting period) or a route only a test-only
app offers (an ordered channel). The hosts are the real EVM chain (QBFT-sealed blocks, an
11-corda client) and the real Corda chain (notarised checkpoints, a 10-qbft client) on
simulated clocks; the state read before and after is both hosts' committed IBC roots.
"""

from __future__ import annotations

import pytest

from chains.ibc.errors import ClientFailure, PacketError, ProofFailed, TxFailed
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from lightclients.interface import Height
from tests.adversarial.matrix import Attempt, attack
from tests.support.basehost import ChainHost
from tests.support.pair import HostPair, make_pair

SEC = 1_000_000_000
QBFT = "10-qbft client (Corda host, simulated time)"
CORDA = "11-corda client (EVM host, simulated time)"


def _pair(trusting_s: int, drift_s: int) -> HostPair:
    """EVM (a) and Corda (b) with clients of each other of the given trusting period and drift."""
    pair = make_pair("evm-corda")
    for host in (pair.a, pair.b):
        src = pair.other(host)
        height = src.height
        (cid,) = host.tx(client_pb2.MsgCreateClient(client_type=src.client_type,
                                                    client_state=src.client_state(trusting_s * SEC, drift_s * SEC),
                                                    consensus_state=src.consensus_state()))
        pair.client[host.chain_id] = str(cid)
        pair.known[host.chain_id] = [height]
    return pair


def _roots(pair: HostPair) -> dict[str, str]:
    return {"a": pair.a.root().hex(), "b": pair.b.root().hex()}


def _rejected(host: ChainHost, msg: object) -> TxFailed:
    with pytest.raises(TxFailed) as info:
        host.tx(msg)  # type: ignore[arg-type]
    return info.value


def _expired_trust(dst_name: str) -> tuple[HostPair, ChainHost, ChainHost, Height, Height]:
    """dst's client of src trusts h1 (older than the 100 s trusting period by now) and h2
    (fresh), so the client is Active but a header built on h1 must be refused."""
    pair = _pair(trusting_s=100, drift_s=1000)
    dst = pair.b if dst_name == "b" else pair.a
    src = pair.other(dst)
    h1 = pair.known[dst.chain_id][0]
    t1 = src.blocks[h1].time_ns
    src.idle(advance_ns=60 * SEC)
    pair.update(dst)  # h2, 60 s after h1
    dst.idle(advance_ns=t1 + 130 * SEC - dst.now_ns)  # now past h1 + 100 s, before h2 + 100 s
    src.idle()
    return pair, dst, src, h1, src.height


@attack("QBFT header from the future beyond max clock drift", layer=QBFT,
        where="lightclients/qbft/client.py verify_header")
def test_qbft_header_from_the_future(attempt: Attempt) -> None:
    pair = _pair(trusting_s=3600, drift_s=10)
    pair.a.idle(advance_ns=120 * SEC)
    msg, _ = pair.update_msg(pair.b)
    with attempt.watch(lambda: _roots(pair)):
        attempt.raised(_rejected(pair.b, msg), ClientFailure, "header time is beyond the maximum clock drift")


@attack("Corda checkpoint from the future beyond max clock drift", layer=CORDA,
        where="lightclients/corda/client.py _verify_header")
def test_corda_checkpoint_from_the_future(attempt: Attempt) -> None:
    pair = _pair(trusting_s=3600, drift_s=10)
    pair.b.idle(advance_ns=120 * SEC)
    msg, _ = pair.update_msg(pair.a)
    with attempt.watch(lambda: _roots(pair)):
        attempt.raised(_rejected(pair.a, msg), ClientFailure,
                       "checkpoint timestamp is too far in the future (max_clock_drift)")


@attack("QBFT header on a trusted height past the trusting period", layer=QBFT,
        where="lightclients/qbft/client.py verify_header")
def test_qbft_trusted_height_past_trusting_period(attempt: Attempt) -> None:
    pair, dst, src, h1, h3 = _expired_trust("b")
    msg = client_pb2.MsgUpdateClient(client_id=pair.client[dst.chain_id], client_message=src.header(h3, h1))
    with attempt.watch(lambda: _roots(pair)):
        attempt.raised(_rejected(dst, msg), ClientFailure, "trusted consensus state is outside the trusting period")


@attack("Corda checkpoint on a trusted height past the trusting period", layer=CORDA,
        where="lightclients/corda/client.py _verify_header")
def test_corda_trusted_height_past_trusting_period(attempt: Attempt) -> None:
    pair, dst, src, h1, h3 = _expired_trust("a")
    msg = client_pb2.MsgUpdateClient(client_id=pair.client[dst.chain_id], client_message=src.header(h3, h1))
    with attempt.watch(lambda: _roots(pair)):
        attempt.raised(_rejected(dst, msg), ClientFailure, "trusted consensus state is outside the trusting period")


@attack("QBFT misbehaviour evidence anchored outside the trusting period", layer=QBFT,
        where="lightclients/qbft/client.py verify_header (via submit_misbehaviour)")
def test_qbft_misbehaviour_outside_trusting_period(attempt: Attempt) -> None:
    pair, dst, src, h1, h3 = _expired_trust("b")
    msg = client_pb2.MsgSubmitMisbehaviour(client_id=pair.client[dst.chain_id], misbehaviour=src.misbehaviour(h3, h1))
    with attempt.watch(lambda: _roots(pair)):
        attempt.raised(_rejected(dst, msg), ClientFailure, "rejected the evidence",
                       "trusted consensus state is outside the trusting period")


@attack("Corda misbehaviour evidence anchored outside the trusting period", layer=CORDA,
        where="lightclients/corda/client.py _verify_header (via submit_misbehaviour)")
def test_corda_misbehaviour_outside_trusting_period(attempt: Attempt) -> None:
    pair, dst, src, h1, h3 = _expired_trust("a")
    msg = client_pb2.MsgSubmitMisbehaviour(client_id=pair.client[dst.chain_id], misbehaviour=src.misbehaviour(h3, h1))
    with attempt.watch(lambda: _roots(pair)):
        attempt.raised(_rejected(dst, msg), ClientFailure, "rejected the evidence",
                       "trusted consensus state is outside the trusting period")


@attack("out-of-order recv on an ordered channel", layer="IBC core (ICS-04, Corda host)",
        where="chains/ibc/packets.py recv_packet")
def test_out_of_order_recv_on_an_ordered_channel(attempt: Attempt) -> None:
    pair = make_pair("evm-corda")
    ca, _ = pair.open_channel(order=chpb.ORDER_ORDERED)
    far = pair.b.now_ns + 1800 * SEC
    pair.a.send("mock", ca, b"one", timeout_ns=far)
    second = pair.a.send("mock", ca, b"two", timeout_ns=far)
    msg = pair.recv_msg(second, pair.b)
    with attempt.watch(lambda: _roots(pair)):
        attempt.raised(_rejected(pair.b, msg), PacketError, "expects sequence 1, got 2")


@attack("proof under another commitment prefix (QBFT: not the IBC contract)", layer=QBFT,
        where="lightclients/qbft/client.py _storage_value")
def test_qbft_proof_under_another_prefix(attempt: Attempt) -> None:
    pair = make_pair("evm-corda")
    pair.create_clients()
    (ca,) = pair.a.tx(pair.conn_init_msg(pair.a))
    msg = pair.conn_try_msg(pair.b, str(ca))
    msg.counterparty.prefix.key_prefix = b"evil"
    with attempt.watch(lambda: _roots(pair)):
        attempt.raised(_rejected(pair.b, msg), ProofFailed, "commitment prefix is not this client's IBC store address")


@attack("proof under another commitment prefix (Corda: not b'ibc')", layer=CORDA,
        where="lightclients/corda/client.py _root_for_proof")
def test_corda_proof_under_another_prefix(attempt: Attempt) -> None:
    pair = make_pair("evm-corda")
    pair.create_clients()
    (cb,) = pair.b.tx(pair.conn_init_msg(pair.b))
    msg = pair.conn_try_msg(pair.a, str(cb))
    msg.counterparty.prefix.key_prefix = b"evil"
    with attempt.watch(lambda: _roots(pair)):
        attempt.raised(_rejected(pair.a, msg), ProofFailed, "prefix must be b'ibc', got b'evil'")
