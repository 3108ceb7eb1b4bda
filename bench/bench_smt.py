"""Sparse Merkle tree cost: insert, prove and verify at growing sizes.

The SMT is what the Corda chain commits to in every checkpoint and what a counterparty's
light client checks on every packet, so the figures that matter are per-key insert cost
(one commit hashes each changed node once), proof size in steps (~log2 n, not 256) and
verify cost relative to the 256 sha256 calls a non-compact tree would need.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from typing import Any

from bench.timing import per_call_us
from chains.store.smt import SparseMerkleTree
from lightclients.ics23 import SMT_SPEC, verify_membership, verify_non_membership

SAMPLE = 200


def _key(i: int) -> bytes:
    return b"commitments/ports/transfer/channels/channel-0/sequences/" + str(i).encode()


def _one_size(n: int) -> dict[str, Any]:
    tree = SparseMerkleTree()
    start = time.perf_counter()
    for i in range(n):
        tree.set(_key(i), i.to_bytes(8, "big"))
    root = tree.commit()
    bulk_us = (time.perf_counter() - start) / n * 1e6

    # incremental: a block's worth of new keys into the existing tree
    extra = 100
    start = time.perf_counter()
    for i in range(n, n + extra):
        tree.set(_key(i), b"x")
    tree.commit()
    incremental_us = (time.perf_counter() - start) / extra * 1e6
    view = tree.at(root)

    step = max(1, n // SAMPLE)
    present = [_key(i) for i in range(0, n, step)][:SAMPLE]
    absent = [_key(n + extra + i) for i in range(len(present))]

    start = time.perf_counter()
    proofs = [view.prove_bytes(k) for k in present]
    prove_us = (time.perf_counter() - start) / len(present) * 1e6
    start = time.perf_counter()
    absent_proofs = [view.prove_bytes(k) for k in absent]
    prove_absent_us = (time.perf_counter() - start) / len(absent) * 1e6

    steps = [len(view.prove(k).exist.path) for k in present]
    start = time.perf_counter()
    for i, (k, p) in enumerate(zip(present, proofs, strict=True)):
        if not verify_membership(SMT_SPEC, root, p, k, (i * step).to_bytes(8, "big")):
            raise AssertionError("benchmark proof failed to verify")
    verify_us = (time.perf_counter() - start) / len(present) * 1e6
    start = time.perf_counter()
    for k, p in zip(absent, absent_proofs, strict=True):
        if not verify_non_membership(SMT_SPEC, root, p, k):
            raise AssertionError("benchmark non-membership proof failed to verify")
    verify_absent_us = (time.perf_counter() - start) / len(absent) * 1e6
    return {
        "keys": n,
        "bulk_insert_us_per_key": round(bulk_us, 2),
        "incremental_insert_us_per_key": round(incremental_us, 2),
        "prove_us": round(prove_us, 2),
        "prove_absent_us": round(prove_absent_us, 2),
        "verify_us": round(verify_us, 2),
        "verify_absent_us": round(verify_absent_us, 2),
        "steps_mean": round(statistics.mean(steps), 2),
        "steps_max": max(steps),
        "proof_bytes_mean": round(statistics.mean(len(p) for p in proofs), 1),
    }


def run(quick: bool) -> dict[str, Any]:
    sizes = [1_000] if quick else [1_000, 10_000, 100_000]
    preimage = b"\x01" + bytes(64)
    sha_us = per_call_us(lambda: hashlib.sha256(preimage).digest())
    rows = [_one_size(n) for n in sizes]
    for row in rows:
        row["verify_over_256_sha256"] = round(row["verify_us"] / (256 * sha_us), 3)
    return {"sha256_65_bytes_us": round(sha_us, 3), "sizes": rows}
