"""The sans-I/O packet planner: classification, ordering rules, filters and batching."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from lightclients.interface import Height
from relayer.config.schema import PacketFilter
from relayer.core import packets as planner

SECOND = 10**9
NOW = 1_700_000_000 * SECOND


def pkt(seq: int, height: int = 0, ts: int = 0, port: str = "transfer", chan: str = "channel-0") -> chpb.Packet:
    return chpb.Packet(sequence=seq, source_port=port, source_channel=chan, destination_port=port,
                       destination_channel="channel-9", data=b"x",
                       timeout_height=client_pb2.Height(revision_number=1 if height else 0, revision_height=height),
                       timeout_timestamp=ts)


def view(state: int = chpb.STATE_OPEN, ordering: int = chpb.ORDER_UNORDERED, height: int = 100,
         nsr: int = 1, margin: int = 5 * SECOND) -> planner.DestinationView:
    return planner.DestinationView(Height(1, height), NOW, state, ordering, nsr, margin)


def seqs(packets: list[chpb.Packet]) -> list[int]:
    return [p.sequence for p in packets]


def test_unreceived_live_packets_are_received_in_sequence_order() -> None:
    plan = planner.plan_packets([pkt(3, 500), pkt(1, 500), pkt(2, 500)], [1, 2, 3], view())
    assert seqs(plan.recv) == [1, 2, 3]
    assert not plan.timeout and not plan.waiting


def test_received_packets_are_left_to_the_ack_pass() -> None:
    plan = planner.plan_packets([pkt(1, 500), pkt(2, 500)], [2], view())
    assert seqs(plan.recv) == [2]


def test_height_and_timestamp_timeouts() -> None:
    plan = planner.plan_packets([pkt(1, 100), pkt(2, 0, NOW), pkt(3, 0, NOW + SECOND), pkt(4, 99)],
                                [1, 2, 3, 4], view(height=100))
    assert seqs(plan.timeout) == [1, 2, 4]
    # times out within the next block's margin: neither receivable nor provably timed out
    assert seqs(plan.waiting) == [3]


def test_packet_timing_out_at_the_next_height_waits() -> None:
    plan = planner.plan_packets([pkt(1, 101)], [1], view(height=100))
    assert seqs(plan.waiting) == [1] and not plan.recv and not plan.timeout


def test_ordered_timeout_only_for_next_sequence_recv_and_blocks_the_rest() -> None:
    plan = planner.plan_packets([pkt(5, 50), pkt(6, 50), pkt(7, 500)], [5, 6, 7],
                                view(ordering=chpb.ORDER_ORDERED, nsr=5))
    assert seqs(plan.timeout) == [5]
    assert seqs(plan.waiting) == [6, 7]
    assert not plan.recv


def test_ordered_packets_after_a_waiting_one_are_not_received() -> None:
    plan = planner.plan_packets([pkt(1, 101), pkt(2, 500)], [1, 2], view(ordering=chpb.ORDER_ORDERED, nsr=1))
    assert seqs(plan.waiting) == [1, 2]


def test_closed_destination_means_timeout_on_close() -> None:
    plan = planner.plan_packets([pkt(1, 500), pkt(2, 500)], [1, 2], view(state=chpb.STATE_CLOSED))
    assert seqs(plan.timeout_on_close) == [1, 2]
    ordered = planner.plan_packets([pkt(1, 500), pkt(2, 500)], [1, 2],
                                   view(state=chpb.STATE_CLOSED, ordering=chpb.ORDER_ORDERED, nsr=2))
    assert seqs(ordered.timeout_on_close) == [2]


def test_destination_not_open_yet_waits() -> None:
    plan = planner.plan_packets([pkt(1, 500)], [1], view(state=chpb.STATE_TRYOPEN))
    assert seqs(plan.waiting) == [1]


def test_packet_filter_and_clear_limit() -> None:
    flt = PacketFilter(policy="deny", rules=(("transfer", "channel-0"),))
    assert planner.plan_packets([pkt(1, 500)], [1], view(), flt).pending() == 0
    allow = PacketFilter(policy="allow", rules=(("trans*", "*"),))
    plan = planner.plan_packets([pkt(i, 500) for i in range(1, 11)], range(1, 11), view(), allow, limit=4)
    assert seqs(plan.recv) == [1, 2, 3, 4]


def test_plan_acks_only_for_still_committed_packets() -> None:
    acks = {1: (pkt(1), b"a1"), 2: (pkt(2), b"a2"), 3: (pkt(3), b"a3")}
    out = planner.plan_acks(acks, [3, 1, 7])
    assert [(p.sequence, a) for p, a in out] == [(1, b"a1"), (3, b"a3")]
    flt = PacketFilter(policy="deny", rules=(("transfer", "*"),))
    assert planner.plan_acks(acks, [1, 2], flt) == []


def test_message_builders_put_proofs_at_the_given_height() -> None:
    h = Height(1, 42)
    recv = planner.recv_msg(pkt(1), b"proof", h, "me")
    assert recv.proof_height.revision_height == 42 and recv.signer == "me" and recv.proof_commitment == b"proof"
    to = planner.timeout_on_close_msg(pkt(1), b"p", b"c", 3, h, "me")
    assert to.next_sequence_recv == 3 and to.proof_close == b"c"


def test_max_msg_num_below_two_is_refused() -> None:
    try:
        planner.chunks([1, 2], 1)
    except ValueError as exc:
        assert "at least 2" in str(exc)
    else:
        raise AssertionError("max_msg_num=1 accepted")


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 60), max_msg_num=st.integers(2, 12))
def test_batches_lead_with_one_update_and_hold_at_most_max_msg_num(n: int, max_msg_num: int) -> None:
    update = client_pb2.MsgUpdateClient(client_id="c-0", client_message=b"h")
    msgs = [planner.recv_msg(pkt(i + 1), b"p", Height(1, 1), "r") for i in range(n)]
    txs = planner.batch(update, msgs, max_msg_num)
    assert txs[0][0] is update  # the first tx leads with the update, no other tx repeats it
    assert [m for tx in txs for m in tx if m is not update] == msgs
    assert sum(m is update for tx in txs for m in tx) == 1
    assert all(1 <= len(tx) <= max_msg_num for tx in txs)
    assert len(txs) == max(1, -(-(n + 1) // max_msg_num))
    plain = planner.batch(None, msgs, max_msg_num)
    assert [m for tx in plain for m in tx] == msgs and all(len(tx) <= max_msg_num for tx in plain)


def test_a_dropped_multiproof_carrier_hands_its_proof_to_the_next_kept_message() -> None:
    update = client_pb2.MsgUpdateClient(client_id="c-0", client_message=b"h")
    acks = [chpb.MsgAcknowledgement(packet=pkt(i + 1), acknowledgement=b"a", proof_acked=b"MULTI" if i == 0 else b"")
            for i in range(4)]
    kept = planner.keep_messages([update, *acks], dropped={1, 3})
    assert kept[0] is update
    assert [(m.packet.sequence, m.proof_acked) for m in kept[1:]] == [(2, b"MULTI"), (4, b"")]
    assert acks[1].proof_acked == b""  # the caller's messages are not changed
    # nothing dropped: untouched; the carrier kept: nothing moves
    assert planner.keep_messages(acks, set()) == acks
    assert [m.proof_acked for m in planner.keep_messages(acks, {2})] == [b"MULTI", b"", b""]
