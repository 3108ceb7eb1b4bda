"""Relayer queries over a real pair of hosts."""

from __future__ import annotations

import pytest

from chains.ibc import queries
from chains.ibc.errors import NotFound
from kakehashi.ibc.v1 import channel_pb2 as chpb
from tests.support.pair import Pair


@pytest.mark.parametrize("order", [chpb.ORDER_UNORDERED, chpb.ORDER_ORDERED])
def test_unreceived_packets_and_acks(order: int) -> None:
    pair = Pair(provable=False, verify_proofs=False)
    ca, cb = pair.open_channel(order=order)
    a, b = pair.a, pair.b
    pks = [a.send("mock", ca, f"p{i}".encode(), timeout_ns=b.now_ns + 10**12) for i in range(3)]
    assert queries.packet_commitments(a.store, "mock", ca) == [1, 2, 3]
    assert queries.unreceived_packets(b.store, "mock", cb, [1, 2, 3]) == [1, 2, 3]
    b.tx(pair.recv_msg(pks[0], b))
    assert queries.unreceived_packets(b.store, "mock", cb, [3, 2, 1]) == [2, 3]
    assert queries.unreceived_acks(a.store, "mock", ca, [1]) == [1]
    a.tx(pair.ack_msg(pks[0], b"ok:p0", a))
    assert queries.unreceived_acks(a.store, "mock", ca, [1]) == []
    assert queries.packet_commitments(a.store, "mock", ca) == [2, 3]
    assert queries.channel(a.store, "mock", ca).state == chpb.STATE_OPEN
    assert queries.connection(a.store, pair.connection["chain-a"]).client_id == pair.client["chain-a"]
    assert queries.next_sequence_send(a.store, "mock", ca) == 4
    with pytest.raises(NotFound):
        queries.channel(a.store, "mock", "channel-9")
    with pytest.raises(NotFound):
        queries.connection(a.store, "connection-9")


class _CountingStore:
    """The host's store, counting reads (what the index exists to save)."""

    def __init__(self, inner: queries.IbcStore) -> None:
        self.inner, self.reads = inner, 0

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return self.inner.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.inner.set(key, value)

    def delete(self, key: bytes) -> None:
        self.inner.delete(key)


def test_commitment_index_matches_the_full_probe_and_reads_only_what_can_change() -> None:
    pair = Pair(provable=False, verify_proofs=False)
    ca, _cb = pair.open_channel()
    a, b = pair.a, pair.b
    index = queries.CommitmentIndex()
    assert index.commitments(a.store, "mock", ca) == []
    pks = [a.send("mock", ca, f"p{i}".encode(), timeout_ns=b.now_ns + 10**12) for i in range(40)]
    assert index.commitments(a.store, "mock", ca) == queries.packet_commitments(a.store, "mock", ca) == list(range(1, 41))
    for p in pks[:30]:  # 30 of them received and acked
        b.tx(pair.recv_msg(p, b))
        a.tx(pair.ack_msg(p, b"ok:" + bytes(p.data), a))
    expected = queries.packet_commitments(a.store, "mock", ca)
    assert expected == list(range(31, 41))
    assert index.commitments(a.store, "mock", ca) == expected  # acked ones leave the live set
    more = [a.send("mock", ca, b"late", timeout_ns=b.now_ns + 10**12) for _ in range(3)]
    counting = _CountingStore(a.store)
    assert index.commitments(counting, "mock", ca) == list(range(31, 44))
    # the send counter, 10 still live and 3 new: not the 43 sequences ever sent
    assert counting.reads <= 1 + 10 + 3 + 2, counting.reads
    assert [p.sequence for p in more] == [41, 42, 43]
    # an older state (counter behind what was seen) is answered from scratch, still exactly
    fresh = Pair(provable=False, verify_proofs=False)
    fca, _ = fresh.open_channel()
    assert fca == ca
    fresh.a.send("mock", fca, b"x", timeout_ns=fresh.b.now_ns + 10**12)
    assert index.commitments(fresh.a.store, "mock", ca) == [1]
