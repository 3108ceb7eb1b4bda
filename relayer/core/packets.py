"""Sans-I/O packet planner: which packet messages to build, and how to batch them.

Why pure functions: the decisions (relay, time out, wait) are where relayers go wrong, and
here they are computed only from facts queried from both chains in the same pass — the
source's commitments and packet data, the destination's unreceived set, channel state and
latest height/time — never from the relayer's memory. A restarted relayer or a second one
computes the same plan, and anything another relayer did first becomes a no-op on chain.

A packet message that fails reverts its whole tx, so the planner is conservative at the
edges: a packet that would time out at the destination's *next* block is neither received
nor timed out yet (the timeout is not provable until the destination passes it); it waits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf.message import Message

from chains.ibc.context import to_proto
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from lightclients.interface import Height
from relayer.config.schema import PacketFilter

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DestinationView:
    """What the destination looked like when the pass queried it."""

    height: Height
    time_ns: int
    channel_state: int
    ordering: int
    next_sequence_recv: int = 1
    # Upper bound on how far the next block's time may lie ahead (block time + clock drift).
    time_margin_ns: int = 0


@dataclass(slots=True)
class PacketPlan:
    recv: list[chpb.Packet] = field(default_factory=list)
    timeout: list[chpb.Packet] = field(default_factory=list)
    timeout_on_close: list[chpb.Packet] = field(default_factory=list)
    waiting: list[chpb.Packet] = field(default_factory=list)

    def pending(self) -> int:
        return len(self.recv) + len(self.timeout) + len(self.timeout_on_close) + len(self.waiting)


def timeout_height_of(packet: chpb.Packet) -> Height:
    return Height(packet.timeout_height.revision_number, packet.timeout_height.revision_height)


def timed_out(packet: chpb.Packet, height: Height, time_ns: int) -> bool:
    """Has the destination, at (height, time), passed the packet's timeout? (provable now)"""
    th = timeout_height_of(packet)
    by_height = not th.is_zero() and height >= th
    by_time = packet.timeout_timestamp != 0 and time_ns >= packet.timeout_timestamp
    return by_height or by_time


def _times_out_next_block(packet: chpb.Packet, dst: DestinationView) -> bool:
    return timed_out(packet, dst.height.increment(), dst.time_ns + max(dst.time_margin_ns, 1))


def plan_packets(
    packets: Iterable[chpb.Packet],
    unreceived: Iterable[int],
    dst: DestinationView,
    packet_filter: PacketFilter | None = None,
    limit: int | None = None,
) -> PacketPlan:
    """Sort the source's still-committed packets into recv / timeout / timeout-on-close / wait.

    ``packets`` are the committed packets (from send events) and ``unreceived`` the sequences
    the destination has not received; packets it has received are left to the ack pass.
    """
    todo = set(unreceived)
    plan = PacketPlan()
    ordered = dst.ordering == chpb.ORDER_ORDERED
    chosen = sorted((p for p in packets if p.sequence in todo), key=lambda p: p.sequence)
    if packet_filter is not None:
        chosen = [p for p in chosen if packet_filter.permits(p.source_port, p.source_channel)]
    if limit is not None:
        chosen = chosen[:limit]
    blocked = False  # ordered: nothing after a packet that cannot be received now
    for p in chosen:
        if dst.channel_state == chpb.STATE_CLOSED:
            if not ordered or p.sequence >= dst.next_sequence_recv:
                plan.timeout_on_close.append(p)
            continue
        if dst.channel_state != chpb.STATE_OPEN:
            plan.waiting.append(p)
            continue
        if timed_out(p, dst.height, dst.time_ns):
            if ordered and p.sequence != dst.next_sequence_recv:
                plan.waiting.append(p)
            elif ordered and plan.timeout:
                plan.waiting.append(p)  # the first ordered timeout closes the channel
            else:
                plan.timeout.append(p)
            blocked = True
            continue
        if _times_out_next_block(p, dst) or (ordered and blocked):
            plan.waiting.append(p)
            blocked = True
            continue
        plan.recv.append(p)
    return plan


def plan_acks(ack_events: Mapping[int, tuple[chpb.Packet, bytes]], unreceived_acks: Iterable[int],
              packet_filter: PacketFilter | None = None,
              limit: int | None = None) -> list[tuple[chpb.Packet, bytes]]:
    """Acks written on the destination whose packet is still committed on the source."""
    todo = sorted(set(unreceived_acks))
    out = [ack_events[s] for s in todo if s in ack_events]
    if packet_filter is not None:
        out = [(p, a) for p, a in out if packet_filter.permits(p.source_port, p.source_channel)]
    return out[:limit] if limit is not None else out


# --- message builders (proofs are made by the caller at ``height``) -----------------------

def recv_msg(packet: chpb.Packet, proof: bytes, height: Height, signer: str) -> chpb.MsgRecvPacket:
    return chpb.MsgRecvPacket(packet=packet, proof_commitment=proof, proof_height=to_proto(height), signer=signer)


def ack_msg(packet: chpb.Packet, ack: bytes, proof: bytes, height: Height, signer: str) -> chpb.MsgAcknowledgement:
    return chpb.MsgAcknowledgement(packet=packet, acknowledgement=ack, proof_acked=proof,
                                   proof_height=to_proto(height), signer=signer)


def timeout_msg(packet: chpb.Packet, proof: bytes, next_sequence_recv: int, height: Height,
                signer: str) -> chpb.MsgTimeout:
    return chpb.MsgTimeout(packet=packet, proof_unreceived=proof, next_sequence_recv=next_sequence_recv,
                           proof_height=to_proto(height), signer=signer)


def timeout_on_close_msg(packet: chpb.Packet, proof: bytes, proof_close: bytes, next_sequence_recv: int,
                         height: Height, signer: str) -> chpb.MsgTimeoutOnClose:
    return chpb.MsgTimeoutOnClose(packet=packet, proof_unreceived=proof, proof_close=proof_close,
                                  next_sequence_recv=next_sequence_recv, proof_height=to_proto(height),
                                  signer=signer)


# the field that carries a packet message's (multi)proof
PROOF_FIELD = {"MsgRecvPacket": "proof_commitment", "MsgAcknowledgement": "proof_acked",
               "MsgTimeout": "proof_unreceived"}


def keep_messages(msgs: Sequence[Message], dropped: set[int]) -> list[Message]:
    """``msgs`` without the ``dropped`` indices, keeping a multiproof in the tx.

    The first message of a batch carries the multiproof and the rest an empty proof; when a
    codec drops the carrier (a DvP exit another relayer already made), its proof moves to the
    next kept message of the same kind that has none, or the rest could not be verified."""
    out: list[Message] = []
    orphan: tuple[str, bytes] | None = None  # (message type, proof) of a dropped carrier
    for i, m in enumerate(msgs):
        name = m.DESCRIPTOR.name
        field = PROOF_FIELD.get(name)
        proof = bytes(getattr(m, field)) if field else b""
        if i in dropped:
            if field and proof and (orphan is None or orphan[0] != name):
                orphan = (name, proof)
            continue
        if field and orphan is not None and orphan[0] == name:
            if not proof:
                moved = type(m)()
                moved.CopyFrom(m)
                setattr(moved, field, orphan[1])
                m = moved
            orphan = None
        out.append(m)
    return out


def update_msg(client_id: str, header: bytes) -> client_pb2.MsgUpdateClient:
    return client_pb2.MsgUpdateClient(client_id=client_id, client_message=header)


def chunks(items: Sequence[T], max_msg_num: int) -> list[list[T]]:
    """Split packet messages so that each tx holds one UpdateClient plus at most
    ``max_msg_num - 1`` of them (max_msg_num counts every message in the tx)."""
    if max_msg_num < 2:
        raise ValueError(f"max_msg_num must be at least 2 (one update + one packet), got {max_msg_num}")
    per = max_msg_num - 1
    return [list(items[i:i + per]) for i in range(0, len(items), per)]


def batch(update: Message | None, msgs: Sequence[Message], max_msg_num: int) -> list[list[Message]]:
    """Txs for one pass: the UpdateClient leads the FIRST tx only, the rest carry packet
    messages alone (at most ``max_msg_num`` messages per tx either way).

    Why once: the txs of a pass are queued in order from one signer, so the later ones run
    after the first and find its consensus state; repeating the update made every tx pay a
    header check on chain. If the first tx fails, the later ones fail on the missing consensus
    state and their packets are relayed again by the next pass."""
    if max_msg_num < 2:
        raise ValueError(f"max_msg_num must be at least 2 (one update + one packet), got {max_msg_num}")
    if update is None:
        return [list(msgs[i:i + max_msg_num]) for i in range(0, len(msgs), max_msg_num)]
    first: list[Message] = [update, *msgs[:max_msg_num - 1]]
    rest = msgs[max_msg_num - 1:]
    return [first] + [list(rest[i:i + max_msg_num]) for i in range(0, len(rest), max_msg_num)]
