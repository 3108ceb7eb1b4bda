"""ICS-04 channel handshake and closing requirements."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chains.ibc.errors import AppError, InvalidState, NotFound, ProofFailed, TxFailed
from chains.ibc.host import paths
from kakehashi.ibc.v1 import channel_pb2 as chpb
from tests.support.host import SECOND
from tests.support.pair import HostPair


@pytest.mark.parametrize("order", [chpb.ORDER_UNORDERED, chpb.ORDER_ORDERED])
def test_channel_handshake_opens_both_ends(pair: HostPair, order: int) -> None:
    ca, cb = pair.open_channel(order=order)
    ea, eb = pair.channel_end(pair.a, "mock", ca), pair.channel_end(pair.b, "mock", cb)
    assert ea.state == eb.state == chpb.STATE_OPEN
    assert ea.ordering == eb.ordering == order
    assert (ea.counterparty.port_id, ea.counterparty.channel_id) == ("mock", cb)
    assert (eb.counterparty.port_id, eb.counterparty.channel_id) == ("mock", ca)
    assert ea.version == eb.version == "mock-1"
    for host, chan in ((pair.a, ca), (pair.b, cb)):
        for key in (paths.next_sequence_send("mock", chan), paths.next_sequence_recv("mock", chan),
                    paths.next_sequence_ack("mock", chan)):
            assert host.store.get(key) is not None


def test_channel_messages_valid_only_in_their_state(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    pair.open_connection()
    a, b = pair.a, pair.b
    (ca,) = a.tx(pair.chan_init_msg(a, "mock", "mock", chpb.ORDER_UNORDERED, ""))
    rejected(a, pair.chan_confirm_msg(a, "mock", str(ca), "mock", str(ca)), InvalidState, "STATE_TRYOPEN")
    (cb,) = b.tx(pair.chan_try_msg(b, "mock", "mock", str(ca)))
    rejected(b, pair.chan_ack_msg(b, "mock", str(cb), "mock", str(ca)), InvalidState, "STATE_INIT")
    a.tx(pair.chan_ack_msg(a, "mock", str(ca), "mock", str(cb)))
    rejected(a, pair.chan_ack_msg(a, "mock", str(ca), "mock", str(cb)), InvalidState)
    b.tx(pair.chan_confirm_msg(b, "mock", str(cb), "mock", str(ca)))
    rejected(b, pair.chan_confirm_msg(b, "mock", str(cb), "mock", str(ca)), InvalidState)
    # close confirm needs the counterparty's CLOSED proof: B's end is OPEN, so it fails
    rejected(a, pair.chan_close_confirm_msg(a, "mock", str(ca), "mock", str(cb)), ProofFailed)
    rejected(a, chpb.MsgChannelOpenConfirm(port_id="mock", channel_id="channel-9"), NotFound)


def test_channel_try_needs_a_correct_proof(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    pair.open_connection()
    a, b = pair.a, pair.b
    (ca,) = a.tx(pair.chan_init_msg(a, "mock", "mock", chpb.ORDER_UNORDERED, ""))
    msg = pair.chan_try_msg(b, "mock", "mock", str(ca))
    mutations: list[Callable[[chpb.MsgChannelOpenTry], None]] = [
        lambda m: setattr(m, "counterparty_version", "mock-2"),
        lambda m: setattr(m.channel, "ordering", chpb.ORDER_ORDERED),
        lambda m: setattr(m, "proof_init", b"\x0a\x00"),
    ]
    for mutate in mutations:
        bad = chpb.MsgChannelOpenTry()
        bad.CopyFrom(msg)
        mutate(bad)
        rejected(b, bad, ProofFailed)
    b.tx(msg)


def test_app_callback_error_aborts_the_handshake(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    pair.open_connection()
    pair.mock_a.refuse_open = True
    rejected(pair.a, pair.chan_init_msg(pair.a, "mock", "mock", chpb.ORDER_UNORDERED, ""), AppError, "refuses")
    pair.mock_a.refuse_open = False
    (ca,) = pair.a.tx(pair.chan_init_msg(pair.a, "mock", "mock", chpb.ORDER_UNORDERED, ""))
    assert ca == "channel-0"  # the failed attempt consumed no identifier


def test_closed_channels_never_reopen(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, cb = pair.open_channel()
    a, b = pair.a, pair.b
    a.tx(chpb.MsgChannelCloseInit(port_id="mock", channel_id=ca))
    b.tx(pair.chan_close_confirm_msg(b, "mock", cb, "mock", ca))
    assert pair.channel_end(a, "mock", ca).state == chpb.STATE_CLOSED
    assert pair.channel_end(b, "mock", cb).state == chpb.STATE_CLOSED
    assert a.events.of_type("channel_close") and b.events.of_type("channel_close")
    rejected(a, chpb.MsgChannelCloseInit(port_id="mock", channel_id=ca), InvalidState, "closed")
    rejected(a, pair.chan_ack_msg(a, "mock", ca, "mock", cb), InvalidState)
    rejected(b, pair.chan_confirm_msg(b, "mock", cb, "mock", ca), InvalidState)
    with pytest.raises(InvalidState):
        a.send("mock", ca, b"data", timeout_ns=a.now_ns + 3600 * SECOND)


def test_app_can_refuse_close_init(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, _ = pair.open_channel()
    pair.mock_a.refuse_close = True
    rejected(pair.a, chpb.MsgChannelCloseInit(port_id="mock", channel_id=ca), AppError)
    assert pair.channel_end(pair.a, "mock", ca).state == chpb.STATE_OPEN
