"""The sealed enclave-key format: an enclave key encrypted so only the same enclave code on the
same platform can read it back (SIMULATED sealing, standing in for SGX's MRENCLAVE policy).

Layout of a sealed blob::

    b"KKHSEAL1" || nonce (12 bytes) || AES-256-GCM(key, nonce, plaintext, aad)

    key       = HKDF-SHA256(platform_secret, salt=b"kakehashi/proxy/v1/seal", info=code_hash)
    aad       = b"KKHSEAL1" || code_hash
    plaintext = SealedEnclaveKey{secret, registration} (deterministic protobuf)

Why the code hash is in both the key and the associated data: as with SGX sealing to
MRENCLAVE, a proxy running different light-client code derives a different sealing key and
cannot unseal (nor pass off) the keys of another build; its own reports would name its own
code hash anyway, which clients pinning the old one refuse. The platform secret plays the
CPU's sealing root: it never leaves the proxy's host. Sans-I/O: the nonce comes from the
caller's randomness source and files are the caller's business.
"""

from __future__ import annotations

from kakehashi.proxy.v1 import proxy_pb2 as pb
from lightclients.crypto import CryptoError, aes_gcm_open, aes_gcm_seal, hkdf_sha256
from lightclients.proxy.messages import HASH_LEN, EncodingError, decode, encode

MAGIC = b"KKHSEAL1"
NONCE_LEN = 12
SALT = b"kakehashi/proxy/v1/seal"


class SealingError(ValueError):
    """A sealed blob that cannot be opened here (other code, other platform, or damaged)."""


def _key(platform_secret: bytes, code_hash: bytes) -> bytes:
    if len(platform_secret) < 32:
        raise SealingError("the platform secret must be at least 32 bytes")
    if len(code_hash) != HASH_LEN:
        raise SealingError("the code hash must be 32 bytes")
    return hkdf_sha256(platform_secret, SALT, code_hash)


def seal(platform_secret: bytes, code_hash: bytes, key: pb.SealedEnclaveKey, nonce: bytes) -> bytes:
    if len(nonce) != NONCE_LEN:
        raise SealingError(f"the sealing nonce must be {NONCE_LEN} bytes")
    return MAGIC + nonce + aes_gcm_seal(_key(platform_secret, code_hash), nonce, encode(key), MAGIC + code_hash)


def unseal(platform_secret: bytes, code_hash: bytes, blob: bytes) -> pb.SealedEnclaveKey:
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_LEN + 16:
        raise SealingError("not a sealed enclave key (bad magic or truncated)")
    nonce = blob[len(MAGIC):len(MAGIC) + NONCE_LEN]
    try:
        plain = aes_gcm_open(_key(platform_secret, code_hash), nonce, blob[len(MAGIC) + NONCE_LEN:],
                             MAGIC + code_hash)
    except CryptoError as exc:
        raise SealingError(f"cannot unseal: {exc}; the key was sealed by other enclave code or another "
                           "platform") from None
    try:
        sealed = decode(pb.SealedEnclaveKey, plain, "sealed enclave key")
    except EncodingError as exc:
        raise SealingError(str(exc)) from None
    if len(sealed.secret) != 32:
        raise SealingError("sealed enclave key: the secret must be 32 bytes")
    return sealed
