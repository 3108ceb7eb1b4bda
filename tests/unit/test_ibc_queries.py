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
