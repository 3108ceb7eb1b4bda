"""ICS-24 paths: the key layout every host store and every proof uses.

Keys are the UTF-8 bytes of the path, with no prefix: the commitment prefix is a property of
the host (it is handed to light clients separately), so the same core runs on any host.
"""

from __future__ import annotations

from chains.ibc.host.identifiers import validate_client_id
from lightclients.interface import Height

NEXT_CLIENT_SEQUENCE = b"nextClientSequence"
NEXT_CONNECTION_SEQUENCE = b"nextConnectionSequence"
NEXT_CHANNEL_SEQUENCE = b"nextChannelSequence"


def client_prefix(client_id: str) -> str:
    """The client's own key space; light-client modules see keys relative to it."""
    validate_client_id(client_id)
    return f"clients/{client_id}/"


def client_state(client_id: str) -> bytes:
    return f"clients/{client_id}/clientState".encode()


def consensus_state(client_id: str, height: Height) -> bytes:
    return f"clients/{client_id}/consensusStates/{height}".encode()


def client_type_key(client_id: str) -> bytes:
    """Which module owns a client: kept beside the client, not inside its opaque state."""
    return f"clients/{client_id}/clientType".encode()


def connection(connection_id: str) -> bytes:
    return f"connections/{connection_id}".encode()


def channel(port_id: str, channel_id: str) -> bytes:
    return f"channelEnds/ports/{port_id}/channels/{channel_id}".encode()


def next_sequence_send(port_id: str, channel_id: str) -> bytes:
    return f"nextSequenceSend/ports/{port_id}/channels/{channel_id}".encode()


def next_sequence_recv(port_id: str, channel_id: str) -> bytes:
    return f"nextSequenceRecv/ports/{port_id}/channels/{channel_id}".encode()


def next_sequence_ack(port_id: str, channel_id: str) -> bytes:
    return f"nextSequenceAck/ports/{port_id}/channels/{channel_id}".encode()


def packet_commitment(port_id: str, channel_id: str, sequence: int) -> bytes:
    return f"commitments/ports/{port_id}/channels/{channel_id}/sequences/{sequence}".encode()


def packet_receipt(port_id: str, channel_id: str, sequence: int) -> bytes:
    return f"receipts/ports/{port_id}/channels/{channel_id}/sequences/{sequence}".encode()


def packet_ack(port_id: str, channel_id: str, sequence: int) -> bytes:
    return f"acks/ports/{port_id}/channels/{channel_id}/sequences/{sequence}".encode()
