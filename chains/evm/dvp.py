"""The EVM half of atomic DvP: the security-token escrow and the ``dvp`` port's receiving module.

The seller locks ST against a terms hash (``lock``); a packet from the buyer's Corda lock
transaction that carries the same terms releases it to the buyer (``on_recv_packet``); once
the EVM clock reaches the deadline, an escrow still locked goes back to the seller
(``reclaim``). Delivery needs ``now < packet timeout <= deadline`` (the core enforces the
first half, the module the second) and reclaim needs ``now >= deadline``, so at most one of
the two can ever happen to a lock, which is what makes the ack Corda acts on final.

Storage is laid out as Solidity would lay out
``mapping(string => Escrow) escrows`` at slot 0 with
``struct Escrow { uint8 status; bytes32 termsHash; address seller; address buyer;
uint256 quantity; uint256 deadlineNs; string channelId; }``: the struct of trade ``t``
starts at ``keccak256(bytes(t) || uint256(0))`` and its fields take consecutive slots
(``channelId`` in Solidity's short-string form: bytes left-aligned, 2 * length in the last
byte). So an EIP-1186 proof of one slot (:func:`escrow_slots`) proves a trade's status to
anyone holding a header.

The terms name no channel, yet opening a client, connection and ``dvp`` channel is open to
anyone; so every lock names the EVM-side channel its packet must arrive on (the second
``lock`` argument, an open channel end of this chain's ``dvp`` port), and a packet from some
other chain that happens to carry the same terms cannot release the ST.

The receiving module writes the world state directly rather than the IBC store, because the
ST balances live in the token contract. The IBC handler contract hands it the transaction's
:class:`CallContext` for the duration of one IBC call (:meth:`DvpModule.bound`). Every check
runs before the first write, so an error ack leaves the escrow and the token untouched; a
failure after the move (a later message of the same transaction) fails the whole EVM
transaction, which the chain reverts through its state snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from chains.evm.contracts import (
    CALL_COST,
    WRITE_COST,
    CallContext,
    ContractError,
    Log,
    SecurityToken,
    builtin_address,
    encode_amount,
)
from chains.evm.state import WorldState
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.context import Acknowledgement, Context
from chains.ibc.errors import AppError, InvalidIdentifier, InvalidMessage
from chains.ibc.handler import IbcHandler
from chains.ibc.host import paths
from chains.ibc.host.identifiers import validate_channel_id
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from lightclients.crypto import keccak256

DVP_ESCROW_ADDRESS = builtin_address("dvp-escrow")

# Escrow.status values and the names the node's query reports.
NONE, LOCKED, DELIVERED, RECLAIMED = 0, 1, 2, 3
STATUS_NAMES = {NONE: "none", LOCKED: "locked", DELIVERED: "delivered", RECLAIMED: "reclaimed"}

ESCROWS_SLOT = 0
_TRADE_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")  # what chains.ibc.apps.dvp.validate_terms allows
(FIELD_STATUS, FIELD_TERMS_HASH, FIELD_SELLER, FIELD_BUYER, FIELD_QUANTITY, FIELD_DEADLINE,
 FIELD_CHANNEL) = range(7)
MAX_CHANNEL_LEN = 31  # what fits a Solidity short string; this chain's ids are "channel-N"

# Error-ack reasons: fixed strings, so that every node writes the same ack bytes (and so the
# same ack commitment) and a back office can tell the reasons apart.
REASON_BAD_DATA = "invalid dvp packet data"
REASON_WRONG_TOKEN = "wrong security token"
REASON_UNKNOWN_TRADE = "unknown trade"
REASON_DELIVERED = "trade already delivered"
REASON_RECLAIMED = "trade already reclaimed"
REASON_TERMS = "terms do not match the escrow"
REASON_TIMEOUT = "packet timeout is not set or later than the escrow deadline"
REASON_BUYER = "buyer not whitelisted"
REASON_CHANNEL = "packet arrived on a channel the escrow does not name"


def escrow_base_slot(trade_id: str) -> int:
    """First slot of trade ``trade_id``'s Escrow struct (Solidity's string-keyed mapping)."""
    return int.from_bytes(keccak256(trade_id.encode() + ESCROWS_SLOT.to_bytes(32, "big")), "big")


def escrow_slot(trade_id: str, field: int) -> bytes:
    """Storage key of one field of a trade's Escrow struct (FIELD_* constants)."""
    return ((escrow_base_slot(trade_id) + field) % 2**256).to_bytes(32, "big")


def escrow_slots(trade_id: str) -> list[bytes]:
    """Every storage key of a trade's Escrow struct, status first (for storage proofs)."""
    return [escrow_slot(trade_id, f) for f in range(FIELD_CHANNEL + 1)]


def encode_short_string(text: bytes) -> int:
    """Solidity's in-slot form of a string shorter than 32 bytes."""
    if len(text) > MAX_CHANNEL_LEN:
        raise ValueError(f"a short string holds at most {MAX_CHANNEL_LEN} bytes")
    return int.from_bytes(text.ljust(31, b"\x00") + bytes([2 * len(text)]), "big")


def decode_short_string(word: int) -> bytes:
    raw = (word % 2**256).to_bytes(32, "big")
    length = min(raw[31] // 2, MAX_CHANNEL_LEN)
    return raw[:length]


@dataclass(frozen=True, slots=True)
class EscrowRecord:
    """A trade's escrow as stored; an unknown trade reads as status NONE with zero fields."""

    trade_id: str
    status: int
    terms_hash: bytes
    seller: bytes
    buyer: bytes
    quantity: int
    deadline_ns: int
    channel_id: str = ""

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, f"unknown({self.status})")

    def to_json(self) -> dict[str, object]:
        """The node's ``dvp_escrow`` query answer."""
        return {
            "trade_id": self.trade_id,
            "status": self.status_name,
            "terms_hash": self.terms_hash.hex(),
            "seller": "0x" + self.seller.hex(),
            "buyer": "0x" + self.buyer.hex(),
            "quantity": self.quantity,
            "deadline_ns": self.deadline_ns,
            "channel_id": self.channel_id,
        }


def read_escrow(read_slot: Callable[[bytes], int], trade_id: str) -> EscrowRecord:
    """The escrow of ``trade_id`` from a reader of the escrow contract's storage words.

    Taking a reader rather than a state lets the node answer at any committed height.
    """
    word = [read_slot(s) for s in escrow_slots(trade_id)]
    return EscrowRecord(
        trade_id=trade_id,
        status=word[FIELD_STATUS],
        terms_hash=word[FIELD_TERMS_HASH].to_bytes(32, "big"),
        seller=(word[FIELD_SELLER] % 2**160).to_bytes(20, "big"),
        buyer=(word[FIELD_BUYER] % 2**160).to_bytes(20, "big"),
        quantity=word[FIELD_QUANTITY],
        deadline_ns=word[FIELD_DEADLINE],
        channel_id=decode_short_string(word[FIELD_CHANNEL]).decode("ascii", "replace"),
    )


def _trade_id_arg(args: tuple[bytes, ...]) -> str:
    if len(args) != 1:
        raise ContractError("reclaim takes one argument: the trade id (ASCII bytes)")
    if _TRADE_ID.fullmatch(args[0]) is None:
        raise ContractError("trade id must be 1-64 characters of [A-Za-z0-9._-]")
    return args[0].decode("ascii")


class DvpEscrow:
    """The DvP escrow built-in contract: ``lock(terms_bytes, channel_id)``, ``reclaim(trade_id)``."""

    def __init__(self, address: bytes, token: SecurityToken, ibc_address: bytes | None = None) -> None:
        if token.escrow != address:
            raise ValueError("the security token must name this contract as its escrow")
        self.address = address
        self.token = token
        self.ibc_address = ibc_address

    def install(self, state: WorldState) -> None:
        state.account(self.address).code_hash = keccak256(b"kakehashi.evm.dvp-escrow")

    def record(self, state: WorldState, trade_id: str) -> EscrowRecord:
        return read_escrow(lambda slot: state.get_storage(self.address, slot), trade_id)

    # --- transactions ---------------------------------------------------------------------

    def call(self, ctx: CallContext, method: str, args: tuple[bytes, ...]) -> None:
        ctx.cost += CALL_COST
        if method == "lock":
            if len(args) != 2:
                raise ContractError("lock takes the deterministic Terms bytes and this chain's dvp channel id")
            try:
                terms = dvp_app.decode_terms(args[0])
            except InvalidMessage as exc:
                raise ContractError(f"lock: {exc}") from None
            try:
                channel = validate_channel_id(args[1].decode("ascii"))
            except (UnicodeDecodeError, InvalidIdentifier) as exc:
                raise ContractError(f"lock: channel id: {exc}") from None
            if len(channel) > MAX_CHANNEL_LEN:
                raise ContractError(f"lock: channel id longer than {MAX_CHANNEL_LEN} characters")
            self.lock(ctx, terms, channel)
        elif method == "reclaim":
            self.reclaim(ctx, _trade_id_arg(args))
        else:
            raise ContractError(f"DvP escrow has no method {method!r}")

    def lock(self, ctx: CallContext, terms: dvp_pb2.Terms, channel_id: str) -> None:
        """Move the seller's ST into escrow against the terms hash; refusals change nothing.

        ``channel_id`` (this chain's end of an open dvp channel) is the only channel whose
        packets may deliver.
        """
        state, token = ctx.state, self.token
        seller, buyer, quantity = bytes(terms.seller_evm), bytes(terms.buyer_evm), int(terms.st_quantity)
        if ctx.sender != seller:
            raise ContractError("lock: only terms.seller_evm may lock its security tokens")
        if bytes(terms.security_token) != token.address:
            raise ContractError(f"lock: terms name security token 0x{terms.security_token.hex()}, "
                                f"this chain's is 0x{token.address.hex()}")
        if not token.is_whitelisted(state, seller):
            raise ContractError("lock: seller is not whitelisted")
        if not token.is_whitelisted(state, buyer):
            raise ContractError("lock: buyer is not whitelisted")
        have = token.balance_of(state, seller)
        if have < quantity:
            raise ContractError(f"lock: insufficient balance: have {have}, need {quantity}")
        if state.get_storage(self.address, escrow_slot(terms.trade_id, FIELD_STATUS)) != NONE:
            raise ContractError(f"lock: trade id {terms.trade_id!r} was already used on this chain")
        if terms.deadline_ns <= ctx.time_ns:
            raise ContractError(f"lock: deadline {terms.deadline_ns} is not after block time {ctx.time_ns}")
        if not self._channel_open(state, channel_id):
            raise ContractError(f"lock: {dvp_app.PORT_ID}/{channel_id} is not an open channel on this chain")
        digest = dvp_app.terms_hash(terms)
        trade_id = terms.trade_id
        for field, value in (
            (FIELD_STATUS, LOCKED),
            (FIELD_TERMS_HASH, digest),
            (FIELD_SELLER, seller),
            (FIELD_BUYER, buyer),
            (FIELD_QUANTITY, quantity),
            (FIELD_DEADLINE, int(terms.deadline_ns)),
            (FIELD_CHANNEL, encode_short_string(channel_id.encode())),
        ):
            self._write(ctx, escrow_slot(trade_id, field), value)
        token.escrow_move(ctx, seller, self.address, quantity)
        ctx.logs.append(Log(self.address, "dvp_locked", (
            ("trade_id", trade_id.encode()),
            ("seller", seller),
            ("buyer", buyer),
            ("quantity", encode_amount(quantity)),
            ("terms_hash", digest),
            ("deadline", encode_amount(int(terms.deadline_ns))),
            ("channel", channel_id.encode()),
        )))

    def reclaim(self, ctx: CallContext, trade_id: str) -> None:
        """Return a still-locked escrow to its seller once the EVM clock reaches the deadline."""
        rec = self.record(ctx.state, trade_id)
        if rec.status != LOCKED:
            raise ContractError(f"reclaim: trade {trade_id!r} is {rec.status_name}, not locked")
        if ctx.time_ns < rec.deadline_ns:
            raise ContractError(f"reclaim: block time {ctx.time_ns} is before the deadline {rec.deadline_ns}")
        self._write(ctx, escrow_slot(trade_id, FIELD_STATUS), RECLAIMED)
        self.token.escrow_move(ctx, self.address, rec.seller, rec.quantity)
        ctx.logs.append(Log(self.address, "dvp_reclaimed", (
            ("trade_id", trade_id.encode()),
            ("seller", rec.seller),
            ("quantity", encode_amount(rec.quantity)),
        )))

    # --- delivery (called by the dvp IBC module) -------------------------------------------

    def refusal(self, state: WorldState, terms: dvp_pb2.Terms, packet: chpb.Packet) -> str | None:
        """Why a packet with these terms cannot deliver, or None; reads only."""
        if bytes(terms.security_token) != self.token.address:
            return REASON_WRONG_TOKEN
        rec = self.record(state, terms.trade_id)
        if rec.status == NONE:
            return REASON_UNKNOWN_TRADE
        if rec.status == DELIVERED:
            return REASON_DELIVERED
        if rec.status == RECLAIMED:
            return REASON_RECLAIMED
        if rec.terms_hash != dvp_app.terms_hash(terms):
            return REASON_TERMS
        if packet.destination_channel != rec.channel_id:
            return REASON_CHANNEL
        timeout = int(packet.timeout_timestamp)
        if timeout == 0 or timeout > rec.deadline_ns:
            return REASON_TIMEOUT
        if not self.token.is_whitelisted(state, rec.buyer):
            return REASON_BUYER
        return None

    def deliver(self, ctx: CallContext, terms: dvp_pb2.Terms, packet: chpb.Packet) -> None:
        """Escrow -> buyer; the caller has checked :meth:`refusal` is None on this state."""
        rec = self.record(ctx.state, terms.trade_id)
        self._write(ctx, escrow_slot(terms.trade_id, FIELD_STATUS), DELIVERED)
        self.token.escrow_move(ctx, self.address, rec.buyer, rec.quantity)
        ctx.logs.append(Log(self.address, "dvp_delivered", (
            ("trade_id", terms.trade_id.encode()),
            ("buyer", rec.buyer),
            ("quantity", encode_amount(rec.quantity)),
            ("terms_hash", rec.terms_hash),
            ("port", packet.destination_port.encode()),
            ("channel", packet.destination_channel.encode()),
            ("sequence", encode_amount(int(packet.sequence))),
        )))

    def _channel_open(self, state: WorldState, channel_id: str) -> bool:
        """Whether the IBC handler holds an OPEN channel end (dvp, channel_id); a lock naming
        any other would wait for a packet that cannot come until its deadline."""
        if self.ibc_address is None:
            return True
        raw = state.blobs(self.ibc_address).get(paths.channel(dvp_app.PORT_ID, channel_id))
        if raw is None:
            return False
        end = chpb.Channel()
        try:
            end.ParseFromString(raw)
        except DecodeError:
            return False
        return end.state == chpb.STATE_OPEN

    def _write(self, ctx: CallContext, slot: bytes, value: int | bytes) -> None:
        ctx.state.set_storage(self.address, slot, value)
        ctx.cost += WRITE_COST


class DvpModule(dvp_app.ChannelHandshake):
    """The ``dvp`` port on the EVM chain: receives DvP packets; it never sends any.

    The channel handshake is the protocol's (:class:`dvp_app.ChannelHandshake`); this class adds
    the packet callbacks and what a close from the Corda end means for the escrows.
    """

    def __init__(self, escrow: DvpEscrow) -> None:
        self.escrow = escrow
        self._call: CallContext | None = None

    @contextmanager
    def bound(self, ctx: CallContext) -> Iterator[None]:
        """Give packet callbacks the EVM transaction being executed, for one IBC call."""
        previous, self._call = self._call, ctx
        try:
            yield
        finally:
            self._call = previous

    # --- handshake -------------------------------------------------------------------------

    def on_chan_close_confirm(self, ctx: Context, port_id: str, channel_id: str) -> None:
        # Closed from the other end: no packet arrives any more, so every lock still open
        # ends by reclaim after its deadline and the counterparty refunds by timeout-on-close.
        return None

    # --- packets ---------------------------------------------------------------------------

    def on_recv_packet(self, ctx: Context, packet: chpb.Packet, relayer: str) -> Acknowledgement:
        call = self._call
        if call is None:
            raise AppError("the dvp module runs only inside an EVM transaction")
        try:
            terms = dvp_app.decode_packet_data(bytes(packet.data))
        except InvalidMessage:
            return Acknowledgement(False, dvp_app.error_ack(REASON_BAD_DATA))
        reason = self.escrow.refusal(call.state, terms, packet)
        if reason is not None:
            return Acknowledgement(False, dvp_app.error_ack(reason))
        snap = call.state.snapshot()
        logs, cost = len(call.logs), call.cost
        try:
            self.escrow.deliver(call, terms, packet)
        except BaseException:
            # Unreachable after refusal() passed; kept so that even then the core's
            # "app failed" error ack is not paired with a half-done delivery.
            call.state.revert(snap)
            del call.logs[logs:]
            call.cost = cost
            raise
        return Acknowledgement(True, dvp_app.SUCCESS_ACK)

    def on_acknowledgement_packet(
        self, ctx: Context, packet: chpb.Packet, acknowledgement: bytes, relayer: str
    ) -> None:
        raise AppError("the EVM dvp module sends no packets, so it takes no acknowledgements")

    def on_timeout_packet(self, ctx: Context, packet: chpb.Packet, relayer: str) -> None:
        raise AppError("the EVM dvp module sends no packets, so none of its packets time out")


def install(handler: IbcHandler, escrow: DvpEscrow) -> DvpModule:
    """Bind the ``dvp`` port of an EVM chain's IBC handler to a module over ``escrow``."""
    module = DvpModule(escrow)
    handler.bind_port(dvp_app.PORT_ID, module)
    return module
