"""secp256k1 sign/recover/verify: round trips and the single-encoding rules for seals.

A QBFT light client counts a seal once per validator address, so a second valid encoding
of the same seal (high-s, a different v, an out-of-range r or s) must not recover at all.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightclients.crypto import (
    SECP256K1_N,
    CryptoError,
    eth_address,
    keccak256,
    secp256k1_public_key,
    secp256k1_recover,
    secp256k1_recover_address,
    secp256k1_sign,
    secp256k1_verify,
)

HALF_N = SECP256K1_N // 2
private_keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(
    lambda k: k.to_bytes(32, "big")
)
digests = st.binary(min_size=32, max_size=32)

KEY = (0x4C0883A69102937D6231471B5DBB6204FE5129617082792AE468D01A3F362318).to_bytes(32, "big")
DIGEST = keccak256(b"kakehashi seal")


def _parts(sig: bytes) -> tuple[int, int, int]:
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]


def _make(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


@settings(max_examples=100, deadline=None)
@given(private_keys, digests)
def test_sign_recover_round_trip(private_key: bytes, digest: bytes) -> None:
    public_key = secp256k1_public_key(private_key)
    sig = secp256k1_sign(private_key, digest)
    r, s, v = _parts(sig)
    assert len(sig) == 65 and v in (0, 1) and 0 < r < SECP256K1_N and 0 < s <= HALF_N
    assert secp256k1_recover(digest, sig) == public_key
    assert secp256k1_recover_address(digest, sig) == eth_address(public_key)
    assert secp256k1_verify(public_key, digest, sig)
    assert secp256k1_verify(public_key, digest, sig[:64])
    assert secp256k1_sign(private_key, digest) == sig  # RFC 6979: deterministic


@settings(max_examples=50, deadline=None)
@given(private_keys, digests, digests)
def test_signature_does_not_verify_for_another_digest(
    private_key: bytes, digest: bytes, other: bytes
) -> None:
    if digest == other:
        return
    public_key = secp256k1_public_key(private_key)
    sig = secp256k1_sign(private_key, digest)
    assert not secp256k1_verify(public_key, other, sig)
    try:
        recovered = secp256k1_recover(other, sig)
    except CryptoError:
        return
    assert recovered != public_key


def test_malleated_twin_is_rejected_by_recover_and_verify() -> None:
    sig = secp256k1_sign(KEY, DIGEST)
    r, s, v = _parts(sig)
    twin = _make(r, SECP256K1_N - s, v ^ 1)  # the same point, high-s: valid pre-EIP-2
    with pytest.raises(CryptoError, match="high-s"):
        secp256k1_recover(DIGEST, twin)
    assert not secp256k1_verify(secp256k1_public_key(KEY), DIGEST, twin)


@pytest.mark.parametrize("v", [2, 3, 27, 28, 255])
def test_recover_rejects_recovery_id_outside_0_1(v: int) -> None:
    r, s, _ = _parts(secp256k1_sign(KEY, DIGEST))
    with pytest.raises(CryptoError, match="recovery id"):
        secp256k1_recover(DIGEST, _make(r, s, v))


@pytest.mark.parametrize(
    ("r", "s", "message"),
    [
        (0, 1, "r is zero"),
        (SECP256K1_N, 1, "r is zero or not below"),
        (2**256 - 1, 1, "r is zero or not below"),
        (1, 0, "s is zero"),
        (1, SECP256K1_N, "s is zero or not below"),
        (1, 2**256 - 1, "s is zero or not below"),
        (1, HALF_N + 1, "high-s"),
    ],
)
def test_recover_rejects_out_of_range_r_s(r: int, s: int, message: str) -> None:
    for v in (0, 1):
        with pytest.raises(CryptoError, match=message):
            secp256k1_recover(DIGEST, _make(r, s, v))
        assert not secp256k1_verify(secp256k1_public_key(KEY), DIGEST, _make(r, s, v))


def test_recover_accepts_largest_low_s() -> None:
    """s = (n-1)/2 is still low; the boundary is exclusive above it, not at it."""
    r, _, _ = _parts(secp256k1_sign(KEY, DIGEST))
    recovered = []
    for v in (0, 1):
        try:
            recovered.append(secp256k1_recover(DIGEST, _make(r, HALF_N, v)))
        except CryptoError as exc:
            assert "high-s" not in str(exc)
    assert recovered, "neither recovery id gave a point for a valid low-s (r, s)"


@pytest.mark.parametrize("length", [0, 1, 63, 64, 66, 130])
def test_recover_rejects_wrong_signature_length(length: int) -> None:
    with pytest.raises(CryptoError, match="signature must be 65 bytes"):
        secp256k1_recover(DIGEST, b"\x01" * length)


@pytest.mark.parametrize("length", [0, 20, 31, 33, 64])
def test_recover_and_sign_reject_wrong_digest_length(length: int) -> None:
    sig = secp256k1_sign(KEY, DIGEST)
    with pytest.raises(CryptoError, match="digest must be 32 bytes"):
        secp256k1_recover(b"\x00" * length, sig)
    with pytest.raises(CryptoError, match="digest must be 32 bytes"):
        secp256k1_sign(KEY, b"\x00" * length)
    assert not secp256k1_verify(secp256k1_public_key(KEY), b"\x00" * length, sig)


def test_r_that_is_not_an_x_coordinate_does_not_recover() -> None:
    # x = 5 has no point on secp256k1 (5**3 + 7 = 132 is not a square mod p), for either v.
    for v in (0, 1):
        with pytest.raises(CryptoError, match="does not recover"):
            secp256k1_recover(DIGEST, _make(5, 1, v))


@pytest.mark.parametrize("key", [0, SECP256K1_N, 2**256 - 1])
def test_private_key_out_of_range_is_rejected(key: int) -> None:
    raw = key.to_bytes(32, "big")
    with pytest.raises(CryptoError, match="invalid secp256k1 private key"):
        secp256k1_public_key(raw)
    with pytest.raises(CryptoError, match="invalid secp256k1 private key"):
        secp256k1_sign(raw, DIGEST)


def test_verify_accepts_each_public_key_form() -> None:
    sig = secp256k1_sign(KEY, DIGEST)
    raw = secp256k1_public_key(KEY)
    x, y = raw[:32], int.from_bytes(raw[32:], "big")
    compressed = bytes([2 + (y & 1)]) + x
    for form in (raw, b"\x04" + raw, compressed):
        assert secp256k1_verify(form, DIGEST, sig)
    assert not secp256k1_verify(b"\x04" + raw[:32] + bytes(32), DIGEST, sig)  # not on the curve
    assert not secp256k1_verify(secp256k1_public_key(DIGEST), DIGEST, sig)  # someone else
