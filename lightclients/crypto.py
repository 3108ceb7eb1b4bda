"""Hash and signature primitives, the only place the project touches crypto libraries.

Everything that hashes or signs goes through here so that a verifier's cost model is one
module, and so that every caller gets the same input validation: wrong-length keys,
truncated signatures, non-bytes arguments and non-canonical encodings raise
:class:`CryptoError` (or verify as False), never an exception from deep inside a C binding.

Rules chosen (and pinned by tests against ../shared/testvectors):
- secp256k1 signatures are Ethereum-style 65 bytes r‖s‖v with v ∈ {0, 1}. Recovery rejects
  r or s out of range and high-s (EIP-2), so a seal has exactly one valid encoding.
  Verification of r‖s / r‖s‖v is low-s only as well; DER verification (for foreign
  formats) takes the low-s policy as an explicit argument and parses strict DER only.
- Ed25519 follows libsodium (pynacl): non-canonical R or A, small-order R or A, and s ≥ L
  are rejected; on the C2SP/CCTV edge-case vectors that means "accept only if no flag other
  than low_order_component_A/R is set" (the ed25519-dalek ``verify_strict`` rule).
"""

from __future__ import annotations

import hashlib

import coincurve
import nacl.exceptions
import nacl.signing
import sha3  # safe-pysha3: the fastest keccak available here (~0.9 µs per 32-byte call)
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2

_BYTES = (bytes, bytearray)


class CryptoError(ValueError):
    """Malformed key, signature or digest handed to a primitive."""


def _need_bytes(name: str, value: object) -> bytes:
    # bytes(5) would silently become five zero bytes, so anything that is not already a
    # byte string is refused rather than converted.
    if not isinstance(value, _BYTES):
        raise CryptoError(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


def _need(name: str, value: object, length: int) -> bytes:
    data = _need_bytes(name, value)
    if len(data) != length:
        raise CryptoError(f"{name} must be {length} bytes, got {len(data)}")
    return data


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(_need_bytes("sha256 input", data)).digest()


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (the pre-standard padding, not NIST SHA3-256)."""
    return bytes(sha3.keccak_256(_need_bytes("keccak256 input", data)).digest())


# --- secp256k1 (Ethereum / QBFT) -------------------------------------------------------


def secp256k1_public_key(private_key: bytes) -> bytes:
    """The 64-byte uncompressed public key (no 0x04 prefix) of a 32-byte private key."""
    key = _need("private key", private_key, 32)
    try:
        return bytes(coincurve.PrivateKey(key).public_key.format(compressed=False)[1:])
    except ValueError as exc:
        raise CryptoError(f"invalid secp256k1 private key: {exc}") from exc


def eth_address(public_key: bytes) -> bytes:
    """Ethereum address: last 20 bytes of keccak256 of the 64-byte uncompressed key.

    The 65-byte 0x04-prefixed form is accepted too because that is what most tools print.
    """
    key = _need_bytes("public key", public_key)
    if len(key) == 65 and key[0] == 4:
        key = key[1:]
    _need("public key", key, 64)
    return keccak256(key)[12:]


def secp256k1_sign(private_key: bytes, digest: bytes) -> bytes:
    """Sign a 32-byte digest; returns r‖s‖v (65 bytes, v ∈ {0,1}, low-s, RFC 6979 nonce)."""
    key = _need("private key", private_key, 32)
    msg = _need("digest", digest, 32)
    try:
        sig = coincurve.PrivateKey(key).sign_recoverable(msg, hasher=None)
    except ValueError as exc:
        raise CryptoError(f"invalid secp256k1 private key: {exc}") from exc
    return bytes(sig)


def _check_rs(r: int, s: int) -> None:
    if not 0 < r < SECP256K1_N:
        raise CryptoError("signature r is zero or not below the group order")
    if not 0 < s < SECP256K1_N:
        raise CryptoError("signature s is zero or not below the group order")
    if s > _HALF_N:
        raise CryptoError("signature s is in the upper half of the group order (EIP-2 high-s)")


def secp256k1_recover(digest: bytes, signature: bytes) -> bytes:
    """Recover the 64-byte public key that made an r‖s‖v signature over a digest."""
    msg = _need("digest", digest, 32)
    sig = _need("signature", signature, 65)
    v = sig[64]
    if v not in (0, 1):
        raise CryptoError(f"signature recovery id must be 0 or 1, got {v}")
    _check_rs(int.from_bytes(sig[0:32], "big"), int.from_bytes(sig[32:64], "big"))
    try:
        pub = coincurve.PublicKey.from_signature_and_message(sig, msg, hasher=None)
    except ValueError as exc:
        raise CryptoError(f"signature does not recover to a public key: {exc}") from exc
    return bytes(pub.format(compressed=False)[1:])


def secp256k1_recover_address(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte Ethereum address of the signer of a digest."""
    return eth_address(secp256k1_recover(digest, signature))


def _parse_public_key(public_key: object) -> coincurve.PublicKey:
    """Accept raw 64-byte X‖Y and the SEC1 forms 0x02/0x03 ‖ X and 0x04 ‖ X ‖ Y only."""
    key = _need_bytes("public key", public_key)
    if len(key) == 64:
        key = b"\x04" + key
    if len(key) not in (33, 65):
        raise CryptoError(f"public key must be 33, 64 or 65 bytes, got {len(key)}")
    if len(key) == 65 and key[0] != 4:
        # libsecp256k1 also parses X9.62 "hybrid" keys (0x06/0x07 ‖ X ‖ Y), a second
        # uncompressed encoding of one key; SEC1 and Ethereum use only 0x04.
        raise CryptoError("65-byte public key must start with 0x04 (hybrid keys are refused)")
    try:
        return coincurve.PublicKey(key)
    except ValueError as exc:
        raise CryptoError(f"public key is not a point on secp256k1: {exc}") from exc


def _verify_rs(public_key: object, digest: object, r: int, s: int, require_low_s: bool) -> bool:
    """Shared tail of both verify entry points once r and s are plain integers.

    libsecp256k1 itself refuses high-s, so when the caller tolerates it the signature is
    verified as (r, n - s), which is valid exactly when (r, s) is.
    """
    try:
        msg = _need("digest", digest, 32)
        if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
            return False
        if s > _HALF_N:
            if require_low_s:
                return False
            s = SECP256K1_N - s
        pub = _parse_public_key(public_key)
        # coincurve's verify only takes DER; cryptography's encoder is the tested way there.
        return bool(pub.verify(encode_dss_signature(r, s), msg, hasher=None))
    except (CryptoError, ValueError):
        return False


def secp256k1_verify(public_key: bytes, digest: bytes, signature: bytes) -> bool:
    """Verify r‖s (64 bytes) or r‖s‖v (65 bytes) over a 32-byte digest; low-s is required.

    v is ignored here (the key is given), so any byte there is accepted.
    """
    if not isinstance(signature, _BYTES) or len(signature) not in (64, 65):
        return False
    r = int.from_bytes(signature[0:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    return _verify_rs(public_key, digest, r, s, True)


def secp256k1_verify_der(
    public_key: bytes, digest: bytes, der_sig: bytes, *, require_low_s: bool
) -> bool:
    """Verify an ASN.1 DER (r, s) signature over a 32-byte digest.

    Only strict DER is accepted (minimal lengths, minimal non-negative integers, no trailing
    bytes; cryptography's ASN.1 parser), so a signature has one byte encoding up to the s/n-s choice, which
    ``require_low_s`` removes as well (Bitcoin BIP-146 / Ethereum EIP-2 style).
    """
    if not isinstance(der_sig, _BYTES):
        return False
    try:
        r, s = decode_dss_signature(bytes(der_sig))
    except ValueError:
        return False
    return _verify_rs(public_key, digest, r, s, require_low_s)


# --- Ed25519 (Corda parties and notaries) ----------------------------------------------


def ed25519_public_key(seed: bytes) -> bytes:
    """The 32-byte public key A of the RFC 8032 key derived from a 32-byte seed."""
    return bytes(nacl.signing.SigningKey(_need("ed25519 seed", seed, 32)).verify_key)


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    """Deterministic RFC 8032 signature (64 bytes) by the key derived from a 32-byte seed."""
    key = nacl.signing.SigningKey(_need("ed25519 seed", seed, 32))
    return bytes(key.sign(_need_bytes("message", message)).signature)


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """libsodium's strict check; see the module docstring for which edge cases it refuses."""
    try:
        key = _need("ed25519 public key", public_key, 32)
        msg = _need_bytes("message", message)
        sig = _need("ed25519 signature", signature, 64)
        nacl.signing.VerifyKey(key).verify(msg, sig)
        return True
    except (CryptoError, nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError):
        return False


# --- symmetric sealing (the proxy enclave's key files) ----------------------------------


def hkdf_sha256(secret: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 HKDF-SHA256 (extract and expand)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    ikm = _need_bytes("HKDF secret", secret)
    return bytes(HKDF(algorithm=hashes.SHA256(), length=length, salt=_need_bytes("HKDF salt", salt),
                      info=_need_bytes("HKDF info", info)).derive(ikm))


def aes_gcm_seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM: ciphertext with its 16-byte tag appended. The nonce must never repeat
    under one key; callers draw it from their randomness source."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return bytes(AESGCM(_need("AES-GCM key", key, 32)).encrypt(
        _need("AES-GCM nonce", nonce, 12), _need_bytes("plaintext", plaintext), _need_bytes("aad", aad)))


def aes_gcm_open(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`aes_gcm_seal`; CryptoError when the tag does not verify (wrong key,
    wrong associated data, or tampered bytes)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        return bytes(AESGCM(_need("AES-GCM key", key, 32)).decrypt(
            _need("AES-GCM nonce", nonce, 12), _need_bytes("ciphertext", ciphertext), _need_bytes("aad", aad)))
    except InvalidTag:
        raise CryptoError("sealed data does not authenticate (wrong key, wrong binding, or tampered)") from None
