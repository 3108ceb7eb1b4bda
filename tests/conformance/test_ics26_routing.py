"""ICS-05/26 port binding and routing requirements."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chains.ibc.errors import IdentifierExists, NoRoute, NotFound, TxFailed
from chains.ibc.host import paths
from kakehashi.ibc.v1 import channel_pb2 as chpb
from tests.support import mockapp
from tests.support.host import SECOND
from tests.support.pair import HostPair


def test_unknown_port_or_channel_has_no_route_and_no_state_change(
    pair: HostPair, rejected: Callable[..., TxFailed]
) -> None:
    ca, _cb = pair.open_channel()
    a, b = pair.a, pair.b
    rejected(a, pair.chan_init_msg(a, "nobody", "mock", chpb.ORDER_UNORDERED, ""), NoRoute, "nobody")
    pk = a.send("mock", ca, b"hello", timeout_ns=a.now_ns + 3600 * SECOND)
    msg = pair.recv_msg(pk, b)
    stray = chpb.MsgRecvPacket()
    stray.CopyFrom(msg)
    stray.packet.destination_channel = "channel-77"
    rejected(b, stray, NotFound, "channel-77")
    stray.packet.destination_port = "ghost"
    rejected(b, stray, NotFound, "ghost")
    b.tx(msg)


def test_bind_port_only_once(pair: HostPair) -> None:
    with pytest.raises(IdentifierExists):
        pair.a.handler.bind_port("mock", mockapp.MockApp())


def test_error_ack_keeps_receipt_but_discards_app_writes(pair: HostPair) -> None:
    ca, cb = pair.open_channel()
    a, b = pair.a, pair.b
    pk = a.send("mock", ca, b"fail please", timeout_ns=a.now_ns + 3600 * SECOND)
    b.tx(pair.recv_msg(pk, b))
    assert b.store.get(paths.packet_receipt("mock", cb, 1)) == b"\x01"
    assert b.store.get(mockapp.app_key(1)) is None
    ack = pair.last_event(b, "write_acknowledgement").get("ack")
    assert ack == b"error:fail please"
    ok = a.send("mock", ca, b"fine", timeout_ns=a.now_ns + 3600 * SECOND)
    b.tx(pair.recv_msg(ok, b))
    assert b.store.get(mockapp.app_key(2)) == b"fine"


def test_app_failure_on_recv_becomes_an_error_ack(pair: HostPair) -> None:
    ca, cb = pair.open_channel()
    a, b = pair.a, pair.b
    pk = a.send("mock", ca, b"raise", timeout_ns=a.now_ns + 3600 * SECOND)
    b.tx(pair.recv_msg(pk, b))
    assert pair.last_event(b, "write_acknowledgement").get("ack") == b'{"error":"app failed: RuntimeError"}'
    assert b.store.get(mockapp.app_key(1)) is None
    assert b.store.get(paths.packet_receipt("mock", cb, 1)) == b"\x01"


def test_async_ack_is_written_later(pair: HostPair) -> None:
    from chains.ibc import packets

    ca, cb = pair.open_channel()
    a, b = pair.a, pair.b
    pk = a.send("mock", ca, b"async", timeout_ns=a.now_ns + 3600 * SECOND)
    b.tx(pair.recv_msg(pk, b))
    assert b.store.get(paths.packet_ack("mock", cb, 1)) is None
    b.app_call(lambda ctx: packets.write_acknowledgement(ctx, pk, b"late"))
    assert b.store.get(paths.packet_ack("mock", cb, 1)) is not None
    a.tx(pair.ack_msg(pk, b"late", a))
    assert a.store.get(paths.packet_commitment("mock", ca, 1)) is None
