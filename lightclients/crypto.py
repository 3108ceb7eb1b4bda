"""Hash and signature primitives, the only place the project touches crypto libraries.

Everything that hashes or signs goes through here so that a verifier's cost model is one
module, and so that every caller gets the same input validation: wrong-length keys,
truncated signatures and non-canonical encodings raise :class:`CryptoError` (or verify
as False), never an exception from deep inside a C binding.

Rules chosen (and pinned by tests against ../shared/testvectors):
- secp256k1 signatures are Ethereum-style 65 bytes r‖s‖v with v ∈ {0, 1}. Recovery rejects
  r or s out of range and high-s (EIP-2), so a seal has exactly one valid encoding.
- Ed25519 follows RFC 8032 / libsodium: non-canonical R or A and s ≥ L are rejected
  (pynacl's verify), which is what Corda's EdDSA provider also refuses.
"""

from __future__ import annotations

import hashlib

import coincurve
import nacl.exceptions
import nacl.signing
import sha3  # safe-pysha3: the fastest keccak available here (~0.9 µs per 32-byte call)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2


class CryptoError(ValueError):
    """Malformed key, signature or digest handed to a primitive."""


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def keccak256(data: bytes) -> bytes:
    return sha3.keccak_256(data).digest()


def _need(name: str, value: bytes, length: int) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise CryptoError(f"{name} must be bytes, got {type(value).__name__}")
    if len(value) != length:
        raise CryptoError(f"{name} must be {length} bytes, got {len(value)}")


# --- secp256k1 (Ethereum / QBFT) -------------------------------------------------------


def secp256k1_public_key(private_key: bytes) -> bytes:
    """The 64-byte uncompressed public key (no 0x04 prefix) of a 32-byte private key."""
    _need("private key", private_key, 32)
    try:
        return coincurve.PrivateKey(bytes(private_key)).public_key.format(compressed=False)[1:]
    except ValueError as exc:
        raise CryptoError(f"invalid secp256k1 private key: {exc}") from exc


def eth_address(public_key: bytes) -> bytes:
    """Ethereum address: last 20 bytes of keccak256 of the 64-byte uncompressed key."""
    if len(public_key) == 65 and public_key[0] == 4:
        public_key = public_key[1:]
    _need("public key", public_key, 64)
    return keccak256(public_key)[12:]


def secp256k1_sign(private_key: bytes, digest: bytes) -> bytes:
    """Sign a 32-byte digest; returns r‖s‖v (65 bytes, v ∈ {0,1}, low-s)."""
    _need("private key", private_key, 32)
    _need("digest", digest, 32)
    try:
        sig = coincurve.PrivateKey(bytes(private_key)).sign_recoverable(bytes(digest), hasher=None)
    except ValueError as exc:
        raise CryptoError(f"invalid secp256k1 private key: {exc}") from exc
    return bytes(sig)


def secp256k1_recover(digest: bytes, signature: bytes) -> bytes:
    """Recover the 64-byte public key that made an r‖s‖v signature over a digest."""
    _need("digest", digest, 32)
    _need("signature", signature, 65)
    r = int.from_bytes(signature[0:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (0, 1):
        raise CryptoError(f"signature recovery id must be 0 or 1, got {v}")
    if not (0 < r < SECP256K1_N) or not (0 < s <= _HALF_N):
        raise CryptoError("signature r/s out of range or high-s (EIP-2)")
    try:
        pub = coincurve.PublicKey.from_signature_and_message(
            bytes(signature), bytes(digest), hasher=None
        )
    except Exception as exc:  # coincurve raises plain Exception on unrecoverable input
        raise CryptoError(f"signature does not recover to a public key: {exc}") from exc
    return bytes(pub.format(compressed=False)[1:])


def secp256k1_recover_address(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte Ethereum address of the signer of a digest."""
    return eth_address(secp256k1_recover(digest, signature))


def secp256k1_verify(public_key: bytes, digest: bytes, signature: bytes) -> bool:
    """Verify r‖s (64 bytes) or r‖s‖v (65 bytes) over a 32-byte digest; low-s is required."""
    try:
        _need("digest", digest, 32)
        if len(signature) not in (64, 65):
            return False
        r = int.from_bytes(signature[0:32], "big")
        s = int.from_bytes(signature[32:64], "big")
        if not (0 < r < SECP256K1_N) or not (0 < s <= _HALF_N):
            return False
        if len(public_key) == 64:
            public_key = b"\x04" + bytes(public_key)
        pub = coincurve.PublicKey(bytes(public_key))
        return bool(pub.verify(_compact_to_der(bytes(signature[:64])), bytes(digest), hasher=None))
    except Exception:  # any malformed key or encoding is simply "not valid"
        return False


def _compact_to_der(sig64: bytes) -> bytes:
    """libsecp256k1's verify entry point in coincurve takes DER; build it from r‖s."""
    def _int(b: bytes) -> bytes:
        b = b.lstrip(b"\x00") or b"\x00"
        if b[0] & 0x80:
            b = b"\x00" + b
        return b"\x02" + bytes([len(b)]) + b

    body = _int(sig64[:32]) + _int(sig64[32:])
    return b"\x30" + bytes([len(body)]) + body


# --- Ed25519 (Corda parties and notaries) ----------------------------------------------


def ed25519_public_key(seed: bytes) -> bytes:
    _need("ed25519 seed", seed, 32)
    return bytes(nacl.signing.SigningKey(bytes(seed)).verify_key)


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    """Deterministic RFC 8032 signature (64 bytes) by the key derived from a 32-byte seed."""
    _need("ed25519 seed", seed, 32)
    return bytes(nacl.signing.SigningKey(bytes(seed)).sign(bytes(message)).signature)


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        nacl.signing.VerifyKey(bytes(public_key)).verify(bytes(message), bytes(signature))
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError, TypeError):
        return False
