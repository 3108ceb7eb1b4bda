"""Hand-written RLP encoding for the chain's own hot structures (txs, receipts, index keys).

Why: the ``rlp`` package infers a serializer for every item (``infer_sedes``,
``List.serialize``), which cost more than the hashing it feeds in block production. This
encodes only what the chain's structures hold -- byte strings, non-negative integers and
lists or tuples of them -- exactly as ``rlp.encode`` does; golden vectors and a property test
against the ``rlp`` package pin the bytes (tests/unit/test_evm_rlp_fast.py). Decoding stays
with the ``rlp`` package, whose strict canonical checks admission relies on.
"""

from __future__ import annotations

from collections.abc import Sequence


def length_prefix(length: int, offset: int) -> bytes:
    """The RLP header of a string (offset 0x80) or list (offset 0xC0) payload of ``length``."""
    if length < 56:
        return bytes((offset + length,))
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((offset + 55 + len(size),)) + size


def encode_bytes(data: bytes) -> bytes:
    if len(data) == 1 and data[0] < 0x80:
        return data
    return length_prefix(len(data), 0x80) + data


def encode_uint(value: int) -> bytes:
    if value < 0:
        raise ValueError("RLP encodes non-negative integers only")
    if value == 0:
        return b"\x80"
    return encode_bytes(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def encode_list_payload(payload: bytes) -> bytes:
    """A list whose items are already encoded and concatenated."""
    return length_prefix(len(payload), 0xC0) + payload


def encode(item: object) -> bytes:
    """RLP of bytes / int / (nested) list or tuple, byte for byte as ``rlp.encode``."""
    kind = type(item)
    if kind is bytes:
        return encode_bytes(item)  # type: ignore[arg-type]
    if kind is list or kind is tuple:
        return encode_list_payload(b"".join([encode(x) for x in item]))  # type: ignore[attr-defined]
    if kind is int:
        return encode_uint(item)  # type: ignore[arg-type]
    if isinstance(item, bytearray | memoryview):
        return encode_bytes(bytes(item))
    if isinstance(item, int) and not isinstance(item, bool):
        return encode_uint(int(item))
    raise TypeError(f"cannot RLP-encode {kind.__name__}")


def encode_items(items: Sequence[object]) -> bytes:
    return encode_list_payload(b"".join([encode(x) for x in items]))
