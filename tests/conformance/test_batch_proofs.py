"""One multiproof per transaction (issue 12): the relayer's batch wire contract, on real hosts.

In one tx ``[MsgUpdateClient?, m1, m2, ..., mN]`` m1's proof field carries a multiproof of
the proof paths of m1..mN (same client, proof height and prefix); m2..mN carry an empty
proof and are checked against the opening m1 made. A single proof keeps working anywhere;
an empty proof with no opening fails; an opening is bound to its client, height and prefix
and to its transaction; the client's status is checked at every use. A repeated header is
a no-op that checks no signature.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import lightclients.corda.checkpoint as corda_checkpoint
import lightclients.proxy.messages as proxy_messages
import lightclients.qbft.client as qbft_client
from chains.ibc import clients
from chains.ibc.errors import ClientFailure, PacketError, ProofFailed, TxFailed
from chains.ibc.host import commitment, paths
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from lightclients.interface import Height
from tests.support.host import SECOND
from tests.support.pair import PROXY_KINDS, TESTROOT, HostPair

HOUR = 3600 * SECOND


def _send(pair: HostPair, chan: str, n: int, **timeout: object) -> list[chpb.Packet]:
    kw = timeout or {"timeout_ns": pair.b.now_ns + HOUR // 2}
    return [pair.a.send("mock", chan, f"packet-{i}".encode(), **kw) for i in range(n)]  # type: ignore[arg-type]


def _acks(pair: HostPair, n: int) -> list[bytes]:
    return [e.get("ack") or b"" for e in pair.b.events.of_type("write_acknowledgement")[-n:]]


def test_n_recvs_and_n_acks_each_in_one_tx_with_one_multiproof(pair: HostPair) -> None:
    ca, cb = pair.open_channel()
    a, b = pair.a, pair.b
    packets = _send(pair, ca, 6)
    update, h = pair.update_msg(b)
    msgs = pair.recv_batch_msgs(packets, b, h)
    assert msgs[0].proof_commitment and not any(m.proof_commitment for m in msgs[1:])
    b.tx(update, *msgs)
    pair.trust(b, h)
    assert pair.mock_b.count("recv") == 6
    for p in packets:
        assert b.store.get(paths.packet_receipt("mock", cb, p.sequence)) == commitment.RECEIPT
    acks = _acks(pair, 6)
    update, h = pair.update_msg(a)
    a.tx(update, *pair.ack_batch_msgs(list(zip(packets, acks, strict=True)), a, h))
    pair.trust(a, h)
    assert pair.mock_a.count("ack") == 6
    assert all(a.store.get(paths.packet_commitment("mock", ca, p.sequence)) is None for p in packets)


def test_timeouts_in_one_tx_with_one_absence_multiproof(pair: HostPair) -> None:
    ca, _ = pair.open_channel()
    a, b = pair.a, pair.b
    deadline = Height(1, b.height.revision_height + 3)
    packets = _send(pair, ca, 4, timeout_height=deadline)
    b.idle(3)
    update, h = pair.update_msg(a)
    a.tx(update, *pair.timeout_batch_msgs(packets, a, h))
    pair.trust(a, h)
    assert pair.mock_a.count("timeout") == 4


def test_timeout_on_close_carries_the_multiproof_in_its_first_proof_field(pair: HostPair) -> None:
    ca, cb = pair.open_channel()
    a, b = pair.a, pair.b
    packets = _send(pair, ca, 3)
    b.tx(chpb.MsgChannelCloseInit(port_id="mock", channel_id=cb))
    update, h = pair.update_msg(a)
    wanted = [paths.channel("mock", cb)] + [paths.packet_receipt("mock", cb, p.sequence) for p in packets]
    multi = b.prove_many(wanted, h)
    msgs = [chpb.MsgTimeoutOnClose(packet=p, proof_close=multi if i == 0 else b"", proof_unreceived=b"",
                                   proof_height=client_pb2.Height(revision_number=h.revision_number,
                                                                  revision_height=h.revision_height),
                                   signer="relayer")
            for i, p in enumerate(packets)]
    a.tx(update, *msgs)
    assert pair.mock_a.count("timeout") == 3


def test_single_and_multi_proofs_mix_in_one_tx(pair: HostPair) -> None:
    ca, _ = pair.open_channel()
    b = pair.b
    p1, p2, p3, p4 = _send(pair, ca, 4)
    update, h = pair.update_msg(b)
    single1 = pair.recv_msg(p1, b, update=False)
    single4 = pair.recv_msg(p4, b, update=False)
    for m in (single1, single4):
        m.proof_height.revision_height = h.revision_height
        m.proof_commitment = pair.a.prove(paths.packet_commitment("mock", ca, m.packet.sequence), h)
    m2, m3 = pair.recv_batch_msgs([p2, p3], b, h)
    b.tx(update, single1, m2, m3, single4)
    assert pair.mock_b.count("recv") == 4


def test_empty_proof_without_an_opening_fails(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, _ = pair.open_channel()
    a, b = pair.a, pair.b
    p1, p2, p3 = _send(pair, ca, 3)
    h = pair.update(b)
    (lone,) = pair.recv_batch_msgs([p1], b, h)
    lone.proof_commitment = b""
    rejected(b, lone, ProofFailed, "no multiproof")
    # An opening that does not cover a later message's path does not stand in for it.
    m1, _ = pair.recv_batch_msgs([p1, p2], b, h)
    (m3,) = pair.recv_batch_msgs([p3], b, h)
    m3.proof_commitment = b""
    with pytest.raises(TxFailed) as info:
        b.tx(m1, m3)
    assert isinstance(info.value.cause, ProofFailed) and "does not cover" in str(info.value.cause)
    assert info.value.index == 1
    # A forged packet under a genuine opening fails like a forged single proof would.
    m1, m2 = pair.recv_batch_msgs([p1, p2], b, h)
    m2.packet.data = b"forged!"
    with pytest.raises(TxFailed) as info:
        b.tx(m1, m2)
    assert isinstance(info.value.cause, ProofFailed) and info.value.index == 1
    cb = pair.channel_end(a, "mock", ca).counterparty.channel_id
    assert b.store.get(paths.packet_receipt("mock", cb, p1.sequence)) is None


def test_an_opening_lives_only_for_its_transaction(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, _ = pair.open_channel()
    b = pair.b
    p1, p2 = _send(pair, ca, 2)
    h = pair.update(b)
    m1, m2 = pair.recv_batch_msgs([p1, p2], b, h)
    b.tx(m1)
    rejected(b, m2, ProofFailed, "no multiproof")


def test_an_opening_is_bound_to_its_height(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, _ = pair.open_channel()
    a, b = pair.a, pair.b
    p1, p2 = _send(pair, ca, 2)
    h1 = pair.update(b)
    a.idle()
    h2 = pair.update(b)
    m1, _ = pair.recv_batch_msgs([p1, p2], b, h1)
    (m2,) = pair.recv_batch_msgs([p2], b, h2)
    m2.proof_commitment = b""  # claims the opening, but at h2 where none was made
    before = b.root()
    with pytest.raises(TxFailed) as info:
        b.tx(m1, m2)
    assert isinstance(info.value.cause, ProofFailed) and "no multiproof" in str(info.value.cause)
    assert b.root() == before


def test_an_opening_is_bound_to_its_client_and_prefix(pair: HostPair) -> None:
    ca, _ = pair.open_channel()
    a, b = pair.a, pair.b
    p1, p2 = _send(pair, ca, 2)
    h = pair.update(b)
    (second,) = b.tx(pair.create_client_msg(b))  # a second client of A, at A's latest height
    cid = pair.client[b.chain_id]
    prefix = a.prefix
    keys = [paths.packet_commitment("mock", ca, p.sequence) for p in (p1, p2)]
    values = [commitment.packet_commitment(p) for p in (p1, p2)]
    ctx = b.handler.context(b.height, b.now_ns)
    clients.verify_membership(ctx, cid, h, a.prove_many(keys, h), prefix, keys[0], values[0])
    clients.verify_membership(ctx, cid, h, b"", prefix, keys[1], values[1])
    with pytest.raises(ProofFailed, match="no multiproof"):
        clients.verify_membership(ctx, str(second), h, b"", prefix, keys[1], values[1])
    with pytest.raises(ProofFailed, match="no multiproof"):
        clients.verify_membership(ctx, cid, h, b"", prefix + b"x", keys[1], values[1])
    with pytest.raises(ProofFailed):
        clients.verify_membership(ctx, cid, h, b"", prefix, keys[1], values[0])
    with pytest.raises(ProofFailed):  # the path is present: absence cannot be read off it
        clients.verify_non_membership(ctx, cid, h, b"", prefix, keys[1])
    fresh = b.handler.context(b.height, b.now_ns)
    with pytest.raises(ProofFailed, match="no multiproof"):
        clients.verify_membership(fresh, cid, h, b"", prefix, keys[1], values[1])


def test_freezing_earlier_in_the_tx_fails_later_uses_of_the_opening(
    pair: HostPair, rejected: Callable[..., TxFailed]
) -> None:
    ca, _ = pair.open_channel()
    a, b = pair.a, pair.b
    p1, p2 = _send(pair, ca, 2)
    h = pair.update(b)
    m1, m2 = pair.recv_batch_msgs([p1, p2], b, h)
    cid = pair.client[b.chain_id]
    if pair.kind == TESTROOT:
        evidence = a.conflicting_header(h, pair.trusted_for(b, h))
    else:
        evidence = a.misbehaviour(h, pair.trusted_for(b, h))
    freeze = client_pb2.MsgSubmitMisbehaviour(client_id=cid, misbehaviour=evidence)
    before = b.root()
    with pytest.raises(TxFailed) as info:
        b.tx(m1, freeze, m2)
    assert info.value.index == 2 and isinstance(info.value.cause, ClientFailure)
    assert "Frozen" in str(info.value.cause)
    assert b.root() == before
    b.tx(m1, m2)  # without the evidence the same batch goes through
    cb = pair.channel_end(a, "mock", ca).counterparty.channel_id
    assert all(b.store.get(paths.packet_receipt("mock", cb, p.sequence)) for p in (p1, p2))


def test_duplicate_packets_in_one_batch_are_noops_after_the_first(pair: HostPair) -> None:
    ca, _ = pair.open_channel()
    b = pair.b
    (p1,) = _send(pair, ca, 1)
    h = pair.update(b)
    (m1,) = pair.recv_batch_msgs([p1], b, h)
    again = chpb.MsgRecvPacket()
    again.CopyFrom(m1)
    again.proof_commitment = b""
    b.tx(m1, again)
    assert pair.mock_b.count("recv") == 1
    assert b.events.of_type("noop")[-1].text("reason") == "packet already received"


def test_a_batch_recv_still_checks_timeouts(pair: HostPair) -> None:
    ca, _ = pair.open_channel()
    b = pair.b
    (p1,) = _send(pair, ca, 1)
    (late,) = _send(pair, ca, 1, timeout_height=Height(1, b.height.revision_height + 2))
    b.idle(2)
    h = pair.update(b)
    m1, m2 = pair.recv_batch_msgs([p1, late], b, h)
    with pytest.raises(TxFailed) as info:
        b.tx(m1, m2)
    assert isinstance(info.value.cause, PacketError) and info.value.index == 1


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every seal recovery (qbft), notary signature check (corda) and enclave signature
    recovery (proxy) a light client makes."""
    calls: list[str] = []
    for module, name in ((qbft_client, "secp256k1_recover_address"), (corda_checkpoint, "ed25519_verify"),
                         (proxy_messages, "secp256k1_recover_address")):
        real = getattr(module, name)

        def counting(*args: object, _real: Callable[..., object] = real, _name: str = name) -> object:
            calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(module, name, counting)
    return calls


def test_a_repeated_header_is_a_noop_that_checks_no_signature(
    pair: HostPair, signature_checks: list[str]
) -> None:
    if pair.kind == TESTROOT:
        pytest.skip("the test-only client checks no signatures at all")
    ca, _ = pair.open_channel()
    b = pair.b
    p1, p2 = _send(pair, ca, 2)
    update, h = pair.update_msg(b)
    signature_checks.clear()
    b.tx(update, *pair.recv_batch_msgs([p1], b, h))
    pair.trust(b, h)
    assert signature_checks, "the first update of a height must check signatures"
    signature_checks.clear()
    # The relayer's next tx at the same height leads with the same update: a no-op.
    b.tx(update, *pair.recv_batch_msgs([p2], b, h))
    # a proxy client's proof is itself one enclave signature; the repeated header adds none
    assert signature_checks == (["secp256k1_recover_address"] if pair.kind in PROXY_KINDS else [])
    assert b.events.of_type("noop")[-1].text("reason") == "duplicate header"
    assert pair.mock_b.count("recv") == 2
