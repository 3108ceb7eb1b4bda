"""Unit tests of the IBC core's building blocks (no second chain needed)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.ibc.apps.bank import BankError, StoreBank
from chains.ibc.errors import IdentifierExists, InvalidMessage, NoRoute, TxFailed
from chains.ibc.events import Event, EventLog
from chains.ibc.handler import IbcHandler
from chains.ibc.host import commitment, paths
from chains.ibc.host.store import ClientStoreView, MemoryStore, Overlay, get_sequence, set_sequence
from chains.ibc.routing import Router
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from lightclients.interface import Height
from tests.support import mockapp, rootclient


def test_packet_commitment_golden_vector() -> None:
    packet = chpb.Packet(
        sequence=1, source_port="transfer", source_channel="channel-0", destination_port="transfer",
        destination_channel="channel-1", data=b"hello",
        timeout_height=client_pb2.Height(revision_number=1, revision_height=100),
        timeout_timestamp=1_700_000_000_000_000_000,
    )
    # sha256(be64(timeout_ts) || be64(1) || be64(100) || sha256("hello")), computed independently
    assert commitment.packet_commitment(packet).hex() == (
        "512d19e8d8bdadc538c6e1e13e11b7019aa57be7d15c9c15871e02a51dfd1125"
    )
    # routing fields and the sequence are not part of the commitment (they are in the path)
    packet.sequence = 9
    packet.destination_channel = "channel-9"
    assert commitment.packet_commitment(packet).hex().startswith("512d19e8")
    assert commitment.ack_commitment(b"ack").hex() == (
        "64a37929fb113e18daa6263a1fb1f90c51d262552efa5a50596f5f653ba955f8"
    )
    assert commitment.RECEIPT == b"\x01"


def test_nested_overlays_flush_only_into_their_parent() -> None:
    base = MemoryStore()
    base.set(b"k", b"base")
    outer = Overlay(base)
    inner = Overlay(outer)
    inner.set(b"k", b"inner")
    inner.set(b"new", b"1")
    outer.delete(b"k")
    assert inner.get(b"k") == b"inner" and outer.get(b"k") is None and base.get(b"k") == b"base"
    inner.flush()
    assert outer.get(b"new") == b"1" and base.get(b"new") is None
    outer.flush()
    assert base.data == {b"k": b"inner", b"new": b"1"}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=3), st.one_of(st.none(), st.binary(max_size=3)))))
def test_overlay_matches_direct_writes(ops: list[tuple[bytes, bytes | None]]) -> None:
    direct, base = MemoryStore(), MemoryStore()
    overlay = Overlay(base)
    for key, value in ops:
        for store in (direct, overlay):
            if value is None:
                store.delete(key)
            else:
                store.set(key, value)
        assert overlay.get(key) == direct.get(key)
    overlay.flush()
    assert base.data == direct.data


def test_client_store_view_is_the_clients_key_space() -> None:
    store = MemoryStore()
    view = ClientStoreView(store, paths.client_prefix("testroot-0"))
    view.set("clientState", b"s")
    assert store.get(b"clients/testroot-0/clientState") == b"s"
    assert view.get("consensusStates/1-1") is None


def test_sequences_are_protobuf_values() -> None:
    store = MemoryStore()
    assert get_sequence(store, b"seq", 5) == 5
    set_sequence(store, b"seq", 300)
    assert get_sequence(store, b"seq") == 300
    store.set(b"bad", b"\xff")
    with pytest.raises(InvalidMessage):
        get_sequence(store, b"bad")


def test_event_encoding_is_deterministic_and_log_is_by_height() -> None:
    one = Event.make("send_packet", sequence="1", packet=b"\x00\x01")
    two = Event.make("send_packet", packet=b"\x00\x01", sequence="1")
    assert one == two and one.encode() == two.encode()
    assert Event.decode(one.encode()) == one
    log = EventLog()
    log.emit(Height(1, 2), one)
    log.emit(Height(1, 1), Event.make("noop", reason="x"))
    assert log.at(Height(1, 2)) == [one]
    assert [e.type for _, e in log.all()] == ["noop", "send_packet"]
    assert log.at(Height(1, 3)) == []


def test_router_binds_once_and_names_unknown_ports() -> None:
    router = Router()
    router.bind_port("mock", mockapp.MockApp())
    with pytest.raises(IdentifierExists):
        router.bind_port("mock", mockapp.MockApp())
    with pytest.raises(NoRoute, match="ghost"):
        router.route("ghost")


def test_store_bank_rules() -> None:
    bank = StoreBank(MemoryStore())
    bank.mint("alice", "stake", 10)
    bank.transfer("alice", "bob", "stake", 4)
    assert (bank.balance("alice", "stake"), bank.balance("bob", "stake"), bank.supply("stake")) == (6, 4, 10)
    bank.burn("bob", "stake", 4)
    assert bank.supply("stake") == 6
    cases: list[Callable[[], None]] = [
        lambda: bank.transfer("alice", "bob", "stake", 7), lambda: bank.burn("bob", "stake", 1),
        lambda: bank.mint("alice", "stake", 0), lambda: bank.mint("a/b", "stake", 1),
        lambda: bank.mint("alice", "bad//denom", 1), lambda: bank.mint("alice", "stake", 2**256),
    ]
    for bad in cases:
        with pytest.raises(BankError):
            bad()


def test_handler_runs_a_tx_atomically_over_a_memory_store() -> None:
    store = MemoryStore()
    log = EventLog()
    handler = IbcHandler(store, {"testroot": rootclient.RootClient()}, b"ibc", log)
    cs = rootclient.client_state("x", Height(1, 1), 10**12)
    cons = rootclient.consensus_state(1, b"\x01" * 32)
    ok = client_pb2.MsgCreateClient(client_type="testroot", client_state=cs, consensus_state=cons)
    results, events = handler.execute([ok, ok], Height(1, 1), 2)
    assert results == ["testroot-0", "testroot-1"] and len(events) == 2
    snapshot = dict(store.data)
    with pytest.raises(TxFailed) as info:
        handler.execute([ok, client_pb2.MsgCreateClient(client_type="testroot")], Height(1, 2), 3)
    assert info.value.index == 1 and store.data == snapshot
    assert log.at(Height(1, 2)) == []
    with pytest.raises(ValueError):
        IbcHandler(store, {}, b"", log)
    with pytest.raises(ValueError):
        handler.register_message(client_pb2.MsgCreateClient, lambda ctx, msg: None)
