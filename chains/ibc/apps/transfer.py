"""ICS-20 fungible token transfer over the IBC core.

Choices:
- Packet data is ICS-20 JSON ``{"amount","denom","memo","receiver","sender"}`` with sorted
  keys and no spaces, so it is byte-identical wherever it is produced; amounts are decimal
  strings (unbounded in ICS-20, capped here at 2^256-1).
- Vouchers are named by their full trace (``{port}/{channel}/{base}``) rather than an
  ``ibc/{hash}`` alias; the trace is the denom, so no separate trace table is needed.
- Tokens native to (or returning to) a chain are escrowed in one account per channel; tokens
  that arrived as vouchers are burnt on the way back.
- Acks are ICS-20 JSON: ``{"result":"AQ=="}`` or ``{"error":"<deterministic reason>"}``.
- Authenticating ``sender`` of a MsgTransfer is the host's job (it signed the host tx).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chains.ibc import packets
from chains.ibc.apps.bank import (
    MAX_AMOUNT,
    Bank,
    BankError,
    StoreBank,
    validate_account,
    validate_denom,
)
from chains.ibc.apps.handshake import UnorderedAppHandshake
from chains.ibc.context import Acknowledgement, Context, height_of
from chains.ibc.errors import IbcError, InvalidMessage
from chains.ibc.handler import IbcHandler
from chains.ibc.host.store import IbcStore
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import transfer_pb2
from lightclients.crypto import sha256

PORT_ID = "transfer"
VERSION = "ics20-1"
SUCCESS_ACK = b'{"result":"' + base64.b64encode(b"\x01") + b'"}'
_FIELDS = ("amount", "denom", "memo", "receiver", "sender")
MAX_JSON_DEPTH = 8
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKETS = re.compile(r"[\[\]{}]")


def _json(data: bytes) -> Any:
    """Parse counterparty JSON (packet data, acks), refusing nesting deeper than MAX_JSON_DEPTH.

    Why before parsing: Python's JSON parser recurses, so how deep it gets before a
    RecursionError depends on the caller's stack. Two nodes, or a node and its own replay,
    could then disagree on one packet; counting brackets outside strings first makes the
    answer the same everywhere. Raises ValueError (UnicodeDecodeError, JSONDecodeError too).
    """
    text = data.decode("utf-8")
    depth = 0
    for bracket in _JSON_BRACKETS.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text)


@dataclass(frozen=True, slots=True)
class FungibleTokenPacketData:
    denom: str
    amount: int
    sender: str
    receiver: str
    memo: str = ""

    def encode(self) -> bytes:
        doc = {"amount": str(self.amount), "denom": self.denom, "memo": self.memo,
               "receiver": self.receiver, "sender": self.sender}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> FungibleTokenPacketData:
        try:
            doc = _json(data)
        except ValueError as exc:
            raise InvalidMessage("transfer packet data is not JSON") from exc
        if not isinstance(doc, dict):
            raise InvalidMessage("transfer packet data must be a JSON object")
        if set(doc) - set(_FIELDS) or any(k not in doc for k in ("amount", "denom", "receiver", "sender")):
            raise InvalidMessage(f"transfer packet data needs exactly the fields {list(_FIELDS)}")
        if not all(isinstance(doc.get(k, ""), str) for k in _FIELDS):
            raise InvalidMessage("transfer packet data fields must be strings")
        amount_text = doc["amount"]
        if not amount_text.isascii() or not amount_text.isdigit() or len(amount_text) > 78:
            raise InvalidMessage(f"amount {amount_text!r} is not a decimal integer")
        amount = int(amount_text)
        if not 0 < amount <= MAX_AMOUNT:
            raise InvalidMessage(f"amount {amount} must be positive and below 2^256")
        try:
            validate_denom(doc["denom"])
            validate_account(doc["sender"])
            validate_account(doc["receiver"])
        except BankError as exc:
            raise InvalidMessage(str(exc)) from exc
        return cls(doc["denom"], amount, doc["sender"], doc["receiver"], doc.get("memo", ""))


def error_ack(reason: str) -> bytes:
    return json.dumps({"error": reason}, separators=(",", ":")).encode()


def ack_succeeded(ack: bytes) -> bool:
    try:
        doc = _json(ack)
    except ValueError:
        return False
    return isinstance(doc, dict) and "result" in doc and "error" not in doc


def escrow_account(port_id: str, channel_id: str) -> str:
    """A per-channel escrow nobody can sign for: derived, not chosen."""
    return "escrow:" + sha256(f"{port_id}/{channel_id}".encode()).hex()[:40]


def trace_prefix(port_id: str, channel_id: str) -> str:
    return f"{port_id}/{channel_id}/"


class TransferApp(UnorderedAppHandshake):
    """The ``transfer`` port's module; ``bank_for`` binds a bank to the tx's store overlay.

    Its channel handshake is :class:`UnorderedAppHandshake`'s: any port, unordered, ``ics20-1``.
    """

    APP_NAME = "transfer"
    APP_VERSION = VERSION
    CLOSE_REFUSAL = "escrowed funds would strand"

    def __init__(self, bank_for: Callable[[IbcStore], Bank] = StoreBank) -> None:
        self.bank_for = bank_for

    # --- sending -------------------------------------------------------------------------

    def transfer(self, ctx: Context, msg: transfer_pb2.MsgTransfer) -> int:
        """Escrow or burn the tokens, then send the packet; returns the packet sequence."""
        try:
            amount = int(msg.amount) if msg.amount.isascii() and msg.amount.isdigit() else -1
            data = FungibleTokenPacketData(
                validate_denom(msg.denom), amount, validate_account(msg.sender),
                validate_account(msg.receiver), msg.memo,
            )
        except BankError as exc:
            raise InvalidMessage(str(exc)) from exc
        if not 0 < amount <= MAX_AMOUNT:
            raise InvalidMessage(f"amount {msg.amount!r} must be a positive decimal integer below 2^256")
        bank = self.bank_for(ctx.store)
        if msg.denom.startswith(trace_prefix(msg.source_port, msg.source_channel)):
            bank.burn(msg.sender, msg.denom, amount)
        else:
            bank.transfer(msg.sender, escrow_account(msg.source_port, msg.source_channel), msg.denom, amount)
        return packets.send_packet(ctx, msg.source_port, msg.source_channel,
                                   height_of(msg.timeout_height), msg.timeout_timestamp, data.encode())

    # --- packets -------------------------------------------------------------------------

    def on_recv_packet(self, ctx: Context, packet: chpb.Packet, relayer: str) -> Acknowledgement:
        try:
            data = FungibleTokenPacketData.decode(bytes(packet.data))
            bank = self.bank_for(ctx.store)
            back = trace_prefix(packet.source_port, packet.source_channel)
            if data.denom.startswith(back):
                # The token returns home: release it from the escrow of the receiving channel.
                base = data.denom[len(back):]
                escrow = escrow_account(packet.destination_port, packet.destination_channel)
                bank.transfer(escrow, data.receiver, base, data.amount)
            else:
                voucher = trace_prefix(packet.destination_port, packet.destination_channel) + data.denom
                validate_denom(voucher)
                bank.mint(data.receiver, voucher, data.amount)
        except IbcError as exc:
            return Acknowledgement(False, error_ack(f"{type(exc).__name__}: {exc}"))
        return Acknowledgement(True, SUCCESS_ACK)

    def on_acknowledgement_packet(
        self, ctx: Context, packet: chpb.Packet, acknowledgement: bytes, relayer: str
    ) -> None:
        if not ack_succeeded(acknowledgement):
            self._refund(ctx, packet)

    def on_timeout_packet(self, ctx: Context, packet: chpb.Packet, relayer: str) -> None:
        self._refund(ctx, packet)

    def _refund(self, ctx: Context, packet: chpb.Packet) -> None:
        data = FungibleTokenPacketData.decode(bytes(packet.data))
        bank = self.bank_for(ctx.store)
        if data.denom.startswith(trace_prefix(packet.source_port, packet.source_channel)):
            bank.mint(data.sender, data.denom, data.amount)
        else:
            bank.transfer(escrow_account(packet.source_port, packet.source_channel), data.sender,
                          data.denom, data.amount)


def install(handler: IbcHandler, bank_for: Callable[[IbcStore], Bank] = StoreBank) -> TransferApp:
    """Bind the transfer port and let MsgTransfer run inside the host's IBC transactions."""
    app = TransferApp(bank_for)
    handler.bind_port(PORT_ID, app)
    handler.register_message(transfer_pb2.MsgTransfer, app.transfer)
    return app
