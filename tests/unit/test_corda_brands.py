"""SC brands on the Corda chain: the Cash and DvpLock contract rules that keep brands apart.

The world is the DvP world of test_corda_dvp (real IBC core, real light clients, the real EVM
escrow) with two more brands of the SAME issuer, so every refusal here is about the brand
and not about the issuer: ``B`` admits the buyer and the seller, ``C`` admits the buyer only.
After every test each (issuer, brand) is conserved on its own.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

import pytest

from chains.corda import cash as cash_mod
from chains.corda.cash import ADMISSION, CASH, admission_state, cash_state, parse_cash
from chains.corda.dvp import (
    DVP_ESCROW_OWNER,
    SETTLE,
    lock_of,
    lock_state,
    lock_transaction,
    trade_sequence,
)
from chains.corda.ibc_host import ibc_command, ibc_messages
from chains.corda.transaction import SignedTransaction
from chains.evm import Message
from chains.evm.dvp import DVP_ESCROW_ADDRESS
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.apps.dvp import SUCCESS_ACK, encode_terms, validate_terms
from chains.ibc.errors import InvalidMessage
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.dvp.v1 import dvp_pb2
from tests.unit.test_corda_dvp import BUYER, ISSUED, ISSUER, PK, RELAYER, SELLER, Locked, World

B_ISSUED = 500
C_ISSUED = 300


class BrandWorld(World):
    """World plus brand B (buyer and seller admitted) and brand C (buyer only) of ISSUER."""

    def __init__(self) -> None:
        super().__init__()
        self.brand_admission: dict[str, pb.StateRef] = {"": self.admission}
        for brand, holders, amount in (("B", [PK[BUYER], PK[SELLER]], B_ISSUED), ("C", [PK[BUYER]], C_ISSUED)):
            adm = self.wtx(outputs=[admission_state(PK[ISSUER], holders, self.notary, brand)],
                           commands=[pb.Command(contract=ADMISSION, name="Admit", signers=[PK[ISSUER]])])
            ref = pb.StateRef(txid=self.submit(SignedTransaction(adm).sign(ISSUER)), index=0)
            self.brand_admission[brand] = ref
            issue = self.wtx(outputs=[cash_state(PK[ISSUER], PK[BUYER], amount, self.notary, brand=brand)],
                             commands=[pb.Command(contract=CASH, name="Issue", signers=[PK[ISSUER]])],
                             references=[ref])
            self.submit(SignedTransaction(issue).sign(ISSUER))

    def escrow_lock_call(self, terms: dvp_pb2.Terms) -> Message:
        return Message(DVP_ESCROW_ADDRESS, "lock", (encode_terms(terms), self.evm_channel.encode()))

    def lock_status(self, trade_id: str) -> int | None:
        return trade_sequence(self.corda.store.get, trade_id)

    @staticmethod
    def relayer_seed() -> bytes:
        return RELAYER

    def coins(self) -> dict[tuple[bytes, str], int]:
        out: dict[tuple[bytes, str], int] = {}
        for _, state in self.unspent():
            if state.contract == CASH:
                c = parse_cash(state)
                out[(bytes(c.issuer), c.brand)] = out.get((bytes(c.issuer), c.brand), 0) + c.amount
        return out

    def brand_balance(self, seed: bytes, brand: str) -> int:
        return sum(c.amount for _, c in self.cash_of(PK[seed]) if c.brand == brand)

    def brand_terms(self, trade_id: str, brand: str, amount: int = 100) -> dvp_pb2.Terms:
        terms = self.terms(trade_id, amount=amount)
        terms.sc_brand = brand
        return terms

    def brand_lock_tx(self, terms: dvp_pb2.Terms, pay_brand: str | None = None) -> SignedTransaction:
        brand = terms.sc_brand if pay_brand is None else pay_brand
        cash = [(ref, c) for ref, c in self.cash_of(PK[BUYER]) if c.brand == brand]
        return lock_transaction(terms, self.channel, self.timeout(), BUYER, cash,
                                self.brand_admission[terms.sc_brand], self.notary, self.salt())


@pytest.fixture
def world() -> Iterator[BrandWorld]:
    w = BrandWorld()
    yield w
    assert w.coins() == {(PK[ISSUER], ""): sum(ISSUED.values()), (PK[ISSUER], "B"): B_ISSUED,
                         (PK[ISSUER], "C"): C_ISSUED}, "a brand was not conserved on its own"


def _swap_brand(state: pb.TransactionState, brand: str) -> pb.TransactionState:
    c = parse_cash(state)
    c.brand = brand
    out = pb.TransactionState()
    out.CopyFrom(state)
    out.data = c.SerializeToString(deterministic=True)
    return out


# --- the Cash contract ----------------------------------------------------------------------------


def test_a_move_cannot_turn_one_brand_into_another(world: BrandWorld) -> None:
    (ref, c), = [(r, c) for r, c in world.cash_of(PK[BUYER]) if c.brand == "B"]
    wtx = world.wtx([ref], [cash_state(PK[ISSUER], PK[BUYER], c.amount, world.notary, brand="")],
                    [pb.Command(contract=CASH, name="Move", signers=[PK[BUYER]])], [world.admission])
    world.refused(SignedTransaction(wtx).sign(BUYER), "Move must conserve the amount of each issuer's cash of each brand")


def test_admission_is_per_brand(world: BrandWorld) -> None:
    # The seller is admitted to the unnamed brand and to B, not to C: C cash cannot reach it.
    (ref, c), = [(r, c) for r, c in world.cash_of(PK[BUYER]) if c.brand == "C"]
    wtx = world.wtx([ref], [cash_state(PK[ISSUER], PK[SELLER], c.amount, world.notary, brand="C")],
                    [pb.Command(contract=CASH, name="Move", signers=[PK[BUYER]])],
                    [world.brand_admission[""], world.brand_admission["B"], world.brand_admission["C"]])
    world.refused(SignedTransaction(wtx).sign(BUYER),
                  re.escape(f"{PK[SELLER].hex()[:16]} is not admitted to hold this issuer's cash of brand 'C'"))


# --- DvP in a brand -------------------------------------------------------------------------------


def test_a_brand_b_trade_settles_and_moves_brand_b_cash_only(world: BrandWorld) -> None:
    terms = world.brand_terms("T-brand-b", "B", amount=120)
    stx = world.brand_lock_tx(terms)
    world.evm_call(world.escrow_lock_call(terms))
    world.submit(stx)
    lock = lock_of(stx.wtx.outputs[1])
    assert lock is not None and lock.brand == "B" and parse_cash(stx.wtx.outputs[0]).brand == "B"
    locked = Locked(terms, stx.txid, lock, world.pair.last_packet(world.corda))
    ack = world.recv(locked)
    assert ack == SUCCESS_ACK
    exit_tx = world.exit_tx([(SETTLE, locked)], [world.ack_msg(locked, ack)])
    exit_tx = resign_with_refs(world, exit_tx, [world.brand_admission["B"]])
    world.submit(exit_tx)
    assert world.brand_balance(SELLER, "B") == 120 and world.brand_balance(BUYER, "B") == B_ISSUED - 120
    assert world.brand_balance(SELLER, "") == ISSUED[SELLER] and world.brand_balance(BUYER, "") == ISSUED[BUYER]
    assert world.balance(DVP_ESCROW_OWNER) == 0


def test_a_lock_paying_with_cash_of_another_brand_is_refused(world: BrandWorld) -> None:
    # Terms and lock say brand B; the escrow Cash (and the inputs behind it) are unnamed-brand cash.
    terms = world.brand_terms("T-wrong-cash", "B")
    good = world.brand_lock_tx(terms)
    ins = [ref for ref, c in world.cash_of(PK[BUYER]) if c.brand == ""]
    spent = sum(c.amount for _, c in world.cash_of(PK[BUYER]) if c.brand == "")
    outs = [_swap_brand(good.wtx.outputs[0], ""), good.wtx.outputs[1],
            cash_state(PK[ISSUER], PK[BUYER], spent - terms.sc_amount, world.notary, brand="")]
    refs = (world.brand_admission["B"], world.brand_admission[""])  # the change is admitted: only the brand is off
    bad = SignedTransaction(dataclasses.replace(good.wtx, inputs=tuple(ins), outputs=tuple(outs),
                                                references=refs)).sign(BUYER)
    world.refused(bad, "the escrow Cash must be owned by the DvP escrow, of the lock's issuer, brand and amount")
    assert world.lock_status("T-wrong-cash") is None


def test_a_lock_whose_brand_differs_from_the_terms_is_refused(world: BrandWorld) -> None:
    # Everything paid in the unnamed brand, but the packet's terms name brand B: the seller was
    # promised B, so the lock may not record (and pay) anything else.
    terms = world.brand_terms("T-wrong-lock", "")
    good = world.brand_lock_tx(terms)
    sent = dvp_pb2.Terms()
    sent.CopyFrom(terms)
    sent.sc_brand = "B"
    lock = lock_of(good.wtx.outputs[1])
    assert lock is not None
    lock.terms_hash = dvp_app.terms_hash(sent)
    cmds = list(good.wtx.commands)
    send = dvp_pb2.MsgDvpSend.FromString(_ibc_payload(cmds[2]))
    send.terms.CopyFrom(sent)
    cmds[2] = _with_payload(cmds[2], send)
    outs = list(good.wtx.outputs)
    outs[1] = lock_state(lock, world.notary, encumbrance=0)
    bad = SignedTransaction(dataclasses.replace(good.wtx, outputs=tuple(outs), commands=tuple(cmds))).sign(BUYER)
    world.refused(bad, "the DvpLock does not match the terms, channel and timeout of its MsgDvpSend")


def test_a_lock_to_a_payee_not_admitted_for_the_brand_is_refused(world: BrandWorld) -> None:
    terms = world.brand_terms("T-brand-c", "C")
    world.refused(world.brand_lock_tx(terms),
                  re.escape("the payee is not admitted to hold this issuer's cash of brand 'C'"))


def test_a_settle_paying_another_brand_is_refused(world: BrandWorld) -> None:
    terms = world.brand_terms("T-pay-wrong", "B", amount=60)
    world.evm_call(world.escrow_lock_call(terms))
    stx = world.brand_lock_tx(terms)
    world.submit(stx)
    lock = lock_of(stx.wtx.outputs[1])
    assert lock is not None
    locked = Locked(terms, stx.txid, lock, world.pair.last_packet(world.corda))
    ack = world.recv(locked)
    honest = world.exit_tx([(SETTLE, locked)], [world.ack_msg(locked, ack)])
    # Pay the seller 60 of the unnamed brand, keeping 60 of B in a second output for the buyer:
    # amounts per brand would not be conserved, and the exit must pay the lock's brand.
    outs = (_swap_brand(honest.wtx.outputs[0], ""),)
    bad = SignedTransaction(dataclasses.replace(honest.wtx, outputs=outs,
                                                references=(world.brand_admission[""], world.brand_admission["B"])))
    bad.sign(world.relayer_seed())
    world.refused(bad, "Move must conserve the amount of each issuer's cash of each brand")
    assert world.brand_balance(SELLER, "") == ISSUED[SELLER]


# --- the terms ------------------------------------------------------------------------------------


def test_terms_and_states_share_one_brand_alphabet() -> None:
    ok, bad = ["", "B", "KUSD", "sc-jpy.2", "x" * 32], ["x" * 33, "has space", "é", "a/b"]
    for name in ok + bad:
        terms = dvp_pb2.Terms(trade_id="T", security_token=b"\x01" * 20, st_quantity=1, cash_issuer=b"\x02" * 32,
                              sc_amount=1, seller_evm=b"\x03" * 20, buyer_evm=b"\x04" * 20,
                              seller_corda=b"\x05" * 32, buyer_corda=b"\x06" * 32, deadline_ns=1, sc_brand=name)
        try:
            validate_terms(terms)
            in_terms = True
        except InvalidMessage:
            in_terms = False
        assert in_terms == cash_mod.valid_brand(name) == (name in ok), name


def test_the_unnamed_brand_keeps_old_encodings() -> None:
    # Terms, Cash and keys written before brands mean the same thing: no hash or key changes.
    terms = dvp_pb2.Terms(trade_id="T", sc_amount=5)
    assert b"sc_brand" not in terms.SerializeToString() and terms.SerializeToString(deterministic=True) == \
        dvp_pb2.Terms(trade_id="T", sc_amount=5, sc_brand="").SerializeToString(deterministic=True)
    assert cash_mod.brand_key(b"\x07" * 32, "") == "07" * 32
    assert cash_mod.brand_key(b"\x07" * 32, "B") == "07" * 32 + "/B"


# --- helpers over the test_corda_dvp world ---------------------------------------------------------


def resign_with_refs(world: BrandWorld, stx: SignedTransaction, refs: list[pb.StateRef]) -> SignedTransaction:
    out = SignedTransaction(dataclasses.replace(stx.wtx, references=tuple(refs)))
    return out.sign(world.relayer_seed())


def _ibc_payload(cmd: pb.Command) -> bytes:
    (msg,) = ibc_messages([cmd])
    return bytes(msg.value)


def _with_payload(cmd: pb.Command, send: dvp_pb2.MsgDvpSend) -> pb.Command:
    return ibc_command(send, [bytes(k) for k in cmd.signers])


def test_a_settle_swapping_brands_with_the_buyer_is_refused(world: BrandWorld) -> None:
    # Amounts per brand conserved (so the Cash contract is satisfied): the buyer adds 60 of the
    # unnamed brand and takes the locked 60 of B back, the seller is paid the unnamed brand.
    # Only the DvpLock's exit rule (pay the lock's brand) stands in the way.
    terms = world.brand_terms("T-swap", "B", amount=60)
    world.evm_call(world.escrow_lock_call(terms))
    stx = world.brand_lock_tx(terms)
    world.submit(stx)
    lock = lock_of(stx.wtx.outputs[1])
    assert lock is not None
    locked = Locked(terms, stx.txid, lock, world.pair.last_packet(world.corda))
    honest = world.exit_tx([(SETTLE, locked)], [world.ack_msg(locked, world.recv(locked))])
    (ref, c), = [(r, c) for r, c in world.cash_of(PK[BUYER]) if c.brand == ""]
    outs = (_swap_brand(honest.wtx.outputs[0], ""),
            cash_state(PK[ISSUER], PK[BUYER], 60, world.notary, brand="B"),
            cash_state(PK[ISSUER], PK[BUYER], c.amount - 60, world.notary, brand=""))
    cmds = tuple(pb.Command(contract=CASH, name="Move", signers=[PK[BUYER]]) if x.contract == CASH else x
                 for x in honest.wtx.commands)
    bad = SignedTransaction(dataclasses.replace(
        honest.wtx, inputs=(*honest.wtx.inputs, ref), outputs=outs, commands=cmds,
        references=(world.brand_admission[""], world.brand_admission["B"]))).sign(world.relayer_seed()).sign(BUYER)
    world.refused(bad, re.escape("trade 'T-swap': Settle must pay 60 of the lock's issuer and brand to the payee"))
    assert world.brand_balance(SELLER, "") == ISSUED[SELLER] and world.brand_balance(SELLER, "B") == 0
