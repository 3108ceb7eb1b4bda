"""ICS-04 packet requirements, with ibc-go's duplicate-relay no-op semantics."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chains.ibc.errors import (
    InvalidMessage,
    InvalidState,
    NotFound,
    PacketError,
    ProofFailed,
    TxFailed,
)
from chains.ibc.events import Event
from chains.ibc.host import commitment, paths
from chains.ibc.packets import MAX_PACKET_DATA
from kakehashi.ibc.v1 import channel_pb2 as chpb
from lightclients.interface import Height
from tests.support.host import SECOND
from tests.support.pair import HostPair

HOUR = 3600 * SECOND


def _far(pair: HostPair) -> int:
    return pair.b.now_ns + HOUR // 2


def test_send_requires_an_open_channel(pair: HostPair) -> None:
    pair.open_connection()
    (ca,) = pair.a.tx(pair.chan_init_msg(pair.a, "mock", "mock", chpb.ORDER_UNORDERED, ""))
    root = pair.a.root()
    with pytest.raises(InvalidState, match="STATE_OPEN"):
        pair.a.send("mock", str(ca), b"x", timeout_ns=_far(pair))
    with pytest.raises(NotFound):
        pair.a.send("mock", "channel-42", b"x", timeout_ns=_far(pair))
    assert pair.a.root() == root


def test_send_requires_a_timeout_not_already_passed(pair: HostPair) -> None:
    ca, _ = pair.open_channel()
    a, b = pair.a, pair.b
    root = a.root()
    with pytest.raises(PacketError, match="neither"):
        a.send("mock", ca, b"x")
    known = pair.update(a)  # A's client of B is at `known` now
    root = a.root()
    with pytest.raises(PacketError, match="timeout height"):
        a.send("mock", ca, b"x", timeout_height=known)
    known_time = b.blocks[known].time_ns
    with pytest.raises(PacketError, match="timeout timestamp"):
        a.send("mock", ca, b"x", timeout_ns=known_time)
    assert a.root() == root
    a.send("mock", ca, b"x", timeout_height=known.increment())
    a.send("mock", ca, b"x", timeout_ns=known_time + 1)


def test_send_data_at_most_262144_bytes(pair: HostPair) -> None:
    ca, _ = pair.open_channel()
    root = pair.a.root()
    with pytest.raises(PacketError, match="262144"):
        pair.a.send("mock", ca, b"\x00" * (MAX_PACKET_DATA + 1), timeout_ns=_far(pair))
    with pytest.raises(InvalidMessage, match="empty"):
        pair.a.send("mock", ca, b"", timeout_ns=_far(pair))
    assert pair.a.root() == root
    pk = pair.a.send("mock", ca, b"\x00" * MAX_PACKET_DATA, timeout_ns=_far(pair))
    pair.b.tx(pair.recv_msg(pk, pair.b))


def test_sequence_starts_at_one(pair: HostPair) -> None:
    ca, cb = pair.open_channel()
    first = pair.a.send("mock", ca, b"one", timeout_ns=_far(pair))
    second = pair.a.send("mock", ca, b"two", timeout_ns=_far(pair))
    assert (first.sequence, second.sequence) == (1, 2)
    assert (first.destination_port, first.destination_channel) == ("mock", cb)
    assert pair.a.store.get(paths.packet_commitment("mock", ca, 1)) == commitment.packet_commitment(first)


def test_recv_checks_the_commitment_proof(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, _ = pair.open_channel()
    pk = pair.a.send("mock", ca, b"genuine", timeout_ns=_far(pair))
    msg = pair.recv_msg(pk, pair.b)
    forged = chpb.MsgRecvPacket()
    forged.CopyFrom(msg)
    forged.packet.data = b"forged!"
    rejected(pair.b, forged, ProofFailed, "commitments/ports/mock")
    other_seq = chpb.MsgRecvPacket()
    other_seq.CopyFrom(msg)
    other_seq.packet.sequence = 2
    rejected(pair.b, other_seq, ProofFailed)
    future = chpb.MsgRecvPacket()
    future.CopyFrom(msg)
    future.proof_height.revision_height += 50
    rejected(pair.b, future, ProofFailed)
    pair.b.tx(msg)


def test_recv_checks_the_counterparty_port_and_channel(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, _ = pair.open_channel()
    ca2, _ = pair.open_channel()
    pk = pair.a.send("mock", ca2, b"x", timeout_ns=_far(pair))
    msg = pair.recv_msg(pk, pair.b)
    wrong = chpb.MsgRecvPacket()
    wrong.CopyFrom(msg)
    wrong.packet.source_channel = ca
    rejected(pair.b, wrong, PacketError, "counterparty")
    wrong.packet.source_channel = ca2
    wrong.packet.source_port = "other"
    rejected(pair.b, wrong, PacketError, "counterparty")


def test_recv_rejects_at_exactly_the_timeout_height(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, _ = pair.open_channel()
    a, b = pair.a, pair.b
    # recv_msg makes one block on B (the client update); the recv itself is the next one.
    exact = Height(b.height.revision_number, b.height.revision_height + 2)
    late = a.send("mock", ca, b"late", timeout_height=exact)
    msg = pair.recv_msg(late, b)
    assert b.height.increment() == exact
    rejected(b, msg, PacketError, "timed out at height")
    just_in = a.send("mock", ca, b"in time", timeout_height=Height(1, b.height.revision_height + 3))
    b.tx(pair.recv_msg(just_in, b))


def test_recv_rejects_at_exactly_the_timeout_timestamp(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, _ = pair.open_channel()
    a, b = pair.a, pair.b
    exact = b.now_ns + 2 * b.block_ns
    late = a.send("mock", ca, b"late", timeout_ns=exact)
    msg = pair.recv_msg(late, b)
    assert b.now_ns + b.block_ns == exact
    rejected(b, msg, PacketError, "timed out at time")
    just_in = a.send("mock", ca, b"in time", timeout_ns=b.now_ns + 3 * b.block_ns + 1)
    b.tx(pair.recv_msg(just_in, b))


def test_ordered_recv_only_at_next_sequence_recv(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, cb = pair.open_channel(order=chpb.ORDER_ORDERED)
    p1 = pair.a.send("mock", ca, b"one", timeout_ns=_far(pair))
    p2 = pair.a.send("mock", ca, b"two", timeout_ns=_far(pair))
    rejected(pair.b, pair.recv_msg(p2, pair.b), PacketError, "expects sequence 1")
    pair.b.tx(pair.recv_msg(p1, pair.b))
    pair.b.tx(pair.recv_msg(p2, pair.b))
    assert pair.mock_b.calls[-2:] == [("recv", 1), ("recv", 2)]
    assert pair.b.store.get(paths.packet_receipt("mock", cb, 1)) is None


def test_unordered_recv_in_any_order_with_a_receipt(pair: HostPair) -> None:
    ca, cb = pair.open_channel()
    pks = [pair.a.send("mock", ca, f"p{i}".encode(), timeout_ns=_far(pair)) for i in range(3)]
    for pk in (pks[2], pks[0], pks[1]):
        pair.b.tx(pair.recv_msg(pk, pair.b))
    assert [s for n, s in pair.mock_b.calls if n == "recv"] == [3, 1, 2]
    for seq in (1, 2, 3):
        assert pair.b.store.get(paths.packet_receipt("mock", cb, seq)) == b"\x01"


def test_duplicate_recv_ack_timeout_are_noops_that_never_rerun_the_app(pair: HostPair) -> None:
    ca, _cb = pair.open_channel()
    a, b = pair.a, pair.b
    pk = a.send("mock", ca, b"once", timeout_ns=_far(pair))
    recv = pair.recv_msg(pk, b)
    b.tx(recv)
    root = b.root()
    b.tx(recv)
    assert b.root() == root
    assert pair.mock_b.count("recv") == 1
    assert pair.last_event(b, "noop").text("reason") == "packet already received"
    ack = pair.last_event(b, "write_acknowledgement").get("ack") or b""
    ack_msg = pair.ack_msg(pk, ack, a)
    a.tx(ack_msg)
    root = a.root()
    a.tx(ack_msg)
    assert a.root() == root
    assert pair.mock_a.count("ack") == 1
    timeout = chpb.MsgTimeout(packet=pk, proof_unreceived=b"irrelevant", proof_height=ack_msg.proof_height)
    a.tx(timeout)
    assert a.root() == root and pair.mock_a.count("timeout") == 0
    assert len(a.events.of_type("noop")) == 2


def test_ordered_duplicate_recv_is_a_noop(pair: HostPair) -> None:
    ca, _ = pair.open_channel(order=chpb.ORDER_ORDERED)
    pk = pair.a.send("mock", ca, b"x", timeout_ns=_far(pair))
    msg = pair.recv_msg(pk, pair.b)
    pair.b.tx(msg)
    pair.b.tx(msg)
    assert pair.mock_b.count("recv") == 1 and pair.b.events.of_type("noop")


def test_ack_requires_the_stored_commitment_and_an_ack_proof(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, _ = pair.open_channel()
    a, b = pair.a, pair.b
    pk = a.send("mock", ca, b"payload", timeout_ns=_far(pair))
    b.tx(pair.recv_msg(pk, b))
    ack = pair.last_event(b, "write_acknowledgement").get("ack") or b""
    msg = pair.ack_msg(pk, ack, a)
    wrong_ack = chpb.MsgAcknowledgement()
    wrong_ack.CopyFrom(msg)
    wrong_ack.acknowledgement = b"ok:something else"
    rejected(a, wrong_ack, ProofFailed, "acks/ports/mock")
    tampered = chpb.MsgAcknowledgement()
    tampered.CopyFrom(msg)
    tampered.packet.data = b"other payload"
    rejected(a, tampered, PacketError, "does not match the stored commitment")
    a.tx(msg)
    assert a.store.get(paths.packet_commitment("mock", ca, 1)) is None
    assert pair.mock_a.calls[-1] == ("ack", 1)


def test_ordered_acks_in_sequence(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, _ = pair.open_channel(order=chpb.ORDER_ORDERED)
    a, b = pair.a, pair.b
    p1 = a.send("mock", ca, b"one", timeout_ns=_far(pair))
    p2 = a.send("mock", ca, b"two", timeout_ns=_far(pair))
    b.tx(pair.recv_msg(p1, b))
    ack1 = pair.last_event(b, "write_acknowledgement").get("ack") or b""
    b.tx(pair.recv_msg(p2, b))
    ack2 = pair.last_event(b, "write_acknowledgement").get("ack") or b""
    rejected(a, pair.ack_msg(p2, ack2, a), PacketError, "expects ack 1")
    a.tx(pair.ack_msg(p1, ack1, a))
    a.tx(pair.ack_msg(p2, ack2, a))


def test_timeout_requires_proof_past_timeout_and_receipt_absence(
    pair: HostPair, rejected: Callable[..., TxFailed]
) -> None:
    ca, cb = pair.open_channel()
    a, b = pair.a, pair.b
    deadline = Height(1, b.height.revision_height + 4)
    pk = a.send("mock", ca, b"slow", timeout_height=deadline)
    rejected(a, pair.timeout_msg(pk, a), PacketError, "has not timed out")
    b.idle(4)
    assert b.height >= deadline
    msg = pair.timeout_msg(pk, a)
    bogus = chpb.MsgTimeout()
    bogus.CopyFrom(msg)
    bogus.proof_unreceived = b.prove(paths.next_sequence_recv("mock", cb), Height(1, msg.proof_height.revision_height))
    rejected(a, bogus, ProofFailed, "receipts/ports/mock")
    a.tx(msg)
    assert a.store.get(paths.packet_commitment("mock", ca, 1)) is None
    assert pair.mock_a.calls[-1] == ("timeout", 1)
    assert pair.channel_end(a, "mock", ca).state == chpb.STATE_OPEN
    assert pair.last_packet(a, "timeout_packet") == pk


def test_timeout_of_a_received_packet_fails(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, _ = pair.open_channel()
    a, b = pair.a, pair.b
    pk = a.send("mock", ca, b"x", timeout_ns=b.now_ns + 4 * b.block_ns)
    b.tx(pair.recv_msg(pk, b))
    b.idle(3)
    rejected(a, pair.timeout_msg(pk, a), ProofFailed, "absence proof")


def test_timeout_by_timestamp_uses_the_proof_height_time(pair: HostPair) -> None:
    ca, _ = pair.open_channel()
    a, b = pair.a, pair.b
    pk = a.send("mock", ca, b"x", timeout_ns=b.now_ns + 2 * b.block_ns)
    b.idle(2)
    a.tx(pair.timeout_msg(pk, a))
    assert pair.mock_a.count("timeout") == 1


def test_ordered_timeout_needs_next_sequence_recv_and_closes_the_channel(
    pair: HostPair, rejected: Callable[..., TxFailed]
) -> None:
    ca, _cb = pair.open_channel(order=chpb.ORDER_ORDERED)
    a, b = pair.a, pair.b
    p1 = a.send("mock", ca, b"one", timeout_ns=_far(pair))
    b.tx(pair.recv_msg(p1, b))
    deadline = Height(1, b.height.revision_height + 2)
    p2 = a.send("mock", ca, b"two", timeout_height=deadline)
    b.idle(2)
    msg = pair.timeout_msg(p2, a, ordered=True)
    assert msg.next_sequence_recv == 2
    lying = chpb.MsgTimeout()
    lying.CopyFrom(msg)
    lying.next_sequence_recv = 3
    rejected(a, lying, PacketError, "next_sequence_recv")
    a.tx(msg)
    assert pair.channel_end(a, "mock", ca).state == chpb.STATE_CLOSED
    assert pair.last_event(a, "channel_close").text("channel_id") == ca
    assert pair.mock_a.calls[-1] == ("timeout", 2)


def test_timeout_on_close_needs_the_counterparty_closed_proof(
    pair: HostPair, rejected: Callable[..., TxFailed]
) -> None:
    ca, cb = pair.open_channel()
    a, b = pair.a, pair.b
    pk = a.send("mock", ca, b"stranded", timeout_ns=_far(pair))
    rejected(a, pair.timeout_on_close_msg(pk, a), ProofFailed, "channelEnds/ports/mock")
    b.tx(chpb.MsgChannelCloseInit(port_id="mock", channel_id=cb))
    msg = pair.timeout_on_close_msg(pk, a)
    a.tx(msg)
    assert a.store.get(paths.packet_commitment("mock", ca, 1)) is None
    assert pair.mock_a.calls[-1] == ("timeout", 1)
    a.tx(msg)  # duplicate: a no-op
    assert pair.mock_a.count("timeout") == 1


def test_events_carry_full_packets_and_acks_and_are_queryable_by_height(pair: HostPair) -> None:
    ca, _ = pair.open_channel()
    a, b = pair.a, pair.b
    pk = a.send("mock", ca, b"evented", timeout_ns=_far(pair))
    send_events = [e for e in a.events.at(a.height) if e.type == "send_packet"]
    assert len(send_events) == 1 and send_events[0].packet() == pk
    assert Event.decode(send_events[0].encode()) == send_events[0]
    b.tx(pair.recv_msg(pk, b))
    kinds = [e.type for e in b.events.at(b.height)]
    assert kinds == ["recv_packet", "write_acknowledgement"]
    wa = b.events.at(b.height)[1]
    assert wa.packet() == pk and wa.get("ack") == b"ok:evented"
    a.tx(pair.ack_msg(pk, b"ok:evented", a))
    (acked,) = [e for e in a.events.at(a.height) if e.type == "acknowledge_packet"]
    assert acked.packet() == pk and acked.get("ack") == b"ok:evented"


@pytest.mark.parametrize("case", ["unknown_channel", "no_packet", "no_proof_height", "empty_proof", "zero_sequence"])
def test_bad_packet_input_is_a_typed_error_and_leaves_the_root(
    pair: HostPair, rejected: Callable[..., TxFailed], case: str
) -> None:
    ca, _ = pair.open_channel()
    pk = pair.a.send("mock", ca, b"x", timeout_ns=_far(pair))
    msg = pair.recv_msg(pk, pair.b)
    bad = chpb.MsgRecvPacket()
    bad.CopyFrom(msg)
    error: type[Exception]
    if case == "unknown_channel":
        bad.packet.destination_channel = "channel-999"
        error = NotFound
    elif case == "no_packet":
        bad.ClearField("packet")
        error = InvalidMessage
    elif case == "no_proof_height":
        bad.ClearField("proof_height")
        error = InvalidMessage
    elif case == "empty_proof":
        bad.proof_commitment = b""
        error = ProofFailed
    else:
        bad.packet.sequence = 0
        error = InvalidMessage
    rejected(pair.b, bad, error)


def test_ordered_timeout_on_close_frees_later_packets(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, cb = pair.open_channel(order=chpb.ORDER_ORDERED)
    a, b = pair.a, pair.b
    p1 = a.send("mock", ca, b"one", timeout_height=Height(1, b.height.revision_height + 2))
    p2 = a.send("mock", ca, b"two", timeout_ns=_far(pair))
    b.idle(2)
    a.tx(pair.timeout_msg(p1, a, ordered=True))
    assert pair.channel_end(a, "mock", ca).state == chpb.STATE_CLOSED
    # p2 can no longer be timed out normally (the channel is closed) ...
    rejected(a, pair.timeout_msg(p2, a, ordered=True), InvalidState, "STATE_OPEN")
    # ... and timeout-on-close needs B's end closed first.
    rejected(a, pair.timeout_on_close_msg(p2, a, ordered=True), ProofFailed)
    b.tx(pair.chan_close_confirm_msg(b, "mock", cb, "mock", ca))
    msg = pair.timeout_on_close_msg(p2, a, ordered=True)
    assert msg.next_sequence_recv == 1
    a.tx(msg)
    assert pair.mock_a.calls[-1] == ("timeout", 2)
    assert a.store.get(paths.packet_commitment("mock", ca, 2)) is None
