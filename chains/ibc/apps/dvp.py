"""The `dvp` port's shared vocabulary: trade terms, their hash, packet data, acknowledgements
and the channel handshake.

Both ledgers import this module so that the EVM escrow (which stores a terms hash) and the
Corda lock (which sends the terms in the packet) agree on one encoding: the deterministic
protobuf serialization of :class:`kakehashi.dvp.v1.dvp_pb2.Terms`, hashed with SHA-256. The
packet data is the deterministic serialization of ``DvpPacketData``; decoding re-encodes and
refuses anything that does not round-trip, so two byte strings never mean the same trade.
Acknowledgements use the ICS-20 JSON form (``{"result": ...}`` / ``{"error": ...}``) so that
operators read both apps' acks the same way.

The channel handshake (:class:`ChannelHandshake`) is here too: which channels a ``dvp`` port
joins is part of the protocol, not of a ledger, and both ends must refuse the same channels for
a handshake to fail on both sides alike. The host-specific halves live with their ledgers: the
ST escrow and the receiving module in ``chains/evm/dvp.py``, the DvPLock contract and the
sending module in ``chains/corda/dvp.py``; both modules build on :class:`ChannelHandshake`.
"""

from __future__ import annotations

import re

from google.protobuf.message import DecodeError

from chains.ibc.apps.handshake import UnorderedAppHandshake
from chains.ibc.apps.transfer import SUCCESS_ACK, ack_succeeded, error_ack
from chains.ibc.errors import AppError, InvalidMessage
from kakehashi.dvp.v1 import dvp_pb2
from lightclients.crypto import sha256

PORT_ID = "dvp"
VERSION = "kakehashi-dvp-1"
_TRADE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# The SC brand's alphabet; the Corda Cash contract (chains/corda/cash.py) checks the same one on
# its states. Kept here too because this module is host-independent and imports no ledger.
_SC_BRAND = re.compile(r"[A-Za-z0-9._-]{0,32}")

__all__ = [
    "PORT_ID",
    "SUCCESS_ACK",
    "VERSION",
    "ChannelHandshake",
    "ack_succeeded",
    "decode_packet_data",
    "decode_terms",
    "encode_packet_data",
    "encode_terms",
    "error_ack",
    "terms_hash",
    "validate_terms",
]


def validate_terms(terms: dvp_pb2.Terms) -> None:
    """Raise :class:`InvalidMessage` naming the first field that cannot describe a trade."""
    if not _TRADE_ID.fullmatch(terms.trade_id):
        raise InvalidMessage("trade_id must be 1-64 characters of [A-Za-z0-9._-]")
    for name in ("security_token", "seller_evm", "buyer_evm"):
        if len(getattr(terms, name)) != 20:
            raise InvalidMessage(f"{name} must be a 20-byte EVM address")
    for name in ("cash_issuer", "seller_corda", "buyer_corda"):
        if len(getattr(terms, name)) != 32:
            raise InvalidMessage(f"{name} must be a 32-byte Ed25519 public key")
    if terms.st_quantity == 0 or terms.sc_amount == 0:
        raise InvalidMessage("st_quantity and sc_amount must be positive")
    if terms.deadline_ns == 0:
        raise InvalidMessage("deadline_ns must be set (Unix ns on the EVM chain's clock)")
    if terms.seller_evm == terms.buyer_evm or terms.seller_corda == terms.buyer_corda:
        raise InvalidMessage("seller and buyer must be different accounts")
    if not _SC_BRAND.fullmatch(terms.sc_brand):
        raise InvalidMessage("sc_brand must be 0-32 characters of [A-Za-z0-9._-]")


def encode_terms(terms: dvp_pb2.Terms) -> bytes:
    return terms.SerializeToString(deterministic=True)


def terms_hash(terms: dvp_pb2.Terms) -> bytes:
    """sha256(deterministic Terms): what the EVM escrow stores and the packet must match."""
    return sha256(encode_terms(terms))


def decode_terms(raw: bytes) -> dvp_pb2.Terms:
    terms = dvp_pb2.Terms()
    try:
        terms.ParseFromString(raw)
    except DecodeError:
        raise InvalidMessage("terms do not decode") from None
    if encode_terms(terms) != raw:
        raise InvalidMessage("terms are not in canonical (deterministic) encoding")
    validate_terms(terms)
    return terms


def encode_packet_data(terms: dvp_pb2.Terms) -> bytes:
    return dvp_pb2.DvpPacketData(terms=terms).SerializeToString(deterministic=True)


def decode_packet_data(raw: bytes) -> dvp_pb2.Terms:
    """The terms a packet carries; non-canonical or invalid data raises InvalidMessage."""
    data = dvp_pb2.DvpPacketData()
    try:
        data.ParseFromString(raw)
    except DecodeError:
        raise InvalidMessage("dvp packet data does not decode") from None
    if not data.HasField("terms") or data.SerializeToString(deterministic=True) != raw:
        raise InvalidMessage("dvp packet data is not canonical DvpPacketData with terms")
    validate_terms(data.terms)
    return data.terms


class ChannelHandshake(UnorderedAppHandshake):
    """The ``dvp`` port's side of the channel handshake, shared by both ledgers' modules.

    A dvp channel is unordered (one trade's packet must not wait on another's), joins the
    ``dvp`` port on both ends and speaks :data:`VERSION`; no user may close it, since that
    would fail every trade in flight. Each ledger's ``DvpModule`` inherits these callbacks and
    adds its packet callbacks and ``on_chan_close_confirm``, which is left to the host because
    what a close from the other end does to the trades still open differs by ledger.
    """

    APP_NAME = "dvp"
    APP_VERSION = VERSION
    CLOSE_REFUSAL = "it would fail every trade in flight"

    def _check_ports(self, port_id: str, counterparty_port: str) -> None:
        if port_id != PORT_ID or counterparty_port != PORT_ID:
            raise AppError(f"dvp channels join port {PORT_ID!r} on both ends")
