"""Checkpoint and notary-set hashing, shared by the notary cluster (signer) and the client.

Both sides must hash exactly the same bytes, which is why this codec lives with the verifier
and the chain imports it (DESIGN.md: lightclients owns the codecs of the chains it verifies).

Preimages:
- checkpoint hash   = sha256(Checkpoint.SerializeToString(deterministic=True))
- notary set hash   = sha256(NotarySet{public_keys in the given order}, deterministic)
  The order is part of the identity of a set; the cluster always lists members in the order
  it was configured with, and a reordered set is a different set for rotation purposes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kakehashi.corda.v1 import lightclient_pb2 as lc
from lightclients.crypto import ed25519_public_key, ed25519_sign, ed25519_verify, sha256

ED25519_KEY_LEN = 32


class CheckpointError(ValueError):
    """A checkpoint or notary set is malformed."""


def notary_set(public_keys: Iterable[bytes]) -> lc.NotarySet:
    """The NotarySet message for keys, rejecting wrong lengths and duplicates."""
    keys = [bytes(k) for k in public_keys]
    if not keys:
        raise CheckpointError("notary set is empty")
    if any(len(k) != ED25519_KEY_LEN for k in keys):
        raise CheckpointError("notary keys must be 32-byte Ed25519 public keys")
    if len(set(keys)) != len(keys):
        raise CheckpointError("notary set lists a key twice")
    return lc.NotarySet(public_keys=keys)


def notary_set_hash(public_keys: Sequence[bytes]) -> bytes:
    return sha256(notary_set(public_keys).SerializeToString(deterministic=True))


def quorum(n: int) -> int:
    """Smallest count strictly greater than 2/3 of n (2f+1 when n = 3f+1)."""
    return (2 * n) // 3 + 1


def trust_quorum(n: int) -> int:
    """Smallest count strictly greater than 1/3 of n."""
    return n // 3 + 1


def checkpoint_bytes(checkpoint: lc.Checkpoint) -> bytes:
    return checkpoint.SerializeToString(deterministic=True)


def checkpoint_hash(checkpoint: lc.Checkpoint) -> bytes:
    return sha256(checkpoint_bytes(checkpoint))


def sign_checkpoint(seed: bytes, checkpoint: lc.Checkpoint) -> lc.NotarySignature:
    """A notary's signature over the checkpoint hash (the notary's seed never leaves it)."""
    return lc.NotarySignature(
        public_key=ed25519_public_key(seed), signature=ed25519_sign(seed, checkpoint_hash(checkpoint))
    )


def count_signers(
    digest: bytes, signatures: Iterable[lc.NotarySignature], allowed: Sequence[bytes]
) -> int:
    """Distinct members of ``allowed`` with a valid signature over ``digest``.

    A key listed twice counts once and keys outside ``allowed`` count zero, so padding a
    header with repeats or strangers cannot reach a quorum.
    """
    members = set(allowed)
    good: set[bytes] = set()
    for sig in signatures:
        key = bytes(sig.public_key)
        if key in members and key not in good and ed25519_verify(key, digest, bytes(sig.signature)):
            good.add(key)
    return len(good)
