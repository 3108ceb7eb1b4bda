"""Sparse Merkle tree over sha256(key), laid out as ICS-23's SMT spec (celestiaorg/smt style).

The Corda chain's checkpoints commit to this tree's root (``ibc_root``), so a counterparty's
light client can check both membership and non-membership with :mod:`lightclients.ics23`
and ``SMT_SPEC``; non-membership is what makes packet receive-timeouts provable.

Layout (every preimage is 65 bytes, so a leaf can never be read as an inner node):
- leaf  = sha256(0x00 ‖ sha256(key) ‖ sha256(value))
- inner = sha256(0x01 ‖ left ‖ right), the empty subtree is 32 zero bytes
- path  = the bits of sha256(key), most significant first, 0 = left.
The tree is compact: a subtree holding one leaf *is* that leaf, placed where its key-hash
prefix becomes unique, so proofs have about log2(n) steps rather than 256. Because the shape
depends only on the set of keys, roots do not depend on insertion order and a delete
restores the earlier root.

Storage is content-addressed (hash -> bytes) through the narrow :class:`NodeStore`: node
preimages under their node hash, and the raw key and value under sha256(key) and
sha256(value) (the hashes the leaf already holds), so neighbour proofs can name raw keys.
Nothing is ever overwritten, so every committed root stays readable and provable.
Writes are buffered and hashed once per :meth:`SparseMerkleTree.commit`.

The writable tree (the head a host executes against) also keeps the latest value of the keys
it has read or written, bounded: a host reads the same few keys (channel, connection, client
and consensus states, the packet being acked) in every transaction, and each read would
otherwise walk the tree through the node store. It is exact because the head's committed
content changes only in :meth:`commit`, which records each written key's new value (or its
absence). Read-only views (:meth:`at`) never use it; proofs always walk the tree.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Protocol

from kakehashi.ics23.v1 import proofs_pb2 as pb
from lightclients.crypto import sha256
from lightclients.ics23 import BatchAbsent, BatchExist, compressed_batch

EMPTY_ROOT = bytes(32)
_LEAF = b"\x00"
_INNER = b"\x01"
_BITS = 256
VALUE_CACHE_SIZE = 1 << 16
_SHA256 = int(pb.SHA256)


class SmtError(ValueError):
    """Bad key or value, write to a read-only view, or a store missing or corrupting nodes."""


class NodeStore(Protocol):
    """Content-addressed blob store (hash -> bytes); the node issue backs it with SQLite.

    Entries are never overwritten with different bytes or deleted by the tree, which is what
    keeps every committed root provable. Arguments are positional so any naming fits.
    """

    def get(self, node_hash: bytes, /) -> bytes | None: ...

    def put(self, node_hash: bytes, data: bytes, /) -> None: ...


class MemoryNodeStore:
    """Dict-backed :class:`NodeStore`, for tests and chains that keep state in memory."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}

    def get(self, node_hash: bytes, /) -> bytes | None:
        return self._data.get(node_hash)

    def put(self, node_hash: bytes, data: bytes, /) -> None:
        self._data[bytes(node_hash)] = bytes(data)

    def __len__(self) -> int:
        return len(self._data)


_SMT_LEAF_OP = pb.LeafOp(
    hash=pb.SHA256,
    prehash_key=pb.SHA256,
    prehash_value=pb.SHA256,
    length=pb.NO_PREFIX,
    prefix=_LEAF,
)


def _bytes_arg(name: str, value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise SmtError(f"{name} must be bytes, got {type(value).__name__}")
    if not value:
        raise SmtError(f"{name} must not be empty (ICS-23 leaves need a non-empty {name})")
    return bytes(value)


class SparseMerkleTree:
    """A versioned SMT; :meth:`at` opens a read-only view of any committed root."""

    def __init__(
        self, store: NodeStore | None = None, root: bytes = EMPTY_ROOT, *, read_only: bool = False
    ) -> None:
        if not isinstance(root, (bytes, bytearray)) or len(root) != 32:
            raise SmtError("root must be 32 bytes")
        self._store: NodeStore = store if store is not None else MemoryNodeStore()
        self._root = bytes(root)
        self._read_only = read_only
        # key hash -> (raw key, raw value or None for a delete); applied at commit.
        self._pending: dict[bytes, tuple[bytes, bytes | None]] = {}
        # nodes made during a commit, written to the store when it finishes
        self._new: dict[bytes, bytes] = {}
        # key hash -> value (None = absent) at the committed root; writable trees only
        self._values: dict[bytes, bytes | None] = {}
        if self._root != EMPTY_ROOT:
            self._node(self._root)  # fail now, not at first read, on an unknown root

    # --- reading ---------------------------------------------------------------------

    @property
    def root(self) -> bytes:
        """The last committed root; uncommitted writes are not in it."""
        return self._root

    @property
    def store(self) -> NodeStore:
        return self._store

    def _blob(self, h: bytes) -> bytes:
        data = self._new.get(h)
        if data is None:
            data = self._store.get(h)
        if data is None:
            raise SmtError(f"node store has no entry for {h.hex()}")
        return data

    def _preimage(self, h: bytes) -> bytes:
        """A raw key or value, checked like nodes are: a corrupt store must not change a read."""
        data = self._blob(h)
        if sha256(data) != h:
            raise SmtError(f"stored key or value {h.hex()} is corrupt")
        return data

    def _node(self, h: bytes) -> tuple[bytes, bytes, bytes]:
        """(kind, a, b): a leaf's key and value hashes, or an inner node's two children."""
        data = self._blob(h)
        if len(data) != 65 or data[:1] not in (_LEAF, _INNER) or sha256(data) != h:
            raise SmtError(f"node {h.hex()} is corrupt")
        return data[:1], data[1:33], data[33:]

    def get(self, key: bytes) -> bytes | None:
        """Value of key, including uncommitted writes on a writable tree."""
        kh = sha256(_bytes_arg("key", key))
        pending = self._pending.get(kh)
        if pending is not None:
            return pending[1]
        if not self._read_only and kh in self._values:
            return self._values[kh]
        _, terminal = self._descend(kh)
        value: bytes | None = None
        if terminal != EMPTY_ROOT:
            _, leaf_kh, vh = self._node(terminal)
            value = self._preimage(vh) if leaf_kh == kh else None
        if not self._read_only:
            self._remember(kh, value)
        return value

    def _remember(self, kh: bytes, value: bytes | None) -> None:
        values = self._values
        values[kh] = value
        while len(values) > VALUE_CACHE_SIZE:
            del values[next(iter(values))]  # the oldest entry: a bounded cache, first in first out

    def _descend(self, kh: bytes) -> tuple[list[tuple[bytes, bytes, int]], bytes]:
        """Inner nodes on the way to kh as (left, right, bit), and the empty or leaf it ends at."""
        path: list[tuple[bytes, bytes, int]] = []
        bits = int.from_bytes(kh, "big")
        h = self._root
        while h != EMPTY_ROOT:
            kind, a, b = self._node(h)
            if kind == _LEAF:
                break
            if len(path) >= _BITS:
                raise SmtError("tree deeper than 256 levels")
            bit = (bits >> (_BITS - 1 - len(path))) & 1
            path.append((a, b, bit))
            h = b if bit else a
        return path, h

    def _edge_leaf(self, h: bytes, rightmost: bool) -> bytes:
        """Hash of the rightmost (or leftmost) leaf below node h."""
        for _ in range(_BITS + 1):
            kind, a, b = self._node(h)
            if kind == _LEAF:
                return h
            first, second = (b, a) if rightmost else (a, b)
            h = first if first != EMPTY_ROOT else second
        raise SmtError("tree deeper than 256 levels")

    # --- proofs ------------------------------------------------------------------------

    def _existence(
        self, kh: bytes, walked: tuple[list[tuple[bytes, bytes, int]], bytes] | None = None
    ) -> pb.ExistenceProof:
        path, terminal = walked if walked is not None else self._descend(kh)
        if terminal == EMPTY_ROOT:
            raise SmtError("key is not in the tree")
        _, leaf_kh, vh = self._node(terminal)
        if leaf_kh != kh:
            raise SmtError("key is not in the tree")
        steps = []
        for left, right, bit in reversed(path):
            if bit:
                steps.append(pb.InnerOp(hash=pb.SHA256, prefix=_INNER + left))
            else:
                steps.append(pb.InnerOp(hash=pb.SHA256, prefix=_INNER, suffix=right))
        return pb.ExistenceProof(
            key=self._preimage(kh), value=self._preimage(vh), leaf=_SMT_LEAF_OP, path=steps
        )

    def _neighbours(self, kh: bytes) -> tuple[bytes | None, bytes | None]:
        """Key hashes of the committed keys just below and just above kh, in O(depth)."""
        path, terminal = self._descend(kh)
        left: bytes | None = None
        right: bytes | None = None
        if terminal != EMPTY_ROOT:
            # The leaf alone in kh's subtree is one neighbour; the other lies beyond it.
            _, other, _ = self._node(terminal)
            if other < kh:
                left = other
            else:
                right = other
        for a, b, bit in reversed(path):
            if left is None and bit == 1 and a != EMPTY_ROOT:
                left = self._node(self._edge_leaf(a, rightmost=True))[1]
            if right is None and bit == 0 and b != EMPTY_ROOT:
                right = self._node(self._edge_leaf(b, rightmost=False))[1]
            if left is not None and right is not None:
                break
        return left, right

    def prove(self, key: bytes) -> pb.CommitmentProof:
        """ICS-23 proof (exist or nonexist) for key against this view's committed root."""
        kh = sha256(_bytes_arg("key", key))
        if self._root == EMPTY_ROOT:
            raise SmtError("an empty tree has no neighbours to prove absence with")
        walked = self._descend(kh)
        terminal = walked[1]
        if terminal != EMPTY_ROOT and self._node(terminal)[1] == kh:
            return pb.CommitmentProof(exist=self._existence(kh, walked))
        left, right = self._neighbours(kh)
        ne = pb.NonExistenceProof(key=kh)
        if left is not None:
            ne.left.CopyFrom(self._existence(left))
        if right is not None:
            ne.right.CopyFrom(self._existence(right))
        return pb.CommitmentProof(nonexist=ne)

    def prove_bytes(self, key: bytes) -> bytes:
        return self.prove(key).SerializeToString(deterministic=True)

    def prove_many(self, keys: Sequence[bytes]) -> pb.CommitmentProof:
        """One compressed ICS-23 batch proof of ``keys`` (each present or absent).

        Entries are sorted by the key they carry and repeated keys are proven once, the
        form ``lightclients.ics23.verify_batch`` requires; the inner steps the keys' paths
        share are written once. The walk reads each tree node once for the whole batch.
        """
        if self._root == EMPTY_ROOT:
            raise SmtError("an empty tree has no neighbours to prove absence with")
        view = _BatchView(self._store, self._root)
        entries: dict[bytes, BatchExist | BatchAbsent] = {}
        for key in keys:
            kh = sha256(_bytes_arg("key", key))
            walked = view._descend(kh)
            terminal = walked[1]
            if terminal != EMPTY_ROOT and view._node(terminal)[1] == kh:
                entry: BatchExist | BatchAbsent = view._exist_entry(kh, walked)
            else:
                left, right = view._neighbours(kh)
                entry = BatchAbsent(
                    kh,
                    None if left is None else view._exist_entry(left),
                    None if right is None else view._exist_entry(right),
                )
            entries[entry.key] = entry
        if not entries:
            raise SmtError("a batch proof needs at least one key")
        return compressed_batch([entries[k] for k in sorted(entries)])

    def _exist_entry(
        self, kh: bytes, walked: tuple[list[tuple[bytes, bytes, int]], bytes] | None = None
    ) -> BatchExist:
        """The existence proof of ``_existence`` as a batch entry (steps as plain tuples)."""
        path, terminal = walked if walked is not None else self._descend(kh)
        if terminal == EMPTY_ROOT:
            raise SmtError("key is not in the tree")
        _, leaf_kh, vh = self._node(terminal)
        if leaf_kh != kh:
            raise SmtError("key is not in the tree")
        steps = [
            (_SHA256, _INNER + left, b"") if bit else (_SHA256, _INNER, right)
            for left, right, bit in reversed(path)
        ]
        return BatchExist(self._preimage(kh), self._preimage(vh), _SMT_LEAF_OP, steps)

    def prove_many_bytes(self, keys: Sequence[bytes]) -> bytes:
        return self.prove_many(keys).SerializeToString(deterministic=True)

    def at(self, root: bytes) -> SparseMerkleTree:
        """Read-only view of a committed root in the same store (older versions stay provable)."""
        return SparseMerkleTree(self._store, root, read_only=True)

    # --- writing -----------------------------------------------------------------------

    def _writable(self) -> None:
        if self._read_only:
            raise SmtError("this is a read-only view of a committed root")

    def set(self, key: bytes, value: bytes) -> None:
        self._writable()
        k = _bytes_arg("key", key)
        v = _bytes_arg("value", value)
        self._pending[sha256(k)] = (k, v)

    def delete(self, key: bytes) -> None:
        self._writable()
        k = _bytes_arg("key", key)
        self._pending[sha256(k)] = (k, None)

    def commit(self) -> bytes:
        """Apply buffered writes, hash each changed node once, write nodes; return the root."""
        self._writable()
        if not self._pending:
            return self._root
        hashes = sorted(self._pending)
        ints = [int.from_bytes(h, "big") for h in hashes]
        leaves: list[bytes | None] = []
        self._new = {}
        for kh in hashes:
            key, value = self._pending[kh]
            if value is None:
                leaves.append(None)
                continue
            vh = sha256(value)
            self._new[kh] = key
            self._new[vh] = value
            pre = _LEAF + kh + vh
            lh = sha256(pre)
            self._new[lh] = pre
            leaves.append(lh)
        try:
            root = self._update(self._root, 0, 0, hashes, ints, leaves, 0, len(hashes))
            for h, data in self._new.items():
                self._store.put(h, data)
        finally:
            self._new = {}
        for kh, (_, value) in self._pending.items():
            self._values.pop(kh, None)
            self._remember(kh, value)
        self._pending = {}
        self._root = root
        return root

    def _pair(self, left: bytes, right: bytes) -> bytes:
        """Parent of two subtrees, keeping the tree compact: a lone leaf moves up."""
        if left == EMPTY_ROOT and right == EMPTY_ROOT:
            return EMPTY_ROOT
        if left == EMPTY_ROOT and self._node(right)[0] == _LEAF:
            return right
        if right == EMPTY_ROOT and self._node(left)[0] == _LEAF:
            return left
        pre = _INNER + left + right
        h = sha256(pre)
        self._new[h] = pre
        return h

    def _update(
        self,
        node: bytes,
        depth: int,
        base: int,
        hashes: list[bytes],
        ints: list[int],
        leaves: list[bytes | None],
        lo: int,
        hi: int,
    ) -> bytes:
        """New hash of the subtree at ``depth`` whose key hashes start with ``base``'s prefix.

        ``hashes[lo:hi]`` (sorted) are the updates falling in this subtree; ``leaves[i]`` is
        the new leaf hash for ``hashes[i]`` or None to delete it.
        """
        if lo == hi:
            return node
        if node != EMPTY_ROOT:
            kind, a, b = self._node(node)
            if kind == _INNER:
                if depth >= _BITS:
                    raise SmtError("tree deeper than 256 levels")
                mid = bisect.bisect_left(ints, base | (1 << (_BITS - 1 - depth)), lo, hi)
                right_base = base | (1 << (_BITS - 1 - depth))
                new_left = self._update(a, depth + 1, base, hashes, ints, leaves, lo, mid)
                new_right = self._update(b, depth + 1, right_base, hashes, ints, leaves, mid, hi)
                return self._pair(new_left, new_right)
            # A leaf stands for a subtree holding only itself: rebuild it with the updates.
            i = bisect.bisect_left(hashes, a, lo, hi)
            if i == hi or hashes[i] != a:
                hashes, ints, leaves = list(hashes[lo:hi]), list(ints[lo:hi]), list(leaves[lo:hi])
                hashes.insert(i - lo, a)
                ints.insert(i - lo, int.from_bytes(a, "big"))
                leaves.insert(i - lo, node)
                lo, hi = 0, len(hashes)
        return self._build(depth, base, ints, leaves, lo, hi)

    def _build(
        self, depth: int, base: int, ints: list[int], leaves: list[bytes | None], lo: int, hi: int
    ) -> bytes:
        """Subtree made only of the given leaves (deletes, None, are skipped)."""
        present = [i for i in range(lo, hi) if leaves[i] is not None]
        if not present:
            return EMPTY_ROOT
        if len(present) == 1:
            leaf = leaves[present[0]]
            assert leaf is not None
            return leaf
        if depth >= _BITS:
            raise SmtError("two distinct key hashes cannot share 256 bits")
        split = base | (1 << (_BITS - 1 - depth))
        mid = bisect.bisect_left(ints, split, lo, hi)
        left = self._build(depth + 1, base, ints, leaves, lo, mid)
        right = self._build(depth + 1, split, ints, leaves, mid, hi)
        return self._pair(left, right)


class _BatchView(SparseMerkleTree):
    """A read-only view that reads and checks each node once: a batch proof walks the upper
    nodes of the tree once per key."""

    def __init__(self, store: NodeStore, root: bytes) -> None:
        self._memo: dict[bytes, tuple[bytes, bytes, bytes]] = {}
        super().__init__(store, root, read_only=True)

    def _node(self, h: bytes) -> tuple[bytes, bytes, bytes]:
        got = self._memo.get(h)
        if got is None:
            got = self._memo[h] = super()._node(h)
        return got
