"""The proxy's committed encodings: what is hashed, what is signed, and how both are checked.

Everything an enclave key or an attestation signs is a deterministic protobuf message under
a domain tag, so a signature over one kind of message can never be replayed as another:

- a proxy message (UpdateState / VerifyMembership):
  ``sha256(b"kakehashi/proxy/v1/message" || 0x00 || ProxyMessage bytes)``;
- an attestation report, by the authority:
  ``sha256(b"kakehashi/proxy/v1/attestation" || 0x00 || AttestationReport bytes)``;
- the same report, by the operator who runs the enclave:
  ``sha256(b"kakehashi/proxy/v1/operator" || 0x00 || AttestationReport bytes)``.

A *state id* names one state of a hosted (direct) client:
``sha256(b"kakehashi/proxy/v1/state-id" || 0x00 || be16(len T) || T || be32(len P) || P ||
be32(len C) || C || be32(len B) || B)`` with T the hosted client type, P its parameters (the
client state with everything that changes as it follows the chain cleared, see
``hosted.py``), C the consensus state at the height and B the identity of the block the
hosted client stored there (qbft block hash, Corda checkpoint hash; empty at the height a
client was created at, which came with no header). It depends only on those, never on the
order updates arrived in, so every enclave that follows the same chain with the same
parameters names a height's state identically (k-of-n operators sign the same bytes), a
proxy client's chain of state ids pins the hosted client's parameters too, and a second
block at a height (equivocation) has another state id even when its state is the same.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from kakehashi.ibc.v1 import client_pb2
from kakehashi.proxy.v1 import proxy_pb2 as pb
from lightclients.crypto import CryptoError, secp256k1_recover_address, secp256k1_sign, sha256
from lightclients.interface import ClientError, Height

M = TypeVar("M", bound=Message)

MESSAGE_TAG = b"kakehashi/proxy/v1/message\x00"
ATTESTATION_TAG = b"kakehashi/proxy/v1/attestation\x00"
OPERATOR_TAG = b"kakehashi/proxy/v1/operator\x00"
STATE_ID_TAG = b"kakehashi/proxy/v1/state-id\x00"
ADDRESS_LEN = 20
HASH_LEN = 32
SIGNATURE_LEN = 65


class EncodingError(ClientError):
    """Bytes that are not the canonical encoding of the expected proxy message."""


def encode(msg: Message) -> bytes:
    return msg.SerializeToString(deterministic=True)


def decode(cls: type[M], data: object, what: str) -> M:
    """Parse ``data`` as ``cls``, refusing anything but its one canonical encoding (so two
    byte strings never carry the same signed content)."""
    if not isinstance(data, bytes | bytearray):
        raise EncodingError(f"{what} must be bytes")
    msg = cls()
    try:
        msg.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise EncodingError(f"{what} does not decode: {exc}") from None
    if encode(msg) != bytes(data):
        raise EncodingError(f"{what} is not canonically encoded")
    return msg


def height(msg: client_pb2.Height) -> Height:
    return Height(int(msg.revision_number), int(msg.revision_height))


def height_pb(h: Height) -> client_pb2.Height:
    return client_pb2.Height(revision_number=h.revision_number, revision_height=h.revision_height)


def state_id(client_type: str, params: bytes, consensus_state: bytes, block_id: bytes = b"") -> bytes:
    t = client_type.encode()
    return sha256(STATE_ID_TAG + len(t).to_bytes(2, "big") + t + len(params).to_bytes(4, "big") + params
                  + len(consensus_state).to_bytes(4, "big") + consensus_state
                  + len(block_id).to_bytes(4, "big") + block_id)


def value_hash(value: bytes) -> bytes:
    return sha256(bytes(value))


def message_digest(message: bytes) -> bytes:
    return sha256(MESSAGE_TAG + bytes(message))


def attestation_digest(report: bytes) -> bytes:
    return sha256(ATTESTATION_TAG + bytes(report))


def operator_digest(report: bytes) -> bytes:
    return sha256(OPERATOR_TAG + bytes(report))


def sign_message(secret: bytes, message: bytes) -> bytes:
    return secp256k1_sign(secret, message_digest(message))


def signer_of(digest: bytes, signature: bytes) -> bytes | None:
    """The address that made ``signature`` over ``digest``; None if it recovers to nothing."""
    if not isinstance(signature, bytes | bytearray) or len(signature) != SIGNATURE_LEN:
        return None
    try:
        return secp256k1_recover_address(digest, bytes(signature))
    except CryptoError:
        return None


def update_message(update: pb.UpdateState) -> bytes:
    return encode(pb.ProxyMessage(update_state=update))


def membership_message(vm: pb.VerifyMembership) -> bytes:
    return encode(pb.ProxyMessage(verify_membership=vm))


def batch_message(batch: pb.VerifyMembershipBatch) -> bytes:
    return encode(pb.ProxyMessage(verify_membership_batch=batch))


def parse_batch(message: bytes) -> pb.VerifyMembershipBatch:
    msg = decode(pb.ProxyMessage, message, "proxy message")
    if msg.WhichOneof("message") != "verify_membership_batch":
        raise EncodingError("proxy message is not a VerifyMembershipBatch")
    return msg.verify_membership_batch


def parse_update(message: bytes) -> pb.UpdateState:
    msg = decode(pb.ProxyMessage, message, "proxy message")
    if msg.WhichOneof("message") != "update_state":
        raise EncodingError("proxy message is not an UpdateState")
    return msg.update_state


def parse_membership(message: bytes) -> pb.VerifyMembership:
    msg = decode(pb.ProxyMessage, message, "proxy message")
    if msg.WhichOneof("message") != "verify_membership":
        raise EncodingError("proxy message is not a VerifyMembership")
    return msg.verify_membership


def hex_address(address: bytes) -> str:
    return "0x" + bytes(address).hex()
