"""Forgery and malleability attempts against the signature primitives.

QBFT seals are recovered (secp256k1) and Corda notary signatures verified (Ed25519); a
second valid encoding of one signature, or a key that verifies everything, would let a
relayer count a signer twice or forge a quorum.
"""

from __future__ import annotations

import contextlib

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from lightclients.crypto import (
    SECP256K1_N,
    CryptoError,
    ed25519_public_key,
    ed25519_sign,
    ed25519_verify,
    eth_address,
    secp256k1_public_key,
    secp256k1_recover,
    secp256k1_recover_address,
    secp256k1_sign,
    secp256k1_verify,
    secp256k1_verify_der,
)

KEY = (0xC0FFEE).to_bytes(32, "big")
DIGEST = bytes.fromhex("5c" * 32)
# Ed25519 group order L; s and s + L are the same scalar mod L.
ED25519_L = 2**252 + 27742317777372353535851937790883648493
ED25519_IDENTITY = b"\x01" + bytes(31)

private_keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(
    lambda k: k.to_bytes(32, "big")
)
digests = st.binary(min_size=32, max_size=32)


def _twin(sig: bytes) -> bytes:
    """(r, n - s, v ^ 1): the other ECDSA signature for the same key and digest."""
    s = int.from_bytes(sig[32:64], "big")
    return sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([sig[64] ^ 1])


# --- secp256k1 ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(private_keys, digests)
def test_high_s_twin_never_counts_as_a_second_seal(private_key: bytes, digest: bytes) -> None:
    sig = secp256k1_sign(private_key, digest)
    pub = secp256k1_public_key(private_key)
    twin = _twin(sig)
    assert secp256k1_recover(digest, sig) == pub
    with pytest.raises(CryptoError, match="high-s"):
        secp256k1_recover(digest, twin)
    assert not secp256k1_verify(pub, digest, twin)
    r, s = int.from_bytes(twin[:32], "big"), int.from_bytes(twin[32:64], "big")
    der = encode_dss_signature(r, s)
    assert not secp256k1_verify_der(pub, digest, der, require_low_s=True)
    assert secp256k1_verify_der(pub, digest, der, require_low_s=False)  # the math is valid


@pytest.mark.parametrize("v", [27, 28, 2, 3, 37, 38])
def test_legacy_and_eip155_recovery_ids_are_refused(v: int) -> None:
    """v = 27/28 (legacy) or 2/3 (x = r + n) would give one seal several encodings."""
    sig = secp256k1_sign(KEY, DIGEST)
    for candidate in (v, v ^ 1):
        with pytest.raises(CryptoError, match="recovery id"):
            secp256k1_recover(DIGEST, sig[:64] + bytes([candidate]))


def test_hybrid_public_key_encoding_is_refused() -> None:
    """0x06/0x07 ‖ X ‖ Y is a second 65-byte spelling of a key libsecp256k1 would accept."""
    sig = secp256k1_sign(KEY, DIGEST)
    pub = secp256k1_public_key(KEY)
    parity = pub[63] & 1
    assert secp256k1_verify(b"\x04" + pub, DIGEST, sig)
    assert not secp256k1_verify(bytes([6 + parity]) + pub, DIGEST, sig)
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
    der = encode_dss_signature(r, s)
    assert not secp256k1_verify_der(bytes([6 + parity]) + pub, DIGEST, der, require_low_s=True)


@pytest.mark.parametrize(
    "public_key",
    [
        bytes(64),
        b"\x04" + bytes(64),
        b"\x02" + bytes(32),
        b"\x03" + bytes(32),
        b"\x04" + b"\xff" * 64,
    ],
)
def test_zero_or_off_curve_public_keys_verify_nothing(public_key: bytes) -> None:
    sig = secp256k1_sign(KEY, DIGEST)
    r = int.from_bytes(sig[:32], "big")
    assert not secp256k1_verify(public_key, DIGEST, sig)
    assert not secp256k1_verify(public_key, DIGEST, r.to_bytes(32, "big") + r.to_bytes(32, "big"))


@settings(max_examples=40, deadline=None)
@given(private_keys, digests, digests)
def test_signature_for_one_digest_is_not_one_for_another(
    private_key: bytes, digest: bytes, other: bytes
) -> None:
    if digest == other:
        other = bytes(b ^ 1 for b in other)
    sig = secp256k1_sign(private_key, digest)
    pub = secp256k1_public_key(private_key)
    assert not secp256k1_verify(pub, other, sig)
    with contextlib.suppress(CryptoError):  # some (r, v) recover no key for another digest
        assert secp256k1_recover_address(other, sig) != eth_address(pub)


# --- Ed25519 -----------------------------------------------------------------------------


@pytest.mark.parametrize("message", [b"", b"checkpoint", bytes(32)])
def test_identity_key_with_trivial_signature_verifies_nothing(message: bytes) -> None:
    """A = R = identity, s = 0 satisfies [s]B = R + [k]A for every message; only the
    small-order-key rule stops a 'notary' with this key from signing everything."""
    assert not ed25519_verify(ED25519_IDENTITY, message, ED25519_IDENTITY + bytes(32))
    assert not ed25519_verify(bytes(32), message, bytes(64))


def test_s_plus_group_order_is_not_a_second_signature() -> None:
    seed = bytes(range(32))
    pub = ed25519_public_key(seed)
    sig = ed25519_sign(seed, b"checkpoint 7")
    s = int.from_bytes(sig[32:], "little")
    malleated = sig[:32] + (s + ED25519_L).to_bytes(32, "little")
    assert ed25519_verify(pub, b"checkpoint 7", sig)
    assert not ed25519_verify(pub, b"checkpoint 7", malleated)


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=64), st.binary(max_size=64))
def test_ed25519_signature_binds_message_and_key(seed: bytes, message: bytes, other: bytes) -> None:
    pub = ed25519_public_key(seed)
    sig = ed25519_sign(seed, message)
    assert ed25519_verify(pub, message, sig)
    if other != message:
        assert not ed25519_verify(pub, other, sig)
    stranger = ed25519_public_key(bytes(b ^ 0xFF for b in seed))
    assert not ed25519_verify(stranger, message, sig)
