"""Hash preimages the IBC core commits to (DESIGN.md "IBC core").

- packet commitment = sha256(be64(timeout_timestamp) ‖ be64(timeout revision_number) ‖
  be64(timeout revision_height) ‖ sha256(data)) — ibc-go's v1 formula, so a counterparty
  proves a packet without the core storing its data;
- ack commitment = sha256(ack bytes);
- receipt = 0x01.
"""

from __future__ import annotations

from kakehashi.ibc.v1 import channel_pb2
from lightclients.crypto import sha256

RECEIPT = b"\x01"


def packet_commitment(packet: channel_pb2.Packet) -> bytes:
    th = packet.timeout_height
    return sha256(
        packet.timeout_timestamp.to_bytes(8, "big")
        + th.revision_number.to_bytes(8, "big")
        + th.revision_height.to_bytes(8, "big")
        + sha256(packet.data)
    )


def ack_commitment(ack: bytes) -> bytes:
    return sha256(ack)
