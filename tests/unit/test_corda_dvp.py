"""The Corda half of DvP: the DvpLock contract, the dvp module and the IBC host rule.

Every trade runs over the real IBC core between a Corda host (notary cluster with the Cash,
Admission, IBC and DvP contracts) and an EVM host whose ``dvp`` port is the real ST escrow
module, with real light clients both ways: acks and timeouts the exits rely on are proven,
never made up. After every test the stablecoin is conserved per issuer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from google.protobuf.message import Message as PbMessage
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chains.corda.cash import (
    ADMISSION,
    CASH,
    AdmissionContract,
    CashContract,
    admission_state,
    cash_state,
)
from chains.corda.dvp import (
    DVP,
    DVP_ESCROW_OWNER,
    EXITS,
    LOCK,
    REFUND_ON_ERROR,
    REFUND_ON_TIMEOUT,
    SETTLE,
    DvpContract,
    DvpError,
    exit_kind,
    exit_parts,
    install,
    lock_of,
    lock_state,
    lock_transaction,
    trade_key,
    trade_sequence,
)
from chains.corda.ibc_host import IBC_CONTRACT, IbcHostContract, account_of, ibc_command
from chains.corda.ledger import MemoryLedgerStore
from chains.corda.notary import DoubleSpend, IbcRejected, NotaryError
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.evm import SECURITY_TOKEN_ADDRESS, Message, make_tx
from chains.evm.dvp import DVP_ESCROW_ADDRESS
from chains.ibc.apps.dvp import (
    SUCCESS_ACK,
    VERSION,
    ack_succeeded,
    encode_packet_data,
    encode_terms,
    error_ack,
)
from chains.ibc.errors import PacketError, TxFailed
from chains.ibc.events import Event
from chains.ibc.host import paths
from chains.node.app import QueryError
from chains.node.apps.corda import KIND, CordaApp
from chains.node.config import load_node_config
from chains.node.db import NodeDatabase
from chains.node.main import init_home
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key, sha256
from tests.support.cordahost import CordaHost
from tests.support.evmhost import SIGNER as EVM_SELLER
from tests.support.evmhost import SIGNER_KEY as EVM_SELLER_KEY
from tests.support.evmhost import EvmHost
from tests.support.host import START_NS
from tests.support.nodecordahost import NodeCordaHost
from tests.support.pair import HostPair, make_pair

SEC = 1_000_000_000
ISSUER, BUYER, SELLER, OUTSIDER, RELAYER = (sha256(f"dvp-test:{n}".encode()) for n in
                                            ("issuer", "buyer", "seller", "outsider", "relayer"))
PK = {s: ed25519_public_key(s) for s in (ISSUER, BUYER, SELLER, OUTSIDER, RELAYER)}
EVM_BUYER = eth_address(secp256k1_public_key(sha256(b"dvp-test:evm-buyer")))
ISSUED = {BUYER: 1_000, SELLER: 50}
ST_SUPPLY = 1_000


@dataclasses.dataclass
class Locked:
    terms: dvp_pb2.Terms
    txid: bytes
    lock: dvp_pb2.DvpLock
    packet: chpb.Packet

    @property
    def cash_ref(self) -> pb.StateRef:
        return pb.StateRef(txid=self.txid, index=0)

    @property
    def lock_ref(self) -> pb.StateRef:
        return pb.StateRef(txid=self.txid, index=1)


class World:
    """A Corda chain (SC) and an EVM chain (ST) with an open dvp channel between them."""

    def __init__(self) -> None:
        self.pair: HostPair = make_pair("corda-evm")
        corda, evm = self.pair.a, self.pair.b
        assert isinstance(corda, CordaHost) and isinstance(evm, EvmHost)
        self.corda, self.evm = corda, evm
        corda.cluster.contracts = {CASH: CashContract(), ADMISSION: AdmissionContract(),
                                   IBC_CONTRACT: IbcHostContract(), DVP: DvpContract()}
        install(corda.handler)
        self.channel, self.evm_channel = self.pair.open_channel(port="dvp", version=VERSION)
        self.notary = corda.cluster.identity
        self._salt = 0
        adm = self.wtx(outputs=[admission_state(PK[ISSUER], [PK[BUYER], PK[SELLER]], self.notary)],
                       commands=[pb.Command(contract=ADMISSION, name="Admit", signers=[PK[ISSUER]])])
        self.admission = pb.StateRef(txid=self.submit(SignedTransaction(adm).sign(ISSUER)), index=0)
        issue = self.wtx(outputs=[cash_state(PK[ISSUER], PK[s], a, self.notary) for s, a in ISSUED.items()],
                         commands=[pb.Command(contract=CASH, name="Issue", signers=[PK[ISSUER]])],
                         references=[self.admission])
        self.submit(SignedTransaction(issue).sign(ISSUER))
        self.evm_call(Message(SECURITY_TOKEN_ADDRESS, "whitelist", (EVM_SELLER, b"\x01")),
                      Message(SECURITY_TOKEN_ADDRESS, "whitelist", (EVM_BUYER, b"\x01")),
                      Message(SECURITY_TOKEN_ADDRESS, "mint", (EVM_SELLER, ST_SUPPLY.to_bytes(2, "big"))))

    # --- Corda ledger ----------------------------------------------------------------------

    def salt(self) -> bytes:
        self._salt += 1
        return sha256(b"dvp-test-salt" + self._salt.to_bytes(8, "big"))

    def wtx(self, inputs: list[pb.StateRef] | None = None, outputs: list[pb.TransactionState] | None = None,
            commands: list[pb.Command] | None = None, references: list[pb.StateRef] | None = None) -> WireTransaction:
        return WireTransaction(inputs=tuple(inputs or ()), outputs=tuple(outputs or ()),
                               commands=tuple(commands or ()), notary=self.notary, privacy_salt=self.salt(),
                               references=tuple(references or ()))

    def submit(self, stx: SignedTransaction) -> bytes:
        """Notarise in a new checkpoint; a refusal still seals the (empty) height and re-raises."""
        host = self.corda
        host.next_block()
        try:
            host.cluster.notarise(stx, [host.now_ns] * len(host.seeds))
        finally:
            host._checkpoint()
        return stx.txid

    def refused(self, stx: SignedTransaction, match: str, error: type[NotaryError] = NotaryError) -> None:
        """The tx is refused for ``match`` and the ledger and the IBC root did not move."""
        store = self.ledger()
        consumed, txs, root = store.consumed(), len(store), self.root()
        with pytest.raises(error, match=match):
            self.submit(stx)
        assert store.consumed() == consumed and len(store) == txs
        assert self.root() == root

    def root(self) -> bytes:
        return self.corda.root()

    def ledger(self) -> MemoryLedgerStore:
        store = self.corda.cluster.ledger
        assert isinstance(store, MemoryLedgerStore)
        return store

    def unspent(self) -> list[tuple[pb.StateRef, pb.TransactionState]]:
        return self.ledger().unconsumed()

    def cash_of(self, owner: bytes) -> list[tuple[pb.StateRef, pb.Cash]]:
        return [(ref, pb.Cash.FromString(st.data)) for ref, st in self.unspent()
                if st.contract == CASH and pb.Cash.FromString(st.data).owner == owner]

    def balance(self, seed_or_key: bytes) -> int:
        key = PK.get(seed_or_key, seed_or_key)
        return sum(c.amount for _, c in self.cash_of(key))

    def sc_by_issuer(self) -> dict[bytes, int]:
        out: dict[bytes, int] = {}
        for _, state in self.unspent():
            if state.contract == CASH:
                cash = pb.Cash.FromString(state.data)
                out[bytes(cash.issuer)] = out.get(bytes(cash.issuer), 0) + cash.amount
        return out

    # --- EVM ledger -------------------------------------------------------------------------

    def evm_call(self, *calls: Message) -> None:
        host = self.evm
        host.next_block()
        raw = make_tx(EVM_SELLER_KEY, host.chain.chain_id, host.chain.nonce(EVM_SELLER), list(calls)).encode()
        (receipt,) = host.chain.produce_block([raw], host.now_ns, host.keys).receipts
        for log in receipt.logs:
            host.events.emit(host.height, Event(log.name, tuple(log.attributes)))
        host._commit()
        assert receipt.success, receipt.reason

    def st_balance(self, holder: bytes) -> int:
        return self.evm.chain.token.balance_of(self.evm.chain.state, holder)

    # --- trades -----------------------------------------------------------------------------

    def terms(self, trade_id: str, amount: int = 100, seller: bytes = SELLER, quantity: int = 10,
              deadline_s: int = 600) -> dvp_pb2.Terms:
        return dvp_pb2.Terms(trade_id=trade_id, security_token=SECURITY_TOKEN_ADDRESS, st_quantity=quantity,
                             cash_issuer=PK[ISSUER], sc_amount=amount, seller_evm=EVM_SELLER,
                             buyer_evm=EVM_BUYER, seller_corda=PK[seller], buyer_corda=PK[BUYER],
                             deadline_ns=self.evm.now_ns + deadline_s * SEC)

    def timeout(self, seconds: int = 300) -> int:
        return self.evm.now_ns + seconds * SEC

    def lock_tx(self, terms: dvp_pb2.Terms, timeout: int | None = None) -> SignedTransaction:
        return lock_transaction(terms, self.channel, timeout or self.timeout(), BUYER, self.cash_of(PK[BUYER]),
                                self.admission, self.notary, self.salt())

    def lock(self, terms: dvp_pb2.Terms, timeout: int | None = None, evm_lock: bool = True) -> Locked:
        if evm_lock:
            self.evm_call(Message(DVP_ESCROW_ADDRESS, "lock", (encode_terms(terms), self.evm_channel.encode())))
        stx = self.lock_tx(terms, timeout)
        self.submit(stx)
        packet = self.pair.last_packet(self.corda)
        lock = lock_of(stx.wtx.outputs[1])
        assert lock is not None
        return Locked(terms, stx.txid, lock, packet)

    def recv(self, locked: Locked) -> bytes:
        """Relay the packet to the EVM chain; the ack it wrote."""
        self.evm.tx(self.pair.recv_msg(locked.packet, self.evm))
        ack = self.pair.last_event(self.evm, "write_acknowledgement").get("ack")
        assert ack is not None
        return ack

    def ack_msg(self, locked: Locked, ack: bytes) -> chpb.MsgAcknowledgement:
        return self.pair.ack_msg(locked.packet, ack, self.corda)

    def timeout_msg(self, locked: Locked) -> chpb.MsgTimeout:
        return self.pair.timeout_msg(locked.packet, self.corda)

    def exit_tx(self, exits: list[tuple[str, Locked]], messages: Sequence[PbMessage],
                extra_outputs: list[pb.TransactionState] | None = None) -> SignedTransaction:
        inputs: list[pb.StateRef] = []
        outputs: list[pb.TransactionState] = []
        commands: list[pb.Command] = []
        for kind, locked in exits:
            i, o, c = exit_parts(kind, locked.lock_ref, locked.lock, locked.cash_ref, len(outputs), self.notary)
            inputs += i
            outputs += o
            commands += c
        outputs += extra_outputs or []
        commands += [ibc_command(m, [PK[RELAYER]]) for m in messages]
        wtx = self.wtx(inputs, outputs, commands, [self.admission])
        return SignedTransaction(wtx).sign(RELAYER)


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    assert w.sc_by_issuer() == {PK[ISSUER]: sum(ISSUED.values())}, "stablecoin not conserved"
    chain = w.evm.chain
    holders = [EVM_SELLER, EVM_BUYER, DVP_ESCROW_ADDRESS]
    assert sum(w.st_balance(h) for h in holders) == chain.token.total_supply(chain.state) == ST_SUPPLY


def resign(stx: SignedTransaction, *seeds: bytes, **changes: object) -> SignedTransaction:
    wtx = dataclasses.replace(stx.wtx, **changes)  # type: ignore[arg-type]
    out = SignedTransaction(wtx)
    for s in seeds:
        out.sign(s)
    return out


# --- the three exits, end to end --------------------------------------------------------------


def test_settle_delivers_both_legs(world: World) -> None:
    locked = world.lock(world.terms("T-settle", amount=120, quantity=7))
    assert world.balance(BUYER) == 880 and world.balance(DVP_ESCROW_OWNER) == 120
    assert trade_sequence(world.corda.store.get, "T-settle") == locked.packet.sequence
    assert locked.packet.source_port == "dvp" and locked.packet.timeout_timestamp == locked.lock.timeout_timestamp
    ack = world.recv(locked)
    assert ack == SUCCESS_ACK and world.st_balance(EVM_BUYER) == 7
    txid = world.submit(world.exit_tx([(SETTLE, locked)], [world.ack_msg(locked, ack)]))
    assert world.balance(SELLER) == 50 + 120 and world.balance(BUYER) == 880
    assert world.balance(DVP_ESCROW_OWNER) == 0
    settled = world.ledger().transaction(txid)
    assert settled is not None and exit_kind(settled.wtx.commands, "T-settle") == SETTLE
    path = paths.packet_commitment("dvp", world.channel, locked.packet.sequence)
    assert world.corda.store.get(path) is None


def test_refund_on_error_ack_returns_the_cash(world: World) -> None:
    # No ST escrow on the EVM chain: the EVM module answers "unknown trade".
    locked = world.lock(world.terms("T-error"), evm_lock=False)
    ack = world.recv(locked)
    assert not ack_succeeded(ack) and ack == error_ack("unknown trade")
    world.submit(world.exit_tx([(REFUND_ON_ERROR, locked)], [world.ack_msg(locked, ack)]))
    assert world.balance(BUYER) == 1_000 and world.balance(SELLER) == 50
    assert world.st_balance(DVP_ESCROW_ADDRESS) == 0


def test_refund_on_timeout_and_late_recv_rejected(world: World) -> None:
    terms = world.terms("T-timeout", deadline_s=400)
    locked = world.lock(terms, timeout=world.timeout(200))
    assert world.st_balance(DVP_ESCROW_ADDRESS) == 10
    world.evm.idle(advance_ns=locked.packet.timeout_timestamp - world.evm.now_ns + SEC)
    with pytest.raises(TxFailed) as info:
        world.evm.tx(world.pair.recv_msg(locked.packet, world.evm))
    assert isinstance(info.value.cause, PacketError)
    world.submit(world.exit_tx([(REFUND_ON_TIMEOUT, locked)], [world.timeout_msg(locked)]))
    assert world.balance(BUYER) == 1_000
    # The seller gets the ST back only once the deadline passed on the EVM chain.
    world.evm.idle(advance_ns=terms.deadline_ns - world.evm.now_ns + SEC)
    world.evm_call(Message(DVP_ESCROW_ADDRESS, "reclaim", (b"T-timeout",)))
    assert world.st_balance(EVM_SELLER) == ST_SUPPLY


def test_two_exits_batched_in_one_tx(world: World) -> None:
    good = world.lock(world.terms("T-b1", amount=30))
    bad = world.lock(world.terms("T-b2", amount=40), evm_lock=False)
    ack_good, ack_bad = world.recv(good), world.recv(bad)
    msgs = [world.ack_msg(good, ack_good), world.ack_msg(bad, ack_bad)]
    world.submit(world.exit_tx([(SETTLE, good), (REFUND_ON_ERROR, bad)], msgs))
    assert world.balance(SELLER) == 80 and world.balance(BUYER) == 970


# --- malformed locks --------------------------------------------------------------------------


def test_lock_builder_refuses_what_the_contract_would(world: World) -> None:
    t = world.terms("T-b")
    cash = world.cash_of(PK[BUYER])
    args = (world.admission, world.notary, world.salt())
    with pytest.raises(DvpError, match="not later"):
        lock_transaction(t, world.channel, t.deadline_ns + 1, BUYER, cash, *args)
    with pytest.raises(DvpError, match="buyer_seed"):
        lock_transaction(t, world.channel, world.timeout(), SELLER, cash, *args)
    with pytest.raises(DvpError, match="needs"):
        lock_transaction(world.terms("T-b", amount=5_000), world.channel, world.timeout(), BUYER, cash, *args)
    with pytest.raises(DvpError, match="buyer's cash"):
        lock_transaction(t, world.channel, world.timeout(), BUYER, world.cash_of(PK[SELLER]), *args)
    with pytest.raises(DvpError, match="terms"):
        lock_transaction(world.terms("bad id!"), world.channel, world.timeout(), BUYER, cash, *args)
    with pytest.raises(DvpError, match="kind"):
        exit_parts("Steal", pb.StateRef(), dvp_pb2.DvpLock(), pb.StateRef(), 0, world.notary)


def _replace_output(stx: SignedTransaction, index: int, state: pb.TransactionState) -> tuple[pb.TransactionState, ...]:
    outs = list(stx.wtx.outputs)
    outs[index] = state
    return tuple(outs)


def _replace_command(stx: SignedTransaction, index: int, cmd: pb.Command | None) -> tuple[pb.Command, ...]:
    cmds = list(stx.wtx.commands)
    if cmd is None:
        del cmds[index]
    else:
        cmds[index] = cmd
    return tuple(cmds)


def _with_lock(stx: SignedTransaction, **fields: object) -> pb.TransactionState:
    lock = lock_of(stx.wtx.outputs[1])
    assert lock is not None
    for k, v in fields.items():
        setattr(lock, k, v)
    return lock_state(lock, stx.wtx.notary, encumbrance=0)


def _send(terms: dvp_pb2.Terms, channel: str, timeout: int, signer: bytes = BUYER) -> pb.Command:
    msg = dvp_pb2.MsgDvpSend(source_channel=channel, terms=terms, timeout_timestamp=timeout,
                             sender=account_of(PK[signer]))
    return ibc_command(msg, [PK[signer]])


def test_valid_lock_is_accepted_and_a_lock_of_every_other_shape_refused(world: World) -> None:
    t = world.terms("T-shape")
    good = world.lock_tx(t)
    escrow_cash = good.wtx.outputs[0]
    # No cycle: the escrow cash is not encumbered by the lock.
    world.refused(resign(good, BUYER, outputs=_replace_output(good, 0, cash_state(
        PK[ISSUER], DVP_ESCROW_OWNER, 100, world.notary))), "complete cycles")
    unbound = pb.TransactionState()
    unbound.CopyFrom(good.wtx.outputs[1])
    unbound.has_encumbrance = False
    world.refused(resign(good, BUYER, outputs=(cash_state(PK[ISSUER], DVP_ESCROW_OWNER, 100, world.notary),
                                                 unbound, good.wtx.outputs[2])), "encumbered")
    # Wrong amount in the escrow cash (conservation kept through the change).
    outs = list(good.wtx.outputs)
    outs[0] = cash_state(PK[ISSUER], DVP_ESCROW_OWNER, 99, world.notary, encumbrance=1)
    outs[2] = cash_state(PK[ISSUER], PK[BUYER], 901, world.notary)
    world.refused(resign(good, BUYER, outputs=tuple(outs)), "escrow Cash must be owned by the DvP escrow")
    # Wrong amount in the lock alone, and in the lock and its cash (but not in the terms).
    world.refused(resign(good, BUYER, outputs=_replace_output(good, 1, _with_lock(good, amount=99))),
                  "of the lock's issuer, brand and amount")
    outs[1] = _with_lock(good, amount=99)
    world.refused(resign(good, BUYER, outputs=tuple(outs)), "does not match the terms")
    # Wrong owner: the "escrow" cash is the seller's.
    seller_cash = cash_state(PK[ISSUER], PK[SELLER], 100, world.notary, encumbrance=1)
    world.refused(resign(good, BUYER, outputs=_replace_output(good, 0, seller_cash)), "owned by the DvP escrow")
    # MsgDvpSend missing.
    world.refused(resign(good, BUYER, commands=_replace_command(good, 2, None)), "exactly one MsgDvpSend, found 0")
    # MsgDvpSend for other terms, another channel, another timeout.
    other = dvp_pb2.Terms()
    other.CopyFrom(t)
    other.sc_amount = 1
    world.refused(resign(good, BUYER, commands=_replace_command(good, 2, _send(other, world.channel, world.timeout()))),
                  "does not match the terms")
    world.refused(resign(good, BUYER, commands=_replace_command(good, 2, _send(t, "channel-9", world.timeout()))),
                  "does not match the terms")
    good_lock = lock_of(good.wtx.outputs[1])
    assert good_lock is not None
    world.refused(resign(good, BUYER, commands=_replace_command(
        good, 2, _send(t, world.channel, good_lock.timeout_timestamp + 7))), "does not match the terms")
    # Two MsgDvpSend in one lock.
    world.refused(resign(good, BUYER, commands=(*good.wtx.commands, _send(t, world.channel, world.timeout()))),
                  "exactly one MsgDvpSend, found 2")
    # Timeout after the deadline, consistently in the lock and the message.
    past = t.deadline_ns + 1
    world.refused(resign(good, BUYER, outputs=_replace_output(good, 1, _with_lock(good, timeout_timestamp=past)),
                         commands=_replace_command(good, 2, _send(t, world.channel, past))), "not later than")
    assert escrow_cash == good.wtx.outputs[0]
    world.submit(good)
    assert world.balance(DVP_ESCROW_OWNER) == 100


def test_lock_refused_for_unadmitted_payee_duplicate_trade_or_without_the_buyer(world: World) -> None:
    # Payee not admitted by the issuer.
    world.refused(world.lock_tx(world.terms("T-out", seller=OUTSIDER)), "payee is not admitted")
    # Duplicate trade id: the dvp module refuses a second packet for it.
    first = world.lock(world.terms("T-dup"))
    world.refused(world.lock_tx(world.terms("T-dup", amount=5)), "already sent", IbcRejected)
    assert trade_sequence(world.corda.store.get, "T-dup") == first.packet.sequence
    # Not signed by the buyer: the seller pays from its own cash but names the buyer as payer.
    t = world.terms("T-nosig", amount=10)
    stx = world.lock_tx(t)
    cash = world.cash_of(PK[SELLER])
    lock = lock_of(stx.wtx.outputs[1])
    assert lock is not None
    send = dvp_pb2.MsgDvpSend(source_channel=world.channel, terms=t, timeout_timestamp=lock.timeout_timestamp,
                              sender=account_of(PK[SELLER]))
    commands = (pb.Command(contract=DVP, name=LOCK, data=stx.wtx.commands[0].data, signers=[PK[SELLER]]),
                pb.Command(contract=CASH, name="Move", signers=[PK[SELLER]]),
                ibc_command(send, [PK[SELLER]]))
    outs = (stx.wtx.outputs[0], stx.wtx.outputs[1], cash_state(PK[ISSUER], PK[SELLER], 40, world.notary))
    forged = resign(stx, SELLER, inputs=tuple(r for r, _ in cash), outputs=outs, commands=commands)
    world.refused(forged, "payer")
    # ... and the buyer's own lock without the buyer's signature is missing a required signer.
    world.refused(resign(stx, RELAYER), "missing required signature")


def test_a_dvp_packet_cannot_be_sent_without_its_lock(world: World) -> None:
    t = world.terms("T-free")
    stx = SignedTransaction(world.wtx(commands=[_send(t, world.channel, world.timeout())])).sign(BUYER)
    world.refused(stx, "must ride in the tx that creates its trade's DvpLock")
    # Nor by someone else in the buyer's name.
    msg = dvp_pb2.MsgDvpSend(source_channel=world.channel, terms=t, timeout_timestamp=world.timeout(),
                             sender=account_of(PK[BUYER]))
    stx = SignedTransaction(world.wtx(commands=[ibc_command(msg, [PK[OUTSIDER]])])).sign(OUTSIDER)
    world.refused(stx, "sender must be the account of a signer")


# --- the locked cash moves only by the three exits ---------------------------------------------


def test_locked_cash_cannot_move_any_other_way(world: World) -> None:
    locked = world.lock(world.terms("T-x", amount=100))
    other = world.lock(world.terms("T-y", amount=60), evm_lock=False)
    ack = world.recv(locked)  # success
    other_ack = world.recv(other)  # error
    n = world.notary
    to_buyer = cash_state(PK[ISSUER], PK[BUYER], 100, n)
    to_seller = cash_state(PK[ISSUER], PK[SELLER], 100, n)
    move = pb.Command(contract=CASH, name="Move", signers=[PK[BUYER]])
    refs = [world.admission]
    # A plain Cash Move by the buyer.
    world.refused(SignedTransaction(world.wtx([locked.cash_ref], [to_buyer], [move], refs)).sign(BUYER),
                  "encumbered")
    # By the escrow "owner" (no signature) without the lock.
    free = pb.Command(contract=CASH, name="Move")
    world.refused(SignedTransaction(world.wtx([locked.cash_ref], [to_seller], [free], refs)).sign(RELAYER),
                  "encumbered")
    # Both states, but only a Cash Move.
    world.refused(SignedTransaction(world.wtx([locked.cash_ref, locked.lock_ref], [to_seller], [free], refs))
                  .sign(RELAYER), "DvP states change only under a DvP command")
    # Only the lock, with an exit command and the real ack.
    msg = world.ack_msg(locked, ack)
    inputs, _, commands = exit_parts(SETTLE, locked.lock_ref, locked.lock, locked.cash_ref, 0, n)
    only_lock = world.wtx([locked.lock_ref], [], [commands[0], ibc_command(msg, [PK[RELAYER]])], refs)
    world.refused(SignedTransaction(only_lock).sign(RELAYER), "encumbered")
    # An exit without the IBC message.
    world.refused(world.exit_tx([(SETTLE, locked)], []), "exactly one ack or timeout of its packet, found 0")
    # Settle with an error ack, RefundOnError with a success ack, RefundOnTimeout with an ack.
    other_msg = world.ack_msg(other, other_ack)
    world.refused(world.exit_tx([(SETTLE, other)], [other_msg]), "Settle does not match")
    world.refused(world.exit_tx([(REFUND_ON_ERROR, locked)], [msg]), "RefundOnError does not match")
    world.refused(world.exit_tx([(REFUND_ON_TIMEOUT, locked)], [msg]), "RefundOnTimeout does not match")
    # An exit paying the wrong party or the wrong amount.
    _, _, settle_cmds = exit_parts(SETTLE, locked.lock_ref, locked.lock, locked.cash_ref, 0, n)
    relayed = ibc_command(msg, [PK[RELAYER]])
    wrong_party = world.wtx(inputs, [to_buyer], [*settle_cmds, relayed], refs)
    world.refused(SignedTransaction(wrong_party).sign(RELAYER), "must pay 100")
    short = [cash_state(PK[ISSUER], PK[SELLER], 99, n), cash_state(PK[ISSUER], PK[BUYER], 1, n)]
    world.refused(SignedTransaction(world.wtx(inputs, short, [*settle_cmds, relayed], refs)).sign(RELAYER),
                  "must pay 100")
    # ... or paying it encumbered (here in a cycle with the buyer's change, which the buyer signs for).
    ((change_ref, change),) = world.cash_of(PK[BUYER])
    cycle = [cash_state(PK[ISSUER], PK[SELLER], 100, n, encumbrance=1),
             cash_state(PK[ISSUER], PK[BUYER], change.amount, n, encumbrance=0)]
    cycle_tx = world.wtx([*inputs, change_ref], cycle, [settle_cmds[0], move, relayed], refs)
    world.refused(SignedTransaction(cycle_tx).sign(RELAYER).sign(BUYER), "must be unencumbered Cash")
    # An exit that brings another trade's packet.
    world.refused(world.exit_tx([(REFUND_ON_ERROR, locked)], [other_msg]),
                  "an exit rides with exactly one ack or timeout of its packet, found 0")
    # ... or a real exit that also acks another trade's packet, leaving that trade's cash locked.
    world.refused(world.exit_tx([(SETTLE, locked)], [msg, other_msg]), "must consume that trade's DvpLock")
    # An ack for a dvp packet without the exit (a relayer-only tx).
    with pytest.raises(TxFailed, match="must consume that trade's DvpLock"):
        world.corda.tx(world.ack_msg(locked, ack))
    # A fabricated packet at a sequence that was never sent: the core would treat it as a
    # duplicate (no commitment, nothing verified), so the exit must refuse it.
    fake = chpb.Packet()
    fake.CopyFrom(locked.packet)
    fake.sequence = 99
    forged = chpb.MsgAcknowledgement(packet=fake, acknowledgement=SUCCESS_ACK, proof_acked=b"\x00",
                                     proof_height=msg.proof_height, signer="relayer")
    world.refused(world.exit_tx([(SETTLE, locked)], [forged]), "is not the pending packet its lock sent")
    # A success ack substituted for the proven error ack does not verify.
    swapped = chpb.MsgAcknowledgement()
    swapped.CopyFrom(other_msg)
    swapped.acknowledgement = SUCCESS_ACK
    world.refused(world.exit_tx([(SETTLE, other)], [swapped]), "failed", IbcRejected)
    # Two exits claiming one output (payee of both gets paid once, someone else the rest).
    both = world.exit_tx([(SETTLE, locked), (REFUND_ON_ERROR, other)], [msg, other_msg])
    cmds = list(both.wtx.commands)
    cmds[2] = pb.Command(contract=DVP, name=REFUND_ON_ERROR,
                         data=dvp_pb2.DvpCommand(trade_id="T-y", output_index=0).SerializeToString(), signers=[])
    world.refused(resign(both, RELAYER, commands=tuple(cmds)), "its own output")
    # Nothing moved; the real exits still work afterwards, once each.
    assert world.balance(DVP_ESCROW_OWNER) == 160
    settle = world.exit_tx([(SETTLE, locked)], [msg])
    world.submit(settle)
    world.submit(world.exit_tx([(REFUND_ON_ERROR, other)], [other_msg]))
    assert world.balance(SELLER) == 150 and world.balance(BUYER) == 900
    # Replaying the settle (same lock, fresh tx): the packet is no longer pending, and the
    # lock is spent.
    replay = world.exit_tx([(SETTLE, locked)], [msg])
    world.refused(replay, "is not the pending packet its lock sent")
    with pytest.raises(DoubleSpend):
        world.corda.cluster.check_unique(replay)


def test_no_variation_of_the_one_valid_exit_is_notarised(world: World) -> None:
    """Fuzz every part of a settle at once: only the exact exit the ack proves may pass."""
    locked = world.lock(world.terms("T-fz", amount=100))
    other = world.lock(world.terms("T-fo", amount=60), evm_lock=False)
    ack_msg = world.ack_msg(locked, world.recv(locked))
    error_msg = world.ack_msg(other, world.recv(other))
    timeout_msg = chpb.MsgTimeout(packet=locked.packet, proof_unreceived=b"\x00", proof_height=ack_msg.proof_height,
                                  next_sequence_recv=0, signer="relayer")
    messages: dict[str, list[PbMessage]] = {
        "ack": [ack_msg], "error": [error_msg], "timeout": [timeout_msg], "none": [], "both": [ack_msg, error_msg],
    }
    owners = {"payee": PK[SELLER], "payer": PK[BUYER], "issuer": PK[ISSUER]}
    n = world.notary

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(EXITS), msg=st.sampled_from(sorted(messages)), owner=st.sampled_from(sorted(owners)),
           delta=st.sampled_from([-1, 0, 1]), with_cash=st.booleans(), with_lock=st.booleans(),
           index=st.sampled_from([0, 1]), trade=st.sampled_from(["T-fz", "T-fo"]))
    def attempt(kind: str, msg: str, owner: str, delta: int, with_cash: bool, with_lock: bool, index: int,
                trade: str) -> None:
        valid = (kind, msg, owner, delta, with_cash, with_lock, index, trade) == (
            SETTLE, "ack", "payee", 0, True, True, 0, "T-fz")
        assume(not valid)
        inputs = [r for r, keep in ((locked.cash_ref, with_cash), (locked.lock_ref, with_lock)) if keep]
        outputs = [cash_state(PK[ISSUER], owners[owner], 100 + delta, n)]
        data = dvp_pb2.DvpCommand(trade_id=trade, output_index=index).SerializeToString(deterministic=True)
        commands = [pb.Command(contract=DVP, name=kind, data=data), pb.Command(contract=CASH, name="Move")]
        commands += [ibc_command(m, [PK[RELAYER]]) for m in messages[msg]]
        stx = SignedTransaction(world.wtx(inputs, outputs, commands, [world.admission])).sign(RELAYER)
        world.refused(stx, ".")

    attempt()
    world.submit(world.exit_tx([(SETTLE, locked)], [ack_msg]))
    world.submit(world.exit_tx([(REFUND_ON_ERROR, other)], [error_msg]))
    assert world.balance(SELLER) == 150 and world.balance(BUYER) == 900


def test_exit_kinds_and_read_helpers(world: World) -> None:
    assert set(EXITS) == {SETTLE, REFUND_ON_ERROR, REFUND_ON_TIMEOUT}
    assert trade_key("T-1") == b"dvp/trades/T-1"
    assert trade_sequence(world.corda.store.get, "T-1") is None
    assert lock_of(cash_state(PK[ISSUER], PK[BUYER], 1, world.notary)) is None
    assert lock_of(pb.TransactionState(contract=DVP, data=b"\xff")) is None
    assert exit_kind([pb.Command(contract=DVP, name=SETTLE, data=b"\xff")], "T-1") is None
    packet_data = encode_packet_data(world.terms("T-1"))
    assert packet_data


def test_dvp_channel_must_be_unordered_with_the_dvp_version(world: World) -> None:
    pair = world.pair
    for order, version, match in ((chpb.ORDER_ORDERED, VERSION, "unordered"),
                                  (chpb.ORDER_UNORDERED, "ics20-1", "version")):
        with pytest.raises(TxFailed, match=match):
            world.corda.tx(pair.chan_init_msg(world.corda, "dvp", "dvp", order, version))
    with pytest.raises(TxFailed, match="both ends"):
        world.corda.tx(pair.chan_init_msg(world.corda, "dvp", "transfer", chpb.ORDER_UNORDERED, VERSION))


# --- the node: dvp_lock query, live and after replay --------------------------------------------


def test_node_dvp_lock_query_follows_the_lock_and_survives_replay(tmp_path: Path) -> None:
    home = tmp_path / "corda"
    init_home(home, "corda", "corda-node", 4, genesis_time_ns=START_NS)
    db = NodeDatabase(home / "data" / "node.db")
    app = KIND.open_app(load_node_config(home), db)
    assert isinstance(app, CordaApp)
    node = NodeCordaHost(app, db)
    evm = EvmHost("evm-node", 1003, START_NS, 3 * SEC)
    pair = HostPair("corda-evm", node, evm)
    channel, _ = pair.open_channel(port="dvp", version=VERSION)
    keys = home / "keys"
    buyer_seed = bytes.fromhex((keys / "holder-firm-a.key").read_text().strip())
    buyer, seller = ed25519_public_key(buyer_seed), app.genesis.holder("firm-b")
    issuer = app.genesis.issuer
    h = node.height.revision_height
    info = app.query_app("chain_info", {}, h)
    assert info["dvp_escrow_owner"] == DVP_ESCROW_OWNER.hex()
    assert app.query_app("dvp_lock", {"trade_id": "N-1"}, h)["status"] == "none"
    with pytest.raises(QueryError, match="dvp_lock"):
        app.query_app("dvp_locks", {}, h)
    with pytest.raises(QueryError, match="trade_id"):
        app.query_app("dvp_lock", {"trade_id": 7}, h)
    adm = app.query_app("holders", {}, h)[issuer.hex()]["admission"]
    admission = pb.StateRef(txid=bytes.fromhex(adm["txid"]), index=adm["index"])
    cash = [(pb.StateRef(txid=bytes.fromhex(r["txid"]), index=r["index"]),
             pb.Cash(issuer=bytes.fromhex(r["issuer"]), owner=bytes.fromhex(r["owner"]), amount=r["amount"]))
            for r in app.query_app("cash_states", {"owner": buyer.hex()}, h) if r["brand"] == ""]  # not KUSD
    terms = dvp_pb2.Terms(trade_id="N-1", security_token=SECURITY_TOKEN_ADDRESS, st_quantity=3, cash_issuer=issuer,
                          sc_amount=250, seller_evm=EVM_SELLER, buyer_evm=EVM_BUYER, seller_corda=seller,
                          buyer_corda=buyer, deadline_ns=evm.now_ns + 900 * SEC)
    timeout = evm.now_ns + 600 * SEC
    stx = lock_transaction(terms, channel, timeout, buyer_seed, cash, admission, app.genesis.identity,
                           sha256(b"node-lock"))
    node.submit(stx)
    locked_at = node.height.revision_height
    answer = app.query_app("dvp_lock", {"trade_id": "N-1"}, locked_at)
    lock = lock_of(stx.wtx.outputs[1])
    assert lock is not None
    assert answer == {
        "trade_id": "N-1", "status": "locked", "lock": {"txid": stx.txid.hex(), "index": 1},
        "cash": {"txid": stx.txid.hex(), "index": 0}, "lock_state": lock.SerializeToString(deterministic=True).hex(),
        "payer": buyer.hex(), "payee": seller.hex(), "amount": 250, "channel_id": channel, "sequence": 1,
        "timeout_timestamp": timeout, "exit_txid": None, "cash_issuer": issuer.hex(), "brand": "",
    }
    assert app.query_app("dvp_lock", {"trade_id": "N-1"}, locked_at - 1)["status"] == "none"
    # The EVM chain holds no escrow for N-1: error ack, and the relayer's tx carries the refund.
    packet = pair.last_packet(node)
    evm.tx(pair.recv_msg(packet, evm))
    ack = pair.last_event(evm, "write_acknowledgement").get("ack")
    assert ack is not None and not ack_succeeded(ack)
    msg = pair.ack_msg(packet, ack, node)
    inputs, outputs, commands = exit_parts(REFUND_ON_ERROR, pb.StateRef(txid=stx.txid, index=1), lock,
                                           pb.StateRef(txid=stx.txid, index=0), 0, app.genesis.identity)
    exit_wtx = WireTransaction(inputs=tuple(inputs), outputs=tuple(outputs),
                               commands=(*commands, ibc_command(msg, [PK[RELAYER]])), notary=app.genesis.identity,
                               privacy_salt=sha256(b"node-exit"), references=(admission,))
    exit_stx = SignedTransaction(exit_wtx).sign(RELAYER)
    node.submit(exit_stx)
    done = node.height.revision_height
    expected = dict(answer, status="refunded_error", exit_txid=exit_stx.txid.hex())
    assert app.query_app("dvp_lock", {"trade_id": "N-1"}, done) == expected
    assert app.query_app("dvp_lock", {"trade_id": "N-1"}, done - 1)["status"] == "locked"
    holders = [app.genesis.holder(n) for n in ("firm-a", "firm-b", "firm-c")]
    supply = sum(app.query_app("balances", {"owner": k.hex()}, done)["by_issuer"][issuer.hex()] for k in holders)
    assert supply == 3 * 1_000_000 and app.query_app("balances", {"owner": DVP_ESCROW_OWNER.hex()}, done)[
        "by_issuer"] == {}
    assert app.query_app("balances", {"owner": buyer.hex()}, done)["by_issuer"][issuer.hex()] == 1_000_000
    # Restart: the ledger and the lock index are rebuilt by replay and answer the same.
    db.close()
    db = NodeDatabase(home / "data" / "node.db")
    again = KIND.open_app(load_node_config(home), db)
    assert again.query_app("dvp_lock", {"trade_id": "N-1"}, done) == expected
    assert again.query_app("dvp_lock", {"trade_id": "N-1"}, locked_at)["status"] == "locked"
    db.close()
