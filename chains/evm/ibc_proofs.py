"""Multiproofs of the IBC handler's commitments, in the form the 10-qbft client opens.

Several ICS-24 paths at one height travel as one ``StorageProof.multiproof``: their
commitment slots (strictly ascending) and the distinct storage-trie nodes on the slots'
paths, each once (``MerklePatriciaTrie.prove_many``). The light client verifies it against
the IBC storage root it trusts at that height (lightclients/mpt.py
``verify_storage_multiproof``), so the upper nodes the paths share are sent and hashed once.
"""

from __future__ import annotations

from collections.abc import Sequence

from chains.store.mpt import MerklePatriciaTrie, NodeStore
from lightclients.qbft.client import commitment_slot, encode_storage_multiproof


def ibc_multiproof(store: NodeStore, storage_root: bytes, paths: Sequence[bytes]) -> bytes:
    """Proof bytes covering every path (present or absent) under the IBC storage root."""
    if not paths:
        raise ValueError("a multiproof needs at least one path")
    slots = sorted({commitment_slot(bytes(p)) for p in paths})
    nodes = MerklePatriciaTrie(store, storage_root, secure=True).prove_many(slots)
    return encode_storage_multiproof(slots, nodes)
