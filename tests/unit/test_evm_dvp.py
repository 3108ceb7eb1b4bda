"""The EVM half of DvP: the ST escrow contract and the ``dvp`` port's receiving module.

Packets reach the escrow chain the way a relayer brings them: chain A (an EVM host from the
conformance support, standing in for the Corda lock transaction) commits a DvP packet in a
sealed block, and chain B's IBC handler contract verifies its MPT storage proof with B's QBFT
client of A before the dvp module runs. "Nothing changed" is checked on committed storage
roots of the token and escrow contracts, and every test ends by checking that the ST supply
equals the sum of all balances and that the escrow holds exactly what is locked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.evm import SECURITY_TOKEN_ADDRESS, Message, Receipt, make_tx
from chains.evm.contracts import encode_amount
from chains.evm.dvp import (
    DVP_ESCROW_ADDRESS,
    FIELD_STATUS,
    LOCKED,
    REASON_BAD_DATA,
    REASON_BUYER,
    REASON_CHANNEL,
    REASON_DELIVERED,
    REASON_RECLAIMED,
    REASON_TERMS,
    REASON_TIMEOUT,
    REASON_UNKNOWN_TRADE,
    REASON_WRONG_TOKEN,
    escrow_slot,
)
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.errors import AppError, InvalidMessage, NoRoute, TxFailed
from chains.ibc.host import paths
from chains.node import main as node_main
from chains.node.app import QueryError
from chains.node.apps.evm import (
    KIND,
    Allocation,
    EvmGenesis,
    EvmNodeApp,
    GenesisError,
    build_genesis_chain,
)
from chains.node.config import load_node_config
from chains.node.db import NodeDatabase
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from lightclients.crypto import eth_address, secp256k1_public_key, sha256
from lightclients.interface import Height
from lightclients.mpt import verify_account_proof, verify_storage_proof
from tests.support.evmhost import SIGNER_KEY, EvmHost
from tests.support.mockapp import MockApp
from tests.support.pair import HostPair, make_pair

SECOND = 1_000_000_000


def _key(name: str) -> tuple[bytes, bytes]:
    key = sha256(b"dvp-test-" + name.encode())
    return key, eth_address(secp256k1_public_key(key))


SELLER_KEY, SELLER = _key("seller")
BUYER_KEY, BUYER = _key("buyer")
CAROL_KEY, CAROL = _key("carol")  # never whitelisted
HOLDERS = (SELLER, BUYER, CAROL, DVP_ESCROW_ADDRESS)


class World:
    """Chain B holds the ST and the escrow; chain A sends DvP packets on an open dvp channel."""

    def __init__(self, kind: str = "evm-evm") -> None:
        self.pair: HostPair = make_pair(kind)
        self.a, self.b = self.pair.a, self.pair.b
        assert isinstance(self.b, EvmHost)
        try:
            self.a.handler.router.route(dvp_app.PORT_ID)
        except NoRoute:
            # The sender's own dvp rules are not under test here: any app will carry the packet.
            self.a.handler.bind_port(dvp_app.PORT_ID, MockApp())
        self.chan_a, self.chan_b = self.pair.open_channel(dvp_app.PORT_ID, version=dvp_app.VERSION)
        self.trades: set[str] = set()
        self.issuer(SECURITY_TOKEN_ADDRESS, "whitelist", SELLER, b"\x01")
        self.issuer(SECURITY_TOKEN_ADDRESS, "whitelist", BUYER, b"\x01")
        self.issuer(SECURITY_TOKEN_ADDRESS, "mint", SELLER, encode_amount(1_000))
        self.issuer(SECURITY_TOKEN_ADDRESS, "mint", BUYER, encode_amount(10))

    # --- chain B transactions ------------------------------------------------------------

    def call(self, key: bytes, to: bytes, method: str, *args: bytes) -> Receipt:
        b = self.b
        assert isinstance(b, EvmHost)
        sender = eth_address(secp256k1_public_key(key))
        b.next_block()
        raw = make_tx(key, b.chain.chain_id, b.chain.nonce(sender), [Message(to, method, tuple(args))]).encode()
        block = b.chain.produce_block([raw], b.now_ns, b.keys)
        b._commit()
        (receipt,) = block.receipts
        return receipt

    def issuer(self, to: bytes, method: str, *args: bytes) -> None:
        receipt = self.call(SIGNER_KEY, to, method, *args)
        assert receipt.success, receipt.reason

    def lock(self, terms: dvp_pb2.Terms, key: bytes = SELLER_KEY, channel: str | None = None) -> Receipt:
        args = (dvp_app.encode_terms(terms), (channel or self.chan_b).encode())
        receipt = self.call(key, DVP_ESCROW_ADDRESS, "lock", *args)
        if receipt.success:
            self.trades.add(terms.trade_id)
        return receipt

    def reclaim(self, trade_id: str, key: bytes = CAROL_KEY) -> Receipt:
        return self.call(key, DVP_ESCROW_ADDRESS, "reclaim", trade_id.encode())

    # --- packets A -> B ------------------------------------------------------------------

    def send(self, data: bytes, timeout_ns: int) -> chpb.Packet:
        return self.a.send(dvp_app.PORT_ID, self.chan_a, data, timeout_ns=timeout_ns)

    def recv(self, packet: chpb.Packet) -> bytes:
        """Relay the packet with a fresh proof; returns the ack B wrote for it."""
        self.b.tx(self.pair.recv_msg(packet, self.b))
        return self.ack(packet)

    def ack(self, packet: chpb.Packet) -> bytes:
        for event in reversed(self.b.events.of_type("write_acknowledgement")):
            written = event.packet()
            if written is not None and written.sequence == packet.sequence:
                return event.get("ack") or b""
        raise AssertionError(f"no ack written for sequence {packet.sequence}")

    # --- reading chain B -----------------------------------------------------------------

    @property
    def now(self) -> int:
        return self.b.now_ns

    def terms(self, trade_id: str, *, quantity: int = 100, deadline_ns: int | None = None,
              buyer: bytes = BUYER, seller: bytes = SELLER, **changes: object) -> dvp_pb2.Terms:
        terms = dvp_pb2.Terms(
            trade_id=trade_id, security_token=SECURITY_TOKEN_ADDRESS, st_quantity=quantity,
            cash_issuer=b"\x11" * 32, sc_amount=5_000, seller_evm=seller, buyer_evm=buyer,
            seller_corda=b"\x22" * 32, buyer_corda=b"\x33" * 32,
            deadline_ns=deadline_ns if deadline_ns is not None else self.now + 600 * SECOND,
        )
        for name, value in changes.items():
            setattr(terms, name, value)
        return terms

    def balance(self, holder: bytes) -> int:
        b = self.b
        assert isinstance(b, EvmHost)
        return b.chain.token.balance_of(b.chain.state, holder)

    def status(self, trade_id: str) -> str:
        b = self.b
        assert isinstance(b, EvmHost)
        return b.chain.escrow.record(b.chain.state, trade_id).status_name

    def roots(self) -> tuple[bytes, bytes]:
        """Committed storage roots of the token and the escrow contracts at B's tip."""
        b = self.b
        assert isinstance(b, EvmHost)
        h = b.height.revision_height
        return (b.chain.prove(SECURITY_TOKEN_ADDRESS, [], h).storage_root,
                b.chain.prove(DVP_ESCROW_ADDRESS, [], h).storage_root)

    def check_conservation(self) -> None:
        b = self.b
        assert isinstance(b, EvmHost)
        state, token = b.chain.state, b.chain.token
        assert token.total_supply(state) == 1_010 == sum(self.balance(h) for h in HOLDERS)
        locked = sum(r.quantity for r in (b.chain.escrow.record(state, t) for t in self.trades)
                     if r.status == LOCKED)
        assert self.balance(DVP_ESCROW_ADDRESS) == locked


@pytest.fixture
def w() -> Iterator[World]:
    world = World()
    yield world
    world.check_conservation()


# --- lock ---------------------------------------------------------------------------------


def test_lock_moves_the_sellers_st_into_escrow(w: World) -> None:
    terms = w.terms("T-1")
    receipt = w.lock(terms)
    assert receipt.success, receipt.reason
    assert (w.balance(SELLER), w.balance(DVP_ESCROW_ADDRESS)) == (900, 100)
    assert w.status("T-1") == "locked"
    (locked,) = [log for log in receipt.logs if log.name == "dvp_locked"]
    assert locked.address == DVP_ESCROW_ADDRESS
    assert dict(locked.attributes) == {
        "trade_id": b"T-1", "seller": SELLER, "buyer": BUYER, "quantity": encode_amount(100),
        "terms_hash": dvp_app.terms_hash(terms), "deadline": encode_amount(terms.deadline_ns),
        "channel": w.chan_b.encode(),
    }


def _refusals(w: World) -> list[tuple[str, bytes, bytes]]:
    """(reason fragment, signer key, lock argument) for every way a lock is refused."""
    good = w.terms("T-R")
    non_canonical = dvp_app.encode_terms(good) + b"\x50\x00"  # a redundant zero field 10
    return [
        ("only terms.seller_evm", BUYER_KEY, dvp_app.encode_terms(good)),
        ("security token", SELLER_KEY, dvp_app.encode_terms(w.terms("T-R", security_token=b"\x01" * 20))),
        ("seller is not whitelisted", CAROL_KEY, dvp_app.encode_terms(w.terms("T-R", seller=CAROL))),
        ("buyer is not whitelisted", SELLER_KEY, dvp_app.encode_terms(w.terms("T-R", buyer=CAROL))),
        ("insufficient balance", SELLER_KEY, dvp_app.encode_terms(w.terms("T-R", quantity=1_001))),
        ("deadline", SELLER_KEY, dvp_app.encode_terms(w.terms("T-R", deadline_ns=w.now))),
        ("canonical", SELLER_KEY, non_canonical),
        ("do not decode", SELLER_KEY, b"\xff\xff"),
        ("must be", SELLER_KEY, dvp_app.encode_terms(w.terms("T-R", st_quantity=0))),
    ]


def test_lock_refuses_a_bad_channel_id(w: World) -> None:
    terms = dvp_app.encode_terms(w.terms("T-C"))
    for channel in (b"chan/nel-0", b"c", b"channel-" + b"9" * 24, b"channel-\xff", b"channel-7"):
        before = w.roots()
        receipt = w.call(SELLER_KEY, DVP_ESCROW_ADDRESS, "lock", terms, channel)
        assert not receipt.success and "channel" in receipt.reason, channel
        assert w.roots() == before
    assert w.status("T-C") == "none"


def test_every_lock_refusal_changes_nothing(w: World) -> None:
    for fragment, key, arg in _refusals(w):
        before = w.roots()
        receipt = w.call(key, DVP_ESCROW_ADDRESS, "lock", arg, w.chan_b.encode())
        assert not receipt.success
        assert fragment in receipt.reason, (fragment, receipt.reason)
        assert w.roots() == before, fragment
        assert w.status("T-R") == "none"
        assert not receipt.logs


def test_a_trade_id_locks_once_even_after_it_ended(w: World) -> None:
    terms = w.terms("T-2")
    assert w.lock(terms).success
    before = w.roots()
    again = w.lock(w.terms("T-2", quantity=5))
    assert not again.success and "already used" in again.reason
    assert w.roots() == before
    packet = w.send(dvp_app.encode_packet_data(terms), w.now + 300 * SECOND)
    assert w.recv(packet) == dvp_app.SUCCESS_ACK
    third = w.lock(terms)
    assert not third.success and "already used" in third.reason


def test_lock_and_reclaim_reject_malformed_calls(w: World) -> None:
    for method, args in (("lock", ()), ("lock", (b"a", b"b")), ("lock", (dvp_app.encode_terms(w.terms("T-M")),)), ("reclaim", ()), ("reclaim", (b"bad id!",)),
                         ("reclaim", (b"",)), ("reclaim", (b"x" * 65,)), ("steal", ())):
        before = w.roots()
        receipt = w.call(SELLER_KEY, DVP_ESCROW_ADDRESS, method, *args)
        assert not receipt.success, (method, args)
        assert w.roots() == before


def test_the_escrow_cannot_be_whitelisted_nor_paid_directly(w: World) -> None:
    before = w.roots()
    receipt = w.call(SIGNER_KEY, SECURITY_TOKEN_ADDRESS, "whitelist", DVP_ESCROW_ADDRESS, b"\x01")
    assert not receipt.success and "escrow" in receipt.reason
    paid = w.call(SELLER_KEY, SECURITY_TOKEN_ADDRESS, "transfer", DVP_ESCROW_ADDRESS, encode_amount(1))
    assert not paid.success and "recipient is not whitelisted" in paid.reason
    assert w.roots() == before


# --- receive -------------------------------------------------------------------------------


def test_matching_packet_delivers_to_the_buyer(w: World) -> None:
    terms = w.terms("T-3")
    assert w.lock(terms).success
    packet = w.send(dvp_app.encode_packet_data(terms), terms.deadline_ns)
    assert w.recv(packet) == dvp_app.SUCCESS_ACK
    assert (w.balance(SELLER), w.balance(BUYER), w.balance(DVP_ESCROW_ADDRESS)) == (900, 110, 0)
    assert w.status("T-3") == "delivered"
    (delivered,) = w.b.events.of_type("dvp_delivered")
    assert dict(delivered.attributes) == {
        "trade_id": b"T-3", "buyer": BUYER, "quantity": encode_amount(100),
        "terms_hash": dvp_app.terms_hash(terms), "port": b"dvp", "channel": w.chan_b.encode(),
        "sequence": encode_amount(packet.sequence),
    }


def test_delivery_proven_through_the_corda_light_client() -> None:
    w = World("corda-evm")  # the packet is proven by B's 11-corda client of a Corda chain
    terms = w.terms("T-13")
    assert w.lock(terms, channel=w.chan_b).success
    mismatched = dvp_pb2.Terms()
    mismatched.CopyFrom(terms)
    mismatched.sc_amount += 1
    before = w.roots()
    assert w.recv(w.send(dvp_app.encode_packet_data(mismatched), terms.deadline_ns)) == dvp_app.error_ack(REASON_TERMS)
    assert w.roots() == before
    assert w.recv(w.send(dvp_app.encode_packet_data(terms), terms.deadline_ns)) == dvp_app.SUCCESS_ACK
    assert (w.balance(BUYER), w.status("T-13")) == (110, "delivered")
    w.check_conservation()


def test_replayed_packet_does_nothing(w: World) -> None:
    terms = w.terms("T-4")
    assert w.lock(terms).success
    packet = w.send(dvp_app.encode_packet_data(terms), terms.deadline_ns)
    assert w.recv(packet) == dvp_app.SUCCESS_ACK
    before = w.roots()
    w.b.tx(w.pair.recv_msg(packet, w.b))  # same sequence again, with a fresh valid proof
    assert w.roots() == before
    assert len(w.b.events.of_type("dvp_delivered")) == 1
    assert w.b.events.of_type("noop")
    assert w.balance(BUYER) == 110


def test_a_later_failure_in_the_same_tx_undoes_the_delivery(w: World) -> None:
    terms = w.terms("T-12")
    assert w.lock(terms).success
    packet = w.send(dvp_app.encode_packet_data(terms), terms.deadline_ns)
    before = w.roots()
    failing = chpb.MsgChannelCloseInit(port_id=dvp_app.PORT_ID, channel_id=w.chan_b)
    with pytest.raises(TxFailed):
        w.b.tx(w.pair.recv_msg(packet, w.b), failing)
    assert w.roots() == before
    assert w.status("T-12") == "locked"
    assert w.b.store.get(paths.packet_receipt("dvp", w.chan_b, packet.sequence)) is None
    assert w.recv(packet) == dvp_app.SUCCESS_ACK


def _error_case(w: World, case: str) -> tuple[str, chpb.Packet]:
    """Set up one error-ack case on chain B; returns the expected reason and the packet."""
    terms = w.terms(f"E-{case}")
    data = dvp_app.encode_packet_data(terms)
    timeout = terms.deadline_ns
    if case == "unknown":
        return REASON_UNKNOWN_TRADE, w.send(data, timeout)
    if case == "bad-data":
        assert w.lock(terms).success
        return REASON_BAD_DATA, w.send(b"not a dvp packet", timeout)
    if case == "other-channel":
        _, other_b = w.pair.open_channel(dvp_app.PORT_ID, version=dvp_app.VERSION)
        assert w.lock(terms, channel=other_b).success
        return REASON_CHANNEL, w.send(data, timeout)
    assert w.lock(terms).success
    if case == "mismatch":
        other = dvp_pb2.Terms()
        other.CopyFrom(terms)
        other.sc_amount = 1
        return REASON_TERMS, w.send(dvp_app.encode_packet_data(other), timeout)
    if case == "wrong-token":
        other = dvp_pb2.Terms()
        other.CopyFrom(terms)
        other.security_token = b"\x07" * 20
        return REASON_WRONG_TOKEN, w.send(dvp_app.encode_packet_data(other), timeout)
    if case == "late-timeout":
        return REASON_TIMEOUT, w.send(data, terms.deadline_ns + 1)
    if case == "no-timestamp":
        return REASON_TIMEOUT, w.a.send(dvp_app.PORT_ID, w.chan_a, data, timeout_height=Height(1, 10_000))
    if case == "buyer-delisted":
        w.issuer(SECURITY_TOKEN_ADDRESS, "whitelist", BUYER, b"")
        return REASON_BUYER, w.send(data, timeout)
    if case == "delivered":
        assert w.recv(w.send(data, timeout)) == dvp_app.SUCCESS_ACK
        return REASON_DELIVERED, w.send(data, timeout)
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["unknown", "bad-data", "mismatch", "wrong-token", "late-timeout",
                                  "no-timestamp", "other-channel", "buyer-delisted", "delivered"])
def test_error_ack_leaves_escrow_and_balances_untouched(w: World, case: str) -> None:
    reason, packet = _error_case(w, case)
    status = w.status(f"E-{case}")
    balances = [w.balance(h) for h in HOLDERS]
    before = w.roots()
    assert w.recv(packet) == dvp_app.error_ack(reason)
    assert not dvp_app.ack_succeeded(w.ack(packet))
    assert w.roots() == before
    assert [w.balance(h) for h in HOLDERS] == balances
    assert w.status(f"E-{case}") == status
    assert w.b.store.get(paths.packet_receipt("dvp", w.chan_b, packet.sequence)) is not None
    # The error ack is final for that packet: relaying it again changes nothing either.
    w.b.tx(w.pair.recv_msg(packet, w.b))
    assert w.roots() == before


def test_a_lock_naming_its_channel_ignores_packets_from_any_other(w: World) -> None:
    other_a, other_b = w.pair.open_channel(dvp_app.PORT_ID, version=dvp_app.VERSION)
    assert other_b != w.chan_b
    terms = w.terms("T-11")
    receipt = w.lock(terms, channel=w.chan_b)
    assert receipt.success, receipt.reason
    (locked,) = [x for x in receipt.logs if x.name == "dvp_locked"]
    assert dict(locked.attributes)["channel"] == w.chan_b.encode()
    data = dvp_app.encode_packet_data(terms)
    stray = w.a.send(dvp_app.PORT_ID, other_a, data, timeout_ns=terms.deadline_ns)
    before = w.roots()
    assert w.recv(stray) == dvp_app.error_ack(REASON_CHANNEL)
    assert w.roots() == before
    assert w.recv(w.send(data, terms.deadline_ns)) == dvp_app.SUCCESS_ACK
    assert w.status("T-11") == "delivered"


_UINT_FIELDS = ("st_quantity", "sc_amount", "deadline_ns")
_BYTES_FIELDS = {"security_token": 20, "seller_evm": 20, "buyer_evm": 20,
                 "cash_issuer": 32, "seller_corda": 32, "buyer_corda": 32}


def _mutation(field: str) -> st.SearchStrategy[object]:
    if field == "trade_id":
        return st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
    if field in _UINT_FIELDS:
        return st.integers(0, 2**64 - 1)
    return st.binary(min_size=_BYTES_FIELDS[field], max_size=_BYTES_FIELDS[field])


def test_any_other_terms_get_an_error_ack_and_change_nothing() -> None:
    w = World()
    terms = w.terms("H-1", deadline_ns=w.now + 3600 * SECOND)
    assert w.lock(terms).success
    fields = ("trade_id", *_UINT_FIELDS, *_BYTES_FIELDS)
    checked: list[str] = []

    @settings(max_examples=25, deadline=None, database=None, derandomize=True)
    @given(st.sampled_from(fields).flatmap(lambda f: st.tuples(st.just(f), _mutation(f))))
    def check(change: tuple[str, object]) -> None:
        field, value = change
        other = dvp_pb2.Terms()
        other.CopyFrom(terms)
        setattr(other, field, value)
        if other == terms:
            return
        try:
            dvp_app.validate_terms(other)
            want = (REASON_WRONG_TOKEN if other.security_token != terms.security_token
                    else REASON_UNKNOWN_TRADE if other.trade_id != terms.trade_id else REASON_TERMS)
        except InvalidMessage:
            want = REASON_BAD_DATA
        raw = dvp_pb2.DvpPacketData(terms=other).SerializeToString(deterministic=True)
        before = w.roots()
        assert w.recv(w.send(raw, terms.deadline_ns)) == dvp_app.error_ack(want)
        assert w.roots() == before
        checked.append(want)

    check()
    assert len(checked) >= 20 and len(set(checked)) >= 3, checked
    assert w.status("H-1") == "locked"
    assert w.recv(w.send(dvp_app.encode_packet_data(terms), terms.deadline_ns)) == dvp_app.SUCCESS_ACK
    w.check_conservation()


def test_error_ack_for_a_reclaimed_trade(w: World) -> None:
    terms = w.terms("T-5", deadline_ns=w.now + 20 * SECOND)
    assert w.lock(terms).success
    # A packet whose timeout lies past the deadline can still arrive after the reclaim.
    packet = w.send(dvp_app.encode_packet_data(terms), terms.deadline_ns + 600 * SECOND)
    w.b.idle(5)
    assert w.reclaim("T-5").success
    before = w.roots()
    assert w.recv(packet) == dvp_app.error_ack(REASON_RECLAIMED)
    assert w.roots() == before


def test_a_packet_past_the_deadline_is_rejected_by_the_core(w: World) -> None:
    terms = w.terms("T-6", deadline_ns=w.now + 20 * SECOND)
    assert w.lock(terms).success
    packet = w.send(dvp_app.encode_packet_data(terms), terms.deadline_ns)
    w.b.idle(5)
    before = w.roots()
    with pytest.raises(TxFailed, match="timed out"):
        w.recv(packet)
    assert w.roots() == before
    assert w.status("T-6") == "locked"
    assert w.reclaim("T-6").success
    assert w.status("T-6") == "reclaimed"


# --- reclaim -------------------------------------------------------------------------------


def test_reclaim_waits_for_the_deadline_and_returns_to_the_seller(w: World) -> None:
    terms = w.terms("T-7", deadline_ns=w.now + 20 * SECOND)
    assert w.lock(terms).success
    before = w.roots()
    early = w.reclaim("T-7")
    assert not early.success and "before the deadline" in early.reason
    assert w.roots() == before
    while w.now + 3 * SECOND < terms.deadline_ns:  # B's next block is its reclaim
        w.b.idle()
    receipt = w.reclaim("T-7")  # anyone may call it; the ST still goes to the seller
    assert w.now >= terms.deadline_ns
    assert receipt.success, receipt.reason
    assert (w.balance(SELLER), w.balance(CAROL), w.balance(DVP_ESCROW_ADDRESS)) == (1_000, 0, 0)
    assert w.status("T-7") == "reclaimed"
    (log,) = [x for x in receipt.logs if x.name == "dvp_reclaimed"]
    assert dict(log.attributes) == {"trade_id": b"T-7", "seller": SELLER, "quantity": encode_amount(100)}
    again = w.reclaim("T-7", SELLER_KEY)
    assert not again.success and "reclaimed" in again.reason


def test_reclaim_refused_after_delivery_and_for_unknown_trades(w: World) -> None:
    terms = w.terms("T-8", deadline_ns=w.now + 20 * SECOND)
    assert w.lock(terms).success
    assert w.recv(w.send(dvp_app.encode_packet_data(terms), terms.deadline_ns)) == dvp_app.SUCCESS_ACK
    w.b.idle(5)
    before = w.roots()
    for trade_id in ("T-8", "never-locked"):
        receipt = w.reclaim(trade_id, SELLER_KEY)
        assert not receipt.success and "not locked" in receipt.reason
    assert w.roots() == before
    assert w.balance(BUYER) == 110


def test_reclaim_waits_while_the_seller_is_off_the_whitelist(w: World) -> None:
    terms = w.terms("T-9", deadline_ns=w.now + 10 * SECOND)
    assert w.lock(terms).success
    w.issuer(SECURITY_TOKEN_ADDRESS, "whitelist", SELLER, b"")
    w.b.idle(4)
    refused = w.reclaim("T-9")
    assert not refused.success and "not whitelisted" in refused.reason
    assert w.status("T-9") == "locked"
    w.issuer(SECURITY_TOKEN_ADDRESS, "whitelist", SELLER, b"\x01")
    assert w.reclaim("T-9").success


# --- channel rules and provability ---------------------------------------------------------


def test_dvp_channels_are_unordered_with_the_dvp_version() -> None:
    pair = make_pair("evm-evm")
    pair.open_connection()
    for order, version in ((chpb.ORDER_ORDERED, dvp_app.VERSION), (chpb.ORDER_UNORDERED, "ics20-1")):
        with pytest.raises(TxFailed) as info:
            pair.a.tx(pair.chan_init_msg(pair.a, dvp_app.PORT_ID, dvp_app.PORT_ID, order, version))
        assert isinstance(info.value.cause, AppError)
    with pytest.raises(TxFailed):
        pair.a.tx(pair.chan_init_msg(pair.a, dvp_app.PORT_ID, "transfer", chpb.ORDER_UNORDERED, dvp_app.VERSION))
    ca, cb = pair.open_channel(dvp_app.PORT_ID, version=dvp_app.VERSION)
    assert pair.channel_end(pair.b, dvp_app.PORT_ID, cb).version == dvp_app.VERSION
    with pytest.raises(TxFailed) as closing:
        pair.a.tx(chpb.MsgChannelCloseInit(port_id=dvp_app.PORT_ID, channel_id=ca))
    assert isinstance(closing.value.cause, AppError)


def test_escrow_status_is_provable_against_the_state_root(w: World) -> None:
    assert w.lock(w.terms("T-10")).success
    b = w.b
    assert isinstance(b, EvmHost)
    h = b.height.revision_height
    slot = escrow_slot("T-10", FIELD_STATUS)
    proof = b.chain.prove(DVP_ESCROW_ADDRESS, [slot], h)
    account = verify_account_proof(b.chain.header(h).state_root, DVP_ESCROW_ADDRESS, proof.account_proof)
    assert account is not None
    assert verify_storage_proof(account.storage_root, slot, proof.storage_proofs[slot]) == bytes([LOCKED])
    absent = escrow_slot("T-none", FIELD_STATUS)
    none = b.chain.prove(DVP_ESCROW_ADDRESS, [absent], h)
    assert verify_storage_proof(account.storage_root, absent, none.storage_proofs[absent]) is None


# --- the node's query ----------------------------------------------------------------------


def test_node_answers_dvp_escrow_and_names_the_escrow(tmp_path: Path) -> None:
    t0 = 1_800_000_000 * SECOND
    home = tmp_path / "evm"
    node_main.init_home(home, "evm", "evm-1", 1, genesis_time_ns=t0)
    db = NodeDatabase(home / "data" / "node.db")
    app = KIND.open_app(load_node_config(home), db)
    assert isinstance(app, EvmNodeApp)
    names = {a.name: a for a in app.genesis.accounts}
    alice, bob, carol = names["alice"], names["bob"], names["carol"]
    assert alice.st_whitelisted and bob.st_whitelisted and not carol.st_whitelisted
    assert alice.st_balance > 0 and bob.st_balance > 0
    info = app.query_app("chain_info", {}, 0)
    assert info["dvp_escrow"] == "0x" + DVP_ESCROW_ADDRESS.hex()
    alice_key = bytes.fromhex((home / "keys" / "alice.key").read_text().strip())
    terms = dvp_pb2.Terms(trade_id="N-1", security_token=SECURITY_TOKEN_ADDRESS, st_quantity=7,
                          cash_issuer=b"\x11" * 32, sc_amount=70, seller_evm=alice.address,
                          buyer_evm=bob.address, seller_corda=b"\x22" * 32, buyer_corda=b"\x33" * 32,
                          deadline_ns=t0 + 3600 * SECOND)
    # A fresh node has no dvp channel, and a lock must name an open one: refused, nothing held.
    tx = make_tx(alice_key, app.genesis.evm_chain_id, 0,
                 [Message(DVP_ESCROW_ADDRESS, "lock", (dvp_app.encode_terms(terms), b"channel-0"))])
    block = app.produce_block([tx.encode()], t0 + SECOND)
    (result,) = block.results
    assert not result.ok and "not an open channel" in result.reason
    app.discard_block(block)
    before = app.query_app("dvp_escrow", {"trade_id": "N-1"}, 0)
    assert before["status"] == "none" and before["quantity"] == 0
    held = app.query_app("security_token", {"holder": "0x" + DVP_ESCROW_ADDRESS.hex()}, 0)
    assert held["balance"] == 0 and not held["whitelisted"]
    for bad in ({}, {"trade_id": ""}, {"trade_id": "bad id"}, {"trade_id": 5}):
        with pytest.raises(QueryError):
            app.query_app("dvp_escrow", bad, 0)
    db.close()


def test_genesis_refuses_an_allocation_to_the_escrow() -> None:
    genesis = EvmGenesis(
        chain_id="evm-x", evm_chain_id=7, revision_number=0, genesis_time_ns=1_800_000_000 * SECOND,
        validators=(SELLER,), token_issuer=BUYER,
        accounts=(Allocation("escrow", DVP_ESCROW_ADDRESS, 0, True, 5, {}),),
    )
    with pytest.raises(GenesisError, match="escrow"):
        build_genesis_chain(genesis)
