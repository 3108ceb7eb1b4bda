"""ICS-02 client requirements."""

from __future__ import annotations

from collections.abc import Callable

from chains.ibc import paths
from chains.ibc.errors import ClientFailure, IdentifierExists, InvalidIdentifier, NotFound, TxFailed
from chains.ibc.store import encode_sequence
from kakehashi.ibc.v1 import client_pb2
from lightclients.interface import Height
from tests.support import rootclient
from tests.support.host import SECOND
from tests.support.pair import Pair


def test_create_client_rejects_an_existing_id(pair: Pair, rejected: Callable[..., TxFailed]) -> None:
    a = pair.a
    a.store.set(paths.client_type_key("testroot-0"), b"testroot")
    a.idle()
    rejected(a, pair.create_client_msg(a), IdentifierExists, "testroot-0")


def test_create_client_rejects_invalid_parameters(pair: Pair, rejected: Callable[..., TxFailed]) -> None:
    a, b = pair.a, pair.b
    good = pair.create_client_msg(a)
    rejected(a, client_pb2.MsgCreateClient(client_type="nosuch", client_state=good.client_state,
                                           consensus_state=good.consensus_state), ClientFailure, "not registered")
    rejected(a, client_pb2.MsgCreateClient(client_type="Bad/Type", client_state=good.client_state,
                                           consensus_state=good.consensus_state), InvalidIdentifier)
    rejected(a, client_pb2.MsgCreateClient(client_type="testroot", client_state=b"{not json",
                                           consensus_state=good.consensus_state), ClientFailure)
    zero_period = rootclient.client_state(b.chain_id, b.height, 0)
    rejected(a, client_pb2.MsgCreateClient(client_type="testroot", client_state=zero_period,
                                           consensus_state=good.consensus_state), ClientFailure)
    assert a.store.get(paths.NEXT_CLIENT_SEQUENCE) is None


def test_duplicate_header_is_a_noop(pair: Pair) -> None:
    pair.create_clients()
    pair.b.idle()
    msg, _ = pair.update_msg(pair.a)
    pair.a.tx(msg)
    root = pair.a.root()
    pair.a.tx(msg)
    assert pair.a.root() == root
    assert pair.a.events.of_type("noop")[-1].text("reason") == "duplicate header"


def test_latest_height_never_decreases(pair: Pair) -> None:
    pair.create_clients()
    a, b = pair.a, pair.b
    b.idle()
    older = b.height
    b.idle()
    newer = b.height
    cid = pair.client["chain-a"]
    a.tx(client_pb2.MsgUpdateClient(client_id=cid, client_message=b.header(newer)))
    a.tx(client_pb2.MsgUpdateClient(client_id=cid, client_message=b.header(older)))
    module = rootclient.RootClient()
    from chains.ibc.store import ClientStoreView

    view = ClientStoreView(a.store, paths.client_prefix(cid))
    assert module.latest_height(view) == newer
    assert a.store.get(paths.consensus_state(cid, older)) is not None


def _freeze(pair: Pair) -> str:
    a, b = pair.a, pair.b
    cid = pair.client["chain-a"]
    pair.update(a)
    h = b.height
    forged = rootclient.header(h, b.blocks[h].time_ns, b"\x66" * 32)
    a.tx(client_pb2.MsgSubmitMisbehaviour(client_id=cid, misbehaviour=forged))
    assert a.events.of_type("client_misbehaviour")
    return cid


def test_frozen_client_refuses_everything(pair: Pair, rejected: Callable[..., TxFailed]) -> None:
    ca, cb = pair.open_channel()
    cid = _freeze(pair)
    a, b = pair.a, pair.b
    b.idle()
    rejected(a, client_pb2.MsgUpdateClient(client_id=cid, client_message=b.header()), ClientFailure, "Frozen")
    rejected(a, client_pb2.MsgSubmitMisbehaviour(client_id=cid, misbehaviour=b.header()), ClientFailure, "Frozen")
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


def test_expired_client_refuses_everything(pair: Pair, rejected: Callable[..., TxFailed]) -> None:
    _, cb = pair.open_channel()
    a, b = pair.a, pair.b
    cid = pair.client["chain-a"]
    pk = b.send("mock", cb, b"x", timeout_ns=b.now_ns + 10 * 3600 * SECOND)
    msg = pair.recv_msg(pk, a)
    a.idle(advance_ns=3600 * SECOND)  # trusting period of the test client is one hour
    rejected(a, msg, ClientFailure, "Expired")
    rejected(a, client_pb2.MsgUpdateClient(client_id=cid, client_message=b.header()), ClientFailure, "Expired")


def test_update_of_an_unknown_client_is_a_typed_error(pair: Pair, rejected: Callable[..., TxFailed]) -> None:
    pair.create_clients()
    rejected(pair.a, client_pb2.MsgUpdateClient(client_id="testroot-7", client_message=b"{}"), NotFound)
    rejected(pair.a, client_pb2.MsgUpdateClient(client_id="x", client_message=b"{}"), InvalidIdentifier)
    rejected(pair.a, client_pb2.MsgUpdateClient(client_id=pair.client["chain-a"], client_message=b"garbage"),
             ClientFailure)


def test_counter_values_are_protobuf(pair: Pair) -> None:
    pair.create_clients()
    assert pair.a.store.get(paths.NEXT_CLIENT_SEQUENCE) == encode_sequence(1)
    assert Height(1, 1) <= pair.a.height


def test_conflicting_header_in_an_update_freezes_the_client(pair: Pair, rejected: Callable[..., TxFailed]) -> None:
    pair.create_clients()
    a, b = pair.a, pair.b
    cid = pair.client["chain-a"]
    h = pair.update(a)
    a.tx(client_pb2.MsgUpdateClient(client_id=cid, client_message=rootclient.header(h, b.blocks[h].time_ns, b"\x07" * 32)))
    assert a.events.of_type("client_misbehaviour")[-1].text("client_id") == cid
    b.idle()
    rejected(a, client_pb2.MsgUpdateClient(client_id=cid, client_message=b.header()), ClientFailure, "Frozen")
