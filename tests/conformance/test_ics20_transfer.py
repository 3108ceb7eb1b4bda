"""ICS-20 transfer requirements: escrow, mint, burn, refund and supply conservation."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chains.ibc.apps.bank import BankError
from chains.ibc.apps.transfer import SUCCESS_ACK, FungibleTokenPacketData, escrow_account
from chains.ibc.context import to_proto
from chains.ibc.errors import AppError, InvalidMessage, TxFailed
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import transfer_pb2
from lightclients.interface import Height
from tests.support.basehost import ChainHost
from tests.support.host import SECOND
from tests.support.pair import HostPair

SUPPLY = 1_000


def _users(pair: HostPair) -> tuple[str, str]:
    """alice on A and bob on B: the accounts the hosts let the suite's tx signer spend."""
    return pair.a.spender(), pair.b.spender()


def _setup(pair: HostPair) -> tuple[str, str]:
    alice, bob = _users(pair)
    ca, cb = pair.open_channel("transfer")
    pair.a.bank().mint(alice, "stake", SUPPLY)
    pair.b.bank().mint(bob, "coin", SUPPLY)
    pair.a.idle()
    pair.b.idle()
    return ca, cb


def _transfer(host: ChainHost, chan: str, denom: str, amount: str, sender: str, receiver: str,
              timeout_height: Height | None = None) -> chpb.Packet:
    msg = transfer_pb2.MsgTransfer(source_port="transfer", source_channel=chan, denom=denom, amount=amount,
                                   sender=sender, receiver=receiver,
                                   timeout_timestamp=0 if timeout_height else host.now_ns + 1800 * SECOND)
    if timeout_height is not None:
        msg.timeout_height.CopyFrom(to_proto(timeout_height))
    host.tx(msg)
    packet = host.events.of_type("send_packet")[-1].packet()
    assert packet is not None
    return packet


def _relay(pair: HostPair, packet: chpb.Packet, src: ChainHost) -> bytes:
    dst = pair.other(src)
    dst.tx(pair.recv_msg(packet, dst))
    ack = pair.last_event(dst, "write_acknowledgement").get("ack") or b""
    src.tx(pair.ack_msg(packet, ack, src))
    return ack


def test_transfer_escrows_on_the_source_and_mints_a_voucher_on_the_sink(pair: HostPair) -> None:
    alice, bob = _users(pair)
    ca, cb = _setup(pair)
    pk = _transfer(pair.a, ca, "stake", "300", alice, bob)
    assert pair.a.bank().balance(alice, "stake") == 700
    assert pair.a.bank().balance(escrow_account("transfer", ca), "stake") == 300
    data = FungibleTokenPacketData.decode(pk.data)
    assert (data.denom, data.amount, data.sender, data.receiver) == ("stake", 300, alice, bob)
    assert _relay(pair, pk, pair.a) == SUCCESS_ACK
    voucher = f"transfer/{cb}/stake"
    assert pair.b.bank().balance(bob, voucher) == 300
    assert pair.b.bank().supply(voucher) == 300


def test_returning_a_voucher_burns_it_and_releases_the_escrow(pair: HostPair) -> None:
    alice, bob = _users(pair)
    ca, cb = _setup(pair)
    _relay(pair, _transfer(pair.a, ca, "stake", "300", alice, bob), pair.a)
    voucher = f"transfer/{cb}/stake"
    back = _transfer(pair.b, cb, voucher, "120", bob, "carol")
    assert pair.b.bank().balance(bob, voucher) == 180
    assert pair.b.bank().supply(voucher) == 180
    assert _relay(pair, back, pair.b) == SUCCESS_ACK
    assert pair.a.bank().balance("carol", "stake") == 120
    assert pair.a.bank().balance(escrow_account("transfer", ca), "stake") == 180


def test_error_ack_refunds_the_sender(pair: HostPair) -> None:
    alice, bob = _users(pair)
    ca, _cb = _setup(pair)
    long_denom = "d" * 500  # valid here, too long once the sink prefixes its trace
    pair.a.bank().mint(alice, long_denom, 50)
    pair.a.idle()
    pk = _transfer(pair.a, ca, long_denom, "50", alice, bob)
    assert pair.a.bank().balance(alice, long_denom) == 0
    ack = _relay(pair, pk, pair.a)
    assert json.loads(ack)["error"].startswith("BankError")
    assert pair.a.bank().balance(alice, long_denom) == 50
    assert pair.a.bank().balance(escrow_account("transfer", ca), long_denom) == 0


def test_timeout_refunds_the_sender(pair: HostPair) -> None:
    alice, bob = _users(pair)
    ca, _cb = _setup(pair)
    pk = _transfer(pair.a, ca, "stake", "400", alice, bob,
                   timeout_height=Height(1, pair.b.height.revision_height + 2))
    pair.b.idle(2)
    pair.a.tx(pair.timeout_msg(pk, pair.a))
    assert pair.a.bank().balance(alice, "stake") == SUPPLY
    assert pair.a.bank().balance(escrow_account("transfer", ca), "stake") == 0


def test_voucher_timeout_on_return_is_reminted(pair: HostPair) -> None:
    alice, bob = _users(pair)
    ca, cb = _setup(pair)
    _relay(pair, _transfer(pair.a, ca, "stake", "10", alice, bob), pair.a)
    voucher = f"transfer/{cb}/stake"
    pk = _transfer(pair.b, cb, voucher, "10", bob, alice,
                   timeout_height=Height(1, pair.a.height.revision_height + 2))
    assert pair.b.bank().supply(voucher) == 0
    pair.a.idle(2)
    pair.b.tx(pair.timeout_msg(pk, pair.b))
    assert pair.b.bank().balance(bob, voucher) == 10 and pair.b.bank().supply(voucher) == 10


def test_transfer_with_insufficient_funds_reverts(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    alice, bob = _users(pair)
    ca, _ = _setup(pair)
    msg = transfer_pb2.MsgTransfer(source_port="transfer", source_channel=ca, denom="stake", amount="5000",
                                   sender=alice, receiver=bob, timeout_timestamp=pair.b.now_ns + SECOND * 600)
    rejected(pair.a, msg, BankError, "cannot send")
    for amount in ("0", "-1", "1e3", "", "9" * 90):
        msg.amount = amount
        rejected(pair.a, msg, InvalidMessage)


def test_transfer_channels_refuse_close_init_and_ordered(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, _ = pair.open_channel("transfer")
    rejected(pair.a, chpb.MsgChannelCloseInit(port_id="transfer", channel_id=ca), AppError, "cannot be closed")
    rejected(pair.a, pair.chan_init_msg(pair.a, "transfer", "transfer", chpb.ORDER_ORDERED, "ics20-1"),
             AppError, "unordered")
    rejected(pair.a, pair.chan_init_msg(pair.a, "transfer", "transfer", chpb.ORDER_UNORDERED, "ics20-9"),
             AppError, "version")


def test_transfer_packet_data_is_deterministic_json() -> None:
    data = FungibleTokenPacketData("transfer/channel-0/stake", 12, "alice", "bob", "hi")
    raw = data.encode()
    assert raw == b'{"amount":"12","denom":"transfer/channel-0/stake","memo":"hi","receiver":"bob","sender":"alice"}'
    assert FungibleTokenPacketData.decode(raw) == data
    for bad in (b"[]", b"{", b'{"amount":12,"denom":"a","receiver":"b","sender":"c"}',
                b'{"amount":"1","denom":"a","receiver":"b","sender":"c","extra":"x"}',
                b'{"amount":"0","denom":"a","receiver":"b","sender":"c"}', b"\xff"):
        with pytest.raises(InvalidMessage):
            FungibleTokenPacketData.decode(bad)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 200), st.sampled_from(["ack", "timeout", "back"])), min_size=1, max_size=5))
def test_supply_conservation(pair: HostPair, steps: list[tuple[int, str]]) -> None:
    alice, bob = _users(pair)
    if not pair.connection:
        _setup(pair)
    ca, cb = "channel-0", "channel-0"
    voucher = f"transfer/{cb}/stake"
    for amount, outcome in steps:
        if pair.a.bank().balance(alice, "stake") < amount:
            continue
        if outcome == "timeout":
            pk = _transfer(pair.a, ca, "stake", str(amount), alice, bob,
                           timeout_height=Height(1, pair.b.height.revision_height + 1))
            pair.b.idle()
            pair.a.tx(pair.timeout_msg(pk, pair.a))
        else:
            _relay(pair, _transfer(pair.a, ca, "stake", str(amount), alice, bob), pair.a)
            if outcome == "back":
                _relay(pair, _transfer(pair.b, cb, voucher, str(amount), bob, alice), pair.b)
        escrow = pair.a.bank().balance(escrow_account("transfer", ca), "stake")
        assert pair.a.bank().balance(alice, "stake") + escrow == SUPPLY
        assert pair.a.bank().supply("stake") == SUPPLY
        assert pair.b.bank().supply(voucher) == escrow == pair.b.bank().balance(bob, voucher)

