"""Every crypto entry point given garbage: only False or CryptoError may come out.

Light clients feed these functions bytes straight from relayer messages, so a TypeError or
a C-binding exception escaping here would turn a forged message into a crash instead of a
clean rejection. Also pins the hash functions to known answers.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightclients import crypto
from lightclients.crypto import CryptoError

KEY = bytes(range(1, 33))
DIGEST = crypto.sha256(b"digest")

# Functions that answer a yes/no question return False on bad input; all others raise.
VERIFIERS: dict[str, Callable[..., Any]] = {
    "secp256k1_verify": crypto.secp256k1_verify,
    "secp256k1_verify_der": lambda k, d, s: crypto.secp256k1_verify_der(
        k, d, s, require_low_s=True
    ),
    "secp256k1_verify_der_lax": lambda k, d, s: crypto.secp256k1_verify_der(
        k, d, s, require_low_s=False
    ),
    "ed25519_verify": crypto.ed25519_verify,
}
RAISERS: dict[str, Callable[..., Any]] = {
    "sha256": crypto.sha256,
    "keccak256": crypto.keccak256,
    "secp256k1_public_key": crypto.secp256k1_public_key,
    "eth_address": crypto.eth_address,
    "secp256k1_sign": crypto.secp256k1_sign,
    "secp256k1_recover": crypto.secp256k1_recover,
    "secp256k1_recover_address": crypto.secp256k1_recover_address,
    "ed25519_public_key": crypto.ed25519_public_key,
    "ed25519_sign": crypto.ed25519_sign,
}
ARITY = {
    "sha256": 1,
    "keccak256": 1,
    "secp256k1_public_key": 1,
    "eth_address": 1,
    "ed25519_public_key": 1,
    "secp256k1_sign": 2,
    "secp256k1_recover": 2,
    "secp256k1_recover_address": 2,
    "ed25519_sign": 2,
}

NOT_BYTES: list[Any] = [
    None,
    5,
    0,
    -1,
    1.5,
    "ab" * 16,
    [1] * 32,
    (1,) * 32,
    memoryview(KEY),
    bytearray,
    object(),
]
garbage = st.one_of(
    st.binary(max_size=80),
    st.sampled_from([b"", bytes(32), b"\xff" * 32, bytes(64), b"\xff" * 64, b"\x04" + bytes(64)]),
    st.sampled_from(NOT_BYTES),
    st.text(max_size=40),
    st.integers(),
    st.lists(st.integers(min_value=0, max_value=255), max_size=70),
)


def _outcome(fn: Callable[..., Any], *args: Any) -> object:
    try:
        return fn(*args)
    except CryptoError:
        return CryptoError


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(VERIFIERS)), args=st.tuples(garbage, garbage, garbage))
def test_verifiers_return_false_on_garbage(name: str, args: tuple[Any, Any, Any]) -> None:
    assert _outcome(VERIFIERS[name], *args) in (False, CryptoError)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(RAISERS)), args=st.tuples(garbage, garbage))
def test_other_functions_raise_only_crypto_error(name: str, args: tuple[Any, Any]) -> None:
    result = _outcome(RAISERS[name], *args[: ARITY[name]])
    assert result is CryptoError or isinstance(result, bytes)


@pytest.mark.parametrize("bad", NOT_BYTES)
def test_non_bytes_never_silently_converted(bad: Any) -> None:
    """bytes(5) is five zero bytes and bytes([1]*32) a valid key: neither may be accepted."""
    for name, fn in RAISERS.items():
        if ARITY[name] == 1:
            with pytest.raises(CryptoError, match="must be bytes"):
                fn(bad)
    with pytest.raises(CryptoError, match="must be bytes"):
        crypto.secp256k1_sign(bad, DIGEST)
    with pytest.raises(CryptoError, match="must be bytes"):
        crypto.secp256k1_sign(KEY, bad)
    with pytest.raises(CryptoError, match="must be bytes"):
        crypto.ed25519_sign(bad, b"msg")
    with pytest.raises(CryptoError, match="must be bytes"):
        crypto.ed25519_sign(KEY, bad)
    with pytest.raises(CryptoError, match="must be bytes"):
        crypto.secp256k1_recover(DIGEST, bad)
    ed_key = crypto.ed25519_public_key(KEY)
    ed_sig = crypto.ed25519_sign(KEY, b"msg")
    assert crypto.ed25519_verify(ed_key, b"msg", ed_sig)
    assert not crypto.ed25519_verify(bad, b"msg", ed_sig)
    assert not crypto.ed25519_verify(ed_key, bad, ed_sig)
    assert not crypto.ed25519_verify(ed_key, b"msg", bad)
    pub = crypto.secp256k1_public_key(KEY)
    sig = crypto.secp256k1_sign(KEY, DIGEST)
    assert crypto.secp256k1_verify(pub, DIGEST, sig)
    assert not crypto.secp256k1_verify(bad, DIGEST, sig)
    assert not crypto.secp256k1_verify(pub, bad, sig)
    assert not crypto.secp256k1_verify(pub, DIGEST, bad)
    assert not crypto.secp256k1_verify_der(pub, DIGEST, bad, require_low_s=False)


def test_bytearray_is_accepted_like_bytes() -> None:
    # Typed as bytes, but a caller holding a mutable buffer must not be refused or crash.
    bytearray: Any = builtins.bytearray
    sig = crypto.secp256k1_sign(bytearray(KEY), bytearray(DIGEST))
    assert crypto.secp256k1_recover(
        bytearray(DIGEST), bytearray(sig)
    ) == crypto.secp256k1_public_key(KEY)
    assert crypto.keccak256(bytearray(b"abc")) == crypto.keccak256(b"abc")
    ed_sig = crypto.ed25519_sign(bytearray(KEY), bytearray(b"m"))
    assert crypto.ed25519_verify(
        bytearray(crypto.ed25519_public_key(KEY)), bytearray(b"m"), bytearray(ed_sig)
    )


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_wrong_length_keys(length: int) -> None:
    with pytest.raises(CryptoError, match="32 bytes"):
        crypto.secp256k1_public_key(b"\x01" * length)
    with pytest.raises(CryptoError, match="32 bytes"):
        crypto.ed25519_public_key(b"\x01" * length)
    with pytest.raises(CryptoError, match="32 bytes"):
        crypto.ed25519_sign(b"\x01" * length, b"m")
    assert not crypto.ed25519_verify(b"\x01" * length, b"m", bytes(64))


@pytest.mark.parametrize("length", [0, 20, 63, 66])
def test_wrong_length_public_keys(length: int) -> None:
    with pytest.raises(CryptoError, match="64 bytes"):
        crypto.eth_address(b"\x04" * length)
    sig = crypto.secp256k1_sign(KEY, DIGEST)
    assert not crypto.secp256k1_verify(b"\x04" * length, DIGEST, sig)


def test_eth_address_rejects_65_bytes_without_04_prefix() -> None:
    with pytest.raises(CryptoError, match="64 bytes"):
        crypto.eth_address(b"\x03" + bytes(64))


@pytest.mark.parametrize("length", [0, 63, 65, 128])
def test_wrong_length_ed25519_signatures(length: int) -> None:
    assert not crypto.ed25519_verify(crypto.ed25519_public_key(KEY), b"m", b"\x01" * length)


@pytest.mark.parametrize("length", [0, 8, 63, 66, 72])
def test_wrong_length_secp256k1_signatures(length: int) -> None:
    pub = crypto.secp256k1_public_key(KEY)
    assert not crypto.secp256k1_verify(pub, DIGEST, b"\x01" * length)
    assert not crypto.secp256k1_verify_der(pub, DIGEST, b"\x30" * length, require_low_s=False)


def test_der_with_trailing_byte_is_rejected() -> None:
    pub = crypto.secp256k1_public_key(KEY)
    sig = crypto.secp256k1_sign(KEY, DIGEST)
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    der = encode_dss_signature(r, s)
    assert crypto.secp256k1_verify_der(pub, DIGEST, der, require_low_s=True)
    assert not crypto.secp256k1_verify_der(pub, DIGEST, der + b"\x00", require_low_s=True)


@pytest.mark.parametrize(
    ("data", "sha256_hex", "keccak_hex"),
    [
        (
            b"",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470",
        ),
        (
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45",
        ),
    ],
)
def test_hash_known_answers(data: bytes, sha256_hex: str, keccak_hex: str) -> None:
    assert crypto.sha256(data).hex() == sha256_hex
    assert crypto.keccak256(data).hex() == keccak_hex
    # Keccak-256 is not NIST SHA3-256 (different padding); mixing them up breaks every hash.
    assert crypto.keccak256(data) != hashlib.sha3_256(data).digest()
