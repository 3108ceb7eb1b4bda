"""ICS-03 connection handshake requirements."""

from __future__ import annotations

from collections.abc import Callable

from chains.ibc.context import to_proto
from chains.ibc.errors import InvalidState, NotFound, ProofFailed, TxFailed, VersionMismatch
from chains.ibc.host import paths
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import connection_pb2 as cpb
from lightclients.interface import Height
from tests.support.basehost import ChainHost
from tests.support.pair import HostPair


def _end(host: ChainHost, conn: str) -> cpb.ConnectionEnd:
    end = cpb.ConnectionEnd()
    end.ParseFromString(host.store.get(paths.connection(conn)) or b"")
    return end


def test_connection_handshake_opens_both_ends(pair: HostPair) -> None:
    ca, cb = pair.open_connection()
    ea, eb = _end(pair.a, ca), _end(pair.b, cb)
    assert ea.state == eb.state == cpb.CONNECTION_STATE_OPEN
    assert ea.counterparty.connection_id == cb and eb.counterparty.connection_id == ca
    assert ea.versions == eb.versions and len(ea.versions) == 1
    kinds = [e.type for _, e in pair.a.events.all()] + [e.type for _, e in pair.b.events.all()]
    for kind in ("connection_open_init", "connection_open_try", "connection_open_ack", "connection_open_confirm"):
        assert kind in kinds


def test_connection_messages_valid_only_in_their_state(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    pair.create_clients()
    a, b = pair.a, pair.b
    (ca,) = a.tx(pair.conn_init_msg(a))
    # Confirm needs TRYOPEN: an INIT end refuses it.
    rejected(a, pair.conn_confirm_msg(a, str(ca), str(ca)), InvalidState, "TRYOPEN")
    (cb,) = b.tx(pair.conn_try_msg(b, str(ca)))
    # Ack needs INIT: a TRYOPEN end refuses it.
    rejected(b, pair.conn_ack_msg(b, str(cb), str(ca)), InvalidState, "INIT")
    a.tx(pair.conn_ack_msg(a, str(ca), str(cb)))
    # Once OPEN, neither Ack nor Confirm apply again.
    rejected(a, pair.conn_ack_msg(a, str(ca), str(cb)), InvalidState)
    b.tx(pair.conn_confirm_msg(b, str(cb), str(ca)))
    rejected(b, pair.conn_confirm_msg(b, str(cb), str(ca)), InvalidState)
    rejected(a, cpb.MsgConnectionOpenConfirm(connection_id="connection-9", proof_ack=b"x",
                                             proof_height=to_proto(b.height)), NotFound)


def test_connection_try_needs_a_correct_proof(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    pair.create_clients()
    a, b = pair.a, pair.b
    (ca,) = a.tx(pair.conn_init_msg(a))
    msg = pair.conn_try_msg(b, str(ca))
    # the proof of a different path (the client state) does not prove the connection end
    wrong = cpb.MsgConnectionOpenTry()
    wrong.CopyFrom(msg)
    wrong.proof_init = a.prove(paths.NEXT_CONNECTION_SEQUENCE, _proof_height(msg))
    rejected(b, wrong, ProofFailed, "connections/")
    # a claimed delay period the counterparty did not store changes the expected value
    lying = cpb.MsgConnectionOpenTry()
    lying.CopyFrom(msg)
    lying.delay_period = 10
    rejected(b, lying, ProofFailed)
    # garbage proof bytes
    garbage = cpb.MsgConnectionOpenTry()
    garbage.CopyFrom(msg)
    garbage.proof_init = b"\x00\x01garbage"
    rejected(b, garbage, ProofFailed)
    b.tx(msg)


def _proof_height(msg: cpb.MsgConnectionOpenTry) -> Height:
    return Height(msg.proof_height.revision_number, msg.proof_height.revision_height)


def test_connection_version_negotiation(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    pair.create_clients()
    a, b = pair.a, pair.b
    rejected(a, pair.conn_init_msg(a, cpb.Version(identifier="2", features=["ORDER_ORDERED"])),
             VersionMismatch, "not supported")
    rejected(a, pair.conn_init_msg(a, cpb.Version(identifier="1", features=["ORDER_DAG"])), VersionMismatch)
    only_unordered = cpb.Version(identifier="1", features=["ORDER_UNORDERED"])
    (ca,) = a.tx(pair.conn_init_msg(a, only_unordered))
    (cb,) = b.tx(pair.conn_try_msg(b, str(ca)))
    assert list(_end(b, str(cb)).versions) == [only_unordered]
    # an Ack carrying a version that was not offered is refused
    ack = pair.conn_ack_msg(a, str(ca), str(cb))
    bad = cpb.MsgConnectionOpenAck()
    bad.CopyFrom(ack)
    bad.version.CopyFrom(cpb.Version(identifier="1", features=["ORDER_ORDERED"]))
    rejected(a, bad, VersionMismatch, "not offered")
    a.tx(ack)
    # a Try offering nothing we support is refused before any proof is checked
    (ca2,) = a.tx(pair.conn_init_msg(a))
    try_msg = pair.conn_try_msg(b, str(ca2))
    del try_msg.counterparty_versions[:]
    try_msg.counterparty_versions.append(cpb.Version(identifier="9", features=["ORDER_ORDERED"]))
    rejected(b, try_msg, VersionMismatch, "no compatible")


def test_channel_ordering_must_be_allowed_by_the_connection_version(
    pair: HostPair, rejected: Callable[..., TxFailed]
) -> None:
    pair.create_clients()
    a, b = pair.a, pair.b
    only_unordered = cpb.Version(identifier="1", features=["ORDER_UNORDERED"])
    (ca,) = a.tx(pair.conn_init_msg(a, only_unordered))
    (cb,) = b.tx(pair.conn_try_msg(b, str(ca)))
    a.tx(pair.conn_ack_msg(a, str(ca), str(cb)))
    b.tx(pair.conn_confirm_msg(b, str(cb), str(ca)))
    pair.connection = {"chain-a": str(ca), "chain-b": str(cb)}
    rejected(a, pair.chan_init_msg(a, "mock", "mock", chpb.ORDER_ORDERED, ""), VersionMismatch, "ORDER_ORDERED")
    (chan,) = a.tx(pair.chan_init_msg(a, "mock", "mock", chpb.ORDER_UNORDERED, ""))
    assert chan == "channel-0"
