"""Read-only views of the IBC store for nodes and relayers (what gRPC query services serve).

They read the committed host store directly (no transaction), decode the stored protobuf
values, and answer the relayer's two stateless-recovery questions: which of these packet
sequences has the counterparty not received, and which acks have we not processed.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import DecodeError

from chains.ibc.errors import InvalidMessage, NotFound
from chains.ibc.host import paths
from chains.ibc.host.store import IbcStore, get_sequence
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import connection_pb2 as cpb


def connection(store: IbcStore, connection_id: str) -> cpb.ConnectionEnd:
    raw = store.get(paths.connection(connection_id))
    if raw is None:
        raise NotFound(f"connection {connection_id!r} does not exist")
    end = cpb.ConnectionEnd()
    try:
        end.ParseFromString(raw)
    except DecodeError as exc:
        raise InvalidMessage(f"stored connection {connection_id!r} is corrupt") from exc
    return end


def channel(store: IbcStore, port_id: str, channel_id: str) -> chpb.Channel:
    raw = store.get(paths.channel(port_id, channel_id))
    if raw is None:
        raise NotFound(f"channel {port_id}/{channel_id} does not exist")
    ch = chpb.Channel()
    try:
        ch.ParseFromString(raw)
    except DecodeError as exc:
        raise InvalidMessage(f"stored channel {port_id}/{channel_id} is corrupt") from exc
    return ch


def next_sequence_send(store: IbcStore, port_id: str, channel_id: str) -> int:
    return get_sequence(store, paths.next_sequence_send(port_id, channel_id))


def next_sequence_recv(store: IbcStore, port_id: str, channel_id: str) -> int:
    return get_sequence(store, paths.next_sequence_recv(port_id, channel_id))


def packet_commitments(store: IbcStore, port_id: str, channel_id: str, up_to: int | None = None) -> list[int]:
    """Sequences still committed (sent, neither acked nor timed out), by probing 1..up_to.

    The store is a key-value map without range scans, so the bound defaults to the send
    counter; a relayer usually asks only about the sequences it saw in events.
    """
    last = (up_to if up_to is not None else next_sequence_send(store, port_id, channel_id) - 1)
    return [s for s in range(1, last + 1) if store.get(paths.packet_commitment(port_id, channel_id, s)) is not None]


class CommitmentIndex:
    """A channel's live packet commitments, kept current by probing only what can have changed.

    Why: the store has no range scan, so :func:`packet_commitments` probes every sequence
    ever sent, and a relayer asks every pass: at 10,000 packets that held a node's event
    loop for hundreds of milliseconds a time. A sequence's commitment is written once, when
    the sequence is allocated, and deleted once (ack or timeout), never written again; so the
    live set is the sequences allocated since the last look plus those still live then, each
    re-checked. Feed it only the newest state, in order: a host's latest height.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}  # highest sequence already probed
        self._live: dict[tuple[str, str], set[int]] = {}

    def commitments(self, store: IbcStore, port_id: str, channel_id: str) -> list[int]:
        key = (port_id, channel_id)
        last = next_sequence_send(store, port_id, channel_id) - 1
        seen = self._seen.get(key, 0)
        live = self._live.setdefault(key, set())
        if last < seen:  # a counter never goes back; an older state was fed: start over
            live.clear()
            seen = 0
        live.update(range(seen + 1, last + 1))
        live.difference_update([q for q in live
                                if store.get(paths.packet_commitment(port_id, channel_id, q)) is None])
        self._seen[key] = last
        return sorted(live)


def unreceived_packets(store: IbcStore, port_id: str, channel_id: str, sequences: Iterable[int]) -> list[int]:
    """On the receiving chain: which of the counterparty's committed sequences are not received."""
    ch = channel(store, port_id, channel_id)
    if ch.ordering == chpb.ORDER_ORDERED:
        nxt = next_sequence_recv(store, port_id, channel_id)
        return sorted(s for s in set(sequences) if s >= nxt)
    return sorted(s for s in set(sequences)
                  if store.get(paths.packet_receipt(port_id, channel_id, s)) is None)


def unreceived_acks(store: IbcStore, port_id: str, channel_id: str, sequences: Iterable[int]) -> list[int]:
    """On the sending chain: which acked-by-the-counterparty sequences still hold a commitment."""
    return sorted(s for s in set(sequences)
                  if store.get(paths.packet_commitment(port_id, channel_id, s)) is not None)
