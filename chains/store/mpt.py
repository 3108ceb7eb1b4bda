"""The EVM chain's Merkle-Patricia trie: Ethereum's hexary trie with hashing deferred to commit.

Why not py-trie: it re-encodes and re-hashes every node on the path at every write, which
caps a chain at a few hundred writes per second. Here a write only builds new node objects
along the path (the old ones are left untouched, so the structure is persistent), and
``commit`` encodes and hashes each node that changed since the last commit exactly once,
then writes those nodes to the :class:`NodeStore`. Consequences the chain relies on:
- any committed root stays readable and provable through ``at(root)``/``prove(key, root)``
  for as long as the store keeps its nodes (nodes are content-addressed, never rewritten);
- ``snapshot``/``revert`` are O(1) (a snapshot is the root object), which is how an
  all-or-nothing transaction undoes its writes;
- the encoding is Ethereum's exactly (hex-prefix paths, nodes under 32 bytes embedded in
  their parent, root = keccak256 of the root node even when it is short), pinned by the
  ethereum/tests trie vectors and by property tests against py-trie.

Nodes reached from the store are decoded on first use and kept, so a long-lived trie
converges to an in-memory copy of the part of the state it touches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import rlp
from rlp.codec import length_prefix

from chains.store.kv import MemoryNodeStore, NodeStore
from lightclients.crypto import keccak256
from lightclients.mpt import (
    EMPTY_CODE_HASH,
    EMPTY_ROOT,
    decode_hex_prefix,
    decode_node,
    key_nibbles,
)

__all__ = [
    "EMPTY_CODE_HASH",
    "EMPTY_ROOT",
    "MemoryNodeStore",
    "MerklePatriciaTrie",
    "MissingNode",
    "NodeStore",
    "ReadOnlyTrie",
    "TrieError",
    "TrieSnapshot",
    "encode_account",
    "encode_storage_value",
]

_NIBBLE_TO_HEX = bytes(b"0123456789abcdef"[c] if c < 16 else 0 for c in range(256))


class TrieError(ValueError):
    """A trie operation got bad arguments or found the node store inconsistent."""


class MissingNode(TrieError):
    """A node the requested root needs is not in the node store."""


class ReadOnlyTrie(TrieError):
    """A write was attempted on a view of a historical root."""


class _Leaf:
    __slots__ = ("item", "path", "value")

    def __init__(self, path: bytes, value: bytes) -> None:
        self.path = path
        self.value = value
        # How a parent embeds this node: b"\xa0" + hash when the encoding is 32 bytes or
        # more, else the encoding itself. None until the next commit computes it.
        self.item: bytes | None = None


class _Extension:
    __slots__ = ("child", "item", "path")

    def __init__(self, path: bytes, child: _Node) -> None:
        self.path = path
        self.child = child
        self.item: bytes | None = None


class _Branch:
    __slots__ = ("children", "item", "value")

    def __init__(self, children: list[_Node | None], value: bytes) -> None:
        # Never mutated after construction: writes copy the list, so old roots stay intact.
        self.children = children
        self.value = value
        self.item: bytes | None = None


class _HashRef:
    """A committed node known only by hash until a read needs it."""

    __slots__ = ("hash", "item", "node")

    def __init__(self, node_hash: bytes) -> None:
        self.hash = node_hash
        self.item: bytes | None = b"\xa0" + node_hash
        self.node: _Resolved | None = None


_Resolved = _Leaf | _Extension | _Branch
_Node = _Leaf | _Extension | _Branch | _HashRef


@dataclass(frozen=True)
class TrieSnapshot:
    """The uncommitted state of a trie at one instant; see ``MerklePatriciaTrie.revert``."""

    _root: object


def _rlp_string(data: bytes) -> bytes:
    if len(data) == 1 and data[0] < 0x80:
        return data
    return bytes(length_prefix(len(data), 0x80)) + data


def _rlp_list(payload: bytes) -> bytes:
    return bytes(length_prefix(len(payload), 0xC0)) + payload


def _hex_prefix(path: bytes, leaf: bool) -> bytes:
    flag = 2 if leaf else 0
    if len(path) % 2:
        return bytes.fromhex(bytes([flag + 1, *path]).translate(_NIBBLE_TO_HEX).decode("ascii"))
    return bytes([flag << 4]) + bytes.fromhex(path.translate(_NIBBLE_TO_HEX).decode("ascii"))


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    x = int.from_bytes(a[:n], "big") ^ int.from_bytes(b[:n], "big")
    if x == 0:
        return n
    return n - 1 - (x.bit_length() - 1) // 8


def _need_bytes(name: str, value: object) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise TrieError(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


def _from_structure(item: object) -> _Resolved:
    """Build a node from decoded RLP; raises TrieError when it is not a trie node."""
    if not isinstance(item, list) or len(item) not in (2, 17):
        raise TrieError("stored node is not a 2-item or 17-item list")
    if len(item) == 17:
        value = item[16]
        if not isinstance(value, bytes):
            raise TrieError("stored branch value is not a byte string")
        return _Branch([_child_from_structure(c) for c in item[:16]], value)
    hp, second = item
    if not isinstance(hp, bytes):
        raise TrieError("stored node path is not a byte string")
    try:
        path, is_leaf = decode_hex_prefix(hp)
    except ValueError as exc:
        raise TrieError(f"stored node path: {exc}") from None
    if is_leaf:
        if not isinstance(second, bytes) or not second:
            raise TrieError("stored leaf value is empty or a list")
        return _Leaf(path, second)
    child = _child_from_structure(second)
    if child is None or not path:
        raise TrieError("stored extension has an empty path or no child")
    return _Extension(path, child)


def _child_from_structure(item: object) -> _Node | None:
    if item == b"":
        return None
    if isinstance(item, bytes):
        if len(item) != 32:
            raise TrieError(f"stored child reference is {len(item)} bytes, not 32")
        return _HashRef(item)
    encoded = bytes(rlp.encode(item))
    if len(encoded) >= 32:
        raise TrieError("stored node embeds a child of 32 bytes or more instead of its hash")
    node = _from_structure(item)
    node.item = encoded
    return node


class MerklePatriciaTrie:
    """Ethereum's hexary Merkle-Patricia trie over a content-addressed node store.

    With ``secure=True`` every key is replaced by keccak256(key), as in Ethereum's state
    and storage tries (and proofs are then for the hashed key, as EIP-1186's are).

    One writer at a time. ``prove`` and ``at`` read only committed, immutable nodes, so a
    query thread may call them while the block loop writes, given a thread-safe store.
    """

    def __init__(
        self,
        store: NodeStore,
        root: bytes = EMPTY_ROOT,
        *,
        secure: bool = False,
        _read_only: bool = False,
    ) -> None:
        root = _need_bytes("root", root)
        if len(root) != 32:
            raise TrieError(f"root must be 32 bytes, got {len(root)}")
        self._store = store
        self._secure = secure
        self._read_only = _read_only
        self._root: _Node | None = None
        if root != EMPTY_ROOT:
            if store.get(root) is None:
                raise MissingNode(f"root {root.hex()} is not in the node store")
            self._root = _HashRef(root)
        # (root node, root hash) of the last commit, swapped as one reference so a reader
        # in another thread never pairs one commit's node with another's hash.
        self._head: tuple[_Node | None, bytes] = (self._root, root)

    # --- reading -------------------------------------------------------------------

    @property
    def root_hash(self) -> bytes:
        """The root of the last commit (or the root the trie was opened at)."""
        return self._head[1]

    @property
    def secure(self) -> bool:
        return self._secure

    @property
    def dirty(self) -> bool:
        """True when there are writes that the next commit would hash."""
        return self._root is not self._head[0]

    def _path(self, key: object) -> bytes:
        data = _need_bytes("key", key)
        return key_nibbles(keccak256(data) if self._secure else data)

    def _resolve(self, ref: _HashRef) -> _Resolved:
        node = ref.node
        if node is None:
            encoded = self._store.get(ref.hash)
            if encoded is None:
                raise MissingNode(f"trie node {ref.hash.hex()} is not in the node store")
            try:
                items = decode_node(encoded)
            except ValueError as exc:
                raise TrieError(f"stored node {ref.hash.hex()}: {exc}") from None
            node = _from_structure(items)
            # A short root is stored under its hash but embeds inline when it is a child.
            node.item = ref.item if len(encoded) >= 32 else encoded
            ref.node = node
        return node

    def get(self, key: bytes) -> bytes | None:
        """The value under ``key`` including uncommitted writes; None when absent."""
        path = self._path(key)
        pos = 0
        node = self._root
        while node is not None:
            if type(node) is _HashRef:
                node = self._resolve(node)
            if type(node) is _Branch:
                if pos == len(path):
                    return node.value or None
                node = node.children[path[pos]]
                pos += 1
            elif type(node) is _Leaf:
                return node.value if path[pos:] == node.path else None
            else:
                assert type(node) is _Extension
                if not path.startswith(node.path, pos):
                    return None
                pos += len(node.path)
                node = node.child
        return None

    def prove(self, key: bytes, root: bytes | None = None) -> list[bytes]:
        """EIP-1186 proof of ``key`` (present or absent) at a committed root, root node first.

        ``root`` defaults to the last committed root; uncommitted writes are never proven.
        """
        head, head_hash = self._head
        if root is None or root == head_hash:
            if head_hash == EMPTY_ROOT:
                return []
            return self._prove(head, head_hash, key)
        return self.at(root).prove(key)

    def prove_many(self, keys: Sequence[bytes], root: bytes | None = None) -> list[bytes]:
        """One multiproof of ``keys`` (present or absent) at a committed root.

        The distinct hashed nodes on the keys' paths, each once, in the order a walk of the
        keys (in the given order, each from the root) first needs them: exactly what
        ``lightclients.mpt.verify_multiproof`` accepts for the same key order.
        """
        head, head_hash = self._head
        if root is not None and root != head_hash:
            return self.at(root).prove_many(keys)
        if head_hash == EMPTY_ROOT:
            return []
        seen: set[bytes] = set()
        out: list[bytes] = []
        for key in keys:
            # A node's bytes name it as well as its hash does, and cost nothing to compare.
            for encoded in self._prove(head, head_hash, key):
                if encoded not in seen:
                    seen.add(encoded)
                    out.append(encoded)
        return out

    def _prove(self, start: _Node | None, root: bytes, key: bytes) -> list[bytes]:
        path = self._path(key)
        encoded_root = self._store.get(root)
        if encoded_root is None:
            raise MissingNode(f"root {root.hex()} is not in the node store")
        proof = [encoded_root]
        pos = 0
        node = start
        first = True
        while node is not None:
            if type(node) is _HashRef:
                node = self._resolve(node)
            if not first and node.item is not None and len(node.item) == 33:
                encoded = self._store.get(node.item[1:])
                if encoded is None:
                    raise MissingNode(f"trie node {node.item[1:].hex()} is not in the node store")
                proof.append(encoded)
            first = False
            if type(node) is _Branch:
                if pos == len(path):
                    break
                node = node.children[path[pos]]
                pos += 1
            elif type(node) is _Leaf:
                break
            else:
                assert type(node) is _Extension
                if not path.startswith(node.path, pos):
                    break
                pos += len(node.path)
                node = node.child
        return proof

    def at(self, root: bytes) -> MerklePatriciaTrie:
        """A read-only view of an earlier committed root (raises MissingNode if unknown)."""
        return MerklePatriciaTrie(self._store, root, secure=self._secure, _read_only=True)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """(trie key, value) pairs in key order, uncommitted writes included.

        For a secure trie the keys are the hashed keys: the preimages are not stored.
        """
        stack: list[tuple[_Node, bytes]] = [] if self._root is None else [(self._root, b"")]
        while stack:
            node, prefix = stack.pop()
            if type(node) is _HashRef:
                node = self._resolve(node)
            if type(node) is _Leaf:
                yield _nibbles_to_key(prefix + node.path), node.value
            elif type(node) is _Extension:
                stack.append((node.child, prefix + node.path))
            else:
                assert type(node) is _Branch
                for i in range(15, -1, -1):
                    child = node.children[i]
                    if child is not None:
                        stack.append((child, prefix + bytes([i])))
                if node.value:
                    yield _nibbles_to_key(prefix), node.value

    def next_key(self, key: bytes) -> bytes | None:
        """The smallest trie key strictly greater than ``key``, uncommitted writes included.

        Keys here are trie keys (hashed ones for a secure trie, as ``items`` yields). The
        walk visits one path plus at most one descent per level: O(depth) node reads.
        """
        probe = key_nibbles(_need_bytes("key", key))
        found = self._neighbour(self._root, b"", probe, after=True)
        return None if found is None else _nibbles_to_key(found)

    def prev_key(self, key: bytes) -> bytes | None:
        """The largest trie key strictly smaller than ``key`` (see ``next_key``)."""
        probe = key_nibbles(_need_bytes("key", key))
        found = self._neighbour(self._root, b"", probe, after=False)
        return None if found is None else _nibbles_to_key(found)

    def _neighbour(
        self, node: _Node | None, prefix: bytes, probe: bytes, *, after: bool
    ) -> bytes | None:
        """Nearest key under ``node`` (all of whose keys start with ``prefix``) past ``probe``."""
        if node is None:
            return None
        if type(node) is _HashRef:
            node = self._resolve(node)
        head = probe[: len(prefix)]
        if head != prefix:
            # Every key below lies on one side of the probe.
            if (head < prefix) == after:
                return self._extreme(node, prefix, first=after)
            return None
        if type(node) is _Leaf:
            full = prefix + node.path
            return full if (full > probe if after else full < probe) else None
        if type(node) is _Extension:
            return self._neighbour(node.child, prefix + node.path, probe, after=after)
        assert type(node) is _Branch
        depth = len(prefix)
        if after:
            # The branch's own key is ``prefix``, a prefix of the probe: never after it.
            start = probe[depth] if depth < len(probe) else 0
            for i in range(start, 16):
                found = self._neighbour(node.children[i], prefix + bytes([i]), probe, after=True)
                if found is not None:
                    return found
            return None
        if depth == len(probe):
            return None  # the branch's key equals the probe and every child key is longer
        for i in range(probe[depth], -1, -1):
            found = self._neighbour(node.children[i], prefix + bytes([i]), probe, after=False)
            if found is not None:
                return found
        return prefix if node.value else None

    def _extreme(self, node: _Node, prefix: bytes, *, first: bool) -> bytes:
        """The smallest (``first``) or largest key under a non-empty node."""
        while True:
            if type(node) is _HashRef:
                node = self._resolve(node)
            if type(node) is _Leaf:
                return prefix + node.path
            if type(node) is _Extension:
                prefix += node.path
                node = node.child
                continue
            assert type(node) is _Branch
            if first and node.value:
                return prefix
            order = range(16) if first else range(15, -1, -1)
            index = next((i for i in order if node.children[i] is not None), None)
            if index is None:
                return prefix  # only the branch value is left
            child = node.children[index]
            assert child is not None
            prefix += bytes([index])
            node = child

    # --- writing -------------------------------------------------------------------

    def _writable(self) -> None:
        if self._read_only:
            raise ReadOnlyTrie("this trie is a read-only view of a historical root")

    def set(self, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key``; an empty value deletes, as in Ethereum."""
        self._writable()
        value = _need_bytes("value", value)
        path = self._path(key)
        if not value:
            self._root = self._delete(self._root, path)
        else:
            self._root = self._set(self._root, path, value)

    def delete(self, key: bytes) -> None:
        """Remove ``key``; removing an absent key changes nothing."""
        self._writable()
        self._root = self._delete(self._root, self._path(key))

    def snapshot(self) -> TrieSnapshot:
        """The current state, uncommitted writes included, for a later ``revert``."""
        return TrieSnapshot(self._root)

    def revert(self, snapshot: TrieSnapshot) -> None:
        """Return to ``snapshot``; writes made since then are dropped (not yet committed)."""
        self._writable()
        root = snapshot._root
        if root is not None and not isinstance(root, _Leaf | _Extension | _Branch | _HashRef):
            raise TrieError("not a snapshot of a trie")
        self._root = root

    def commit(self) -> bytes:
        """Hash every node changed since the last commit, store them, return the new root."""
        self._writable()
        if self._root is self._head[0]:
            return self._head[1]
        if self._root is None:
            root_hash = EMPTY_ROOT
        else:
            new_nodes: list[tuple[bytes, bytes]] = []
            item = self._encode(self._root, new_nodes)
            if len(item) == 33:  # hashed; an embedded item is always under 32 bytes
                root_hash = item[1:]
            else:
                root_hash = keccak256(item)
                new_nodes.append((root_hash, item))
            put = self._store.put
            for node_hash, encoded in new_nodes:
                put(node_hash, encoded)
        self._head = (self._root, root_hash)
        return root_hash

    def _encode(self, node: _Node, out: list[tuple[bytes, bytes]]) -> bytes:
        """The node's parent-embedding item, encoding dirty descendants first (once each)."""
        item = node.item
        if item is not None:
            return item
        if type(node) is _Leaf:
            encoded = _rlp_list(_rlp_string(_hex_prefix(node.path, True)) + _rlp_string(node.value))
        elif type(node) is _Extension:
            encoded = _rlp_list(
                _rlp_string(_hex_prefix(node.path, False)) + self._encode(node.child, out)
            )
        else:
            assert type(node) is _Branch
            encode = self._encode
            # Clean children answer from their cached item without a call.
            parts = [b"\x80" if c is None else (c.item or encode(c, out)) for c in node.children]
            parts.append(_rlp_string(node.value))
            encoded = _rlp_list(b"".join(parts))
        if len(encoded) >= 32:
            node_hash = keccak256(encoded)
            out.append((node_hash, encoded))
            item = b"\xa0" + node_hash
        else:
            item = encoded
        node.item = item
        return item

    def _set(self, node: _Node | None, path: bytes, value: bytes) -> _Node:
        if node is None:
            return _Leaf(path, value)
        if type(node) is _HashRef:
            resolved = self._resolve(node)
            updated = self._set(resolved, path, value)
            return node if updated is resolved else updated
        if type(node) is _Branch:
            if not path:
                return node if node.value == value else _Branch(node.children, value)
            i = path[0]
            old = node.children[i]
            new = self._set(old, path[1:], value)
            if new is old:
                return node
            copied = list(node.children)
            copied[i] = new
            return _Branch(copied, node.value)
        if type(node) is _Leaf:
            if node.path == path:
                return node if node.value == value else _Leaf(path, value)
            common = _common_prefix(node.path, path)
            children: list[_Node | None] = [None] * 16
            branch_value = b""
            rest = node.path[common:]
            if rest:
                children[rest[0]] = _Leaf(rest[1:], node.value)
            else:
                branch_value = node.value
        else:
            assert type(node) is _Extension
            common = _common_prefix(node.path, path)
            if common == len(node.path):
                new_child = self._set(node.child, path[common:], value)
                return node if new_child is node.child else _Extension(node.path, new_child)
            children = [None] * 16
            branch_value = b""
            rest = node.path[common:]
            children[rest[0]] = node.child if len(rest) == 1 else _Extension(rest[1:], node.child)
        rest = path[common:]
        if rest:
            children[rest[0]] = _Leaf(rest[1:], value)
        else:
            branch_value = value
        branch = _Branch(children, branch_value)
        return _Extension(path[:common], branch) if common else branch

    def _delete(self, node: _Node | None, path: bytes) -> _Node | None:
        if node is None:
            return None
        if type(node) is _HashRef:
            resolved = self._resolve(node)
            updated = self._delete(resolved, path)
            return node if updated is resolved else updated
        if type(node) is _Leaf:
            return None if node.path == path else node
        if type(node) is _Extension:
            if not path.startswith(node.path):
                return node
            new_child = self._delete(node.child, path[len(node.path) :])
            if new_child is node.child:
                return node
            return self._join(node.path, new_child)
        assert type(node) is _Branch
        if not path:
            if not node.value:
                return node
            return self._normalise(node.children, b"")
        i = path[0]
        old = node.children[i]
        new = self._delete(old, path[1:])
        if new is old:
            return node
        children = list(node.children)
        children[i] = new
        return self._normalise(children, node.value)

    def _join(self, prefix: bytes, child: _Node | None) -> _Node | None:
        """Put ``prefix`` in front of ``child``, merging paths so the trie stays canonical."""
        if child is None:
            return None
        if type(child) is _HashRef:
            child = self._resolve(child)
        if type(child) is _Leaf:
            return _Leaf(prefix + child.path, child.value)
        if type(child) is _Extension:
            return _Extension(prefix + child.path, child.child)
        return _Extension(prefix, child) if prefix else child

    def _normalise(self, children: list[_Node | None], value: bytes) -> _Node | None:
        """A branch left with one entry collapses into a leaf or extension."""
        used = [i for i, c in enumerate(children) if c is not None]
        if len(used) + (1 if value else 0) >= 2:
            return _Branch(children, value)
        if value:
            return _Leaf(b"", value)
        if not used:
            return None
        i = used[0]
        return self._join(bytes([i]), children[i])


def _nibbles_to_key(nibbles: bytes) -> bytes:
    if len(nibbles) % 2:
        raise TrieError("trie holds a key with an odd number of nibbles")
    return bytes.fromhex(nibbles.translate(_NIBBLE_TO_HEX).decode("ascii"))


# --- Ethereum state encodings ---------------------------------------------------------


def encode_account(nonce: int, balance: int, storage_root: bytes, code_hash: bytes) -> bytes:
    """The state-trie leaf of an account: rlp([nonce, balance, storageRoot, codeHash])."""
    if not 0 <= nonce < 2**64:
        raise TrieError(f"nonce out of range: {nonce}")
    if not 0 <= balance < 2**256:
        raise TrieError(f"balance out of range: {balance}")
    if len(_need_bytes("storage_root", storage_root)) != 32:
        raise TrieError("storage_root must be 32 bytes")
    if len(_need_bytes("code_hash", code_hash)) != 32:
        raise TrieError("code_hash must be 32 bytes")
    return bytes(rlp.encode([nonce, balance, bytes(storage_root), bytes(code_hash)]))


def encode_storage_value(word: int | bytes) -> bytes:
    """A storage slot's trie value: rlp of the word as a minimal big-endian integer.

    Zero gives b"", which ``set`` treats as a delete: Ethereum never stores a zero slot.
    A bytes word (e.g. a 32-byte commitment hash) is read as a big-endian integer.
    """
    if isinstance(word, bytes | bytearray):
        if len(word) > 32:
            raise TrieError(f"storage word must be at most 32 bytes, got {len(word)}")
        number = int.from_bytes(word, "big")
    elif isinstance(word, int) and not isinstance(word, bool):
        number = word
    else:
        raise TrieError(f"storage word must be int or bytes, got {type(word).__name__}")
    if not 0 <= number < 2**256:
        raise TrieError(f"storage word out of range: {number}")
    if number == 0:
        return b""
    return bytes(rlp.encode(number.to_bytes((number.bit_length() + 7) // 8, "big")))
