"""The Corda half of atomic DvP: the DvpLock contract, the sending ``dvp`` module, builders.

The buyer pays in ONE notarised transaction that consumes its Cash, creates
Cash(owner = DVP_ESCROW_OWNER) and a DvpLock encumbering each other in a cycle, and carries a
MsgDvpSend that the notaries' IBC host executes: the packet with the trade's terms leaves in
the same all-or-nothing step that locks the cash. From then on the cycle means neither state
moves without the other, and the DvpLock contract allows exactly three ways out, each only in
the transaction where the IBC core verifies the packet's fate on the EVM chain:

- ``Settle``: a MsgAcknowledgement with a success ack -> the cash goes to the payee (seller);
- ``RefundOnError``: a MsgAcknowledgement with an error ack -> back to the payer (buyer);
- ``RefundOnTimeout``: a MsgTimeout / MsgTimeoutOnClose -> back to the payer.

Exits need no signature: the proof the IBC core checks in the same transaction is the
authority, and the transaction is refused as a whole when it does not verify. The IBC host
rule (chains/corda/ibc_host.py) closes the other direction: a dvp packet cannot be acked or
timed out without consuming its lock.

Why the exit pins the packet through the IBC store: the sequence is assigned when the lock
transaction executes, after the buyer signed it, so the lock names its packet by (channel,
trade id). The module refuses a second send with a trade id and records ``dvp/trades/{id}``
-> sequence; an exit must carry exactly that packet while its commitment is still stored. A
message about any other sequence with a copy of the terms would be a successful no-op in the
core (no commitment, nothing verified), so without the pin it could release the cash unproven.

Brands: the trade's terms name the SC brand (``sc_brand``) of ``cash_issuer`` it pays in, and
the lock records it (``DvpLock.brand``). The Lock requires the escrow Cash to be of exactly that
(issuer, brand) and the payee admitted by that brand's Admission; every exit pays out Cash of
the same (issuer, brand). With the Cash contract conserving each (issuer, brand) separately, a
buyer cannot pay a brand-B trade with brand-A cash, and the seller receives only the brand the
EVM leg's terms hash committed to.

Status of a lock for queries is derived from the ledger: a lock is "locked" until consumed,
and the consuming transaction's DvP command for its trade says how it ended.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from chains.corda.cash import ADMISSION, CASH, DVP, DVP_ESCROW_OWNER, cash_state, parse_cash
from chains.corda.contracts import ContractError, LedgerTransaction, StateAndRef
from chains.corda.ibc_host import account_of, ibc_command, ibc_messages, type_name, unpack_as
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.ibc import packets
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.context import Acknowledgement, Context, height_of
from chains.ibc.errors import IdentifierExists, InvalidMessage
from chains.ibc.handler import IbcHandler
from chains.ibc.host import paths
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from lightclients.crypto import ed25519_public_key

__all__ = [
    "DVP",
    "DVP_ESCROW_OWNER",
    "EXITS",
    "LOCK",
    "REFUND_ON_ERROR",
    "REFUND_ON_TIMEOUT",
    "SETTLE",
    "STATUS_OF_EXIT",
    "DvpContract",
    "DvpError",
    "DvpModule",
    "exit_kind",
    "exit_parts",
    "install",
    "lock_of",
    "lock_state",
    "lock_transaction",
    "trade_key",
    "trade_sequence",
]

LOCK = "Lock"
SETTLE = "Settle"
REFUND_ON_ERROR = "RefundOnError"
REFUND_ON_TIMEOUT = "RefundOnTimeout"
EXITS = (SETTLE, REFUND_ON_ERROR, REFUND_ON_TIMEOUT)
STATUS_OF_EXIT = {SETTLE: "settled", REFUND_ON_ERROR: "refunded_error", REFUND_ON_TIMEOUT: "refunded_timeout"}
_ACK = chpb.MsgAcknowledgement.DESCRIPTOR.full_name
_TIMEOUTS = {chpb.MsgTimeout.DESCRIPTOR.full_name, chpb.MsgTimeoutOnClose.DESCRIPTOR.full_name}
_DVP_SEND = dvp_pb2.MsgDvpSend.DESCRIPTOR.full_name


class DvpError(ValueError):
    """A builder was asked for a transaction the DvpLock contract would refuse."""


# --- the trade index in the IBC store ------------------------------------------------------


def trade_key(trade_id: str) -> bytes:
    """IBC store key of a trade's packet sequence; its presence marks the trade id as used."""
    return f"dvp/trades/{trade_id}".encode()


def trade_sequence(read: Callable[[bytes], bytes | None], trade_id: str) -> int | None:
    """The sequence of the packet the trade's lock sent, or None if no lock sent one."""
    raw = read(trade_key(trade_id))
    return int.from_bytes(raw, "big") if raw is not None and len(raw) == 8 else None


# --- states and commands -------------------------------------------------------------------


def _parse_lock(state: pb.TransactionState) -> dvp_pb2.DvpLock:
    lock = dvp_pb2.DvpLock()
    try:
        lock.ParseFromString(state.data)
    except DecodeError:
        raise ContractError("DvpLock state data does not decode") from None
    if lock.port_id != dvp_app.PORT_ID or not lock.channel_id:
        raise ContractError(f"a DvpLock names port {dvp_app.PORT_ID!r} and a channel")
    if any(len(k) != 32 for k in (lock.payer, lock.payee, lock.cash_issuer, lock.terms_hash)):
        raise ContractError("a DvpLock needs 32-byte payer, payee, cash issuer and terms hash")
    if lock.payer == lock.payee or lock.amount == 0 or lock.timeout_timestamp == 0:
        raise ContractError("a DvpLock needs distinct payer and payee, an amount and a timeout")
    return lock


def lock_of(state: pb.TransactionState) -> dvp_pb2.DvpLock | None:
    """The DvpLock a ledger state holds, or None for any other (or malformed) state."""
    if state.contract != DVP:
        return None
    try:
        return _parse_lock(state)
    except ContractError:
        return None


def lock_state(lock: dvp_pb2.DvpLock, notary: bytes, encumbrance: int) -> pb.TransactionState:
    return pb.TransactionState(
        contract=DVP, data=lock.SerializeToString(deterministic=True), participants=[lock.payer, lock.payee],
        notary=notary, has_encumbrance=True, encumbrance=encumbrance,
    )


def _command(name: str, trade_id: str, output_index: int, signers: Sequence[bytes]) -> pb.Command:
    data = dvp_pb2.DvpCommand(trade_id=trade_id, output_index=output_index).SerializeToString(deterministic=True)
    return pb.Command(contract=DVP, name=name, data=data, signers=list(signers))


def _parse_command(c: pb.Command) -> dvp_pb2.DvpCommand:
    if c.name not in (LOCK, *EXITS):
        raise ContractError(f"unknown DvP command {c.name!r}")
    data = dvp_pb2.DvpCommand()
    try:
        data.ParseFromString(c.data)
    except DecodeError:
        raise ContractError("DvP command data does not decode") from None
    if not data.trade_id:
        raise ContractError("a DvP command names its trade id")
    return data


def exit_kind(commands: Sequence[pb.Command], trade_id: str) -> str | None:
    """How the transaction with these commands ended trade ``trade_id``'s lock, if it did."""
    for c in commands:
        if c.contract == DVP and c.name in EXITS:
            try:
                if _parse_command(c).trade_id == trade_id:
                    return str(c.name)
            except ContractError:
                continue
    return None


# --- the contract --------------------------------------------------------------------------


@dataclass(frozen=True)
class _PacketExit:
    kind: str  # message type's full name
    packet: chpb.Packet
    ack: bytes


def _dvp_packet_exits(messages: list[any_pb2.Any]) -> list[tuple[_PacketExit, dvp_pb2.Terms]]:
    out = []
    for m in messages:
        name = type_name(m)
        if name == _ACK:
            ack = unpack_as(m, chpb.MsgAcknowledgement)
            found = _PacketExit(name, ack.packet, bytes(ack.acknowledgement))
        elif name == chpb.MsgTimeout.DESCRIPTOR.full_name:
            found = _PacketExit(name, unpack_as(m, chpb.MsgTimeout).packet, b"")
        elif name == chpb.MsgTimeoutOnClose.DESCRIPTOR.full_name:
            found = _PacketExit(name, unpack_as(m, chpb.MsgTimeoutOnClose).packet, b"")
        else:
            continue
        if found.packet.source_port != dvp_app.PORT_ID:
            continue
        try:
            terms = dvp_app.decode_packet_data(bytes(found.packet.data))
        except InvalidMessage as exc:
            raise ContractError(f"dvp packet {found.packet.sequence}: {exc}") from None
        out.append((found, terms))
    return out


def _admitted(ltx: LedgerTransaction, issuer: bytes, brand: str, holder: bytes) -> bool:
    if holder == issuer:
        return True
    for ref in ltx.references:
        if ref.state.contract == ADMISSION:
            adm = pb.Admission()
            try:
                adm.ParseFromString(ref.state.data)
            except DecodeError:
                raise ContractError("Admission state data does not decode") from None
            if bytes(adm.issuer) == issuer and adm.brand == brand and holder in {bytes(h) for h in adm.holders}:
                return True
    return False


class DvpContract:
    """DvpLock: created only by Lock, consumed only by Settle, RefundOnError or RefundOnTimeout."""

    name = DVP

    def verify(self, ltx: LedgerTransaction) -> None:
        cmds = [(c, _parse_command(c)) for c in ltx.commands_for(DVP)]
        if not cmds:
            raise ContractError("DvP states change only under a DvP command")
        ins = [(s, _parse_lock(s.state)) for s in ltx.inputs if s.state.contract == DVP]
        outs = [(i, _parse_lock(s)) for i, s in enumerate(ltx.outputs) if s.contract == DVP]
        messages = ibc_messages(ltx.commands)
        if any(c.name == LOCK for c, _ in cmds):
            self._verify_lock(ltx, cmds, ins, outs, messages)
        else:
            self._verify_exits(ltx, cmds, ins, outs, messages)

    # --- Lock ---

    @staticmethod
    def _verify_lock(
        ltx: LedgerTransaction, cmds: list[tuple[pb.Command, dvp_pb2.DvpCommand]],
        ins: list[tuple[StateAndRef, dvp_pb2.DvpLock]], outs: list[tuple[int, dvp_pb2.DvpLock]],
        messages: list[any_pb2.Any],
    ) -> None:
        if len(cmds) != 1 or ins or len(outs) != 1:
            raise ContractError("a Lock is the only DvP command of its tx, consumes no lock and creates one")
        (cmd, data), (index, lock) = cmds[0], outs[0]
        if data.trade_id != lock.trade_id:
            raise ContractError("the Lock command names another trade than its DvpLock")
        state = ltx.outputs[index]
        cash_index = int(state.encumbrance)
        if not state.has_encumbrance or cash_index >= len(ltx.outputs) or ltx.outputs[cash_index].contract != CASH:
            raise ContractError("the DvpLock must be encumbered by the escrow Cash output")
        cash_st = ltx.outputs[cash_index]
        cash = parse_cash(cash_st)
        if not cash_st.has_encumbrance or cash_st.encumbrance != index:
            raise ContractError("the escrow Cash and the DvpLock must encumber each other")
        if (bytes(cash.owner), bytes(cash.issuer), cash.brand, cash.amount) != (
                DVP_ESCROW_OWNER, lock.cash_issuer, lock.brand, lock.amount):
            raise ContractError(
                "the escrow Cash must be owned by the DvP escrow, of the lock's issuer, brand and amount")
        sends = [unpack_as(m, dvp_pb2.MsgDvpSend) for m in messages if type_name(m) == _DVP_SEND]
        if len(sends) != 1:
            raise ContractError(f"a Lock carries exactly one MsgDvpSend, found {len(sends)}")
        send = sends[0]
        try:
            dvp_app.validate_terms(send.terms)
        except InvalidMessage as exc:
            raise ContractError(f"MsgDvpSend terms: {exc}") from None
        t = send.terms
        expected = (t.trade_id, t.buyer_corda, t.seller_corda, t.cash_issuer, t.sc_brand, t.sc_amount,
                    dvp_app.terms_hash(t), send.source_channel, send.timeout_timestamp)
        actual = (lock.trade_id, lock.payer, lock.payee, lock.cash_issuer, lock.brand, lock.amount, lock.terms_hash,
                  lock.channel_id, lock.timeout_timestamp)
        if expected != actual:
            raise ContractError("the DvpLock does not match the terms, channel and timeout of its MsgDvpSend")
        if not 0 < send.timeout_timestamp <= t.deadline_ns:
            raise ContractError("the packet timeout must be set and not later than the ST deadline")
        payer = bytes(lock.payer)
        if payer not in ltx.signers or payer not in {bytes(k) for k in cmd.signers}:
            raise ContractError("the buyer (payer) must sign the Lock")
        if not _admitted(ltx, bytes(lock.cash_issuer), lock.brand, bytes(lock.payee)):
            raise ContractError(
                f"the payee is not admitted to hold this issuer's cash of brand {lock.brand!r} "
                "(reference that brand's Admission)")

    # --- exits ---

    @staticmethod
    def _verify_exits(
        ltx: LedgerTransaction, cmds: list[tuple[pb.Command, dvp_pb2.DvpCommand]],
        ins: list[tuple[StateAndRef, dvp_pb2.DvpLock]], outs: list[tuple[int, dvp_pb2.DvpLock]],
        messages: list[any_pb2.Any],
    ) -> None:
        if outs:
            raise ContractError("a DvpLock is created only by a Lock")
        by_trade: dict[str, tuple[str, int]] = {}
        for c, data in cmds:
            if data.trade_id in by_trade:
                raise ContractError(f"trade {data.trade_id!r} has more than one DvP command")
            by_trade[data.trade_id] = (str(c.name), int(data.output_index))
        if len({i for _, i in by_trade.values()}) != len(by_trade):
            raise ContractError("each exit pays through its own output")
        if sorted(by_trade) != sorted(lock.trade_id for _, lock in ins):
            raise ContractError("every exit consumes exactly its own trade's DvpLock and nothing else's")
        view = ltx.ibc_view
        if view is None:
            raise ContractError("a DvP exit needs the IBC host: it is proven by an ack or timeout")
        inputs = {(bytes(s.ref.txid), int(s.ref.index)): s.state for s in ltx.inputs}
        # Acks / timeouts by (channel, trade id), so matching k exits to their packets is O(k).
        packet_exits: dict[tuple[str, str], list[tuple[_PacketExit, dvp_pb2.Terms]]] = {}
        for found_exit, found_terms in _dvp_packet_exits(messages):
            packet_exits.setdefault((found_exit.packet.source_channel, found_terms.trade_id), []).append(
                (found_exit, found_terms))
        for sar, lock in ins:
            name, output_index = by_trade[lock.trade_id]
            cash_st = inputs.get((bytes(sar.ref.txid), int(sar.state.encumbrance)))
            if not sar.state.has_encumbrance or cash_st is None or cash_st.contract != CASH:
                raise ContractError(f"trade {lock.trade_id!r}: the lock's escrow Cash must be consumed with it")
            cash = parse_cash(cash_st)
            if (bytes(cash.owner), bytes(cash.issuer), cash.brand, cash.amount) != (
                    DVP_ESCROW_OWNER, lock.cash_issuer, lock.brand, lock.amount):
                raise ContractError(f"trade {lock.trade_id!r}: the consumed escrow Cash is not the lock's")
            mine = packet_exits.get((lock.channel_id, lock.trade_id), [])
            if len(mine) != 1:
                raise ContractError(
                    f"trade {lock.trade_id!r}: an exit rides with exactly one ack or timeout of its packet, "
                    f"found {len(mine)}"
                )
            found, terms = mine[0]
            if dvp_app.terms_hash(terms) != lock.terms_hash:
                raise ContractError(f"trade {lock.trade_id!r}: the packet's terms are not the locked terms")
            packet = found.packet
            commitment = view(paths.packet_commitment(packet.source_port, packet.source_channel, packet.sequence))
            if trade_sequence(view, lock.trade_id) != packet.sequence or commitment is None:
                raise ContractError(
                    f"trade {lock.trade_id!r}: packet {packet.sequence} is not the pending packet its lock sent"
                )
            if name == SETTLE:
                ok = found.kind == _ACK and dvp_app.ack_succeeded(found.ack)
                payee = bytes(lock.payee)
            elif name == REFUND_ON_ERROR:
                ok = found.kind == _ACK and not dvp_app.ack_succeeded(found.ack)
                payee = bytes(lock.payer)
            else:
                ok = found.kind in _TIMEOUTS
                payee = bytes(lock.payer)
            if not ok:
                raise ContractError(f"trade {lock.trade_id!r}: {name} does not match the packet's {found.kind}")
            if output_index >= len(ltx.outputs):
                raise ContractError(f"trade {lock.trade_id!r}: output {output_index} does not exist")
            out = ltx.outputs[output_index]
            if out.contract != CASH or out.has_encumbrance:
                raise ContractError(f"trade {lock.trade_id!r}: output {output_index} must be unencumbered Cash")
            paid = parse_cash(out)
            if (bytes(paid.owner), bytes(paid.issuer), paid.brand, paid.amount) != (
                    payee, lock.cash_issuer, lock.brand, lock.amount):
                raise ContractError(
                    f"trade {lock.trade_id!r}: {name} must pay {lock.amount} of the lock's issuer and brand to "
                    f"{'the payee' if name == SETTLE else 'the payer'}"
                )


# --- the IBC module ------------------------------------------------------------------------


class DvpModule(dvp_app.ChannelHandshake):
    """The ``dvp`` port on the Corda chain: sends DvP packets; it never receives any.

    The channel handshake is the protocol's (:class:`dvp_app.ChannelHandshake`); this class adds
    sending, the packet callbacks and what a close from the EVM end means for the locks.
    """

    def send(self, ctx: Context, msg: dvp_pb2.MsgDvpSend) -> int:
        """MsgDvpSend: one packet per trade id, timeout on the EVM clock within the deadline."""
        if not msg.HasField("terms"):
            raise InvalidMessage("MsgDvpSend needs terms")
        terms = msg.terms
        dvp_app.validate_terms(terms)
        if msg.sender != account_of(bytes(terms.buyer_corda)):
            raise InvalidMessage("MsgDvpSend sender must be the account of the buyer (terms.buyer_corda)")
        if not 0 < msg.timeout_timestamp <= terms.deadline_ns:
            raise InvalidMessage("the dvp packet timeout must be set and not later than terms.deadline_ns")
        key = trade_key(terms.trade_id)
        if ctx.store.get(key) is not None:
            raise IdentifierExists(f"trade id {terms.trade_id!r} already sent a dvp packet on this chain")
        seq = packets.send_packet(ctx, dvp_app.PORT_ID, msg.source_channel, height_of(msg.timeout_height),
                                  msg.timeout_timestamp, dvp_app.encode_packet_data(terms))
        ctx.store.set(key, seq.to_bytes(8, "big"))
        return seq

    def on_chan_close_confirm(self, ctx: Context, port_id: str, channel_id: str) -> None:
        # Closed from the other end: locks still open exit by RefundOnTimeout (timeout on close).
        return None

    def on_recv_packet(self, ctx: Context, packet: chpb.Packet, relayer: str) -> Acknowledgement:
        return Acknowledgement(False, dvp_app.error_ack("the Corda dvp port sends packets, it receives none"))

    def on_acknowledgement_packet(
        self, ctx: Context, packet: chpb.Packet, acknowledgement: bytes, relayer: str
    ) -> None:
        # The outcome is the lock's exit in the same transaction (DvpContract); nothing else to do.
        return None

    def on_timeout_packet(self, ctx: Context, packet: chpb.Packet, relayer: str) -> None:
        return None


def install(handler: IbcHandler) -> DvpModule:
    """Bind the ``dvp`` port and let MsgDvpSend run inside the host's IBC transactions."""
    module = DvpModule()
    handler.bind_port(dvp_app.PORT_ID, module)
    handler.register_message(dvp_pb2.MsgDvpSend, module.send)
    return module


# --- builders ------------------------------------------------------------------------------


def lock_transaction(
    terms: dvp_pb2.Terms, channel_id: str, timeout_timestamp: int, buyer_seed: bytes,
    cash_inputs: list[tuple[pb.StateRef, pb.Cash]], admission_ref: pb.StateRef, notary: bytes, salt: bytes,
) -> SignedTransaction:
    """The buyer's signed lock transaction.

    Outputs: 0 = Cash(owner = DVP_ESCROW_OWNER, sc_amount, encumbered by 1), 1 = DvpLock
    (encumbered by 0), 2 = change Cash to the buyer when the inputs exceed sc_amount.
    ``admission_ref`` is the Admission of the terms' (issuer, brand) naming the seller (and the
    buyer, for the change); ``cash_inputs`` must all be the buyer's Cash of that issuer and brand.
    """
    try:
        dvp_app.validate_terms(terms)
    except InvalidMessage as exc:
        raise DvpError(f"terms: {exc}") from None
    buyer = ed25519_public_key(buyer_seed)
    if buyer != terms.buyer_corda:
        raise DvpError("buyer_seed is not the key of terms.buyer_corda")
    if not 0 < timeout_timestamp <= terms.deadline_ns:
        raise DvpError("timeout_timestamp must be set and not later than terms.deadline_ns")
    issuer, brand = bytes(terms.cash_issuer), terms.sc_brand
    if not cash_inputs or any((bytes(c.owner), bytes(c.issuer), c.brand) != (buyer, issuer, brand)
                              for _, c in cash_inputs):
        raise DvpError("cash_inputs must be the buyer's cash of terms.cash_issuer and terms.sc_brand")
    total = sum(int(c.amount) for _, c in cash_inputs)
    if total < terms.sc_amount:
        raise DvpError(f"cash_inputs hold {total}, the trade needs {terms.sc_amount}")
    lock = dvp_pb2.DvpLock(
        trade_id=terms.trade_id, payer=buyer, payee=terms.seller_corda, cash_issuer=issuer, brand=brand,
        amount=terms.sc_amount, port_id=dvp_app.PORT_ID, channel_id=channel_id,
        timeout_timestamp=timeout_timestamp, terms_hash=dvp_app.terms_hash(terms),
    )
    outputs = [cash_state(issuer, DVP_ESCROW_OWNER, terms.sc_amount, notary, encumbrance=1, brand=brand),
               lock_state(lock, notary, encumbrance=0)]
    if total > terms.sc_amount:
        outputs.append(cash_state(issuer, buyer, total - terms.sc_amount, notary, brand=brand))
    send = dvp_pb2.MsgDvpSend(source_channel=channel_id, terms=terms, timeout_timestamp=timeout_timestamp,
                              sender=account_of(buyer))
    commands = (
        _command(LOCK, terms.trade_id, 0, [buyer]),
        pb.Command(contract=CASH, name="Move", signers=[buyer]),
        ibc_command(send, [buyer]),
    )
    wtx = WireTransaction(inputs=tuple(ref for ref, _ in cash_inputs), outputs=tuple(outputs), commands=commands,
                          notary=notary, privacy_salt=salt, references=(admission_ref,))
    return SignedTransaction(wtx).sign(buyer_seed)


def exit_parts(
    kind: str, lock_ref: pb.StateRef, lock: dvp_pb2.DvpLock, cash_ref: pb.StateRef, output_index: int,
    notary: bytes,
) -> tuple[list[pb.StateRef], list[pb.TransactionState], list[pb.Command]]:
    """Inputs, output and commands of one exit of ``lock``, for a tx the caller assembles.

    Returns inputs [cash_ref, lock_ref], one output (the unencumbered Cash to the payee for
    Settle, to the payer for refunds), and commands [DvP ``kind``, Cash Move with no signer].
    ``output_index`` is where the caller places that output in the tx's outputs (when several
    exits share a tx, each gets its own index; their identical Cash Moves count once).
    The caller adds:
    - the IBC command carrying the packet's MsgAcknowledgement (Settle: success ack,
      RefundOnError: error ack) or MsgTimeout / MsgTimeoutOnClose (RefundOnTimeout),
      signed by the relayer, as for any IBC message;
    - a reference to the current Admission state of the lock's (issuer, brand) (the ``holders``
      query's ``admission``) unless the paid party is the issuer: the Cash contract admits
      every new owner against it.
    """
    if kind not in EXITS:
        raise DvpError(f"kind must be one of {', '.join(EXITS)}, got {kind!r}")
    if output_index < 0:
        raise DvpError("output_index must not be negative")
    owner = bytes(lock.payee) if kind == SETTLE else bytes(lock.payer)
    output = cash_state(bytes(lock.cash_issuer), owner, int(lock.amount), notary, brand=lock.brand)
    commands = [_command(kind, lock.trade_id, output_index, []), pb.Command(contract=CASH, name="Move")]
    return [cash_ref, lock_ref], [output], commands
