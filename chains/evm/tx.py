"""Transactions of the EVM-style chain: RLP encoded, signed with recoverable secp256k1.

Wire form: rlp([chain_id, nonce, [[to20, method, [arg...]], ...], sig65]). The signature
is over keccak256(rlp([chain_id, nonce, messages])), so the chain id is inside what is
signed (EIP-155's purpose: a tx for one chain cannot be replayed on another), and the
sender is recovered from the signature rather than carried, as in Ethereum.
A tx carries one or more messages and succeeds or fails as a whole.

Admission (:func:`admit_tx`) decodes a tx, checks its encoding is canonical and recovers
its sender once; the result (:class:`SignedTx`) is what a node keeps from ``check_tx`` and
hands to block production, so a tx's signature is recovered once, not once per stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import rlp
from rlp.exceptions import DecodingError

from chains.evm import rlp_fast
from lightclients.crypto import CryptoError, keccak256, secp256k1_recover_address, secp256k1_sign

MAX_MESSAGES = 64
MAX_TX_BYTES = 1 << 20


class TxError(ValueError):
    """A transaction is malformed or carries a bad signature."""


@dataclass(frozen=True, slots=True)
class Message:
    """A call of ``method`` on the built-in contract at ``to`` with raw byte arguments."""

    to: bytes
    method: str
    args: tuple[bytes, ...] = ()

    def _items(self) -> list[object]:
        return [self.to, self.method.encode("ascii"), list(self.args)]

    def _encoded(self) -> bytes:
        enc = rlp_fast.encode_bytes
        return rlp_fast.encode_list_payload(
            enc(self.to) + enc(self.method.encode("ascii"))
            + rlp_fast.encode_list_payload(b"".join([enc(a) for a in self.args]))
        )


@dataclass(frozen=True, slots=True)
class Transaction:
    chain_id: int
    nonce: int
    messages: tuple[Message, ...]
    signature: bytes = b""

    def _body(self) -> bytes:
        """The encoded [chain_id, nonce, messages] items, without the list header."""
        return (
            rlp_fast.encode_uint(self.chain_id)
            + rlp_fast.encode_uint(self.nonce)
            + rlp_fast.encode_list_payload(b"".join([m._encoded() for m in self.messages]))
        )

    def signing_hash(self) -> bytes:
        return keccak256(rlp_fast.encode_list_payload(self._body()))

    def sign(self, private_key: bytes) -> Transaction:
        return Transaction(
            self.chain_id, self.nonce, self.messages, secp256k1_sign(private_key, self.signing_hash())
        )

    def encode(self) -> bytes:
        return rlp_fast.encode_list_payload(self._body() + rlp_fast.encode_bytes(self.signature))

    def hash(self) -> bytes:
        return keccak256(self.encode())

    def sender(self) -> bytes:
        try:
            return secp256k1_recover_address(self.signing_hash(), self.signature)
        except CryptoError as exc:
            raise TxError(f"bad signature: {exc}") from None


def _uint(item: object, name: str) -> int:
    if not isinstance(item, bytes) or len(item) > 8 or item[:1] == b"\x00":
        raise TxError(f"{name} must be a canonical integer of at most 8 bytes")
    return int.from_bytes(item, "big")


def _message(item: object) -> Message:
    if not isinstance(item, list) or len(item) != 3:
        raise TxError("a message must be [to, method, args]")
    to, method, args = item
    if not isinstance(to, bytes) or len(to) != 20:
        raise TxError("message target must be a 20-byte address")
    if not isinstance(method, bytes) or not method or not method.isascii():
        raise TxError("message method must be a non-empty ASCII name")
    if not isinstance(args, list) or not all(isinstance(a, bytes) for a in args):
        raise TxError("message args must be a list of byte strings")
    return Message(to, method.decode("ascii"), tuple(a for a in args if isinstance(a, bytes)))


def decode_tx(data: bytes) -> Transaction:
    """Parse a signed transaction strictly (canonical RLP, field shapes, sizes)."""
    if not isinstance(data, bytes | bytearray):
        raise TxError("transaction must be bytes")
    if len(data) > MAX_TX_BYTES:
        raise TxError(f"transaction is larger than {MAX_TX_BYTES} bytes")
    try:
        items = rlp.decode(bytes(data))
    except DecodingError as exc:
        raise TxError(f"transaction is not canonical RLP: {exc}") from None
    except RecursionError:
        raise TxError("transaction RLP nests lists too deeply") from None
    if not isinstance(items, list) or len(items) != 4:
        raise TxError("transaction must be [chain_id, nonce, messages, signature]")
    chain_id = _uint(items[0], "chain_id")
    nonce = _uint(items[1], "nonce")
    if not isinstance(items[2], list) or not 1 <= len(items[2]) <= MAX_MESSAGES:
        raise TxError(f"a transaction carries 1..{MAX_MESSAGES} messages")
    messages = tuple(_message(m) for m in items[2])
    sig = items[3]
    if not isinstance(sig, bytes) or len(sig) != 65:
        raise TxError("signature must be 65 bytes r||s||v")
    return Transaction(chain_id, nonce, messages, sig)


@dataclass(frozen=True, slots=True)
class SignedTx:
    """An admitted tx: decoded, canonical, with its hash and recovered sender."""

    raw: bytes
    tx: Transaction
    hash: bytes
    sender: bytes


def admit_tx(data: bytes) -> SignedTx:
    """Decode strictly, require the canonical encoding, recover the sender (TxError otherwise)."""
    tx = decode_tx(data)
    raw = bytes(data)
    if tx.encode() != raw:
        raise TxError("transaction encoding is not canonical")
    return SignedTx(raw, tx, keccak256(raw), tx.sender())


def make_tx(
    private_key: bytes, chain_id: int, nonce: int, messages: Sequence[Message]
) -> Transaction:
    return Transaction(chain_id, nonce, tuple(messages)).sign(private_key)
