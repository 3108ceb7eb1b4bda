"""The Corda codec adds each dvp ack/timeout's DvpLock exit, and drops what it cannot exit."""

from __future__ import annotations

from typing import Any

import pytest

from chains.corda.cash import CASH, DVP_ESCROW_OWNER
from chains.corda.dvp import DVP
from chains.corda.ibc_host import ibc_messages
from chains.corda.transaction import SignedTransaction
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.apps.transfer import SUCCESS_ACK
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from kakehashi.node.v1 import node_pb2
from relayer.codecs import CodecError, CordaCodec
from relayer.core.chain import GrpcChainHandle
from tests.support.fakewatch import ResultWatch

NOTARY = b"\x07" * 32
ISSUER = b"\x02" * 32
ADMISSION = {"txid": "ad" * 32, "index": 0}


def terms(trade_id: str) -> dvp_pb2.Terms:
    return dvp_pb2.Terms(trade_id=trade_id, security_token=b"\x01" * 20, st_quantity=5, cash_issuer=ISSUER,
                         sc_amount=50, seller_evm=b"\x03" * 20, buyer_evm=b"\x04" * 20,
                         seller_corda=b"\x05" * 32, buyer_corda=b"\x06" * 32, deadline_ns=10**19)


def packet(trade_id: str, seq: int, port: str = "dvp", data: bytes | None = None) -> chpb.Packet:
    return chpb.Packet(sequence=seq, source_port=port, source_channel="channel-0", destination_port=port,
                       destination_channel="channel-1",
                       data=dvp_app.encode_packet_data(terms(trade_id)) if data is None else data,
                       timeout_timestamp=10**18)


class FakeNode:
    """Answers ``holders`` and ``dvp_lock`` as the Corda node does; records submitted txs."""

    def __init__(self, locks: dict[str, dict[str, Any]]) -> None:
        self.locks = locks
        self.queries: list[tuple[str, dict[str, Any]]] = []
        self.submitted: list[bytes] = []

    async def query_app(self, query: str, height: int = 0, **args: Any) -> Any:
        self.queries.append((query, args))
        if query == "holders":
            return {ISSUER.hex(): {"admission": ADMISSION, "holders": ["05" * 32, "06" * 32]}}
        if query == "dvp_lock":
            return self.locks.get(args["trade_id"], {"status": "none", "lock": None, "cash": None})
        raise AssertionError(query)

    async def submit(self, tx: bytes) -> bytes:
        self.submitted.append(tx)
        return bytes(32)

    def outcome_of(self, tx_hash: bytes) -> node_pb2.TxResult:
        return node_pb2.TxResult(status=node_pb2.TX_STATUS_COMMITTED, height=3)


def lock_answer(trade_id: str, seq: int, status: str = "locked", txid: str = "ab") -> dict[str, Any]:
    t = terms(trade_id)
    lock = dvp_pb2.DvpLock(trade_id=trade_id, payer=t.buyer_corda, payee=t.seller_corda, cash_issuer=ISSUER,
                           amount=t.sc_amount, port_id="dvp", channel_id="channel-0", timeout_timestamp=10**18,
                           terms_hash=dvp_app.terms_hash(t))
    return {"trade_id": trade_id, "status": status, "lock": {"txid": txid * 32, "index": 1},
            "cash": {"txid": txid * 32, "index": 0}, "lock_state": lock.SerializeToString(deterministic=True).hex(),
            "channel_id": "channel-0", "sequence": seq, "amount": 50}


def update() -> client_pb2.MsgUpdateClient:
    return client_pb2.MsgUpdateClient(client_id="10-qbft-0", client_message=b"header")


def codec() -> CordaCodec:
    return CordaCodec(b"\x09" * 32, NOTARY)


def decode(raw: bytes) -> SignedTransaction:
    stx = SignedTransaction.decode(raw)
    stx.check_signatures()
    return stx


async def test_success_error_and_timeout_become_their_exits_in_one_tx() -> None:
    node = FakeNode({"A": lock_answer("A", 1, txid="a1"), "B": lock_answer("B", 2, txid="b2"),
                     "C": lock_answer("C", 3, txid="c3")})
    msgs = [update(),
            chpb.MsgAcknowledgement(packet=packet("A", 1), acknowledgement=SUCCESS_ACK),
            chpb.MsgAcknowledgement(packet=packet("B", 2), acknowledgement=dvp_app.error_ack("terms")),
            chpb.MsgTimeout(packet=packet("C", 3), next_sequence_recv=1)]
    c = codec()
    prepared = await c.prepare_tx(node, msgs)  # type: ignore[arg-type]
    wtx = decode(c.encode_tx(msgs, prepared)).wtx
    assert [bytes(r.txid).hex()[:2] for r in wtx.inputs] == ["a1", "a1", "b2", "b2", "c3", "c3"]
    assert [r.index for r in wtx.inputs] == [0, 1] * 3  # cash, then lock, per exit
    assert [bytes(r.txid).hex() for r in wtx.references] == ["ad" * 32]
    owners = [bytes(pb.Cash.FromString(o.data).owner) for o in wtx.outputs]
    assert owners == [b"\x05" * 32, b"\x06" * 32, b"\x06" * 32]  # payee, payer, payer
    assert all(o.contract == CASH and not o.has_encumbrance for o in wtx.outputs)
    dvp_cmds = [(c.name, dvp_pb2.DvpCommand.FromString(c.data)) for c in wtx.commands if c.contract == DVP]
    assert [(n, d.trade_id, d.output_index) for n, d in dvp_cmds] == [
        ("Settle", "A", 0), ("RefundOnError", "B", 1), ("RefundOnTimeout", "C", 2)]
    assert sum(1 for c in wtx.commands if c.contract == CASH) == 1  # one Move serves all exits
    assert len(ibc_messages(wtx.commands)) == 4
    assert all(bytes(o.owner) != DVP_ESCROW_OWNER for o in map(lambda s: pb.Cash.FromString(s.data), wtx.outputs))


async def test_exited_mismatched_and_undecodable_packets_are_left_out() -> None:
    node = FakeNode({"A": lock_answer("A", 1, status="settled"), "B": lock_answer("B", 9)})
    msgs = [update(),
            chpb.MsgAcknowledgement(packet=packet("A", 1), acknowledgement=SUCCESS_ACK),  # another relayer won
            chpb.MsgAcknowledgement(packet=packet("B", 2), acknowledgement=SUCCESS_ACK),  # not the lock's packet
            chpb.MsgTimeout(packet=packet("Z", 4, data=b"\x01junk"), next_sequence_recv=1),
            chpb.MsgAcknowledgement(packet=packet("A", 5, port="transfer"), acknowledgement=SUCCESS_ACK)]
    c = codec()
    prepared = await c.prepare_tx(node, msgs)  # type: ignore[arg-type]
    wtx = decode(c.encode_tx(msgs, prepared)).wtx
    assert not wtx.inputs and not wtx.outputs and not wtx.references
    kept = ibc_messages(wtx.commands)
    assert len(kept) == 2  # the update and the transfer ack


async def test_plain_ibc_txs_need_no_lookup_and_dvp_ones_need_prepare() -> None:
    node = FakeNode({})
    c = codec()
    msgs = [update()]
    assert await c.prepare_tx(node, msgs) is None  # type: ignore[arg-type]
    assert node.queries == []
    assert len(decode(c.encode_tx(msgs, None)).wtx.commands) == 1
    acks = [chpb.MsgAcknowledgement(packet=packet("A", 1), acknowledgement=SUCCESS_ACK)]
    with pytest.raises(CodecError, match="prepare_tx must run first"):
        c.encode_tx(acks, None)
    prepared = await c.prepare_tx(node, acks)  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="prepare_tx must run first"):
        c.encode_tx(list(acks), prepared)  # prepared for another sequence object
    assert decode(c.encode_tx(acks, prepared)).wtx.commands == ()  # no lock on the node: the ack is left out


async def test_malformed_node_answers_are_codec_errors() -> None:
    bad = lock_answer("A", 1)
    bad["lock_state"] = "zz"
    c = codec()
    msgs = [chpb.MsgAcknowledgement(packet=packet("A", 1), acknowledgement=SUCCESS_ACK)]
    with pytest.raises(CodecError, match="malformed"):
        await c.prepare_tx(FakeNode({"A": bad}), msgs)  # type: ignore[arg-type]


async def test_the_grpc_handle_runs_prepare_before_encoding() -> None:
    node = FakeNode({"A": lock_answer("A", 1, txid="a1")})
    handle = GrpcChainHandle("corda-x", node, codec(), watch=ResultWatch(node))  # type: ignore[arg-type]
    out = await handle.submit([update(), chpb.MsgAcknowledgement(packet=packet("A", 1), acknowledgement=SUCCESS_ACK)])
    assert out.committed
    wtx = decode(node.submitted[0]).wtx
    assert [c.name for c in wtx.commands if c.contract == DVP] == ["Settle"]
    assert [q for q, _ in node.queries] == ["holders", "dvp_lock"]
