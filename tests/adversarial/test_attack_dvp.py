"""Attacks on atomic DvP over gRPC: the Corda DvpLock and its Cash, and the EVM ST escrow.

Three trades are set up by hand once per module (no relayer daemon runs): ``locked`` is
locked on both chains and its packet left unrelayed; ``errored`` asked the Corda side for
more ST than the seller escrowed, so its delivery wrote an error ack on the EVM chain;
``settled`` went all the way through an honest delivery, ack and Settle.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from chains.corda.cash import CASH, DVP_ESCROW_OWNER, cash_state
from chains.corda.dvp import lock_transaction
from chains.evm import Message as EvmCall
from chains.evm.dvp import DVP_ESCROW_ADDRESS
from chains.ibc.apps import dvp as dvp_app
from kakehashi.corda.v1 import ledger_pb2 as lpb
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.node.v1 import node_pb2
from relayer.codecs.corda import fresh_salt
from tests.adversarial.matrix import Attempt, attack
from tests.support.adversary import Net

LOCK = "Corda DvpLock contract"
ESCROW = "EVM DvP escrow contract"
EXITS = "chains/corda/dvp.py DvpContract._verify_exits"


@dataclass
class Trade:
    terms: dvp_pb2.Terms
    packet: chpb.Packet
    ack: bytes = b""

    @property
    def trade_id(self) -> str:
        return self.terms.trade_id


@dataclass
class Trades:
    locked: Trade
    errored: Trade
    settled: Trade


@pytest.fixture(scope="module")
def trades(net: Net) -> Trades:
    locked_terms = net.trade_terms(qty=3, amount=300)
    net.lock_evm(locked_terms)
    locked = Trade(locked_terms, net.lock_corda(locked_terms))

    err_terms = net.trade_terms(qty=3, amount=310)
    net.lock_evm(err_terms)
    asked = dvp_pb2.Terms()
    asked.CopyFrom(err_terms)
    asked.st_quantity = 4  # the buyer's packet asks for more than the seller escrowed
    errored = Trade(asked, net.lock_corda(asked))
    _, errored.ack = net.deliver(net.corda, errored.packet)
    assert not dvp_app.ack_succeeded(errored.ack)

    ok_terms = net.trade_terms(qty=2, amount=200)
    net.lock_evm(ok_terms)
    settled = Trade(ok_terms, net.lock_corda(ok_terms))
    _, settled.ack = net.deliver(net.corda, settled.packet)
    assert dvp_app.ack_succeeded(settled.ack)
    res = net.corda.submit(_ack_exit(net, "Settle", settled, settled.ack))
    assert res.status == node_pb2.TX_STATUS_COMMITTED, res.reason
    assert net.lock(settled.trade_id)["status"] == "settled"
    return Trades(locked, errored, settled)


def _ack_exit(net: Net, kind: str, trade: Trade, ack: bytes, proven: bytes | None = None) -> bytes:
    """An exit of trade's lock riding with an update and a MsgAcknowledgement claiming ``ack``
    (proven by the proof of the ack actually written, ``proven``, when that differs)."""
    update, height = net.update(net.corda)
    msg = net.ack_msg(net.evm, trade.packet, proven or ack, height)
    msg.acknowledgement = ack
    return net.exit_tx(kind, trade.trade_id, [update, msg])


def _refs(net: Net, trade_id: str) -> tuple[lpb.StateRef, lpb.StateRef]:
    got = net.lock(trade_id)
    return (lpb.StateRef(txid=bytes.fromhex(got["cash"]["txid"]), index=got["cash"]["index"]),
            lpb.StateRef(txid=bytes.fromhex(got["lock"]["txid"]), index=got["lock"]["index"]))


# --- exits without their proof -------------------------------------------------------------------


@attack("DvP Settle with no ack proving delivery", layer=LOCK, where=EXITS)
def test_settle_without_proof(net: Net, trades: Trades, attempt: Attempt) -> None:
    with attempt.watch(net.snapshot):
        res = net.corda.submit(net.exit_tx("Settle", trades.locked.trade_id, []))
        attempt.failed(res, "an exit rides with exactly one ack or timeout of its packet, found 0")


@attack("DvP RefundOnError with no error ack", layer=LOCK, where=EXITS)
def test_refund_on_error_without_proof(net: Net, trades: Trades, attempt: Attempt) -> None:
    with attempt.watch(net.snapshot):
        res = net.corda.submit(net.exit_tx("RefundOnError", trades.locked.trade_id, []))
        attempt.failed(res, "an exit rides with exactly one ack or timeout of its packet, found 0")


@attack("DvP RefundOnTimeout with no timeout proof", layer=LOCK, where=EXITS)
def test_refund_on_timeout_without_proof(net: Net, trades: Trades, attempt: Attempt) -> None:
    with attempt.watch(net.snapshot):
        res = net.corda.submit(net.exit_tx("RefundOnTimeout", trades.locked.trade_id, []))
        attempt.failed(res, "an exit rides with exactly one ack or timeout of its packet, found 0")


@attack("DvP RefundOnTimeout before the packet timed out", layer="IBC core on the Corda node (ICS-04 timeout)",
        where="chains/ibc/packets.py timeout_packet")
def test_refund_on_timeout_before_timeout(net: Net, trades: Trades, attempt: Attempt) -> None:
    update, height = net.update(net.corda)
    msg = net.timeout_msg(net.evm, trades.locked.packet, height)
    with attempt.watch(net.snapshot):
        res = net.corda.submit(net.exit_tx("RefundOnTimeout", trades.locked.trade_id, [update, msg]))
        attempt.failed(res, "PacketError", "has not timed out at proof height")


@attack("DvP Settle riding with a genuine error ack", layer=LOCK, where=EXITS)
def test_settle_with_an_error_ack(net: Net, trades: Trades, attempt: Attempt) -> None:
    t = trades.errored
    with attempt.watch(net.snapshot):
        res = net.corda.submit(_ack_exit(net, "Settle", t, t.ack))
        attempt.failed(res, f"trade {t.trade_id!r}: Settle does not match the packet's")


@attack("forged success ack by a malicious relayer (error ack's proof)", layer="10-qbft client on the Corda node",
        where="chains/ibc/packets.py acknowledge_packet (verify_membership)")
def test_forged_success_ack(net: Net, trades: Trades, attempt: Attempt) -> None:
    t = trades.errored
    with attempt.watch(net.snapshot):
        res = net.corda.submit(_ack_exit(net, "Settle", t, dvp_app.SUCCESS_ACK, proven=t.ack))
        attempt.failed(res, "ProofFailed", f"acks/ports/dvp/channels/{net.evm_dvp}/sequences/{t.packet.sequence}",
                       "is not keccak256 of the value")


# --- the escrowed Cash and the lock --------------------------------------------------------------


@attack("spending the escrowed Cash without its DvpLock", layer="Corda ledger (encumbrance rule)",
        where="chains/corda/contracts.py check_input_encumbrances")
def test_spend_encumbered_cash_without_lock(net: Net, trades: Trades, attempt: Attempt) -> None:
    buyer = net.corda_party("holder-firm-b")
    cash_ref, _ = _refs(net, trades.locked.trade_id)
    back = cash_state(bytes.fromhex(net.corda.info()["issuer"]), buyer.key, 300, buyer.notary,
                      brand=net.corda.info()["brand"])
    wtx = buyer.wtx((cash_ref,), (back,), (lpb.Command(contract=CASH, name="Move", signers=[buyer.key]),),
                    (net.admission(),))
    with attempt.watch(net.snapshot):
        res = net.corda.submit(buyer.sign(wtx))
        attempt.failed(res, "is encumbered by output", "which is not an input")


@attack("consuming a DvpLock with a Cash Move instead of a DvP exit", layer=LOCK,
        where="chains/corda/dvp.py DvpContract.verify")
def test_consume_lock_by_another_command(net: Net, trades: Trades, attempt: Attempt) -> None:
    buyer = net.corda_party("holder-firm-b")
    cash_ref, lock_ref = _refs(net, trades.locked.trade_id)
    back = cash_state(bytes.fromhex(net.corda.info()["issuer"]), buyer.key, 300, buyer.notary,
                      brand=net.corda.info()["brand"])
    wtx = buyer.wtx((cash_ref, lock_ref), (back,), (lpb.Command(contract=CASH, name="Move", signers=[buyer.key]),),
                    (net.admission(),))
    with attempt.watch(net.snapshot):
        res = net.corda.submit(buyer.sign(wtx))
        attempt.failed(res, "DvP states change only under a DvP command")


@attack("locked Cash spent twice: a second Settle after settlement", layer=LOCK, where=EXITS)
def test_second_exit_after_settlement(net: Net, trades: Trades, attempt: Attempt) -> None:
    t = trades.settled
    with attempt.watch(net.snapshot):
        res = net.corda.submit(_ack_exit(net, "Settle", t, t.ack))
        attempt.failed(res, f"trade {t.trade_id!r}: packet {t.packet.sequence} is not the pending packet its lock sent")


@attack("the same buyer Cash locked for a second trade (double spend)", layer="Corda notary cluster",
        where="chains/corda/notary.py check_unique")
def test_same_cash_locked_twice(net: Net, trades: Trades, attempt: Attempt) -> None:
    party = net.corda_party("holder-firm-b")
    cash = net.cash_of(party, 100)

    def lock(terms: dvp_pb2.Terms) -> bytes:
        return lock_transaction(terms, net.corda_dvp, int(terms.deadline_ns), party.seed, cash, net.admission(),
                                party.notary, fresh_salt()).encode()

    assert net.corda.submit(lock(net.trade_terms(qty=1, amount=100))).status == node_pb2.TX_STATUS_COMMITTED
    ref, second = cash[0][0], net.trade_terms(qty=1, amount=100)
    with attempt.watch(net.snapshot):
        res = net.corda.submit(lock(second))
        attempt.failed(res, f"input {bytes(ref.txid).hex()[:16]}:{ref.index} was already consumed by tx")


@attack("a trade id reused for a second Corda lock", layer="Corda dvp module", where="chains/corda/dvp.py DvpModule.send")
def test_trade_id_reused_on_corda(net: Net, trades: Trades, attempt: Attempt) -> None:
    terms = dvp_pb2.Terms()
    terms.CopyFrom(trades.locked.terms)
    terms.sc_amount = 111  # other terms, same trade id
    with attempt.watch(net.snapshot):
        res = net.corda.submit(net.lock_corda_tx(terms))
        attempt.failed(res, "IdentifierExists", f"trade id {terms.trade_id!r} already sent a dvp packet on this chain")


@attack("a trade in SC brand KUSD locked with Cash of the default brand", layer=LOCK,
        where="chains/corda/dvp.py DvpContract._verify_lock")
def test_lock_paid_in_another_brand(net: Net, trades: Trades, attempt: Attempt) -> None:
    # The honest KUSD lock, with its escrow Cash (and the inputs and change behind it) swapped
    # for the buyer's default-brand cash: the lock and the packet still promise KUSD.
    info = net.corda.info()
    terms = net.trade_terms(qty=1, amount=100)
    terms.sc_brand, terms.cash_issuer = "KUSD", bytes.fromhex(info["brands"]["KUSD"])
    party = net.corda_party("holder-firm-b")
    honest = lock_transaction(terms, net.corda_dvp, int(terms.deadline_ns), party.seed,
                              net.cash_of(party, 100, "KUSD"), net.admission("KUSD"), party.notary, fresh_salt())
    paid = net.cash_of(party, 100, "")
    default_issuer, total = bytes.fromhex(info["issuer"]), sum(int(c.amount) for _, c in paid)
    outs = (cash_state(default_issuer, DVP_ESCROW_OWNER, 100, party.notary, encumbrance=1), honest.wtx.outputs[1],
            *([cash_state(default_issuer, party.key, total - 100, party.notary)] if total > 100 else []))
    wtx = dataclasses.replace(honest.wtx, inputs=tuple(ref for ref, _ in paid), outputs=outs,
                              references=(net.admission("KUSD"), net.admission("")))
    with attempt.watch(net.snapshot):
        res = net.corda.submit(party.sign(wtx))
        attempt.failed(res, "the escrow Cash must be owned by the DvP escrow, of the lock's issuer, brand and amount")
    assert net.lock(terms.trade_id)["status"] == "none"


# --- the ST escrow ---------------------------------------------------------------------------------


def _reclaim(net: Net, trade_id: str, signer: str = "alice") -> node_pb2.TxResult:
    return net.evm.submit(net.evm_account(signer).tx([EvmCall(DVP_ESCROW_ADDRESS, "reclaim", (trade_id.encode(),))]))


@attack("a trade id reused for a second EVM escrow", layer=ESCROW, where="chains/evm/dvp.py DvpEscrow.lock")
def test_trade_id_reused_on_evm(net: Net, trades: Trades, attempt: Attempt) -> None:
    terms = dvp_pb2.Terms()
    terms.CopyFrom(trades.locked.terms)
    terms.st_quantity = 1
    with attempt.watch(net.snapshot):
        res = net.evm.submit(net.lock_evm_tx(terms))
        attempt.failed(res, f"lock: trade id {terms.trade_id!r} was already used on this chain")


@attack("reclaiming escrowed ST before its deadline", layer=ESCROW, where="chains/evm/dvp.py DvpEscrow.reclaim")
def test_reclaim_before_deadline(net: Net, trades: Trades, attempt: Attempt) -> None:
    with attempt.watch(net.snapshot):
        res = _reclaim(net, trades.locked.trade_id)
        attempt.failed(res, "reclaim: block time", "is before the deadline")


@attack("reclaiming ST after it was delivered", layer=ESCROW, where="chains/evm/dvp.py DvpEscrow.reclaim")
def test_reclaim_after_delivery(net: Net, trades: Trades, attempt: Attempt) -> None:
    with attempt.watch(net.snapshot):
        res = _reclaim(net, trades.settled.trade_id)
        attempt.failed(res, f"reclaim: trade {trades.settled.trade_id!r} is delivered, not locked")


@attack("locking another holder's ST (tx signed by the wrong key)", layer=ESCROW,
        where="chains/evm/dvp.py DvpEscrow.lock")
def test_lock_by_someone_else(net: Net, trades: Trades, attempt: Attempt) -> None:
    terms = net.trade_terms(qty=1, amount=100)
    with attempt.watch(net.snapshot):
        res = net.evm.submit(net.lock_evm_tx(terms, signer="bob"))
        attempt.failed(res, "lock: only terms.seller_evm may lock its security tokens")


@attack("a real commitment proof paired with another trade's packet data", layer="11-corda client on the EVM node",
        where="chains/ibc/packets.py recv_packet (verify_membership)")
def test_recv_with_another_packets_data(net: Net, trades: Trades, attempt: Attempt) -> None:
    update, height = net.update(net.evm)
    msg = net.recv_msg(net.corda, trades.locked.packet, height)
    msg.packet.data = trades.settled.packet.data
    with attempt.watch(net.snapshot):
        res = net.relay(net.evm, [update, msg])
        attempt.failed(res, "ProofFailed", f"commitments/ports/dvp/channels/{net.corda_dvp}/sequences/"
                       f"{trades.locked.packet.sequence}", "does not verify")
