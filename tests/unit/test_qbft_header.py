"""Header codec robustness: any byte string either decodes to a header that re-encodes to
exactly those bytes, or is refused with HeaderError (never another exception)."""

from __future__ import annotations

import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from lightclients.qbft.header import HeaderError, decode_extra_data, decode_header
from tests.unit.test_qbft_support import make_chain, produce

_chain = make_chain()
produce(_chain, 1)
SEALED = _chain.header(1).encode()


def _check(data: bytes) -> None:
    try:
        header = decode_header(data)
    except HeaderError:
        return
    assert header.encode() == data
    assert rlp.encode(rlp.decode(data)) == data


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(SEALED) - 1), st.integers(1, 255))
def test_single_byte_corruption(index: int, xor: int) -> None:
    data = bytearray(SEALED)
    data[index] ^= xor
    _check(bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(SEALED)), st.binary(max_size=8))
def test_truncation_and_extension(cut: int, tail: bytes) -> None:
    _check(SEALED[:cut] + tail)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_extra_data(data: bytes) -> None:
    try:
        extra = decode_extra_data(data)
    except HeaderError:
        return
    assert extra.encode() == data


def test_non_canonical_forms_rejected() -> None:
    header = decode_header(SEALED)
    assert header.encode() == SEALED
    items = rlp.decode(SEALED)
    items[8] = b"\x00" + items[8]  # number with a leading zero
    try:
        decode_header(rlp.encode(items))
    except HeaderError as exc:
        assert "number" in str(exc)
    else:
        raise AssertionError("leading-zero integer accepted")
    long_form = b"\xb8\x01\x05"  # a one-byte string in long form
    for bad in (SEALED + b"\x00", SEALED[:-1], b"\x81\x05", long_form, b"not bytes".decode()):
        try:
            decode_header(bad)  # type: ignore[arg-type]
        except HeaderError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_deeply_nested_lists_are_a_header_error() -> None:
    nested = b""
    for _ in range(3000):
        nested = rlp.encode([nested]) if len(nested) < 50 else b"\xf9" + len(nested).to_bytes(2, "big") + nested
    for data in (nested, rlp.encode([b"\x00" * 32, [[[[[b"x"]]]]], b"", b"", []])):
        for decode in (decode_header, decode_extra_data):
            try:
                decode(data)
            except HeaderError:
                continue
            raise AssertionError("nested input accepted")
