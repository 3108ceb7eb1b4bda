"""ICS-02 client requirements."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chains.ibc.errors import ClientFailure, IdentifierExists, InvalidIdentifier, NotFound, TxFailed
from chains.ibc.host import paths
from chains.ibc.host.store import encode_sequence
from kakehashi.ibc.v1 import client_pb2
from lightclients.interface import Height
from tests.support.host import SECOND
from tests.support.pair import HostPair


def test_create_client_rejects_an_existing_id(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    a = pair.a
    client_type = pair.client_type_on(a)
    a.store.set(paths.client_type_key(f"{client_type}-0"), client_type.encode())
    a.idle()
    rejected(a, pair.create_client_msg(a), IdentifierExists, f"{client_type}-0")


def test_create_client_rejects_invalid_parameters(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    a, b = pair.a, pair.b
    good = pair.create_client_msg(a)
    client_type = good.client_type
    rejected(a, client_pb2.MsgCreateClient(client_type="nosuch", client_state=good.client_state,
                                           consensus_state=good.consensus_state), ClientFailure, "not registered")
    rejected(a, client_pb2.MsgCreateClient(client_type="Bad/Type", client_state=good.client_state,
                                           consensus_state=good.consensus_state), InvalidIdentifier)
    rejected(a, client_pb2.MsgCreateClient(client_type=client_type, client_state=b"\xff{not a client state",
                                           consensus_state=good.consensus_state), ClientFailure)
    rejected(a, client_pb2.MsgCreateClient(client_type=client_type, client_state=good.client_state,
                                           consensus_state=b"\xff{not a consensus state"), ClientFailure)
    zero_period = b.client_state(0, pair.trusting_period_ns)
    rejected(a, client_pb2.MsgCreateClient(client_type=client_type, client_state=zero_period,
                                           consensus_state=good.consensus_state), ClientFailure)
    assert a.store.get(paths.NEXT_CLIENT_SEQUENCE) is None
    a.tx(good)  # the same parameters, made valid, are accepted


def test_duplicate_header_is_a_noop(pair: HostPair) -> None:
    pair.create_clients()
    pair.b.idle()
    msg, _ = pair.update_msg(pair.a)
    pair.a.tx(msg)
    root = pair.a.root()
    pair.a.tx(msg)
    assert pair.a.root() == root
    assert pair.a.events.of_type("noop")[-1].text("reason") == "duplicate header"


def test_latest_height_never_decreases(pair: HostPair) -> None:
    pair.create_clients()
    a, b = pair.a, pair.b
    b.idle()
    older = b.height
    b.idle()
    newer = b.height
    cid = pair.client["chain-a"]
    a.tx(client_pb2.MsgUpdateClient(client_id=cid, client_message=pair.header_for(a, newer)))
    pair.trust(a, newer)
    a.tx(client_pb2.MsgUpdateClient(client_id=cid, client_message=pair.header_for(a, older)))
    module = a.handler.clients[pair.client_type_on(a)]
    from chains.ibc.host.store import ClientStoreView

    view = ClientStoreView(a.store, paths.client_prefix(cid))
    assert module.latest_height(view) == newer
    assert a.store.get(paths.consensus_state(cid, older)) is not None


def _freeze(pair: HostPair) -> str:
    a, b = pair.a, pair.b
    cid = pair.client["chain-a"]
    h = pair.update(a)
    # Real evidence: the counterparty's own validators/notaries signed a second, conflicting
    # header at a height the client already trusts.
    evidence = b.misbehaviour(h, pair.trusted_for(a, h))
    root = a.root()
    with pytest.raises(TxFailed):  # the honest header alone proves nothing
        a.tx(client_pb2.MsgSubmitMisbehaviour(client_id=cid, misbehaviour=pair.header_for(a, h)))
    assert a.root() == root
    a.tx(client_pb2.MsgSubmitMisbehaviour(client_id=cid, misbehaviour=evidence))
    assert a.events.of_type("client_misbehaviour")
    return cid


def test_frozen_client_refuses_everything(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    ca, cb = pair.open_channel()
    cid = _freeze(pair)
    a, b = pair.a, pair.b
    b.idle()
    rejected(a, client_pb2.MsgUpdateClient(client_id=cid, client_message=pair.header_for(a)), ClientFailure, "Frozen")
    rejected(a, client_pb2.MsgSubmitMisbehaviour(client_id=cid, misbehaviour=pair.header_for(a)), ClientFailure,
             "Frozen")
    # proofs: a packet from B cannot be received on A
    pk = b.send("mock", cb, b"x", timeout_ns=b.now_ns + 3600 * SECOND)
    msg = pair.recv_msg(pk, a, update=False)
    rejected(a, msg, ClientFailure, "Frozen")
    # sends over a frozen client are refused too
    root = a.root()
    try:
        a.send("mock", ca, b"y", timeout_ns=a.now_ns + 3600 * SECOND)
        raise AssertionError("send over a frozen client succeeded")
    except ClientFailure as exc:
        assert "Frozen" in str(exc)
    assert a.root() == root


def test_expired_client_refuses_everything(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    _, cb = pair.open_channel()
    a, b = pair.a, pair.b
    cid = pair.client["chain-a"]
    pk = b.send("mock", cb, b"x", timeout_ns=b.now_ns + 10 * 3600 * SECOND)
    msg = pair.recv_msg(pk, a)
    a.idle(advance_ns=3600 * SECOND)  # trusting period of the test client is one hour
    rejected(a, msg, ClientFailure, "Expired")
    rejected(a, client_pb2.MsgUpdateClient(client_id=cid, client_message=pair.header_for(a)), ClientFailure, "Expired")


def test_update_of_an_unknown_client_is_a_typed_error(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    pair.create_clients()
    rejected(pair.a, client_pb2.MsgUpdateClient(client_id="testroot-7", client_message=b"{}"), NotFound)
    rejected(pair.a, client_pb2.MsgUpdateClient(client_id="x", client_message=b"{}"), InvalidIdentifier)
    rejected(pair.a, client_pb2.MsgUpdateClient(client_id=pair.client["chain-a"], client_message=b"garbage"),
             ClientFailure)


def test_counter_values_are_protobuf(pair: HostPair) -> None:
    pair.create_clients()
    assert pair.a.store.get(paths.NEXT_CLIENT_SEQUENCE) == encode_sequence(1)
    assert Height(1, 1) <= pair.a.height


def test_conflicting_header_in_an_update_freezes_the_client(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    pair.create_clients()
    a, b = pair.a, pair.b
    cid = pair.client["chain-a"]
    h = pair.update(a)
    a.tx(client_pb2.MsgUpdateClient(client_id=cid, client_message=b.conflicting_header(h, pair.trusted_for(a, h))))
    assert a.events.of_type("client_misbehaviour")[-1].text("client_id") == cid
    b.idle()
    rejected(a, client_pb2.MsgUpdateClient(client_id=cid, client_message=pair.header_for(a)), ClientFailure, "Frozen")
