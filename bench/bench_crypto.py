"""Per-operation cost of the crypto primitives, all measured in one run.

Light-client update cost is dominated by these calls (one recover per QBFT seal, one
Ed25519 verify per Corda signature, a keccak per trie node), so their ratios are what
the other benchmarks' numbers should be read against.
"""

from __future__ import annotations

from bench.timing import per_call_us
from lightclients import crypto

_SECP_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
_ED_SEED = bytes(range(32))


def run(quick: bool) -> dict[str, object]:
    min_seconds = 0.05 if quick else 0.5
    data32 = crypto.sha256(b"kakehashi bench")
    digest = crypto.keccak256(data32)
    secp_pub = crypto.secp256k1_public_key(_SECP_KEY)
    secp_sig = crypto.secp256k1_sign(_SECP_KEY, digest)
    ed_pub = crypto.ed25519_public_key(_ED_SEED)
    ed_sig = crypto.ed25519_sign(_ED_SEED, data32)
    # A benchmark of a failing path would measure the wrong thing, so check first.
    assert crypto.secp256k1_recover(digest, secp_sig) == secp_pub
    assert crypto.secp256k1_verify(secp_pub, digest, secp_sig)
    assert crypto.ed25519_verify(ed_pub, data32, ed_sig)

    ops = {
        "sha256_32B": lambda: crypto.sha256(data32),
        "keccak256_32B": lambda: crypto.keccak256(data32),
        "secp256k1_sign": lambda: crypto.secp256k1_sign(_SECP_KEY, digest),
        "secp256k1_recover": lambda: crypto.secp256k1_recover(digest, secp_sig),
        "secp256k1_recover_address": lambda: crypto.secp256k1_recover_address(digest, secp_sig),
        "secp256k1_verify": lambda: crypto.secp256k1_verify(secp_pub, digest, secp_sig),
        "ed25519_sign": lambda: crypto.ed25519_sign(_ED_SEED, data32),
        "ed25519_verify": lambda: crypto.ed25519_verify(ed_pub, data32, ed_sig),
    }
    per_op_us = {
        name: round(per_call_us(fn, min_seconds=min_seconds), 3) for name, fn in ops.items()
    }
    base = per_op_us["keccak256_32B"]
    return {
        "per_op_us": per_op_us,
        "ratio_to_keccak256": {name: round(us / base, 1) for name, us in per_op_us.items()},
        "min_seconds_per_op": min_seconds,
    }
