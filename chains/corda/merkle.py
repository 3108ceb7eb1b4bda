"""Binary SHA-256 Merkle trees as Corda builds them, and partial trees (multiproofs) for tear-offs.

Layout (Corda's MerkleTree): leaves are padded with 32 zero bytes up to a power of two, a node
is sha256(left || right), and a tree of one leaf has that leaf as its root. A partial tree names
each sibling it supplies by (level, index) (level 0 = leaves), so one proof covers any set of
revealed leaves and a verifier can refuse siblings it never needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lightclients.crypto import sha256

ZERO_HASH = bytes(32)
ALL_ONES_HASH = b"\xff" * 32
MAX_LEAVES = 2**20


class MerkleError(ValueError):
    """A partial Merkle tree is malformed or does not match its root."""


def _width(count: int) -> int:
    width = 1
    while width < count:
        width *= 2
    return width


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    level = list(leaves) + [ZERO_HASH] * (_width(len(leaves)) - len(leaves))
    levels = [level]
    while len(level) > 1:
        level = [sha256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        raise MerkleError("a Merkle tree needs at least one leaf")
    return _levels(leaves)[-1][0]


def tree_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the padded tree, leaves first: build once, then take many paths."""
    if not leaves:
        raise MerkleError("a Merkle tree needs at least one leaf")
    return _levels(leaves)


def path_of(levels: Sequence[Sequence[bytes]], index: int) -> dict[tuple[int, int], bytes]:
    """The siblings that prove leaf ``index`` alone, read off prebuilt levels in O(log n).

    What :func:`prove` returns for ``[index]``, without rebuilding the tree per leaf, so a
    batch of n leaves gets all its paths in O(n log n).
    """
    if not 0 <= index < len(levels[0]):
        raise MerkleError("leaf index out of range")
    siblings: dict[tuple[int, int], bytes] = {}
    for depth in range(len(levels) - 1):
        siblings[(depth, index ^ 1)] = levels[depth][index ^ 1]
        index //= 2
    return siblings


def prove(leaves: Sequence[bytes], revealed: Sequence[int]) -> dict[tuple[int, int], bytes]:
    """Siblings (level, index) -> hash needed to rebuild the root from the revealed leaves."""
    if not leaves or not revealed:
        raise MerkleError("a partial tree needs leaves and at least one revealed index")
    levels = _levels(leaves)
    known = set(revealed)
    if any(i < 0 or i >= len(leaves) for i in known):
        raise MerkleError("revealed index out of range")
    siblings: dict[tuple[int, int], bytes] = {}
    for depth in range(len(levels) - 1):
        for i in known:
            if i ^ 1 not in known:
                siblings[(depth, i ^ 1)] = levels[depth][i ^ 1]
        known = {i // 2 for i in known}
    return siblings


def root_from_partial(
    leaf_count: int, revealed: Mapping[int, bytes], siblings: Mapping[tuple[int, int], bytes]
) -> bytes:
    """Rebuild the root; raises MerkleError on a missing, stray or out-of-range node."""
    if not 1 <= leaf_count <= MAX_LEAVES:
        raise MerkleError(f"leaf count {leaf_count} out of range")
    if not revealed:
        raise MerkleError("nothing revealed")
    if any(not 0 <= i < leaf_count for i in revealed):
        raise MerkleError("revealed index out of range")
    width = _width(leaf_count)
    nodes = dict(revealed)
    used: set[tuple[int, int]] = set()
    depth = 0
    while width > 1:
        parents: dict[int, bytes] = {}
        for i in sorted(nodes):
            if i // 2 in parents:
                continue
            sib = i ^ 1
            if sib in nodes:
                other = nodes[sib]
            elif (depth, sib) in siblings:
                other = siblings[(depth, sib)]
                used.add((depth, sib))
            else:
                raise MerkleError(f"partial tree lacks the sibling at level {depth}, index {sib}")
            left, right = (nodes[i], other) if i % 2 == 0 else (other, nodes[i])
            parents[i // 2] = sha256(left + right)
        nodes = parents
        width //= 2
        depth += 1
    if set(siblings) != used:
        raise MerkleError("partial tree carries siblings it does not need")
    if any(len(h) != 32 for h in siblings.values()):
        raise MerkleError("sibling hashes must be 32 bytes")
    return nodes[0]
