"""Light client of the EVM/QBFT chain: header seals (secp256k1) and MPT storage proofs."""

from lightclients.qbft.client import (
    CLIENT_TYPE,
    QbftClient,
    commitment_slot,
    encode_header_message,
    encode_misbehaviour_message,
    encode_storage_multiproof,
    verify_seals,
)
from lightclients.qbft.header import ExtraData, HeaderError, QbftHeader, Vote, decode_header

__all__ = [
    "CLIENT_TYPE",
    "ExtraData",
    "HeaderError",
    "QbftClient",
    "QbftHeader",
    "Vote",
    "commitment_slot",
    "decode_header",
    "encode_header_message",
    "encode_misbehaviour_message",
    "encode_storage_multiproof",
    "verify_seals",
]
